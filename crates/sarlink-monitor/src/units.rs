//! Validated unit newtypes shared by the policy modules.

use std::fmt;

/// Why a raw number was not accepted as a unit value.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum UnitError {
    /// The value was NaN or infinite.
    #[error("value {value} is not finite")]
    NotFinite {
        /// The rejected value.
        value: f64,
    },
    /// The value lies outside the allowed range.
    #[error("value {value} is outside {min}..={max}")]
    OutOfRange {
        /// The rejected value.
        value: f64,
        /// Smallest allowed value.
        min: f64,
        /// Largest allowed value.
        max: f64,
    },
}

/// A finite percentage in `0.0..=100.0`.
///
/// Used for CPU load and memory use. Process CPU is normalised to the whole machine
/// (all cores busy = 100 %), so it never exceeds 100.
///
/// # Examples
///
/// ```
/// use sarlink_monitor::Percent;
/// assert_eq!(Percent::new(42.5).unwrap().value(), 42.5);
/// assert!(Percent::new(100.1).is_err());
/// assert_eq!(Percent::saturating(130.0).value(), 100.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Percent(f64);

impl Percent {
    /// 0 %.
    pub const ZERO: Self = Self(0.0);
    /// 100 %.
    pub const FULL: Self = Self(100.0);

    /// Validates `value` as a percentage.
    ///
    /// # Errors
    ///
    /// [`UnitError::NotFinite`] for NaN or infinities, [`UnitError::OutOfRange`] outside
    /// `0.0..=100.0`.
    pub fn new(value: f64) -> Result<Self, UnitError> {
        if !value.is_finite() {
            return Err(UnitError::NotFinite { value });
        }
        if !(0.0..=100.0).contains(&value) {
            return Err(UnitError::OutOfRange {
                value,
                min: 0.0,
                max: 100.0,
            });
        }
        Ok(Self(value))
    }

    /// Clamps `value` into `0.0..=100.0`; NaN becomes 0.
    pub fn saturating(value: f64) -> Self {
        if value.is_nan() {
            Self(0.0)
        } else {
            Self(value.clamp(0.0, 100.0))
        }
    }

    /// The percentage as a plain number.
    pub fn value(self) -> f64 {
        self.0
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1} %", self.0)
    }
}

/// A finite temperature in degrees Celsius, at or above absolute zero.
///
/// # Examples
///
/// ```
/// use sarlink_monitor::Celsius;
/// assert_eq!(Celsius::new(48.2).unwrap().value(), 48.2);
/// assert!(Celsius::new(f64::NAN).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Celsius(f64);

impl Celsius {
    /// Validates `value` as a temperature in degrees Celsius.
    ///
    /// # Errors
    ///
    /// [`UnitError::NotFinite`] for NaN or infinities, [`UnitError::OutOfRange`] below
    /// absolute zero (-273.15).
    pub fn new(value: f64) -> Result<Self, UnitError> {
        if !value.is_finite() {
            return Err(UnitError::NotFinite { value });
        }
        if value < -273.15 {
            return Err(UnitError::OutOfRange {
                value,
                min: -273.15,
                max: f64::MAX,
            });
        }
        Ok(Self(value))
    }

    /// The temperature in degrees Celsius.
    pub fn value(self) -> f64 {
        self.0
    }
}

impl fmt::Display for Celsius {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1} C", self.0)
    }
}
