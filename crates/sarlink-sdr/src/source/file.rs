//! Recordings: raw cu8 files named in rtl_433's convention, and SigMF recordings.
//!
//! A raw file `name_433.92M_250k.cu8` holds interleaved unsigned 8-bit I/Q at 250 kS/s tuned
//! to 433.92 MHz. [`parse_file_name`] reads those numbers; [`FileSource::open_cu8_with`] takes
//! them explicitly instead. A SigMF recording is a `.sigmf-meta` JSON file beside a
//! `.sigmf-data` file; [`FileSource::open_sigmf`] reads `global.core:datatype` (`cu8`,
//! `ci16_le` or `cf32_le`), `global.core:sample_rate` and `captures[0].core:frequency`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::block::{Gain, IqBlock, samples_to_duration};
use crate::pacing::Pacer;
use crate::source::{ControlError, IqSource, ReadStatus, SourceError};

/// Sample encoding of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleFormat {
    /// Unsigned 8-bit I then Q, midpoint 127.5 (RTL-SDR native).
    Cu8,
    /// Signed 16-bit little-endian I then Q; full scale 32768.
    Ci16Le,
    /// 32-bit float little-endian I then Q; full scale 1.0.
    Cf32Le,
}

impl SampleFormat {
    /// Bytes per complex sample.
    #[must_use]
    pub fn bytes_per_sample(self) -> usize {
        match self {
            SampleFormat::Cu8 => 2,
            SampleFormat::Ci16Le => 4,
            SampleFormat::Cf32Le => 8,
        }
    }

    /// The format for a SigMF `core:datatype` string, if supported.
    #[must_use]
    pub fn from_sigmf(datatype: &str) -> Option<Self> {
        match datatype {
            "cu8" => Some(SampleFormat::Cu8),
            "ci16_le" => Some(SampleFormat::Ci16Le),
            "cf32_le" => Some(SampleFormat::Cf32Le),
            _ => None,
        }
    }
}

/// Centre frequency and sample rate read from a file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileNameInfo {
    /// Centre frequency, Hz, if the name gives one.
    pub center_frequency_hz: Option<u64>,
    /// Sample rate, Hz, if the name gives one.
    pub sample_rate_hz: Option<u32>,
}

/// Reads centre frequency and sample rate from an rtl_433-style file name.
///
/// The stem is split at `_`; tokens that are a number with an optional `k`, `M` or `G`
/// suffix (`433.92M`, `250k`, `2M`, `2000k`, `868.3M`, plain Hz such as `433920000`) are values.
/// With two values the larger is the centre frequency and the smaller the sample rate (an
/// RTL-SDR tunes above 24 MHz and samples at most 3.2 MS/s); a single value is a centre
/// frequency when it is at least 10 MHz and a sample rate otherwise.
///
/// # Examples
///
/// ```
/// use sarlink_sdr::source::file::parse_file_name;
/// let info = parse_file_name("g001_433.92M_250k.cu8");
/// assert_eq!(info.center_frequency_hz, Some(433_920_000));
/// assert_eq!(info.sample_rate_hz, Some(250_000));
/// ```
#[must_use]
pub fn parse_file_name(name: &str) -> FileNameInfo {
    let file = name.rsplit(['/', '\\']).next().unwrap_or(name);
    // Tokens such as "433.92M" contain dots: only a last dot followed by letters starts the
    // extension.
    let stem = strip_extension(file).unwrap_or(file);
    let values: Vec<f64> = stem.split('_').filter_map(parse_value).collect();
    let mut info = FileNameInfo {
        center_frequency_hz: None,
        sample_rate_hz: None,
    };
    match values.as_slice() {
        [] => {}
        [v] => {
            if *v >= 10e6 {
                info.center_frequency_hz = Some(v.round() as u64);
            } else {
                info.sample_rate_hz = to_rate(*v);
            }
        }
        [a, b, ..] => {
            let (hi, lo) = if a >= b { (*a, *b) } else { (*b, *a) };
            info.center_frequency_hz = Some(hi.round() as u64);
            info.sample_rate_hz = to_rate(lo);
        }
    }
    info
}

fn strip_extension(file: &str) -> Option<&str> {
    let dot = file.rfind('.')?;
    let ext = &file[dot + 1..];
    // Only an alphabetic extension is an extension ("_433.92M" ends in a digit suffix).
    (!ext.is_empty()
        && ext.chars().any(|c| c.is_ascii_alphabetic())
        && !ext.chars().next()?.is_ascii_digit())
    .then(|| &file[..dot])
}

