//! The ground's own receiver: a thread turning I/Q from a source into RSSI records
//! (source 1) on a channel.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, bounded};
use sarlink_schema::{RssiRecord, SourceId};
use sarlink_sdr::{Estimator, EstimatorConfig, Gain, IqBlock, IqSource, ReadStatus};

use crate::source::{self, SourceSpec, Tuning};

/// A running receiver; stops when dropped.
#[derive(Debug)]
pub struct OwnReceiver {
    records: Receiver<RssiRecord>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

pub use crate::record::{to_record, unix_ns};

/// A boxed source (what [`source::open`] returns), as an [`IqSource`].
pub struct DynSource(pub Box<dyn IqSource + Send>);

impl std::fmt::Debug for DynSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynSource")
            .field("sample_rate_hz", &self.0.sample_rate_hz())
            .finish_non_exhaustive()
    }
}

impl IqSource for DynSource {
    fn read_block(&mut self, block: &mut IqBlock) -> Result<ReadStatus, sarlink_sdr::SourceError> {
        self.0.read_block(block)
    }
    fn sample_rate_hz(&self) -> u32 {
        self.0.sample_rate_hz()
    }
    fn center_frequency_hz(&self) -> u64 {
        self.0.center_frequency_hz()
    }
    fn set_frequency(&mut self, frequency_hz: u64) -> Result<(), sarlink_sdr::ControlError> {
        self.0.set_frequency(frequency_hz)
    }
    fn set_gain(&mut self, gain: Gain) -> Result<(), sarlink_sdr::ControlError> {
        self.0.set_gain(gain)
    }
    fn set_sample_rate(&mut self, sample_rate_hz: u32) -> Result<(), sarlink_sdr::ControlError> {
        self.0.set_sample_rate(sample_rate_hz)
    }
}

/// A source and its estimator, producing records at `rate_hz`.
pub struct Measurement<S = DynSource> {
    /// The source.
    pub source: S,
    /// The estimator.
    pub estimator: Estimator,
    block: IqBlock,
    pacer: Option<sarlink_sdr::pacing::Pacer>,
    source_id: SourceId,
}

impl<S> std::fmt::Debug for Measurement<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Measurement")
            .field("source_id", &self.source_id)
            .finish_non_exhaustive()
    }
}

impl Measurement<DynSource> {
    /// Opens `spec` tuned to `beacon_hz` and sets up its estimator.
    ///
    /// # Errors
    /// A message naming what failed.
    pub fn open(
        spec: &SourceSpec,
        beacon_hz: Option<u64>,
        sample_rate_hz: u32,
        gain: Gain,
        rate_hz: f32,
        source_id: SourceId,
        seed: u64,
    ) -> Result<Self, String> {
        let tuning = Tuning {
            beacon_hz,
            sample_rate_hz,
            gain,
            tuning_offset_hz: 100_000.0_f64.min(f64::from(sample_rate_hz) / 4.0),
            seed,
        };
        let opened = source::open(spec, &tuning)?;
        Measurement::with_source(
            DynSource(opened.source),
            opened.channel_offset_hz,
            opened.is_sim,
            gain,
            rate_hz,
            source_id,
        )
    }
}

impl<S: IqSource> Measurement<S> {
    /// Wraps an already opened source.
    ///
    /// # Errors
    /// When the estimator rejects the source's parameters.
    pub fn with_source(
        source: S,
        channel_offset_hz: f64,
        pace: bool,
        gain: Gain,
        rate_hz: f32,
        source_id: SourceId,
    ) -> Result<Self, String> {
        let rate = source.sample_rate_hz();
        let config = EstimatorConfig::new(rate)
            .center_frequency_hz(source.center_frequency_hz())
            .channel(channel_offset_hz, 10_000.0)
            .report_interval(Duration::from_secs_f32(1.0 / rate_hz))
            .gain(gain);
        let estimator = Estimator::new(config).map_err(|e| format!("estimator: {e}"))?;
        let block_len = ((rate as usize / 50) / 1024).max(1) * 1024;
        Ok(Measurement {
            source,
            estimator,
            block: IqBlock::with_capacity(block_len),
            pacer: pace.then(|| sarlink_sdr::pacing::Pacer::new(rate)),
            source_id,
        })
    }

    /// Reads one block (pacing a simulator in real time) and calls `on_record` for each
    /// report it completes. False at the end of a finite stream.
    ///
    /// # Errors
    /// When the source or the estimator fails.
    pub fn step(&mut self, mut on_record: impl FnMut(RssiRecord)) -> Result<bool, String> {
        match self
            .source
            .read_block(&mut self.block)
            .map_err(|e| e.to_string())?
        {
            ReadStatus::End => return Ok(false),
            ReadStatus::Data => {}
        }
        if let Some(p) = &mut self.pacer {
            p.wait(self.block.len());
        }
        let id = self.source_id;
        self.estimator
            .process_block(&self.block, |r| {
                if let Some(rec) = to_record(r, unix_ns(), id) {
                    on_record(rec);
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(true)
    }
}

impl OwnReceiver {
    /// Starts measuring `spec` at `rate_hz` reports per second.
    ///
    /// # Errors
    /// When the source cannot be opened.
    pub fn start(
        spec: &SourceSpec,
        beacon_hz: u64,
        sample_rate_hz: u32,
        gain: Gain,
        rate_hz: f32,
    ) -> Result<OwnReceiver, String> {
        let mut m = Measurement::open(
            spec,
            Some(beacon_hz),
            sample_rate_hz,
            gain,
            rate_hz,
            SourceId::GROUND,
            rand::random(),
        )?;
        Ok(Self::spawn(move |stop, tx| {
            while !stop.load(Ordering::Relaxed) {
                match m.step(|r| {
                    let _ = tx.try_send(r);
                }) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "own receiver failed");
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        }))
    }

    /// Runs `body` on a receiver thread with a stop flag and the record channel.
    pub fn spawn(
        body: impl FnOnce(&AtomicBool, &crossbeam_channel::Sender<RssiRecord>) + Send + 'static,
    ) -> OwnReceiver {
        let (tx, rx) = bounded(1024);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("sarlink-own-rx".into())
            .spawn(move || body(&flag, &tx))
            .expect("spawn receiver thread");
        OwnReceiver {
            records: rx,
            stop,
            thread: Some(thread),
        }
    }

    /// The records produced.
    pub fn records(&self) -> &Receiver<RssiRecord> {
        &self.records
    }
}

impl Drop for OwnReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
