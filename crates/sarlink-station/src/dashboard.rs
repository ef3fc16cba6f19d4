//! What the operator's dashboard and the per-drone Prometheus series show, built on the data
//! plane's thread and handed to HTTP through a [`Hub`](crate::http::Hub).
//!
//! [`Dashboard`] is sans-IO: the driver passes `now` (wall-clock time since the Unix epoch)
//! and one [`DroneView`] per drone (the ground builds them from
//! [`DroneTrack`](crate::ground::DroneTrack)s, the drone from its own core), and takes out
//! the live JSON object ([`Dashboard::live_json`]) and the bounded chart history
//! ([`Dashboard::history`]). Changes between views become [`Alert`]s: a link lost or back, a
//! fallback begun or ended, a degradation level changed; the drivers add refused commands
//! and threshold alerts.
//!
//! ```
//! use std::time::Duration;
//! use sarlink_station::dashboard::{Dashboard, DroneView, LinkView};
//!
//! let mut board = Dashboard::new("ground", "ground");
//! let now = Duration::from_secs(1_764_000_000);
//! let mut view = DroneView::new("drone-1");
//! view.link = LinkView::Healthy;
//! board.update(now, view.clone());
//! view.link = LinkView::Lost;
//! board.update(now + Duration::from_secs(1), view);
//! let live = board.live_json(now + Duration::from_secs(1));
//! assert!(live.contains(r#""node":"drone-1","link":"lost""#));
//! assert!(live.contains("link lost"));
//! ```
//!
//! Extension points, empty on purpose until the data exists: pulse/detection events (the
//! beacon issue) and geotagged tracks coloured by RSSI (the MAVLink issue) will be further
//! fields of [`DroneView`] and further panels of the page (marked there); nothing is shown
//! for them today.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use sarlink_link::LinkState;
use sarlink_monitor::metrics::{Counter, Gauge, RegisterError, Registry};
use sarlink_schema::{RssiRecord, SourceId};
use serde::Serialize;

use crate::http::{History, HistoryPoint};

/// Chart points kept per drone: five minutes at one point per [`HISTORY_INTERVAL`].
pub const HISTORY_POINTS: usize = 300;
/// One chart point per drone per this interval goes into the history.
pub const HISTORY_INTERVAL: Duration = Duration::from_secs(1);
/// Alerts kept (the newest).
pub const ALERTS_KEPT: usize = 50;
/// Drones shown at most; one more is counted in [`Dashboard::hidden`] and not shown.
pub const MAX_DRONES: usize = 256;
/// How often the drivers publish: the default report rate, 10 Hz.
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

/// The newest reading of one receiver.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Reading {
    /// RSSI: dBm, or dBFS when the receiver is uncalibrated.
    pub rssi: f32,
    /// SNR, dB, when the estimator computed one.
    pub snr: Option<f32>,
    /// The record's timestamp, ms since the Unix epoch (the measuring node's clock).
    pub t_ms: i64,
}

impl Reading {
    /// The reading in `record`, rounded to 0.01 dB (finer than any receiver resolves; it
    /// keeps the live stream short).
    pub fn from_record(record: &RssiRecord) -> Reading {
        let centi = |v: f32| (v * 100.0).round() / 100.0;
        Reading {
            rssi: centi(record.rssi_dbm.get()),
            snr: record
                .snr_db
                .map(|s| centi(s.get()))
                .filter(|s| s.is_finite()),
            t_ms: record.timestamp_ns / 1_000_000,
        }
    }
}

/// A link's state as shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkView {
    /// Up and answering in time.
    Healthy,
    /// Up, but late or lossy.
    Degraded,
    /// Down, or silent past the liveness limit.
    Lost,
}

impl LinkView {
    /// From the session's state; `None` (not connected) is `Lost`.
    pub fn from_state(state: Option<LinkState>) -> LinkView {
        match state {
            Some(LinkState::Healthy) => LinkView::Healthy,
            Some(LinkState::Degraded) => LinkView::Degraded,
            Some(LinkState::Lost) | None => LinkView::Lost,
        }
    }

    /// The value of `sarlink_drone_link_state`: 0 healthy, 1 degraded, 2 lost.
    pub fn code(self) -> f64 {
        match self {
            LinkView::Healthy => 0.0,
            LinkView::Degraded => 1.0,
            LinkView::Lost => 2.0,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            LinkView::Healthy => "healthy",
            LinkView::Degraded => "degraded",
            LinkView::Lost => "lost",
        }
    }
}

