//! Resource sampling on Linux: process and system CPU %, resident memory, system memory %,
//! CPU temperature.
//!
//! Parsing is done by pure functions over file text (`parse_*`), tested on fixtures;
//! [`ResourceSampler`] is the thin reading layer. A missing file (no `/proc` on another OS,
//! no thermal zone on a VM) is a normal "unknown" (`None`), not an error.
//!
//! CPU percentages are deltas between two samples, so the first sample reports them as
//! `None`. Process CPU is normalised to the whole machine (all cores busy = 100 %), using
//! the number of `cpuN` lines in `/proc/stat` and `USER_HZ` = 100 ticks per second (the value
//! on every mainstream Linux architecture, including the Raspberry Pi's ARM).

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Celsius, Percent};

/// Clock ticks per second in `/proc` CPU times (`USER_HZ`).
pub const USER_HZ: u64 = 100;

/// Why a `/proc` or `/sys` text could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A required field or line is absent.
    #[error("missing field {field}")]
    MissingField {
        /// The field's name.
        field: &'static str,
    },
    /// A field is not a valid number.
    #[error("field {field} is not a number: {text:?}")]
    InvalidNumber {
        /// The field's name.
        field: &'static str,
        /// The offending text (truncated to 32 bytes).
        text: String,
    },
}

fn number(field: &'static str, text: Option<&str>) -> Result<u64, ParseError> {
    let text = text.ok_or(ParseError::MissingField { field })?;
    text.parse().map_err(|_| ParseError::InvalidNumber {
        field,
        text: text.chars().take(32).collect(),
    })
}

/// CPU time consumed by a process, in clock ticks (`utime + stime`).
pub type ProcessTicks = u64;

/// Parses `/proc/<pid>/stat` and returns `utime + stime` in clock ticks.
///
/// The command name (field 2) is in parentheses and may itself contain spaces and
/// parentheses, so fields are counted from the **last** `)`.
///
/// # Errors
///
/// [`ParseError::MissingField`] if the text has no `)` or too few fields,
/// [`ParseError::InvalidNumber`] if `utime` or `stime` is not a number.
///
/// # Examples
///
/// ```
/// use sarlink_monitor::resources::parse_pid_stat;
/// let stat = "42 (my (odd) prog) S 1 42 42 0 -1 4194304 10 0 0 0 150 25 0 0 20 0 1 0 99";
/// assert_eq!(parse_pid_stat(stat), Ok(175));
/// ```
pub fn parse_pid_stat(text: &str) -> Result<ProcessTicks, ParseError> {
    let close = text
        .rfind(')')
        .ok_or(ParseError::MissingField { field: "comm" })?;
    // After ")" come fields 3 (state), 4, ...; utime is field 14 and stime field 15.
    let mut fields = text[close + 1..].split_ascii_whitespace().skip(11);
    let utime = number("utime", fields.next())?;
    let stime = number("stime", fields.next())?;
    Ok(utime.saturating_add(stime))
}

/// Whole-machine CPU times from the aggregate `cpu` line of `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemCpuTimes {
    /// Ticks spent in any state (`user nice system idle iowait irq softirq steal`; guest
    /// time is already inside user and nice).
    pub total: u64,
    /// Ticks spent idle (`idle + iowait`).
    pub idle: u64,
    /// Number of per-CPU `cpuN` lines (at least 1).
    pub cpus: u32,
}

/// Parses `/proc/stat`.
///
/// The first four times (user, nice, system, idle) are required; later ones, absent on old
/// kernels, count as 0.
///
/// # Errors
///
/// [`ParseError::MissingField`] without a `cpu` line or with fewer than four times,
/// [`ParseError::InvalidNumber`] on a bad number.
pub fn parse_stat(text: &str) -> Result<SystemCpuTimes, ParseError> {
    const NAMES: [&str; 8] = [
        "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
    ];
    let mut aggregate = None;
    let mut cpus = 0u32;
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        match words.next() {
            Some("cpu") => aggregate = Some(words),
            Some(w) if w.starts_with("cpu") && w[3..].bytes().all(|b| b.is_ascii_digit()) => {
                cpus = cpus.saturating_add(1);
            }
            _ => {}
        }
    }
    let mut words = aggregate.ok_or(ParseError::MissingField { field: "cpu" })?;
    let mut times = [0u64; 8];
    for (i, name) in NAMES.iter().enumerate() {
        match words.next() {
            Some(w) => times[i] = number(name, Some(w))?,
            None if i < 4 => return Err(ParseError::MissingField { field: name }),
            None => break,
        }
    }
    let total = times.iter().fold(0u64, |a, &t| a.saturating_add(t));
    Ok(SystemCpuTimes {
        total,
        idle: times[3].saturating_add(times[4]),
        cpus: cpus.max(1),
    })
}

