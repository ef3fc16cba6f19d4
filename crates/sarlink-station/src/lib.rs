#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod ca;
pub mod cmd;
pub mod config;
pub mod drone;
pub mod ground;
pub mod metrics_http;
pub mod node;
pub mod output;
pub mod pipeline;
pub mod record;
pub mod source;
pub mod units;
