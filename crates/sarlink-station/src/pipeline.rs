//! The one measurement pipeline: I/Q source -> estimator -> wire record. The drone, the
//! ground's own receiver and the demo all measure through [`Measurement`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use sarlink_schema::{RssiRecord, SourceId};
use sarlink_sdr::{
    BlockStatus, Estimator, EstimatorConfig, Gain, IqBlock, IqSource, LinkState, ReadStatus,
    SourceHealth,
};

use crate::drone::{Control, ControlOutcome};
use crate::record::{to_record, unix_ns};
use crate::source::{self, OpenError, SourceSpec, Tuning};

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
    fn poll_block(&mut self, block: &mut IqBlock) -> Result<BlockStatus, sarlink_sdr::SourceError> {
        self.0.poll_block(block)
    }
    fn health(&self) -> Option<SourceHealth> {
        self.0.health()
    }
    fn set_ppm(&mut self, ppm: i32) -> Result<(), sarlink_sdr::ControlError> {
        self.0.set_ppm(ppm)
    }
    fn set_bias_tee(&mut self, on: bool) -> Result<(), sarlink_sdr::ControlError> {
        self.0.set_bias_tee(on)
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

/// The receiver settings a pipeline starts with.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    /// Which receiver this is (stamped on every record).
    pub source_id: SourceId,
    /// RSSI reports per second.
    pub rate_hz: f32,
    /// Tuner gain.
    pub gain: Gain,
    /// dBm = dBFS + this offset at the configured gain; `None` reports dBFS.
    pub calibration_db: Option<f32>,
    /// EWMA smoothing alpha, `None` for none.
    pub smoothing: Option<f32>,
    /// Width of the measured channel, Hz. Default 10 kHz.
    pub channel_hz: f64,
}

impl PipelineConfig {
    /// Defaults for receiver `source_id`: 10 Hz, automatic gain, dBFS, no smoothing.
    pub fn new(source_id: SourceId) -> Self {
        PipelineConfig {
            source_id,
            rate_hz: 10.0,
            gain: Gain::Auto,
            calibration_db: None,
            smoothing: None,
            channel_hz: 10_000.0,
        }
    }
}

/// One report turned into a record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// The record, stamped with the wall clock when its window completed.
    pub record: RssiRecord,
    /// The estimator's detection state after it.
    pub detected: bool,
    /// The samples behind it were stale: a live source that delivered its last samples
    /// more than [`STALE_AFTER`] ago, or at under half its nominal rate.
    pub stale: bool,
}

/// Samples older than this (from a live source) make a record stale.
pub const STALE_AFTER: Duration = Duration::from_secs(1);

/// What one [`Measurement::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A block was measured.
    Data,
    /// Nothing arrived within the source's bounded wait (a live source reconnecting or
    /// stalled); it keeps trying by itself.
    Stalled(LinkState),
    /// A finite stream ended.
    End,
}

/// Why a pipeline step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// The source failed to deliver samples.
    #[error("reading the source")]
    Source(#[source] sarlink_sdr::SourceError),
    /// The estimator refused the block.
    #[error("estimating")]
    Estimator(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A source and its estimator, producing records.
pub struct Measurement<S = DynSource> {
    /// The source.
    pub source: S,
    estimator: Estimator,
    est_config: EstimatorConfig,
    channel_offset_hz: f64,
    block: IqBlock,
    pacer: Option<sarlink_sdr::pacing::Pacer>,
    source_id: SourceId,
    last_cycle: Duration,
}

impl<S> std::fmt::Debug for Measurement<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Measurement")
            .field("source_id", &self.source_id)
            .field("channel_offset_hz", &self.channel_offset_hz)
            .finish_non_exhaustive()
    }
}

/// The tuning offset used for tunable sources: the receiver sits this far below the beacon
/// so the beacon is clear of the DC spike at the centre.
pub fn tuning_offset_hz(sample_rate_hz: u32) -> f64 {
    100_000.0_f64.min(f64::from(sample_rate_hz) / 4.0)
}

impl Measurement<DynSource> {
    /// Opens `spec` with `tuning` (see [`Tuning`]; its gain should be `config`'s).
    ///
    /// # Errors
    /// [`OpenError`] when the source cannot be opened or the estimator refuses its
    /// parameters.
    pub fn open(
        spec: &SourceSpec,
        tuning: &Tuning,
        config: &PipelineConfig,
    ) -> Result<Self, OpenError> {
        let opened = source::open(spec, tuning)?;
        Measurement::with_source(
            DynSource(opened.source),
            opened.channel_offset_hz,
            opened.is_sim,
            config,
        )
        .map_err(|e| OpenError::File {
            path: spec.to_string().into(),
            source: Box::new(e),
        })
    }
}