/// Parses the `VmRSS` line of `/proc/<pid>/status` into bytes; `Ok(None)` when the line is
/// absent (kernel threads have none).
///
/// # Errors
///
/// [`ParseError::InvalidNumber`] if the value is not a number of kB.
pub fn parse_status_rss(text: &str) -> Result<Option<u64>, ParseError> {
    kib_field(text, "VmRSS").map(|v| v.map(|kib| kib.saturating_mul(1024)))
}

fn kib_field(text: &str, name: &'static str) -> Result<Option<u64>, ParseError> {
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(name).and_then(|r| r.strip_prefix(':')) {
            let mut words = rest.split_ascii_whitespace();
            return number(name, words.next()).map(Some);
        }
    }
    Ok(None)
}

/// Totals from `/proc/meminfo`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    /// `MemTotal`.
    pub total_bytes: u64,
    /// `MemAvailable`, or `MemFree + Buffers + Cached` on kernels before 3.14.
    pub available_bytes: u64,
}

impl MemInfo {
    /// Share of memory in use: `100 * (total - available) / total`; `None` if total is 0.
    pub fn used_percent(&self) -> Option<Percent> {
        if self.total_bytes == 0 {
            return None;
        }
        let used = self.total_bytes.saturating_sub(self.available_bytes);
        Some(Percent::saturating(
            100.0 * used as f64 / self.total_bytes as f64,
        ))
    }
}

/// Parses `/proc/meminfo`.
///
/// # Errors
///
/// [`ParseError::MissingField`] without `MemTotal` (or without `MemAvailable` and
/// `MemFree`), [`ParseError::InvalidNumber`] on a bad number.
pub fn parse_meminfo(text: &str) -> Result<MemInfo, ParseError> {
    let total =
        kib_field(text, "MemTotal")?.ok_or(ParseError::MissingField { field: "MemTotal" })?;
    let available = match kib_field(text, "MemAvailable")? {
        Some(a) => a,
        None => {
            let free = kib_field(text, "MemFree")?.ok_or(ParseError::MissingField {
                field: "MemAvailable",
            })?;
            let buffers = kib_field(text, "Buffers")?.unwrap_or(0);
            let cached = kib_field(text, "Cached")?.unwrap_or(0);
            free.saturating_add(buffers).saturating_add(cached)
        }
    };
    Ok(MemInfo {
        total_bytes: total.saturating_mul(1024),
        available_bytes: available.saturating_mul(1024),
    })
}

/// Parses a `/sys/class/thermal/thermal_zone*/temp` file (millidegrees Celsius, possibly
/// negative).
///
/// # Errors
///
/// [`ParseError::InvalidNumber`] unless the trimmed text is an integer of a real temperature.
pub fn parse_thermal_temp(text: &str) -> Result<Celsius, ParseError> {
    let t = text.trim();
    let invalid = || ParseError::InvalidNumber {
        field: "temp",
        text: t.chars().take(32).collect(),
    };
    let milli: i64 = t.parse().map_err(|_| invalid())?;
    // |milli| < 2^53 after the check, so the f64 conversion is exact.
    if milli.abs() > 1_000_000_000 {
        return Err(invalid());
    }
    Celsius::new(milli as f64 / 1000.0).map_err(|_| invalid())
}

/// Whether a thermal zone `type` names a CPU sensor (`cpu-thermal` on a Raspberry Pi,
/// `x86_pkg_temp`, `coretemp`, `k10temp`, `soc_thermal`, ...).
pub fn is_cpu_thermal_zone(zone_type: &str) -> bool {
    let t = zone_type.trim().to_ascii_lowercase();
    ["cpu", "x86_pkg", "coretemp", "k10temp", "soc", "package"]
        .iter()
        .any(|k| t.contains(k))
}

