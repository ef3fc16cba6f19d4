//! The ground station's options: command line, `SARLINK_*` environment, TOML file,
//! defaults.

use std::path::PathBuf;

use sarlink_link::PreSharedKey;
use sarlink_schema::NodeName;
use sarlink_sdr::Gain;

use super::{ConfigError, Layers};
use crate::mqtt::{Secret, parse_url};
use crate::node::mqtt::{DEFAULT_QUEUE, MqttSettings};
use crate::output::Format;
use crate::source::SourceSpec;
use crate::units;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7355";

/// Options of the ground station (the default command). Each can also be given as
/// `SARLINK_<OPTION>` or in the `--config` TOML file; command line > environment > file >
/// default.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GroundArgs {
    /// Address to listen on [default: 127.0.0.1:7355]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// This station's node name [default: ground]
    #[arg(long)]
    pub node: Option<String>,
    /// The ground's own receiver: sim, sim:METRES, file:PATH, rtl_tcp:HOST:PORT, rtlsdr or rtlsdr:INDEX [default: none]
    #[arg(long)]
    pub source: Option<String>,
    /// Beacon frequency for the own receiver, e.g. 406.028e6 [default: 406.028 MHz]
    #[arg(long, short = 'f')]
    pub frequency: Option<String>,
    /// Sample rate of the own receiver [default: 1.024M]
    #[arg(long, short = 's')]
    pub sample_rate: Option<String>,
    /// Gain of the own receiver in dB (38.6, or 0dB for a manual 0 dB), or `auto`; a bare 0 is refused as ambiguous [default: auto]
    #[arg(long, short = 'g')]
    pub gain: Option<String>,
    /// Frequency correction of the tuner in ppm, sent to rtl_tcp or the dongle only when
    /// given (otherwise an rtl_tcp server's own `-P` stays in force) [default: not sent]
    #[arg(long, short = 'p', allow_negative_numbers = true)]
    pub ppm: Option<String>,
    /// Power an active antenna through the dongle's bias tee (rtl_tcp; USB where supported)
    #[arg(long)]
    pub bias_tee: bool,
    /// File holding the pre-shared key (at least 16 bytes); drones must prove it
    #[arg(long)]
    pub key_file: Option<String>,
    /// TLS: directory with the fleet's ca.pem, this node's NODE.pem and NODE.key, and
    /// crl.pem if any (from `sarlink-ground ca`); the revocation list is read again on SIGHUP
    #[arg(long, value_name = "DIR")]
    pub tls: Option<String>,
    /// Most drones and observers connected at once [default: 64]
    #[arg(long)]
    pub max_clients: Option<String>,
    /// Most connections still in the handshake from one IP address (others get `busy`)
    /// [default: 8]
    #[arg(long)]
    pub max_handshakes_per_addr: Option<String>,
    /// jsonl, csv or none [default: jsonl]
    #[arg(long)]
    pub output: Option<String>,
    /// Write output here (appending) instead of stdout; also where the stream positions are
    /// recovered from after a restart
    #[arg(long, value_name = "FILE")]
    pub output_file: Option<String>,
    /// Acknowledge records only after syncing the output to storage, at most this long after
    /// they are written, e.g. 200ms or 1s [default: acknowledge once handed to the OS]
    #[arg(long, value_name = "INTERVAL")]
    pub fsync: Option<String>,
    /// Serve the dashboard (/), /api/state, /api/live and Prometheus /metrics over HTTP at ADDR (`--metrics` is an alias)
    #[arg(long, value_name = "ADDR", visible_alias = "metrics")]
    pub http: Option<String>,
    /// Stop after this many seconds [default: run until SIGINT/SIGTERM]
    #[arg(long)]
    pub seconds: Option<String>,
    /// Publish records, decisions, status and alerts to this MQTT broker:
    /// mqtt://USER:PASSWORD@HOST:PORT or mqtts://... for TLS (user, password and port may
    /// be left out) [default: no MQTT]
    #[arg(long, value_name = "URL")]
    pub mqtt: Option<String>,
    /// MQTT user name (overrides the URL's)
    #[arg(long, value_name = "NAME")]
    pub mqtt_username: Option<String>,
    /// File holding the MQTT password (overrides the URL's; never printed)
    #[arg(long, value_name = "FILE")]
    pub mqtt_password_file: Option<String>,
    /// PEM file of the CA certificates to trust for mqtts:// [default: the system's]
    #[arg(long, value_name = "FILE")]
    pub mqtt_ca: Option<String>,
    /// PEM file of the TLS client certificate chain (with --mqtt-key)
    #[arg(long, value_name = "FILE")]
    pub mqtt_cert: Option<String>,
    /// PEM file of the TLS client certificate's private key (with --mqtt-cert)
    #[arg(long, value_name = "FILE")]
    pub mqtt_key: Option<String>,
    /// MQTT client id [default: sarlink-ground-NODE]
    #[arg(long, value_name = "ID")]
    pub mqtt_client_id: Option<String>,
    /// Messages held for the broker while it is slow or away; beyond this the oldest waiting
    /// ones are dropped and counted [default: 100000]
    #[arg(long, value_name = "MESSAGES")]
    pub mqtt_queue: Option<String>,
    /// Take operator commands from sarlink/GROUND/NODE/cmd (answers on .../ack); broker ACLs
    /// decide who may publish there [default: off]
    #[arg(long)]
    pub mqtt_commands: bool,
    /// Resource monitoring and degradation.
    #[command(flatten)]
    pub resources: super::ResourceArgs,
    /// No status line on stderr
    #[arg(long, short)]
    pub quiet: bool,
    /// Run the link without TLS and without a key (unauthenticated, unprotected; warns)
    #[arg(long)]
    pub insecure: bool,
    /// Print the resolved configuration as TOML (each value's origin as a comment) and exit
    #[arg(long)]
    pub print_config: bool,
    /// TOML file with any of the options above
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Keys a configuration file may hold.
pub(super) const FILE_KEYS: &[&str] = &[
    "listen",
    "node",
    "source",
    "frequency",
    "sample_rate",
    "gain",
    "ppm",
    "bias_tee",
    "key_file",
    "tls",
    "max_clients",
    "max_handshakes_per_addr",
    "output",
    "output_file",
    "fsync",
    "http",
    "metrics",
    "seconds",
    "mqtt",
    "mqtt_username",
    "mqtt_password_file",
    "mqtt_ca",
    "mqtt_cert",
    "mqtt_key",
    "mqtt_client_id",
    "mqtt_queue",
    "mqtt_commands",
    "resource_interval",
    "high_pressure",
    "recovery_cpu",
    "recovery_memory",
    "thermal_steps",
    "proc_root",
    "sys_root",
    "quiet",
    "insecure",
];

