//! Record and decision output: JSON lines (default), CSV, or nothing; and, side by side
//! with the writer, the reader that recovers stream positions from what was written.
//!
//! # Formats
//!
//! Both formats carry the same fields under the same names ([`COLUMNS`]); JSON lines omit
//! the fields that do not apply to a row's `type`, CSV leaves those cells empty.
//!
//! - 64-bit identifiers: `stream` is written as a string in JSON (it is random and usually
//!   above 2^53, which jq, JavaScript and pandas' float parsing would round); `seq` counts
//!   from 0 and stays far below 2^53, so it is a number. `timestamp_ns` is a number (ns since
//!   the Unix epoch), and `time` repeats it as ISO 8601 UTC with nanoseconds.
//! - Power: `rssi` and `noise` are in the `units` the measuring node declared: `dbm` when
//!   calibrated, `dbfs` when not. `smoothing` is the EWMA alpha when the node smoothed the
//!   value, absent (empty) when it did not.
//! - CSV follows RFC 4180: a cell with a comma, a double quote, CR or LF is quoted, quotes
//!   doubled. A text cell (node, reason) that a spreadsheet would run as a formula (starting
//!   with `=`, `+`, `-` or `@`) or that starts with `'` is written with one `'` in front;
//!   readers remove one leading `'` from text cells. The header row is written only when the
//!   file is empty.
//!
//! # Writing and failures
//!
//! [`Output::write`] formats into memory; [`Output::commit`] hands everything formatted so
//! far to the operating system in one write and reports whether it all got there. After a
//! failed commit the formatted lines are dropped (the caller has not acknowledged them; the
//! sender still holds them) and the next successful commit starts with a line break, so a
//! line cut short by the failure stays a line of its own that readers skip.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use sarlink_schema::{Decision, RssiRecord, RssiUnits};

/// Longest line (or CSV record) the recovery reader accepts: 64 KiB. Longer ones are
/// skipped and counted.
pub const MAX_LINE: usize = 64 * 1024;

/// The field names, in CSV column order.
pub const COLUMNS: [&str; 34] = [
    "type",
    "node",
    "stream",
    "seq",
    "timestamp_ns",
    "time",
    "rssi",
    "noise",
    "units",
    "frequency_hz",
    "source_id",
    "quality_score",
    "snr_db",
    "smoothing",
    "stale",
    "detected",
    "pulses",
    "pulse",
    "pulse_width_us",
    "pulse_start_ns",
    "pulse_interval_ms",
    "last_pulse",
    "last_pulse_age_ms",
    "burst",
    "offset_hz",
    "clip_fraction",
    "lat_e7",
    "lon_e7",
    "alt_m",
    "heading_deg",
    "fallback",
    "reason",
    "score_drone",
    "score_ground",
];

/// One line of output, as the drone and ground cores emit it.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A record measured by `node`, numbered `seq` in its `stream`.
    Record {
        /// The node that measured it.
        node: Arc<str>,
        /// That node's stream.
        stream: u64,
        /// Its number in the stream.
        seq: u64,
        /// Units of its power values, as the node declared them.
        units: RssiUnits,
        /// The record.
        record: RssiRecord,
    },
    /// A coordinator decision taken on drone `node`.
    Decision {
        /// The drone.
        node: Arc<str>,
        /// The decision.
        decision: Decision,
    },
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header row.
    Csv,
    /// No output.
    None,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "jsonl" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            "none" => Ok(Format::None),
            other => Err(format!(
                "{other:?} is not an output format: use jsonl, csv or none"
            )),
        }
    }
}

impl Format {
    /// The name `FromStr` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
            Format::None => "none",
        }
    }
}

