//! The graceful-degradation controller: sheds optional features in a fixed priority order
//! under CPU, memory and thermal pressure, and restores them one class at a time.
//!
//! Sans-IO: the owner passes in the time and the readings, and applies the returned
//! [`Action`]s (the controller never calls into features itself).
//!
//! # Rules (defaults from [`ControllerConfig`])
//!
//! Features are registered with a [`Priority`] class 1-6 and a `critical` flag. Classes 1
//! and 2 and critical features are **never** disabled. Shedding is expressed as "every
//! non-critical feature of class `>= c` is disabled".
//!
//! - **High pressure**: CPU `>=` 85 % or memory `>=` 85 % for 5 consecutive samples disables
//!   classes `>=` 4.
//! - **Extreme pressure**: CPU `>=` 90 % and memory `>=` 88 % and temperature `>=` 85 C, in a
//!   single sample (it is an emergency), disables classes `>=` 3.
//! - **Thermal steps**: the thermal level rises at once when the temperature reaches
//!   70 / 80 / 85 C; each level sets the RSSI report rate (10 Hz normal, then 5 / 2 / 1 Hz)
//!   and at 80 C classes `>=` 5, at 85 C classes `>=` 4 are disabled. The level falls one step
//!   after the temperature stays below the step's threshold minus 3 C for 10 consecutive
//!   samples.
//! - **Recovery**: after CPU `<` 70 % and memory `<` 75 % for 10 consecutive samples, the
//!   most important disabled class is re-enabled, provided the current thermal level does
//!   not still demand it off. Each next class follows after 3 more calm samples
//!   (`recovery_step_samples`), so three shed classes are all back 16 samples after the
//!   pressure ends, one class at a time. A sample that is not calm breaks the run: the next
//!   class again needs 10. At most one class is re-enabled per step, and never in a step
//!   that disabled something.
//! - An unknown reading (`None`) is neither high nor calm: it breaks both runs. Unknown
//!   temperature never triggers extreme pressure or a thermal change.
//!
//! # Call order
//!
//! [`DegradationController::new`], [`register`](DegradationController::register) every
//! feature, then call [`step`](DegradationController::step) once per resource sample
//! (e.g. 1 Hz) and apply each returned [`Event`]'s [`Action`] in order.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use sarlink_monitor::{Percent, degradation::*};
//!
//! let mut c = DegradationController::new(ControllerConfig::default());
//! let gps = c.register("gps", Priority::CriticalSafety, true)?;
//! let video = c.register("video preview", Priority::Convenience, false)?;
//! let busy = Readings { cpu: Some(Percent::new(95.0)?), memory: Some(Percent::new(40.0)?), temperature: None };
//! let mut disabled = None;
//! for s in 0..5 {
//!     for event in c.step(Duration::from_secs(s), busy) {
//!         if let Action::Disable(set) = event.action {
//!             disabled = Some(set);
//!         }
//!     }
//! }
//! assert!(disabled.unwrap().contains(video));
//! assert!(c.is_enabled(gps) && !c.is_enabled(video));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::time::Duration;

use crate::{Celsius, Percent};

/// Most features one controller manages (a [`FeatureSet`] is a 64-bit mask).
pub const MAX_FEATURES: usize = 64;

/// A feature's priority class: 1 is the most important.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// 1: critical safety (never disabled).
    CriticalSafety = 1,
    /// 2: essential operation (never disabled).
    EssentialOperation = 2,
    /// 3: primary function (disabled only under extreme pressure).
    PrimaryFunction = 3,
    /// 4: enhanced.
    Enhanced = 4,
    /// 5: optimisation.
    Optimisation = 5,
    /// 6: convenience.
    Convenience = 6,
}

impl Priority {
    /// All classes, most important first.
    pub const ALL: [Self; 6] = [
        Self::CriticalSafety,
        Self::EssentialOperation,
        Self::PrimaryFunction,
        Self::Enhanced,
        Self::Optimisation,
        Self::Convenience,
    ];

    /// The class number, 1-6.
    pub fn class(self) -> u8 {
        self as u8
    }

    /// The priority of class number `class`, if it is 1-6.
    pub fn from_class(class: u8) -> Option<Self> {
        Self::ALL.get(usize::from(class).checked_sub(1)?).copied()
    }
}

/// Identifies a registered feature; only meaningful for the controller that issued it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FeatureId(u8);

impl FeatureId {
    /// Registration order, from 0.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// A set of features (a bit mask over [`FeatureId`]s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FeatureSet(u64);

impl FeatureSet {
    /// The empty set.
    pub const EMPTY: Self = Self(0);