/// Process CPU % over an interval: `ticks / USER_HZ / wall / cpus * 100`, clamped to
/// 0..=100; `None` for an empty interval or if the counter went backwards.
pub fn process_cpu_percent(
    previous: ProcessTicks,
    current: ProcessTicks,
    wall: Duration,
    cpus: u32,
) -> Option<Percent> {
    let ticks = current.checked_sub(previous)?;
    let capacity = wall.as_secs_f64() * f64::from(cpus.max(1));
    (capacity > 0.0).then(|| Percent::saturating(100.0 * ticks as f64 / USER_HZ as f64 / capacity))
}

/// System CPU % between two `/proc/stat` readings: busy ticks over all ticks; `None` when
/// no ticks passed or a counter went backwards.
pub fn system_cpu_percent(previous: SystemCpuTimes, current: SystemCpuTimes) -> Option<Percent> {
    let total = current.total.checked_sub(previous.total)?;
    let idle = current.idle.checked_sub(previous.idle)?;
    (total > 0)
        .then(|| Percent::saturating(100.0 * total.saturating_sub(idle) as f64 / total as f64))
}

/// Why [`ResourceSampler::sample`] failed: a file existed but could not be read or parsed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SampleError {
    /// Reading failed for a reason other than the file being absent.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The file's content was not understood.
    #[error("cannot parse {path}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        #[source]
        source: ParseError,
    },
}

/// One set of resource readings; `None` means unknown.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ResourceReadings {
    /// This process's CPU share of the whole machine since the previous sample.
    pub process_cpu: Option<Percent>,
    /// Whole-machine CPU load since the previous sample.
    pub system_cpu: Option<Percent>,
    /// This process's resident memory.
    pub rss_bytes: Option<u64>,
    /// Whole-machine memory in use.
    pub system_memory: Option<Percent>,
    /// Hottest CPU-like thermal zone (or hottest zone when none is CPU-like).
    pub cpu_temperature: Option<Celsius>,
}

/// Reads `/proc` and `/sys` (or fixture trees standing in for them).
///
/// Call order: create once, then call [`ResourceSampler::sample`] periodically (e.g. 1 Hz)
/// with the time elapsed since an epoch of your choice; CPU figures are averages over the
/// time between two calls.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sarlink_monitor::resources::ResourceSampler;
///
/// let mut sampler = ResourceSampler::new();
/// let first = sampler.sample(Duration::ZERO)?;
/// assert_eq!(first.process_cpu, None); // needs two samples
/// # Ok::<(), sarlink_monitor::resources::SampleError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ResourceSampler {
    proc_root: PathBuf,
    sys_root: PathBuf,
    previous_process: Option<(Duration, ProcessTicks)>,
    previous_system: Option<SystemCpuTimes>,
}

impl Default for ResourceSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl ResourceSampler {
    /// A sampler over the real `/proc` and `/sys`.
    pub fn new() -> Self {
        Self::with_roots("/proc", "/sys")
    }

    /// A sampler over other roots: reads `<proc>/self/stat`, `<proc>/self/status`,
    /// `<proc>/stat`, `<proc>/meminfo` and `<sys>/class/thermal/thermal_zone*/{type,temp}`.
    pub fn with_roots(proc_root: impl Into<PathBuf>, sys_root: impl Into<PathBuf>) -> Self {
        Self {
            proc_root: proc_root.into(),
            sys_root: sys_root.into(),
            previous_process: None,
            previous_system: None,
        }
    }

    /// Takes one sample at `now`.
    ///
    /// A thermal zone whose `temp` cannot be read or parsed (some drivers fail reads) is
    /// skipped rather than reported.
    ///
    /// # Errors
    ///
    /// [`SampleError`] if a present `/proc` file cannot be read or parsed. Absent files
    /// give `None` fields.
    pub fn sample(&mut self, now: Duration) -> Result<ResourceReadings, SampleError> {
        let mut first = None;
        let readings = self.sample_each(now, |e| {
            first.get_or_insert(e);
        });
        match first {
            Some(e) => Err(e),
            None => Ok(readings),
        }
    }

