//! Blocking drivers over `std::net`: threads and crossbeam channels, no async runtime.
//!
//! Each connection has a reader thread (socket reads into pooled buffers) and a session
//! thread (owns the [`Session`](crate::Session), waits on input, application commands and
//! the session's deadline, and writes). Sockets use `TCP_NODELAY` and write timeouts, so a
//! peer that stops reading is cut off instead of stalling its thread for ever.
//!
//! Thread names, so tools can attribute CPU time (`/proc/self/task/*/comm`): a server's
//! threads start with `sl-srv` (`sl-srv-accept`, `sl-srv-<id>`, `sl-srv-read`), a client's
//! with `sl-cli` (`sl-cli`, `sl-cli-read`).

mod client;
mod conn;
mod server;

pub use client::{Backoff, Client, ClientConfig, ClientCounters, ClientEvent, ClientStats};
pub use conn::{Disconnect, IoOp};
pub use server::{ConnId, ResumePosition, Server, ServerConfig, ServerEvent};
