//! Record and decision output: JSON lines (default), CSV, or nothing; and, side by side
//! with the writer, the reader that recovers stream positions from what was written.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use sarlink_schema::{Decision, RssiRecord};

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

/// Where a record came from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// Node that measured it.
    pub node: &'a str,
    /// That node's stream id.
    pub stream: u64,
    /// Sequence number within the stream.
    pub seq: u64,
}

const CSV_HEADER: &str = "type,node,stream,seq,timestamp_ns,rssi_dbm,frequency_hz,source_id,quality_score,snr_db,noise_dbm,fallback,reason,score_drone,score_ground\n";

/// Writes records and decisions in the chosen format.
pub struct Output {
    format: Format,
    out: Box<dyn Write + Send>,
    header_written: bool,
    line: Vec<u8>,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

fn num(v: Option<f32>) -> String {
    v.filter(|v| v.is_finite())
        .map_or_else(|| "null".to_owned(), |v| v.to_string())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

impl Output {
    /// Output in `format`, appended to the file at `path`, or to stdout when `None`.
    ///
    /// # Errors
    /// When the file cannot be opened for appending.
    pub fn open(format: Format, path: Option<&Path>) -> Result<Output, OutputError> {
        let out: Box<dyn Write + Send> = match path {
            Some(path) => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| OutputError::Open {
                        path: path.to_owned(),
                        source,
                    })?;
                Box::new(BufWriter::with_capacity(64 * 1024, file))
            }
            None => Box::new(BufWriter::with_capacity(64 * 1024, io::stdout())),
        };
        Ok(Output::new(format, out))
    }

    /// Writes one entry.
    ///
    /// # Errors
    /// When the writer fails.
    pub fn write(&mut self, entry: &Entry) -> io::Result<()> {
        match entry {
            Entry::Record {
                node,
                stream,
                seq,
                record,
            } => self.record(
                Origin {
                    node,
                    stream: *stream,
                    seq: *seq,
                },
                record,
            ),
            Entry::Decision { node, decision } => self.decision(node, decision),
        }
    }

    /// Output in `format` to `out`.
    pub fn new(format: Format, out: Box<dyn Write + Send>) -> Self {
        Output {
            format,
            out,
            header_written: false,
            line: Vec::with_capacity(256),
        }
    }

    /// Writes one received record.
    ///
    /// # Errors
    /// When the writer fails.
    pub fn record(&mut self, origin: Origin<'_>, r: &RssiRecord) -> io::Result<()> {
        self.line.clear();
        let snr = r.snr_db.map(|s| s.get());
        let noise = r.noise_dbm.map(|n| n.get());
        match self.format {
            Format::None => return Ok(()),
            Format::Jsonl => writeln!(
                self.line,
                "{{\"type\":\"rssi\",\"node\":{},\"stream\":{},\"seq\":{},\"timestamp_ns\":{},\"rssi_dbm\":{},\"frequency_hz\":{},\"source_id\":{},\"quality_score\":{},\"snr_db\":{},\"noise_dbm\":{}}}",
                json_str(origin.node),
                origin.stream,
                origin.seq,
                r.timestamp_ns,
                num(Some(r.rssi_dbm.get())),
                r.frequency_hz.get(),
                r.source_id.get(),
                r.quality_score.get(),
                num(snr),
                num(noise)
            )?,
            Format::Csv => {
                self.header();
                writeln!(
                    self.line,
                    "rssi,{},{},{},{},{},{},{},{},{},{},,,,",
                    csv_field(origin.node),
                    origin.stream,
                    origin.seq,
                    r.timestamp_ns,
                    r.rssi_dbm.get(),
                    r.frequency_hz.get(),
                    r.source_id.get(),
                    r.quality_score.get(),
                    snr.map_or(String::new(), |v| v.to_string()),
                    noise.map_or(String::new(), |v| v.to_string())
                )?;
            }
        }
        self.out.write_all(&self.line)
    }

