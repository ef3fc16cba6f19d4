//! Pulse and burst measurement from the channel power of each FFT frame (about 1 ms).
//!
//! The [`Estimator`](crate::Estimator) hands the tracker the channel power of every frame of a
//! report interval, with the interval's noise floor, once the interval is complete (so the
//! frames are measured on the channel the interval's carrier search chose). The tracker keeps
//! its state across intervals, so a pulse may span any number of reports.
//!
//! # Method
//!
//! - A pulse **starts** on a frame whose channel power exceeds the noise by
//!   [`PulseConfig::trigger_snr_db`], provided the two frames before the one preceding it
//!   (which may hold the leading edge) averaged below the release threshold (so a steady
//!   carrier that flickers around the trigger does not make a train of pulses; one that does
//!   start one is mostly refused by [`PulseConfig::min_snr_db`]). It **ends** with the first of two consecutive frames whose excess falls
//!   below [`PulseConfig::release_snr_db`] (a single low frame, an AM trough, does not end it).
//! - Its **power** is the mean, noise subtracted, of its interior frames (all but the first and
//!   the last, which the edges cover only in part), or of its strongest frame when it has no
//!   interior frame.
//! - Its **start and end** are placed inside their edge frames: the fraction of the pulse
//!   power each edge frame (and the frame just outside it) holds is inverted through the Hann
//!   window's energy profile, so the edges are resolved to a fraction of a frame (noise makes
//!   that fraction uncertain: at 10 dB SNR the edges move by up to about half a frame).
//! - A pulse is **accepted** when it is at least [`PulseConfig::min_width`] wide, its power is
//!   at least [`PulseConfig::min_snr_db`] over the noise and [`PulseConfig::min_contrast_db`]
//!   over what the channel held just before it, and it is at most
//!   [`PulseConfig::max_width`] long (longer ones are steady carriers: not pulses). An accepted
//!   pulse at least [`PulseConfig::burst_min_width`] long is a **burst** (a 406 MHz beacon's
//!   440 or 520 ms transmission).
//!
//! Nothing here is smoothed: a report's pulse fields describe the pulses that ended in that
//! report, and the "last pulse" fields are explicitly held values with their age.

use std::time::Duration;

/// Thresholds of pulse measurement; fields document their defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PulseConfig {
    /// Excess of a frame's channel power over the noise (as an SNR) that starts a pulse;
    /// default 6 dB.
    pub trigger_snr_db: f32,
    /// Excess below which a frame ends a pulse; default 3 dB.
    pub release_snr_db: f32,
    /// Narrowest accepted pulse; default 2 ms.
    pub min_width: Duration,
    /// Weakest accepted pulse, as pulse power over the channel noise; default 6 dB.
    pub min_snr_db: f32,
    /// Least contrast of an accepted pulse: its power over the channel power (noise included)
    /// of the frames before it; default 5 dB. A steady carrier flickering around the trigger
    /// has almost none.
    pub min_contrast_db: f32,
    /// Widest accepted pulse: anything longer is a steady carrier, not a pulse; default 800 ms
    /// (a 406 MHz burst lasts at most 520 ms).
    pub max_width: Duration,
    /// Narrowest pulse that counts as a burst; default 200 ms.
    pub burst_min_width: Duration,
    /// How long after an accepted pulse ends the beacon still counts as detected; default 3 s
    /// (a VHF tag pulses about once a second, a 406 MHz beacon bursts every 50 s).
    pub detection_hold: Duration,
}

impl Default for PulseConfig {
    fn default() -> Self {
        PulseConfig {
            trigger_snr_db: 6.0,
            release_snr_db: 3.0,
            min_width: Duration::from_millis(2),
            min_snr_db: 6.0,
            min_contrast_db: 5.0,
            max_width: Duration::from_millis(800),
            burst_min_width: Duration::from_millis(200),
            detection_hold: Duration::from_secs(3),
        }
    }
}

