//! MQTT fan-out of a ground station, the sans-IO part: broker URLs, topic names, the
//! mapping from what the ground core emits to MQTT messages, the JSON command format and
//! the bounded publish queue with its acknowledgement bookkeeping.
//!
//! Nothing here touches a socket, a thread or a clock (times are passed in); the rumqttc
//! client that carries the messages lives in [`crate::node::mqtt`].
//!
//! # Topics
//!
//! `sarlink/<ground>/<node>/<kind>`, with `<kind>` one of [`Kind`]: `rssi`, `decision`,
//! `status`, `alert`, `cmd`, `ack`. `<ground>` and `<node>` are node names escaped by
//! [`escape_level`] (`%`, `+`, `#`, `/` and control characters become `%XX`), so every name
//! is exactly one topic level and no name is a wildcard. The ground's own records, status
//! and alerts use the ground as `<node>`.
//!
//! # Payloads
//!
//! One UTF-8 JSON object per message, never a batch:
//! - `rssi` and `decision`: exactly the object the JSON-lines output writes for that record
//!   or decision ([`crate::output::jsonl_line`], without the line break).
//! - `status`, `alert`, `ack`: objects with `"type"` set to that kind (see
//!   [`GroundStatus`], [`Alert`], [`ack_message`]).
//!
//! Every message is published with QoS 1 (at least once). `status` and `decision` are
//! retained. A subscriber removes the duplicates QoS 1 allows by these keys:
//! `rssi` by (`node`, `stream`, `seq`); `decision` by (`node`, `timestamp_ns`); `alert` by
//! (`node`, `kind`, `timestamp_ns`); `ack` by (`node`, `id`); `status` is a state, the
//! newest wins.
//!
//! # Commands
//!
//! A message on `sarlink/<ground>/<node>/cmd` (subscribed only with `--mqtt-commands`) is
//! `{"id": 7, "op": "tune", "value": "406.028e6"}`: `id` a number 0..2^32 that the answer
//! carries, `op` and `value` as the words of `sarlink-ground cmd` (`tune FREQ`, `gain DB`,
//! `gain auto`, `rate HZ`, `stream on|off`; `value` a string or a number). See
//! [`parse_command`].

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use sarlink_schema::{Ack, Cmd, NodeName};

use crate::ground::{DroneTrack, GroundEvent, GroundOutput};
use crate::output::{Entry, iso_time, jsonl_line};

/// The first topic level of every sarlink topic.
pub const TOPIC_ROOT: &str = "sarlink";

/// The MQTT broker port without TLS.
pub const DEFAULT_PORT: u16 = 1883;

/// The MQTT broker port with TLS.
pub const DEFAULT_TLS_PORT: u16 = 8883;

/// A password: compared and moved, never printed (`Debug` and `Display` show `***`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `text`.
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The secret text, for handing to the client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A broker address parsed from `mqtt://[USER[:PASSWORD]@]HOST[:PORT]` or `mqtts://...`.
///
/// `Display` writes the URL back with the password as `***`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttUrl {
    /// `mqtts://`: TLS (rustls).
    pub tls: bool,
    /// Host name or IP address (IPv6 without its brackets).
    pub host: String,
    /// Port: from the URL, else 1883 (`mqtt`) or 8883 (`mqtts`).
    pub port: u16,
    /// User name, percent-decoded.
    pub username: Option<String>,
    /// Password, percent-decoded.
    pub password: Option<Secret>,
}

impl fmt::Display for MqttUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", if self.tls { "mqtts" } else { "mqtt" })?;
        if let Some(user) = &self.username {
            f.write_str(&percent_encode_userinfo(user))?;
            if self.password.is_some() {
                f.write_str(":***")?;
            }
            f.write_str("@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A broker URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// Not `mqtt://` or `mqtts://`.
    #[error("scheme {scheme:?} is not supported: use mqtt:// or mqtts://")]
    Scheme {
        /// What was given before `://` (empty when there is no `://`).
        scheme: String,
    },
    /// No host after the scheme (and user info).
    #[error("the URL names no host")]
    MissingHost,
    /// The port is not a number 1-65535.
    #[error("port {port:?} is not a number from 1 to 65535")]
    BadPort {
        /// The text given.
        port: String,
    },
    /// A path, query or fragment: the broker URL has none.
    #[error("unexpected {rest:?} after the host: a broker URL has no path, query or fragment")]
    Trailing {
        /// What follows the host and port.
        rest: String,
    },
    /// A `%` not followed by two hex digits, or percent-decoding gives invalid UTF-8.
    #[error("bad percent-encoding in the user name or password")]
    BadEscape,
    /// `[` without a closing `]` in an IPv6 host.
    #[error("unclosed [ in the host")]
    UnclosedBracket,
}

impl std::str::FromStr for MqttUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<MqttUrl, UrlError> {
        parse_url(s)
    }
}