    /// Writes one coordinator decision (for the drone `node`).
    ///
    /// # Errors
    /// When the writer fails.
    pub fn decision(&mut self, node: &str, d: &Decision) -> io::Result<()> {
        self.line.clear();
        match self.format {
            Format::None => return Ok(()),
            Format::Jsonl => writeln!(
                self.line,
                "{{\"type\":\"decision\",\"node\":{},\"t_ns\":{},\"source_id\":{},\"fallback\":{},\"reason\":{},\"score_drone\":{},\"score_ground\":{}}}",
                json_str(node),
                d.t_ns,
                d.source_id.get(),
                d.fallback,
                json_str(&d.reason),
                num(d.score_drone),
                num(d.score_ground)
            )?,
            Format::Csv => {
                self.header();
                writeln!(
                    self.line,
                    "decision,{},,,{},,,{},,,,{},{},{},{}",
                    csv_field(node),
                    d.t_ns,
                    d.source_id.get(),
                    d.fallback,
                    csv_field(&d.reason),
                    d.score_drone.map_or(String::new(), |v| v.to_string()),
                    d.score_ground.map_or(String::new(), |v| v.to_string())
                )?;
            }
        }
        self.out.write_all(&self.line)
    }

    fn header(&mut self) {
        if !self.header_written {
            self.header_written = true;
            self.line.extend_from_slice(CSV_HEADER.as_bytes());
        }
    }

    /// Flushes buffered output.
    ///
    /// # Errors
    /// When the writer fails.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The output file could not be used.
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
}

/// Recovers the next expected sequence number per (node, stream) from an existing JSON-lines
/// or CSV output file, so a restarted ground resumes exactly where its output stops.
/// Unreadable or partial lines are skipped; a missing file gives no positions.
pub fn resume_from_output(path: &Path) -> Vec<(String, u64, u64)> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let mut next: BTreeMap<(String, u64), u64> = BTreeMap::new();
    for line in BufReader::new(file).lines().map_while(Result::ok) {
        let (node, stream, seq) = if line.starts_with('{') {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["type"] != "rssi" {
                continue;
            }
            match (v["node"].as_str(), v["stream"].as_u64(), v["seq"].as_u64()) {
                (Some(n), Some(s), Some(q)) => (n.to_owned(), s, q),
                _ => continue,
            }
        } else {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() < 4 || f[0] != "rssi" {
                continue;
            }
            match (f[2].parse(), f[3].parse()) {
                (Ok(s), Ok(q)) => (f[1].trim_matches('"').to_owned(), s, q),
                _ => continue,
            }
        };
        let e = next.entry((node, stream)).or_insert(0);
        *e = (*e).max(seq + 1);
    }
    next.into_iter().map(|((n, s), q)| (n, s, q)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sarlink_schema::{Db, Dbm, FrequencyHz, QualityScore, SourceId};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
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
        }
    }

    #[test]
    fn jsonl_lines_parse_back_with_every_field() {
        let buf = Shared::default();
        let mut out = Output::new(Format::Jsonl, Box::new(buf.clone()));
        out.record(
            Origin {
                node: "drone \"1\"",
                stream: 7,
                seq: 42,
            },
            &record(),
        )
        .unwrap();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["node"], "drone \"1\"");
        assert_eq!(v["seq"], 42);
        assert_eq!(v["rssi_dbm"], -71.5);
        assert_eq!(v["frequency_hz"], 406_025_000);
        assert_eq!(v["quality_score"], 87);
        assert_eq!(v["snr_db"], 18.25);
        assert!(v["noise_dbm"].is_null());
    }

    #[test]
    fn csv_has_one_header_and_aligned_columns() {
        let buf = Shared::default();
        let mut out = Output::new(Format::Csv, Box::new(buf.clone()));
        out.record(
            Origin {
                node: "a,b",
                stream: 1,
                seq: 0,
            },
            &record(),
        )
        .unwrap();
        out.record(
            Origin {
                node: "a,b",
                stream: 1,
                seq: 1,
            },
            &record(),
        )
        .unwrap();
        let d = Decision {
            t_ns: 5,
            source_id: SourceId::GROUND,
            fallback: true,
            reason: "link_lost".into(),
            score_drone: Some(1.5),
            score_ground: None,
        };
        out.decision("a,b", &d).unwrap();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], CSV_HEADER.trim_end());
        let columns = lines[0].split(',').count();
        assert!(lines[1].starts_with("rssi,\"a,b\",1,0,"));
        assert!(lines[3].starts_with("decision,\"a,b\","));
        assert!(lines[3].contains(",true,link_lost,1.5,"));
        // Quoted commas aside, every row has the header's column count.
        for l in &lines[1..] {
            assert_eq!(
                l.replace("\"a,b\"", "ab").split(',').count(),
                columns,
                "{l}"
            );
        }
    }
}
