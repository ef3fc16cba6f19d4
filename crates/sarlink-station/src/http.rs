//! The operator's HTTP endpoint: the dashboard at `/`, a JSON snapshot at `/api/state`, live
//! updates as Server-Sent Events at `/api/live`, and Prometheus text at `/metrics`.
//!
//! The data plane (the ground's or the drone's main loop) never waits on HTTP: it renders
//! what it wants shown into a [`Hub`] with [`Hub::publish`], which takes the hub's lock only
//! if it is free and otherwise drops that publication (the next one follows within a report
//! interval). HTTP threads read the newest publication and write it out.
//!
//! Bounds, all in [`HttpConfig`]: connections served at once (one thread each; beyond the
//! limit a connection gets `503` and is closed by the acceptor without blocking), bytes in a
//! request head, time to receive a request head, and time a single write may block (a client
//! that does not read is dropped). Every response closes its connection, so an idle client
//! holds a thread for at most the head timeout.
//!
//! The request head is parsed by `httparse` (the parser hyper uses); routing, the bounds and
//! the responses are here.
//!
//! ```
//! use sarlink_monitor::metrics::Registry;
//! use sarlink_station::http::{HttpConfig, HttpServer, Hub};
//! use std::io::{Read, Write};
//!
//! let hub = Hub::new();
//! hub.publish(r#"{"node":"ground"}"#.into(), Default::default());
//! let server = HttpServer::start("127.0.0.1:0", HttpConfig::default(), Registry::new(), hub)?;
//! let mut s = std::net::TcpStream::connect(server.local_addr())?;
//! s.write_all(b"GET /api/state HTTP/1.1\r\nHost: x\r\n\r\n")?;
//! let mut reply = String::new();
//! s.read_to_string(&mut reply)?;
//! assert!(reply.starts_with("HTTP/1.1 200 OK"));
//! assert!(reply.contains(r#""live":{"node":"ground"}"#));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod hub;
mod server;

pub use hub::{History, HistoryPoint, Hub};
pub use server::{HttpConfig, HttpError, HttpServer};

/// The dashboard page: one self-contained HTML file (inline CSS and JavaScript, no build
/// step, nothing fetched from elsewhere), served at `/`.
pub const DASHBOARD_HTML: &str = include_str!("http/dashboard.html");