/// The receiver a decision chose, as shown: `"drone"`, `"ground"` or `"other"`.
pub fn source_name(id: SourceId) -> &'static str {
    if id == SourceId::DRONE {
        "drone"
    } else if id == SourceId::GROUND {
        "ground"
    } else {
        "other"
    }
}

/// Everything shown for one drone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DroneView {
    /// Its node name.
    pub node: String,
    /// Its link to the ground.
    pub link: LinkView,
    /// Latest link round trip, ms.
    pub rtt_ms: Option<f64>,
    /// Connection quality 0-100 (RTT and jitter), where the node computes it (the ground).
    pub quality: Option<u8>,
    /// The receiver its last decision chose ([`source_name`]).
    pub source: Option<&'static str>,
    /// Whether that decision is a fallback.
    pub fallback: bool,
    /// The reason of that decision (`better_score`, `link_lost`, ...).
    pub reason: Option<String>,
    /// Degradation level from its `status` (`normal`, `shedding-N`).
    pub level: Option<String>,
    /// Features it sheds.
    pub shed: Vec<String>,
    /// Its own receiver (the ground's receiver is [`Dashboard::set_ground_rx`], shared by
    /// every drone).
    pub drone_rx: Option<Reading>,
    /// Records of its receiver this node has (received on the ground, measured on the drone).
    pub records: u64,
    /// Records it dropped before sending (sequence gaps; the ground's count).
    pub gaps: u64,
}

impl DroneView {
    /// A drone with nothing known yet (link lost).
    pub fn new(node: &str) -> DroneView {
        DroneView {
            node: node.to_owned(),
            link: LinkView::Lost,
            rtt_ms: None,
            quality: None,
            source: None,
            fallback: false,
            reason: None,
            level: None,
            shed: Vec::new(),
            drone_rx: None,
            records: 0,
            gaps: 0,
        }
    }
}

/// How serious an [`Alert`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Back to normal.
    Info,
    /// Worth a look.
    Warning,
    /// Act now.
    Critical,
}

/// One line of the dashboard's alert list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// When, ms since the Unix epoch (this node's clock).
    pub t_ms: i64,
    /// The drone concerned.
    pub node: String,
    /// How serious.
    pub severity: Severity,
    /// What happened, for humans.
    pub text: String,
}

#[derive(Serialize)]
struct Live<'a> {
    t_ms: i64,
    node: &'a str,
    role: &'a str,
    ground_rx: Option<Reading>,
    drones: Vec<&'a DroneView>,
    hidden: usize,
    alerts: &'a VecDeque<Alert>,
}

/// The dashboard's state. See the module documentation.
#[derive(Debug)]
pub struct Dashboard {
    node: String,
    role: &'static str,
    ground_rx: Option<Reading>,
    drones: BTreeMap<String, DroneView>,
    histories: BTreeMap<Arc<str>, VecDeque<HistoryPoint>>,
    alerts: VecDeque<Alert>,
    hidden: usize,
    next_point: Duration,
    history: Arc<History>,
}

/// The alerts the change from view `p` to view `view` of one drone raises, in order.
fn changes(p: &DroneView, view: &DroneView) -> Vec<(Severity, String)> {
    let mut alerts = Vec::new();
    if p.link != view.link {
        let severity = match view.link {
            LinkView::Healthy => Severity::Info,
            LinkView::Degraded => Severity::Warning,
            LinkView::Lost => Severity::Critical,
        };
        alerts.push((severity, format!("link {}", view.link.as_str())));
    }
    if view.fallback && !p.fallback {
        let why = view.reason.as_deref().unwrap_or("?");
        let text = format!("fallback to the drone's receiver ({why})");
        alerts.push((Severity::Critical, text));
    } else if !view.fallback && p.fallback {
        alerts.push((Severity::Info, "fallback ended".to_owned()));
    }
    if p.level.is_some() && view.level.is_some() && p.level != view.level {
        let level = view.level.as_deref().unwrap_or("");
        let (severity, text) = if level == "normal" {
            (Severity::Info, "degradation: back to normal".to_owned())
        } else {
            // Drones before issue 20 left the list out when shedding their status
            // detail; today's always send it.
            let shed = if view.shed.is_empty() {
                "not reported".to_owned()
            } else {
                view.shed.join(", ")
            };
            (
                Severity::Warning,
                format!("degradation: {level} (shed: {shed})"),
            )
        };
        alerts.push((severity, text));
    }
    alerts
}

