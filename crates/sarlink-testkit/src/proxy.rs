//! A fault-injecting TCP proxy for tests, demos and load tools: it sits between clients and
//! a server and adds latency and jitter, stalls traffic, drops connections, or takes the
//! link down altogether, on command.
//!
//! Each accepted connection gets two forwarding directions, each a reader thread and a
//! writer thread joined by a channel of timestamped chunks, so latency delays bytes without
//! reordering them.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use parking_lot::Mutex;

/// The faults currently applied.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// Added one-way delay.
    pub latency: Duration,
    /// Random extra delay, uniform in `0..=jitter` (bytes stay in order).
    pub jitter: Duration,
    /// Bytes are held (not forwarded) while true; connections stay open.
    pub stalled: bool,
    /// The link is down: connections are cut and new ones refused while true.
    pub down: bool,
}

/// Counters of a [`FaultProxy`].
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Connections accepted and forwarded.
    pub connections: AtomicU64,
    /// Connections cut by [`FaultProxy::drop_connections`] or [`FaultProxy::set_down`].
    pub cut: AtomicU64,
    /// Connections refused while down.
    pub refused: AtomicU64,
    /// Bytes forwarded, both directions.
    pub bytes: AtomicU64,
    /// Chunks altered by [`FaultProxy::corrupt_upstream`].
    pub corrupted: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    faults: Mutex<Faults>,
    /// Bumped to cut every open connection.
    generation: AtomicU64,
    stop: AtomicBool,
    stats: ProxyStats,
    open: Mutex<Vec<(u64, TcpStream, TcpStream)>>,
    /// Client-to-server chunks still to alter.
    corrupt_upstream: AtomicU64,
}

/// A running proxy; dropping it stops it and closes every connection.
#[derive(Debug)]
pub struct FaultProxy {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on `listen` and forwards every connection to `upstream`.
    ///
    /// # Errors
    /// When `listen` cannot be bound or `upstream` does not resolve.
    pub fn start(
        listen: impl ToSocketAddrs,
        upstream: impl ToSocketAddrs,
    ) -> io::Result<FaultProxy> {
        let upstream = upstream.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "upstream address resolves to nothing",
            )
        })?;
        let listener = TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            faults: Mutex::new(Faults::default()),
            generation: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            stats: ProxyStats::default(),
            open: Mutex::new(Vec::new()),
            corrupt_upstream: AtomicU64::new(0),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("sarlink-proxy".into())
                .spawn(move || accept_loop(&listener, upstream, &shared))?
        };
        Ok(FaultProxy {
            local_addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// Where clients should connect.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        *self.shared.faults.lock()
    }

    /// Replaces the faults; taking the link down cuts every open connection.
    pub fn set_faults(&self, faults: Faults) {
        let was_down = std::mem::replace(&mut *self.shared.faults.lock(), faults).down;
        if faults.down && !was_down {
            self.drop_connections();
        }
    }

    /// Takes the link down (cutting connections, refusing new ones) or brings it back.
    pub fn set_down(&self, down: bool) {
        let faults = Faults {
            down,
            ..self.faults()
        };
        self.set_faults(faults);
    }

    /// Holds or releases all traffic without closing anything.
    pub fn set_stalled(&self, stalled: bool) {
        self.shared.faults.lock().stalled = stalled;
    }

    /// Sets the added one-way latency and jitter.
    pub fn set_latency(&self, latency: Duration, jitter: Duration) {
        let mut f = self.shared.faults.lock();
        f.latency = latency;
        f.jitter = jitter;
    }

    /// Alters the next `chunks` pieces the proxy forwards from a client to the server (one
    /// bit flipped in the middle of each), as an on-path attacker rewriting traffic would.
    pub fn corrupt_upstream(&self, chunks: u64) {
        self.shared
            .corrupt_upstream
            .fetch_add(chunks, Ordering::SeqCst);
    }

    /// Cuts every open connection now (new ones are accepted unless the link is down).
    pub fn drop_connections(&self) {
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
        let open = std::mem::take(&mut *self.shared.open.lock());
        for (_, a, b) in open {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
            self.shared.stats.cut.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Cuts each open connection with probability `probability` (0 to 1); returns how many
    /// were cut. New connections are accepted as before.
    pub fn drop_random(&self, probability: f64) -> usize {
        let mut open = self.shared.open.lock();
        let mut cut = 0;
        open.retain(|(_, a, b)| {
            if rand::random::<f64>() < probability {
                let _ = a.shutdown(Shutdown::Both);
                let _ = b.shutdown(Shutdown::Both);
                cut += 1;
                false
            } else {
                true
            }
        });
        self.shared
            .stats
            .cut
            .fetch_add(cut as u64, Ordering::Relaxed);
        cut
    }

    /// Counters.
    pub fn stats(&self) -> &ProxyStats {
        &self.shared.stats
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.drop_connections();
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, upstream: SocketAddr, shared: &Arc<Shared>) {
    let mut next_id = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                if shared.faults.lock().down {
                    shared.stats.refused.fetch_add(1, Ordering::Relaxed);
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2))
                else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                next_id += 1;
                if let Err(e) = forward_pair(next_id, client, server, shared) {
                    tracing::warn!(error = %e, "proxy could not start forwarding");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5))
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn forward_pair(
    id: u64,
    client: TcpStream,
    server: TcpStream,
    shared: &Arc<Shared>,
) -> io::Result<()> {
    shared
        .open
        .lock()
        .push((id, client.try_clone()?, server.try_clone()?));
    shared.stats.connections.fetch_add(1, Ordering::Relaxed);
    let generation = shared.generation.load(Ordering::SeqCst);
    for (upstream, from, to) in [
        (true, client.try_clone()?, server.try_clone()?),
        (false, server, client),
    ] {
        let (tx, rx) = bounded::<(Instant, Vec<u8>)>(256);
        let s = Arc::clone(shared);
        thread::Builder::new()
            .name("sarlink-proxy-r".into())
            .spawn(move || read_side(from, &tx, &s, generation, upstream))?;
        let s = Arc::clone(shared);
        thread::Builder::new()
            .name("sarlink-proxy-w".into())
            .spawn(move || write_side(to, &rx, &s, generation, id))?;
    }
    Ok(())
}

fn read_side(
    mut from: TcpStream,
    tx: &Sender<(Instant, Vec<u8>)>,
    shared: &Shared,
    generation: u64,
    upstream: bool,
) {
    let mut last_release = Instant::now();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if shared.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if upstream
            && shared
                .corrupt_upstream
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1))
                .is_ok()
        {
            buf[n / 2] ^= 0x10;
            shared.stats.corrupted.fetch_add(1, Ordering::Relaxed);
        }
        let faults = *shared.faults.lock();
        let jitter = if faults.jitter.is_zero() {
            Duration::ZERO
        } else {
            faults.jitter.mul_f64(rand::random::<f64>())
        };
        // Never release before an earlier chunk: latency delays, it does not reorder.
        last_release = last_release.max(Instant::now() + faults.latency + jitter);
        if tx.send((last_release, buf[..n].to_vec())).is_err() {
            return;
        }
    }
}

