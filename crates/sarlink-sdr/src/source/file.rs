//! Recordings: raw I/Q files in rtl_433's formats and naming, and SigMF recordings.
//!
//! [`FileSource::open`] picks the reader by the path:
//!
//! | path | read as |
//! |---|---|
//! | `*.cu8` | unsigned 8-bit I/Q, `(v - 127.5) / 127.5` (RTL-SDR native) |
//! | `*.cs8` | signed 8-bit I/Q, `v / 128` |
//! | `*.cs16` | signed 16-bit little-endian I/Q, `v / 32768` |
//! | `*.cu16` | unsigned 16-bit little-endian I/Q, `(v - 32767.5) / 32767.5` |
//! | `*.cf32` | 32-bit float little-endian I/Q, full scale 1.0 |
//! | `*.sigmf-meta`, `*.sigmf-data` | the SigMF pair beside each other |
//! | `*.sigmf` | a SigMF archive (plain tar), read in place without unpacking |
//! | `rec` with `rec.sigmf-meta` beside it | the SigMF pair (a bare base name) |
//!
//! Anything else is [`OpenError::UnknownFormat`]: a file is never read in a format its name
//! does not say.
//!
//! A raw file's name gives its centre frequency and sample rate in rtl_433's convention
//! (`name_433.92M_250k.cu8`, see [`parse_file_name`]). Values the caller passes in
//! [`FileOptions`] apply when the name has none (`capture.cu8`) and win when the name (or the
//! SigMF metadata) says otherwise; each such conflict is reported in
//! [`FileSource::warnings`]. A SigMF recording whose `captures` retune keeps its own
//! frequencies (an explicit frequency is then ignored, with a warning).
//!
//! SigMF datatypes read: `cu8`, `ci8`, `ci16_le`, `cu16_le`, `cf32_le`, one channel. Every
//! `captures` segment is followed: a block never straddles a segment boundary, and each block
//! carries its segment's centre frequency ([`IqBlock::center_frequency_hz`]), so a retune in
//! `captures[1]` shows in the blocks (and the estimator's reports) from its first sample.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use num_complex::Complex;

pub use super::tar::ArchiveError;
use crate::block::{Gain, IqBlock, samples_to_duration};
use crate::pacing::Pacer;
use crate::source::{ControlError, IqSource, ReadStatus, SourceError};

/// Largest SigMF metadata accepted, bytes.
pub const MAX_META_BYTES: u64 = 1 << 20;

/// Sample encoding of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SampleFormat {
    /// Unsigned 8-bit I then Q, midpoint 127.5, full scale 127.5 (RTL-SDR native; rtl_433
    /// `.cu8`, SigMF `cu8`).
    Cu8,
    /// Signed 8-bit I then Q, full scale 128 (rtl_433 `.cs8`, SigMF `ci8`).
    Cs8,
    /// Unsigned 16-bit little-endian I then Q, midpoint and full scale 32767.5 (rtl_433
    /// `.cu16`, SigMF `cu16_le`).
    Cu16Le,
    /// Signed 16-bit little-endian I then Q; full scale 32768 (rtl_433 `.cs16`, SigMF
    /// `ci16_le`).
    Ci16Le,
    /// 32-bit float little-endian I then Q; full scale 1.0 (rtl_433 `.cf32`, SigMF `cf32_le`).
    Cf32Le,
}

impl SampleFormat {
    /// Bytes per complex sample.
    #[must_use]
    pub fn bytes_per_sample(self) -> usize {
        match self {
            SampleFormat::Cu8 | SampleFormat::Cs8 => 2,
            SampleFormat::Cu16Le | SampleFormat::Ci16Le => 4,
            SampleFormat::Cf32Le => 8,
        }
    }

    /// The format for a SigMF `core:datatype` string, if supported.
    #[must_use]
    pub fn from_sigmf(datatype: &str) -> Option<Self> {
        match datatype {
            "cu8" => Some(SampleFormat::Cu8),
            "ci8" => Some(SampleFormat::Cs8),
            "cu16_le" => Some(SampleFormat::Cu16Le),
            "ci16_le" => Some(SampleFormat::Ci16Le),
            "cf32_le" => Some(SampleFormat::Cf32Le),
            _ => None,
        }
    }

    /// The format for an rtl_433 file extension (`cu8`, `cs8`, `cu16`, `cs16`, `cf32`; any
    /// ASCII case), if it is one.
    ///
    /// # Examples
    ///
    /// ```
    /// use sarlink_sdr::source::file::SampleFormat;
    /// assert_eq!(SampleFormat::from_extension("cf32"), Some(SampleFormat::Cf32Le));
    /// assert_eq!(SampleFormat::from_extension("wav"), None);
    /// ```
    #[must_use]
    pub fn from_extension(extension: &str) -> Option<Self> {
        match extension.to_ascii_lowercase().as_str() {
            "cu8" => Some(SampleFormat::Cu8),
            "cs8" => Some(SampleFormat::Cs8),
            "cu16" => Some(SampleFormat::Cu16Le),
            "cs16" => Some(SampleFormat::Ci16Le),
            "cf32" => Some(SampleFormat::Cf32Le),
            _ => None,
        }
    }