/// Parses a broker URL: `mqtt://` or `mqtts://`, optional `USER[:PASSWORD]@` (both
/// percent-decoded, so `%40` is `@`), a host (IPv6 in brackets), an optional port.
///
/// # Errors
/// A [`UrlError`] saying which part is wrong.
///
/// # Examples
/// ```
/// use sarlink_station::mqtt::parse_url;
/// let url = parse_url("mqtts://ops:s%40cret@broker.example:8884")?;
/// assert_eq!((url.tls, url.host.as_str(), url.port), (true, "broker.example", 8884));
/// assert_eq!(url.password.as_ref().map(|p| p.expose()), Some("s@cret"));
/// assert_eq!(url.to_string(), "mqtts://ops:***@broker.example:8884");
/// # Ok::<(), sarlink_station::mqtt::UrlError>(())
/// ```
pub fn parse_url(s: &str) -> Result<MqttUrl, UrlError> {
    let (scheme, rest) = s.split_once("://").ok_or_else(|| UrlError::Scheme {
        scheme: String::new(),
    })?;
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "mqtt" | "tcp" => false,
        "mqtts" | "ssl" => true,
        _ => {
            return Err(UrlError::Scheme {
                scheme: scheme.to_owned(),
            });
        }
    };
    // The authority ends at the first `/`, `?` or `#`; only a lone trailing `/` is allowed.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if !tail.is_empty() && tail != "/" {
        return Err(UrlError::Trailing {
            rest: tail.to_owned(),
        });
    }
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => (
                Some(percent_decode(user)?),
                Some(Secret(percent_decode(pass)?)),
            ),
            None => (Some(percent_decode(u)?), None),
        },
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or(UrlError::UnclosedBracket)?;
        match after {
            "" => (host, None),
            p => match p.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => {
                    return Err(UrlError::Trailing { rest: p.to_owned() });
                }
            },
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::MissingHost);
    }
    let port = match port {
        None => {
            if tls {
                DEFAULT_TLS_PORT
            } else {
                DEFAULT_PORT
            }
        }
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(UrlError::BadPort { port: p.to_owned() }),
        },
    };
    Ok(MqttUrl {
        tls,
        host: host.to_owned(),
        port,
        username,
        password,
    })
}

fn percent_decode(s: &str) -> Result<String, UrlError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(UrlError::BadEscape)?;
            let hex = std::str::from_utf8(hex).map_err(|_| UrlError::BadEscape)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| UrlError::BadEscape)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UrlError::BadEscape)
}

fn percent_encode_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A node name as one topic level: `%`, `+`, `#`, `/`, and control characters (U+0000 -
/// U+001F, U+007F) become `%XX` (upper-case hex); everything else is kept. The result is
/// never empty (names are 1-64 bytes), holds no wildcard and no level separator, and
/// [`unescape_level`] gives the name back.
///
/// # Examples
/// ```
/// use sarlink_station::mqtt::escape_level;
/// assert_eq!(escape_level("drone-1"), "drone-1");
/// assert_eq!(escape_level("a/b+c#d%"), "a%2Fb%2Bc%23d%25");
/// ```
pub fn escape_level(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '%' | '+' | '#' | '/' | '\u{0}'..='\u{1f}' | '\u{7f}' => {
                out.push_str(&format!("%{:02X}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out
}

/// The name a topic level escaped by [`escape_level`] stands for; `None` when `level` is
/// not such an escape (a bad `%XX`, or an unescaped `+`, `#` or `/`).
pub fn unescape_level(level: &str) -> Option<String> {
    if level.contains(['+', '#', '/']) {
        return None;
    }
    percent_decode(level).ok()
}

/// What a topic carries: its last level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// RSSI records, one per message.
    Rssi,
    /// A drone's coordinator decisions (retained: the newest stays).
    Decision,
    /// The ground's or a drone's state (retained).
    Status,
    /// Something an operator should look at ([`AlertKind`]).
    Alert,
    /// Operator commands in (only with `--mqtt-commands`).
    Cmd,
    /// Answers to those commands.
    Ack,
}

impl Kind {
    /// The topic level.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Rssi => "rssi",
            Kind::Decision => "decision",
            Kind::Status => "status",
            Kind::Alert => "alert",
            Kind::Cmd => "cmd",
            Kind::Ack => "ack",
        }
    }
}

/// The topics of one ground station: `sarlink/<ground>/<node>/<kind>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    ground: Arc<str>,
    /// `sarlink/<escaped ground>/`
    prefix: String,
}