impl<S: IqSource> Measurement<S> {
    /// Wraps an already opened source whose beacon sits `channel_offset_hz` from its centre;
    /// `pace` holds a simulator to real time.
    ///
    /// # Errors
    /// When the estimator rejects the source's parameters.
    pub fn with_source(
        source: S,
        channel_offset_hz: f64,
        pace: bool,
        config: &PipelineConfig,
    ) -> Result<Self, sarlink_sdr::ConfigError> {
        let rate = source.sample_rate_hz();
        let mut est_config = EstimatorConfig::new(rate)
            .center_frequency_hz(source.center_frequency_hz())
            .channel(channel_offset_hz, config.channel_hz)
            .report_interval(Duration::from_secs_f32(1.0 / config.rate_hz))
            .gain(config.gain)
            .ewma(config.smoothing);
        if let Some(offset) = config.calibration_db {
            est_config = est_config.calibrate(config.gain, offset);
        }
        let estimator = Estimator::new(est_config.clone())?;
        // About 20 ms of samples per block, a whole number of FFT frames.
        let block_len = ((rate as usize / 50) / 1024).max(1) * 1024;
        Ok(Measurement {
            source,
            estimator,
            est_config,
            channel_offset_hz,
            block: IqBlock::with_capacity(block_len),
            pacer: pace.then(|| sarlink_sdr::pacing::Pacer::new(rate)),
            source_id: config.source_id,
            last_cycle: Duration::ZERO,
        })
    }

    /// Offset of the beacon from the receiver's centre, Hz.
    pub fn channel_offset_hz(&self) -> f64 {
        self.channel_offset_hz
    }

    /// Processing time of the latest block (reading excluded).
    pub fn last_cycle(&self) -> Duration {
        self.last_cycle
    }

    /// The source's delivery health (`None` for recordings and the simulator).
    pub fn health(&self) -> Option<SourceHealth> {
        self.source.health()
    }

    /// Reads one block, waiting a bounded time (pacing a simulator in real time), and calls
    /// `on_report` for each report it completes.
    ///
    /// # Errors
    /// [`StepError`] when the source or the estimator fails.
    pub fn step(&mut self, mut on_report: impl FnMut(Measured)) -> Result<Step, StepError> {
        match self
            .source
            .poll_block(&mut self.block)
            .map_err(StepError::Source)?
        {
            BlockStatus::End => return Ok(Step::End),
            BlockStatus::Stalled(state) => return Ok(Step::Stalled(state)),
            BlockStatus::Data => {}
            // A status this crate does not know carries no samples to measure.
            _ => return Ok(Step::Stalled(LinkState::Stalled)),
        }
        if let Some(p) = &mut self.pacer {
            p.wait(self.block.len());
        }
        let started = Instant::now();
        let stale = self
            .source
            .health()
            .is_some_and(|h| h.is_stale(started, STALE_AFTER, 0.5));
        let id = self.source_id;
        let smoothing = self.est_config.ewma_alpha();
        self.estimator
            .process_block(&self.block, |r| {
                if let Some(mut record) = to_record(r, unix_ns(), id) {
                    // No number changes meaning without the record saying so.
                    record.beacon.smoothing = smoothing;
                    record.beacon.stale = Some(stale);
                    on_report(Measured {
                        record,
                        detected: r.detected,
                        stale,
                    });
                }
            })
            .map_err(|e| StepError::Estimator(Box::new(e)))?;
        self.last_cycle = started.elapsed();
        Ok(Step::Data)
    }

    fn reconfigure(&mut self, config: EstimatorConfig) -> Result<(), String> {
        if config == self.est_config {
            return Ok(());
        }
        let estimator = Estimator::new(config.clone()).map_err(|e| e.to_string())?;
        self.est_config = config;
        self.estimator = estimator;
        Ok(())
    }