    /// Appends the samples encoded in `bytes` (whole samples only) to `block`, up to its
    /// capacity; returns how many were added.
    fn decode_into(self, bytes: &[u8], block: &mut IqBlock) -> usize {
        let before = block.len();
        let mut push = |i: f32, q: f32| block.push(Complex::new(i, q)).is_ok();
        match self {
            SampleFormat::Cu8 => return block.extend_from_cu8(bytes),
            SampleFormat::Cs8 => {
                for s in bytes.chunks_exact(2) {
                    let (i, q) = (s[0] as i8, s[1] as i8);
                    if !push(f32::from(i) / 128.0, f32::from(q) / 128.0) {
                        break;
                    }
                }
            }
            SampleFormat::Cu16Le => {
                for s in bytes.chunks_exact(4) {
                    let i = f32::from(u16::from_le_bytes([s[0], s[1]]));
                    let q = f32::from(u16::from_le_bytes([s[2], s[3]]));
                    if !push((i - 32767.5) / 32767.5, (q - 32767.5) / 32767.5) {
                        break;
                    }
                }
            }
            SampleFormat::Ci16Le => {
                for s in bytes.chunks_exact(4) {
                    let i = f32::from(i16::from_le_bytes([s[0], s[1]]));
                    let q = f32::from(i16::from_le_bytes([s[2], s[3]]));
                    if !push(i / 32768.0, q / 32768.0) {
                        break;
                    }
                }
            }
            SampleFormat::Cf32Le => {
                for s in bytes.chunks_exact(8) {
                    let i = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
                    let q = f32::from_le_bytes([s[4], s[5], s[6], s[7]]);
                    if !push(i, q) {
                        break;
                    }
                }
            }
        }
        block.len() - before
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

/// Values the caller gives for a recording; fields document their defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileOptions {
    /// Sample rate, Hz; default `None` (from the file name or SigMF metadata). Wins over the
    /// file's value, with an [`OpenWarning::Conflict`] when they differ.
    pub sample_rate_hz: Option<u32>,
    /// Centre frequency, Hz; default `None` (from the file name or SigMF metadata). Wins over
    /// the file's value, with an [`OpenWarning::Conflict`] when they differ, except for a SigMF
    /// recording that retunes ([`OpenWarning::FrequencyIgnored`]).
    pub center_frequency_hz: Option<u64>,
}

/// Something the caller should hear about a recording that was opened anyway.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenWarning {
    /// The file (name or metadata) gives another value than the caller; the caller's is used.
    #[error("the {setting} given ({explicit}) overrides the recording's ({in_file})")]
    Conflict {
        /// "sample rate" or "centre frequency".
        setting: &'static str,
        /// The value in the file name or metadata.
        in_file: u64,
        /// The value the caller gave, which is used.
        explicit: u64,
    },
    /// The SigMF recording retunes between captures, so it keeps its own frequencies.
    #[error(
        "the centre frequency given ({explicit_hz} Hz) is ignored: the recording retunes over {captures} captures"
    )]
    FrequencyIgnored {
        /// The frequency the caller gave.
        explicit_hz: u64,
        /// Number of capture segments.
        captures: usize,
    },
}

/// A stretch of a recording tuned to one centre frequency (a SigMF capture segment; a raw
/// file is one segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Index of its first sample in the recording.
    pub sample_start: u64,
    /// Centre frequency of its samples, Hz.
    pub center_frequency_hz: u64,
}

/// What is wrong with SigMF metadata.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    /// Not valid JSON.
    #[error("not valid json")]
    Json(#[source] serde_json::Error),
    /// A required key is missing.
    #[error("no {key}")]
    Missing {
        /// The key.
        key: String,
    },
    /// A key holds the wrong type.
    #[error("{key} is not {expected}")]
    WrongType {
        /// The key.
        key: String,
        /// What it should be.
        expected: &'static str,
    },
    /// A number is out of range.
    #[error("{key} = {value} is out of range")]
    OutOfRange {
        /// The key.
        key: String,
        /// The value (as JSON).
        value: String,
    },
    /// Captures are not in increasing `core:sample_start` order.
    #[error("captures[{index}] does not start after the capture before it")]
    OutOfOrder {
        /// Index of the offending capture.
        index: usize,
    },
    /// A capture starts beyond the end of the data.
    #[error(
        "captures[{index}] starts at sample {sample_start}, beyond the {samples} samples of data"
    )]
    BeyondData {
        /// Index of the capture.
        index: usize,
        /// Its `core:sample_start`.
        sample_start: u64,
        /// Samples in the data.
        samples: u64,
    },
    /// A feature this reader does not handle.
    #[error("{key} = {value} is not supported")]
    Unsupported {
        /// The key.
        key: &'static str,
        /// The value (as JSON).
        value: String,
    },
}