/// The output could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    /// Opening it failed.
    #[error("cannot open {path} for appending")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// It exists and is not a regular file (a device, a FIFO, a directory).
    #[error(
        "{path} is not a regular file: the output must be one (it is read back after a restart)"
    )]
    NotRegular {
        /// The path.
        path: PathBuf,
    },
    /// Reading it back failed.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Writing or flushing failed (e.g. the disk is full); nothing of the commit is safe.
    #[error("writing the output failed")]
    Write(#[source] io::Error),
    /// Syncing to storage failed.
    #[error("syncing the output to storage failed")]
    Sync(#[source] io::Error),
}

/// Writes records and decisions in the chosen format. See the module documentation.
pub struct Output {
    format: Format,
    sink: Box<dyn Write + Send>,
    file: Option<File>,
    header_due: bool,
    /// A commit failed: the file may end in a partial line.
    broken: bool,
    buf: Vec<u8>,
    cell: String,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("format", &self.format)
            .field("pending_bytes", &self.buf.len())
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

fn check_regular(path: &Path) -> Result<Option<std::fs::Metadata>, OutputError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(Some(m)),
        Ok(_) => Err(OutputError::NotRegular {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(OutputError::Open {
            path: path.to_owned(),
            source,
        }),
    }
}

impl Output {
    /// Output in `format`, appended to the regular file at `path` (created if missing), or
    /// to stdout when `None`.
    ///
    /// # Errors
    /// [`OutputError::NotRegular`] for a device, FIFO or directory; [`OutputError::Open`]
    /// when the file cannot be opened for appending.
    pub fn open(format: Format, path: Option<&Path>) -> Result<Output, OutputError> {
        match path {
            Some(path) => {
                let existing = check_regular(path)?;
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| OutputError::Open {
                        path: path.to_owned(),
                        source,
                    })?;
                // Recheck what was opened: the path may have been swapped meanwhile.
                let meta = file.metadata().map_err(|source| OutputError::Open {
                    path: path.to_owned(),
                    source,
                })?;
                if !meta.is_file() {
                    return Err(OutputError::NotRegular {
                        path: path.to_owned(),
                    });
                }
                let empty = existing.is_none_or(|m| m.len() == 0) && meta.len() == 0;
                let sink = file.try_clone().map_err(|source| OutputError::Open {
                    path: path.to_owned(),
                    source,
                })?;
                let mut out = Output::new(format, Box::new(sink), empty);
                out.file = Some(file);
                Ok(out)
            }
            None => Ok(Output::new(format, Box::new(io::stdout()), true)),
        }
    }

    /// Output in `format` to `sink`; `header` says whether a CSV header row is due (the
    /// sink is empty).
    pub fn new(format: Format, sink: Box<dyn Write + Send>, header: bool) -> Self {
        Output {
            format,
            sink,
            file: None,
            header_due: header && format == Format::Csv,
            broken: false,
            buf: Vec::with_capacity(4096),
            cell: String::new(),
        }
    }

    /// The format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Formats one entry (nothing reaches the sink before [`Output::commit`]).
    pub fn write(&mut self, entry: &Entry) {
        match self.format {
            Format::None => {}
            Format::Jsonl => self.jsonl(entry),
            Format::Csv => {
                if self.header_due {
                    self.header_due = false;
                    self.buf.extend_from_slice(COLUMNS.join(",").as_bytes());
                    self.buf.push(b'\n');
                }
                self.csv(entry);
            }
        }
    }

    /// Hands everything formatted since the last commit to the operating system.
    ///
    /// # Errors
    /// [`OutputError::Write`]: none of it can be counted as written; it is dropped.
    pub fn commit(&mut self) -> Result<(), OutputError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.broken {
            // A failed write may have left part of a line: end it, so it stays apart.
            self.buf.insert(0, b'\n');
        }
        let result = self
            .sink
            .write_all(&self.buf)
            .and_then(|()| self.sink.flush());
        self.buf.clear();
        match result {
            Ok(()) => {
                self.broken = false;
                Ok(())
            }
            Err(e) => {
                self.broken = true;
                Err(OutputError::Write(e))
            }
        }
    }

    /// Asks the storage to make what was committed durable (`fdatasync`); nothing for
    /// stdout.
    ///
    /// # Errors
    /// [`OutputError::Sync`].
    pub fn sync(&mut self) -> Result<(), OutputError> {
        match &self.file {
            Some(f) => f.sync_data().map_err(OutputError::Sync),
            None => Ok(()),
        }
    }

    /// Whether the last commit failed.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    fn jsonl(&mut self, entry: &Entry) {
        jsonl_line(entry, &mut self.buf);
    }

    fn csv(&mut self, entry: &Entry) {
        let mut row: [Option<Cell>; COLUMNS.len()] = std::array::from_fn(|_| None);
        for (column, cell) in cells(entry) {
            row[column] = Some(cell);
        }
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            self.cell.clear();
            match cell {
                None | Some(Cell::Float(None)) => {}
                Some(Cell::Text(t)) => csv_cell(&mut self.cell, &neutralise(t)),
                Some(Cell::Int(v)) => self.cell.push_str(&v.to_string()),
                Some(Cell::Id(v)) => self.cell.push_str(&v.to_string()),
                Some(Cell::Float(Some(v))) => self.cell.push_str(&v.to_string()),
                Some(Cell::Bool(v)) => self.cell.push_str(if *v { "true" } else { "false" }),
            }
            self.buf.extend_from_slice(self.cell.as_bytes());
        }
        self.buf.push(b'\n');
    }
}