impl Topics {
    /// Topics of ground `ground`.
    pub fn new(ground: &NodeName) -> Topics {
        Topics {
            ground: Arc::from(ground.as_str()),
            prefix: format!("{TOPIC_ROOT}/{}/", escape_level(ground.as_str())),
        }
    }

    /// The ground's node name.
    pub fn ground(&self) -> &Arc<str> {
        &self.ground
    }

    /// The topic of `kind` for `node`.
    ///
    /// # Examples
    /// ```
    /// use sarlink_schema::NodeName;
    /// use sarlink_station::mqtt::{Kind, Topics};
    /// let topics = Topics::new(&NodeName::new("ground-a")?);
    /// assert_eq!(topics.topic("drone/7", Kind::Rssi), "sarlink/ground-a/drone%2F7/rssi");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn topic(&self, node: &str, kind: Kind) -> String {
        let node = escape_level(node);
        let mut t = String::with_capacity(self.prefix.len() + node.len() + 9);
        t.push_str(&self.prefix);
        t.push_str(&node);
        t.push('/');
        t.push_str(kind.as_str());
        t
    }

    /// The filter the ground subscribes to for commands: `sarlink/<ground>/+/cmd`.
    pub fn command_filter(&self) -> String {
        format!("{}+/{}", self.prefix, Kind::Cmd.as_str())
    }

    /// The drone a command topic addresses: `Some(node)` for
    /// `sarlink/<this ground>/<escaped node>/cmd`, `None` for any other topic.
    pub fn command_target(&self, topic: &str) -> Option<String> {
        let node = topic
            .strip_prefix(self.prefix.as_str())?
            .strip_suffix("/cmd")?;
        unescape_level(node)
    }
}

/// One message for the broker. Every sarlink message is published with QoS 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttMessage {
    /// Its topic.
    pub topic: String,
    /// The JSON object, UTF-8, no trailing line break.
    pub payload: Vec<u8>,
    /// Whether the broker keeps it as the topic's last message.
    pub retain: bool,
}

/// The alerts a ground publishes on `.../alert`. New kinds are added here (the enum is
/// non-exhaustive) and mapped in [`map_output`] or raised by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AlertKind {
    /// Writing the output failed: records are no longer acknowledged to drones.
    OutputFailed,
    /// The output is written again.
    OutputRestored,
    /// A drone refused an operator command.
    CommandRefused,
    /// The MQTT publish queue was full: messages were dropped (`count` says how many since
    /// the last such alert).
    MqttOverflow,
    /// One of the ground's threshold alerts was raised (`severity` `warning` or
    /// `critical`) or cleared (`cleared`); `metric` names it (`cpu`, `memory`,
    /// `temperature`, `output_errors`).
    Threshold,
    /// The ground's degradation controller shed (`severity` `warning`) or restored
    /// (`cleared`) features; `reason` names them, the level and the readings. On a drone's
    /// topic: the drone's `status` reported a new level (`cleared` when back to normal).
    Degradation,
}

impl AlertKind {
    /// The `kind` field of the alert's payload.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::OutputFailed => "output_failed",
            AlertKind::OutputRestored => "output_restored",
            AlertKind::CommandRefused => "command_refused",
            AlertKind::MqttOverflow => "mqtt_overflow",
            AlertKind::Threshold => "threshold",
            AlertKind::Degradation => "degradation",
        }
    }
}