fn write_side(
    mut to: TcpStream,
    rx: &Receiver<(Instant, Vec<u8>)>,
    shared: &Shared,
    generation: u64,
    id: u64,
) {
    while let Ok((release, chunk)) = rx.recv() {
        loop {
            if shared.generation.load(Ordering::SeqCst) != generation
                || shared.stop.load(Ordering::SeqCst)
            {
                return;
            }
            let now = Instant::now();
            let stalled = shared.faults.lock().stalled;
            if !stalled && now >= release {
                break;
            }
            let wait = if stalled {
                Duration::from_millis(5)
            } else {
                (release - now).min(Duration::from_millis(5))
            };
            thread::sleep(wait);
        }
        if to.write_all(&chunk).is_err() {
            break;
        }
        shared
            .stats
            .bytes
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    let _ = to.shutdown(Shutdown::Write);
    shared.open.lock().retain(|(i, _, _)| *i != id);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        thread::spawn(move || {
            for s in l.incoming().flatten() {
                thread::spawn(move || {
                    let mut s = s;
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn round_trip(addr: SocketAddr) -> io::Result<Duration> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        let t = Instant::now();
        s.write_all(b"ping")?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf)?;
        assert_eq!(&buf, b"ping");
        Ok(t.elapsed())
    }

    #[test]
    fn forwards_and_adds_latency_in_both_directions() {
        let proxy = FaultProxy::start("127.0.0.1:0", echo_server()).unwrap();
        round_trip(proxy.local_addr()).unwrap();
        proxy.set_latency(Duration::from_millis(30), Duration::ZERO);
        let slow = round_trip(proxy.local_addr()).unwrap();
        // Two one-way delays of 30 ms: a lower bound only (no upper timing bound here).
        assert!(slow >= Duration::from_millis(60), "{slow:?}");
    }

    #[test]
    fn down_cuts_and_refuses_then_recovers() {
        let proxy = FaultProxy::start("127.0.0.1:0", echo_server()).unwrap();
        let mut s = TcpStream::connect(proxy.local_addr()).unwrap();
        s.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        proxy.set_down(true);
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert!(
            matches!(s.read(&mut b), Ok(0) | Err(_)),
            "the open connection is cut"
        );
        assert!(
            round_trip(proxy.local_addr()).is_err(),
            "new connections are refused"
        );
        proxy.set_down(false);
        assert!(round_trip(proxy.local_addr()).is_ok());
        assert!(proxy.stats().cut.load(Ordering::Relaxed) >= 1);
        assert!(proxy.stats().refused.load(Ordering::Relaxed) >= 1);
    }

    #[test]
    fn drop_random_cuts_each_connection_with_its_probability() {
        let proxy = FaultProxy::start("127.0.0.1:0", echo_server()).unwrap();
        let conns: Vec<TcpStream> = (0..4)
            .map(|_| {
                let mut s = TcpStream::connect(proxy.local_addr()).unwrap();
                s.write_all(b"x").unwrap();
                let mut b = [0u8; 1];
                s.read_exact(&mut b).unwrap(); // forwarding is set up
                s
            })
            .collect();
        assert_eq!(proxy.drop_random(0.0), 0);
        assert_eq!(proxy.drop_random(1.0), 4);
        for mut s in conns {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut b = [0u8; 1];
            assert!(matches!(s.read(&mut b), Ok(0) | Err(_)));
        }
    }

    #[test]
    fn stall_holds_bytes_without_closing() {
        let proxy = FaultProxy::start("127.0.0.1:0", echo_server()).unwrap();
        let mut s = TcpStream::connect(proxy.local_addr()).unwrap();
        proxy.set_stalled(true);
        s.write_all(b"held").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 4];
        assert!(s.read(&mut buf).is_err(), "nothing passes while stalled");
        proxy.set_stalled(false);
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"held");
    }
}
