//! RTL-SDR dongles over USB through `rtlsdr_mt` (feature `rtlsdr`).
//!
//! **Licence:** this module uses `rtlsdr_mt` (GPL-2.0+) and links librtlsdr
//! (GPL-2.0-or-later); a program built with the `rtlsdr` feature is a combined work under the
//! GPL. The default build does not include it.
//!
//! librtlsdr delivers samples through a callback on its own thread; a reader thread copies
//! them into a fixed pool of buffers that [`RtlSdrSource::read_block`](crate::IqSource::read_block)
//! drains, so no buffer is allocated after opening. When the consumer falls behind, whole
//! transfers are dropped and counted ([`RtlSdrSource::dropped_transfers`]).
//!
//! `rtlsdr_mt` does not report the tuner type, so the centre frequency is checked against the
//! R820T/R828D range ([`TunerRange::R820T`], 24-1766 MHz) that nearly every dongle has, at
//! open and on every retune. `rtlsdr_mt` has no bias-tee call either: asking for the bias tee
//! is [`OpenError::BiasTeeUnsupported`] at open and [`ControlError::Unsupported`] later; use an
//! `rtl_tcp -T` server (or `rtl_biast`) for an active antenna.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rtlsdr_mt::Controller;

use crate::block::{Gain, IqBlock, samples_to_duration};
use crate::source::{
    BlockStatus, ControlError, IqSource, LinkState, RateMeter, ReadStatus, SourceError,
    SourceHealth, TunerRange,
};

/// Settings applied when opening; fields document their defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct RtlSdrConfig {
    /// Index of the dongle among those attached; default 0.
    pub device_index: u32,
    /// Sample rate, Hz; default 1 024 000.
    pub sample_rate_hz: u32,
    /// Centre frequency, Hz; default 433 920 000.
    pub center_frequency_hz: u32,
    /// Tuner gain; default [`Gain::Auto`].
    pub gain: Gain,
    /// Frequency correction, ppm; default `None` (not set, the dongle's default of 0 stays).
    pub ppm: Option<i32>,
    /// Bias tee; default `None`. `Some(true)` fails with [`OpenError::BiasTeeUnsupported`]
    /// (`rtlsdr_mt` offers no bias-tee call); `Some(false)` is accepted (it is off already).
    pub bias_tee: Option<bool>,
    /// Bytes per USB transfer (a multiple of 512); default 32 768.
    pub transfer_len: u32,
    /// Transfers buffered between the USB thread and the reader; default 16.
    pub buffers: usize,
    /// Longest wait for samples in `read_block`; default 2 s.
    pub read_timeout: Duration,
    /// Longest wait for samples in `poll_block`; default 100 ms, at most 200 ms (larger values
    /// are capped).
    pub max_wait: Duration,
    /// Time without samples after which [`IqSource::health`] reports
    /// [`LinkState::Stalled`]; default 500 ms.
    pub stall_after: Duration,
}

impl Default for RtlSdrConfig {
    fn default() -> Self {
        RtlSdrConfig {
            device_index: 0,
            sample_rate_hz: 1_024_000,
            center_frequency_hz: 433_920_000,
            gain: Gain::Auto,
            ppm: None,
            bias_tee: None,
            transfer_len: 32_768,
            buffers: 16,
            read_timeout: Duration::from_secs(2),
            max_wait: Duration::from_millis(100),
            stall_after: Duration::from_millis(500),
        }
    }
}