/// An alert: `{"type":"alert","node":..,"kind":..,"timestamp_ns":..,"time":..,"reason":..}`
/// plus `count` for [`AlertKind::MqttOverflow`], `id` for [`AlertKind::CommandRefused`],
/// and `metric` and `severity` for [`AlertKind::Threshold`] (`severity` also for
/// [`AlertKind::Degradation`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// The node it concerns (the ground itself, or a drone).
    pub node: Arc<str>,
    /// What happened.
    pub kind: AlertKind,
    /// When the ground noticed, ns since the Unix epoch.
    pub timestamp_ns: i64,
    /// Why, for humans.
    pub reason: Option<String>,
    /// A count that goes with the kind (messages dropped).
    pub count: Option<u64>,
    /// The command id that goes with the kind.
    pub id: Option<u32>,
    /// The metric of a threshold alert (`cpu`, `link_rtt`, ...).
    pub metric: Option<&'static str>,
    /// `warning`, `critical` or `cleared`.
    pub severity: Option<&'static str>,
}

impl Alert {
    /// The message on `sarlink/<ground>/<node>/alert`.
    pub fn message(&self, topics: &Topics) -> MqttMessage {
        let mut p = Vec::with_capacity(160);
        p.extend_from_slice(b"{\"type\":\"alert\",\"node\":");
        json_str(&mut p, &self.node);
        p.extend_from_slice(b",\"kind\":");
        json_str(&mut p, self.kind.as_str());
        p.extend_from_slice(
            format!(
                ",\"timestamp_ns\":{},\"time\":\"{}\"",
                self.timestamp_ns,
                iso_time(self.timestamp_ns)
            )
            .as_bytes(),
        );
        if let Some(reason) = &self.reason {
            p.extend_from_slice(b",\"reason\":");
            json_str(&mut p, reason);
        }
        if let Some(count) = self.count {
            p.extend_from_slice(format!(",\"count\":{count}").as_bytes());
        }
        if let Some(id) = self.id {
            p.extend_from_slice(format!(",\"id\":{id}").as_bytes());
        }
        if let Some(metric) = self.metric {
            p.extend_from_slice(b",\"metric\":");
            json_str(&mut p, metric);
        }
        if let Some(severity) = self.severity {
            p.extend_from_slice(b",\"severity\":");
            json_str(&mut p, severity);
        }
        p.push(b'}');
        MqttMessage {
            topic: topics.topic(&self.node, Kind::Alert),
            payload: p,
            retain: false,
        }
    }
}

fn json_str(b: &mut Vec<u8>, s: &str) {
    // serde_json escapes quotes, backslashes and every control character.
    let _ = serde_json::to_writer(&mut *b, s);
}