fn ms(t: Duration) -> i64 {
    i64::try_from(t.as_millis()).unwrap_or(i64::MAX)
}

impl Dashboard {
    /// The dashboard of node `node`, whose role (`"ground"` or `"drone"`) the page shows.
    pub fn new(node: &str, role: &'static str) -> Dashboard {
        Dashboard {
            node: node.to_owned(),
            role,
            ground_rx: None,
            drones: BTreeMap::new(),
            histories: BTreeMap::new(),
            alerts: VecDeque::new(),
            hidden: 0,
            next_point: Duration::ZERO,
            history: Arc::default(),
        }
    }

    /// The ground's own receiver's newest reading (the ground passes its own, a drone the
    /// newest it received).
    pub fn set_ground_rx(&mut self, reading: Option<Reading>) {
        self.ground_rx = reading;
    }

    /// Takes the newest view of one drone; changes from the previous one become alerts.
    pub fn update(&mut self, now: Duration, view: DroneView) {
        let Some(previous) = self.drones.get_mut(view.node.as_str()) else {
            if self.drones.len() >= MAX_DRONES {
                self.hidden += 1;
            } else {
                self.drones.insert(view.node.clone(), view);
            }
            return;
        };
        // The previous view is replaced in place; its alerts are raised after.
        let alerts = changes(previous, &view);
        let node = (!alerts.is_empty()).then(|| view.node.clone());
        *previous = view;
        if let Some(node) = node {
            for (severity, text) in alerts {
                self.alert(now, &node, severity, text);
            }
        }
    }

    /// Starts a publication: every drone's view follows through [`Dashboard::update`] (or
    /// [`Dashboard::count_hidden`]), so [`Dashboard::hidden`] counts again from 0.
    pub fn begin_publication(&mut self) {
        self.hidden = 0;
    }

    /// Whether [`Dashboard::update`] would show `node`: it is shown already, or fewer than
    /// [`MAX_DRONES`] are.
    pub fn has_room_for(&self, node: &str) -> bool {
        self.drones.len() < MAX_DRONES || self.drones.contains_key(node)
    }

    /// What [`Dashboard::update`] does with the view of a drone it has no room for (see
    /// [`Dashboard::has_room_for`]), without the view: counts it in [`Dashboard::hidden`].
    pub fn count_hidden(&mut self) {
        self.hidden += 1;
    }

    /// [`Dashboard::count_hidden`] for `n` drones.
    pub fn count_hidden_many(&mut self, n: usize) {
        self.hidden += n;
    }

    /// Whether [`MAX_DRONES`] drones are shown: no other drone will be.
    pub fn is_full(&self) -> bool {
        self.drones.len() >= MAX_DRONES
    }

    /// Adds an alert (the newest [`ALERTS_KEPT`] are kept).
    pub fn alert(&mut self, now: Duration, node: &str, severity: Severity, text: String) {
        if self.alerts.len() >= ALERTS_KEPT {
            self.alerts.pop_front();
        }
        self.alerts.push_back(Alert {
            t_ms: ms(now),
            node: node.to_owned(),
            severity,
            text,
        });
    }

    /// Adds a chart point per drone when [`HISTORY_INTERVAL`] has passed since the last.
    /// Returns whether it did (the history changed).
    pub fn tick(&mut self, now: Duration) -> bool {
        if now < self.next_point {
            return false;
        }
        self.next_point = now + HISTORY_INTERVAL;
        let ground = self.ground_rx;
        for view in self.drones.values() {
            let points = match self.histories.get_mut(view.node.as_str()) {
                Some(p) => p,
                None => self
                    .histories
                    .entry(Arc::from(view.node.as_str()))
                    .or_default(),
            };
            if points.len() >= HISTORY_POINTS {
                points.pop_front();
            }
            points.push_back(HistoryPoint {
                t_ms: ms(now),
                rssi: view.drone_rx.map(|r| r.rssi),
                snr: view.drone_rx.and_then(|r| r.snr),
                ground_rssi: ground.map(|r| r.rssi),
                ground_snr: ground.and_then(|r| r.snr),
            });
        }
        self.history = Arc::new(
            self.histories
                .iter()
                .map(|(node, points)| (Arc::clone(node), points.iter().copied().collect()))
                .collect(),
        );
        true
    }