/// Opening a dongle failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// No dongle at that index could be opened (none attached, or in use).
    #[error("cannot open rtl-sdr device {index} ({attached} attached)")]
    NoDevice {
        /// The index asked for.
        index: u32,
        /// How many dongles librtlsdr sees.
        attached: usize,
    },
    /// The dongle refused a setting.
    #[error("rtl-sdr device rejected the {what} setting")]
    Rejected {
        /// The setting.
        what: &'static str,
    },
    /// The centre frequency is outside the R820T's range (checked before touching USB).
    #[error("{frequency_hz} Hz is outside the tuner's range {min_hz}-{max_hz} Hz")]
    FrequencyOutOfRange {
        /// The frequency asked for, Hz.
        frequency_hz: u64,
        /// Lowest tunable frequency, Hz.
        min_hz: u64,
        /// Highest tunable frequency, Hz.
        max_hz: u64,
    },
    /// The bias tee was asked for; `rtlsdr_mt` cannot switch it.
    #[error("the usb source cannot switch the bias tee (rtlsdr_mt has no bias-tee call)")]
    BiasTeeUnsupported,
    /// The transfer size is not a positive multiple of 512 bytes.
    #[error("transfer length {len} is not a positive multiple of 512")]
    BadTransferLen {
        /// The length given.
        len: u32,
    },
}

/// An [`IqSource`] reading an RTL-SDR dongle.
pub struct RtlSdrSource {
    controller: Controller,
    config: RtlSdrConfig,
    full: Receiver<Vec<u8>>,
    empty: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    position: usize,
    dropped: Arc<AtomicU64>,
    reader: Option<JoinHandle<()>>,
    delivered: u64,
    meter: RateMeter,
    last_samples_at: Option<Instant>,
    opened_at: Instant,
}

impl fmt::Debug for RtlSdrSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtlSdrSource")
            .field("config", &self.config)
            .field("delivered", &self.delivered)
            .field("dropped_transfers", &self.dropped_transfers())
            .finish_non_exhaustive()
    }
}

impl RtlSdrSource {
    /// Opens the dongle, applies `config` and starts streaming.
    ///
    /// # Errors
    ///
    /// [`OpenError::NoDevice`] when no dongle is attached at that index (a clear error, never a
    /// panic), [`OpenError::Rejected`] when it refuses a setting,
    /// [`OpenError::BadTransferLen`], [`OpenError::FrequencyOutOfRange`] and
    /// [`OpenError::BiasTeeUnsupported`] (the last three before touching USB).
    pub fn open(config: RtlSdrConfig) -> Result<Self, OpenError> {
        if config.transfer_len == 0 || config.transfer_len % 512 != 0 {
            return Err(OpenError::BadTransferLen {
                len: config.transfer_len,
            });
        }
        let range = TunerRange::R820T;
        if !range.contains(u64::from(config.center_frequency_hz)) {
            return Err(OpenError::FrequencyOutOfRange {
                frequency_hz: u64::from(config.center_frequency_hz),
                min_hz: range.min_hz,
                max_hz: range.max_hz,
            });
        }
        if config.bias_tee == Some(true) {
            return Err(OpenError::BiasTeeUnsupported);
        }
        let (mut controller, mut reader) =
            rtlsdr_mt::open(config.device_index).map_err(|()| OpenError::NoDevice {
                index: config.device_index,
                attached: rtlsdr_mt::devices().count(),
            })?;
        controller
            .set_sample_rate(config.sample_rate_hz)
            .map_err(|()| OpenError::Rejected {
                what: "sample rate",
            })?;
        controller
            .set_center_freq(config.center_frequency_hz)
            .map_err(|()| OpenError::Rejected {
                what: "centre frequency",
            })?;
        if let Some(ppm) = config.ppm {
            controller.set_ppm(ppm).map_err(|()| OpenError::Rejected {
                what: "frequency correction",
            })?;
        }
        apply_gain(&mut controller, config.gain)
            .map_err(|()| OpenError::Rejected { what: "gain" })?;

        let buffers = config.buffers.max(2);
        let (full_tx, full) = mpsc::sync_channel::<Vec<u8>>(buffers);
        let (empty, empty_rx) = mpsc::sync_channel::<Vec<u8>>(buffers + 1);
        for _ in 0..buffers {
            // Capacity buffers + 1 > buffers: cannot fail.
            let _ = empty.try_send(Vec::with_capacity(config.transfer_len as usize));
        }
        let dropped = Arc::new(AtomicU64::new(0));
        let dropped_in_reader = Arc::clone(&dropped);
        let len = config.transfer_len;
        let handle = std::thread::Builder::new()
            .name("rtlsdr-reader".into())
            .spawn(move || {
                let _ = reader.read_async(4, len, |bytes| match empty_rx.try_recv() {
                    Ok(mut buf) => {
                        buf.clear();
                        buf.extend_from_slice(bytes);
                        let _ = full_tx.try_send(buf);
                    }
                    Err(_) => {
                        dropped_in_reader.fetch_add(1, Ordering::Relaxed);
                    }
                });
                // Dropping `full_tx` here tells read_block the stream stopped.
            })
            .map_err(|_| OpenError::Rejected {
                what: "reader thread",
            })?;
        Ok(RtlSdrSource {
            controller,
            config,
            full,
            empty,
            current: Vec::new(),
            position: 0,
            dropped,
            reader: Some(handle),
            delivered: 0,
            meter: RateMeter::new(SourceHealth::RATE_WINDOW),
            last_samples_at: None,
            opened_at: Instant::now(),
        })
    }