/// Appends `entry` as one JSON-lines object, ending in `\n`: exactly what [`Output`] writes
/// in [`Format::Jsonl`] (the MQTT payloads are these objects without the line break).
///
/// The fields come in [`COLUMNS`] order, as in CSV; it writes straight into `b` (no
/// intermediate row, no allocation once `b` has grown to a line).
pub fn jsonl_line(entry: &Entry, b: &mut Vec<u8>) {
    let mut o = JsonObject::new(b);
    match entry {
        Entry::Record {
            node,
            stream,
            seq,
            units,
            record: r,
        } => {
            o.text("type", "rssi");
            o.text("node", node);
            o.id("stream", *stream);
            o.int("seq", i64::try_from(*seq).unwrap_or(i64::MAX));
            o.int("timestamp_ns", r.timestamp_ns);
            o.time("time", r.timestamp_ns);
            o.float("rssi", Some(r.rssi_dbm.get()));
            o.float("noise", r.noise_dbm.map(|n| n.get()));
            o.text("units", units.as_str());
            o.int(
                "frequency_hz",
                i64::try_from(r.frequency_hz.get()).unwrap_or(i64::MAX),
            );
            o.int("source_id", i64::from(r.source_id.get()));
            o.int("quality_score", i64::from(r.quality_score.get()));
            o.float("snr_db", r.snr_db.map(|s| s.get()));
            let b = &r.beacon;
            // Optional beacon fields: present only when set (a non-finite float is null).
            o.opt_float("smoothing", b.smoothing);
            o.opt_bool("stale", b.stale);
            o.opt_bool("detected", b.detected);
            o.opt_int("pulses", b.pulses.map(i64::from));
            o.opt_float("pulse", b.pulse_dbm.map(|x| x.get()));
            o.opt_int("pulse_width_us", b.pulse_width_us.map(i64::from));
            o.opt_int("pulse_start_ns", b.pulse_start_ns);
            o.opt_int("pulse_interval_ms", b.pulse_interval_ms.map(i64::from));
            o.opt_float("last_pulse", b.last_pulse_dbm.map(|x| x.get()));
            o.opt_int("last_pulse_age_ms", b.last_pulse_age_ms.map(i64::from));
            o.opt_bool("burst", b.burst);
            o.opt_float("offset_hz", b.offset_hz.map(|x| x.get()));
            o.opt_float("clip_fraction", b.clip_fraction.map(|x| x.get()));
            o.opt_int("lat_e7", b.lat_e7.map(i64::from));
            o.opt_int("lon_e7", b.lon_e7.map(i64::from));
            o.opt_float("alt_m", b.alt_m);
            o.opt_float("heading_deg", b.heading_deg);
        }
        Entry::Decision { node, decision: d } => {
            o.text("type", "decision");
            o.text("node", node);
            o.int("timestamp_ns", d.t_ns);
            o.time("time", d.t_ns);
            o.int("source_id", i64::from(d.source_id.get()));
            o.bool("fallback", d.fallback);
            o.text("reason", &d.reason);
            o.float("score_drone", d.score_drone);
            o.float("score_ground", d.score_ground);
        }
    }
    o.b.extend_from_slice(b"}\n");
}

/// One JSON object being appended to a buffer, field by field. The callers above add the
/// fields in [`COLUMNS`] order; the object is closed by the caller.
struct JsonObject<'a> {
    b: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> JsonObject<'a> {
    fn new(b: &'a mut Vec<u8>) -> Self {
        b.push(b'{');
        JsonObject { b, first: true }
    }

    fn key(&mut self, name: &str) {
        if !self.first {
            self.b.push(b',');
        }
        self.first = false;
        // Column names are plain ASCII: nothing to escape.
        self.b.push(b'"');
        self.b.extend_from_slice(name.as_bytes());
        self.b.extend_from_slice(b"\":");
    }

    fn text(&mut self, name: &str, value: &str) {
        self.key(name);
        json_str(self.b, value);
    }

    fn int(&mut self, name: &str, value: i64) {
        self.key(name);
        push_int(self.b, value);
    }

    /// A 64-bit identifier: a string in JSON (see the module docs).
    fn id(&mut self, name: &str, value: u64) {
        self.key(name);
        self.b.push(b'"');
        push_uint(self.b, value);
        self.b.push(b'"');
    }

    fn float(&mut self, name: &str, value: Option<f32>) {
        self.key(name);
        json_num(self.b, value);
    }

    /// `name` with `value`, or nothing at all when `value` is `None`.
    fn opt_int(&mut self, name: &str, value: Option<i64>) {
        if let Some(v) = value {
            self.int(name, v);
        }
    }

    /// `name` with `value` (a non-finite float is `null`), or nothing when `None`.
    fn opt_float(&mut self, name: &str, value: Option<f32>) {
        if value.is_some() {
            self.float(name, value);
        }
    }

    /// `name` with `value`, or nothing when `None`.
    fn opt_bool(&mut self, name: &str, value: Option<bool>) {
        if let Some(v) = value {
            self.bool(name, v);
        }
    }

    fn bool(&mut self, name: &str, value: bool) {
        self.key(name);
        self.b
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    /// `timestamp_ns` as [`iso_time`], quoted.
    fn time(&mut self, name: &str, timestamp_ns: i64) {
        self.key(name);
        self.b.push(b'"');
        push_iso_time(self.b, timestamp_ns);
        self.b.push(b'"');
    }
}

/// Appends `v` in decimal, as `Display` writes it.
fn push_uint(b: &mut Vec<u8>, mut v: u64) {
    // u64::MAX has 20 digits.
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        // `v % 10` is below 10: the cast cannot truncate.
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    b.extend_from_slice(&digits[at..]);
}

/// Appends `v` in decimal, as `Display` writes it.
fn push_int(b: &mut Vec<u8>, v: i64) {
    if v < 0 {
        b.push(b'-');
    }
    push_uint(b, v.unsigned_abs());
}

/// Appends `v` zero-padded to `width` digits (more when it has more), as `{v:0width$}`
/// writes a non-negative number.
fn push_padded(b: &mut Vec<u8>, v: u64, width: usize) {
    let mut n = 1;
    let mut rest = v / 10;
    while rest > 0 {
        n += 1;
        rest /= 10;
    }
    b.extend(std::iter::repeat_n(b'0', width.saturating_sub(n)));
    push_uint(b, v);
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Text(String),
    Int(i64),
    /// A 64-bit identifier (a string in JSON).
    Id(u64),
    /// `None` is written as `null` (JSON) or an empty cell (CSV).
    Float(Option<f32>),
    Bool(bool),
}

fn col(name: &str) -> usize {
    COLUMNS
        .iter()
        .position(|c| *c == name)
        .expect("a known column")
}