/// The ground station's resolved settings.
#[derive(Debug, Clone)]
pub struct GroundSettings {
    /// Listen address.
    pub listen: String,
    /// Node name.
    pub node: NodeName,
    /// Own receiver.
    pub source: Option<SourceSpec>,
    /// Beacon frequency for the own receiver.
    pub frequency_hz: u64,
    /// Own receiver's sample rate.
    pub sample_rate_hz: u32,
    /// Own receiver's gain.
    pub gain: Gain,
    /// Frequency correction, ppm (sent only when given).
    pub ppm: Option<i32>,
    /// Power an active antenna through the bias tee.
    pub bias_tee: bool,
    /// Whether the sample rate was given (a recording then uses it instead of its own).
    pub sample_rate_given: bool,
    /// Pre-shared key.
    pub key: Option<PreSharedKey>,
    /// TLS directory (ca.pem, NODE.pem, NODE.key, crl.pem).
    pub tls_dir: Option<PathBuf>,
    /// Client limit.
    pub max_clients: usize,
    /// Connections in the handshake allowed from one IP address.
    pub max_handshakes_per_addr: usize,
    /// Output format.
    pub output: Format,
    /// Output file (stdout when `None`).
    pub output_file: Option<PathBuf>,
    /// Sync the output this often and acknowledge only what was synced.
    pub fsync: Option<std::time::Duration>,
    /// Address of the HTTP endpoint (dashboard, API, `/metrics`); none when `None`.
    pub http: Option<String>,
    /// Run time limit.
    pub seconds: Option<f64>,
    /// MQTT publishing (`None`: off).
    pub mqtt: Option<MqttSettings>,
    /// Resource sampling: interval and the /proc and /sys roots.
    pub resources: crate::monitoring::ResourceSettings,
    /// No status line.
    pub quiet: bool,
    /// Plaintext without a key was asked for explicitly.
    pub insecure: bool,
}

