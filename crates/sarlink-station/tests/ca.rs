//! Certificates from `sarlink_station::ca` work for the link's TLS: what `issue` signs (with
//! the CA rebuilt from its stored key) chains to the stored `ca.pem`, and `revoke` keeps a
//! drone out.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sarlink_link::SessionConfig;
use sarlink_link::driver::{
    Backoff, Client, ClientConfig, ClientEvent, Disconnect, Server, ServerConfig,
};
use sarlink_link::tls::{ClientTls, ServerTls};
use sarlink_schema::{NodeName, Role};
use sarlink_station::ca;

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

fn verdict(c: &Client) -> ClientEvent {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("no verdict");
        match c.events().recv_timeout(left) {
            Ok(e @ (ClientEvent::Connected { .. } | ClientEvent::Disconnected { .. })) => return e,
            _ => continue,
        }
    }
}

fn drone(dir: &Path, addr: std::net::SocketAddr, name: &str, files: &(PathBuf, PathBuf)) -> Client {
    let mut c = ClientConfig::new(
        SessionConfig::new(Role::Drone, NodeName::new(name).unwrap(), 3),
        addr.to_string(),
    );
    c.backoff = Backoff {
        initial: Duration::from_secs(5),
        max: Duration::from_secs(5),
        jitter: 0.0,
    };
    c.tls = Some(
        ClientTls::from_pem(
            &read(&dir.join("ca.pem")),
            &read(&files.0),
            ca::read_private_key(&files.1).unwrap().as_bytes(),
            "ground",
        )
        .unwrap(),
    );
    Client::spawn(c).unwrap()
}

#[test]
fn issued_certificates_connect_and_revoked_ones_do_not() {
    let dir = std::env::temp_dir().join(format!("sarlink-ca-link-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    ca::init(&dir).unwrap();
    let ground = ca::issue(&dir, "ground").unwrap();
    let good = ca::issue(&dir, "drone-1").unwrap();
    let bad = ca::issue(&dir, "drone-2").unwrap();
    ca::revoke(&dir, "drone-2").unwrap();

    let mut config = ServerConfig::new(SessionConfig::new(
        Role::Ground,
        NodeName::new("ground").unwrap(),
        1,
    ));
    config.tls = Some(
        ServerTls::from_pem(
            &read(&dir.join("ca.pem")),
            &read(&ground.0),
            ca::read_private_key(&ground.1).unwrap().as_bytes(),
            &read(&dir.join("crl.pem")),
        )
        .unwrap(),
    );
    let server = Server::bind("127.0.0.1:0", config).unwrap();
    let ok = drone(&dir, server.local_addr(), "drone-1", &good);
    assert!(matches!(verdict(&ok), ClientEvent::Connected { .. }));
    let revoked = drone(&dir, server.local_addr(), "drone-2", &bad);
    assert!(matches!(
        verdict(&revoked),
        ClientEvent::Disconnected {
            cause: Disconnect::Tls(_),
            ..
        }
    ));
    ok.close();
    revoked.close();
    server.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
