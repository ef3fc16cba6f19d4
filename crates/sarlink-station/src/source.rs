//! `--source` for the sarlink binaries, and opening it: `sim` / `sim:METRES`, `file:PATH`, `rtl_tcp:HOST:PORT`,
//! `rtlsdr` / `rtlsdr:INDEX` (the last only in builds with the GPL `rtlsdr` feature).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use sarlink_sdr::source::file::{FileOptions, FileSource, OpenError as FileOpenError};
use sarlink_sdr::source::rtl_tcp::{RtlTcpConfig, RtlTcpSource};
use sarlink_sdr::source::sim::{SimConfig, Simulator};
use sarlink_sdr::{Gain, IqSource};

/// Where I/Q samples come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// The built-in beacon simulator (no hardware), the beacon this many metres away
    /// (`sim:800`; plain `sim` is 1 km).
    Sim(Option<f64>),
    /// A recording: raw cu8 (rtl_433 file-name convention) or a SigMF `.sigmf-meta`.
    File(PathBuf),
    /// An rtl_tcp server.
    RtlTcp(String),
    /// An RTL-SDR dongle over USB, by index.
    RtlSdr(u32),
}

impl FromStr for SourceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "sim" {
            return Ok(SourceSpec::Sim(None));
        }
        if let Some(m) = s.strip_prefix("sim:") {
            return match m.parse::<f64>() {
                Ok(d) if d.is_finite() && d > 0.0 && d <= 1e6 => Ok(SourceSpec::Sim(Some(d))),
                _ => Err(format!(
                    "sim:{m}: the beacon's distance must be 0 to 1000000 metres, e.g. sim:800"
                )),
            };
        }
        if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err("file: needs a path, e.g. file:capture_433.92M_250k.cu8".into());
            }
            return Ok(SourceSpec::File(PathBuf::from(path)));
        }
        if let Some(addr) = s.strip_prefix("rtl_tcp:") {
            if !addr.contains(':') {
                return Err("rtl_tcp: needs HOST:PORT, e.g. rtl_tcp:127.0.0.1:1234".into());
            }
            return Ok(SourceSpec::RtlTcp(addr.to_owned()));
        }
        if s == "rtlsdr" {
            return Ok(SourceSpec::RtlSdr(0));
        }
        if let Some(index) = s.strip_prefix("rtlsdr:") {
            return index
                .parse()
                .map(SourceSpec::RtlSdr)
                .map_err(|_| format!("rtlsdr:{index}: the index must be a number"));
        }
        Err(format!(
            "{s:?} is not a source: use sim, file:PATH, rtl_tcp:HOST:PORT or rtlsdr[:INDEX]"
        ))
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Sim(None) => f.write_str("sim"),
            SourceSpec::Sim(Some(d)) => write!(f, "sim:{d}"),
            SourceSpec::File(p) => write!(f, "file:{}", p.display()),
            SourceSpec::RtlTcp(a) => write!(f, "rtl_tcp:{a}"),
            SourceSpec::RtlSdr(i) => write!(f, "rtlsdr:{i}"),
        }
    }
}

/// Receiver settings that apply to whichever source is opened.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// The beacon's frequency; `None` keeps a recording's own centre.
    pub beacon_hz: Option<u64>,
    /// Sample rate for sources that can set it.
    pub sample_rate_hz: u32,
    /// Whether the sample rate was given explicitly: a recording then takes it instead of
    /// the one in its name or metadata (with a warning when they differ).
    pub sample_rate_given: bool,
    /// Tuner gain.
    pub gain: Gain,
    /// Frequency correction in ppm, sent only when given.
    pub ppm: Option<i32>,
    /// Power an active antenna through the bias tee.
    pub bias_tee: bool,
    /// How far below the beacon a tunable receiver is tuned, so the beacon is clear of the
    /// DC spike at the centre.
    pub tuning_offset_hz: f64,
    /// Seed of the simulator.
    pub seed: u64,
}

/// An opened source and where the beacon sits in its band.
pub struct Opened {
    /// The source.
    pub source: Box<dyn IqSource + Send>,
    /// The beacon's offset from the source's centre frequency.
    pub channel_offset_hz: f64,
    /// The simulator, when the source is one, so a caller can move the beacon.
    pub is_sim: bool,
    /// What the caller should hear about the source (a recording's conflicting
    /// parameters); also logged.
    pub warnings: Vec<String>,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("channel_offset_hz", &self.channel_offset_hz)
            .field("is_sim", &self.is_sim)
            .finish()
    }
}

/// A source that could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The recording cannot be read.
    #[error("recording {path}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The rtl_tcp server cannot be reached or spoke wrongly.
    #[error("rtl_tcp server {addr}")]
    RtlTcp {
        /// HOST:PORT.
        addr: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The USB dongle cannot be opened.
    #[error("RTL-SDR dongle {index}")]
    RtlSdr {
        /// Its index.
        index: u32,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// This build has no USB support.
    #[error(
        "this build has no USB RTL-SDR support: rebuild with `--features rtlsdr` (links GPL librtlsdr), or use rtl_tcp:HOST:PORT"
    )]
    NoUsbSupport,
    /// The frequency is outside what the receiver can tune.
    #[error("{hz} Hz is beyond an RTL-SDR's range")]
    OutOfRange {
        /// The frequency asked for.
        hz: u64,
    },
}