/// Opening a recording failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The file could not be opened or read; the source is the operating system's reason.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The path names no format this crate reads.
    #[error(
        "{path} has no recording format this reader knows ({extension:?}): use .cu8, .cs8, .cs16, .cu16, .cf32, .sigmf-meta, .sigmf-data, .sigmf or a SigMF base name"
    )]
    UnknownFormat {
        /// The path given.
        path: PathBuf,
        /// Its extension, if any.
        extension: Option<String>,
    },
    /// Neither the file name nor the caller gives the sample rate or the centre frequency.
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
    /// The SigMF metadata is invalid.
    #[error("invalid sigmf metadata in {path}")]
    InvalidMeta {
        /// The metadata file (or archive).
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: MetaError,
    },
    /// The SigMF datatype is not one this crate reads.
    #[error(
        "unsupported sigmf datatype {datatype:?} (supported: cu8, ci8, cu16_le, ci16_le, cf32_le)"
    )]
    UnsupportedDatatype {
        /// The datatype found.
        datatype: String,
    },
    /// The SigMF metadata is implausibly large.
    #[error("sigmf metadata {path} is {len} bytes, more than the {max} accepted")]
    MetaTooLarge {
        /// The metadata file (or archive).
        path: PathBuf,
        /// Its size.
        len: u64,
        /// Largest accepted.
        max: u64,
    },
    /// The SigMF archive cannot be read.
    #[error("cannot read sigmf archive {path}")]
    Archive {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: ArchiveError,
    },
}

/// Metadata read from a `.sigmf-meta`, with the caller's options applied.
#[derive(Debug, Clone, PartialEq)]
struct SigmfMeta {
    format: SampleFormat,
    sample_rate_hz: u32,
    segments: Vec<Segment>,
    warnings: Vec<OpenWarning>,
}

fn sigmf_u64(v: &serde_json::Value, key: impl Fn() -> String) -> Result<u64, MetaError> {
    if let Some(n) = v.as_u64() {
        return Ok(n);
    }
    if v.is_number() {
        return Err(MetaError::OutOfRange {
            key: key(),
            value: v.to_string(),
        });
    }
    Err(MetaError::WrongType {
        key: key(),
        expected: "a non-negative integer",
    })
}

/// A frequency or rate in Hz: a finite number in `0..=max`, rounded.
fn sigmf_hz(v: &serde_json::Value, key: impl Fn() -> String, max: f64) -> Result<u64, MetaError> {
    let f = v.as_f64().ok_or_else(|| MetaError::WrongType {
        key: key(),
        expected: "a number",
    })?;
    if !(0.0..=max).contains(&f) {
        return Err(MetaError::OutOfRange {
            key: key(),
            value: v.to_string(),
        });
    }
    // In 0..=max (at most 1e12 < 2^53), so the cast is exact after rounding.
    Ok(f.round() as u64)
}

/// Checks an explicit value against the file's; the explicit one wins.
fn pick<T: Copy + PartialEq + Into<u64>>(
    setting: &'static str,
    explicit: Option<T>,
    in_file: Option<T>,
    warnings: &mut Vec<OpenWarning>,
) -> Option<T> {
    match (explicit, in_file) {
        (Some(e), Some(f)) => {
            if e != f {
                warnings.push(OpenWarning::Conflict {
                    setting,
                    in_file: f.into(),
                    explicit: e.into(),
                });
            }
            Some(e)
        }
        (e, f) => e.or(f),
    }
}

