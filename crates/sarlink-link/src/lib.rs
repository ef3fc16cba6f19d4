#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod auth;
mod config;
pub mod driver;
mod error;
pub mod queue;
pub mod rate;
mod rtt;
mod session;
pub mod stream;
pub mod tls;

pub use auth::{KeyFileError, KeyTooShort, PreSharedKey};
pub use config::SessionConfig;
pub use error::{MIN_MAX_MESSAGE, SessionError};
pub use queue::{Priority, QueueStats, SendQueue};
pub use rtt::{RTT_WINDOW, RttStats, RttWindow};
pub use session::{CloseReason, Event, LinkState, PeerHello, SendError, Session, SessionStats};
