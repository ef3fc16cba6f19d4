//! Coordination state snapshots: a compact MessagePack layout, LZ4 block compression,
//! and a bounded history that deduplicates consecutive snapshots by content.
//!
//! # Layout (version 1)
//! One MessagePack array, positional, integers in their most compact form:
//!
//! ```text
//! [ 1,                                  layout version
//!   taken_at_ns,                        T
//!   safety_bits,                        SafetyState::bits
//!   current,                            source id or nil
//!   held_since_ns,                      T
//!   [ [source, verdict, recovered_at_ns or nil (T)], ... ],        link tracking, by source
//!   [ [dt_ns, ...] (T),                 decisions, oldest first, one column per field
//!     [source, ...],
//!     [reason, ...],                    Reason code
//!     [fallback, ...],
//!     [switched_from or nil, ...] ]
//! ]
//! ```
//!
//! Times are nanoseconds since the coordinator's epoch, at most `i64::MAX`; a decision's
//! `dt_ns` is the signed difference from the previous decision's time (from 0 for the
//! first). Decisions are stored column by column so that a steady history is a few long
//! runs of equal bytes; what LZ4 cannot shrink is the time column when decision times
//! jitter, and [`SnapshotHistory`] removes most of that by compressing each snapshot
//! against the previous one.
//!
//! Codes: link verdict 0 usable, 1 degraded, 2 lost. Reason 0 initial, 1 hold, 2 dwell,
//! 3 better_score, 4 stale, 5 no_data, 6 link_lost, 7 link_degraded, 8 recovering,
//! 16 + n safety with the n-th level of [`SafetyLevel::ALL`](crate::SafetyLevel::ALL).
//!
//! # Content hash
//! [`CoordSnapshot::content_hash`] is XXH64 (seed 0) over the same encoding with every
//! field marked T omitted (a present `recovered_at` is written as `true`). Two snapshots
//! with equal hashes and equal canonical bytes differ at most in their timestamps;
//! [`SnapshotHistory`] compares both, so deduplication is exact, never "similar enough".

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use rmp::encode::{ByteBuf, ValueWriteError};
use sarlink_schema::SourceId;

use crate::authority::SafetyState;
use crate::coordinator::Config;
use crate::decision::{Decision, Reason};
use crate::link::LinkVerdict;

/// Layout version written by [`CoordSnapshot::encode`].
pub const SNAPSHOT_VERSION: u8 = 1;

/// Largest encoded snapshot accepted by the decoders (1 MiB).
pub const MAX_SNAPSHOT_LEN: usize = 1 << 20;

/// Link tracking of one source in a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkSnapshot {
    /// The source whose records the link carries.
    pub source: SourceId,
    /// The latest verdict.
    pub verdict: LinkVerdict,
    /// Start of a hold-down still running, if any.
    pub recovered_at: Option<Duration>,
}

/// One decision in a snapshot: a [`Decision`] without its scores (scores are
/// measurements, not coordination state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecisionRecord {
    /// When the decision was taken.
    pub at: Duration,
    /// The selected source.
    pub source: SourceId,
    /// Whether it was a fallback.
    pub fallback: bool,
    /// Why.
    pub reason: Reason,
    /// The previous source, when the decision switched.
    pub switched_from: Option<SourceId>,
}

impl From<&Decision> for DecisionRecord {
    fn from(d: &Decision) -> Self {
        DecisionRecord {
            at: d.at,
            source: d.source,
            fallback: d.fallback,
            reason: d.reason,
            switched_from: d.switched_from,
        }
    }
}

impl From<DecisionRecord> for Decision {
    fn from(r: DecisionRecord) -> Self {
        Decision {
            at: r.at,
            source: r.source,
            fallback: r.fallback,
            reason: r.reason,
            score_drone_db: None,
            score_ground_db: None,
            switched_from: r.switched_from,
        }
    }
}

/// The coordination state at one instant (see [`Coordinator::snapshot`](crate::Coordinator::snapshot)).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CoordSnapshot {
    /// When the snapshot was taken.
    pub taken_at: Duration,
    /// The drone's safety state.
    pub safety: SafetyState,
    /// The selected source.
    pub current: Option<SourceId>,
    /// When the selected source was selected.
    pub held_since: Duration,
    /// Link tracking, one entry per source with a link report, by source.
    pub links: Vec<LinkSnapshot>,
    /// The decision history, oldest first.
    pub decisions: Vec<DecisionRecord>,
}

