#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod block;
pub mod detect;
pub mod estimator;
pub mod pacing;
pub mod policy;
pub mod pulse;
pub mod quality;
pub mod source;

pub use block::{CU8_LUT, Gain, IqBlock};
pub use detect::{DetectionConfig, Detector};
pub use estimator::{ConfigError, Estimator, EstimatorConfig, RAIL, Report, RssiUnits};
pub use policy::ClipGainPolicy;
pub use pulse::{PulseConfig, PulseReport};
pub use quality::QualityScore;
pub use source::{
    BlockStatus, ControlError, IqSource, LinkState, ReadStatus, SourceError, SourceHealth,
    TunerRange,
};
