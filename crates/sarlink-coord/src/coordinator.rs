//! The sans-IO coordinator: inputs in, decisions out, time passed in.

use std::time::Duration;

use sarlink_pool::RingBuffer;
use sarlink_schema::{RssiRecord, SourceId};

use crate::authority::{
    CommandOp, FrequencyRequest, FrequencyResolution, Refusal, SafetyState, resolve_frequency,
};
use crate::decision::{Decision, Reason};
use crate::link::{LinkHealth, LinkThresholds, LinkVerdict};
use crate::score::{ScoreConfig, ScoreKey};
use crate::source::SourceReading;

/// Tuning of a [`Coordinator`]. Start from [`Config::default`] and change fields.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// A source whose newest record is older than this is not eligible. Default 500 ms.
    pub freshness: Duration,
    /// Lead (in score dB) a challenger needs over the current source. Default 3 dB.
    pub margin_db: f32,
    /// Minimum time the current source is held before a score-driven switch. Default 1 s.
    pub dwell: Duration,
    /// A link must stay usable this long before fallback ends. Default 5 s.
    pub hold_down: Duration,
    /// When a link counts as degraded past its threshold.
    pub link: LinkThresholds,
    /// Parameters of the score.
    pub score: ScoreConfig,
    /// Decisions kept in the history ring. Default 256 (25.6 s at 10 Hz).
    pub history_capacity: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            freshness: Duration::from_millis(500),
            margin_db: 3.0,
            dwell: Duration::from_secs(1),
            hold_down: Duration::from_secs(5),
            link: LinkThresholds::default(),
            score: ScoreConfig::default(),
            history_capacity: 256,
        }
    }
}

impl Config {
    /// Largest accepted [`Config::history_capacity`].
    pub const MAX_HISTORY: usize = 1 << 16;

    /// Checks every field.
    ///
    /// # Errors
    /// The first invalid field, see [`ConfigError`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.margin_db.is_finite() && self.margin_db >= 0.0) {
            return Err(ConfigError::InvalidMargin {
                margin_db: self.margin_db,
            });
        }
        if !(1..=Self::MAX_HISTORY).contains(&self.history_capacity) {
            return Err(ConfigError::InvalidHistoryCapacity {
                capacity: self.history_capacity,
                max: Self::MAX_HISTORY,
            });
        }
        if let Some((name, value)) = self.score.invalid_parameter() {
            return Err(ConfigError::InvalidScoreParameter { name, value });
        }
        Ok(())
    }
}

/// Why a [`Config`] was rejected.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The margin was negative, NaN or infinite.
    #[error("margin {margin_db} dB is not a finite non-negative number")]
    InvalidMargin {
        /// The rejected margin.
        margin_db: f32,
    },
    /// The history capacity was 0 or too large.
    #[error("history capacity {capacity} is outside 1..={max}")]
    InvalidHistoryCapacity {
        /// The rejected capacity.
        capacity: usize,
        /// The largest accepted capacity.
        max: usize,
    },
    /// A score parameter was not finite, or the SNR floor was above the cap.
    #[error("score parameter {name} = {value} is invalid")]
    InvalidScoreParameter {
        /// Field name in [`ScoreConfig`].
        name: &'static str,
        /// The rejected value.
        value: f32,
    },
}

/// Counters of a [`Coordinator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CoordStats {
    /// Decisions taken.
    pub decisions: u64,
    /// Decisions that changed the selected source (not counting the initial selection).
    pub switches: u64,
    /// Decisions with `fallback` set.
    pub fallback_decisions: u64,
    /// Readings ignored because a newer one was already held.
    pub out_of_order_readings: u64,
}

/// Link tracking state of one source.
#[derive(Debug, Clone, Copy, PartialEq)]
struct LinkTrack {
    verdict: LinkVerdict,
    /// When the link last became usable after being lost or degraded, while its hold-down
    /// has not yet been seen to end; `None` otherwise.
    recovered_at: Option<Duration>,
}