    /// Whether `id` is in the set.
    pub fn contains(self, id: FeatureId) -> bool {
        self.0 & (1 << id.0) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Number of features in the set.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The features, in registration order.
    pub fn iter(self) -> impl Iterator<Item = FeatureId> {
        // `i < 64` so it fits in u8.
        (0..64u8)
            .filter(move |&i| self.0 & (1 << i) != 0)
            .map(FeatureId)
    }

    /// Features in either set.
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Features in `self` but not in `other`.
    pub fn difference(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// The set with `id` added.
    pub fn with(self, id: FeatureId) -> Self {
        Self(self.0 | (1 << id.0))
    }
}

/// A registered feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feature {
    /// Its name, unique within the controller.
    pub name: String,
    /// Its class.
    pub priority: Priority,
    /// Critical features are never disabled, whatever their class.
    pub critical: bool,
}

/// Why [`DegradationController::register`] refused a feature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// A feature with this name exists.
    #[error("feature {name:?} is already registered")]
    Duplicate {
        /// The name.
        name: String,
    },
    /// [`MAX_FEATURES`] are already registered.
    #[error("too many features (max {max})")]
    TooMany {
        /// The limit.
        max: usize,
    },
}

/// One sample of the inputs; `None` is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Readings {
    /// CPU load (whole machine, e.g. [`ResourceReadings::system_cpu`](crate::resources::ResourceReadings)).
    pub cpu: Option<Percent>,
    /// Memory use (whole machine).
    pub memory: Option<Percent>,
    /// CPU temperature.
    pub temperature: Option<Celsius>,
}

/// The thermal level, ordered from cool to hot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum ThermalLevel {
    /// Below the first step (70 C).
    #[default]
    Normal,
    /// At or above the first step (70 C).
    Warm,
    /// At or above the second step (80 C).
    Hot,
    /// At or above the third step (85 C).
    Critical,
}

impl ThermalLevel {
    const ALL: [Self; 4] = [Self::Normal, Self::Warm, Self::Hot, Self::Critical];

    fn index(self) -> usize {
        self as usize
    }
}

/// Why an [`Event`] happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// High CPU or memory pressure.
    HighPressure,
    /// Extreme combined CPU, memory and temperature pressure.
    ExtremePressure,
    /// The thermal level changed to this level (or this level demands features off).
    Thermal(ThermalLevel),
    /// Calm for long enough: this class is re-enabled.
    Recovery(Priority),
}

/// What the owner must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Stop these features.
    Disable(FeatureSet),
    /// Restart these features.
    Enable(FeatureSet),
    /// Report RSSI at this rate.
    SetReportRate {
        /// Reports per second.
        hz: u32,
    },
}

/// A transition, with the action to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Event {
    /// The `now` of the step that produced it.
    pub at: Duration,
    /// Why.
    pub cause: Cause,
    /// What to do.
    pub action: Action,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.action {
            Action::Disable(s) => write!(f, "disable {} feature(s): {:?}", s.len(), self.cause),
            Action::Enable(s) => write!(f, "enable {} feature(s): {:?}", s.len(), self.cause),
            Action::SetReportRate { hz } => write!(f, "report rate {hz} Hz: {:?}", self.cause),
        }
    }
}

/// Parameters of the controller. The defaults are the values in the module docs.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ControllerConfig {
    /// CPU or memory percentage that counts as high pressure. Default 85.
    pub high_pressure_percent: f64,
    /// Consecutive high samples before shedding classes >= 4. Default 5.
    pub high_pressure_samples: u32,
    /// Extreme pressure: CPU at or above this. Default 90.
    pub extreme_cpu_percent: f64,
    /// Extreme pressure: memory at or above this. Default 88.
    pub extreme_memory_percent: f64,
    /// Extreme pressure: temperature at or above this. Default 85 C.
    pub extreme_temperature_c: f64,
    /// Calm: CPU below this. Default 70.
    pub recovery_cpu_percent: f64,
    /// Calm: memory below this. Default 75.
    pub recovery_memory_percent: f64,
    /// Calm samples before re-enabling the first shed class; also the cool samples before
    /// the thermal level falls one step. Default 10.
    pub recovery_samples: u32,
    /// Further calm samples before re-enabling each next class (capped at
    /// `recovery_samples`). Default 3.
    pub recovery_step_samples: u32,
    /// Thermal steps (Warm, Hot, Critical) in degrees Celsius. Default 70, 80, 85.
    pub thermal_steps_c: [f64; 3],
    /// How far below a step the temperature must be before the level falls. Default 3 C.
    pub thermal_hysteresis_c: f64,
    /// RSSI report rate at Normal, Warm, Hot, Critical. Default 10, 5, 2, 1 Hz.
    pub report_rates_hz: [u32; 4],
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            high_pressure_percent: 85.0,
            high_pressure_samples: 5,
            extreme_cpu_percent: 90.0,
            extreme_memory_percent: 88.0,
            extreme_temperature_c: 85.0,
            recovery_cpu_percent: 70.0,
            recovery_memory_percent: 75.0,
            recovery_samples: 10,
            recovery_step_samples: 3,
            thermal_steps_c: [70.0, 80.0, 85.0],
            thermal_hysteresis_c: 3.0,
            report_rates_hz: [10, 5, 2, 1],
        }
    }
}

