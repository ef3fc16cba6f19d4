//! Where samples come from: one trait, [`IqSource`], and its implementations.
//!
//! | source | module | control |
//! |---|---|---|
//! | RTL-SDR over USB (feature `rtlsdr`, links GPL code) | `rtlsdr` | frequency, gain, rate, ppm |
//! | an `rtl_tcp` server | [`rtl_tcp`] | frequency, gain, rate, ppm, bias tee |
//! | raw (cu8, cs8, cs16, cf32, cu16) / SigMF recordings | [`file`](mod@file) | none (`Unsupported`) |
//! | simulated beacon | [`sim`] | frequency, gain, rate |
//!
//! # Live sources and staleness
//!
//! [`IqSource::read_block`] treats "no samples yet" as an error. A caller that must keep
//! running while a live source is stalled or reconnecting (the drone's measurement loop) calls
//! [`IqSource::poll_block`] instead: it waits a bounded time and returns
//! [`BlockStatus::Stalled`] rather than an error, and [`IqSource::health`] tells how old the
//! last samples are, how fast they really arrive and how often the source reconnected.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use crate::block::{Gain, IqBlock};

pub mod file;
pub mod rtl_tcp;
#[cfg(feature = "rtlsdr")]
pub mod rtlsdr;
pub mod sim;
mod tar;

/// What [`IqSource::read_block`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum ReadStatus {
    /// The block holds at least one sample.
    Data,
    /// The stream has ended; the block is empty.
    End,
}

/// What [`IqSource::poll_block`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub enum BlockStatus {
    /// The block holds at least one sample (possibly fewer than its capacity).
    Data,
    /// The stream has ended; the block is empty.
    End,
    /// No samples arrived within the source's bounded wait; the block is empty. The source
    /// keeps trying by itself (a network source reconnects); call again. The state says why.
    Stalled(LinkState),
}

impl From<ReadStatus> for BlockStatus {
    fn from(status: ReadStatus) -> Self {
        match status {
            ReadStatus::Data => BlockStatus::Data,
            ReadStatus::End => BlockStatus::End,
        }
    }
}

/// Whether a live source is delivering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkState {
    /// Connected and samples arrived recently.
    Streaming,
    /// Connected, but no samples arrived for longer than the source's stall threshold.
    Stalled,
    /// Not connected: connecting, or waiting out the backoff before the next attempt.
    Reconnecting,
}

impl LinkState {
    /// A short lowercase name (`streaming`, `stalled`, `reconnecting`) for logs and records.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Streaming => "streaming",
            LinkState::Stalled => "stalled",
            LinkState::Reconnecting => "reconnecting",
        }
    }
}

/// How well a live source is delivering, for marking measurements stale.
///
/// Times are wall-clock [`Instant`]s taken when [`IqSource::poll_block`] (or `read_block`)
/// handed samples to the caller.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct SourceHealth {
    /// Connection state now.
    pub state: LinkState,
    /// When the caller last received samples; `None` before the first.
    pub last_samples_at: Option<Instant>,
    /// Samples per second actually delivered to the caller over the last
    /// [`SourceHealth::RATE_WINDOW`] (less at the start of the stream).
    pub delivered_rate_hz: f64,
    /// The sample rate the samples claim (the configured rate).
    pub nominal_rate_hz: u32,
    /// Connections re-established after the first one.
    pub reconnects: u64,
    /// Samples received but dropped because the caller did not read them in time.
    pub dropped_samples: u64,
}

impl SourceHealth {
    /// The window over which [`delivered_rate_hz`](Self::delivered_rate_hz) is measured.
    pub const RATE_WINDOW: Duration = Duration::from_secs(2);

    /// How old the newest samples are at `now`; `None` before the first samples.
    #[must_use]
    pub fn age(&self, now: Instant) -> Option<Duration> {
        self.last_samples_at
            .map(|t| now.saturating_duration_since(t))
    }

    /// Delivered over nominal rate: about 1.0 when keeping up with real time, 0.05 for a
    /// server at 5 % of real time; 0.0 when the nominal rate is 0.
    #[must_use]
    pub fn rate_ratio(&self) -> f64 {
        if self.nominal_rate_hz == 0 {
            0.0
        } else {
            self.delivered_rate_hz / f64::from(self.nominal_rate_hz)
        }
    }

    /// Whether data should be marked stale at `now`: no samples yet, none for longer than
    /// `max_age`, or delivered at less than `min_ratio` of the nominal rate.
    #[must_use]
    pub fn is_stale(&self, now: Instant, max_age: Duration, min_ratio: f64) -> bool {
        self.age(now).is_none_or(|a| a > max_age) || self.rate_ratio() < min_ratio
    }
}