/// Why a snapshot could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotEncodeError {
    /// A time was above `i64::MAX` nanoseconds.
    #[error("{field} is beyond i64::MAX nanoseconds")]
    TimeOutOfRange {
        /// Which field.
        field: &'static str,
    },
    /// A list was longer than the layout allows.
    #[error("{field} has {len} entries, more than {max}")]
    TooManyEntries {
        /// Which list.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Why bytes could not be decoded into a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotDecodeError {
    /// The bytes end early or a value has the wrong MessagePack type.
    #[error("malformed snapshot at {field}")]
    Malformed {
        /// The field being read.
        field: &'static str,
    },
    /// A layout version this crate does not read.
    #[error("unsupported snapshot version {version}")]
    UnsupportedVersion {
        /// The version found.
        version: u64,
    },
    /// A value out of its domain (unknown code, unknown safety bit, wrong arity).
    #[error("invalid value {value} for {field}")]
    InvalidValue {
        /// The field.
        field: &'static str,
        /// The value found.
        value: u64,
    },
    /// A list longer than the layout allows.
    #[error("{field} claims {len} entries, more than {max}")]
    TooManyEntries {
        /// Which list.
        field: &'static str,
        /// The claimed length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A time outside `0..=i64::MAX` nanoseconds.
    #[error("{field} is outside 0..=i64::MAX nanoseconds")]
    TimeOutOfRange {
        /// Which field.
        field: &'static str,
    },
    /// Bytes left after the snapshot.
    #[error("{count} trailing bytes after the snapshot")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A claimed uncompressed length above [`MAX_SNAPSHOT_LEN`].
    #[error("uncompressed length {raw_len} exceeds {max}")]
    TooLarge {
        /// The claimed length.
        raw_len: usize,
        /// The limit.
        max: usize,
    },
    /// The LZ4 block is corrupt or does not expand to exactly the claimed length.
    #[error("lz4 block does not decompress to {raw_len} bytes")]
    Decompress {
        /// The claimed length.
        raw_len: usize,
    },
}

/// Whether time fields are written (the stored form) or omitted (the hashed form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Full,
    Canonical,
}

fn infallible<T>(r: Result<T, ValueWriteError<Infallible>>) -> T {
    match r {
        Ok(v) => v,
        Err(ValueWriteError::InvalidMarkerWrite(e) | ValueWriteError::InvalidDataWrite(e)) => {
            match e {}
        }
    }
}

fn write_nil(buf: &mut ByteBuf) {
    match rmp::encode::write_nil(buf) {
        Ok(()) => {}
        Err(e) => match e {},
    }
}

fn write_bool(buf: &mut ByteBuf, v: bool) {
    match rmp::encode::write_bool(buf, v) {
        Ok(()) => {}
        Err(e) => match e {},
    }
}

fn time_ns(t: Duration, field: &'static str) -> Result<i64, SnapshotEncodeError> {
    i64::try_from(t.as_nanos()).map_err(|_| SnapshotEncodeError::TimeOutOfRange { field })
}

/// Most links a snapshot holds (one per possible source id).
const MAX_LINKS: usize = 256;

impl CoordSnapshot {
    /// Encodes the snapshot in the compact layout (see the [module documentation](self)).
    ///
    /// # Errors
    /// [`SnapshotEncodeError`] for a time above `i64::MAX` ns or more than 256 links or
    /// [`Config::MAX_HISTORY`] decisions.
    pub fn encode(&self) -> Result<Vec<u8>, SnapshotEncodeError> {
        let mut buf = ByteBuf::from_vec(Vec::with_capacity(16 + self.decisions.len() * 8));
        self.write(&mut buf, Form::Full)?;
        Ok(buf.into_vec())
    }

    /// The encoding without time fields: what [`CoordSnapshot::content_hash`] hashes.
    ///
    /// # Errors
    /// As [`CoordSnapshot::encode`].
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, SnapshotEncodeError> {
        let mut buf = ByteBuf::from_vec(Vec::with_capacity(16 + self.decisions.len() * 5));
        self.write(&mut buf, Form::Canonical)?;
        Ok(buf.into_vec())
    }