/// Reads SigMF metadata for data of `data_bytes` bytes. Pure: no file access.
fn parse_sigmf(text: &str, data_bytes: u64, options: &FileOptions) -> Result<SigmfMeta, OpenError> {
    // The path is filled in by the caller.
    let meta_err = |source| OpenError::InvalidMeta {
        path: PathBuf::new(),
        source,
    };
    let meta: serde_json::Value =
        serde_json::from_str(text).map_err(|e| meta_err(MetaError::Json(e)))?;
    let global = meta.get("global").ok_or_else(|| {
        meta_err(MetaError::Missing {
            key: "global".into(),
        })
    })?;
    let datatype = global
        .get("core:datatype")
        .ok_or_else(|| {
            meta_err(MetaError::Missing {
                key: "global.core:datatype".into(),
            })
        })?
        .as_str()
        .ok_or_else(|| {
            meta_err(MetaError::WrongType {
                key: "global.core:datatype".into(),
                expected: "a string",
            })
        })?;
    let format =
        SampleFormat::from_sigmf(datatype).ok_or_else(|| OpenError::UnsupportedDatatype {
            datatype: datatype.chars().take(64).collect(),
        })?;
    if let Some(ch) = global.get("core:num_channels") {
        if ch.as_u64() != Some(1) {
            return Err(meta_err(MetaError::Unsupported {
                key: "global.core:num_channels",
                value: ch.to_string(),
            }));
        }
    }
    let mut warnings = Vec::new();
    let file_rate = match global.get("core:sample_rate") {
        None => None,
        Some(v) => {
            let key = || "global.core:sample_rate".to_string();
            let hz = sigmf_hz(v, key, f64::from(u32::MAX)).map_err(meta_err)?;
            // Checked above to be at most u32::MAX.
            Some(u32::try_from(hz).unwrap_or(u32::MAX))
        }
    };
    let sample_rate_hz = pick(
        "sample rate",
        options.sample_rate_hz,
        file_rate,
        &mut warnings,
    )
    .ok_or_else(|| {
        meta_err(MetaError::Missing {
            key: "global.core:sample_rate".into(),
        })
    })?;
    if sample_rate_hz == 0 {
        return Err(OpenError::ZeroSampleRate);
    }
    let captures = meta
        .get("captures")
        .ok_or_else(|| {
            meta_err(MetaError::Missing {
                key: "captures".into(),
            })
        })?
        .as_array()
        .ok_or_else(|| {
            meta_err(MetaError::WrongType {
                key: "captures".into(),
                expected: "an array",
            })
        })?;
    let samples = data_bytes / format.bytes_per_sample() as u64;
    let mut segments: Vec<Segment> = Vec::with_capacity(captures.len().max(1));
    let mut previous_start: Option<u64> = None;
    for (index, capture) in captures.iter().enumerate() {
        let key = |k: &str| format!("captures[{index}].{k}");
        if !capture.is_object() {
            return Err(meta_err(MetaError::WrongType {
                key: format!("captures[{index}]"),
                expected: "an object",
            }));
        }
        let sample_start = match capture.get("core:sample_start") {
            Some(v) => sigmf_u64(v, || key("core:sample_start")).map_err(meta_err)?,
            None if index == 0 => 0,
            None => {
                return Err(meta_err(MetaError::Missing {
                    key: key("core:sample_start"),
                }));
            }
        };
        if let Some(h) = capture.get("core:header_bytes") {
            if h.as_u64() != Some(0) {
                return Err(meta_err(MetaError::Unsupported {
                    key: "captures[].core:header_bytes",
                    value: h.to_string(),
                }));
            }
        }
        if sample_start > samples {
            return Err(meta_err(MetaError::BeyondData {
                index,
                sample_start,
                samples,
            }));
        }
        if previous_start.is_some_and(|p| sample_start <= p) {
            return Err(meta_err(MetaError::OutOfOrder { index }));
        }
        previous_start = Some(sample_start);
        let frequency = match capture.get("core:frequency") {
            Some(v) => Some(sigmf_hz(v, || key("core:frequency"), 1e12).map_err(meta_err)?),
            // A later capture without a frequency stays where the previous one was.
            None => segments.last().map(|s| s.center_frequency_hz),
        };
        let frequency = match (frequency, options.center_frequency_hz) {
            (Some(f), _) => f,
            (None, Some(e)) => e,
            (None, None) => {
                return Err(meta_err(MetaError::Missing {
                    key: key("core:frequency"),
                }));
            }
        };
        // The first segment covers the recording from its first sample.
        let sample_start = if index == 0 { 0 } else { sample_start };
        segments.push(Segment {
            sample_start,
            center_frequency_hz: frequency,
        });
    }
    let Some(first) = segments.first().copied() else {
        let f = options.center_frequency_hz.ok_or_else(|| {
            meta_err(MetaError::Missing {
                key: "captures[0].core:frequency".into(),
            })
        })?;
        return Ok(SigmfMeta {
            format,
            sample_rate_hz,
            segments: vec![Segment {
                sample_start: 0,
                center_frequency_hz: f,
            }],
            warnings,
        });
    };
    if let Some(explicit) = options.center_frequency_hz {
        if segments
            .iter()
            .all(|s| s.center_frequency_hz == first.center_frequency_hz)
        {
            if explicit != first.center_frequency_hz {
                warnings.push(OpenWarning::Conflict {
                    setting: "centre frequency",
                    in_file: first.center_frequency_hz,
                    explicit,
                });
            }
            segments
                .iter_mut()
                .for_each(|s| s.center_frequency_hz = explicit);
        } else {
            warnings.push(OpenWarning::FrequencyIgnored {
                explicit_hz: explicit,
                captures: segments.len(),
            });
        }
    }
    Ok(SigmfMeta {
        format,
        sample_rate_hz,
        segments,
        warnings,
    })
}

/// `path` with `suffix` appended to its file name (`rec` + `.sigmf-meta`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(suffix);
    PathBuf::from(s)
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads at most [`MAX_META_BYTES`] of metadata from `file`, `len` bytes long.
fn read_meta(file: &mut impl Read, len: u64, path: &Path) -> Result<String, OpenError> {
    if len > MAX_META_BYTES {
        return Err(OpenError::MetaTooLarge {
            path: path.to_owned(),
            len,
            max: MAX_META_BYTES,
        });
    }
    let mut bytes = Vec::new();
    file.take(len)
        .read_to_end(&mut bytes)
        .map_err(io_error(path))?;
    String::from_utf8(bytes).map_err(|e| OpenError::Io {
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidData, e),
    })
}

/// A recording read block by block, optionally looping and paced to real time.
///
/// Timestamps count samples delivered since opening (they keep increasing across loops).
/// Control requests return [`ControlError::Unsupported`]. Reading allocates nothing once the
/// first block of a given capacity has been read. Blocks end at capture-segment boundaries, so
/// a block may be shorter than its capacity there.
#[derive(Debug)]
pub struct FileSource {
    file: File,
    path: PathBuf,
    format: SampleFormat,
    sample_rate_hz: u32,
    /// Offset of the first sample in `file` (non-zero inside an archive).
    data_offset: u64,
    /// Whole samples in the recording.
    samples: u64,
    /// At least one; the first starts at 0; strictly increasing starts.
    segments: Vec<Segment>,
    /// Index of the next sample to read, and its segment.
    position: u64,
    segment: usize,
    warnings: Vec<OpenWarning>,
    looping: bool,
    pacer: Option<Pacer>,
    scratch: Vec<u8>,
    delivered: u64,
}