/// The pulse fields of one [`Report`](crate::Report).
///
/// `count`, `power`, `width`, `start_ns`, `interval` and `burst` describe the pulses that
/// **ended** during the report (none: `count` 0 and the rest `None`/`false`); `last_power`
/// and `last_age` are the most recent pulse's, held in every report until the next one.
/// Powers are in the report's `units`, noise subtracted, never smoothed.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct PulseReport {
    /// Pulses (bursts included) that ended during the report.
    pub count: u32,
    /// Mean power of those pulses (linear mean), noise subtracted.
    pub power: Option<f32>,
    /// Width of the latest of those pulses.
    pub width: Option<Duration>,
    /// Start of the latest of those pulses, on the clock of [`Report::timestamp_ns`]
    /// (nanoseconds since the epoch of the block timestamps).
    ///
    /// [`Report::timestamp_ns`]: crate::Report::timestamp_ns
    pub start_ns: Option<u64>,
    /// Start-to-start time from the pulse before it to the latest of those pulses (a tag's
    /// period); `None` without an earlier pulse since the last reset.
    pub interval: Option<Duration>,
    /// Whether any of those pulses is a burst ([`PulseConfig::burst_min_width`] or longer).
    pub burst: bool,
    /// Power of the most recent pulse so far (this report's or an earlier one), held until
    /// the next pulse; `None` before the first.
    pub last_power: Option<f32>,
    /// Time from the end of that pulse to the end of this report.
    pub last_age: Option<Duration>,
}

/// One accepted pulse.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Pulse {
    /// Start, ns on the sample clock.
    pub(crate) start_ns: f64,
    /// End, ns on the sample clock.
    pub(crate) end_ns: f64,
    /// Linear power, noise subtracted (dBFS scale, no calibration).
    pub(crate) power: f64,
}

/// A pulse being followed.
#[derive(Debug, Clone, Copy)]
struct Open {
    /// Start of the first frame above the trigger, ns.
    first_start_ns: f64,
    /// Excess of the first frame above the trigger.
    first_excess: f64,
    /// Excess of the frame before it (the pulse may begin there).
    before_excess: f64,
    /// Sum and count of the excess of frames after the first.
    sum: f64,
    count: u32,
    /// Excess of the latest frame (the last interior candidate), and the strongest.
    last_excess: f64,
    max_excess: f64,
    /// Noise of the frame that opened it (for the SNR test).
    noise: f64,
    /// Mean excess of the frames before it (for the contrast test), linear.
    baseline: f64,
    /// The first frame below the release threshold, pending a second one: its excess and
    /// start.
    dip: Option<(f64, f64)>,
}

/// Follows pulses across frames and reports.
#[derive(Debug, Clone)]
pub(crate) struct PulseTracker {
    config: PulseConfig,
    trigger: f64,
    release: f64,
    /// Excess over noise, in units of the noise, of the last three frames (newest last).
    recent: [f64; 3],
    open: Option<Open>,
    last: Option<Pulse>,
}

/// Fraction of a periodic Hann window's energy (`w^2`) in `[0, t]` of the frame, `t` in
/// `[0, 1]`: `t - 2 sin(2 pi t) / (3 pi) + sin(4 pi t) / (12 pi)`.
fn hann_energy_before(t: f64) -> f64 {
    use std::f64::consts::PI;
    t - 2.0 * (2.0 * PI * t).sin() / (3.0 * PI) + (4.0 * PI * t).sin() / (12.0 * PI)
}