/// The MQTT message for one output of the ground core, or `None` for outputs that are not
/// published (sends, relays, confirmations; a decision event, whose `Write` is published).
/// `now_ns` (ns since the Unix epoch) stamps alerts.
///
/// - `Write(Record)` -> `.../<node>/rssi`, the JSON-lines object.
/// - `Write(Decision)` -> `.../<node>/decision`, the JSON-lines object, retained.
/// - `Event(Output)` -> `.../<ground>/alert`, `output_failed` or `output_restored`.
/// - `Event(Refused)` -> `.../<drone>/alert`, `command_refused`.
/// - `Event(Alert)` -> `.../<ground>/alert`, `threshold` with `metric` and `severity`.
/// - `Event(Degradation)` -> `.../<ground>/alert`, `degradation`.
/// - `Event(DroneLevel)` -> `.../<drone>/alert`, `degradation` (`cleared` back to normal).
/// - `Event(DroneAlert)` -> `.../<drone>/alert`, `threshold` with `metric` (when the kind is
///   one sarlink knows) and `severity`.
/// - `RemoteAck` -> `.../<drone>/ack` ([`ack_message`]).
pub fn map_output(topics: &Topics, out: &GroundOutput, now_ns: i64) -> Option<MqttMessage> {
    match out {
        GroundOutput::Write(entry) => Some(entry_message(topics, entry)),
        GroundOutput::Event(GroundEvent::Output { ok, reason }) => Some(
            Alert {
                node: Arc::clone(topics.ground()),
                kind: if *ok {
                    AlertKind::OutputRestored
                } else {
                    AlertKind::OutputFailed
                },
                timestamp_ns: now_ns,
                reason: reason.clone(),
                count: None,
                id: None,
                metric: None,
                severity: None,
            }
            .message(topics),
        ),
        GroundOutput::Event(GroundEvent::Refused { node, ack }) => Some(
            Alert {
                node: Arc::clone(node),
                kind: AlertKind::CommandRefused,
                timestamp_ns: now_ns,
                reason: Some(match (&ack.code, &ack.reason) {
                    (Some(code), Some(r)) => format!("{}: {r}", code.as_str()),
                    (Some(code), None) => code.as_str().to_owned(),
                    (None, Some(r)) => r.clone(),
                    (None, None) => "refused".to_owned(),
                }),
                count: None,
                id: Some(ack.id),
                metric: None,
                severity: None,
            }
            .message(topics),
        ),
        GroundOutput::Event(GroundEvent::Alert(a)) => Some(
            Alert {
                node: Arc::clone(topics.ground()),
                kind: AlertKind::Threshold,
                timestamp_ns: now_ns,
                reason: Some(a.to_string()),
                count: None,
                id: None,
                metric: Some(a.kind.as_str()),
                severity: Some(crate::monitoring::severity_name(a.severity)),
            }
            .message(topics),
        ),
        GroundOutput::Event(GroundEvent::Degradation {
            event,
            features,
            level,
            readings,
        }) => Some(
            Alert {
                node: Arc::clone(topics.ground()),
                kind: AlertKind::Degradation,
                timestamp_ns: now_ns,
                reason: Some(crate::monitoring::degradation_text(
                    event, features, level, readings,
                )),
                count: None,
                id: None,
                metric: None,
                severity: Some(match event.action {
                    sarlink_monitor::degradation::Action::Enable(_) => "cleared",
                    _ => "warning",
                }),
            }
            .message(topics),
        ),
        GroundOutput::Event(GroundEvent::DroneLevel {
            node,
            level,
            disabled,
        }) => Some(
            Alert {
                node: Arc::clone(node),
                kind: AlertKind::Degradation,
                timestamp_ns: now_ns,
                reason: Some(if disabled.is_empty() {
                    level.clone()
                } else {
                    format!("{level} (shed: {})", disabled.join(", "))
                }),
                count: None,
                id: None,
                metric: None,
                severity: Some(if level == "normal" {
                    "cleared"
                } else {
                    "warning"
                }),
            }
            .message(topics),
        ),
        GroundOutput::Event(GroundEvent::DroneAlert {
            node,
            kind,
            severity,
        }) => Some(
            Alert {
                node: Arc::clone(node),
                kind: AlertKind::Threshold,
                timestamp_ns: now_ns,
                reason: Some(format!("{kind} {severity} on the drone")),
                count: None,
                id: None,
                metric: sarlink_monitor::thresholds::MetricKind::ALL
                    .iter()
                    .find(|k| k.as_str() == kind)
                    .map(|k| k.as_str()),
                severity: Some(match severity.as_str() {
                    "critical" => "critical",
                    "cleared" => "cleared",
                    _ => "warning",
                }),
            }
            .message(topics),
        ),
        GroundOutput::RemoteAck { node, ack } => Some(ack_message(topics, node, ack)),
        _ => None,
    }
}

/// A record or decision as its JSON-lines object on `.../rssi` or `.../decision`.
pub fn entry_message(topics: &Topics, entry: &Entry) -> MqttMessage {
    let mut payload = Vec::with_capacity(320);
    jsonl_line(entry, &mut payload);
    if payload.last() == Some(&b'\n') {
        payload.pop();
    }
    let (node, kind, retain) = match entry {
        Entry::Record { node, .. } => (node, Kind::Rssi, false),
        Entry::Decision { node, .. } => (node, Kind::Decision, true),
    };
    MqttMessage {
        topic: topics.topic(node, kind),
        payload,
        retain,
    }
}

/// The answer to an MQTT command, on `sarlink/<ground>/<node>/ack`:
/// `{"type":"ack","node":..,"id":..,"ok":..,"code":..,"reason":..}` (`code` and `reason`
/// only when refused).
pub fn ack_message(topics: &Topics, node: &str, ack: &Ack) -> MqttMessage {
    let mut p = Vec::with_capacity(128);
    p.extend_from_slice(b"{\"type\":\"ack\",\"node\":");
    json_str(&mut p, node);
    p.extend_from_slice(format!(",\"id\":{},\"ok\":{}", ack.id, ack.ok).as_bytes());
    if let Some(code) = &ack.code {
        p.extend_from_slice(b",\"code\":");
        json_str(&mut p, code.as_str());
    }
    if let Some(reason) = &ack.reason {
        p.extend_from_slice(b",\"reason\":");
        json_str(&mut p, reason);
    }
    p.push(b'}');
    MqttMessage {
        topic: topics.topic(node, Kind::Ack),
        payload: p,
        retain: false,
    }
}

