#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod authority;
mod coordinator;
mod decision;
mod link;
pub mod score;
mod source;

pub use authority::{
    CommandOp, FrequencyRequest, FrequencyResolution, Origin, Refusal, SafetyLevel, SafetyState,
    resolve_frequency,
};
pub use coordinator::{Config, ConfigError, CoordStats, Coordinator};
pub use decision::{Decision, Reason};
pub use link::{LinkHealth, LinkHealthError, LinkState, LinkThresholds, LinkVerdict, LossRatio};
pub use sarlink_schema::{QualityScore, SourceId};
pub use score::{ScoreConfig, ScoreKey, score_db};
pub use source::{ReadingError, SourceReading};