    /// XXH64 (seed 0) of [`CoordSnapshot::canonical_bytes`]: equal for snapshots that
    /// differ only in time fields.
    ///
    /// # Errors
    /// As [`CoordSnapshot::encode`].
    pub fn content_hash(&self) -> Result<u64, SnapshotEncodeError> {
        Ok(xxhash_rust::xxh64::xxh64(&self.canonical_bytes()?, 0))
    }

    fn write(&self, buf: &mut ByteBuf, form: Form) -> Result<(), SnapshotEncodeError> {
        use rmp::encode::{write_array_len, write_sint, write_uint};
        if self.links.len() > MAX_LINKS {
            return Err(SnapshotEncodeError::TooManyEntries {
                field: "links",
                len: self.links.len(),
                max: MAX_LINKS,
            });
        }
        if self.decisions.len() > Config::MAX_HISTORY {
            return Err(SnapshotEncodeError::TooManyEntries {
                field: "decisions",
                len: self.decisions.len(),
                max: Config::MAX_HISTORY,
            });
        }
        let full = form == Form::Full;
        let write_opt_source = |buf: &mut ByteBuf, s: Option<SourceId>| match s {
            Some(s) => {
                infallible(write_uint(buf, u64::from(s.get())));
            }
            None => write_nil(buf),
        };
        infallible(write_array_len(buf, if full { 7 } else { 5 }));
        infallible(write_uint(buf, u64::from(SNAPSHOT_VERSION)));
        if full {
            infallible(write_sint(buf, time_ns(self.taken_at, "taken_at")?));
        }
        infallible(write_uint(buf, u64::from(self.safety.bits())));
        write_opt_source(buf, self.current);
        if full {
            infallible(write_sint(buf, time_ns(self.held_since, "held_since")?));
        }
        // Cast invariant (both lists): lengths checked above, far below u32::MAX.
        infallible(write_array_len(buf, self.links.len() as u32));
        for l in &self.links {
            infallible(write_array_len(buf, 3));
            infallible(write_uint(buf, u64::from(l.source.get())));
            infallible(write_uint(buf, u64::from(l.verdict.code())));
            match (l.recovered_at, full) {
                (None, _) => write_nil(buf),
                (Some(t), true) => {
                    infallible(write_sint(buf, time_ns(t, "recovered_at")?));
                }
                (Some(_), false) => write_bool(buf, true),
            }
        }
        // Decisions, column by column: steady histories give long runs of equal bytes.
        let n = self.decisions.len() as u32;
        infallible(write_array_len(buf, if full { 5 } else { 4 }));
        if full {
            infallible(write_array_len(buf, n));
            let mut prev = 0i64;
            for d in &self.decisions {
                let at = time_ns(d.at, "decisions.at")?;
                // Both in 0..=i64::MAX, so the difference fits in i64.
                infallible(write_sint(buf, at - prev));
                prev = at;
            }
        }
        infallible(write_array_len(buf, n));
        for d in &self.decisions {
            infallible(write_uint(buf, u64::from(d.source.get())));
        }
        infallible(write_array_len(buf, n));
        for d in &self.decisions {
            infallible(write_uint(buf, u64::from(d.reason.code())));
        }
        infallible(write_array_len(buf, n));
        for d in &self.decisions {
            write_bool(buf, d.fallback);
        }
        infallible(write_array_len(buf, n));
        for d in &self.decisions {
            write_opt_source(buf, d.switched_from);
        }
        Ok(())
    }

