use super::*;
use std::sync::Arc;

fn server(config: HttpConfig) -> (HttpServer, Hub, Registry) {
    let hub = Hub::new();
    let registry = Registry::new();
    let s = HttpServer::start("127.0.0.1:0", config, registry.clone(), hub.clone()).unwrap();
    (s, hub, registry)
}

fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn get(addr: SocketAddr, path: &str) -> String {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn serves_each_route_and_refuses_the_rest() {
    let (s, hub, registry) = server(HttpConfig::default());
    registry
        .counter("sarlink_test_records", "Records.", &[("node", "d1")])
        .unwrap()
        .add(3);
    let page = get(s.local_addr(), "/");
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(
        page.contains("text/html") && page.contains("<title>sarlink"),
        "{page}"
    );
    assert!(get(s.local_addr(), "/?x=1").starts_with("HTTP/1.1 200 OK"));

    let state = get(s.local_addr(), "/api/state");
    assert!(state.ends_with(r#"{"live":null,"history":{}}"#), "{state}");
    publish(&hub, r#"{"node":"g"}"#);
    let state = get(s.local_addr(), "/api/state");
    assert!(state.contains("application/json"), "{state}");
    assert!(
        state.ends_with(r#"{"live":{"node":"g"},"history":{}}"#),
        "{state}"
    );

    let metrics = get(s.local_addr(), "/metrics");
    assert!(metrics.contains("text/plain; version=0.0.4"), "{metrics}");
    assert!(
        metrics.contains("sarlink_test_records_total{node=\"d1\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sarlink_http_requests_total{route=\"state\"} 2"),
        "{metrics}"
    );

    assert!(get(s.local_addr(), "/nope").starts_with("HTTP/1.1 404"));
    let post = exchange(
        s.local_addr(),
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
}

#[test]
fn hostile_heads_get_4xx_and_never_stop_the_server() {
    let config = HttpConfig {
        max_head_bytes: 1024,
        max_headers: 8,
        ..HttpConfig::default()
    };
    let (s, _hub, registry) = server(config);
    let addr = s.local_addr();
    let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(4000));
    assert!(exchange(addr, long.as_bytes()).starts_with("HTTP/1.1 431"));
    let many: String = (0..20).map(|i| format!("X-{i}: v\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
    assert!(exchange(addr, many.as_bytes()).starts_with("HTTP/1.1 431"));
    assert!(exchange(addr, b"\x00\xff garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
    // Random bytes, whole and cut anywhere: the server answers or closes, and keeps serving.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..50 {
        let len = 1 + (seed % 300) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(&bytes).unwrap();
        if round % 2 == 0 {
            let _ = c.write_all(b"\r\n\r\n");
        }
        drop(c);
    }
    assert!(get(addr, "/metrics").starts_with("HTTP/1.1 200 OK"));
    wait_until("every connection to end", || s.active_connections() == 0);
    let text = registry.snapshot().to_prometheus_text();
    assert!(
        text.contains("sarlink_http_rejected_total{reason=\"too_large\"} 2"),
        "{text}"
    );
}

#[test]
fn an_idle_client_times_out_and_never_delays_another() {
    let config = HttpConfig {
        head_timeout: Duration::from_millis(300),
        ..HttpConfig::default()
    };
    let (s, _hub, registry) = server(config);
    let mut idle: Vec<TcpStream> = (0..5)
        .map(|_| TcpStream::connect(s.local_addr()).unwrap())
        .collect();
    idle[0].write_all(b"GET /metrics HT").unwrap(); // a head that never ends
    // While they sit, others are served (no timing bound asserted: order is what matters).
    assert!(get(s.local_addr(), "/metrics").starts_with("HTTP/1.1 200 OK"));
    for c in &mut idle {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    }
    wait_until("the idle connections to close", || {
        s.active_connections() == 0
    });
    let text = registry.snapshot().to_prometheus_text();
    assert!(
        text.contains("sarlink_http_rejected_total{reason=\"timeout\"} 5"),
        "{text}"
    );
}

#[test]
fn connections_beyond_the_limit_get_503_and_service_resumes() {
    let config = HttpConfig {
        max_connections: 2,
        head_timeout: Duration::from_millis(500),
        ..HttpConfig::default()
    };
    let (s, _hub, _registry) = server(config);
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(s.local_addr()).unwrap())
        .collect();
    wait_until("both to be counted", || s.active_connections() == 2);
    assert!(get(s.local_addr(), "/metrics").starts_with("HTTP/1.1 503"));
    drop(held);
    wait_until("the slots to free", || s.active_connections() == 0);
    assert!(get(s.local_addr(), "/metrics").starts_with("HTTP/1.1 200 OK"));
}

/// Publishes until the hub takes it (a publication is dropped, by design, when a reader
/// holds the lock at that instant).
fn publish(hub: &Hub, live: &str) {
    while !hub.publish(live.to_owned(), Arc::default()) {
        std::thread::yield_now();
    }
}

fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&got).contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in {}",
            String::from_utf8_lossy(&got)
        );
        let n = stream.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "closed before {needle:?}: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn the_live_stream_sends_each_publication_as_an_event() {
    let config = HttpConfig {
        keepalive: Duration::from_millis(200),
        ..HttpConfig::default()
    };
    let (s, hub, _registry) = server(config);
    publish(&hub, r#"{"n":1}"#);
    let mut c = TcpStream::connect(s.local_addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /api/live HTTP/1.1\r\n\r\n").unwrap();
    let first = read_until(&mut c, "data: {\"n\":1}\n\n");
    assert!(first.contains("text/event-stream"), "{first}");
    assert!(
        first.contains("event: state\ndata: {\"n\":1}\n\n"),
        "{first}"
    );
    publish(&hub, "{\"n\":2,\n\"m\":3}");
    let second = read_until(&mut c, "\"m\":3}\n\n");
    assert!(
        second.contains("data: {\"n\":2,\ndata: \"m\":3}\n\n"),
        "{second}"
    );
    assert!(read_until(&mut c, ": keepalive\n\n").contains("keepalive"));
    drop(s);
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest); // the server ends the stream when it stops
}

#[test]
fn a_live_client_that_stops_reading_is_dropped() {
    let config = HttpConfig {
        write_timeout: Duration::from_millis(100),
        ..HttpConfig::default()
    };
    let (s, hub, _registry) = server(config);
    let mut c = TcpStream::connect(s.local_addr()).unwrap();
    c.write_all(b"GET /api/live HTTP/1.1\r\n\r\n").unwrap();
    wait_until("the stream to open", || s.active_connections() == 1);
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(1 << 20));
    // Never read: once the socket buffers are full, a write blocks past its timeout.
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.active_connections() > 0 {
        assert!(
            Instant::now() < deadline,
            "the stalled client was never dropped"
        );
        hub.publish(big.clone(), Arc::default());
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(c);
}
