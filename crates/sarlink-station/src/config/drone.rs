//! The drone's options: command line, `SARLINK_*` environment, TOML file, defaults.

use std::path::PathBuf;

use sarlink_link::PreSharedKey;
use sarlink_schema::NodeName;
use sarlink_sdr::Gain;

use super::{ConfigError, Layers};
use crate::drone::RATE_RANGE_HZ;
use crate::output::Format;
use crate::source::SourceSpec;
use crate::units;
use crate::vehicle::{MavlinkUrl, VehicleRules};

/// The default `allowed_modes`, as the option takes them.
const DEFAULT_ALLOWED_MODES: &str = "GUIDED,AUTO,LOITER,POSHOLD,BRAKE,CIRCLE,ALT_HOLD,OFFBOARD,AUTO.MISSION,AUTO.LOITER,POSCTL,ALTCTL";

/// Default ground station address.
pub const DEFAULT_CONNECT: &str = "127.0.0.1:7355";
/// Default beacon frequency: 406.028 MHz, a COSPAS-SARSAT distress channel.
pub const DEFAULT_FREQUENCY_HZ: u64 = 406_028_000;

/// The drone's command line. Every option can also be given as `SARLINK_<OPTION>` in the
/// environment or as `option = value` in the `--config` TOML file; the command line wins,
/// then the environment, then the file, then the default.
#[derive(Debug, Clone, Default, clap::Parser)]
#[command(
    name = "sarlink-drone",
    version,
    about = "Measure a distress beacon's RSSI and stream it to a sarlink ground station"
)]
pub struct DroneArgs {
    /// Ground station address, HOST:PORT [default: 127.0.0.1:7355]
    #[arg(long, value_name = "HOST:PORT")]
    pub connect: Option<String>,
    /// This drone's node name (1-64 bytes) [default: drone]
    #[arg(long)]
    pub node: Option<String>,
    /// I/Q source: sim, sim:METRES, file:PATH, rtl_tcp:HOST:PORT, rtlsdr or rtlsdr:INDEX [default: sim]
    #[arg(long)]
    pub source: Option<String>,
    /// Beacon frequency, e.g. 406.028e6 or 121.5M [default: 406.028 MHz; a recording keeps its own]
    #[arg(long, short = 'f')]
    pub frequency: Option<String>,
    /// Sample rate for sources that can set it, e.g. 2.4M [default: 1.024M]
    #[arg(long, short = 's')]
    pub sample_rate: Option<String>,
    /// Tuner gain in dB (38.6, or 0dB for a manual 0 dB), or `auto`; a bare 0 is refused as ambiguous [default: auto]
    #[arg(long, short = 'g')]
    pub gain: Option<String>,
    /// Frequency correction of the tuner in ppm, sent to rtl_tcp or the dongle only when
    /// given (otherwise an rtl_tcp server's own `-P` stays in force) [default: not sent]
    #[arg(long, short = 'p', allow_negative_numbers = true)]
    pub ppm: Option<String>,
    /// Power an active antenna through the dongle's bias tee (rtl_tcp; USB where supported)
    #[arg(long)]
    pub bias_tee: bool,
    /// RSSI reports per second [default: 10]
    #[arg(long)]
    pub rate: Option<String>,
    /// File holding the pre-shared key (at least 16 bytes)
    #[arg(long)]
    pub key_file: Option<String>,
    /// TLS: directory with the fleet's ca.pem and this node's NODE.pem and NODE.key (from
    /// `sarlink-ground ca issue NODE`)
    #[arg(long, value_name = "DIR")]
    pub tls: Option<String>,
    /// TLS: the name the ground's certificate must carry [default: ground]
    #[arg(long)]
    pub ground_name: Option<String>,
    /// Payloads above this many bytes are LZ4-compressed [default: 1024]
    #[arg(long)]
    pub compression_threshold: Option<String>,
    /// Smooth RSSI and noise across reports with this EWMA weight of the newest (0 to 1);
    /// every record then says so (`smoothing`) [default: no smoothing]
    #[arg(long, value_name = "ALPHA")]
    pub smoothing: Option<String>,
    /// dBm = dBFS + this offset at the configured gain; without it RSSI is sent in dBFS
    #[arg(long, allow_negative_numbers = true)]
    pub calibration_db: Option<String>,
    /// Stop after this many seconds [default: run until SIGINT/SIGTERM]
    #[arg(long)]
    pub seconds: Option<String>,
    /// Flight recorder format: jsonl, csv or none [default: jsonl when --output-file is given]
    #[arg(long)]
    pub output: Option<String>,
    /// Flight recorder: append the drone's and the ground's records and every decision here
    #[arg(long, value_name = "FILE")]
    pub output_file: Option<String>,
    /// Serve the dashboard (/), /api/state, /api/live and Prometheus /metrics over HTTP at ADDR (`--metrics` is an alias)
    #[arg(long, value_name = "ADDR", visible_alias = "metrics")]
    pub http: Option<String>,
    /// Flight controller over MAVLink 2: serial:/dev/ttyACM0:115200, udpin:0.0.0.0:14550,
    /// udpout:HOST:PORT, tcpout:HOST:PORT, or sim (a simulated vehicle) [default: none, and
    /// no vehicle rules]
    #[arg(long, value_name = "URL")]
    pub mavlink: Option<String>,
    /// The drone's MAVLink component id (it takes the vehicle's system id) [default: 191]
    #[arg(long, value_name = "ID")]
    pub mavlink_component: Option<String>,
    /// Bytes per second the drone may send to the flight controller; RSSI values are thinned
    /// first [default: 1000]
    #[arg(long, value_name = "BYTES")]
    pub mavlink_budget: Option<String>,
    /// Below this battery percentage ground commands that alter measuring are refused
    /// (`battery`) [default: 25]
    #[arg(long, value_name = "PERCENT")]
    pub battery_min: Option<String>,
    /// Flight modes in which the ground may alter measuring, comma-separated (ArduCopter or
    /// PX4 names); in any other, `flight_mode` refuses
    /// [default: GUIDED,AUTO,LOITER,POSHOLD,BRAKE,CIRCLE,ALT_HOLD,OFFBOARD,AUTO.MISSION,AUTO.LOITER,POSCTL,ALTCTL]
    #[arg(long, value_name = "MODES")]
    pub allowed_modes: Option<String>,
    /// Resource monitoring and degradation.
    #[command(flatten)]
    pub resources: super::ResourceArgs,
    /// No status line on stderr
    #[arg(long, short)]
    pub quiet: bool,
    /// Run the link without TLS and without a key (unauthenticated, unprotected; warns)
    #[arg(long)]
    pub insecure: bool,
    /// Print the resolved configuration (and where each value came from) and exit
    #[arg(long)]
    pub print_config: bool,
    /// TOML file with any of the options above
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Keys a configuration file may hold.
pub(super) const FILE_KEYS: &[&str] = &[
    "connect",
    "node",
    "source",
    "frequency",
    "sample_rate",
    "gain",
    "ppm",
    "bias_tee",
    "rate",
    "key_file",
    "tls",
    "ground_name",
    "compression_threshold",
    "calibration_db",
    "smoothing",
    "seconds",
    "output",
    "output_file",
    "http",
    "metrics",
    "mavlink",
    "mavlink_component",
    "mavlink_budget",
    "battery_min",
    "allowed_modes",
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

/// The drone's resolved settings.
#[derive(Debug, Clone)]
pub struct DroneSettings {
    /// Ground station, HOST:PORT.
    pub connect: String,
    /// Node name.
    pub node: NodeName,
    /// I/Q source.
    pub source: SourceSpec,
    /// Beacon frequency (`None`: a recording's own centre; a tunable source: the default).
    pub frequency_hz: Option<u64>,
    /// Sample rate for sources that can set it.
    pub sample_rate_hz: u32,
    /// Tuner gain.
    pub gain: Gain,
    /// Frequency correction, ppm (sent only when given).
    pub ppm: Option<i32>,
    /// Power an active antenna through the bias tee.
    pub bias_tee: bool,
    /// Whether the sample rate was given (a recording then uses it instead of its own).
    pub sample_rate_given: bool,
    /// RSSI reports per second.
    pub rate_hz: f32,
    /// Pre-shared key.
    pub key: Option<PreSharedKey>,
    /// TLS directory (ca.pem, NODE.pem, NODE.key).
    pub tls_dir: Option<PathBuf>,
    /// The name the ground's certificate must carry.
    pub ground_name: String,
    /// LZ4 threshold in bytes.
    pub compression_threshold: usize,
    /// dBFS -> dBm offset.
    pub calibration_db: Option<f32>,
    /// EWMA smoothing weight, `None` for none.
    pub smoothing: Option<f32>,
    /// Run time limit.
    pub seconds: Option<f64>,
    /// Flight recorder format.
    pub output: Format,
    /// Flight recorder file (none when `None`).
    pub output_file: Option<PathBuf>,
    /// Address of the HTTP endpoint (dashboard, API, `/metrics`); none when `None`.
    pub http: Option<String>,
    /// The flight controller (`None`: none, and no vehicle rules).
    pub mavlink: Option<MavlinkUrl>,
    /// The drone's MAVLink component id.
    pub mavlink_component: u8,
    /// Bytes per second the drone may send over MAVLink.
    pub mavlink_budget: u32,
    /// The vehicle rules (battery threshold, allowed modes).
    pub vehicle_rules: VehicleRules,
    /// Resource sampling: interval and the /proc and /sys roots.
    pub resources: crate::monitoring::ResourceSettings,
    /// No status line.
    pub quiet: bool,
    /// Plaintext without a key was asked for explicitly.
    pub insecure: bool,
}

impl DroneSettings {
    /// The resolved options as TOML that `--config` accepts unchanged, each with its origin
    /// as a comment (the key file's path, never its contents).
    pub fn to_toml(args: &DroneArgs, layers: &Layers) -> String {
        let mut options = vec![
            ("connect", args.connect.clone(), Some(DEFAULT_CONNECT)),
            ("node", args.node.clone(), Some("drone")),
            ("source", args.source.clone(), Some("sim")),
            ("frequency", args.frequency.clone(), None),
            ("sample_rate", args.sample_rate.clone(), Some("1.024M")),
            ("gain", args.gain.clone(), Some("auto")),
            ("ppm", args.ppm.clone(), None),
            (
                "bias_tee",
                args.bias_tee.then(|| "true".to_owned()),
                Some("false"),
            ),
            ("rate", args.rate.clone(), Some("10")),
            ("key_file", args.key_file.clone(), None),
            ("tls", args.tls.clone(), None),
            ("ground_name", args.ground_name.clone(), Some("ground")),
            (
                "compression_threshold",
                args.compression_threshold.clone(),
                Some("1024"),
            ),
            ("calibration_db", args.calibration_db.clone(), None),
            ("smoothing", args.smoothing.clone(), None),
            ("seconds", args.seconds.clone(), None),
            ("output", args.output.clone(), Some("jsonl")),
            ("output_file", args.output_file.clone(), None),
            ("http", args.http.clone(), None),
            ("mavlink", args.mavlink.clone(), None),
            (
                "mavlink_component",
                args.mavlink_component.clone(),
                Some("191"),
            ),
            ("mavlink_budget", args.mavlink_budget.clone(), Some("1000")),
            ("battery_min", args.battery_min.clone(), Some("25")),
            (
                "allowed_modes",
                args.allowed_modes.clone(),
                Some(DEFAULT_ALLOWED_MODES),
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
        layers.to_toml(&options)
    }

    /// Resolves every option from the command line, the environment and the file.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key, its value and where it came from.
    pub fn resolve(cli: &DroneArgs, layers: &Layers) -> Result<DroneSettings, ConfigError> {
        layers.check_file_keys(FILE_KEYS)?;
        let connect = layers
            .get_with(
                "connect",
                cli.connect.clone(),
                || DEFAULT_CONNECT.to_owned(),
                units::parse_host_port,
            )?
            .0;
        let node = layers
            .get_with(
                "node",
                cli.node.clone(),
                || NodeName::new("drone").expect("valid"),
                |s| NodeName::new(s).map_err(|e| e.to_string()),
            )?
            .0;
        let source = layers.get("source", cli.source.clone(), SourceSpec::Sim(None))?;
        let frequency_hz = layers
            .get_with(
                "frequency",
                cli.frequency.clone(),
                || None,
                |s| units::parse_hz_u64(s).map(Some),
            )?
            .0;
        let super::Radio {
            sample_rate_hz,
            sample_rate_given,
            gain,
            ppm,
            bias_tee,
        } = super::radio(
            layers,
            cli.sample_rate.clone(),
            cli.gain.clone(),
            cli.ppm.clone(),
            cli.bias_tee,
        )?;
        if let (Some(hz), false) = (frequency_hz, matches!(source, SourceSpec::File(_))) {
            check_tunable("frequency", cli.frequency.clone(), layers, hz)?;
        }
        let rate_hz = layers
            .get_with(
                "rate",
                cli.rate.clone(),
                || 10.0,
                |s| {
                    let hz: f32 = s.parse().map_err(|_| "not a number".to_owned())?;
                    if RATE_RANGE_HZ.contains(&hz) {
                        Ok(hz)
                    } else {
                        Err("must be 0.1 to 50 reports per second".to_owned())
                    }
                },
            )?
            .0;
        let key = layers
            .get_with(
                "key_file",
                cli.key_file.clone(),
                || None,
                |s| units::parse_key_file(s).map(Some),
            )?
            .0;
        let tls_dir = layers.get_opt::<PathBuf>("tls", cli.tls.clone())?;
        let ground_name =
            layers.get("ground_name", cli.ground_name.clone(), "ground".to_owned())?;
        let compression_threshold = layers.get(
            "compression_threshold",
            cli.compression_threshold.clone(),
            1024usize,
        )?;
        let calibration_db = layers.get_opt::<f32>("calibration_db", cli.calibration_db.clone())?;
        let smoothing = layers
            .get_with(
                "smoothing",
                cli.smoothing.clone(),
                || None,
                |s| match s.parse::<f32>() {
                    Ok(a) if a > 0.0 && a <= 1.0 => Ok(Some(a)),
                    _ => Err("must be a weight above 0 and at most 1, e.g. 0.3".to_owned()),
                },
            )?
            .0;
        let seconds = layers
            .get_with(
                "seconds",
                cli.seconds.clone(),
                || None,
                |s| units::parse_seconds(s).map(Some),
            )?
            .0;
        let output_file = layers.get_opt::<PathBuf>("output_file", cli.output_file.clone())?;
        let output = layers.get("output", cli.output.clone(), Format::Jsonl)?;
        let http = super::http_address(layers, cli.http.clone())?;
        let mavlink = layers.get_opt::<MavlinkUrl>("mavlink", cli.mavlink.clone())?;
        let mavlink_component = layers
            .get_with(
                "mavlink_component",
                cli.mavlink_component.clone(),
                || crate::vehicle::DEFAULT_COMPONENT_ID,
                |s| match s.parse::<u8>() {
                    Ok(id) if id > 0 => Ok(id),
                    _ => Err("must be a component id 1-255".to_owned()),
                },
            )?
            .0;
        let mavlink_budget = layers
            .get_with(
                "mavlink_budget",
                cli.mavlink_budget.clone(),
                || crate::vehicle::DEFAULT_BYTE_BUDGET,
                |s| match s.parse::<u32>() {
                    Ok(b) if b >= 100 => Ok(b),
                    _ => Err("must be at least 100 bytes per second".to_owned()),
                },
            )?
            .0;
        let battery_min_pct = layers
            .get_with(
                "battery_min",
                cli.battery_min.clone(),
                || 25,
                |s| match s.parse::<u8>() {
                    Ok(p) if p <= 100 => Ok(p),
                    _ => Err("must be a percentage 0-100".to_owned()),
                },
            )?
            .0;
        let allowed_modes = layers
            .get_with(
                "allowed_modes",
                cli.allowed_modes.clone(),
                || VehicleRules::default().allowed_modes,
                |s| {
                    let modes: Vec<String> = s
                        .split(',')
                        .map(|m| m.trim().to_ascii_uppercase())
                        .filter(|m| !m.is_empty())
                        .collect();
                    if modes.is_empty() {
                        Err("name at least one flight mode".to_owned())
                    } else {
                        Ok(modes)
                    }
                },
            )?
            .0;
        let vehicle_rules = VehicleRules {
            battery_min_pct,
            allowed_modes,
        };
        let quiet = cli.quiet || layers.get("quiet", None, false)?;
        let insecure = cli.insecure || layers.get("insecure", None, false)?;
        let resources = super::resource_settings(layers, &cli.resources)?;
        Ok(DroneSettings {
            connect,
            node,
            source,
            frequency_hz,
            sample_rate_hz,
            gain,
            ppm,
            bias_tee,
            sample_rate_given,
            rate_hz,
            key,
            tls_dir,
            ground_name,
            compression_threshold,
            calibration_db,
            smoothing,
            seconds,
            output,
            output_file,
            http,
            mavlink,
            mavlink_component,
            mavlink_budget,
            vehicle_rules,
            resources,
            quiet,
            insecure,
        })
    }
}

/// Refuses a beacon frequency an RTL-SDR cannot be tuned to (R820T/R828D: 24-1766 MHz),
/// naming the key and where the value came from.
pub(super) fn check_tunable(
    key: &str,
    cli: Option<String>,
    layers: &Layers,
    hz: u64,
) -> Result<(), ConfigError> {
    if crate::drone::TUNABLE_HZ.contains(&hz) {
        return Ok(());
    }
    let (value, origin) = layers
        .raw(key, cli)
        .unwrap_or_else(|| (hz.to_string(), super::Origin::Default));
    Err(ConfigError::Invalid {
        key: key.to_owned(),
        value,
        origin,
        reason: format!(
            "{:.3} MHz is outside what an RTL-SDR tunes (24-1766 MHz)",
            hz as f64 / 1e6
        ),
    })
}
