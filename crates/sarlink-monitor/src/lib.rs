#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod baseline;
pub mod degradation;
pub mod metrics;
pub mod quality;
pub mod resources;
pub mod thresholds;
mod timer;
mod units;

pub use timer::ScopeTimer;
pub use units::{Celsius, Percent, UnitError};