    /// Names of the dongles librtlsdr sees, in index order.
    #[must_use]
    pub fn devices() -> Vec<String> {
        rtlsdr_mt::devices()
            .map(|n| n.to_string_lossy().into_owned())
            .collect()
    }

    /// USB transfers dropped because the consumer fell behind.
    #[must_use]
    pub fn dropped_transfers(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Streaming while samples arrived within `stall_after`, else stalled.
    fn state(&self) -> LinkState {
        let last = self.last_samples_at.unwrap_or(self.opened_at);
        if last.elapsed() > self.config.stall_after {
            LinkState::Stalled
        } else {
            LinkState::Streaming
        }
    }

    /// Fills `block`. With a `deadline`, returns what arrived by then (`Ok(false)` for
    /// nothing); without, waits `read_timeout` per transfer and returns `Ok(false)` (block
    /// emptied) when one does not come.
    fn fill(
        &mut self,
        block: &mut IqBlock,
        deadline: Option<Instant>,
    ) -> Result<bool, SourceError> {
        let rate = self.config.sample_rate_hz;
        block.start(
            rate,
            u64::from(self.config.center_frequency_hz),
            samples_to_duration(self.delivered, rate),
        );
        while block.remaining() > 0 {
            if self.position + 1 >= self.current.len() {
                let wait = match deadline {
                    Some(d) => d.saturating_duration_since(Instant::now()),
                    None => self.config.read_timeout,
                };
                let next = match self.full.recv_timeout(wait) {
                    Ok(buf) => buf,
                    Err(RecvTimeoutError::Timeout) => {
                        if deadline.is_none() {
                            block.start(
                                rate,
                                u64::from(self.config.center_frequency_hz),
                                block.timestamp(),
                            );
                        }
                        break;
                    }
                    Err(RecvTimeoutError::Disconnected) => return Err(SourceError::DeviceStopped),
                };
                let done = std::mem::replace(&mut self.current, next);
                // Recycle the drained buffer; the pool has room for every buffer.
                let _ = self.empty.try_send(done);
                self.position = 0;
            }
            let n = block.extend_from_cu8(&self.current[self.position..]);
            self.position += 2 * n;
        }
        if block.is_empty() {
            return Ok(false);
        }
        let now = Instant::now();
        self.delivered += block.len() as u64;
        self.meter.record(now, block.len() as u64);
        self.last_samples_at = Some(now);
        Ok(true)
    }
}

fn apply_gain(controller: &mut Controller, gain: Gain) -> Result<(), ()> {
    match gain {
        Gain::Auto => controller.enable_agc(),
        Gain::Db(db) => {
            let tenths = (f64::from(db) * 10.0).round();
            if !(-1000.0..=1000.0).contains(&tenths) {
                return Err(());
            }
            // In range: the cast is exact.
            controller.disable_agc()?;
            controller.set_tuner_gain(tenths as i32)
        }
    }
}

impl IqSource for RtlSdrSource {
    /// Fills the whole block, waiting up to [`RtlSdrConfig::read_timeout`] for each USB
    /// transfer.
    ///
    /// # Errors
    ///
    /// [`SourceError::Timeout`] (the partial block is dropped), [`SourceError::DeviceStopped`].
    fn read_block(&mut self, block: &mut IqBlock) -> Result<ReadStatus, SourceError> {
        match self.fill(block, None)? {
            true => Ok(ReadStatus::Data),
            false => Err(SourceError::Timeout {
                timeout: self.config.read_timeout,
            }),
        }
    }