/// Opens `spec` with `tuning`.
///
/// # Errors
/// [`OpenError`] naming the source and what went wrong (file missing, server unreachable,
/// no device, feature not built).
pub fn open(spec: &SourceSpec, tuning: &Tuning) -> Result<Opened, OpenError> {
    match spec {
        SourceSpec::Sim(distance_m) => {
            let beacon = tuning.beacon_hz.unwrap_or(406_028_000);
            let center = (beacon as f64 - tuning.tuning_offset_hz).round() as u64;
            let config = SimConfig {
                sample_rate_hz: tuning.sample_rate_hz,
                center_frequency_hz: center,
                beacon_offset_hz: tuning.tuning_offset_hz,
                seed: tuning.seed,
                distance_m: distance_m.unwrap_or(SimConfig::default().distance_m),
                ..SimConfig::default()
            };
            Ok(Opened {
                source: Box::new(Simulator::new(config)),
                channel_offset_hz: tuning.tuning_offset_hz,
                is_sim: true,
                warnings: Vec::new(),
            })
        }
        SourceSpec::File(path) => {
            let mut options = FileOptions {
                sample_rate_hz: tuning.sample_rate_given.then_some(tuning.sample_rate_hz),
                center_frequency_hz: None,
            };
            let file = match FileSource::open(path, &options) {
                // A name without a centre (`capture.cu8`): the beacon's frequency is it.
                Err(FileOpenError::NameWithoutParameters { .. }) if tuning.beacon_hz.is_some() => {
                    options.center_frequency_hz = tuning.beacon_hz;
                    FileSource::open(path, &options)
                }
                other => other,
            };
            let file = file.map_err(|e| OpenError::File {
                path: path.clone(),
                source: Box::new(e),
            })?;
            let warnings: Vec<String> = file.warnings().iter().map(ToString::to_string).collect();
            for w in &warnings {
                tracing::warn!(recording = %path.display(), "{w}");
            }
            let file = file.paced(true).looping(true);
            let center = file.center_frequency_hz();
            let offset = tuning.beacon_hz.map_or(0.0, |b| b as f64 - center as f64);
            Ok(Opened {
                source: Box::new(file),
                channel_offset_hz: offset,
                is_sim: false,
                warnings,
            })
        }
        SourceSpec::RtlTcp(addr) => {
            let beacon = tuning.beacon_hz.unwrap_or(406_028_000);
            let center = (beacon as f64 - tuning.tuning_offset_hz).round() as u64;
            let config = RtlTcpConfig {
                center_frequency_hz: center,
                sample_rate_hz: tuning.sample_rate_hz,
                gain: tuning.gain,
                ppm: tuning.ppm,
                bias_tee: tuning.bias_tee.then_some(true),
                ..RtlTcpConfig::default()
            };
            let src =
                RtlTcpSource::connect(addr.as_str(), config).map_err(|e| OpenError::RtlTcp {
                    addr: addr.clone(),
                    source: Box::new(e),
                })?;
            Ok(Opened {
                source: Box::new(src),
                channel_offset_hz: tuning.tuning_offset_hz,
                is_sim: false,
                warnings: Vec::new(),
            })
        }
        #[cfg(feature = "rtlsdr")]
        SourceSpec::RtlSdr(index) => {
            use sarlink_sdr::source::rtlsdr::{RtlSdrConfig, RtlSdrSource};
            let beacon = tuning.beacon_hz.unwrap_or(406_028_000);
            let center = (beacon as f64 - tuning.tuning_offset_hz).round() as u64;
            let center = u32::try_from(center).map_err(|_| OpenError::OutOfRange { hz: center })?;
            let config = RtlSdrConfig {
                device_index: *index,
                center_frequency_hz: center,
                sample_rate_hz: tuning.sample_rate_hz,
                gain: tuning.gain,
                ppm: tuning.ppm,
                bias_tee: tuning.bias_tee.then_some(true),
                ..RtlSdrConfig::default()
            };
            let src = RtlSdrSource::open(config).map_err(|e| OpenError::RtlSdr {
                index: *index,
                source: Box::new(e),
            })?;
            Ok(Opened {
                source: Box::new(src),
                channel_offset_hz: tuning.tuning_offset_hz,
                is_sim: false,
                warnings: Vec::new(),
            })
        }
        #[cfg(not(feature = "rtlsdr"))]
        SourceSpec::RtlSdr(_) => Err(OpenError::NoUsbSupport),
    }
}

#[cfg(test)]
mod source_tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        for s in [
            "sim",
            "sim:800",
            "file:/tmp/x_433.92M_250k.cu8",
            "rtl_tcp:127.0.0.1:1234",
            "rtlsdr:1",
        ] {
            assert_eq!(s.parse::<SourceSpec>().unwrap().to_string(), s);
        }
        assert_eq!("rtlsdr".parse(), Ok(SourceSpec::RtlSdr(0)));
        for bad in [
            "",
            "file:",
            "rtl_tcp:host",
            "rtlsdr:x",
            "usb",
            "sim:-1",
            "sim:x",
            "sim:inf",
        ] {
            assert!(bad.parse::<SourceSpec>().is_err(), "{bad}");
        }
    }
}