/// The ground's own state on `sarlink/<ground>/<ground>/status` (retained). The last-will
/// message is [`GroundStatus::offline_message`].
#[derive(Debug, Clone, PartialEq)]
pub struct GroundStatus {
    /// When, ns since the Unix epoch.
    pub timestamp_ns: i64,
    /// Drones known.
    pub drones: usize,
    /// Drones and observers connected.
    pub connections: usize,
    /// Records received from drones.
    pub records: u64,
    /// Whether the output is written.
    pub output_ok: bool,
    /// The publish queue's counters.
    pub queue: QueueStats,
}

impl GroundStatus {
    /// `{"type":"status","node":..,"online":true,"timestamp_ns":..,"time":..,"drones":..,
    /// "connections":..,"records":..,"output_ok":..,"mqtt_queued":..,"mqtt_in_flight":..,
    /// "mqtt_published":..,"mqtt_overflow":..}`, retained.
    pub fn message(&self, topics: &Topics) -> MqttMessage {
        let ground = topics.ground();
        let mut p = Vec::with_capacity(256);
        p.extend_from_slice(b"{\"type\":\"status\",\"node\":");
        json_str(&mut p, ground);
        let q = &self.queue;
        p.extend_from_slice(
            format!(
                ",\"online\":true,\"timestamp_ns\":{},\"time\":\"{}\",\"drones\":{},\"connections\":{},\"records\":{},\"output_ok\":{},\"mqtt_queued\":{},\"mqtt_in_flight\":{},\"mqtt_published\":{},\"mqtt_overflow\":{}}}",
                self.timestamp_ns,
                iso_time(self.timestamp_ns),
                self.drones,
                self.connections,
                self.records,
                self.output_ok,
                q.queued,
                q.in_flight,
                q.published,
                q.overflow
            )
            .as_bytes(),
        );
        MqttMessage {
            topic: topics.topic(ground, Kind::Status),
            payload: p,
            retain: true,
        }
    }

    /// `{"type":"status","node":..,"online":false}`, retained: the last will (the broker
    /// publishes it when the ground goes away without saying goodbye) and the ground's last
    /// message on a clean shutdown.
    pub fn offline_message(topics: &Topics) -> MqttMessage {
        let ground = topics.ground();
        let mut p = Vec::with_capacity(64);
        p.extend_from_slice(b"{\"type\":\"status\",\"node\":");
        json_str(&mut p, ground);
        p.extend_from_slice(b",\"online\":false}");
        MqttMessage {
            topic: topics.topic(ground, Kind::Status),
            payload: p,
            retain: true,
        }
    }
}

/// A drone's state as its ground sees it, on `sarlink/<ground>/<drone>/status` (retained):
/// `{"type":"status","node":..,"ground":..,"timestamp_ns":..,"connected":..,"link":..,
/// "records":..,"gaps":..,"duplicates":..,"decisions":..,"rtt_ms":..,"quality":..}`. It is
/// as fresh as the ground's own status says: when that is `online: false`, this is stale.
pub fn drone_status_message(topics: &Topics, track: &DroneTrack, now_ns: i64) -> MqttMessage {
    let mut p = Vec::with_capacity(256);
    p.extend_from_slice(b"{\"type\":\"status\",\"node\":");
    json_str(&mut p, &track.node);
    p.extend_from_slice(b",\"ground\":");
    json_str(&mut p, topics.ground());
    p.extend_from_slice(
        format!(
            ",\"timestamp_ns\":{now_ns},\"connected\":{},\"link\":\"{:?}\",\"records\":{},\"gaps\":{},\"duplicates\":{},\"decisions\":{},\"rtt_ms\":{},\"quality\":{}",
            track.conn.is_some(),
            track.link,
            track.received,
            track.gaps,
            track.duplicates,
            track.decisions,
            track
                .rtt
                .map_or("null".to_owned(), |r| format!("{:.3}", r.as_secs_f64() * 1e3)),
            track.quality.map_or("null".to_owned(), |q| q.to_string()),
        )
        .as_bytes(),
    );
    // From the drone's own latest `status`: its degradation and load.
    if let Some(st) = &track.status {
        p.extend_from_slice(b",\"level\":");
        json_str(&mut p, &st.level);
        p.extend_from_slice(b",\"disabled\":");
        let _ = serde_json::to_writer(&mut p, &st.disabled);
        let num = |x: f32| {
            if x.is_finite() {
                format!("{x}")
            } else {
                "null".to_owned()
            }
        };
        p.extend_from_slice(
            format!(
                ",\"cpu_pct\":{},\"temp_c\":{},\"rate_hz\":{},\"queued\":{}",
                num(st.cpu_pct),
                st.temp_c.map_or("null".to_owned(), num),
                num(st.rate_hz),
                st.queued
            )
            .as_bytes(),
        );
    }
    p.push(b'}');
    MqttMessage {
        topic: topics.topic(&track.node, Kind::Status),
        payload: p,
        retain: true,
    }
}