/// Classes `>= NONE_SHED` are disabled: nothing.
const NONE_SHED: u8 = 7;
/// The lowest class that may ever be shed.
const MIN_SHED: u8 = 3;

/// The graceful-degradation controller. See the [module docs](self) for the rules.
#[derive(Debug, Clone)]
pub struct DegradationController {
    config: ControllerConfig,
    features: Vec<Feature>,
    /// Non-critical features of class `c` at index `c`.
    class_masks: [u64; 8],
    /// Non-critical features of class `>= shed_from` are disabled; 7 = none.
    shed_from: u8,
    high_run: u32,
    calm_run: u32,
    thermal: ThermalLevel,
    cool_run: u32,
    events: Vec<Event>,
}

impl DegradationController {
    /// A controller with no features, nothing shed and the thermal level Normal.
    pub fn new(config: ControllerConfig) -> Self {
        Self {
            config,
            features: Vec::new(),
            class_masks: [0; 8],
            shed_from: NONE_SHED,
            high_run: 0,
            calm_run: 0,
            thermal: ThermalLevel::Normal,
            cool_run: 0,
            events: Vec::with_capacity(4),
        }
    }

    /// Registers a feature. A feature registered while its class is shed starts disabled
    /// (see [`DegradationController::is_enabled`]).
    ///
    /// # Errors
    ///
    /// [`RegisterError::Duplicate`] for a name in use, [`RegisterError::TooMany`] past
    /// [`MAX_FEATURES`].
    pub fn register(
        &mut self,
        name: &str,
        priority: Priority,
        critical: bool,
    ) -> Result<FeatureId, RegisterError> {
        if self.features.iter().any(|f| f.name == name) {
            return Err(RegisterError::Duplicate {
                name: name.to_owned(),
            });
        }
        if self.features.len() >= MAX_FEATURES {
            return Err(RegisterError::TooMany { max: MAX_FEATURES });
        }
        // len < 64 was checked above, so the index fits in u8.
        let id = FeatureId(self.features.len() as u8);
        self.features.push(Feature {
            name: name.to_owned(),
            priority,
            critical,
        });
        if !critical {
            self.class_masks[usize::from(priority.class())] |= 1 << id.0;
        }
        Ok(id)
    }

    /// The feature registered as `id`, if any.
    pub fn feature(&self, id: FeatureId) -> Option<&Feature> {
        self.features.get(id.index())
    }

    /// Every registered feature with its id, in registration order.
    pub fn features(&self) -> impl Iterator<Item = (FeatureId, &Feature)> {
        // At most MAX_FEATURES = 64 are registered, so the index fits in u8.
        self.features
            .iter()
            .enumerate()
            .map(|(i, f)| (FeatureId(i as u8), f))
    }

    /// Whether feature `id` is currently enabled (unknown ids are reported disabled).
    pub fn is_enabled(&self, id: FeatureId) -> bool {
        id.index() < self.features.len() && !self.disabled().contains(id)
    }

    /// Every currently disabled feature.
    pub fn disabled(&self) -> FeatureSet {
        FeatureSet(self.mask_from(self.shed_from, NONE_SHED))
    }

    /// The most important class currently shed, if any.
    pub fn shed_from(&self) -> Option<Priority> {
        Priority::from_class(self.shed_from)
    }

    /// The current thermal level.
    pub fn thermal_level(&self) -> ThermalLevel {
        self.thermal
    }

    /// The RSSI report rate the owner should currently use.
    pub fn report_rate_hz(&self) -> u32 {
        self.config.report_rates_hz[self.thermal.index()]
    }

