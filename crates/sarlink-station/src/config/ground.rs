//! The ground station's options: command line, `SARLINK_*` environment, TOML file,
//! defaults.

use std::path::PathBuf;

use sarlink_link::PreSharedKey;
use sarlink_schema::NodeName;
use sarlink_sdr::Gain;

use super::{ConfigError, Layers};
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
    /// Serve Prometheus metrics at http://ADDR/metrics
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Stop after this many seconds [default: run until SIGINT/SIGTERM]
    #[arg(long)]
    pub seconds: Option<String>,
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
    "metrics",
    "seconds",
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
    /// Metrics address.
    pub metrics: Option<String>,
    /// Run time limit.
    pub seconds: Option<f64>,
    /// No status line.
    pub quiet: bool,
    /// Plaintext without a key was asked for explicitly.
    pub insecure: bool,
}

impl GroundSettings {
    /// The resolved options as TOML that `--config` accepts unchanged, each with its origin
    /// as a comment (the key file's path, never its contents).
    pub fn to_toml(args: &GroundArgs, layers: &Layers) -> String {
        layers.to_toml(&[
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
            ("metrics", args.metrics.clone(), None),
            ("seconds", args.seconds.clone(), None),
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
        ])
    }

    /// Resolves every option from the command line, the environment and the file.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key, its value and where it came from.
    pub fn resolve(args: &GroundArgs, layers: &Layers) -> Result<GroundSettings, ConfigError> {
        layers.check_file_keys(FILE_KEYS)?;
        let settings = GroundSettings {
            listen: layers
                .get_with(
                    "listen",
                    args.listen.clone(),
                    || DEFAULT_LISTEN.to_owned(),
                    units::parse_host_port,
                )?
                .0,
            node: layers
                .get_with(
                    "node",
                    args.node.clone(),
                    || NodeName::new("ground").expect("valid"),
                    |s| NodeName::new(s).map_err(|e| e.to_string()),
                )?
                .0,
            source: layers.get_opt("source", args.source.clone())?,
            frequency_hz: layers
                .get_with(
                    "frequency",
                    args.frequency.clone(),
                    || 406_028_000,
                    units::parse_hz_u64,
                )?
                .0,
            sample_rate_hz: layers
                .get_with(
                    "sample_rate",
                    args.sample_rate.clone(),
                    || 1_024_000,
                    units::parse_sample_rate,
                )?
                .0,
            gain: layers
                .get_with("gain", args.gain.clone(), || Gain::Auto, units::parse_gain)?
                .0,
            ppm: layers
                .get_with(
                    "ppm",
                    args.ppm.clone(),
                    || None,
                    |s| units::parse_ppm(s).map(Some),
                )?
                .0,
            bias_tee: args.bias_tee || layers.get("bias_tee", None, false)?,
            sample_rate_given: layers
                .raw("sample_rate", args.sample_rate.clone())
                .is_some(),
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
            metrics: layers
                .get_with(
                    "metrics",
                    args.metrics.clone(),
                    || None,
                    |s| units::parse_host_port(s).map(Some),
                )?
                .0,
            seconds: layers
                .get_with(
                    "seconds",
                    args.seconds.clone(),
                    || None,
                    |s| units::parse_seconds(s).map(Some),
                )?
                .0,
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
