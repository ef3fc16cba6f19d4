//! Drivers over real sockets, with no async runtime.
//!
//! The [`Server`] runs one event loop (mio readiness: epoll on Linux) on one thread, which
//! owns every connection's socket, TLS state and [`Session`](crate::Session) and drives them
//! through the session's sans-IO API; timers come from one heap, events reach the
//! application in order through one bounded channel, and the application's calls reach the
//! loop through one channel and a waker. A [`Client`] is one connection on its own threads:
//! a reader thread (socket reads into pooled buffers) and a session thread (owns the
//! session, waits on input, application commands and the session's deadline, and writes).
//! Sockets use `TCP_NODELAY`, and a peer that stops reading is cut off after the write
//! timeout instead of stalling anything.
//!
//! Thread names, so tools can attribute CPU time (`/proc/self/task/*/comm`): the server's
//! loop is `sl-srv-loop`, a client's threads are `sl-cli` and `sl-cli-read`.

mod client;
mod conn;
mod ids;
mod server;

pub use client::{Backoff, Client, ClientConfig, ClientCounters, ClientEvent, ClientStats};
pub use conn::{Disconnect, IoOp};
pub use server::{ConnId, ResumePosition, Server, ServerConfig, ServerEvent};
