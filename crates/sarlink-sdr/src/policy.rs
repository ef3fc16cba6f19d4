//! What the drone may do about what the estimator measures: a pure decision, no I/O.

use crate::block::Gain;
use crate::estimator::Report;

/// "Lower the gain when clipping": a policy the drone core may consult after each report.
/// Off by default; a pure function of the report and the current gain, so the caller owns the
/// receiver, the timing and any rate limit.
///
/// # Examples
///
/// ```
/// use sarlink_sdr::{ClipGainPolicy, Gain};
///
/// let policy = ClipGainPolicy { enabled: true, ..ClipGainPolicy::default() };
/// assert_eq!(policy.gain_for(0.02, Gain::Db(40.0)), Some(Gain::Db(34.0)));
/// assert_eq!(policy.gain_for(0.0, Gain::Db(40.0)), None);
/// assert_eq!(ClipGainPolicy::default().gain_for(0.02, Gain::Db(40.0)), None); // off
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipGainPolicy {
    /// Whether the policy acts at all; default `false`.
    pub enabled: bool,
    /// Clipped fraction of samples ([`Report::clip_fraction`]) above which the gain is
    /// lowered; default 0 (any value at a rail).
    pub max_clip_fraction: f32,
    /// How far to lower a fixed gain per clipping report, dB; default 6.
    pub step_db: f32,
    /// Lowest gain the policy asks for, dB; default 0.
    pub min_gain_db: f32,
    /// The fixed gain to ask for when the current gain is automatic, dB (the tuner's AGC
    /// setting is unknown); default 20.
    pub from_auto_db: f32,
}

impl Default for ClipGainPolicy {
    fn default() -> Self {
        ClipGainPolicy {
            enabled: false,
            max_clip_fraction: 0.0,
            step_db: 6.0,
            min_gain_db: 0.0,
            from_auto_db: 20.0,
        }
    }
}

impl ClipGainPolicy {
    /// The gain to set after a report with `clip_fraction` clipped samples at gain `current`,
    /// or `None` to leave it (policy off, no clipping, or already at the floor).
    #[must_use]
    pub fn gain_for(&self, clip_fraction: f32, current: Gain) -> Option<Gain> {
        // A NaN fraction is not greater: no change.
        let clipping =
            clip_fraction.partial_cmp(&self.max_clip_fraction) == Some(std::cmp::Ordering::Greater);
        if !self.enabled || !clipping {
            return None;
        }
        let next = match current {
            Gain::Auto => self.from_auto_db,
            Gain::Db(db) => db - self.step_db,
        }
        .max(self.min_gain_db);
        match current {
            Gain::Db(db) if next >= db => None,
            _ => Some(Gain::Db(next)),
        }
    }

    /// [`Self::gain_for`] with the fraction of `report`.
    #[must_use]
    pub fn gain_after(&self, report: &Report, current: Gain) -> Option<Gain> {
        self.gain_for(report.clip_fraction, current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowers_in_steps_down_to_the_floor_only_when_on_and_clipping() {
        let p = ClipGainPolicy {
            enabled: true,
            max_clip_fraction: 0.001,
            ..ClipGainPolicy::default()
        };
        assert_eq!(p.gain_for(0.0005, Gain::Db(40.0)), None);
        assert_eq!(p.gain_for(0.01, Gain::Db(40.0)), Some(Gain::Db(34.0)));
        assert_eq!(p.gain_for(0.01, Gain::Db(4.0)), Some(Gain::Db(0.0)));
        assert_eq!(p.gain_for(0.01, Gain::Db(0.0)), None);
        assert_eq!(p.gain_for(0.01, Gain::Auto), Some(Gain::Db(20.0)));
        assert_eq!(p.gain_for(f32::NAN, Gain::Db(40.0)), None);
        let off = ClipGainPolicy::default();
        assert_eq!(off.gain_for(1.0, Gain::Db(40.0)), None);
    }
}
