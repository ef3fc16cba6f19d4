//! The sarlink demo and load tool, run as `sarlink-ground demo` and `sarlink-ground load`
//! (not published). Both drive the real cores of `sarlink-station` over real loopback TCP.

#![forbid(unsafe_code)]

pub mod demo;
pub mod load;
pub mod swarm;