    /// The chart history as of the last [`Dashboard::tick`] (shared, cheap to clone).
    pub fn history(&self) -> Arc<History> {
        Arc::clone(&self.history)
    }

    /// The live JSON object: this node, the ground's receiver, every drone, recent alerts.
    pub fn live_json(&self, now: Duration) -> String {
        let live = Live {
            t_ms: ms(now),
            node: &self.node,
            role: self.role,
            ground_rx: self.ground_rx,
            drones: self.drones.values().collect(),
            hidden: self.hidden,
            alerts: &self.alerts,
        };
        // Plain data with string keys: serialization cannot fail.
        serde_json::to_string(&live).unwrap_or_else(|_| "null".to_owned())
    }

    /// The drones shown, by node name.
    pub fn drones(&self) -> impl Iterator<Item = &DroneView> {
        self.drones.values()
    }

    /// The alerts kept, oldest first.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.iter()
    }

    /// Drones not shown because [`MAX_DRONES`] were already, in the publication begun last
    /// (see [`Dashboard::begin_publication`]).
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// The ground receiver's reading as last set.
    pub fn ground_rx(&self) -> Option<Reading> {
        self.ground_rx
    }
}

/// The Prometheus series of one drone, labelled `node`: set them from its [`DroneView`].
#[derive(Debug)]
pub struct DroneSeries {
    rssi: Gauge,
    snr: Gauge,
    link_state: Gauge,
    rtt: Gauge,
    quality: Gauge,
    source: Gauge,
    fallback: Gauge,
    level: Gauge,
    records: Counter,
    gaps: Counter,
    last: (u64, u64),
}

fn opt(v: Option<f64>) -> f64 {
    v.unwrap_or(f64::NAN)
}

/// The receiver series `sarlink_rssi_dbm` / `sarlink_snr_db` of node `node`'s `receiver`.
fn receiver_series(
    registry: &Registry,
    node: &str,
    receiver: &str,
) -> Result<(Gauge, Gauge), RegisterError> {
    let labels = [("node", node), ("receiver", receiver)];
    Ok((
        registry.gauge(
            "sarlink_rssi_dbm",
            "Newest RSSI of a receiver, dBm (dBFS when the receiver is uncalibrated); node: whose receiver, receiver: drone or ground.",
            &labels,
        )?,
        registry.gauge(
            "sarlink_snr_db",
            "Newest SNR of a receiver, dB (NaN when not computed).",
            &labels,
        )?,
    ))
}

/// The ground receiver's series (`node` = the ground's name, `receiver="ground"`).
#[derive(Debug)]
pub struct ReceiverSeries {
    rssi: Gauge,
    snr: Gauge,
}

impl ReceiverSeries {
    /// Registers (or finds) the series of the ground receiver of node `node`.
    ///
    /// # Errors
    /// When `registry` refuses the names (a metric of another type has one).
    pub fn new(registry: &Registry, node: &str) -> Result<ReceiverSeries, RegisterError> {
        let (rssi, snr) = receiver_series(registry, node, "ground")?;
        Ok(ReceiverSeries { rssi, snr })
    }

    /// Sets the newest reading (NaN when none).
    pub fn set(&self, reading: Option<Reading>) {
        self.rssi.set(opt(reading.map(|r| f64::from(r.rssi))));
        self.snr
            .set(opt(reading.and_then(|r| r.snr).map(f64::from)));
    }
}

