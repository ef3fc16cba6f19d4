//! What the coordinator decided, and why.

use std::fmt;
use std::time::Duration;

use sarlink_schema::SourceId;

use crate::authority::SafetyLevel;

/// Why a decision selected its source. [`Reason::as_str`] is the `reason` of the wire
/// `decision` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// `"initial"`: the first selection, the best fresh source.
    Initial,
    /// `"hold"`: no challenger leads the current source by the margin.
    Hold,
    /// `"dwell"`: a challenger leads by the margin, but the current source has not been
    /// held for the minimum dwell yet.
    Dwell,
    /// `"better_score"`: switched to a challenger that led by the margin after the dwell.
    BetterScore,
    /// `"stale"`: the current source has no fresh record; switched to the best fresh source
    /// without waiting for the dwell.
    Stale,
    /// `"no_data"`: no source has a fresh record; the current source (or the drone's, if
    /// none was selected yet) is kept.
    NoData,
    /// `"safety_<level>"` (e.g. `"safety_battery"`): fallback to the drone's source
    /// because the drone is in a safety state; carries the highest active level.
    Safety(SafetyLevel),
    /// `"link_lost"`: fallback because a ground link is lost.
    LinkLost,
    /// `"link_degraded"`: fallback because a ground link is degraded past its thresholds.
    LinkDegraded,
    /// `"recovering"`: fallback continues while a recovered link serves its hold-down.
    Recovering,
}

impl Reason {
    /// The wire string for the `decision` message's `reason`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Reason::Initial => "initial",
            Reason::Hold => "hold",
            Reason::Dwell => "dwell",
            Reason::BetterScore => "better_score",
            Reason::Stale => "stale",
            Reason::NoData => "no_data",
            Reason::Safety(SafetyLevel::EmergencyStop) => "safety_emergency_stop",
            Reason::Safety(SafetyLevel::FlightMode) => "safety_flight_mode",
            Reason::Safety(SafetyLevel::Geofence) => "safety_geofence",
            Reason::Safety(SafetyLevel::Battery) => "safety_battery",
            Reason::Safety(SafetyLevel::Communication) => "safety_communication",
            Reason::Safety(SafetyLevel::Signal) => "safety_signal",
            Reason::Safety(SafetyLevel::Resources) => "safety_resources",
            Reason::LinkLost => "link_lost",
            Reason::LinkDegraded => "link_degraded",
            Reason::Recovering => "recovering",
        }
    }

    /// Whether this reason forces the drone's own source (the `fallback` flag).
    pub const fn is_fallback(&self) -> bool {
        matches!(
            self,
            Reason::Safety(_) | Reason::LinkLost | Reason::LinkDegraded | Reason::Recovering
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decision: which source to trust at `at`, and why.
///
/// Maps one to one onto the wire `decision` message (`t_ns`, `source_id`, `fallback`,
/// `reason`, `score_drone`, `score_ground`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// When the decision was taken, on the coordinator's clock.
    pub at: Duration,
    /// The selected source.
    pub source: SourceId,
    /// Whether a fallback trigger forced the drone's source (`reason.is_fallback()`).
    pub fallback: bool,
    /// Why.
    pub reason: Reason,
    /// Score of the drone's source, when it had a fresh record.
    pub score_drone_db: Option<f32>,
    /// Score of the ground's source, when it had a fresh record.
    pub score_ground_db: Option<f32>,
    /// The previously selected source when this decision switched; the switch event.
    pub switched_from: Option<SourceId>,
}

impl Decision {
    /// Whether this decision changed the selected source.
    pub fn is_switch(&self) -> bool {
        self.switched_from.is_some()
    }
}

/// The wire `decision` message; the coordinator's epoch is taken to be the Unix epoch
/// (times beyond `i64::MAX` ns saturate).
impl From<&Decision> for sarlink_schema::Decision {
    fn from(d: &Decision) -> Self {
        sarlink_schema::Decision {
            t_ns: i64::try_from(d.at.as_nanos()).unwrap_or(i64::MAX),
            source_id: d.source,
            fallback: d.fallback,
            reason: d.reason.as_str().to_owned(),
            score_drone: d.score_drone_db,
            score_ground: d.score_ground_db,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_strings_are_unique() {
        let mut all = vec![
            Reason::Initial,
            Reason::Hold,
            Reason::Dwell,
            Reason::BetterScore,
            Reason::Stale,
            Reason::NoData,
            Reason::LinkLost,
            Reason::LinkDegraded,
            Reason::Recovering,
        ];
        all.extend(SafetyLevel::ALL.map(Reason::Safety));
        let mut names = std::collections::HashSet::new();
        for r in all {
            assert!(names.insert(r.as_str()), "duplicate {}", r.as_str());
        }
    }

    #[test]
    fn converts_to_the_wire_message() {
        let d = Decision {
            at: Duration::from_nanos(1_764_000_000_123_456_789),
            source: SourceId::DRONE,
            fallback: true,
            reason: Reason::Safety(SafetyLevel::Battery),
            score_drone_db: Some(12.5),
            score_ground_db: None,
            switched_from: Some(SourceId::GROUND),
        };
        let m = sarlink_schema::Decision::from(&d);
        assert_eq!(m.t_ns, 1_764_000_000_123_456_789);
        assert_eq!(
            (m.source_id, m.fallback, m.reason.as_str()),
            (SourceId::DRONE, true, "safety_battery")
        );
        assert_eq!((m.score_drone, m.score_ground), (Some(12.5), None));
    }
}