    /// Takes one sample at `now`, each reading on its own: a file that cannot be read or
    /// parsed (a container that denies `/proc/stat`) makes only its readings unknown and
    /// is passed to `failed`; the others are still taken. This is what a driver wants.
    pub fn sample_each(
        &mut self,
        now: Duration,
        mut failed: impl FnMut(SampleError),
    ) -> ResourceReadings {
        let mut readings = ResourceReadings::default();

        let system = taken(
            &mut failed,
            read_parsed(&self.proc_root.join("stat"), parse_stat),
        );
        if let (Some(prev), Some(cur)) = (self.previous_system, system) {
            readings.system_cpu = system_cpu_percent(prev, cur);
        }
        self.previous_system = system;

        let process = taken(
            &mut failed,
            read_parsed(&self.proc_root.join("self/stat"), parse_pid_stat),
        );
        if let (Some((then, prev)), Some(cur), Some(sys)) = (self.previous_process, process, system)
        {
            readings.process_cpu =
                process_cpu_percent(prev, cur, now.saturating_sub(then), sys.cpus);
        }
        self.previous_process = process.map(|p| (now, p));

        readings.rss_bytes = taken(
            &mut failed,
            read_parsed(&self.proc_root.join("self/status"), parse_status_rss),
        )
        .flatten();
        readings.system_memory = taken(
            &mut failed,
            read_parsed(&self.proc_root.join("meminfo"), parse_meminfo),
        )
        .and_then(|m| m.used_percent());
        readings.cpu_temperature = read_cpu_temperature(&self.sys_root.join("class/thermal"));
        readings
    }
}

/// The value of a read, or `None` after handing its error to `failed`.
fn taken<T>(
    failed: &mut impl FnMut(SampleError),
    result: Result<Option<T>, SampleError>,
) -> Option<T> {
    result.unwrap_or_else(|e| {
        failed(e);
        None
    })
}

fn read_text(path: &Path) -> Result<Option<String>, SampleError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SampleError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn read_parsed<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, ParseError>,
) -> Result<Option<T>, SampleError> {
    match read_text(path)? {
        None => Ok(None),
        Some(text) => parse(&text).map(Some).map_err(|source| SampleError::Parse {
            path: path.to_owned(),
            source,
        }),
    }
}

fn read_cpu_temperature(thermal: &Path) -> Option<Celsius> {
    let entries = std::fs::read_dir(thermal).ok()?;
    let mut cpu_max: Option<Celsius> = None;
    let mut any_max: Option<Celsius> = None;
    for entry in entries.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with("thermal_zone")
        {
            continue;
        }
        let dir = entry.path();
        let Some(temp) = std::fs::read_to_string(dir.join("temp"))
            .ok()
            .and_then(|t| parse_thermal_temp(&t).ok())
        else {
            continue;
        };
        let is_cpu =
            std::fs::read_to_string(dir.join("type")).is_ok_and(|t| is_cpu_thermal_zone(&t));
        let hotter = |m: Option<Celsius>| Some(m.map_or(temp, |m| if temp > m { temp } else { m }));
        any_max = hotter(any_max);
        if is_cpu {
            cpu_max = hotter(cpu_max);
        }
    }
    cpu_max.or(any_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_arithmetic() {
        // 50 ticks = 0.5 s of CPU over 1 s of wall time on 2 CPUs = 25 %.
        let p = process_cpu_percent(100, 150, Duration::from_secs(1), 2).unwrap();
        assert_eq!(p.value(), 25.0);
        assert_eq!(
            process_cpu_percent(150, 100, Duration::from_secs(1), 2),
            None
        );
        assert_eq!(process_cpu_percent(100, 150, Duration::ZERO, 2), None);
        let a = SystemCpuTimes {
            total: 1000,
            idle: 800,
            cpus: 4,
        };
        let b = SystemCpuTimes {
            total: 1400,
            idle: 900,
            cpus: 4,
        };
        assert_eq!(system_cpu_percent(a, b).unwrap().value(), 75.0);
        assert_eq!(system_cpu_percent(a, a), None);
    }

    #[test]
    fn thermal_temp_parsing() {
        assert_eq!(parse_thermal_temp("48312\n").unwrap().value(), 48.312);
        assert_eq!(parse_thermal_temp("-5000").unwrap().value(), -5.0);
        assert!(parse_thermal_temp("").is_err());
        assert!(parse_thermal_temp("hot").is_err());
        assert!(parse_thermal_temp("-300000").is_err());
        assert!(is_cpu_thermal_zone("cpu-thermal\n"));
        assert!(is_cpu_thermal_zone("x86_pkg_temp"));
        assert!(!is_cpu_thermal_zone("acpitz"));
    }
}