    /// Decodes the compact layout.
    ///
    /// # Errors
    /// [`SnapshotDecodeError`] for anything that is not exactly one valid version-1
    /// snapshot; never panics, and allocates at most in proportion to `bytes.len()`.
    pub fn decode(bytes: &[u8]) -> Result<Self, SnapshotDecodeError> {
        if bytes.len() > MAX_SNAPSHOT_LEN {
            return Err(SnapshotDecodeError::TooLarge {
                raw_len: bytes.len(),
                max: MAX_SNAPSHOT_LEN,
            });
        }
        let mut rd = Reader { rest: bytes };
        rd.array(7, "snapshot")?;
        let version = rd.uint("version")?;
        if version != u64::from(SNAPSHOT_VERSION) {
            return Err(SnapshotDecodeError::UnsupportedVersion { version });
        }
        let taken_at = rd.time("taken_at")?;
        let bits = rd.uint("safety")?;
        let safety = u8::try_from(bits)
            .ok()
            .and_then(SafetyState::from_bits)
            .ok_or(SnapshotDecodeError::InvalidValue {
                field: "safety",
                value: bits,
            })?;
        let current = rd.opt_source("current")?;
        let held_since = rd.time("held_since")?;

        let n = rd.list_len("links", MAX_LINKS, 4)?;
        let mut links = Vec::with_capacity(n);
        for _ in 0..n {
            rd.array(3, "links[]")?;
            let source = rd.source("links.source")?;
            let code = rd.uint("links.verdict")?;
            let verdict = u8::try_from(code)
                .ok()
                .and_then(LinkVerdict::from_code)
                .ok_or(SnapshotDecodeError::InvalidValue {
                    field: "links.verdict",
                    value: code,
                })?;
            let recovered_at = if rd.take_nil() {
                None
            } else {
                Some(rd.time("links.recovered_at")?)
            };
            links.push(LinkSnapshot {
                source,
                verdict,
                recovered_at,
            });
        }

        rd.array(5, "decisions")?;
        // Every column holds n entries of at least one byte each: 5n bytes at least.
        let n = rd.list_len("decisions.at", Config::MAX_HISTORY, 5)?;
        let mut decisions = Vec::with_capacity(n);
        let mut at: i64 = 0;
        for _ in 0..n {
            let dt = rd.int("decisions.at")?;
            at = at.checked_add(dt).filter(|t| *t >= 0).ok_or(
                SnapshotDecodeError::TimeOutOfRange {
                    field: "decisions.at",
                },
            )?;
            decisions.push(DecisionRecord {
                // Cast invariant: `at` was checked non-negative.
                at: Duration::from_nanos(at as u64),
                source: SourceId::DRONE,
                fallback: false,
                reason: Reason::Initial,
                switched_from: None,
            });
        }
        rd.column_len(n, "decisions.source")?;
        for d in &mut decisions {
            d.source = rd.source("decisions.source")?;
        }
        rd.column_len(n, "decisions.reason")?;
        for d in &mut decisions {
            let code = rd.uint("decisions.reason")?;
            d.reason = u8::try_from(code).ok().and_then(Reason::from_code).ok_or(
                SnapshotDecodeError::InvalidValue {
                    field: "decisions.reason",
                    value: code,
                },
            )?;
        }
        rd.column_len(n, "decisions.fallback")?;
        for d in &mut decisions {
            d.fallback = rd.bool("decisions.fallback")?;
        }
        rd.column_len(n, "decisions.switched_from")?;
        for d in &mut decisions {
            d.switched_from = rd.opt_source("decisions.switched_from")?;
        }
        if !rd.rest.is_empty() {
            return Err(SnapshotDecodeError::TrailingBytes {
                count: rd.rest.len(),
            });
        }
        Ok(CoordSnapshot {
            taken_at,
            safety,
            current,
            held_since,
            links,
            decisions,
        })
    }

    /// Encodes and LZ4-compresses (block format; the uncompressed length is kept by the
    /// caller, see [`StoredSnapshot`]). Returns `(raw_len, compressed)`.
    ///
    /// # Errors
    /// As [`CoordSnapshot::encode`].
    pub fn compress(&self) -> Result<(usize, Vec<u8>), SnapshotEncodeError> {
        let raw = self.encode()?;
        Ok((raw.len(), lz4_flex::block::compress(&raw)))
    }

    /// Decompresses an LZ4 block of exactly `raw_len` bytes and decodes it.
    ///
    /// # Errors
    /// [`SnapshotDecodeError::TooLarge`] when `raw_len` exceeds [`MAX_SNAPSHOT_LEN`]
    /// (checked before allocating), [`SnapshotDecodeError::Decompress`] for a corrupt block
    /// or a length mismatch, and any error of [`CoordSnapshot::decode`].
    pub fn decompress(compressed: &[u8], raw_len: usize) -> Result<Self, SnapshotDecodeError> {
        Self::decode(&decompress_raw(compressed, raw_len, None)?)
    }
}

