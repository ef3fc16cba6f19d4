//! Drivers: the I/O around the sans-IO cores. They own the sockets (through
//! `sarlink_link::driver`), the receiver thread, the files and the clock, feed the cores and
//! carry out what the cores ask for.

pub mod drone;
pub mod ground;
pub mod mavlink;
pub mod mqtt;
