#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod buffer;
mod handle;
mod ring;
mod stats;

pub use buffer::{
    BufferPool, BufferPoolBuilder, BufferPoolConfigError, DEFAULT_BUFFER_CAPACITY,
    DEFAULT_MAX_BUFFER_CAPACITY, DEFAULT_MAX_POOLED, PooledBuf,
};
pub use ring::{DrainWhile, HighWaterEvent, RingBuffer};
pub use stats::PoolStats;