impl GroundSettings {
    /// The resolved options as TOML that `--config` accepts unchanged, each with its origin
    /// as a comment (the key file's path, never its contents).
    pub fn to_toml(args: &GroundArgs, layers: &Layers) -> String {
        let mut options = vec![
            ("listen", args.listen.clone(), Some(DEFAULT_LISTEN)),
            ("node", args.node.clone(), Some("ground")),
            ("source", args.source.clone(), None),
            ("frequency", args.frequency.clone(), Some("406.028M")),
            ("sample_rate", args.sample_rate.clone(), Some("1.024M")),
            ("gain", args.gain.clone(), Some("auto")),
            ("ppm", args.ppm.clone(), None),
            (
                "bias_tee",
                args.bias_tee.then(|| "true".to_owned()),
                Some("false"),
            ),
            ("key_file", args.key_file.clone(), None),
            ("tls", args.tls.clone(), None),
            ("max_clients", args.max_clients.clone(), Some("64")),
            (
                "max_handshakes_per_addr",
                args.max_handshakes_per_addr.clone(),
                Some("8"),
            ),
            ("output", args.output.clone(), Some("jsonl")),
            ("output_file", args.output_file.clone(), None),
            ("fsync", args.fsync.clone(), None),
            ("http", args.http.clone(), None),
            ("seconds", args.seconds.clone(), None),
            // The URL's password is replaced by *** below; the password file by its path.
            ("mqtt", args.mqtt.clone(), None),
            ("mqtt_username", args.mqtt_username.clone(), None),
            ("mqtt_password_file", args.mqtt_password_file.clone(), None),
            ("mqtt_ca", args.mqtt_ca.clone(), None),
            ("mqtt_cert", args.mqtt_cert.clone(), None),
            ("mqtt_key", args.mqtt_key.clone(), None),
            ("mqtt_client_id", args.mqtt_client_id.clone(), None),
            ("mqtt_queue", args.mqtt_queue.clone(), Some("100000")),
            (
                "mqtt_commands",
                args.mqtt_commands.then(|| "true".to_owned()),
                Some("false"),
            ),
            (
                "quiet",
                args.quiet.then(|| "true".to_owned()),
                Some("false"),
            ),
            (
                "insecure",
                args.insecure.then(|| "true".to_owned()),
                Some("false"),
            ),
        ];
        options.extend(args.resources.toml_entries());
        let text = layers.to_toml(&options);
        redact_mqtt_password(&text, layers.raw("mqtt", args.mqtt.clone()))
    }

    /// Resolves every option from the command line, the environment and the file.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key, its value and where it came from.
    pub fn resolve(args: &GroundArgs, layers: &Layers) -> Result<GroundSettings, ConfigError> {
        layers.check_file_keys(FILE_KEYS)?;
        let listen = layers
            .get_with(
                "listen",
                args.listen.clone(),
                || DEFAULT_LISTEN.to_owned(),
                units::parse_host_port,
            )?
            .0;
        let node = layers
            .get_with(
                "node",
                args.node.clone(),
                || NodeName::new("ground").expect("valid"),
                |s| NodeName::new(s).map_err(|e| e.to_string()),
            )?
            .0;
        let source = layers.get_opt("source", args.source.clone())?;
        let frequency_hz = layers
            .get_with(
                "frequency",
                args.frequency.clone(),
                || 406_028_000,
                units::parse_hz_u64,
            )?
            .0;
        let radio = super::radio(
            layers,
            args.sample_rate.clone(),
            args.gain.clone(),
            args.ppm.clone(),
            args.bias_tee,
        )?;
        let settings = GroundSettings {
            listen,
            node,
            source,
            frequency_hz,
            sample_rate_hz: radio.sample_rate_hz,
            gain: radio.gain,
            ppm: radio.ppm,
            bias_tee: radio.bias_tee,
            sample_rate_given: radio.sample_rate_given,
            key: layers
                .get_with(
                    "key_file",
                    args.key_file.clone(),
                    || None,
                    |s| units::parse_key_file(s).map(Some),
                )?
                .0,
            tls_dir: layers.get_opt::<PathBuf>("tls", args.tls.clone())?,
            max_clients: layers
                .get_with(
                    "max_clients",
                    args.max_clients.clone(),
                    || 64,
                    |s| match s.parse::<usize>() {
                        Ok(n) if n > 0 => Ok(n),
                        _ => Err("must be a positive whole number".to_owned()),
                    },
                )?
                .0,
            max_handshakes_per_addr: layers
                .get_with(
                    "max_handshakes_per_addr",
                    args.max_handshakes_per_addr.clone(),
                    || 8,
                    |s| match s.parse::<usize>() {
                        Ok(n) if n > 0 => Ok(n),
                        _ => Err("must be a positive whole number".to_owned()),
                    },
                )?
                .0,
            output: layers.get("output", args.output.clone(), Format::Jsonl)?,
            output_file: layers.get_opt::<PathBuf>("output_file", args.output_file.clone())?,
            fsync: layers
                .get_with(
                    "fsync",
                    args.fsync.clone(),
                    || None,
                    |s| units::parse_interval(s).map(Some),
                )?
                .0,
            http: super::http_address(layers, args.http.clone())?,
            seconds: layers
                .get_with(
                    "seconds",
                    args.seconds.clone(),
                    || None,
                    |s| units::parse_seconds(s).map(Some),
                )?
                .0,
            mqtt: resolve_mqtt(args, layers)?,
            resources: super::resource_settings(layers, &args.resources)?,
            quiet: args.quiet || layers.get("quiet", None, false)?,
            insecure: args.insecure || layers.get("insecure", None, false)?,
        };
        if settings
            .source
            .as_ref()
            .is_some_and(|s| !matches!(s, SourceSpec::File(_)))
        {
            super::drone::check_tunable(
                "frequency",
                args.frequency.clone(),
                layers,
                settings.frequency_hz,
            )?;
        }
        Ok(settings)
    }
}