/// The `t` in `[0, 1]` with `hann_energy_before(t) = g` (bisection; `g` clamped to `[0, 1]`).
fn hann_energy_inverse(g: f64) -> f64 {
    let g = if g.is_nan() { 0.0 } else { g.clamp(0.0, 1.0) };
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..40 {
        let mid = 0.5 * (lo + hi);
        if hann_energy_before(mid) < g {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

fn ratio(db: f32) -> f64 {
    10f64.powf(f64::from(db) / 10.0)
}

impl PulseTracker {
    pub(crate) fn new(config: PulseConfig) -> Self {
        PulseTracker {
            config,
            trigger: ratio(config.trigger_snr_db),
            release: ratio(config.release_snr_db),
            recent: [0.0; 3],
            open: None,
            last: None,
        }
    }

    pub(crate) fn config(&self) -> &PulseConfig {
        &self.config
    }

    /// Forgets everything (after a retune or a gap).
    pub(crate) fn reset(&mut self) {
        self.recent = [0.0; 3];
        self.open = None;
        self.last = None;
    }

    /// The most recent accepted pulse.
    pub(crate) fn last(&self) -> Option<Pulse> {
        self.last
    }

    /// Feeds one frame: its channel power and the channel noise (linear, same scale), its start
    /// and its length in ns. Returns the pulse that ended with this frame, if accepted, and the
    /// previous accepted pulse's start (for the interval).
    pub(crate) fn frame(
        &mut self,
        power: f64,
        noise: f64,
        start_ns: f64,
        len_ns: f64,
    ) -> Option<(Pulse, Option<f64>)> {
        let noise = noise.max(1e-30);
        let excess = power - noise;
        let snr = excess / noise;
        let mut ended = None;
        match self.open.as_mut() {
            None => {
                // The frame just before may hold the pulse's leading edge: quiet is judged on
                // the two before it, which must average below the release threshold (noise
                // alone exceeds it in about one frame pair in 10^4: 1 ms frames of a 10 kHz
                // channel hold few independent values, so single noise frames reach 3 times
                // the noise now and then).
                let quiet = (self.recent[0] + self.recent[1]) / 2.0 < self.release;
                if snr >= self.trigger && quiet {
                    self.open = Some(Open {
                        first_start_ns: start_ns,
                        first_excess: excess,
                        before_excess: self.recent[2] * noise,
                        sum: 0.0,
                        count: 0,
                        last_excess: excess,
                        max_excess: excess,
                        noise,
                        baseline: (self.recent[0] + self.recent[1]).max(0.0) / 2.0 * noise,
                        dip: None,
                    });
                }
            }
            Some(open) => {
                if snr >= self.release {
                    if let Some((dip_excess, _)) = open.dip.take() {
                        // A one-frame dip (an AM trough): part of the pulse after all.
                        open.sum += dip_excess;
                        open.count += 1;
                    }
                    open.sum += excess;
                    open.count += 1;
                    open.last_excess = excess;
                    open.max_excess = open.max_excess.max(excess);
                    let length = start_ns + len_ns - open.first_start_ns;
                    if length > self.config.max_width.as_nanos() as f64 {
                        // A steady carrier: stop following it (it never becomes a pulse).
                        self.open = None;
                        self.recent = [snr; 3];
                        return None;
                    }
                } else if let Some((dip_excess, dip_start)) = open.dip {
                    // Two frames below: the pulse ended in or just before the first of them.
                    let open = *open;
                    self.open = None;
                    ended = self.close(&open, dip_excess, dip_start, len_ns);
                } else {
                    open.dip = Some((excess, start_ns));
                }
            }
        }
        self.recent = [self.recent[1], self.recent[2], snr];
        let previous = self.last.map(|p| p.start_ns);
        let pulse = ended?;
        self.last = Some(pulse);
        Some((pulse, previous))
    }

    /// Closes `open` on the frame starting at `after_start_ns` whose excess is `after_excess`.
    fn close(
        &self,
        open: &Open,
        after_excess: f64,
        after_start_ns: f64,
        len_ns: f64,
    ) -> Option<Pulse> {
        // Frames above the release threshold: the first, then `count` more; the last of those
        // is an edge too, so interior frames are the `count - 1` in between.
        let power = if open.count >= 2 {
            (open.sum - open.last_excess) / f64::from(open.count - 1)
        } else {
            open.max_excess
        };
        if power <= 0.0 {
            return None;
        }
        let share = |e: f64| (e / power).clamp(0.0, 1.0);
        // Start: the part of the first frame the pulse misses, minus the part of the frame
        // before it the pulse covers (one of the two is about 0).
        let start_ns = open.first_start_ns
            + hann_energy_inverse(1.0 - share(open.first_excess)) * len_ns
            - (1.0 - hann_energy_inverse(1.0 - share(open.before_excess))) * len_ns;
        // End: the part of the last frame above the release threshold the pulse covers, plus
        // the part of the closing frame it covers.
        let (last_excess, last_start) = if open.count == 0 {
            (open.first_excess, open.first_start_ns)
        } else {
            (open.last_excess, after_start_ns - len_ns)
        };
        let end_ns = last_start
            + hann_energy_inverse(share(last_excess)) * len_ns
            + hann_energy_inverse(share(after_excess)) * len_ns;
        let width = (end_ns - start_ns).max(0.0);
        let snr_ok = power >= ratio(self.config.min_snr_db) * open.noise
            && power >= ratio(self.config.min_contrast_db) * (open.noise + open.baseline);
        let width_ok = width >= self.config.min_width.as_nanos() as f64
            && width <= self.config.max_width.as_nanos() as f64;
        (snr_ok && width_ok).then_some(Pulse {
            start_ns,
            end_ns,
            power,
        })
    }

    /// Whether a pulse that ended at `end_ns` is a burst.
    pub(crate) fn is_burst(&self, pulse: &Pulse) -> bool {
        pulse.end_ns - pulse.start_ns >= self.config.burst_min_width.as_nanos() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hann_energy_profile_is_a_monotonic_cdf() {
        assert!(hann_energy_before(0.0).abs() < 1e-12);
        assert!((hann_energy_before(1.0) - 1.0).abs() < 1e-12);
        assert!((hann_energy_before(0.5) - 0.5).abs() < 1e-12);
        let mut prev = 0.0;
        for i in 1..=100 {
            let t = f64::from(i) / 100.0;
            let g = hann_energy_before(t);
            assert!(g >= prev);
            prev = g;
            assert!((hann_energy_before(hann_energy_inverse(g)) - g).abs() < 1e-9);
            if (5..=95).contains(&i) {
                assert!((hann_energy_inverse(g) - t).abs() < 1e-6, "{t}");
            }
        }
    }

    /// Frames of 1 ms with a pulse of `power` (noise 1) from `start` to `end` ms, each frame's
    /// power its Hann-weighted share of the pulse plus the noise.
    fn run(power: f64, start: f64, end: f64, frames: usize) -> Vec<Pulse> {
        let mut t = PulseTracker::new(PulseConfig::default());
        let mut out = Vec::new();
        for f in 0..frames {
            let (a, b) = (f as f64, f as f64 + 1.0);
            let lo = start.clamp(a, b) - a;
            let hi = end.clamp(a, b) - a;
            let share = hann_energy_before(hi) - hann_energy_before(lo);
            if let Some((p, _)) = t.frame(1.0 + power * share, 1.0, a * 1e6, 1e6) {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn noiseless_pulse_edges_are_found_inside_frames() {
        for (start, end) in [
            (10.3, 30.7),
            (10.0, 25.0),
            (5.95, 21.2),
            (40.5, 40.5 + 520.0),
        ] {
            let pulses = run(10.0, start, end, 700);
            assert_eq!(pulses.len(), 1, "{start}..{end}");
            let p = pulses[0];
            assert!((p.start_ns / 1e6 - start).abs() < 0.05, "start {p:?}");
            assert!((p.end_ns / 1e6 - end).abs() < 0.05, "end {p:?}");
            assert!((p.power - 10.0).abs() < 1e-6);
        }
    }

    #[test]
    fn short_weak_and_endless_pulses_are_refused() {
        // 1 ms: too narrow.
        assert!(run(10.0, 10.2, 11.2, 50).is_empty());
        // 5 dB over the noise: below the 6 dB trigger.
        assert!(run(3.2, 10.0, 30.0, 50).is_empty());
        // 4 s long: a steady carrier.
        assert!(run(10.0, 10.0, 4010.0, 4100).is_empty());
    }
}