/// The row of an entry: (column, value) in column order; columns that do not apply, or
/// optional values that are absent, are left out.
fn cells(entry: &Entry) -> Vec<(usize, Cell)> {
    let mut v = Vec::with_capacity(24);
    let mut put = |name: &str, cell: Cell| v.push((col(name), cell));
    let finite = |x: Option<f32>| x.filter(|x| x.is_finite());
    match entry {
        Entry::Record {
            node,
            stream,
            seq,
            units,
            record: r,
        } => {
            put("type", Cell::Text("rssi".into()));
            put("node", Cell::Text(node.to_string()));
            put("stream", Cell::Id(*stream));
            put("seq", Cell::Int(i64::try_from(*seq).unwrap_or(i64::MAX)));
            put("timestamp_ns", Cell::Int(r.timestamp_ns));
            put("time", Cell::Text(iso_time(r.timestamp_ns)));
            put("rssi", Cell::Float(finite(Some(r.rssi_dbm.get()))));
            put("noise", Cell::Float(finite(r.noise_dbm.map(|n| n.get()))));
            put("units", Cell::Text(units.as_str().into()));
            put(
                "frequency_hz",
                Cell::Int(i64::try_from(r.frequency_hz.get()).unwrap_or(i64::MAX)),
            );
            put("source_id", Cell::Int(i64::from(r.source_id.get())));
            put("quality_score", Cell::Int(i64::from(r.quality_score.get())));
            put("snr_db", Cell::Float(finite(r.snr_db.map(|s| s.get()))));
            let b = &r.beacon;
            if let Some(x) = b.smoothing {
                put("smoothing", Cell::Float(finite(Some(x))));
            }
            if let Some(x) = b.stale {
                put("stale", Cell::Bool(x));
            }
            if let Some(x) = b.detected {
                put("detected", Cell::Bool(x));
            }
            if let Some(x) = b.pulses {
                put("pulses", Cell::Int(i64::from(x)));
            }
            if let Some(x) = b.pulse_dbm {
                put("pulse", Cell::Float(finite(Some(x.get()))));
            }
            if let Some(x) = b.pulse_width_us {
                put("pulse_width_us", Cell::Int(i64::from(x)));
            }
            if let Some(x) = b.pulse_start_ns {
                put("pulse_start_ns", Cell::Int(x));
            }
            if let Some(x) = b.pulse_interval_ms {
                put("pulse_interval_ms", Cell::Int(i64::from(x)));
            }
            if let Some(x) = b.last_pulse_dbm {
                put("last_pulse", Cell::Float(finite(Some(x.get()))));
            }
            if let Some(x) = b.last_pulse_age_ms {
                put("last_pulse_age_ms", Cell::Int(i64::from(x)));
            }
            if let Some(x) = b.burst {
                put("burst", Cell::Bool(x));
            }
            if let Some(x) = b.offset_hz {
                put("offset_hz", Cell::Float(finite(Some(x.get()))));
            }
            if let Some(x) = b.clip_fraction {
                put("clip_fraction", Cell::Float(finite(Some(x.get()))));
            }
            if let Some(x) = b.lat_e7 {
                put("lat_e7", Cell::Int(i64::from(x)));
            }
            if let Some(x) = b.lon_e7 {
                put("lon_e7", Cell::Int(i64::from(x)));
            }
            if let Some(x) = b.alt_m {
                put("alt_m", Cell::Float(finite(Some(x))));
            }
            if let Some(x) = b.heading_deg {
                put("heading_deg", Cell::Float(finite(Some(x))));
            }
        }
        Entry::Decision { node, decision: d } => {
            put("type", Cell::Text("decision".into()));
            put("node", Cell::Text(node.to_string()));
            put("timestamp_ns", Cell::Int(d.t_ns));
            put("time", Cell::Text(iso_time(d.t_ns)));
            put("source_id", Cell::Int(i64::from(d.source_id.get())));
            put("fallback", Cell::Bool(d.fallback));
            put("reason", Cell::Text(d.reason.clone()));
            put("score_drone", Cell::Float(finite(d.score_drone)));
            put("score_ground", Cell::Float(finite(d.score_ground)));
        }
    }
    v.sort_by_key(|(c, _)| *c);
    v
}

fn json_str(b: &mut Vec<u8>, s: &str) {
    // serde_json escapes every control character, quotes and backslashes, and nothing
    // else: text without those is copied as it is, the rest goes through serde_json.
    if s.bytes().any(|c| c < 0x20 || c == b'"' || c == b'\\') {
        let _ = serde_json::to_writer(&mut *b, s);
    } else {
        b.push(b'"');
        b.extend_from_slice(s.as_bytes());
        b.push(b'"');
    }
}

fn json_num(b: &mut Vec<u8>, v: Option<f32>) {
    match v.filter(|v| v.is_finite()) {
        Some(v) => {
            let _ = write!(b, "{v}");
        }
        None => b.extend_from_slice(b"null"),
    }
}

/// A text cell as written to CSV: a leading `'` is added when the text starts with `=`,
/// `+`, `-`, `@` (a spreadsheet formula) or `'` itself. See [`unneutralise`].
pub fn neutralise(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\'']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// The text of a CSV text cell: one leading `'` removed. Inverse of [`neutralise`].
pub fn unneutralise(cell: &str) -> &str {
    cell.strip_prefix('\'').unwrap_or(cell)
}