/// An MQTT command that cannot be relayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The payload is not a JSON object.
    #[error("the command is not a JSON object: {reason}")]
    Json {
        /// What the JSON parser said.
        reason: String,
    },
    /// `id` is missing or not a whole number 0 to 4294967295.
    #[error("the command needs an `id` from 0 to 4294967295")]
    Id,
    /// `op` is missing or not a string.
    #[error("the command needs an `op`: tune, gain, rate or stream")]
    Op,
    /// `op` and `value` do not make a command.
    #[error("{reason}")]
    Invalid {
        /// The command's id (the answer can carry it).
        id: u32,
        /// Why.
        reason: String,
    },
    /// The topic's node is not a valid node name.
    #[error("the command's topic names no valid drone")]
    Target,
}

/// Parses an MQTT command for drone `target`. See the module documentation for the
/// format.
///
/// # Errors
/// A [`CommandError`]; [`CommandError::Invalid`] carries the id so the refusal can be
/// published as an `ack`.
///
/// # Examples
/// ```
/// use sarlink_schema::CmdOp;
/// use sarlink_station::mqtt::parse_command;
/// let cmd = parse_command(br#"{"id": 7, "op": "stream", "value": "off"}"#, "drone-1")?;
/// assert_eq!((cmd.id, cmd.op), (7, CmdOp::Stream { on: false }));
/// # Ok::<(), sarlink_station::mqtt::CommandError>(())
/// ```
pub fn parse_command(payload: &[u8], target: &str) -> Result<Cmd, CommandError> {
    let v: serde_json::Value = serde_json::from_slice(payload).map_err(|e| CommandError::Json {
        reason: e.to_string(),
    })?;
    let obj = v.as_object().ok_or_else(|| CommandError::Json {
        reason: "not an object".to_owned(),
    })?;
    let id = obj
        .get("id")
        .and_then(serde_json::Value::as_u64)
        .and_then(|i| u32::try_from(i).ok())
        .ok_or(CommandError::Id)?;
    let op = obj
        .get("op")
        .and_then(serde_json::Value::as_str)
        .ok_or(CommandError::Op)?;
    let mut words = vec![op.to_owned()];
    match obj.get("value") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::String(s)) => words.push(s.clone()),
        Some(serde_json::Value::Number(n)) => words.push(n.to_string()),
        Some(serde_json::Value::Bool(b)) => words.push(if *b { "on" } else { "off" }.to_owned()),
        Some(other) => {
            return Err(CommandError::Invalid {
                id,
                reason: format!("`value` must be a string or a number, not {other}"),
            });
        }
    }
    let op = crate::cmd::parse_op(&words).map_err(|reason| CommandError::Invalid { id, reason })?;
    let target = NodeName::new(target).map_err(|_| CommandError::Target)?;
    Ok(Cmd {
        id,
        target: Some(target),
        op,
    })
}

/// Counters of a [`PublishQueue`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Messages held: waiting, or handed to the client and not yet acknowledged.
    pub queued: usize,
    /// Of those, handed to the client and not yet acknowledged by the broker.
    pub in_flight: usize,
    /// Messages the broker acknowledged (PUBACK).
    pub published: u64,
    /// Messages dropped because the queue was full.
    pub overflow: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    /// Not yet handed to the client.
    Waiting,
    /// Handed to the client, not yet written to the network.
    Handed,
    /// Written with this packet id, not yet acknowledged.
    Sent(u16),
}

