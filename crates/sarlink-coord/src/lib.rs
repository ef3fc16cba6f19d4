#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod authority;
mod cache;
mod coordinator;
mod decision;
mod link;
pub mod score;
pub mod snapshot;
mod source;

pub use authority::{
    CommandOp, FrequencyRequest, FrequencyResolution, Origin, Refusal, SafetyLevel, SafetyState,
    resolve_frequency,
};
pub use cache::{CacheConfig, CacheStats, ScoreCache};
pub use coordinator::{Config, ConfigError, CoordStats, Coordinator};
pub use decision::{Decision, Reason};
pub use link::{LinkHealth, LinkHealthError, LinkState, LinkThresholds, LinkVerdict, LossRatio};
pub use sarlink_schema::{QualityScore, SourceId};
pub use score::{ScoreConfig, ScoreKey, score_db};
pub use snapshot::{
    CoordSnapshot, DecisionRecord, LinkSnapshot, PushOutcome, SnapshotDecodeError,
    SnapshotEncodeError, SnapshotHistory, SnapshotPushError, SnapshotStats, StoredSnapshot,
};
pub use source::{ReadingError, SourceReading};