/// RFC 4180: quoted when it holds a comma, a quote, CR or LF; quotes doubled.
fn csv_cell(out: &mut String, cell: &str) {
    if cell.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&cell.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(cell);
    }
}

/// `timestamp_ns` (ns since the Unix epoch) as ISO 8601 UTC, e.g.
/// `2025-11-24T16:00:00.000000000Z`.
pub fn iso_time(timestamp_ns: i64) -> String {
    let mut b = Vec::with_capacity(30);
    push_iso_time(&mut b, timestamp_ns);
    // Only ASCII digits and punctuation were written.
    String::from_utf8(b).unwrap_or_default()
}

/// Civil time of `timestamp_ns` (ns since 1970-01-01 UTC, proleptic Gregorian): year,
/// month, day, second of the day, nanoseconds.
fn civil(timestamp_ns: i64) -> (i64, i64, i64, i64, i64) {
    let secs = timestamp_ns.div_euclid(1_000_000_000);
    let nanos = timestamp_ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, sod, nanos)
}

/// Appends [`iso_time`]`(timestamp_ns)`.
fn push_iso_time(b: &mut Vec<u8>, timestamp_ns: i64) {
    let (year, month, day, sod, nanos) = civil(timestamp_ns);
    // An i64 of nanoseconds spans the years 1677 to 2262: the year is never negative
    // (kept exact anyway), every other part is in range by construction (`rem_euclid`).
    match u64::try_from(year) {
        Ok(y) => push_padded(b, y, 4),
        Err(_) => {
            let _ = write!(b, "{year:04}");
        }
    }
    let part = |v: i64| u64::try_from(v).unwrap_or(0);
    b.push(b'-');
    push_padded(b, part(month), 2);
    b.push(b'-');
    push_padded(b, part(day), 2);
    b.push(b'T');
    push_padded(b, part(sod / 3600), 2);
    b.push(b':');
    push_padded(b, part(sod % 3600 / 60), 2);
    b.push(b':');
    push_padded(b, part(sod % 60), 2);
    b.push(b'.');
    push_padded(b, part(nanos), 9);
    b.push(b'Z');
}

/// What [`recover`] found in an output file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Next expected sequence number per (node, stream): one past the highest written.
    pub positions: Vec<(String, u64, u64)>,
    /// Lines (or CSV records) longer than [`MAX_LINE`], skipped.
    pub skipped_long: u64,
    /// Lines that are not a record of either format (cut short, foreign, a header), skipped.
    pub skipped_other: u64,
}

/// Recovers the next expected sequence number per (node, stream) from an existing JSON-lines
/// or CSV output file (either, or both mixed), so a restarted ground resumes exactly where
/// its output stops. Memory stays bounded whatever the file holds: a line or CSV record is
/// at most [`MAX_LINE`] bytes (longer ones are skipped and counted), and only one position
/// per (node, stream) is kept. A missing file recovers nothing.
///
/// # Errors
/// [`OutputError::NotRegular`] for a device, FIFO or directory; [`OutputError::Read`] when
/// reading fails.
pub fn recover(path: &Path) -> Result<Recovery, OutputError> {
    if check_regular(path)?.is_none() {
        return Ok(Recovery::default());
    }
    let file = File::open(path).map_err(|source| OutputError::Read {
        path: path.to_owned(),
        source,
    })?;
    recover_from(BufReader::with_capacity(64 * 1024, file)).map_err(|source| OutputError::Read {
        path: path.to_owned(),
        source,
    })
}

/// [`recover`] from any reader.
///
/// # Errors
/// When reading fails.
pub fn recover_from(mut input: impl BufRead) -> io::Result<Recovery> {
    let mut next: BTreeMap<(String, u64), u64> = BTreeMap::new();
    let mut rec = Recovery::default();
    let mut record = Vec::with_capacity(1024);
    loop {
        match read_record(&mut input, &mut record)? {
            Split::End => break,
            Split::TooLong => rec.skipped_long += 1,
            Split::Record => {
                let key = if record.first() == Some(&b'{') {
                    parse_json(&record)
                } else {
                    parse_csv(&record)
                };
                match key {
                    Some((node, stream, seq)) => {
                        let e = next.entry((node, stream)).or_insert(0);
                        *e = (*e).max(seq.saturating_add(1));
                    }
                    None => {
                        if !record.iter().all(u8::is_ascii_whitespace) {
                            rec.skipped_other += 1;
                        }
                    }
                }
            }
        }
    }
    rec.positions = next.into_iter().map(|((n, s), q)| (n, s, q)).collect();
    Ok(rec)
}

enum Split {
    Record,
    TooLong,
    End,
}

/// Reads one line (JSON) or one CSV record (which may span lines inside quotes) into `out`,
/// without the final line break, holding at most [`MAX_LINE`] bytes.
fn read_record(input: &mut impl BufRead, out: &mut Vec<u8>) -> io::Result<Split> {
    out.clear();
    let mut in_quotes = false;
    let mut too_long = false;
    let mut any = false;
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(if !any {
                Split::End
            } else if too_long {
                Split::TooLong
            } else {
                Split::Record
            });
        }
        any = true;
        let json = out.first().map_or(buf[0] == b'{', |b| *b == b'{');
        let mut end = None;
        for (i, &c) in buf.iter().enumerate() {
            if c == b'"' && !json {
                in_quotes = !in_quotes;
            } else if c == b'\n' && (json || !in_quotes) {
                end = Some(i);
                break;
            }
        }
        let take = end.unwrap_or(buf.len());
        if !too_long {
            if out.len() + take > MAX_LINE {
                too_long = true;
                out.clear();
            } else {
                out.extend_from_slice(&buf[..take]);
            }
        }
        let consumed = end.map_or(take, |e| e + 1);
        input.consume(consumed);
        if end.is_some() {
            if out.last() == Some(&b'\r') {
                out.pop();
            }
            return Ok(if too_long {
                Split::TooLong
            } else {
                Split::Record
            });
        }
    }
}