/// A cursor over MessagePack bytes that maps every failure to a field name.
struct Reader<'a> {
    rest: &'a [u8],
}

impl Reader<'_> {
    fn malformed(field: &'static str) -> SnapshotDecodeError {
        SnapshotDecodeError::Malformed { field }
    }

    fn array(&mut self, len: u32, field: &'static str) -> Result<(), SnapshotDecodeError> {
        let n = rmp::decode::read_array_len(&mut self.rest).map_err(|_| Self::malformed(field))?;
        if n != len {
            return Err(SnapshotDecodeError::InvalidValue {
                field,
                value: u64::from(n),
            });
        }
        Ok(())
    }

    /// Reads a list length and checks it against `max` and against the bytes left (each
    /// entry takes at least `min_entry_len` bytes), before anything is allocated.
    fn list_len(
        &mut self,
        field: &'static str,
        max: usize,
        min_entry_len: usize,
    ) -> Result<usize, SnapshotDecodeError> {
        let n = rmp::decode::read_array_len(&mut self.rest).map_err(|_| Self::malformed(field))?;
        let n_usize = usize::try_from(n).unwrap_or(usize::MAX);
        if n_usize > max {
            return Err(SnapshotDecodeError::TooManyEntries {
                field,
                len: u64::from(n),
                max,
            });
        }
        if n_usize.saturating_mul(min_entry_len) > self.rest.len() {
            return Err(Self::malformed(field));
        }
        Ok(n_usize)
    }

    /// Reads a column length that must equal `n`.
    fn column_len(&mut self, n: usize, field: &'static str) -> Result<(), SnapshotDecodeError> {
        let len =
            rmp::decode::read_array_len(&mut self.rest).map_err(|_| Self::malformed(field))?;
        if usize::try_from(len).ok() != Some(n) {
            return Err(SnapshotDecodeError::InvalidValue {
                field,
                value: u64::from(len),
            });
        }
        Ok(())
    }

    fn uint(&mut self, field: &'static str) -> Result<u64, SnapshotDecodeError> {
        rmp::decode::read_int(&mut self.rest).map_err(|_| Self::malformed(field))
    }

    fn int(&mut self, field: &'static str) -> Result<i64, SnapshotDecodeError> {
        rmp::decode::read_int(&mut self.rest).map_err(|_| Self::malformed(field))
    }

    fn time(&mut self, field: &'static str) -> Result<Duration, SnapshotDecodeError> {
        let ns = self.int(field)?;
        u64::try_from(ns)
            .map(Duration::from_nanos)
            .map_err(|_| SnapshotDecodeError::TimeOutOfRange { field })
    }

    fn bool(&mut self, field: &'static str) -> Result<bool, SnapshotDecodeError> {
        rmp::decode::read_bool(&mut self.rest).map_err(|_| Self::malformed(field))
    }

    fn source(&mut self, field: &'static str) -> Result<SourceId, SnapshotDecodeError> {
        let v = self.uint(field)?;
        u8::try_from(v)
            .map(SourceId::new)
            .map_err(|_| SnapshotDecodeError::InvalidValue { field, value: v })
    }

    /// Consumes a nil if one is next.
    fn take_nil(&mut self) -> bool {
        match self.rest.split_first() {
            Some((0xc0, rest)) => {
                self.rest = rest;
                true
            }
            _ => false,
        }
    }

    fn opt_source(&mut self, field: &'static str) -> Result<Option<SourceId>, SnapshotDecodeError> {
        if self.take_nil() {
            Ok(None)
        } else {
            self.source(field).map(Some)
        }
    }
}