/// A stream of complex samples with their sample rate, centre frequency and time.
///
/// Call order: any number of `set_*` calls and [`read_block`](IqSource::read_block) calls, in
/// any order; a setting applies to samples read after it (hardware may deliver a few samples
/// taken before a retune).
pub trait IqSource {
    /// Fills `block` (up to its capacity) with the next samples, replacing its contents.
    ///
    /// # Errors
    ///
    /// [`SourceError`] when the underlying file, connection or device fails; the source may
    /// then need a reconnect (see the implementation).
    fn read_block(&mut self, block: &mut IqBlock) -> Result<ReadStatus, SourceError>;

    /// Fills `block` like [`read_block`](IqSource::read_block), but a live source waits only
    /// a bounded time (at most 200 ms for this crate's rtl_tcp and USB sources) and reports a stall or a
    /// reconnect as [`BlockStatus::Stalled`] instead of an error, so the caller can keep
    /// running and mark its data stale. The block may then hold fewer samples than its
    /// capacity.
    ///
    /// The default calls `read_block`.
    ///
    /// # Errors
    ///
    /// [`SourceError`] for failures the source cannot recover from by itself (a file that
    /// cannot be read, a device that stopped).
    fn poll_block(&mut self, block: &mut IqBlock) -> Result<BlockStatus, SourceError> {
        self.read_block(block).map(BlockStatus::from)
    }

    /// How a live source is delivering; `None` for sources that do not track it (recordings,
    /// the simulator), whose samples are never stale.
    fn health(&self) -> Option<SourceHealth> {
        None
    }

    /// Current sample rate, Hz.
    fn sample_rate_hz(&self) -> u32;

    /// Current centre frequency, Hz.
    fn center_frequency_hz(&self) -> u64;

    /// Retunes the receiver.
    ///
    /// # Errors
    ///
    /// [`ControlError::Unsupported`] where the source cannot retune (recordings), or the
    /// failure to pass the request on.
    fn set_frequency(&mut self, frequency_hz: u64) -> Result<(), ControlError>;

    /// Changes the gain.
    ///
    /// # Errors
    ///
    /// [`ControlError::Unsupported`] where the source has no gain control, or the failure to
    /// pass the request on.
    fn set_gain(&mut self, gain: Gain) -> Result<(), ControlError>;

    /// Changes the sample rate.
    ///
    /// # Errors
    ///
    /// [`ControlError::Unsupported`] where the source cannot, or the failure to pass the
    /// request on.
    fn set_sample_rate(&mut self, sample_rate_hz: u32) -> Result<(), ControlError>;

    /// Sets the tuner's frequency correction, parts per million. Sources send it only once it
    /// has been set (here or in their config), so a server's own setting (`rtl_tcp -P`) stays
    /// in force otherwise.
    ///
    /// # Errors
    ///
    /// [`ControlError::Unsupported`] by default and where the source has no correction, or the
    /// failure to pass the request on.
    fn set_ppm(&mut self, ppm: i32) -> Result<(), ControlError> {
        let _ = ppm;
        Err(ControlError::Unsupported {
            what: "frequency correction",
        })
    }

    /// Switches the bias tee (power for an active antenna on the coax) on or off.
    ///
    /// # Errors
    ///
    /// [`ControlError::Unsupported`] by default and where the source cannot (recordings, the
    /// USB source: `rtlsdr_mt` has no bias-tee call), or the failure to pass the request on.
    fn set_bias_tee(&mut self, on: bool) -> Result<(), ControlError> {
        let _ = on;
        Err(ControlError::Unsupported { what: "bias tee" })
    }
}

/// Samples delivered over a sliding window. Pure: time is passed in.
#[derive(Debug, Clone)]
pub(crate) struct RateMeter {
    window: Duration,
    /// (when, samples), oldest first, at most `MAX_ENTRIES`.
    entries: VecDeque<(Instant, u64)>,
    first: Option<Instant>,
}

impl RateMeter {
    const MAX_ENTRIES: usize = 1024;

    pub(crate) fn new(window: Duration) -> Self {
        RateMeter {
            window,
            entries: VecDeque::with_capacity(Self::MAX_ENTRIES),
            first: None,
        }
    }

    pub(crate) fn record(&mut self, now: Instant, samples: u64) {
        self.first.get_or_insert(now);
        while self
            .entries
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > self.window)
        {
            self.entries.pop_front();
        }
        if self.entries.len() == Self::MAX_ENTRIES {
            // Merge the two oldest entries: the sum over the window stays right to within
            // one entry's age.
            if let Some((_, n)) = self.entries.pop_front() {
                if let Some(e) = self.entries.front_mut() {
                    e.1 += n;
                }
            }
        }
        self.entries.push_back((now, samples));
    }

    /// Samples per second at `now` over the window (over the time since the first record
    /// when that is shorter, but at least 100 ms so a single block is not a huge rate).
    pub(crate) fn rate(&self, now: Instant) -> f64 {
        let Some(first) = self.first else { return 0.0 };
        let span = now
            .saturating_duration_since(first)
            .min(self.window)
            .max(Duration::from_millis(100));
        let total: u64 = self
            .entries
            .iter()
            .filter(|(t, _)| now.saturating_duration_since(*t) <= self.window)
            .map(|(_, n)| n)
            .sum();
        total as f64 / span.as_secs_f64()
    }
}