#[derive(Debug, Clone)]
struct SourceTrack {
    id: SourceId,
    newest: Option<SourceReading>,
    link: Option<LinkTrack>,
}

/// Decides, continuously and explainably, which source to trust.
///
/// Sans-IO: it owns no clock and no socket; every input carries `now`, a [`Duration`]
/// since an epoch the caller picks (use the Unix epoch when converting to wire messages),
/// and the same clock must stamp [`SourceReading::timestamp`].
///
/// # Call order
/// 1. Feed inputs as they arrive, in any order and as often as they come:
///    [`update_reading`](Self::update_reading) per RSSI record,
///    [`update_link`](Self::update_link) per link-health report (on change or
///    periodically; the last report stays in force), [`set_safety`](Self::set_safety)
///    whenever the drone's safety state changes.
/// 2. Call [`decide`](Self::decide) at the decision rate (e.g. after each batch of
///    records, or 10 Hz). Each call judges the inputs held at `now`, appends the decision to
///    the history ring and returns it; a fallback trigger fed before a `decide` takes effect
///    in that very `decide`. `now` should not go backwards; if it does, durations saturate
///    at zero (a dwell or hold-down never ends early).
/// 3. [`authorize`](Self::authorize) / [`resolve_frequency`](Self::resolve_frequency)
///    when a ground command arrives.
///
/// # Examples
/// See the crate documentation.
#[derive(Debug, Clone)]
pub struct Coordinator {
    config: Config,
    /// Sorted by id; at most 256 entries.
    sources: Vec<SourceTrack>,
    safety: SafetyState,
    safety_since: Duration,
    current: Option<SourceId>,
    held_since: Duration,
    history: RingBuffer<Decision>,
    stats: CoordStats,
}