/// Decompresses an LZ4 block of exactly `raw_len` bytes, optionally against a dictionary
/// (the encoding of the previous stored snapshot). `raw_len` is bounded before allocating.
fn decompress_raw(
    compressed: &[u8],
    raw_len: usize,
    dict: Option<&[u8]>,
) -> Result<Vec<u8>, SnapshotDecodeError> {
    if raw_len > MAX_SNAPSHOT_LEN {
        return Err(SnapshotDecodeError::TooLarge {
            raw_len,
            max: MAX_SNAPSHOT_LEN,
        });
    }
    let mut raw = vec![0u8; raw_len];
    let n = match dict {
        None => lz4_flex::block::decompress_into(compressed, &mut raw),
        Some(dict) => lz4_flex::block::decompress_into_with_dict(compressed, &mut raw, dict),
    };
    match n {
        Ok(n) if n == raw_len => Ok(raw),
        _ => Err(SnapshotDecodeError::Decompress { raw_len }),
    }
}

/// One entry of a [`SnapshotHistory`]: a compressed snapshot and the span of consecutive
/// snapshots with the same content it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSnapshot {
    content_hash: u64,
    canonical: Vec<u8>,
    first_taken_at: Duration,
    last_taken_at: Duration,
    repeats: u64,
    raw_len: usize,
    compressed: Vec<u8>,
    chained: bool,
}

impl StoredSnapshot {
    /// The content hash shared by every snapshot this entry stands for.
    pub fn content_hash(&self) -> u64 {
        self.content_hash
    }

    /// When the first snapshot with this content was taken (the one stored).
    pub fn first_taken_at(&self) -> Duration {
        self.first_taken_at
    }

    /// When the last snapshot with this content was taken.
    pub fn last_taken_at(&self) -> Duration {
        self.last_taken_at
    }

    /// How many consecutive snapshots were deduplicated into this entry (0 = none).
    pub fn repeats(&self) -> u64 {
        self.repeats
    }

    /// Length of the uncompressed encoding.
    pub fn raw_len(&self) -> usize {
        self.raw_len
    }

    /// The LZ4 block.
    pub fn compressed(&self) -> &[u8] {
        &self.compressed
    }

    /// Whether the block was compressed with the previous entry's encoding as LZ4
    /// dictionary (then it decodes only after that entry; see [`SnapshotHistory::decode`]).
    /// The oldest entry is never chained.
    pub fn is_chained(&self) -> bool {
        self.chained
    }
}

/// What [`SnapshotHistory::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Stored as a new entry; `evicted` says whether the oldest entry made room.
    Stored {
        /// Whether the oldest entry was evicted.
        evicted: bool,
    },
    /// Same content as the newest entry (times aside): counted into it, not stored.
    Deduplicated,
}

/// Counters of a [`SnapshotHistory`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SnapshotStats {
    /// Snapshots pushed.
    pub taken: u64,
    /// Snapshots stored as new entries.
    pub stored: u64,
    /// Snapshots deduplicated into the previous entry.
    pub deduplicated: u64,
    /// Uncompressed bytes of the stored snapshots.
    pub raw_bytes: u64,
    /// Compressed bytes of the stored snapshots, as stored when pushed.
    pub compressed_bytes: u64,
    /// Entries recompressed without a dictionary when they became the oldest.
    pub rebased: u64,
}

impl SnapshotStats {
    /// Fraction of bytes saved by compression over the stored snapshots (`0.0` if none).
    pub fn compression_saving(&self) -> f64 {
        if self.raw_bytes == 0 {
            0.0
        } else {
            1.0 - self.compressed_bytes as f64 / self.raw_bytes as f64
        }
    }

    /// Fraction of pushed snapshots eliminated by deduplication (`0.0` if none).
    pub fn dedup_ratio(&self) -> f64 {
        if self.taken == 0 {
            0.0
        } else {
            self.deduplicated as f64 / self.taken as f64
        }
    }
}

