#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod ca;
pub mod cmd;
pub mod config;
pub mod dashboard;
pub mod drone;
pub mod ground;
pub mod http;
pub mod monitoring;
pub mod mqtt;
pub mod node;
pub mod output;
pub mod pipeline;
pub mod record;
pub mod source;
pub mod units;
pub mod vehicle;