fn parse_json(line: &[u8]) -> Option<(String, u64, u64)> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    if v["type"] != "rssi" {
        return None;
    }
    let stream = match &v["stream"] {
        serde_json::Value::String(s) => s.parse().ok()?,
        n => n.as_u64()?,
    };
    Some((v["node"].as_str()?.to_owned(), stream, v["seq"].as_u64()?))
}

fn parse_csv(record: &[u8]) -> Option<(String, u64, u64)> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(record);
    let row = reader.records().next()?.ok()?;
    if row.get(0)? != "rssi" {
        return None;
    }
    Some((
        unneutralise(row.get(1)?).to_owned(),
        row.get(2)?.parse().ok()?,
        row.get(3)?.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sarlink_schema::{Db, Dbm, FrequencyHz, QualityScore, SourceId};
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>, Arc<Mutex<bool>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if *self.1.lock().unwrap() {
                // A full disk: part of the data gets in, then the error.
                let half = b.len() / 2;
                self.0.lock().unwrap().extend_from_slice(&b[..half]);
                return Err(io::Error::from_raw_os_error(28));
            }
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn record() -> RssiRecord {
        RssiRecord {
            timestamp_ns: 1_764_000_000_000_000_000,
            rssi_dbm: Dbm::new(-71.5).unwrap(),
            frequency_hz: FrequencyHz::new(406_025_000).unwrap(),
            source_id: SourceId::DRONE,
            quality_score: QualityScore::new(87).unwrap(),
            snr_db: Some(Db::new(18.25).unwrap()),
            noise_dbm: None,
            beacon: sarlink_schema::BeaconFields::NONE,
        }
    }

    fn entry(node: &str, stream: u64, seq: u64) -> Entry {
        Entry::Record {
            node: node.into(),
            stream,
            seq,
            units: RssiUnits::Dbfs,
            record: record(),
        }
    }

    fn text(buf: &Shared) -> String {
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    /// The formatter [`jsonl_line`] replaced (through [`cells`]), kept to check that the
    /// output stays byte for byte what it was.
    fn jsonl_line_reference(entry: &Entry, b: &mut Vec<u8>) {
        fn json_str(b: &mut Vec<u8>, s: &str) {
            let _ = serde_json::to_writer(&mut *b, s);
        }
        b.push(b'{');
        for (n, (column, cell)) in cells(entry).iter().enumerate() {
            if n > 0 {
                b.push(b',');
            }
            json_str(b, COLUMNS[*column]);
            b.push(b':');
            match cell {
                Cell::Text(t) => json_str(b, t),
                Cell::Int(v) => {
                    let _ = write!(b, "{v}");
                }
                Cell::Float(v) => json_num(b, *v),
                Cell::Bool(v) => {
                    let _ = write!(b, "{v}");
                }
                Cell::Id(v) => {
                    let _ = write!(b, "\"{v}\"");
                }
            }
        }
        b.extend_from_slice(b"}\n");
    }

    /// The `iso_time` [`push_iso_time`] replaced.
    fn iso_time_reference(timestamp_ns: i64) -> String {
        let (year, month, day, sod, nanos) = civil(timestamp_ns);
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
            sod / 3600,
            sod % 3600 / 60,
            sod % 60
        )
    }

    #[test]
    fn iso_time_matches_the_fmt_formatting_everywhere() {
        let mut t = i64::MIN;
        let step = i64::MAX / 5_000;
        let mut samples = vec![i64::MIN, i64::MAX, -1, 0, 1, 999_999_999, 1_000_000_000];
        while let Some(next) = t.checked_add(step) {
            samples.push(t);
            samples.push(t.wrapping_mul(7).wrapping_add(123_456_789));
            t = next;
        }
        for t in samples {
            assert_eq!(iso_time(t), iso_time_reference(t), "{t}");
        }
    }

    #[test]
    fn jsonl_lines_are_byte_for_byte_what_the_row_formatter_wrote() {
        use sarlink_schema::{BeaconFields, ClipFraction, OffsetHz};
        let floats = [
            0.0,
            -0.0,
            -71.5,
            1e-7,
            -3.4e38,
            f32::MAX,
            f32::MIN_POSITIVE,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            123_456_790.0,
            0.1,
        ];
        let names = [
            "drone-1",
            "",
            "q\"uote",
            "back\\slash",
            "ctl\u{1}\u{1f}\t\n\r",
            "del\u{7f}",
            "ünï/cødé ✈",
            "=cmd()",
        ];
        let mut entries = Vec::new();
        for (i, name) in names.iter().enumerate() {
            for (j, f) in floats.iter().enumerate() {
                let mut r = record();
                // Finite powers and offsets only: their types refuse the rest.
                let finite = if f.is_finite() { *f } else { -50.0 };
                r.rssi_dbm = Dbm::new(finite.clamp(-300.0, 100.0)).unwrap_or(r.rssi_dbm);
                r.timestamp_ns = [i64::MIN, -1, 0, i64::MAX, 1_764_000_000_123_456_789][j % 5];
                r.noise_dbm = (j % 2 == 0).then(|| Dbm::new(-95.25).unwrap());
                r.snr_db = Db::new(finite).ok();
                r.frequency_hz = FrequencyHz::new(406_025_000 + j as u64).unwrap();
                r.source_id = SourceId::new((i % 3) as u8);
                if j % 3 != 0 {
                    r.beacon = BeaconFields {
                        smoothing: Some(*f),
                        stale: Some(j % 2 == 0),
                        detected: Some(true),
                        pulses: Some(u32::MAX),
                        pulse_dbm: Dbm::new(-60.125).ok(),
                        pulse_width_us: Some(440_000),
                        pulse_start_ns: Some([i64::MIN, -5, i64::MAX][j % 3]),
                        pulse_interval_ms: Some(0),
                        last_pulse_dbm: Dbm::new(-61.0).ok(),
                        last_pulse_age_ms: Some(1234),
                        burst: Some(false),
                        offset_hz: OffsetHz::new(finite).ok(),
                        clip_fraction: ClipFraction::new(0.25).ok(),
                        lat_e7: Some(i32::MIN),
                        lon_e7: Some(i32::MAX),
                        alt_m: Some(*f),
                        heading_deg: Some(-*f),
                    };
                }
                entries.push(Entry::Record {
                    node: (*name).into(),
                    stream: [0, 1, u64::MAX, 15_963_693_527_167_783_522][j % 4],
                    seq: [0, 42, i64::MAX as u64, u64::MAX][(i + j) % 4],
                    units: if j % 2 == 0 {
                        RssiUnits::Dbm
                    } else {
                        RssiUnits::Dbfs
                    },
                    record: r,
                });
                entries.push(Entry::Decision {
                    node: (*name).into(),
                    decision: Decision {
                        t_ns: [i64::MIN, -1, 0, 5, i64::MAX][(i + j) % 5],
                        source_id: SourceId::GROUND,
                        fallback: j % 2 == 1,
                        reason: format!("{name} \"why\"\n{j}"),
                        score_drone: Some(*f),
                        score_ground: (j % 2 == 0).then_some(-*f),
                    },
                });
            }
        }
        let (mut new, mut old) = (Vec::new(), Vec::new());
        for e in &entries {
            new.clear();
            old.clear();
            jsonl_line(e, &mut new);
            jsonl_line_reference(e, &mut old);
            assert_eq!(
                String::from_utf8_lossy(&new),
                String::from_utf8_lossy(&old),
                "{e:?}"
            );
            assert_eq!(new, old);
        }
    }

    #[test]
    fn iso_time_matches_known_instants() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            iso_time(1_764_000_000_000_000_000),
            "2025-11-24T16:00:00.000000000Z"
        );
        assert_eq!(
            iso_time(951_782_400_123_456_789),
            "2000-02-29T00:00:00.123456789Z"
        );
        assert_eq!(iso_time(-1), "1969-12-31T23:59:59.999999999Z");
    }

    #[test]
    fn jsonl_rows_share_names_and_keep_the_stream_exact() {
        let buf = Shared::default();
        let mut out = Output::new(Format::Jsonl, Box::new(buf.clone()), true);
        out.write(&entry("drone \"1\"", 15_963_693_527_167_783_522, 42));
        out.write(&Entry::Decision {
            node: "drone \"1\"".into(),
            decision: Decision {
                t_ns: 5,
                source_id: SourceId::GROUND,
                fallback: true,
                reason: "link_lost".into(),
                score_drone: Some(1.5),
                score_ground: None,
            },
        });
        out.commit().unwrap();
        let t = text(&buf);
        let lines: Vec<serde_json::Value> = t
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["node"], "drone \"1\"");
        assert_eq!(lines[0]["stream"], "15963693527167783522");
        assert_eq!(lines[0]["seq"], 42);
        assert_eq!(lines[0]["rssi"], -71.5);
        assert_eq!(lines[0]["units"], "dbfs");
        assert_eq!(lines[0]["time"], "2025-11-24T16:00:00.000000000Z");
        assert!(lines[0]["noise"].is_null());
        assert_eq!(lines[1]["timestamp_ns"], 5);
        for l in &lines {
            for key in l.as_object().unwrap().keys() {
                assert!(COLUMNS.contains(&key.as_str()), "{key} is not a column");
            }
        }
    }

    #[test]
    fn geotags_are_columns_in_both_formats_and_absent_when_untagged() {
        let mut tagged = record();
        tagged.beacon.lat_e7 = Some(-338_651_234);
        tagged.beacon.lon_e7 = Some(1_512_099_876);
        tagged.beacon.alt_m = Some(152.5);
        tagged.beacon.heading_deg = Some(271.25);
        let rows = [tagged, record()].map(|record| Entry::Record {
            node: "d".into(),
            stream: 1,
            seq: 0,
            units: RssiUnits::Dbfs,
            record,
        });
        let json = Shared::default();
        let csv_buf = Shared::default();
        let mut j = Output::new(Format::Jsonl, Box::new(json.clone()), true);
        let mut c = Output::new(Format::Csv, Box::new(csv_buf.clone()), true);
        for e in &rows {
            j.write(e);
            c.write(e);
        }
        j.commit().unwrap();
        c.commit().unwrap();
        let lines: Vec<serde_json::Value> = text(&json)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["lat_e7"], -338_651_234);
        assert_eq!(lines[0]["lon_e7"], 1_512_099_876);
        assert_eq!(lines[0]["alt_m"], 152.5);
        assert_eq!(lines[0]["heading_deg"], 271.25);
        assert!(lines[1].get("lat_e7").is_none(), "{}", lines[1]);
        let t = text(&csv_buf);
        let mut r = csv::Reader::from_reader(t.as_bytes());
        let headers = r.headers().unwrap().clone();
        let at = |name: &str| headers.iter().position(|h| h == name).unwrap();
        let rows: Vec<csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
        assert_eq!(&rows[0][at("lat_e7")], "-338651234");
        assert_eq!(&rows[0][at("lon_e7")], "1512099876");
        assert_eq!(&rows[0][at("alt_m")], "152.5");
        assert_eq!(&rows[0][at("heading_deg")], "271.25");
        assert_eq!(&rows[1][at("lat_e7")], "");
    }

    #[test]
    fn csv_quotes_and_neutralises_and_reads_back_with_a_csv_reader() {
        let names = [
            "a,b", "q\"uote", "cr\rname", "lf\nname", "=cmd()", "+1", "-x", "@at", "'quoted",
            "plain",
        ];
        let buf = Shared::default();
        let mut out = Output::new(Format::Csv, Box::new(buf.clone()), true);
        for (i, n) in names.iter().enumerate() {
            out.write(&entry(n, 7, i as u64));
        }
        out.commit().unwrap();
        let t = text(&buf);
        let mut r = csv::Reader::from_reader(t.as_bytes());
        assert_eq!(
            r.headers().unwrap().iter().collect::<Vec<_>>(),
            COLUMNS.to_vec()
        );
        let rows: Vec<csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), names.len());
        for (row, name) in rows.iter().zip(names) {
            assert_eq!(row.len(), COLUMNS.len());
            assert_eq!(unneutralise(&row[1]), name);
            assert!(!row[1].starts_with(['=', '+', '-', '@']), "{}", &row[1]);
        }
        let rec = recover_from(t.as_bytes()).unwrap();
        let got: Vec<String> = rec.positions.iter().map(|p| p.0.clone()).collect();
        let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(rec.skipped_other, 1, "the header");
    }

    #[test]
    fn the_header_is_written_only_into_an_empty_output() {
        let buf = Shared::default();
        let mut out = Output::new(Format::Csv, Box::new(buf.clone()), false);
        out.write(&entry("x", 1, 0));
        out.commit().unwrap();
        assert!(text(&buf).starts_with("rssi,"));
    }

    #[test]
    fn a_failed_commit_is_dropped_and_the_next_one_starts_a_fresh_line() {
        let buf = Shared::default();
        let mut out = Output::new(Format::Jsonl, Box::new(buf.clone()), true);
        out.write(&entry("d", 1, 0));
        out.commit().unwrap();
        *buf.1.lock().unwrap() = true;
        out.write(&entry("d", 1, 1));
        assert!(matches!(out.commit(), Err(OutputError::Write(_))));
        assert!(out.is_broken());
        *buf.1.lock().unwrap() = false;
        out.write(&entry("d", 1, 2));
        out.commit().unwrap();
        let t = text(&buf);
        // seq 0 and 2 are whole lines; the half of seq 1 is a line of its own, skipped.
        let rec = recover_from(t.as_bytes()).unwrap();
        assert_eq!(rec.positions, vec![("d".to_owned(), 1, 3)]);
        assert_eq!(rec.skipped_other, 1);
        let whole: Vec<u64> = t
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| v["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(whole, vec![0, 2]);
    }

    #[test]
    fn recovery_is_bounded_on_hostile_files() {
        // One endless line, then a good one: the long one is skipped, memory stays small.
        let mut data = vec![b'x'; 10 * MAX_LINE];
        data.push(b'\n');
        data.extend_from_slice(br#"{"type":"rssi","node":"a","stream":"5","seq":9}"#);
        data.push(b'\n');
        // An unterminated CSV quote swallows the rest, bounded.
        data.extend_from_slice(b"rssi,\"never closed,1,2\n");
        data.extend(std::iter::repeat_n(b'y', 3 * MAX_LINE));
        let rec = recover_from(&data[..]).unwrap();
        assert_eq!(rec.positions, vec![("a".to_owned(), 5, 10)]);
        assert_eq!(rec.skipped_long, 2);
        // Old numeric streams still read.
        let rec = recover_from(&br#"{"type":"rssi","node":"a","stream":5,"seq":1}"#[..]).unwrap();
        assert_eq!(rec.positions, vec![("a".to_owned(), 5, 2)]);
    }

    #[test]
    fn devices_and_fifos_are_refused() {
        assert!(matches!(
            Output::open(Format::Jsonl, Some(Path::new("/dev/null"))),
            Err(OutputError::NotRegular { .. })
        ));
        assert!(matches!(
            recover(Path::new("/dev/zero")),
            Err(OutputError::NotRegular { .. })
        ));
        assert!(matches!(
            Output::open(Format::Jsonl, Some(Path::new("/"))),
            Err(OutputError::NotRegular { .. })
        ));
    }
}