impl FileSource {
    /// Opens a recording by its path (see the [module docs](self) for the formats), with the
    /// caller's sample rate and centre frequency where given. Read
    /// [`warnings`](Self::warnings) afterwards: conflicts between the caller's values and the
    /// file's are reported there.
    ///
    /// # Errors
    ///
    /// [`OpenError::UnknownFormat`] for a path in no known format, [`OpenError::Io`] (with the
    /// operating system's reason as its source) when a file cannot be read,
    /// [`OpenError::NameWithoutParameters`] when neither the name nor `options` give the rate
    /// or frequency, [`OpenError::ZeroSampleRate`], and for SigMF
    /// [`OpenError::InvalidMeta`], [`OpenError::UnsupportedDatatype`],
    /// [`OpenError::MetaTooLarge`] and [`OpenError::Archive`].
    pub fn open(path: impl AsRef<Path>, options: &FileOptions) -> Result<Self, OpenError> {
        let path = path.as_ref();
        let extension = path.extension().map(|e| e.to_string_lossy().into_owned());
        match extension.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("sigmf") => Self::open_archive(path, options),
            Some("sigmf-meta" | "sigmf-data") => Self::open_pair(&path.with_extension(""), options),
            ext => {
                if let Some(format) = ext.and_then(SampleFormat::from_extension) {
                    return Self::open_named_raw(path, format, options);
                }
                if with_suffix(path, ".sigmf-meta").exists() {
                    return Self::open_pair(path, options);
                }
                if with_suffix(path, ".sigmf").exists() {
                    return Self::open_archive(&with_suffix(path, ".sigmf"), options);
                }
                Err(OpenError::UnknownFormat {
                    path: path.to_owned(),
                    extension,
                })
            }
        }
    }

    /// Opens a recording by its path with no explicit parameters: `open(path, &FileOptions::default())`.
    /// (Before raw formats other than cu8 were read, this opened cu8 only; it now reads every
    /// format by its extension, so a `.cf32` file is never taken for cu8.)
    ///
    /// # Errors
    ///
    /// As [`FileSource::open`].
    pub fn open_cu8(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open(path, &FileOptions::default())
    }

    /// Opens a recording with an explicit sample rate and centre frequency (they win over the
    /// name's, with warnings): `open` with both options set.
    ///
    /// # Errors
    ///
    /// As [`FileSource::open`].
    pub fn open_cu8_with(
        path: impl AsRef<Path>,
        sample_rate_hz: u32,
        center_frequency_hz: u64,
    ) -> Result<Self, OpenError> {
        Self::open(
            path,
            &FileOptions {
                sample_rate_hz: Some(sample_rate_hz),
                center_frequency_hz: Some(center_frequency_hz),
            },
        )
    }

    /// Opens a SigMF recording given its `.sigmf-meta` or `.sigmf-data` path, its base name
    /// (`rec` for `rec.sigmf-meta` + `rec.sigmf-data`) or a `.sigmf` archive.
    ///
    /// # Errors
    ///
    /// As [`FileSource::open`]; a path that is none of these is
    /// [`OpenError::UnknownFormat`].
    pub fn open_sigmf(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        let path = path.as_ref();
        let is_raw = path
            .extension()
            .and_then(|e| e.to_str())
            .and_then(SampleFormat::from_extension)
            .is_some();
        if is_raw {
            return Err(OpenError::UnknownFormat {
                path: path.to_owned(),
                extension: path.extension().map(|e| e.to_string_lossy().into_owned()),
            });
        }
        Self::open(path, &FileOptions::default())
    }

    /// Opens a raw file of any [`SampleFormat`] with explicit parameters, whatever its name.
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
        let segments = vec![Segment {
            sample_start: 0,
            center_frequency_hz,
        }];
        Self::from_parts(
            path.as_ref(),
            format,
            sample_rate_hz,
            0,
            None,
            segments,
            Vec::new(),
        )
    }

    fn open_named_raw(
        path: &Path,
        format: SampleFormat,
        options: &FileOptions,
    ) -> Result<Self, OpenError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let info = parse_file_name(&name);
        let mut warnings = Vec::new();
        let rate = pick(
            "sample rate",
            options.sample_rate_hz,
            info.sample_rate_hz,
            &mut warnings,
        )
        .ok_or_else(|| OpenError::NameWithoutParameters {
            name: name.clone(),
            missing: "sample rate",
        })?;
        let freq = pick(
            "centre frequency",
            options.center_frequency_hz,
            info.center_frequency_hz,
            &mut warnings,
        )
        .ok_or(OpenError::NameWithoutParameters {
            name,
            missing: "centre frequency",
        })?;
        let segments = vec![Segment {
            sample_start: 0,
            center_frequency_hz: freq,
        }];
        Self::from_parts(path, format, rate, 0, None, segments, warnings)
    }

    /// `base.sigmf-meta` + `base.sigmf-data`.
    fn open_pair(base: &Path, options: &FileOptions) -> Result<Self, OpenError> {
        let meta_path = with_suffix(base, ".sigmf-meta");
        let data_path = with_suffix(base, ".sigmf-data");
        let mut meta_file = File::open(&meta_path).map_err(io_error(&meta_path))?;
        let len = meta_file.metadata().map_err(io_error(&meta_path))?.len();
        let text = read_meta(&mut meta_file, len, &meta_path)?;
        let data_len = std::fs::metadata(&data_path)
            .map_err(io_error(&data_path))?
            .len();
        let meta =
            parse_sigmf(&text, data_len, options).map_err(|e| with_meta_path(e, &meta_path))?;
        Self::from_parts(
            &data_path,
            meta.format,
            meta.sample_rate_hz,
            0,
            Some(data_len),
            meta.segments,
            meta.warnings,
        )
    }

    /// A `.sigmf` archive: the first `.sigmf-meta` member and the `.sigmf-data` beside it.
    fn open_archive(path: &Path, options: &FileOptions) -> Result<Self, OpenError> {
        let mut file = File::open(path).map_err(io_error(path))?;
        let len = file.metadata().map_err(io_error(path))?.len();
        let archive_err = |source| OpenError::Archive {
            path: path.to_owned(),
            source,
        };
        let members = super::tar::members(&mut file, len).map_err(archive_err)?;
        let meta = members
            .iter()
            .find(|m| m.name.ends_with(".sigmf-meta"))
            .ok_or(ArchiveError::NoMeta)
            .map_err(archive_err)?;
        let expected = format!("{}-data", meta.name.trim_end_matches("-meta"));
        let data = members
            .iter()
            .find(|m| m.name == expected)
            .ok_or_else(|| archive_err(ArchiveError::NoData { expected }))?;
        file.seek(SeekFrom::Start(meta.offset))
            .map_err(io_error(path))?;
        let text = read_meta(&mut file, meta.size, path)?;
        let parsed = parse_sigmf(&text, data.size, options).map_err(|e| with_meta_path(e, path))?;
        Self::from_parts(
            path,
            parsed.format,
            parsed.sample_rate_hz,
            data.offset,
            Some(data.size),
            parsed.segments,
            parsed.warnings,
        )
    }

    fn from_parts(
        path: &Path,
        format: SampleFormat,
        sample_rate_hz: u32,
        data_offset: u64,
        data_len: Option<u64>,
        segments: Vec<Segment>,
        warnings: Vec<OpenWarning>,
    ) -> Result<Self, OpenError> {
        if sample_rate_hz == 0 {
            return Err(OpenError::ZeroSampleRate);
        }
        let mut file = File::open(path).map_err(io_error(path))?;
        let data_len = match data_len {
            Some(len) => len,
            None => file.metadata().map_err(io_error(path))?.len(),
        };
        file.seek(SeekFrom::Start(data_offset))
            .map_err(io_error(path))?;
        Ok(FileSource {
            file,
            path: path.to_owned(),
            format,
            sample_rate_hz,
            data_offset,
            samples: data_len / format.bytes_per_sample() as u64,
            segments,
            position: 0,
            segment: 0,
            warnings,
            looping: false,
            pacer: None,
            scratch: Vec::new(),
            delivered: 0,
        })
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

    /// Path of the sample data (the archive for a `.sigmf`).
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the caller should hear about how the recording was opened (conflicting values);
    /// empty when nothing is amiss.
    #[must_use]
    pub fn warnings(&self) -> &[OpenWarning] {
        &self.warnings
    }

    /// The recording's segments, each with its centre frequency; one for a raw file.
    #[must_use]
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whole samples in the recording.
    #[must_use]
    pub fn len_samples(&self) -> u64 {
        self.samples
    }

    fn rewind(&mut self) -> Result<(), SourceError> {
        self.file
            .seek(SeekFrom::Start(self.data_offset))
            .map_err(|source| SourceError::Io {
                what: "recording",
                source,
            })?;
        self.position = 0;
        self.segment = 0;
        Ok(())
    }

    /// Moves to the segment of the next sample.
    fn advance_segment(&mut self) {
        while self
            .segments
            .get(self.segment + 1)
            .is_some_and(|s| s.sample_start <= self.position)
        {
            self.segment += 1;
        }
    }

    /// Reads up to `want` bytes into `scratch`; fewer only at the end of the file.
    fn fill(&mut self, want: usize) -> Result<usize, SourceError> {
        let mut got = 0;
        while got < want {
            match self.file.read(&mut self.scratch[got..want]) {
                Ok(0) => break,
                Ok(n) => got += n,
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

fn with_meta_path(e: OpenError, path: &Path) -> OpenError {
    match e {
        OpenError::InvalidMeta { source, .. } => OpenError::InvalidMeta {
            path: path.to_owned(),
            source,
        },
        other => other,
    }
}

impl IqSource for FileSource {
    fn read_block(&mut self, block: &mut IqBlock) -> Result<ReadStatus, SourceError> {
        if self.position >= self.samples && self.looping && self.samples > 0 {
            self.rewind()?;
        }
        self.advance_segment();
        block.start(
            self.sample_rate_hz,
            self.center_frequency_hz(),
            samples_to_duration(self.delivered, self.sample_rate_hz),
        );
        let bps = self.format.bytes_per_sample();
        let mut added = 0;
        loop {
            let boundary = self
                .segments
                .get(self.segment + 1)
                .map_or(self.samples, |s| s.sample_start.min(self.samples));
            let left = boundary.saturating_sub(self.position);
            // min(remaining, left) fits usize because remaining does.
            let n = (block.remaining() as u64).min(left) as usize;
            if n == 0 {
                break;
            }
            let want = n * bps;
            if self.scratch.len() < want {
                self.scratch.resize(want, 0);
            }
            let got = self.fill(want)? / bps;
            if got < n {
                // The file shrank while open: end here.
                self.samples = self.position + got as u64;
            }
            let n = self.format.decode_into(&self.scratch[..got * bps], block);
            self.position += n as u64;
            added += n;
            self.advance_segment();
            // A single-segment recording loops seamlessly inside a block; with several
            // segments the wrap retunes, so the block ends there.
            let wrap = self.looping && self.segments.len() == 1 && self.samples > 0;
            if block.remaining() == 0 || !(wrap && self.position >= self.samples) {
                break;
            }
            self.rewind()?;
        }
        if added == 0 {
            return Ok(ReadStatus::End);
        }
        self.delivered += added as u64;
        if let Some(p) = &mut self.pacer {
            p.wait(added);
        }
        Ok(ReadStatus::Data)
    }

    fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }

    /// The centre frequency of the segment the next sample belongs to.
    fn center_frequency_hz(&self) -> u64 {
        self.segments
            .get(self.segment)
            .map_or(0, |s| s.center_frequency_hz)
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

    #[test]
    fn extensions_pick_the_format() {
        for (ext, format) in [
            ("cu8", SampleFormat::Cu8),
            ("cs8", SampleFormat::Cs8),
            ("cs16", SampleFormat::Ci16Le),
            ("cu16", SampleFormat::Cu16Le),
            ("cf32", SampleFormat::Cf32Le),
            ("CF32", SampleFormat::Cf32Le),
        ] {
            assert_eq!(SampleFormat::from_extension(ext), Some(format), "{ext}");
        }
        for ext in ["", "wav", "cu", "cs32", "sigmf", "data", "raw"] {
            assert_eq!(SampleFormat::from_extension(ext), None, "{ext}");
        }
        assert_eq!(SampleFormat::from_sigmf("ci8"), Some(SampleFormat::Cs8));
        assert_eq!(
            SampleFormat::from_sigmf("cu16_le"),
            Some(SampleFormat::Cu16Le)
        );
    }

    fn meta(captures: &str) -> String {
        format!(
            r#"{{"global": {{"core:datatype": "cu8", "core:sample_rate": 250000}}, "captures": {captures}}}"#
        )
    }

    fn parse(text: &str) -> Result<SigmfMeta, OpenError> {
        // 1000 cu8 samples of data.
        parse_sigmf(text, 2000, &FileOptions::default())
    }

    fn meta_error(text: &str) -> MetaError {
        match parse(text) {
            Err(OpenError::InvalidMeta { source, .. }) => source,
            other => panic!("expected InvalidMeta for {text}, got {other:?}"),
        }
    }

    #[test]
    fn every_capture_becomes_a_segment() {
        let m = parse(&meta(
            r#"[{"core:sample_start": 0, "core:frequency": 433920000},
                {"core:sample_start": 400, "core:frequency": 434.5e6},
                {"core:sample_start": 900}]"#,
        ))
        .unwrap();
        let starts: Vec<(u64, u64)> = m
            .segments
            .iter()
            .map(|s| (s.sample_start, s.center_frequency_hz))
            .collect();
        assert_eq!(
            starts,
            [(0, 433_920_000), (400, 434_500_000), (900, 434_500_000)]
        );
        assert_eq!((m.format, m.sample_rate_hz), (SampleFormat::Cu8, 250_000));
        assert!(m.warnings.is_empty());
    }

    #[test]
    fn hostile_metadata_gets_typed_errors() {
        assert!(matches!(meta_error("{not json"), MetaError::Json(_)));
        assert!(matches!(meta_error("[]"), MetaError::Missing { .. }));
        assert!(matches!(
            meta_error(r#"{"global": {"core:datatype": 5}}"#),
            MetaError::WrongType { .. }
        ));
        for (rate, expected_range) in [("\"fast\"", false), ("-5", true), ("1e300", true)] {
            let text = format!(
                r#"{{"global": {{"core:datatype": "cu8", "core:sample_rate": {rate}}}, "captures": []}}"#
            );
            let e = meta_error(&text);
            assert_eq!(
                matches!(e, MetaError::OutOfRange { .. }),
                expected_range,
                "{rate}: {e:?}"
            );
        }
        assert!(matches!(
            meta_error(&meta("\"x\"")),
            MetaError::WrongType { .. }
        ));
        assert!(matches!(
            meta_error(&meta("[5]")),
            MetaError::WrongType { .. }
        ));
        for start in ["-1", "1.5", "1e20", "18446744073709551616"] {
            let e = meta_error(&meta(&format!(
                r#"[{{"core:sample_start": {start}, "core:frequency": 1e8}}]"#
            )));
            assert!(matches!(e, MetaError::OutOfRange { .. }), "{start}: {e:?}");
        }
        assert!(matches!(
            meta_error(&meta(
                r#"[{"core:sample_start": "0", "core:frequency": 1e8}]"#
            )),
            MetaError::WrongType { .. }
        ));
        assert!(matches!(
            meta_error(&meta(
                r#"[{"core:sample_start": 1001, "core:frequency": 1e8}]"#
            )),
            MetaError::BeyondData {
                index: 0,
                sample_start: 1001,
                samples: 1000
            }
        ));
        assert!(matches!(
            meta_error(&meta(
                r#"[{"core:sample_start": 500, "core:frequency": 1e8}, {"core:sample_start": 100}]"#
            )),
            MetaError::OutOfOrder { index: 1 }
        ));
        assert!(matches!(
            meta_error(&meta(
                r#"[{"core:sample_start": 0, "core:frequency": 1e8}, {"core:sample_start": 0}]"#
            )),
            MetaError::OutOfOrder { index: 1 }
        ));
        for freq in ["1e300", "-1", "\"433M\"", "null"] {
            let e = meta_error(&meta(&format!(
                r#"[{{"core:sample_start": 0, "core:frequency": {freq}}}]"#
            )));
            assert!(
                matches!(
                    e,
                    MetaError::OutOfRange { .. } | MetaError::WrongType { .. }
                ),
                "{freq}: {e:?}"
            );
        }
        assert!(matches!(
            meta_error(&meta(r#"[{"core:sample_start": 0}]"#)),
            MetaError::Missing { .. }
        ));
        assert!(matches!(meta_error(&meta("[]")), MetaError::Missing { .. }));
        assert!(matches!(
            meta_error(
                r#"{"global": {"core:datatype": "cu8", "core:sample_rate": 1e6, "core:num_channels": 2}, "captures": []}"#
            ),
            MetaError::Unsupported { .. }
        ));
        assert!(matches!(
            meta_error(&meta(
                r#"[{"core:sample_start": 0, "core:frequency": 1e8, "core:header_bytes": 64}]"#
            )),
            MetaError::Unsupported { .. }
        ));
        assert!(matches!(
            parse(r#"{"global": {"core:datatype": "ri16_le"}}"#),
            Err(OpenError::UnsupportedDatatype { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn any_metadata_parses_or_errors_without_panicking(
            text in "[\\[\\]{}\":,0-9a-z_. e+-]{0,120}",
            bytes in 0u64..u64::MAX,
        ) {
            let _ = parse_sigmf(&text, bytes, &FileOptions::default());
            let _ = parse_sigmf(&meta(&text), bytes, &FileOptions::default());
        }
    }

    #[test]
    fn explicit_values_win_with_a_warning_unless_the_recording_retunes() {
        let one = meta(r#"[{"core:sample_start": 0, "core:frequency": 433920000}]"#);
        let options = FileOptions {
            sample_rate_hz: Some(1_000_000),
            center_frequency_hz: Some(868_300_000),
        };
        let m = parse_sigmf(&one, 2000, &options).unwrap();
        assert_eq!(m.sample_rate_hz, 1_000_000);
        assert_eq!(m.segments[0].center_frequency_hz, 868_300_000);
        assert_eq!(
            m.warnings,
            [
                OpenWarning::Conflict {
                    setting: "sample rate",
                    in_file: 250_000,
                    explicit: 1_000_000
                },
                OpenWarning::Conflict {
                    setting: "centre frequency",
                    in_file: 433_920_000,
                    explicit: 868_300_000
                },
            ]
        );
        // The same values: no warning.
        let same = FileOptions {
            sample_rate_hz: Some(250_000),
            center_frequency_hz: Some(433_920_000),
        };
        assert!(parse_sigmf(&one, 2000, &same).unwrap().warnings.is_empty());
        // A retuning recording keeps its frequencies.
        let two = meta(
            r#"[{"core:sample_start": 0, "core:frequency": 433920000},
                {"core:sample_start": 10, "core:frequency": 434000000}]"#,
        );
        let m = parse_sigmf(&two, 2000, &options).unwrap();
        assert_eq!(m.segments[1].center_frequency_hz, 434_000_000);
        assert!(m.warnings.contains(&OpenWarning::FrequencyIgnored {
            explicit_hz: 868_300_000,
            captures: 2
        }));
        // Missing values come from the caller without a warning.
        let bare =
            r#"{"global": {"core:datatype": "cu8"}, "captures": [{"core:sample_start": 0}]}"#;
        let m = parse_sigmf(bare, 2000, &options).unwrap();
        assert_eq!(
            (m.sample_rate_hz, m.segments[0].center_frequency_hz),
            (1_000_000, 868_300_000)
        );
        assert!(m.warnings.is_empty());
    }
}