impl DroneSeries {
    /// Registers (or finds) the series of drone `node`.
    ///
    /// # Errors
    /// When `registry` refuses the names (a metric of another type has one).
    pub fn new(registry: &Registry, node: &str) -> Result<DroneSeries, RegisterError> {
        let l = [("node", node)];
        let (rssi, snr) = receiver_series(registry, node, "drone")?;
        Ok(DroneSeries {
            rssi,
            snr,
            link_state: registry.gauge(
                "sarlink_drone_link_state",
                "Link state of a drone: 0 healthy, 1 degraded, 2 lost.",
                &l,
            )?,
            rtt: registry.gauge(
                "sarlink_drone_link_rtt_seconds",
                "Newest ping round trip of a drone's link, seconds (NaN before the first).",
                &l,
            )?,
            quality: registry.gauge(
                "sarlink_drone_link_quality",
                "Connection quality of a drone's link, 0-100 from RTT and jitter (NaN where not computed).",
                &l,
            )?,
            source: registry.gauge(
                "sarlink_drone_active_source",
                "Receiver a drone's last decision chose: 0 the drone's, 1 the ground's (NaN before the first decision).",
                &l,
            )?,
            fallback: registry.gauge(
                "sarlink_drone_fallback",
                "1 while a drone's decision is a fallback to its own receiver, else 0.",
                &l,
            )?,
            level: registry.gauge(
                "sarlink_drone_degradation_level",
                "Degradation level of a drone: 0 normal, N when shedding priority class N and below (NaN before its first status).",
                &l,
            )?,
            records: registry.counter(
                "sarlink_drone_records",
                "Records of a drone's receiver this node has (received on the ground, measured on the drone).",
                &l,
            )?,
            gaps: registry.counter(
                "sarlink_drone_record_gaps",
                "Records a drone dropped before sending them (sequence gaps seen by the ground).",
                &l,
            )?,
            last: (0, 0),
        })
    }

    /// Sets every series from `view`.
    pub fn set(&mut self, view: &DroneView) {
        self.rssi.set(opt(view.drone_rx.map(|r| f64::from(r.rssi))));
        self.snr
            .set(opt(view.drone_rx.and_then(|r| r.snr).map(f64::from)));
        self.link_state.set(view.link.code());
        self.rtt.set(opt(view.rtt_ms.map(|ms| ms / 1e3)));
        self.quality.set(opt(view.quality.map(f64::from)));
        self.source.set(opt(view.source.and_then(|s| match s {
            "drone" => Some(0.0),
            "ground" => Some(1.0),
            _ => None,
        })));
        self.fallback.set(if view.fallback { 1.0 } else { 0.0 });
        self.level
            .set(opt(view.level.as_deref().and_then(level_code)));
        // Counters only go up: add what is new since the last view.
        self.records.add(view.records.saturating_sub(self.last.0));
        self.gaps.add(view.gaps.saturating_sub(self.last.1));
        self.last = (self.last.0.max(view.records), self.last.1.max(view.gaps));
    }
}