    /// Feeds one sample taken at `now` and returns the transitions it caused, in the order
    /// to apply them. The slice is valid until the next call; no allocation happens here.
    pub fn step(&mut self, now: Duration, readings: Readings) -> &[Event] {
        self.events.clear();
        let c = self.config;
        let cpu = readings.cpu.map(Percent::value);
        let mem = readings.memory.map(Percent::value);
        let temp = readings.temperature.map(Celsius::value);
        let at_least = |v: Option<f64>, limit: f64| v.is_some_and(|v| v >= limit);
        let below = |v: Option<f64>, limit: f64| v.is_some_and(|v| v < limit);

        let high = at_least(cpu, c.high_pressure_percent) || at_least(mem, c.high_pressure_percent);
        self.high_run = if high {
            self.high_run.saturating_add(1)
        } else {
            0
        };
        let calm = below(cpu, c.recovery_cpu_percent) && below(mem, c.recovery_memory_percent);
        self.calm_run = if calm {
            self.calm_run.saturating_add(1)
        } else {
            0
        };
        let extreme = at_least(cpu, c.extreme_cpu_percent)
            && at_least(mem, c.extreme_memory_percent)
            && at_least(temp, c.extreme_temperature_c);

        self.update_thermal(now, temp);

        let before = self.shed_from;
        if extreme {
            self.shed_to(now, MIN_SHED, Cause::ExtremePressure);
        }
        if self.high_run >= c.high_pressure_samples.max(1) {
            self.shed_to(now, 4, Cause::HighPressure);
        }
        let thermal_floor = self.thermal_floor();
        self.shed_to(now, thermal_floor, Cause::Thermal(self.thermal));

        let shed_now = self.shed_from != before;
        if !shed_now
            && self.shed_from < NONE_SHED
            && self.calm_run >= c.recovery_samples.max(1)
            && thermal_floor > self.shed_from
        {
            let class = self.shed_from;
            let features = FeatureSet(self.mask_from(class, class + 1));
            self.shed_from += 1;
            // The next class needs `recovery_step_samples` more calm samples.
            let needed = c.recovery_samples.max(1);
            self.calm_run = needed.saturating_sub(c.recovery_step_samples.clamp(1, needed));
            // `class` is in 3..=6 here.
            let cause =
                Cause::Recovery(Priority::from_class(class).unwrap_or(Priority::Convenience));
            self.events.push(Event {
                at: now,
                cause,
                action: Action::Enable(features),
            });
        }
        &self.events
    }

    /// The class from which the thermal level demands features off (7 = none).
    fn thermal_floor(&self) -> u8 {
        match self.thermal {
            ThermalLevel::Normal | ThermalLevel::Warm => NONE_SHED,
            ThermalLevel::Hot => 5,
            ThermalLevel::Critical => 4,
        }
    }

    fn update_thermal(&mut self, now: Duration, temp: Option<f64>) {
        let Some(t) = temp else {
            self.cool_run = 0;
            return;
        };
        let steps = self.config.thermal_steps_c;
        let reached = ThermalLevel::ALL
            .into_iter()
            .rev()
            .find(|l| l.index() == 0 || t >= steps[l.index() - 1])
            .unwrap_or(ThermalLevel::Normal);
        if reached > self.thermal {
            self.set_thermal(now, reached);
            return;
        }
        if self.thermal == ThermalLevel::Normal {
            return;
        }
        let release = steps[self.thermal.index() - 1] - self.config.thermal_hysteresis_c;
        self.cool_run = if t < release {
            self.cool_run.saturating_add(1)
        } else {
            0
        };
        if self.cool_run >= self.config.recovery_samples.max(1) {
            self.set_thermal(now, ThermalLevel::ALL[self.thermal.index() - 1]);
        }
    }

    fn set_thermal(&mut self, now: Duration, level: ThermalLevel) {
        self.thermal = level;
        self.cool_run = 0;
        let hz = self.config.report_rates_hz[level.index()];
        self.events.push(Event {
            at: now,
            cause: Cause::Thermal(level),
            action: Action::SetReportRate { hz },
        });
    }

    fn shed_to(&mut self, now: Duration, class: u8, cause: Cause) {
        let class = class.max(MIN_SHED);
        if class >= self.shed_from {
            return;
        }
        let features = FeatureSet(self.mask_from(class, self.shed_from));
        self.shed_from = class;
        self.calm_run = 0;
        self.events.push(Event {
            at: now,
            cause,
            action: Action::Disable(features),
        });
    }

    /// Non-critical features of classes `from..to`.
    fn mask_from(&self, from: u8, to: u8) -> u64 {
        (usize::from(from)..usize::from(to).min(self.class_masks.len()))
            .fold(0, |m, c| m | self.class_masks[c])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_classes_round_trip() {
        for p in Priority::ALL {
            assert_eq!(Priority::from_class(p.class()), Some(p));
        }
        assert_eq!(Priority::from_class(0), None);
        assert_eq!(Priority::from_class(7), None);
    }

    #[test]
    fn register_limits() {
        let mut c = DegradationController::new(ControllerConfig::default());
        for i in 0..MAX_FEATURES {
            c.register(&format!("f{i}"), Priority::Convenience, false)
                .unwrap();
        }
        assert_eq!(
            c.register("f0", Priority::Enhanced, false),
            Err(RegisterError::Duplicate { name: "f0".into() })
        );
        assert_eq!(
            c.register("more", Priority::Enhanced, false),
            Err(RegisterError::TooMany { max: 64 })
        );
        let last = FeatureId(63);
        assert!(c.is_enabled(last));
        assert_eq!(c.feature(last).unwrap().name, "f63");
        assert_eq!(
            FeatureSet::EMPTY.with(last).iter().collect::<Vec<_>>(),
            [last]
        );
    }
}