fn to_rate(v: f64) -> Option<u32> {
    (v >= 1.0 && v <= f64::from(u32::MAX)).then(|| v.round() as u32)
}

fn parse_value(token: &str) -> Option<f64> {
    let (num, mult) = match token.as_bytes().last()? {
        b'k' | b'K' => (&token[..token.len() - 1], 1e3),
        b'M' => (&token[..token.len() - 1], 1e6),
        b'G' => (&token[..token.len() - 1], 1e9),
        b'0'..=b'9' => (token, 1.0),
        _ => return None,
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let v: f64 = num.parse().ok()?;
    // A plain number without suffix counts only when it is plausibly Hz.
    if mult == 1.0 && v < 1000.0 {
        return None;
    }
    let v = v * mult;
    (v.is_finite() && v > 0.0).then_some(v)
}

/// Opening a recording failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The file could not be opened or read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file name gives no sample rate or no centre frequency.
    #[error("file name {name:?} does not give the {missing}; pass it explicitly")]
    NameWithoutParameters {
        /// The file name.
        name: String,
        /// "sample rate" or "centre frequency".
        missing: &'static str,
    },
    /// The sample rate is zero.
    #[error("sample rate must be > 0")]
    ZeroSampleRate,
    /// The SigMF metadata is not valid JSON or lacks a required field.
    #[error("invalid sigmf metadata in {path}: {reason}")]
    InvalidMeta {
        /// The metadata file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The SigMF datatype is not one this crate reads.
    #[error("unsupported sigmf datatype {datatype:?} (supported: cu8, ci16_le, cf32_le)")]
    UnsupportedDatatype {
        /// The datatype found.
        datatype: String,
    },
    /// The SigMF metadata file is implausibly large.
    #[error("sigmf metadata {path} is {len} bytes, more than the {max} accepted")]
    MetaTooLarge {
        /// The metadata file.
        path: PathBuf,
        /// Its size.
        len: u64,
        /// Largest accepted.
        max: u64,
    },
}

/// A recording read block by block, optionally looping and paced to real time.
///
/// Timestamps count samples delivered since opening (they keep increasing across loops).
/// Control requests return [`ControlError::Unsupported`]. Reading allocates nothing once the
/// first block of a given capacity has been read.
#[derive(Debug)]
pub struct FileSource {
    file: File,
    path: PathBuf,
    format: SampleFormat,
    sample_rate_hz: u32,
    center_frequency_hz: u64,
    looping: bool,
    pacer: Option<Pacer>,
    scratch: Vec<u8>,
    delivered: u64,
}

impl FileSource {
    /// Opens a raw cu8 file whose name gives rate and frequency (see [`parse_file_name`]).
    ///
    /// # Errors
    ///
    /// [`OpenError::NameWithoutParameters`] if the name lacks either, [`OpenError::Io`] if the
    /// file cannot be opened.
    pub fn open_cu8(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        let path = path.as_ref();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let info = parse_file_name(&name);
        let rate = info
            .sample_rate_hz
            .ok_or_else(|| OpenError::NameWithoutParameters {
                name: name.clone(),
                missing: "sample rate",
            })?;
        let freq = info
            .center_frequency_hz
            .ok_or(OpenError::NameWithoutParameters {
                name,
                missing: "centre frequency",
            })?;
        Self::open_raw(path, SampleFormat::Cu8, rate, freq)
    }

    /// Opens a raw cu8 file with an explicit sample rate and centre frequency.
    ///
    /// # Errors
    ///
    /// [`OpenError::ZeroSampleRate`], or [`OpenError::Io`] if the file cannot be opened.
    pub fn open_cu8_with(
        path: impl AsRef<Path>,
        sample_rate_hz: u32,
        center_frequency_hz: u64,
    ) -> Result<Self, OpenError> {
        Self::open_raw(
            path.as_ref(),
            SampleFormat::Cu8,
            sample_rate_hz,
            center_frequency_hz,
        )
    }

    /// Opens a raw file of any [`SampleFormat`] with explicit parameters.
    ///
    /// # Errors
    ///
    /// [`OpenError::ZeroSampleRate`], or [`OpenError::Io`] if the file cannot be opened.
    pub fn open_raw(
        path: impl AsRef<Path>,
        format: SampleFormat,
        sample_rate_hz: u32,
        center_frequency_hz: u64,
    ) -> Result<Self, OpenError> {
        let path = path.as_ref();
        if sample_rate_hz == 0 {
            return Err(OpenError::ZeroSampleRate);
        }
        let file = File::open(path).map_err(|source| OpenError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(FileSource {
            file,
            path: path.to_owned(),
            format,
            sample_rate_hz,
            center_frequency_hz,
            looping: false,
            pacer: None,
            scratch: Vec::new(),
            delivered: 0,
        })
    }

    /// Opens a SigMF recording given its `.sigmf-meta` or `.sigmf-data` path, or the path
    /// without extension.
    ///
    /// # Errors
    ///
    /// [`OpenError::Io`], [`OpenError::MetaTooLarge`] (over 1 MiB),
    /// [`OpenError::InvalidMeta`] for bad JSON or a missing/invalid `core:sample_rate`,
    /// `core:datatype` or `captures[0].core:frequency`, [`OpenError::UnsupportedDatatype`].
    pub fn open_sigmf(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        const MAX_META: u64 = 1 << 20;
        let path = path.as_ref();
        let base = match path.extension().and_then(|e| e.to_str()) {
            Some("sigmf-meta" | "sigmf-data") => path.with_extension(""),
            _ => path.to_owned(),
        };
        let meta_path = base.with_extension("sigmf-meta");
        let data_path = base.with_extension("sigmf-data");
        let io_err = |source| OpenError::Io {
            path: meta_path.clone(),
            source,
        };
        let meta_file = File::open(&meta_path).map_err(io_err)?;
        let len = meta_file.metadata().map_err(io_err)?.len();
        if len > MAX_META {
            return Err(OpenError::MetaTooLarge {
                path: meta_path,
                len,
                max: MAX_META,
            });
        }
        let mut text = String::new();
        meta_file
            .take(MAX_META)
            .read_to_string(&mut text)
            .map_err(io_err)?;
        let invalid = |reason: String| OpenError::InvalidMeta {
            path: meta_path.clone(),
            reason,
        };
        let meta: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let global = meta
            .get("global")
            .ok_or_else(|| invalid("no global object".into()))?;
        let datatype = global
            .get("core:datatype")
            .and_then(|v| v.as_str())
            .ok_or_else(|| invalid("no global core:datatype string".into()))?;
        let format =
            SampleFormat::from_sigmf(datatype).ok_or_else(|| OpenError::UnsupportedDatatype {
                datatype: datatype.to_owned(),
            })?;
        let rate = global
            .get("core:sample_rate")
            .and_then(serde_json::Value::as_f64)
            .filter(|r| *r >= 1.0 && *r <= f64::from(u32::MAX))
            .ok_or_else(|| invalid("no valid global core:sample_rate".into()))?;
        let freq = meta
            .get("captures")
            .and_then(|c| c.get(0))
            .and_then(|c| c.get("core:frequency"))
            .and_then(serde_json::Value::as_f64)
            .filter(|f| *f >= 0.0 && *f < 1e12)
            .ok_or_else(|| invalid("no valid captures[0] core:frequency".into()))?;
        // Both checked above to fit their integer types.
        Self::open_raw(&data_path, format, rate.round() as u32, freq.round() as u64)
    }

    /// Restart from the beginning at the end of the file instead of ending; default off.
    #[must_use]
    pub fn looping(mut self, on: bool) -> Self {
        self.looping = on;
        self
    }

    /// Deliver samples no faster than real time (sleeps in `read_block`); default off.
    #[must_use]
    pub fn paced(mut self, on: bool) -> Self {
        self.pacer = on.then(|| Pacer::new(self.sample_rate_hz));
        self
    }

    /// Encoding of the samples.
    #[must_use]
    pub fn format(&self) -> SampleFormat {
        self.format
    }

    /// Path of the sample data.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads into `scratch` until it is full or the file ends; returns bytes read.
    fn fill(&mut self, want: usize) -> Result<usize, SourceError> {
        let mut got = 0;
        let mut rewound_empty = false;
        while got < want {
            match self.file.read(&mut self.scratch[got..want]) {
                Ok(0) => {
                    // Drop a partial sample left at the end of the file.
                    got -= got % self.format.bytes_per_sample();
                    if !self.looping || rewound_empty {
                        break;
                    }
                    self.file
                        .seek(SeekFrom::Start(0))
                        .map_err(|source| SourceError::Io {
                            what: "recording",
                            source,
                        })?;
                    // An empty file would loop forever: stop after one rewind without data.
                    rewound_empty = true;
                }
                Ok(n) => {
                    got += n;
                    rewound_empty = false;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(SourceError::Io {
                        what: "recording",
                        source,
                    });
                }
            }
        }
        Ok(got)
    }
}

impl IqSource for FileSource {
    fn read_block(&mut self, block: &mut IqBlock) -> Result<ReadStatus, SourceError> {
        let bps = self.format.bytes_per_sample();
        let want = block.capacity() * bps;
        if self.scratch.len() < want {
            self.scratch.resize(want, 0);
        }
        let got = self.fill(want)?;
        let n = got / bps;
        block.start(
            self.sample_rate_hz,
            self.center_frequency_hz,
            samples_to_duration(self.delivered, self.sample_rate_hz),
        );
        if n == 0 {
            return Ok(ReadStatus::End);
        }
        let bytes = &self.scratch[..n * bps];
        match self.format {
            SampleFormat::Cu8 => {
                block.extend_from_cu8(bytes);
            }
            SampleFormat::Ci16Le => {
                for s in bytes.chunks_exact(4) {
                    let i = f32::from(i16::from_le_bytes([s[0], s[1]])) / 32768.0;
                    let q = f32::from(i16::from_le_bytes([s[2], s[3]])) / 32768.0;
                    // Capacity is n by construction.
                    let _ = block.push(num_complex::Complex::new(i, q));
                }
            }
            SampleFormat::Cf32Le => {
                for s in bytes.chunks_exact(8) {
                    let i = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
                    let q = f32::from_le_bytes([s[4], s[5], s[6], s[7]]);
                    let _ = block.push(num_complex::Complex::new(i, q));
                }
            }
        }
        self.delivered += n as u64;
        if let Some(p) = &mut self.pacer {
            p.wait(n);
        }
        Ok(ReadStatus::Data)
    }

    fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }

    fn center_frequency_hz(&self) -> u64 {
        self.center_frequency_hz
    }

    fn set_frequency(&mut self, _frequency_hz: u64) -> Result<(), ControlError> {
        Err(ControlError::Unsupported {
            what: "retuning a recording",
        })
    }

    fn set_gain(&mut self, _gain: Gain) -> Result<(), ControlError> {
        Err(ControlError::Unsupported {
            what: "gain of a recording",
        })
    }

    fn set_sample_rate(&mut self, _sample_rate_hz: u32) -> Result<(), ControlError> {
        Err(ControlError::Unsupported {
            what: "sample rate of a recording",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str) -> (Option<u64>, Option<u32>) {
        let i = parse_file_name(name);
        (i.center_frequency_hz, i.sample_rate_hz)
    }

    #[test]
    fn rtl_433_names() {
        assert_eq!(
            info("g001_433.92M_250k.cu8"),
            (Some(433_920_000), Some(250_000))
        );
        assert_eq!(
            info("modes1_1090M_2000k.cu8"),
            (Some(1_090_000_000), Some(2_000_000))
        );
        assert_eq!(
            info("x_1090M_2M.cu8"),
            (Some(1_090_000_000), Some(2_000_000))
        );
        assert_eq!(
            info("/tmp/dir.d/s_868.3M_1024k.cu8"),
            (Some(868_300_000), Some(1_024_000))
        );
        assert_eq!(
            info("cap_433920000_250000.cu8"),
            (Some(433_920_000), Some(250_000))
        );
        assert_eq!(
            info("cap_250k_433.92M.cu8"),
            (Some(433_920_000), Some(250_000))
        );
        assert_eq!(info("only_433.92M.cu8"), (Some(433_920_000), None));
        assert_eq!(info("only_2048k.cu8"), (None, Some(2_048_000)));
        assert_eq!(info("nothing_here.cu8"), (None, None));
        assert_eq!(info("g001.cu8"), (None, None));
    }

    proptest::proptest! {
        #[test]
        fn any_file_name_parses_without_panicking(name in "\\PC{0,40}") {
            let info = parse_file_name(&name);
            if let Some(rate) = info.sample_rate_hz {
                proptest::prop_assert!(rate > 0);
            }
        }
    }

    #[test]
    fn sigmf_datatypes() {
        assert_eq!(
            SampleFormat::from_sigmf("ci16_le"),
            Some(SampleFormat::Ci16Le)
        );
        assert_eq!(SampleFormat::from_sigmf("ci16_be"), None);
    }
}