/// `normal` is 0, `shedding-N` is N; anything else is unknown.
fn level_code(level: &str) -> Option<f64> {
    if level == "normal" {
        return Some(0.0);
    }
    level
        .strip_prefix("shedding-")
        .and_then(|n| n.parse::<u8>().ok())
        .map(f64::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Duration = Duration::from_secs(1_764_000_000);

    fn view(node: &str) -> DroneView {
        let mut v = DroneView::new(node);
        v.link = LinkView::Healthy;
        v.level = Some("normal".into());
        v
    }

    #[test]
    fn changes_become_alerts_and_the_list_is_bounded() {
        let mut d = Dashboard::new("ground", "ground");
        let mut v = view("d1");
        d.update(T0, v.clone());
        assert_eq!(d.alerts().count(), 0, "a first view is no change");
        v.fallback = true;
        v.reason = Some("link_lost".into());
        v.link = LinkView::Lost;
        v.level = Some("shedding-5".into());
        v.shed = vec!["smoothing".into()];
        d.update(T0, v.clone());
        let texts: Vec<_> = d.alerts().map(|a| (a.severity, a.text.clone())).collect();
        assert_eq!(
            texts,
            [
                (Severity::Critical, "link lost".to_owned()),
                (
                    Severity::Critical,
                    "fallback to the drone's receiver (link_lost)".to_owned()
                ),
                (
                    Severity::Warning,
                    "degradation: shedding-5 (shed: smoothing)".to_owned()
                ),
            ]
        );
        for i in 0..100 {
            d.alert(T0, "d1", Severity::Info, format!("{i}"));
        }
        assert_eq!(d.alerts().count(), ALERTS_KEPT);
        assert_eq!(d.alerts().last().unwrap().text, "99");
    }

    #[test]
    fn history_is_sampled_once_per_interval_and_bounded() {
        let mut d = Dashboard::new("ground", "ground");
        let mut v = view("d1");
        v.drone_rx = Some(Reading {
            rssi: -70.0,
            snr: Some(12.0),
            t_ms: 0,
        });
        d.update(T0, v);
        d.set_ground_rx(Some(Reading {
            rssi: -60.0,
            snr: None,
            t_ms: 0,
        }));
        assert!(d.tick(T0));
        assert!(!d.tick(T0 + Duration::from_millis(500)), "not yet");
        assert!(d.tick(T0 + Duration::from_secs(1)));
        let h = d.history();
        let points = &h[&Arc::from("d1")];
        assert_eq!(points.len(), 2);
        assert_eq!(
            points[1],
            HistoryPoint {
                t_ms: ms(T0) + 1000,
                rssi: Some(-70.0),
                snr: Some(12.0),
                ground_rssi: Some(-60.0),
                ground_snr: None
            }
        );
        for s in 2..(HISTORY_POINTS as u64 + 50) {
            d.tick(T0 + Duration::from_secs(s));
        }
        assert_eq!(d.history()[&Arc::from("d1")].len(), HISTORY_POINTS);
    }

    #[test]
    fn drones_beyond_the_limit_are_counted_not_kept() {
        let mut d = Dashboard::new("ground", "ground");
        for i in 0..MAX_DRONES + 3 {
            d.update(T0, view(&format!("d{i}")));
        }
        assert_eq!(d.drones().count(), MAX_DRONES);
        assert_eq!(d.hidden(), 3);
        // Each publication counts its drones again: three hidden drones stay three.
        for _ in 0..2 {
            d.begin_publication();
            for i in 0..MAX_DRONES + 3 {
                d.update(T0, view(&format!("d{i}")));
            }
            assert_eq!(d.hidden(), 3);
        }
        // Room is judged as update judges it: a shown drone always has its place.
        assert!(d.has_room_for("d0"));
        assert!(!d.has_room_for(&format!("d{MAX_DRONES}")));
        let before = d.live_json(T0);
        let mut counted = Dashboard::new("ground", "ground");
        for i in 0..MAX_DRONES + 3 {
            let name = format!("d{i}");
            if counted.has_room_for(&name) {
                counted.update(T0, view(&name));
            } else {
                counted.count_hidden();
            }
        }
        assert_eq!(counted.live_json(T0), before);
    }

    #[test]
    fn the_live_object_holds_what_the_page_reads() {
        let mut d = Dashboard::new("ground", "ground");
        let mut v = view("d1");
        v.source = Some("ground");
        v.reason = Some("better_score".into());
        v.quality = Some(97);
        v.drone_rx = Some(Reading {
            rssi: -71.5,
            snr: Some(10.25),
            t_ms: 5,
        });
        d.update(T0, v);
        let live: serde_json::Value = serde_json::from_str(&d.live_json(T0)).unwrap();
        assert_eq!(live["node"], "ground");
        let d1 = &live["drones"][0];
        assert_eq!(d1["node"], "d1");
        assert_eq!(d1["link"], "healthy");
        assert_eq!(d1["source"], "ground");
        assert_eq!(d1["reason"], "better_score");
        assert_eq!(d1["quality"], 97);
        assert_eq!(d1["drone_rx"]["rssi"], -71.5);
        assert_eq!(d1["drone_rx"]["snr"], 10.25);
        assert!(live["ground_rx"].is_null());
    }

    #[test]
    fn series_follow_the_view_and_counters_only_add_what_is_new() {
        let registry = Registry::new();
        let mut s = DroneSeries::new(&registry, "d1").unwrap();
        let mut v = view("d1");
        v.records = 10;
        v.source = Some("ground");
        v.level = Some("shedding-4".into());
        v.rtt_ms = Some(2.5);
        s.set(&v);
        v.records = 15;
        v.link = LinkView::Lost;
        s.set(&v);
        let snap = registry.snapshot();
        use sarlink_monitor::metrics::Value;
        let l = [("node", "d1")];
        assert_eq!(
            snap.value("sarlink_drone_records", &l),
            Some(&Value::Counter(15))
        );
        assert_eq!(
            snap.value("sarlink_drone_link_state", &l),
            Some(&Value::Gauge(2.0))
        );
        assert_eq!(
            snap.value("sarlink_drone_active_source", &l),
            Some(&Value::Gauge(1.0))
        );
        assert_eq!(
            snap.value("sarlink_drone_degradation_level", &l),
            Some(&Value::Gauge(4.0))
        );
        assert_eq!(
            snap.value("sarlink_drone_link_rtt_seconds", &l),
            Some(&Value::Gauge(0.0025))
        );
    }
}
