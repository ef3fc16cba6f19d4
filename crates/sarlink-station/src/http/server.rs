//! The bounded HTTP/1.1 server: one acceptor thread, one thread per connection up to a
//! limit, `Connection: close` on every response.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sarlink_monitor::metrics::{Counter, Gauge, RegisterError, Registry};

use super::{DASHBOARD_HTML, Hub};

/// Limits of an [`HttpServer`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Connections served at once (each holds one thread). Beyond it a new connection gets
    /// `503 Service Unavailable` and is closed. Default 256.
    pub max_connections: usize,
    /// Largest request head (request line and headers), bytes; a larger one gets `431`.
    /// Default 8 KiB.
    pub max_head_bytes: usize,
    /// Most headers in a request; more get `431`. Default 32.
    pub max_headers: usize,
    /// Time from accepting a connection to having its whole request head; a slower client
    /// gets `408` and is closed. Default 5 s.
    pub head_timeout: Duration,
    /// Longest a single write may block: a client that stops reading (a full socket buffer
    /// for this long) is dropped. Default 2 s.
    pub write_timeout: Duration,
    /// The live stream sends a comment line after this long without news, so proxies and
    /// browsers keep it open and a dead client is noticed. Default 15 s.
    pub keepalive: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_connections: 256,
            max_head_bytes: 8 * 1024,
            max_headers: 32,
            head_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(2),
            keepalive: Duration::from_secs(15),
        }
    }
}

