//! The ground's MQTT publisher: the rumqttc client around a [`PublishQueue`].
//!
//! The ground's thread only ever calls [`MqttPublisher::publish`], which takes a mutex for
//! a push and wakes the publisher: it never waits for the broker. One private thread runs
//! rumqttc's event loop on a single-threaded tokio runtime (nothing async leaves this
//! module) and does the queue's bookkeeping: hand waiting messages to the client while
//! connected, note each packet id written, drop a message on its PUBACK, and after every
//! reconnection hand everything unacknowledged again, oldest first.
//!
//! The session is clean (`clean_session = true`): rumqttc then forgets what it held on a
//! new connection, and the queue, not rumqttc, is what survives an outage. Commands from
//! `sarlink/<ground>/+/cmd` (when enabled) are subscribed again on every connection and
//! delivered on [`MqttPublisher::commands`].

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS,
    TlsConfiguration, Transport,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sarlink_schema::Cmd;
use tokio::sync::Notify;

use crate::mqtt::{
    CommandError, GroundStatus, MqttMessage, MqttUrl, PublishQueue, QueueStats, Secret, Topics,
    parse_command,
};

/// Default capacity of the publish queue, in messages: 100 drones at 10 Hz for 100 s of
/// broker outage (about 40 MB at most).
pub const DEFAULT_QUEUE: usize = 100_000;

/// How a ground publishes to its broker.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    /// The broker (credentials in it are used unless given below).
    pub url: MqttUrl,
    /// User name; overrides the URL's.
    pub username: Option<String>,
    /// Password; overrides the URL's.
    pub password: Option<Secret>,
    /// PEM file with the CA certificates to trust for `mqtts://` (`None`: the system's).
    pub ca_file: Option<PathBuf>,
    /// PEM file with the client certificate chain (TLS client authentication).
    pub cert_file: Option<PathBuf>,
    /// PEM file with the client certificate's private key.
    pub key_file: Option<PathBuf>,
    /// MQTT client id (`None`: `sarlink-ground-NODE`).
    pub client_id: Option<String>,
    /// Publish queue capacity, messages (default [`DEFAULT_QUEUE`]).
    pub queue: usize,
    /// Subscribe to `sarlink/<ground>/+/cmd` and relay commands.
    pub commands: bool,
    /// MQTT keep-alive (default 10 s); the broker publishes the last will about 1.5 times
    /// this after the ground falls silent (at once when its connection closes).
    pub keep_alive: Duration,
}

impl MqttSettings {
    /// Settings for `url` with every other option at its default.
    pub fn new(url: MqttUrl) -> MqttSettings {
        MqttSettings {
            url,
            username: None,
            password: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            client_id: None,
            queue: DEFAULT_QUEUE,
            commands: false,
            keep_alive: Duration::from_secs(10),
        }
    }
}

