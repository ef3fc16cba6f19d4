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
    #[arg(long)]
    pub frequency: Option<String>,
    /// Sample rate for sources that can set it, e.g. 2.4M [default: 1.024M]
    #[arg(long)]
    pub sample_rate: Option<String>,
    /// Tuner gain in dB, or `auto` [default: auto]
    #[arg(long)]
    pub gain: Option<String>,
    /// RSSI reports per second [default: 10]
    #[arg(long)]
    pub rate: Option<String>,
    /// File holding the pre-shared key (at least 16 bytes)
    #[arg(long)]
    pub key_file: Option<String>,
    /// Payloads above this many bytes are LZ4-compressed [default: 1024]
    #[arg(long)]
    pub compression_threshold: Option<String>,
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
    /// No status line on stderr
    #[arg(long, short)]
    pub quiet: bool,
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
    "rate",
    "key_file",
    "compression_threshold",
    "calibration_db",
    "seconds",
    "output",
    "output_file",
    "http",
    "metrics",
    "quiet",
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
    /// RSSI reports per second.
    pub rate_hz: f32,
    /// Pre-shared key.
    pub key: Option<PreSharedKey>,
    /// LZ4 threshold in bytes.
    pub compression_threshold: usize,
    /// dBFS -> dBm offset.
    pub calibration_db: Option<f32>,
    /// Run time limit.
    pub seconds: Option<f64>,
    /// Flight recorder format.
    pub output: Format,
    /// Flight recorder file (none when `None`).
    pub output_file: Option<PathBuf>,
    /// Address of the HTTP endpoint (dashboard, API, `/metrics`); none when `None`.
    pub http: Option<String>,
    /// No status line.
    pub quiet: bool,
}

impl DroneSettings {
    /// The settings as `key = value` lines (the key file's contents are never shown).
    pub fn describe(&self) -> String {
        format!(
            "connect = {:?}\nnode = {:?}\nsource = {:?}\nfrequency_hz = {:?}\nsample_rate_hz = {}\ngain = {:?}\nrate_hz = {}\nkey = {}\ncompression_threshold = {}\ncalibration_db = {:?}\nseconds = {:?}\noutput = {:?}\noutput_file = {:?}\nhttp = {:?}\nquiet = {}",
            self.connect,
            self.node.as_str(),
            self.source.to_string(),
            self.frequency_hz,
            self.sample_rate_hz,
            self.gain,
            self.rate_hz,
            if self.key.is_some() { "set" } else { "none" },
            self.compression_threshold,
            self.calibration_db,
            self.seconds,
            self.output,
            self.output_file,
            self.http,
            self.quiet
        )
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
        let sample_rate_hz = layers
            .get_with(
                "sample_rate",
                cli.sample_rate.clone(),
                || 1_024_000,
                units::parse_sample_rate,
            )?
            .0;
        let gain = layers
            .get_with("gain", cli.gain.clone(), || Gain::Auto, units::parse_gain)?
            .0;
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
        let compression_threshold = layers.get(
            "compression_threshold",
            cli.compression_threshold.clone(),
            1024usize,
        )?;
        let calibration_db = layers.get_opt::<f32>("calibration_db", cli.calibration_db.clone())?;
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
        let quiet = cli.quiet || layers.get("quiet", None, false)?;
        Ok(DroneSettings {
            connect,
            node,
            source,
            frequency_hz,
            sample_rate_hz,
            gain,
            rate_hz,
            key,
            compression_threshold,
            calibration_db,
            seconds,
            output,
            output_file,
            http,
            quiet,
        })
    }
}