/// Why an [`HttpServer`] could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The address cannot be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The acceptor thread could not be started.
    #[error("cannot start the acceptor thread")]
    Spawn(#[source] io::Error),
    /// The server's own metrics could not be registered.
    #[error("registering the HTTP metrics")]
    Metrics(#[from] RegisterError),
}

/// The routes, for the `route` label of `sarlink_http_requests_total`.
const ROUTES: [&str; 5] = ["dashboard", "state", "live", "metrics", "other"];

#[derive(Debug)]
struct HttpMetrics {
    open: Gauge,
    requests: [Counter; 5],
    busy: Counter,
    timeouts: Counter,
    too_large: Counter,
    bad: Counter,
    sent: Counter,
}

impl HttpMetrics {
    fn new(registry: &Registry) -> Result<HttpMetrics, RegisterError> {
        let rejected = |reason| {
            registry.counter(
                "sarlink_http_rejected",
                "HTTP connections closed without serving them, by reason (busy: over the connection limit; timeout: no complete request head in time; too_large: head over the size limit; bad_request: unparsable).",
                &[("reason", reason)],
            )
        };
        let request = |route| {
            registry.counter(
                "sarlink_http_requests",
                "HTTP requests served, by route (dashboard, state, live, metrics, other).",
                &[("route", route)],
            )
        };
        Ok(HttpMetrics {
            open: registry.gauge(
                "sarlink_http_connections",
                "HTTP connections open now (live streams included).",
                &[],
            )?,
            requests: [
                request(ROUTES[0])?,
                request(ROUTES[1])?,
                request(ROUTES[2])?,
                request(ROUTES[3])?,
                request(ROUTES[4])?,
            ],
            busy: rejected("busy")?,
            timeouts: rejected("timeout")?,
            too_large: rejected("too_large")?,
            bad: rejected("bad_request")?,
            sent: registry.counter(
                "sarlink_http_sent_bytes",
                "Bytes written to HTTP clients (headers and bodies).",
                &[],
            )?,
        })
    }
}

#[derive(Debug)]
struct Shared {
    config: HttpConfig,
    registry: Registry,
    hub: Hub,
    metrics: HttpMetrics,
    active: AtomicUsize,
    /// Connections allowed now (at most `config.max_connections`), see
    /// [`HttpServer::set_connection_cap`].
    cap: AtomicUsize,
    stop: AtomicBool,
}

/// A running HTTP endpoint; stops when dropped (live streams end within their next wake-up,
/// other connections within their timeouts).
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Serves the dashboard, `/api/state` and `/api/live` from `hub`, and `registry` at
    /// `/metrics`, on `addr`. The server's own metrics (`sarlink_http_*`) are added to
    /// `registry`. Limits of zero are raised to the smallest that works (one connection,
    /// 64 head bytes, one header, 1 ms): a zero timeout would mean "wait forever".
    ///
    /// # Errors
    /// [`HttpError`] when the address cannot be bound or a thread cannot start.
    pub fn start(
        addr: &str,
        mut config: HttpConfig,
        registry: Registry,
        hub: Hub,
    ) -> Result<HttpServer, HttpError> {
        let ms = Duration::from_millis(1);
        config.max_connections = config.max_connections.max(1);
        config.max_head_bytes = config.max_head_bytes.max(64);
        config.max_headers = config.max_headers.max(1);
        config.head_timeout = config.head_timeout.max(ms);
        config.write_timeout = config.write_timeout.max(ms);
        config.keepalive = config.keepalive.max(ms);
        let listener = TcpListener::bind(addr).map_err(|source| HttpError::Bind {
            addr: addr.to_owned(),
            source,
        })?;
        let local = listener.local_addr().map_err(|source| HttpError::Bind {
            addr: addr.to_owned(),
            source,
        })?;
        let shared = Arc::new(Shared {
            metrics: HttpMetrics::new(&registry)?,
            config,
            registry,
            hub,
            active: AtomicUsize::new(0),
            cap: AtomicUsize::new(usize::MAX),
            stop: AtomicBool::new(false),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("sl-http-accept".into())
                .spawn(move || accept_loop(&listener, &shared))
                .map_err(HttpError::Spawn)?
        };
        Ok(HttpServer {
            addr: local,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections being served now.
    pub fn active_connections(&self) -> usize {
        self.shared.active.load(Ordering::Relaxed)
    }

    /// Refuses (503) new connections while `cap` or more are open, `None` for the
    /// configured limit again. Connections already open are not closed. Used to shed
    /// dashboard clients under load.
    pub fn set_connection_cap(&self, cap: Option<usize>) {
        self.shared
            .cap
            .store(cap.map_or(usize::MAX, |c| c.max(1)), Ordering::Relaxed);
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.hub.close();
        // Wake the acceptor, blocked in accept(), with a connection of our own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

/// Counts a connection for as long as it lives.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        let now = self.0.active.fetch_sub(1, Ordering::Relaxed) - 1;
        self.0.metrics.open.set(now as f64);
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::debug!(error = %e, "accept failed");
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let active = shared.active.fetch_add(1, Ordering::Relaxed) + 1;
        let slot = Slot(Arc::clone(shared));
        let limit = shared
            .config
            .max_connections
            .min(shared.cap.load(Ordering::Relaxed));
        if active > limit {
            shared.metrics.busy.inc();
            // Never block the acceptor on a client: a non-blocking best-effort answer.
            let _ = stream.set_nonblocking(true);
            let _ = (&stream).write(
                b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            continue;
        }
        shared.metrics.open.set(active as f64);
        let spawned = std::thread::Builder::new()
            .name("sl-http".into())
            .spawn(move || {
                let _ = serve(stream, &slot.0);
                drop(slot);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start an HTTP thread");
        }
    }
}

/// A request head, parsed.
struct Head {
    method: String,
    path: String,
}

enum HeadError {
    Timeout,
    TooLarge,
    Bad,
    Closed,
}

fn read_head(stream: &mut TcpStream, config: &HttpConfig) -> Result<Head, HeadError> {
    let deadline = Instant::now() + config.head_timeout;
    let mut buf = vec![0u8; config.max_head_bytes];
    let mut len = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HeadError::Timeout);
        }
        // A zero timeout would mean "block forever": `left` is above zero here.
        stream
            .set_read_timeout(Some(left))
            .map_err(|_| HeadError::Closed)?;
        match stream.read(&mut buf[len..]) {
            Ok(0) => return Err(HeadError::Closed),
            Ok(n) => len += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(HeadError::Timeout);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(HeadError::Closed),
        }
        let mut headers = vec![httparse::EMPTY_HEADER; config.max_headers];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                return Ok(Head {
                    method: request.method.unwrap_or("").to_owned(),
                    path: request.path.unwrap_or("").to_owned(),
                });
            }
            Ok(httparse::Status::Partial) if len == buf.len() => return Err(HeadError::TooLarge),
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
            Err(_) => return Err(HeadError::Bad),
        }
    }
}

fn serve(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let config = &shared.config;
    stream.set_write_timeout(Some(config.write_timeout))?;
    let _ = stream.set_nodelay(true);
    let m = &shared.metrics;
    let head = match read_head(&mut stream, config) {
        Ok(head) => head,
        Err(HeadError::Timeout) => {
            m.timeouts.inc();
            return respond(&mut stream, m, "408 Request Timeout", "text/plain", b"");
        }
        Err(HeadError::TooLarge) => {
            m.too_large.inc();
            let body = b"request head too large\n";
            return respond(
                &mut stream,
                m,
                "431 Request Header Fields Too Large",
                "text/plain",
                body,
            );
        }
        Err(HeadError::Bad) => {
            m.bad.inc();
            return respond(
                &mut stream,
                m,
                "400 Bad Request",
                "text/plain",
                b"bad request\n",
            );
        }
        Err(HeadError::Closed) => return Ok(()),
    };
    let path = head.path.split(['?', '#']).next().unwrap_or("");
    let route = match path {
        "/" | "/index.html" => 0,
        "/api/state" => 1,
        "/api/live" => 2,
        "/metrics" => 3,
        _ => 4,
    };
    m.requests[route].inc();
    if head.method != "GET" {
        return respond(
            &mut stream,
            m,
            "405 Method Not Allowed",
            "text/plain",
            b"only GET\n",
        );
    }
    match route {
        0 => respond(
            &mut stream,
            m,
            "200 OK",
            "text/html; charset=utf-8",
            DASHBOARD_HTML.as_bytes(),
        ),
        1 => {
            let body = shared.hub.state_json();
            respond(
                &mut stream,
                m,
                "200 OK",
                "application/json",
                body.as_bytes(),
            )
        }
        2 => live(&mut stream, shared),
        3 => {
            let body = shared.registry.to_prometheus_text();
            respond(
                &mut stream,
                m,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                body.as_bytes(),
            )
        }
        _ => respond(
            &mut stream,
            m,
            "404 Not Found",
            "text/plain",
            b"not found: try /, /api/state, /api/live or /metrics\n",
        ),
    }
}

fn respond(
    stream: &mut TcpStream,
    m: &HttpMetrics,
    status: &str,
    content_type: &str,
    body: &[u8],
) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out)?;
    m.sent.add(out.len() as u64);
    Ok(())
}

/// Server-Sent Events: each publication as `event: state`, a comment after
/// [`HttpConfig::keepalive`] of quiet, until the client goes, stops reading, or the server
/// stops.
fn live(stream: &mut TcpStream, shared: &Shared) -> io::Result<()> {
    let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nConnection: close\r\n\r\nretry: 1000\n\n";
    stream.write_all(head)?;
    shared.metrics.sent.add(head.len() as u64);
    let mut seen = 0;
    let mut out = Vec::new();
    loop {
        if shared.stop.load(Ordering::Relaxed) || shared.hub.is_closed() {
            return Ok(());
        }
        out.clear();
        match shared.hub.wait_newer(seen, shared.config.keepalive) {
            Some((generation, data)) => {
                seen = generation;
                out.extend_from_slice(b"event: state\n");
                for line in data.split('\n') {
                    out.extend_from_slice(b"data: ");
                    out.extend_from_slice(line.trim_end_matches('\r').as_bytes());
                    out.push(b'\n');
                }
                out.push(b'\n');
            }
            None => out.extend_from_slice(b": keepalive\n\n"),
        }
        stream.write_all(&out)?;
        shared.metrics.sent.add(out.len() as u64);
    }
}

#[cfg(test)]
mod tests;