/// Why [`SnapshotHistory::push`] failed; the history is then unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotPushError {
    /// The snapshot could not be encoded.
    #[error("cannot encode snapshot")]
    Encode(#[from] SnapshotEncodeError),
    /// The entry that was to become the oldest could not be decoded for rebasing; only
    /// possible if the history's memory was corrupted.
    #[error("cannot rebase the oldest snapshot")]
    Rebase(#[source] SnapshotDecodeError),
}

/// A bounded history of compressed snapshots; consecutive snapshots with the same content
/// (times aside) are stored once.
///
/// Each stored snapshot is LZ4-compressed with the previous stored snapshot's encoding as
/// dictionary: consecutive snapshots share most of their decision history, so this
/// removes it even where decision times jitter. When the oldest entry is evicted, the next
/// one is recompressed on its own, so the oldest entry always decodes by itself.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use sarlink_coord::{Config, Coordinator, PushOutcome, SnapshotHistory};
///
/// let mut c = Coordinator::new(Config::default())?;
/// let mut h = SnapshotHistory::new(16);
/// assert!(matches!(h.push(&c.snapshot(Duration::ZERO))?, PushOutcome::Stored { .. }));
/// // Nothing changed but the time: deduplicated.
/// assert_eq!(h.push(&c.snapshot(Duration::from_secs(1)))?, PushOutcome::Deduplicated);
/// c.decide(Duration::from_secs(2));
/// let snap = c.snapshot(Duration::from_secs(2));
/// assert!(matches!(h.push(&snap)?, PushOutcome::Stored { .. }));
/// assert_eq!(h.len(), 2);
/// assert_eq!(h.decode(1)?, snap);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct SnapshotHistory {
    entries: VecDeque<StoredSnapshot>,
    capacity: usize,
    /// Encoding of the newest stored snapshot: the dictionary for the next one.
    last_raw: Vec<u8>,
    stats: SnapshotStats,
}