    /// Waits at most [`RtlSdrConfig::max_wait`] (capped at 200 ms); returns what arrived
    /// (possibly a partial block) or [`BlockStatus::Stalled`].
    ///
    /// # Errors
    ///
    /// [`SourceError::DeviceStopped`] when the dongle stopped streaming (unplugged).
    fn poll_block(&mut self, block: &mut IqBlock) -> Result<BlockStatus, SourceError> {
        let deadline = Instant::now() + self.config.max_wait.min(Duration::from_millis(200));
        match self.fill(block, Some(deadline))? {
            true => Ok(BlockStatus::Data),
            false => Ok(BlockStatus::Stalled(self.state())),
        }
    }

    fn health(&self) -> Option<SourceHealth> {
        Some(SourceHealth {
            state: self.state(),
            last_samples_at: self.last_samples_at,
            delivered_rate_hz: self.meter.rate(Instant::now()),
            nominal_rate_hz: self.config.sample_rate_hz,
            reconnects: 0,
            dropped_samples: self
                .dropped_transfers()
                .saturating_mul(u64::from(self.config.transfer_len / 2)),
        })
    }

    fn sample_rate_hz(&self) -> u32 {
        self.config.sample_rate_hz
    }

    fn center_frequency_hz(&self) -> u64 {
        u64::from(self.config.center_frequency_hz)
    }

    fn set_frequency(&mut self, frequency_hz: u64) -> Result<(), ControlError> {
        let hz = u32::try_from(frequency_hz).map_err(|_| ControlError::OutOfRange {
            what: "centre frequency (Hz)",
            value: frequency_hz as f64,
        })?;
        TunerRange::R820T.check(frequency_hz)?;
        self.controller
            .set_center_freq(hz)
            .map_err(|()| ControlError::Rejected {
                what: "centre frequency",
            })?;
        self.config.center_frequency_hz = hz;
        Ok(())
    }

    fn set_gain(&mut self, gain: Gain) -> Result<(), ControlError> {
        apply_gain(&mut self.controller, gain)
            .map_err(|()| ControlError::Rejected { what: "gain" })?;
        self.config.gain = gain;
        Ok(())
    }

    fn set_sample_rate(&mut self, sample_rate_hz: u32) -> Result<(), ControlError> {
        self.controller
            .set_sample_rate(sample_rate_hz)
            .map_err(|()| ControlError::Rejected {
                what: "sample rate",
            })?;
        let t = samples_to_duration(self.delivered, self.config.sample_rate_hz);
        self.delivered = (t.as_secs_f64() * f64::from(sample_rate_hz)).round() as u64;
        self.config.sample_rate_hz = sample_rate_hz;
        Ok(())
    }

    fn set_ppm(&mut self, ppm: i32) -> Result<(), ControlError> {
        self.controller
            .set_ppm(ppm)
            .map_err(|()| ControlError::Rejected {
                what: "frequency correction",
            })?;
        self.config.ppm = Some(ppm);
        Ok(())
    }
}

impl Drop for RtlSdrSource {
    fn drop(&mut self) {
        self.controller.cancel_async_read();
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
    }
}