/// The bounded queue between the ground core and the MQTT client, with the bookkeeping
/// that makes a broker outage lose nothing: a message leaves the queue only when the broker
/// acknowledges it (PUBACK); after a reconnection everything unacknowledged is handed to
/// the client again, oldest first.
///
/// Call order (the driver's): [`push`](Self::push) new messages; while connected,
/// [`next_waiting`](Self::next_waiting) then [`handed`](Self::handed) for each message the
/// client accepts; [`sent`](Self::sent) for each publish the client writes (its packet
/// id), in order; [`acked`](Self::acked) for each PUBACK; [`reconnected`](Self::reconnected)
/// on every new connection (the client kept nothing of the old one).
///
/// The entries are always ordered: sent ones, then handed ones, then waiting ones. When
/// the queue is full, [`push`](Self::push) drops the oldest waiting message (or, when every
/// held message is in flight, the new one) and counts it in [`QueueStats::overflow`].
#[derive(Debug)]
pub struct PublishQueue {
    slots: VecDeque<(MqttMessage, SlotState)>,
    capacity: usize,
    sent: usize,
    handed: usize,
    published: u64,
    overflow: u64,
}

impl PublishQueue {
    /// A queue holding at most `capacity` messages (at least 1).
    pub fn new(capacity: usize) -> PublishQueue {
        PublishQueue {
            slots: VecDeque::new(),
            capacity: capacity.max(1),
            sent: 0,
            handed: 0,
            published: 0,
            overflow: 0,
        }
    }

    /// Adds `msg` at the back. Returns the message dropped to make room, if any (counted as
    /// overflow): the oldest waiting one, or `msg` itself when every held message is in
    /// flight.
    pub fn push(&mut self, msg: MqttMessage) -> Option<MqttMessage> {
        if self.slots.len() < self.capacity {
            self.slots.push_back((msg, SlotState::Waiting));
            return None;
        }
        self.overflow += 1;
        let first_waiting = self.sent + self.handed;
        if first_waiting < self.slots.len() {
            let dropped = self.slots.remove(first_waiting).map(|(m, _)| m);
            self.slots.push_back((msg, SlotState::Waiting));
            dropped
        } else {
            Some(msg)
        }
    }

    /// The oldest message not yet handed to the client.
    pub fn next_waiting(&self) -> Option<&MqttMessage> {
        self.slots.get(self.sent + self.handed).map(|(m, _)| m)
    }

    /// The client accepted the message [`next_waiting`](Self::next_waiting) returned.
    pub fn handed(&mut self) {
        if let Some(slot) = self.slots.get_mut(self.sent + self.handed) {
            slot.1 = SlotState::Handed;
            self.handed += 1;
        }
    }

    /// The client wrote the oldest handed message with packet id `pkid`.
    pub fn sent(&mut self, pkid: u16) {
        if self.handed == 0 {
            return;
        }
        if let Some(slot) = self.slots.get_mut(self.sent) {
            slot.1 = SlotState::Sent(pkid);
            self.sent += 1;
            self.handed -= 1;
        }
    }

    /// The broker acknowledged packet `pkid`: its message leaves the queue. Returns whether
    /// a sent message had that id.
    pub fn acked(&mut self, pkid: u16) -> bool {
        let found = self
            .slots
            .iter()
            .take(self.sent)
            .position(|(_, s)| *s == SlotState::Sent(pkid));
        match found {
            Some(i) => {
                self.slots.remove(i);
                self.sent -= 1;
                self.published += 1;
                true
            }
            None => false,
        }
    }

    /// A new connection: everything handed or sent and not acknowledged waits again, in
    /// its order, to be handed again (the broker may then see some twice: QoS 1).
    pub fn reconnected(&mut self) {
        for slot in self.slots.iter_mut().take(self.sent + self.handed) {
            slot.1 = SlotState::Waiting;
        }
        self.sent = 0;
        self.handed = 0;
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Counters.
    pub fn stats(&self) -> QueueStats {
        QueueStats {
            queued: self.slots.len(),
            in_flight: self.sent + self.handed,
            published: self.published,
            overflow: self.overflow,
        }
    }
}

#[cfg(test)]
mod tests;