    /// Applies a receiver setting the drone core asked for.
    pub fn apply(&mut self, control: Control) -> ControlOutcome {
        let refuse = |e: sarlink_sdr::ControlError| match e {
            sarlink_sdr::ControlError::Unsupported { .. } => {
                ControlOutcome::Unsupported(e.to_string())
            }
            other => ControlOutcome::Failed(other.to_string()),
        };
        match control {
            Control::Tune { center_hz, .. } => match self.source.set_frequency(center_hz) {
                Ok(()) => {
                    self.est_config = self.est_config.clone().center_frequency_hz(center_hz);
                    self.estimator.set_center_frequency_hz(center_hz);
                    ControlOutcome::Applied
                }
                Err(e) => refuse(e),
            },
            Control::Gain { gain, .. } => match self.source.set_gain(gain) {
                Ok(()) => {
                    self.estimator.set_gain(gain);
                    ControlOutcome::Applied
                }
                Err(e) => refuse(e),
            },
            Control::ReportRate { hz } => {
                let config = self
                    .est_config
                    .clone()
                    .report_interval(Duration::from_secs_f32(1.0 / hz.max(0.01)));
                match self.reconfigure(config) {
                    Ok(()) => ControlOutcome::Applied,
                    Err(e) => ControlOutcome::Failed(e),
                }
            }
            Control::Smoothing { alpha } => {
                let config = self.est_config.clone().ewma(alpha);
                match self.reconfigure(config) {
                    Ok(()) => ControlOutcome::Applied,
                    Err(e) => ControlOutcome::Failed(e),
                }
            }
        }
    }
}

/// What a [`ReceiverThread`] reports.
#[derive(Debug, Clone, PartialEq)]
pub enum PipelineEvent {
    /// A report, as a record.
    Measured(Measured),
    /// Processing time of the block that completed the latest report.
    Cycle(Duration),
    /// A setting sent with [`ReceiverThread::control`] was applied, or not.
    ControlDone {
        /// The setting.
        control: Control,
        /// What happened.
        outcome: ControlOutcome,
    },
    /// The source keeps failing (logged; the thread keeps trying).
    Failing(String),
    /// How the source delivers (about once a second, for live sources).
    Health(SourceHealth),
    /// The source is stalled or reconnecting (sent when that starts).
    Stalled(LinkState),
    /// A finite source (a recording without looping) ended; the thread stops.
    End,
}

/// A [`Measurement`] running on its own thread, handing its reports over a bounded channel
/// and taking settings over another; stops when dropped.
#[derive(Debug)]
pub struct ReceiverThread {
    events: Receiver<PipelineEvent>,
    controls: Sender<Control>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ReceiverThread {
    /// Runs `measurement` until dropped. Events the consumer does not take in time (1024
    /// waiting) are dropped, so a stalled consumer never stalls the receiver.
    ///
    /// # Errors
    /// When the thread cannot be spawned.
    pub fn spawn<S: IqSource + Send + 'static>(
        mut measurement: Measurement<S>,
    ) -> std::io::Result<ReceiverThread> {
        let (tx, rx) = bounded(1024);
        let (control_tx, control_rx) = bounded::<Control>(64);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("sarlink-rx".into())
            .spawn(move || {
                let mut failures = 0u32;
                let mut stalled = false;
                let mut next_health = Instant::now();
                while !flag.load(Ordering::Relaxed) {
                    if Instant::now() >= next_health {
                        next_health += Duration::from_secs(1);
                        if let Some(h) = measurement.health() {
                            let _ = tx.try_send(PipelineEvent::Health(h));
                        }
                    }
                    for control in control_rx.try_iter() {
                        let outcome = measurement.apply(control);
                        let _ = tx.try_send(PipelineEvent::ControlDone { control, outcome });
                    }
                    let mut reported = false;
                    match measurement.step(|m| {
                        reported = true;
                        let _ = tx.try_send(PipelineEvent::Measured(m));
                    }) {
                        Ok(Step::Data) => {
                            failures = 0;
                            stalled = false;
                            if reported {
                                let _ = tx.try_send(PipelineEvent::Cycle(measurement.last_cycle()));
                            }
                        }
                        Ok(Step::Stalled(state)) => {
                            if !stalled {
                                stalled = true;
                                let _ = tx.try_send(PipelineEvent::Stalled(state));
                            }
                        }
                        Ok(Step::End) => {
                            let _ = tx.send(PipelineEvent::End);
                            break;
                        }
                        Err(e) => {
                            failures += 1;
                            if failures == 1 || failures % 50 == 0 {
                                let why = format!("{e}: {}", error_chain(&e));
                                tracing::warn!(error = %why, failures, "receiver failed");
                                let _ = tx.try_send(PipelineEvent::Failing(why));
                            }
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
            })?;
        Ok(ReceiverThread {
            events: rx,
            controls: control_tx,
            stop,
            thread: Some(thread),
        })
    }

    /// What the receiver reports.
    pub fn events(&self) -> &Receiver<PipelineEvent> {
        &self.events
    }

    /// Asks the receiver to apply `control`; its answer comes as
    /// [`PipelineEvent::ControlDone`]. False when 64 settings already wait.
    pub fn control(&self, control: Control) -> bool {
        self.controls.try_send(control).is_ok()
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

impl Drop for ReceiverThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