/// Frequency range of an RTL-SDR tuner, Hz, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunerRange {
    /// Lowest tunable centre frequency, Hz.
    pub min_hz: u64,
    /// Highest tunable centre frequency, Hz.
    pub max_hz: u64,
}

impl TunerRange {
    /// Rafael Micro R820T / R820T2 / R828D, the tuner of nearly every RTL-SDR: 24-1766 MHz.
    pub const R820T: TunerRange = TunerRange {
        min_hz: 24_000_000,
        max_hz: 1_766_000_000,
    };

    /// The range for a librtlsdr tuner type (as an rtl_tcp header reports it: 1 E4000,
    /// 2 FC0012, 3 FC0013, 4 FC2580, 5 R820T, 6 R828D); `None` for an unknown type.
    #[must_use]
    pub fn for_tuner_type(tuner_type: u32) -> Option<TunerRange> {
        let (min_mhz, max_mhz) = match tuner_type {
            1 => (52, 2_200),
            2 => (22, 948),
            3 => (22, 1_100),
            4 => (146, 924),
            5 | 6 => return Some(TunerRange::R820T),
            _ => return None,
        };
        Some(TunerRange {
            min_hz: min_mhz * 1_000_000,
            max_hz: max_mhz * 1_000_000,
        })
    }

    /// Whether `frequency_hz` is in range.
    #[must_use]
    pub fn contains(&self, frequency_hz: u64) -> bool {
        (self.min_hz..=self.max_hz).contains(&frequency_hz)
    }

    /// `Ok` when `frequency_hz` is in range.
    ///
    /// # Errors
    ///
    /// [`ControlError::FrequencyOutOfRange`] otherwise.
    pub fn check(&self, frequency_hz: u64) -> Result<(), ControlError> {
        if self.contains(frequency_hz) {
            Ok(())
        } else {
            Err(ControlError::FrequencyOutOfRange {
                frequency_hz,
                min_hz: self.min_hz,
                max_hz: self.max_hz,
            })
        }
    }
}

/// Reading samples failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// Reading the file or socket failed.
    #[error("i/o error reading {what}")]
    Io {
        /// What was being read.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The server closed the connection (kept for other implementations; this crate's rtl_tcp
    /// client reconnects instead of returning it).
    #[error("connection closed by the server")]
    Disconnected,
    /// No samples arrived within the read timeout (the rtl_tcp client's `read_block` while its
    /// connection is up but silent; the RTL-SDR source drops a partial block).
    #[error("no samples within {timeout:?}")]
    Timeout {
        /// The configured read timeout.
        timeout: Duration,
    },
    /// The source is not connected (it reconnects by itself; see [`IqSource::poll_block`]).
    #[error("not connected")]
    NotConnected,
    /// The device stopped streaming.
    #[error("device stopped streaming")]
    DeviceStopped,
}

/// A control request (retune, gain, rate) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The source cannot do this.
    #[error("{what} is not supported by this source")]
    Unsupported {
        /// The setting requested.
        what: &'static str,
    },
    /// The value is outside what the source accepts.
    #[error("{what} {value} is out of range")]
    OutOfRange {
        /// The setting requested.
        what: &'static str,
        /// The value given.
        value: f64,
    },
    /// Sending the command failed.
    #[error("failed to send command {command:#04x}")]
    Send {
        /// The rtl_tcp command byte.
        command: u8,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The device refused the setting.
    #[error("device rejected the {what} setting")]
    Rejected {
        /// The setting requested.
        what: &'static str,
    },
    /// The source is not connected; the setting is kept and applied on reconnect.
    #[error("not connected")]
    NotConnected,
    /// The centre frequency is outside the tuner's range.
    #[error("{frequency_hz} Hz is outside the tuner's range {min_hz}-{max_hz} Hz")]
    FrequencyOutOfRange {
        /// The frequency asked for, Hz.
        frequency_hz: u64,
        /// Lowest tunable frequency, Hz.
        min_hz: u64,
        /// Highest tunable frequency, Hz.
        max_hz: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_meter_measures_over_its_window() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(Duration::from_secs(2));
        assert_eq!(m.rate(t0), 0.0);
        for i in 0..40u32 {
            m.record(t0 + Duration::from_millis(100) * i, 1_000);
        }
        // 1000 samples every 100 ms: 10 kS/s, measured over the last 2 s.
        let r = m.rate(t0 + Duration::from_millis(3_950));
        assert!((r - 10_000.0).abs() < 600.0, "{r}");
        // Nothing for 5 s: the rate falls to zero.
        assert_eq!(m.rate(t0 + Duration::from_secs(10)), 0.0);
    }
}