/// Starting the publisher failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MqttError {
    /// A certificate or key file cannot be read or holds no usable PEM item.
    #[error("cannot use {what} file {path}: {reason}")]
    Pem {
        /// `CA`, `client certificate` or `client key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A client certificate without its key, or a key without its certificate.
    #[error("TLS client authentication needs both a certificate and a key file")]
    HalfClientAuth,
    /// Client certificate options given for `mqtt://` (no TLS).
    #[error("certificate options need an mqtts:// URL")]
    TlsOptionsWithoutTls,
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The publisher's thread or runtime could not start.
    #[error("cannot start the MQTT thread")]
    Thread(#[source] std::io::Error),
}

/// What the publisher thread and the ground's thread share.
#[derive(Debug)]
struct Shared {
    queue: Mutex<PublishQueue>,
    wake: Notify,
    connected: AtomicBool,
    stop: AtomicBool,
    stopped: Notify,
}

/// A running MQTT publisher. See the module documentation.
#[derive(Debug)]
pub struct MqttPublisher {
    shared: Arc<Shared>,
    topics: Topics,
    commands: Receiver<Result<Cmd, (String, CommandError)>>,
    thread: Option<JoinHandle<()>>,
}

impl MqttPublisher {
    /// Connects (in the background) to the broker for ground `topics.ground()`, with
    /// [`GroundStatus::offline_message`] as the last will.
    ///
    /// # Errors
    /// [`MqttError`] when the TLS files cannot be used or the thread cannot start. An
    /// unreachable broker is not an error: the publisher keeps trying, queueing meanwhile.
    pub fn start(settings: &MqttSettings, topics: Topics) -> Result<MqttPublisher, MqttError> {
        let client_id = settings.client_id.clone().unwrap_or_else(|| {
            let safe: String = topics
                .ground()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("sarlink-ground-{safe}")
        });
        let mut options = MqttOptions::new(client_id, settings.url.host.clone(), settings.url.port);
        options.set_keep_alive(settings.keep_alive.max(Duration::from_secs(1)));
        options.set_clean_session(true);
        let user = settings
            .username
            .clone()
            .or_else(|| settings.url.username.clone());
        let pass = settings
            .password
            .clone()
            .or_else(|| settings.url.password.clone());
        if let Some(user) = user {
            options.set_credentials(user, pass.as_ref().map_or("", Secret::expose));
        }
        let will = GroundStatus::offline_message(&topics);
        options.set_last_will(LastWill::new(
            will.topic,
            will.payload,
            QoS::AtLeastOnce,
            true,
        ));
        if settings.url.tls {
            let config = tls_config(settings)?;
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::new(config),
            )));
        } else if settings.cert_file.is_some()
            || settings.key_file.is_some()
            || settings.ca_file.is_some()
        {
            return Err(MqttError::TlsOptionsWithoutTls);
        }
        // rumqttc's request channel: small, the queue is the buffer.
        let (client, eventloop) = AsyncClient::new(options, 64);
        let shared = Arc::new(Shared {
            queue: Mutex::new(PublishQueue::new(settings.queue)),
            wake: Notify::new(),
            connected: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            stopped: Notify::new(),
        });
        let (tx, rx) = crossbeam_channel::bounded(1024);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(MqttError::Thread)?;
        let thread = {
            let shared = Arc::clone(&shared);
            let topics = topics.clone();
            let commands = settings.commands;
            let url = settings.url.to_string();
            std::thread::Builder::new()
                .name("sarlink-mqtt".into())
                .spawn(move || {
                    runtime.block_on(run(client, eventloop, shared, topics, commands, tx, url));
                })
                .map_err(MqttError::Thread)?
        };
        Ok(MqttPublisher {
            shared,
            topics,
            commands: rx,
            thread: Some(thread),
        })
    }

    /// Queues `msg` for the broker; never waits for it. When the queue is full the oldest
    /// waiting message is dropped and counted ([`QueueStats::overflow`]).
    pub fn publish(&self, msg: MqttMessage) {
        // What a full queue drops is counted there; the status and metrics report it.
        let _dropped = self.shared.queue.lock().push(msg);
        self.shared.wake.notify_one();
    }

    /// Queues every message of `msgs`, in order, under one lock and with one wake-up; as
    /// [`MqttPublisher::publish`] otherwise.
    pub fn publish_all(&self, msgs: impl IntoIterator<Item = MqttMessage>) {
        {
            let mut q = self.shared.queue.lock();
            for msg in msgs {
                let _dropped = q.push(msg);
            }
        }
        self.shared.wake.notify_one();
    }

    /// Commands received on `sarlink/<ground>/+/cmd`, or the command id (as text, when the
    /// payload had one) and why it cannot be relayed.
    pub fn commands(&self) -> &Receiver<Result<Cmd, (String, CommandError)>> {
        &self.commands
    }

    /// The topics.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// The queue's counters.
    pub fn stats(&self) -> QueueStats {
        self.shared.queue.lock().stats()
    }

    /// Whether the client is connected to the broker now.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// Publishes the ground's offline status (retained), waits up to `within` for the
    /// queue to empty, then disconnects. Returns the counters at the end (`queued` is what
    /// was left unpublished).
    pub fn shutdown(mut self, within: Duration) -> QueueStats {
        self.publish(GroundStatus::offline_message(&self.topics));
        let deadline = Instant::now() + within;
        while Instant::now() < deadline && !self.shared.queue.lock().is_empty() {
            std::thread::sleep(Duration::from_millis(10));
        }
        let stats = self.stats();
        self.stop();
        stats
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.stopped.notify_one();
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MqttPublisher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Hands waiting messages to the client while connected, until its channel is full.
fn pump(client: &AsyncClient, shared: &Shared) {
    if !shared.connected.load(Ordering::Relaxed) {
        return;
    }
    let mut q = shared.queue.lock();
    while let Some(m) = q.next_waiting() {
        let qos = QoS::AtLeastOnce;
        match client.try_publish(m.topic.clone(), qos, m.retain, m.payload.clone()) {
            Ok(()) => q.handed(),
            Err(_) => break,
        }
    }
}

async fn run(
    client: AsyncClient,
    mut eventloop: EventLoop,
    shared: Arc<Shared>,
    topics: Topics,
    commands: bool,
    tx: Sender<Result<Cmd, (String, CommandError)>>,
    url: String,
) {
    // Wakes on every `publish` and hands the new messages over while the event loop waits.
    let pumper = {
        let client = client.clone();
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            while !shared.stop.load(Ordering::Relaxed) {
                shared.wake.notified().await;
                pump(&client, &shared);
            }
        })
    };
    let mut backoff = Duration::from_millis(100);
    let mut down_since: Option<Instant> = Some(Instant::now());
    let mut logged_down = false;
    loop {
        let event = tokio::select! {
            e = eventloop.poll() => e,
            () = shared.stopped.notified() => {
                // Give an orderly DISCONNECT a moment to go out; the broker then keeps the
                // retained offline status published just before.
                let _ = client.try_disconnect();
                let _ = tokio::time::timeout(Duration::from_millis(500), async {
                    while let Ok(ev) = eventloop.poll().await {
                        if matches!(ev, Event::Outgoing(Outgoing::Disconnect)) {
                            break;
                        }
                    }
                })
                .await;
                break;
            }
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_millis(100);
                if let Some(since) = down_since.take() {
                    if logged_down {
                        tracing::warn!(
                            broker = %url,
                            after_s = since.elapsed().as_secs_f64(),
                            "connected to the MQTT broker again; publishing what was queued"
                        );
                    } else {
                        tracing::info!(broker = %url, "connected to the MQTT broker");
                    }
                }
                logged_down = false;
                // rumqttc keeps events of the old connection that were queued when it broke
                // and would return them after this ConnAck. Their packet ids belong to the
                // old connection: matched against the new one they would mark the wrong
                // messages sent or acknowledged. Drop them (keeping any command received).
                for stale in eventloop.state.events.drain(..).collect::<Vec<_>>() {
                    if let Event::Incoming(Packet::Publish(p)) = stale {
                        command(&topics, &tx, &p);
                    }
                }
                shared.queue.lock().reconnected();
                shared.connected.store(true, Ordering::Relaxed);
                if commands {
                    let _ = client.try_subscribe(topics.command_filter(), QoS::AtLeastOnce);
                }
                pump(&client, &shared);
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                shared.queue.lock().sent(pkid);
                pump(&client, &shared);
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                shared.queue.lock().acked(ack.pkid);
                pump(&client, &shared);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => command(&topics, &tx, &p),
            Ok(Event::Outgoing(Outgoing::Disconnect)) if shared.stop.load(Ordering::Relaxed) => {
                break;
            }
            Ok(_) => {}
            Err(e) => {
                shared.connected.store(false, Ordering::Relaxed);
                if shared.stop.load(Ordering::Relaxed) {
                    break;
                }
                if down_since.is_none() {
                    down_since = Some(Instant::now());
                }
                if !logged_down {
                    logged_down = true;
                    let queued = shared.queue.lock().stats().queued;
                    tracing::warn!(broker = %url, error = %describe(&e), queued, "MQTT broker unreachable; queueing and retrying");
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shared.stopped.notified() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
    shared.connected.store(false, Ordering::Relaxed);
    pumper.abort();
}

/// A message on a command topic: parsed and handed to the ground's thread.
fn command(
    topics: &Topics,
    tx: &Sender<Result<Cmd, (String, CommandError)>>,
    p: &rumqttc::Publish,
) {
    let Some(node) = topics.command_target(&p.topic) else {
        return;
    };
    let result = parse_command(&p.payload, &node).map_err(|e| (node, e));
    if tx.try_send(result).is_err() {
        tracing::warn!(topic = %p.topic, "MQTT command dropped: the ground is not taking commands fast enough");
    }
}

fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => format!("refused by the broker: {code:?}"),
        other => other.to_string(),
    }
}

fn read_pem(what: &'static str, path: &PathBuf) -> Result<Vec<u8>, MqttError> {
    std::fs::read(path).map_err(|e| MqttError::Pem {
        what,
        path: path.clone(),
        reason: e.to_string(),
    })
}

fn tls_config(settings: &MqttSettings) -> Result<rustls::ClientConfig, MqttError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    match &settings.ca_file {
        Some(path) => {
            let pem = read_pem("CA", path)?;
            let mut n = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| MqttError::Pem {
                    what: "CA",
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                roots.add(cert).map_err(|e| MqttError::Pem {
                    what: "CA",
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                n += 1;
            }
            if n == 0 {
                return Err(MqttError::Pem {
                    what: "CA",
                    path: path.clone(),
                    reason: "no CERTIFICATE in it".into(),
                });
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(MqttError::Tls(
                    "no system CA certificates found: give a CA file".into(),
                ));
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MqttError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    match (&settings.cert_file, &settings.key_file) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(cert), Some(key)) => {
            let pem = read_pem("client certificate", cert)?;
            let chain = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| MqttError::Pem {
                    what: "client certificate",
                    path: cert.clone(),
                    reason: e.to_string(),
                })?;
            if chain.is_empty() {
                return Err(MqttError::Pem {
                    what: "client certificate",
                    path: cert.clone(),
                    reason: "no CERTIFICATE in it".into(),
                });
            }
            let key_pem = read_pem("client key", key)?;
            let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| MqttError::Pem {
                what: "client key",
                path: key.clone(),
                reason: e.to_string(),
            })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| MqttError::Tls(e.to_string()))
        }
        _ => Err(MqttError::HalfClientAuth),
    }
}