impl Coordinator {
    /// A coordinator with no inputs yet.
    ///
    /// # Errors
    /// [`ConfigError`] when `config` is invalid (see [`Config::validate`]).
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Coordinator {
            // `validate` guarantees capacity >= 1, so `RingBuffer::new` does not panic.
            history: RingBuffer::new(config.history_capacity),
            config,
            sources: Vec::new(),
            safety: SafetyState::NOMINAL,
            safety_since: Duration::ZERO,
            current: None,
            held_since: Duration::ZERO,
            stats: CoordStats::default(),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Replaces the configuration; keeps the newest decisions that fit the new history
    /// capacity.
    ///
    /// # Errors
    /// [`ConfigError`] when `config` is invalid; the old configuration then stays.
    pub fn set_config(&mut self, config: Config) -> Result<(), ConfigError> {
        config.validate()?;
        if config.history_capacity != self.history.capacity() {
            let mut history = RingBuffer::new(config.history_capacity);
            for d in self.history.iter() {
                history.force_push(*d);
            }
            self.history = history;
        }
        self.config = config;
        Ok(())
    }

    fn track_mut(&mut self, id: SourceId) -> &mut SourceTrack {
        let i = match self.sources.binary_search_by_key(&id, |t| t.id) {
            Ok(i) => i,
            Err(i) => {
                self.sources.insert(
                    i,
                    SourceTrack {
                        id,
                        newest: None,
                        link: None,
                    },
                );
                i
            }
        };
        &mut self.sources[i]
    }

    /// Records a source's measurement received at `now`.
    ///
    /// A reading stamped after `now` is treated as taken at `now` (a remote clock running
    /// ahead cannot keep a source fresh). Returns `false`, and ignores the reading, when a
    /// newer one from the same source is already held.
    pub fn update_reading(
        &mut self,
        source: SourceId,
        reading: SourceReading,
        now: Duration,
    ) -> bool {
        let reading = reading.with_timestamp(reading.timestamp().min(now));
        let track = self.track_mut(source);
        if track
            .newest
            .is_some_and(|old| old.timestamp() > reading.timestamp())
        {
            self.stats.out_of_order_readings += 1;
            return false;
        }
        track.newest = Some(reading);
        true
    }

    /// [`update_reading`](Self::update_reading) for a wire record (its `source_id`, and
    /// its timestamp as time since the Unix epoch, which must then be the caller's epoch).
    pub fn update_record(&mut self, record: &RssiRecord, now: Duration) -> bool {
        self.update_reading(record.source_id, SourceReading::from(record), now)
    }

    /// Records the health of the link that carries `source`'s records, measured at `now`.
    ///
    /// Any source other than [`SourceId::DRONE`] whose link is judged lost or degraded
    /// (see [`LinkThresholds`]) forces fallback to the drone's source; fallback ends once
    /// the link has been usable for [`Config::hold_down`]. A link that was never judged
    /// bad is trusted from its first report, and the last report stays in force until the
    /// next one. A link report for the drone's own source is recorded but never triggers
    /// fallback (it is the fallback).
    pub fn update_link(&mut self, source: SourceId, health: LinkHealth, now: Duration) {
        let verdict = self.config.link.judge(&health);
        let track = self.track_mut(source);
        let recovered_at = match (track.link, verdict) {
            (_, LinkVerdict::Lost | LinkVerdict::Degraded) => None,
            (Some(prev), LinkVerdict::Usable) if prev.verdict != LinkVerdict::Usable => Some(now),
            (Some(prev), LinkVerdict::Usable) => prev.recovered_at,
            (None, LinkVerdict::Usable) => None,
        };
        track.link = Some(LinkTrack {
            verdict,
            recovered_at,
        });
    }

    /// Sets the drone's safety state as of `now`; any active level forces fallback from
    /// the next [`decide`](Self::decide) until the state is nominal again (no hold-down:
    /// the drone's safety logic has its own hysteresis).
    pub fn set_safety(&mut self, state: SafetyState, now: Duration) {
        if state != self.safety {
            self.safety_since = now;
        }
        self.safety = state;
    }

    /// The drone's safety state.
    pub fn safety(&self) -> SafetyState {
        self.safety
    }

    /// When the safety state last changed.
    pub fn safety_since(&self) -> Duration {
        self.safety_since
    }

    /// Decides which source to trust at `now`; see the crate documentation for the
    /// rules. The decision is also appended to the history ring.
    pub fn decide(&mut self, now: Duration) -> &Decision {
        let freshness = self.config.freshness;
        let score_cfg = self.config.score;
        let current = self.current;
        let mut best: Option<(SourceId, f32)> = None;
        let mut current_score = None;
        let mut score_drone_db = None;
        let mut score_ground_db = None;
        let mut link_cause: Option<Reason> = None;
        for track in &mut self.sources {
            if let Some(link) = &mut track.link {
                if let Some(t) = link.recovered_at {
                    if now.saturating_sub(t) >= self.config.hold_down {
                        link.recovered_at = None;
                    }
                }
                if track.id != SourceId::DRONE {
                    let cause = match (link.verdict, link.recovered_at) {
                        (LinkVerdict::Lost, _) => Some(Reason::LinkLost),
                        (LinkVerdict::Degraded, _) => Some(Reason::LinkDegraded),
                        (LinkVerdict::Usable, Some(_)) => Some(Reason::Recovering),
                        (LinkVerdict::Usable, None) => None,
                    };
                    link_cause = worse_link_cause(link_cause, cause);
                }
            }
            let Some(reading) = track.newest else {
                continue;
            };
            if now.saturating_sub(reading.timestamp()) > freshness {
                continue;
            }
            let score = ScoreKey::new(&reading).score_db(&score_cfg);
            if track.id == SourceId::DRONE {
                score_drone_db = Some(score);
            } else if track.id == SourceId::GROUND {
                score_ground_db = Some(score);
            }
            if Some(track.id) == current {
                current_score = Some(score);
            }
            let better = match best {
                None => true,
                Some((_, best_score)) => {
                    score > best_score || (score == best_score && Some(track.id) == current)
                }
            };
            if better {
                best = Some((track.id, score));
            }
        }

        let fallback_cause = self.safety.highest().map(Reason::Safety).or(link_cause);
        let (source, reason) = match (fallback_cause, current, best) {
            (Some(cause), _, _) => (SourceId::DRONE, cause),
            (None, None, None) => (SourceId::DRONE, Reason::NoData),
            (None, None, Some((b, _))) => (b, Reason::Initial),
            (None, Some(c), None) => (c, Reason::NoData),
            (None, Some(c), Some((b, best_score))) => match current_score {
                None => (b, Reason::Stale),
                Some(cs) if b != c && best_score - cs >= self.config.margin_db => {
                    if now.saturating_sub(self.held_since) >= self.config.dwell {
                        (b, Reason::BetterScore)
                    } else {
                        (c, Reason::Dwell)
                    }
                }
                Some(_) => (c, Reason::Hold),
            },
        };
        // NoData before any selection reports the drone without selecting it.
        let switched_from = if reason == Reason::NoData && current.is_none() {
            None
        } else {
            self.select(source, now)
        };
        let fallback = reason.is_fallback();
        self.stats.decisions += 1;
        self.stats.fallback_decisions += u64::from(fallback);
        let decision = Decision {
            at: now,
            source,
            fallback,
            reason,
            score_drone_db,
            score_ground_db,
            switched_from,
        };
        self.history.force_push(decision);
        self.history
            .back()
            .unwrap_or_else(|| unreachable!("just pushed"))
    }

    /// Makes `id` the current source; returns the previous one if this is a switch.
    fn select(&mut self, id: SourceId, now: Duration) -> Option<SourceId> {
        if self.current == Some(id) {
            return None;
        }
        let previous = self.current.replace(id);
        self.held_since = now;
        if previous.is_some() {
            self.stats.switches += 1;
        }
        previous
    }

    /// The selected source, `None` before the first selection.
    pub fn current(&self) -> Option<SourceId> {
        self.current
    }

    /// When the current source was selected.
    pub fn held_since(&self) -> Duration {
        self.held_since
    }

    /// The newest decision.
    pub fn last_decision(&self) -> Option<&Decision> {
        self.history.back()
    }

    /// The decision history, oldest first (at most [`Config::history_capacity`]).
    pub fn history(&self) -> impl ExactSizeIterator<Item = &Decision> + DoubleEndedIterator {
        self.history.iter()
    }

    /// The newest reading held for `source`.
    pub fn reading(&self, source: SourceId) -> Option<&SourceReading> {
        self.track(source).and_then(|t| t.newest.as_ref())
    }

    /// The latest link verdict for `source`, `None` if its link was never reported.
    pub fn link_verdict(&self, source: SourceId) -> Option<LinkVerdict> {
        self.track(source).and_then(|t| t.link).map(|l| l.verdict)
    }

    fn track(&self, id: SourceId) -> Option<&SourceTrack> {
        self.sources
            .binary_search_by_key(&id, |t| t.id)
            .ok()
            .map(|i| &self.sources[i])
    }

    /// The counters.
    pub fn stats(&self) -> CoordStats {
        self.stats
    }

    /// Whether a ground command may run under the current safety state.
    ///
    /// # Errors
    /// [`Refusal::Safety`] when an active safety level conflicts with `op`; the drone
    /// answers `ack ok:false code:"safety"`.
    pub fn authorize(&self, op: CommandOp) -> Result<(), Refusal> {
        self.safety.authorize(op)
    }

    /// Arbitrates concurrent frequency requests under the current safety state; see
    /// [`resolve_frequency`](crate::resolve_frequency).
    pub fn resolve_frequency(
        &self,
        drone: FrequencyRequest,
        ground: FrequencyRequest,
    ) -> FrequencyResolution {
        resolve_frequency(self.safety, drone, ground)
    }
}

/// Lost outranks degraded, which outranks recovering.
fn worse_link_cause(a: Option<Reason>, b: Option<Reason>) -> Option<Reason> {
    let rank = |r: Option<Reason>| match r {
        Some(Reason::LinkLost) => 3,
        Some(Reason::LinkDegraded) => 2,
        Some(Reason::Recovering) => 1,
        _ => 0,
    };
    if rank(b) > rank(a) { b } else { a }
}