impl SnapshotHistory {
    /// An empty history keeping at most `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        SnapshotHistory {
            entries: VecDeque::with_capacity(capacity),
            capacity,
            last_raw: Vec::new(),
            stats: SnapshotStats::default(),
        }
    }

    /// Adds a snapshot: deduplicated into the newest entry when its content (times aside)
    /// is identical (compared byte for byte, not only by hash), otherwise encoded,
    /// compressed and stored, evicting the oldest entry when full.
    ///
    /// # Errors
    /// [`SnapshotPushError`]; the history is then unchanged.
    pub fn push(&mut self, snapshot: &CoordSnapshot) -> Result<PushOutcome, SnapshotPushError> {
        let canonical = snapshot.canonical_bytes()?;
        let hash = xxhash_rust::xxh64::xxh64(&canonical, 0);
        if let Some(last) = self.entries.back_mut() {
            if last.content_hash == hash && last.canonical == canonical {
                last.repeats += 1;
                last.last_taken_at = snapshot.taken_at;
                self.stats.taken += 1;
                self.stats.deduplicated += 1;
                return Ok(PushOutcome::Deduplicated);
            }
        }
        let raw = snapshot.encode()?;
        let evicted = self.entries.len() == self.capacity;
        if evicted {
            self.evict_oldest()?;
        }
        let (compressed, chained) = if self.entries.is_empty() {
            (lz4_flex::block::compress(&raw), false)
        } else {
            (
                lz4_flex::block::compress_with_dict(&raw, &self.last_raw),
                true,
            )
        };
        self.stats.taken += 1;
        self.stats.stored += 1;
        self.stats.raw_bytes += raw.len() as u64;
        self.stats.compressed_bytes += compressed.len() as u64;
        self.entries.push_back(StoredSnapshot {
            content_hash: hash,
            canonical,
            first_taken_at: snapshot.taken_at,
            last_taken_at: snapshot.taken_at,
            repeats: 0,
            raw_len: raw.len(),
            compressed,
            chained,
        });
        self.last_raw = raw;
        Ok(PushOutcome::Stored { evicted })
    }

    /// Drops the oldest entry and recompresses the next one without a dictionary. Leaves
    /// the history unchanged on error.
    fn evict_oldest(&mut self) -> Result<(), SnapshotPushError> {
        if let (Some(oldest), Some(next)) = (self.entries.front(), self.entries.get(1)) {
            if next.chained {
                let dict = decompress_raw(&oldest.compressed, oldest.raw_len, None)
                    .map_err(SnapshotPushError::Rebase)?;
                let raw = decompress_raw(&next.compressed, next.raw_len, Some(&dict))
                    .map_err(SnapshotPushError::Rebase)?;
                let next = &mut self.entries[1];
                next.compressed = lz4_flex::block::compress(&raw);
                next.chained = false;
                self.stats.rebased += 1;
            }
        }
        self.entries.pop_front();
        Ok(())
    }

    /// Decodes the entry at `index` (0 = oldest), following the dictionary chain from the
    /// oldest entry.
    ///
    /// # Errors
    /// [`SnapshotDecodeError::InvalidValue`] with field `"index"` for an index past the
    /// end; any other [`SnapshotDecodeError`] only if the history's memory was corrupted.
    pub fn decode(&self, index: usize) -> Result<CoordSnapshot, SnapshotDecodeError> {
        if index >= self.entries.len() {
            return Err(SnapshotDecodeError::InvalidValue {
                field: "index",
                value: index as u64,
            });
        }
        // Start at the nearest unchained entry at or before `index`.
        let start = (0..=index)
            .rev()
            .find(|&i| !self.entries[i].chained)
            .unwrap_or(0);
        let mut raw: Vec<u8> = Vec::new();
        for (i, e) in self.entries.iter().enumerate().take(index + 1).skip(start) {
            let dict = (i > start && e.chained).then_some(raw.as_slice());
            raw = decompress_raw(&e.compressed, e.raw_len, dict)?;
        }
        CoordSnapshot::decode(&raw)
    }

    /// Decodes the newest entry.
    ///
    /// # Errors
    /// As [`SnapshotHistory::decode`]; [`SnapshotDecodeError::InvalidValue`] when empty.
    pub fn decode_latest(&self) -> Result<CoordSnapshot, SnapshotDecodeError> {
        match self.entries.len() {
            0 => Err(SnapshotDecodeError::InvalidValue {
                field: "index",
                value: 0,
            }),
            // The newest encoding is kept as the next dictionary: no chain to follow.
            _ => CoordSnapshot::decode(&self.last_raw),
        }
    }

    /// The entries, oldest first.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &StoredSnapshot> + DoubleEndedIterator {
        self.entries.iter()
    }

    /// The newest entry.
    pub fn latest(&self) -> Option<&StoredSnapshot> {
        self.entries.back()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The counters.
    pub fn stats(&self) -> SnapshotStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_rejects_trailing_bytes_and_bad_version() {
        let s = CoordSnapshot {
            taken_at: Duration::from_secs(3),
            safety: SafetyState::NOMINAL,
            current: None,
            held_since: Duration::ZERO,
            links: vec![],
            decisions: vec![],
        };
        let mut bytes = s.encode().unwrap();
        assert_eq!(CoordSnapshot::decode(&bytes), Ok(s.clone()));
        bytes.push(0);
        assert_eq!(
            CoordSnapshot::decode(&bytes),
            Err(SnapshotDecodeError::TrailingBytes { count: 1 })
        );
        let mut v2 = s.encode().unwrap();
        v2[1] = 2;
        assert_eq!(
            CoordSnapshot::decode(&v2),
            Err(SnapshotDecodeError::UnsupportedVersion { version: 2 })
        );
    }

    #[test]
    fn decompress_checks_claimed_length_first() {
        assert_eq!(
            CoordSnapshot::decompress(&[0; 4], MAX_SNAPSHOT_LEN + 1),
            Err(SnapshotDecodeError::TooLarge {
                raw_len: MAX_SNAPSHOT_LEN + 1,
                max: MAX_SNAPSHOT_LEN
            })
        );
        let (len, block) = CoordSnapshot {
            taken_at: Duration::ZERO,
            safety: SafetyState::NOMINAL,
            current: Some(SourceId::GROUND),
            held_since: Duration::ZERO,
            links: vec![],
            decisions: vec![],
        }
        .compress()
        .unwrap();
        assert_eq!(
            CoordSnapshot::decompress(&block, len + 1),
            Err(SnapshotDecodeError::Decompress { raw_len: len + 1 })
        );
    }

    #[test]
    fn encode_rejects_times_beyond_i64() {
        let s = CoordSnapshot {
            taken_at: Duration::from_secs(u64::MAX),
            safety: SafetyState::NOMINAL,
            current: None,
            held_since: Duration::ZERO,
            links: vec![],
            decisions: vec![],
        };
        assert_eq!(
            s.encode(),
            Err(SnapshotEncodeError::TimeOutOfRange { field: "taken_at" })
        );
    }
}
