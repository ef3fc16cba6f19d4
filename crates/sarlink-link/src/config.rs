//! Session configuration.

use std::time::Duration;

use sarlink_schema::{NodeName, ProtocolVersion, Role, RssiUnits};
use sarlink_wire::{DEFAULT_COMPRESSION_THRESHOLD, MAX_MESSAGE};

use crate::auth::PreSharedKey;
use crate::rate::CongestionConfig;

/// Configuration of one [`Session`](crate::Session) (client or server).
///
/// Every field has a documented default; build with [`SessionConfig::new`] and adjust the
/// public fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Our role, announced in `hello` by a client.
    pub role: Role,
    /// Our node name.
    pub node: NodeName,
    /// Our sample stream id: random per sender process, the same across reconnects.
    pub stream: u64,
    /// Pre-shared key. A server with a key requires authentication; a client with a key
    /// requires the server to prove it. Default: none.
    pub key: Option<PreSharedKey>,
    /// Our protocol version. Default 1.1 (the optional record, status and welcome keys of
    /// 1.1 are ignored by 1.0 peers, so it speaks to both).
    pub version: ProtocolVersion,
    /// Offer and accept LZ4 compression. Default true.
    pub compression: bool,
    /// Payloads larger than this are compressed when that makes them smaller. Default 1024.
    pub compression_threshold: usize,
    /// Largest message we accept (announced as `max_message`). Default 16 MiB.
    pub max_message: u32,
    /// Units of our RSSI values, announced in `hello` by a client. Default: absent (dBm).
    pub rssi_units: Option<RssiUnits>,
    /// Roles a server accepts (others get `reject role`). Default: drone and observer.
    pub accept_roles: Vec<Role>,
    /// Handshake must complete within this. Default 5 s.
    pub handshake_timeout: Duration,
    /// The round trip is measured about this often once established: a `ping` rides with
    /// the first frame written from nine tenths of the interval on, and goes alone only
    /// when nothing at all was written for the whole interval (so a link never stays
    /// silent longer). Default 1 s.
    pub ping_interval: Duration,
    /// A link with no frame received for this long is lost. Default 3 s.
    pub liveness_timeout: Duration,
    /// A link with no frame received for this long is degraded. Default 1.5 s.
    pub degraded_after: Duration,
    /// A link whose latest RTT is above this is degraded. Default 250 ms.
    pub rtt_degraded: Duration,
    /// `rx` progress is sent at most this long after samples arrive (or, with
    /// [`confirm_delivery`](Self::confirm_delivery), after they are confirmed), and sooner
    /// when it can ride with any other frame. At most 1 s. Default 100 ms.
    pub rx_interval: Duration,
    /// Unacknowledged samples kept for resending. Default 65,536.
    pub sample_ring: usize,
    /// Bytes of encoded control and telemetry messages that may wait. Default 1 MiB.
    pub queue_bytes: usize,
    /// Most samples coalesced into one `rssi` message. Default 256.
    pub batch_max: usize,
    /// Optional bandwidth cap in bytes per second (token bucket). Default: none.
    pub bandwidth_cap: Option<u64>,
    /// Thresholds of the congestion advice. Default: see [`CongestionConfig`].
    pub congestion: CongestionConfig,
    /// Receiver side: acknowledge (`rx`) only what the application confirmed with
    /// [`Session::confirm`](crate::Session::confirm), e.g. written to its output, instead of
    /// everything received. Default false.
    pub confirm_delivery: bool,
    /// Receiver side: an `rssi` message starting more than this many samples beyond the
    /// next expected one is a protocol error (a sender skips only what its ring evicted).
    /// It closes the session without moving the resume position or delivering anything.
    /// Default 65,536, the default [`sample_ring`](Self::sample_ring).
    pub max_seq_ahead: u64,
    /// Receiver side: the fastest a sender produces samples, per second. While a stream is
    /// silent its window grows by this much each second, so a sender whose ring overflowed
    /// during a long outage is taken back, while a false claim still cannot move the
    /// position further than the stream can have produced. Default 1,000 (a hundred times
    /// the usual 10 Hz report rate).
    pub max_sample_rate: u64,
}

impl SessionConfig {
    /// Defaults for `role`, `node` and `stream`.
    pub fn new(role: Role, node: NodeName, stream: u64) -> Self {
        Self {
            role,
            node,
            stream,
            key: None,
            version: ProtocolVersion::V1_1,
            compression: true,
            compression_threshold: DEFAULT_COMPRESSION_THRESHOLD,
            max_message: MAX_MESSAGE,
            rssi_units: None,
            accept_roles: vec![Role::Drone, Role::Observer],
            handshake_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(1),
            liveness_timeout: Duration::from_secs(3),
            degraded_after: Duration::from_millis(1500),
            rtt_degraded: Duration::from_millis(250),
            rx_interval: Duration::from_millis(100),
            sample_ring: 65_536,
            queue_bytes: 1 << 20,
            batch_max: 256,
            bandwidth_cap: None,
            congestion: CongestionConfig::default(),
            confirm_delivery: false,
            max_seq_ahead: 65_536,
            max_sample_rate: 1_000,
        }
    }

    /// Sets the pre-shared key.
    pub fn with_key(mut self, key: PreSharedKey) -> Self {
        self.key = Some(key);
        self
    }
}