/// The `mqtt = "..."` line with the URL's password as `***` (a config printed for a
/// ticket must not carry it; put the password in `mqtt_password_file` instead).
fn redact_mqtt_password(text: &str, raw: Option<(String, super::Origin)>) -> String {
    let Some((raw, _)) = raw else {
        return text.to_owned();
    };
    let Ok(url) = parse_url(raw.trim()) else {
        // Unparsable: never echo it, it may hold a password.
        let quoted = toml::Value::String(raw).to_string();
        return text.replace(&quoted, "\"<not a valid MQTT URL: not shown>\"");
    };
    if url.password.is_none() {
        return text.to_owned();
    }
    let quoted = toml::Value::String(raw).to_string();
    let redacted = toml::Value::String(url.to_string()).to_string();
    text.replace(&quoted, &redacted)
}

fn resolve_mqtt(args: &GroundArgs, layers: &Layers) -> Result<Option<MqttSettings>, ConfigError> {
    let Some(url) = layers
        .get_with(
            "mqtt",
            args.mqtt.clone(),
            || None,
            |s| parse_url(s).map(Some).map_err(|e| e.to_string()),
        )
        .map_err(|e| match e {
            // The value may hold a password: show the URL redacted, or not at all.
            ConfigError::Invalid {
                key,
                value,
                origin,
                reason,
            } => ConfigError::Invalid {
                key,
                value: if value.contains('@') {
                    "<not shown: it may hold a password>".to_owned()
                } else {
                    value
                },
                origin,
                reason,
            },
            other => other,
        })?
        .0
    else {
        return Ok(None);
    };
    let mut m = MqttSettings::new(url);
    m.username = layers.get_opt("mqtt_username", args.mqtt_username.clone())?;
    m.password = layers
        .get_with(
            "mqtt_password_file",
            args.mqtt_password_file.clone(),
            || None,
            |path| {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read the password file: {e}"))?;
                Ok(Some(Secret::new(text.trim_end_matches(['\r', '\n']))))
            },
        )?
        .0;
    m.ca_file = layers.get_opt("mqtt_ca", args.mqtt_ca.clone())?;
    m.cert_file = layers.get_opt("mqtt_cert", args.mqtt_cert.clone())?;
    m.key_file = layers.get_opt("mqtt_key", args.mqtt_key.clone())?;
    m.client_id = layers.get_opt("mqtt_client_id", args.mqtt_client_id.clone())?;
    m.queue = layers
        .get_with(
            "mqtt_queue",
            args.mqtt_queue.clone(),
            || DEFAULT_QUEUE,
            |s| match s.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err("must be a positive whole number of messages".to_owned()),
            },
        )?
        .0;
    m.commands = args.mqtt_commands || layers.get("mqtt_commands", None, false)?;
    let origin_of = |key: &str, cli: &Option<String>| {
        layers
            .raw(key, cli.clone())
            .map_or(super::Origin::Default, |(_, o)| o)
    };
    if m.cert_file.is_some() != m.key_file.is_some() {
        let (key, value, cli) = match &m.cert_file {
            Some(c) => ("mqtt_cert", c, &args.mqtt_cert),
            None => (
                "mqtt_key",
                m.key_file.as_ref().expect("one is set"),
                &args.mqtt_key,
            ),
        };
        return Err(ConfigError::Invalid {
            key: key.into(),
            value: value.display().to_string(),
            origin: origin_of(key, cli),
            reason: "TLS client authentication needs both mqtt_cert and mqtt_key".into(),
        });
    }
    if !m.url.tls && (m.cert_file.is_some() || m.ca_file.is_some()) {
        return Err(ConfigError::Invalid {
            key: "mqtt".into(),
            value: m.url.to_string(),
            origin: origin_of("mqtt", &args.mqtt),
            reason: "mqtt_ca, mqtt_cert and mqtt_key need an mqtts:// URL".into(),
        });
    }
    Ok(Some(m))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn layers(env: &[(&str, &str)], file: Option<&str>) -> Layers {
        Layers::from_parts(env, file.map(|t| (Path::new("/etc/sarlink.toml"), t))).unwrap()
    }

    #[test]
    fn mqtt_options_are_layered_and_default_off() {
        let none = GroundSettings::resolve(&GroundArgs::default(), &layers(&[], None)).unwrap();
        assert!(none.mqtt.is_none(), "no MQTT unless asked");
        let l = layers(
            &[("SARLINK_MQTT", "mqtt://env-broker:1884")],
            Some("mqtt = \"mqtt://file-broker\"\nmqtt_queue = 500\nmqtt_commands = true"),
        );
        let m = GroundSettings::resolve(&GroundArgs::default(), &l)
            .unwrap()
            .mqtt
            .unwrap();
        assert_eq!((m.url.host.as_str(), m.url.port), ("env-broker", 1884));
        assert_eq!(m.queue, 500);
        assert!(m.commands);
        let args = GroundArgs {
            mqtt: Some("mqtts://cli-broker".into()),
            mqtt_queue: Some("7".into()),
            ..GroundArgs::default()
        };
        let m = GroundSettings::resolve(&args, &l).unwrap().mqtt.unwrap();
        assert_eq!(
            (m.url.host.as_str(), m.url.tls, m.queue),
            ("cli-broker", true, 7)
        );
    }

    #[test]
    fn print_config_never_shows_the_password() {
        let args = GroundArgs {
            mqtt: Some("mqtt://ops:hunter2@broker:1883".into()),
            ..GroundArgs::default()
        };
        let text = GroundSettings::to_toml(&args, &layers(&[], None));
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("mqtt = \"mqtt://ops:***@broker:1883\"  # from command line"),
            "{text}"
        );
        // From the environment too, and when the URL does not even parse.
        let l = layers(&[("SARLINK_MQTT", "mqtt://ops:hunter2@broker:99999")], None);
        let text = GroundSettings::to_toml(&GroundArgs::default(), &l);
        assert!(!text.contains("hunter2"), "{text}");
        let err = GroundSettings::resolve(&GroundArgs::default(), &l).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("SARLINK_MQTT"), "{err}");
    }

    #[test]
    fn bad_mqtt_options_are_errors_naming_the_key() {
        let err =
            |args: GroundArgs| GroundSettings::resolve(&args, &layers(&[], None)).unwrap_err();
        let e = err(GroundArgs {
            mqtt: Some("http://broker".into()),
            ..GroundArgs::default()
        });
        assert!(
            matches!(&e, ConfigError::Invalid { key, .. } if key == "mqtt"),
            "{e}"
        );
        let e = err(GroundArgs {
            mqtt: Some("mqtts://broker".into()),
            mqtt_cert: Some("client.pem".into()),
            ..GroundArgs::default()
        });
        assert!(
            matches!(&e, ConfigError::Invalid { key, origin: super::super::Origin::Cli, .. } if key == "mqtt_cert"),
            "{e}"
        );
        let e = err(GroundArgs {
            mqtt: Some("mqtt://broker".into()),
            mqtt_ca: Some("ca.pem".into()),
            ..GroundArgs::default()
        });
        assert!(
            matches!(&e, ConfigError::Invalid { key, .. } if key == "mqtt"),
            "{e}"
        );
        let e = err(GroundArgs {
            mqtt: Some("mqtt://broker".into()),
            mqtt_queue: Some("0".into()),
            ..GroundArgs::default()
        });
        assert!(
            matches!(&e, ConfigError::Invalid { key, .. } if key == "mqtt_queue"),
            "{e}"
        );
        let e = err(GroundArgs {
            mqtt: Some("mqtt://broker".into()),
            mqtt_password_file: Some("/nonexistent/sarlink-password".into()),
            ..GroundArgs::default()
        });
        assert!(
            matches!(&e, ConfigError::Invalid { key, .. } if key == "mqtt_password_file"),
            "{e}"
        );
    }
}
