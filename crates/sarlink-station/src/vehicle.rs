//! The flight controller, sans-IO: what the vehicle reports over MAVLink, the vehicle rules
//! of the safety authority, geotags, and the RSSI telemetry the drone sends back.
//!
//! Nothing here owns a port or reads a clock. The driver ([`crate::node::mavlink`]) decodes
//! MAVLink frames and feeds them to [`VehicleTracker::handle`] with the time; the drone's
//! driver then asks [`vehicle_safety`] for the levels to pass to
//! [`crate::drone::DroneCore::set_vehicle_safety`], [`geotag`] for each own record, and
//! [`Telemetry`] for the MAVLink messages to send (heartbeat, `NAMED_VALUE_FLOAT`,
//! `STATUSTEXT`), within a byte budget.
//!
//! ```
//! use std::time::Duration;
//! use sarlink_station::vehicle::{VehicleRules, VehicleState, vehicle_safety};
//! use sarlink_coord::SafetyLevel;
//!
//! let rules = VehicleRules::default();
//! // No heartbeat for 3 s: the vehicle is lost, its mode unknown.
//! let state = VehicleState::new(Duration::ZERO);
//! let s = vehicle_safety(&state, &rules, Duration::from_secs(3));
//! assert!(s.contains(SafetyLevel::FlightMode));
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use mavlink::dialects::ardupilotmega::{
    GpsFixType, HEARTBEAT_DATA, MavAutopilot, MavMessage, MavModeFlag, MavSeverity, MavState,
    MavType, NAMED_VALUE_FLOAT_DATA, STATUSTEXT_DATA,
};
use mavlink::types::CharArray;
use sarlink_coord::{SafetyLevel, SafetyState};
use sarlink_schema::{BeaconFields, RssiRecord, SourceId};

/// The drone's own component id on the MAVLink network by default: 191
/// (`MAV_COMP_ID_ONBOARD_COMPUTER`).
pub const DEFAULT_COMPONENT_ID: u8 = 191;
/// Default byte budget for the drone's MAVLink output, bytes per second.
pub const DEFAULT_BYTE_BUDGET: u32 = 1_000;
/// Silence after which the vehicle is lost.
pub const LOST_AFTER: Duration = Duration::from_secs(3);
/// The oldest position or fix a record is geotagged with.
pub const GEOTAG_MAX_AGE: Duration = Duration::from_secs(1);
/// Least time between two `STATUSTEXT`s of one kind.
pub const STATUSTEXT_INTERVAL: Duration = Duration::from_secs(1);
/// `STATUSTEXT`s of one kind waiting for their turn (the newest are kept).
pub const STATUSTEXT_QUEUE: usize = 8;

/// Bytes of a MAVLink 2 frame around its payload: 10 header + 2 checksum.
const FRAME_OVERHEAD: u32 = 12;

/// Where the flight controller is: a MAVLink connection URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MavlinkUrl {
    /// `serial:PATH:BAUD`, e.g. `serial:/dev/ttyACM0:115200`.
    Serial {
        /// The device.
        path: String,
        /// Its baud rate.
        baud: u32,
    },
    /// `udpin:HOST:PORT`: listen for the vehicle's UDP packets, answer their sender.
    UdpIn(String),
    /// `udpout:HOST:PORT`: send UDP to the vehicle (or a router) and read its answers.
    UdpOut(String),
    /// `tcpout:HOST:PORT`: connect to the vehicle over TCP (reconnecting when it drops).
    TcpOut(String),
    /// `sim`: a simulated vehicle flying towards the beacon (the demo; no hardware).
    Sim,
}

/// A [`MavlinkUrl`] that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MavlinkUrlError {
    /// Not one of the forms.
    #[error(
        "{0:?} is not a MAVLink URL: use serial:/dev/ttyACM0:115200, udpin:0.0.0.0:14550, udpout:HOST:PORT, tcpout:HOST:PORT or sim"
    )]
    Scheme(String),
    /// HOST:PORT is missing its host or has no valid port.
    #[error("{0:?}: expected HOST:PORT with a port 1-65535")]
    Address(String),
    /// The serial form is missing its device or has no valid baud rate.
    #[error("{0:?}: expected serial:DEVICE:BAUD with a baud rate such as 57600 or 115200")]
    Serial(String),
}

impl std::str::FromStr for MavlinkUrl {
    type Err = MavlinkUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let host_port = |rest: &str| {
            let ok = rest.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if ok {
                Ok(rest.to_owned())
            } else {
                Err(MavlinkUrlError::Address(s.to_owned()))
            }
        };
        match s.split_once(':') {
            None if s == "sim" => Ok(MavlinkUrl::Sim),
            Some(("serial", rest)) => {
                let (path, baud) = rest
                    .rsplit_once(':')
                    .ok_or_else(|| MavlinkUrlError::Serial(s.to_owned()))?;
                match baud.parse::<u32>() {
                    Ok(baud) if !path.is_empty() && baud > 0 => Ok(MavlinkUrl::Serial {
                        path: path.to_owned(),
                        baud,
                    }),
                    _ => Err(MavlinkUrlError::Serial(s.to_owned())),
                }
            }
            Some(("udpin", rest)) => host_port(rest).map(MavlinkUrl::UdpIn),
            Some(("udpout", rest)) => host_port(rest).map(MavlinkUrl::UdpOut),
            Some(("tcpout", rest)) => host_port(rest).map(MavlinkUrl::TcpOut),
            _ => Err(MavlinkUrlError::Scheme(s.to_owned())),
        }
    }
}

impl fmt::Display for MavlinkUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MavlinkUrl::Serial { path, baud } => write!(f, "serial:{path}:{baud}"),
            MavlinkUrl::UdpIn(a) => write!(f, "udpin:{a}"),
            MavlinkUrl::UdpOut(a) => write!(f, "udpout:{a}"),
            MavlinkUrl::TcpOut(a) => write!(f, "tcpout:{a}"),
            MavlinkUrl::Sim => f.write_str("sim"),
        }
    }
}

/// The vehicle's flight mode, decoded by name for ArduCopter and PX4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlightMode(String);

impl FlightMode {
    /// The mode's name: ArduCopter's (`GUIDED`, `LOITER`, `RTL`...), PX4's (`POSCTL`,
    /// `AUTO.MISSION`, `OFFBOARD`...), or `MODE(n)` with the raw `custom_mode` for others.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Decodes `custom_mode` of a heartbeat from `autopilot`.
    pub fn decode(autopilot: MavAutopilot, custom_mode: u32) -> FlightMode {
        let name = match autopilot {
            MavAutopilot::MAV_AUTOPILOT_ARDUPILOTMEGA => arducopter_mode(custom_mode),
            MavAutopilot::MAV_AUTOPILOT_PX4 => px4_mode(custom_mode),
            _ => None,
        };
        FlightMode(name.map_or_else(|| format!("MODE({custom_mode})"), str::to_owned))
    }
}

impl fmt::Display for FlightMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// ArduCopter's mode numbers (its `mode.h`).
fn arducopter_mode(n: u32) -> Option<&'static str> {
    Some(match n {
        0 => "STABILIZE",
        1 => "ACRO",
        2 => "ALT_HOLD",
        3 => "AUTO",
        4 => "GUIDED",
        5 => "LOITER",
        6 => "RTL",
        7 => "CIRCLE",
        9 => "LAND",
        11 => "DRIFT",
        13 => "SPORT",
        14 => "FLIP",
        15 => "AUTOTUNE",
        16 => "POSHOLD",
        17 => "BRAKE",
        18 => "THROW",
        19 => "AVOID_ADSB",
        20 => "GUIDED_NOGPS",
        21 => "SMART_RTL",
        22 => "FLOWHOLD",
        23 => "FOLLOW",
        24 => "ZIGZAG",
        25 => "SYSTEMID",
        26 => "AUTOROTATE",
        27 => "AUTO_RTL",
        28 => "TURTLE",
        _ => return None,
    })
}

/// PX4's modes: main mode in bits 16-23 of `custom_mode`, sub mode in bits 24-31.
fn px4_mode(n: u32) -> Option<&'static str> {
    let main = (n >> 16) & 0xff;
    let sub = (n >> 24) & 0xff;
    Some(match (main, sub) {
        (1, _) => "MANUAL",
        (2, _) => "ALTCTL",
        (3, _) => "POSCTL",
        (4, 1) => "AUTO.READY",
        (4, 2) => "AUTO.TAKEOFF",
        (4, 3) => "AUTO.LOITER",
        (4, 4) => "AUTO.MISSION",
        (4, 5) => "AUTO.RTL",
        (4, 6) => "AUTO.LAND",
        (4, 8) => "AUTO.FOLLOW_TARGET",
        (4, 9) => "AUTO.PRECLAND",
        (5, _) => "ACRO",
        (6, _) => "OFFBOARD",
        (7, _) => "STABILIZED",
        _ => return None,
    })
}

/// A position reported by the vehicle (`GLOBAL_POSITION_INT`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    /// Latitude, 1e-7 degrees.
    pub lat_e7: i32,
    /// Longitude, 1e-7 degrees.
    pub lon_e7: i32,
    /// Altitude above mean sea level, metres.
    pub alt_m: f32,
    /// Heading, degrees (`None` when the autopilot does not know it).
    pub heading_deg: Option<f32>,
    /// When it arrived (the caller's clock).
    pub at: Duration,
}

/// Everything the vehicle has told the drone.
#[derive(Debug, Clone, PartialEq)]
pub struct VehicleState {
    /// When tracking began (the caller's clock): a vehicle never heard is lost
    /// [`LOST_AFTER`] after this.
    pub since: Duration,
    /// The vehicle's system id, from its first heartbeat.
    pub system_id: Option<u8>,
    /// Its autopilot.
    pub autopilot: Option<MavAutopilot>,
    /// When its newest heartbeat arrived.
    pub heartbeat_at: Option<Duration>,
    /// Armed.
    pub armed: bool,
    /// Flight mode (from the newest heartbeat).
    pub mode: Option<FlightMode>,
    /// The autopilot reports an emergency or flight termination (`system_status`).
    pub emergency: bool,
    /// Battery remaining, percent.
    pub battery_pct: Option<u8>,
    /// Battery voltage, volts.
    pub voltage_v: Option<f32>,
    /// The newest position.
    pub position: Option<Position>,
    /// The newest GPS fix type (`GPS_RAW_INT`) and when it arrived.
    pub fix: Option<(GpsFixType, Duration)>,
    /// The geofence is breached (`FENCE_STATUS`).
    pub fence_breached: bool,
}

impl VehicleState {
    /// Nothing heard yet; tracking began at `since`.
    pub fn new(since: Duration) -> VehicleState {
        VehicleState {
            since,
            system_id: None,
            autopilot: None,
            heartbeat_at: None,
            armed: false,
            mode: None,
            emergency: false,
            battery_pct: None,
            voltage_v: None,
            position: None,
            fix: None,
            fence_breached: false,
        }
    }

    /// Whether the vehicle has been silent for [`LOST_AFTER`] (or never heard for that long).
    pub fn is_lost(&self, now: Duration) -> bool {
        now.saturating_sub(self.heartbeat_at.unwrap_or(self.since)) >= LOST_AFTER
    }
}

/// What changed after a message ([`VehicleTracker::handle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Changed {
    /// The first heartbeat of the vehicle: its system id is now known.
    pub found: bool,
    /// Something the rules look at (mode, emergency, battery, fence) changed.
    pub rules: bool,
}

/// Keeps [`VehicleState`] from decoded MAVLink messages.
#[derive(Debug, Clone)]
pub struct VehicleTracker {
    state: VehicleState,
    own_component: u8,
}

impl VehicleTracker {
    /// Tracks from `since`; heartbeats from component `own_component` (the drone's own
    /// id, which shares the vehicle's system id) are not the vehicle's.
    pub fn new(since: Duration, own_component: u8) -> VehicleTracker {
        VehicleTracker {
            state: VehicleState::new(since),
            own_component,
        }
    }

    /// The state so far.
    pub fn state(&self) -> &VehicleState {
        &self.state
    }

    /// Takes in one message from `system_id`/`component_id`, received at `now`. The vehicle
    /// is the first system whose heartbeat comes from an autopilot (not a ground station, not
    /// an onboard computer); messages of other systems are ignored after that.
    pub fn handle(
        &mut self,
        now: Duration,
        system_id: u8,
        component_id: u8,
        msg: &MavMessage,
    ) -> Changed {
        let mut changed = Changed::default();
        let s = &mut self.state;
        if let MavMessage::HEARTBEAT(hb) = msg {
            let is_vehicle = hb.autopilot != MavAutopilot::MAV_AUTOPILOT_INVALID
                && !matches!(
                    hb.mavtype,
                    MavType::MAV_TYPE_GCS | MavType::MAV_TYPE_ONBOARD_CONTROLLER
                )
                && component_id != self.own_component;
            if s.system_id.is_none() && is_vehicle {
                s.system_id = Some(system_id);
                changed.found = true;
            }
            if s.system_id == Some(system_id) && is_vehicle {
                let mode = FlightMode::decode(hb.autopilot, hb.custom_mode);
                let emergency = matches!(
                    hb.system_status,
                    MavState::MAV_STATE_EMERGENCY | MavState::MAV_STATE_FLIGHT_TERMINATION
                );
                let was_lost = s.is_lost(now);
                changed.rules |= s.mode.as_ref() != Some(&mode) || s.emergency != emergency;
                changed.rules |= was_lost;
                s.autopilot = Some(hb.autopilot);
                s.heartbeat_at = Some(now);
                s.armed = hb
                    .base_mode
                    .contains(MavModeFlag::MAV_MODE_FLAG_SAFETY_ARMED);
                s.mode = Some(mode);
                s.emergency = emergency;
            }
            return changed;
        }
        if s.system_id != Some(system_id) {
            return changed;
        }
        match msg {
            MavMessage::SYS_STATUS(m) => {
                let pct = u8::try_from(m.battery_remaining).ok().filter(|p| *p <= 100);
                changed.rules |= pct != s.battery_pct;
                s.battery_pct = pct;
                s.voltage_v =
                    (m.voltage_battery != u16::MAX).then(|| f32::from(m.voltage_battery) / 1000.0);
            }
            MavMessage::BATTERY_STATUS(m) => {
                let pct = u8::try_from(m.battery_remaining).ok().filter(|p| *p <= 100);
                if pct.is_some() {
                    changed.rules |= pct != s.battery_pct;
                    s.battery_pct = pct;
                }
                // Cells reported in millivolts, u16::MAX for an absent cell.
                let cells = m.voltages.iter().filter(|v| **v != u16::MAX);
                let mv: u32 = cells.map(|v| u32::from(*v)).sum();
                if mv > 0 {
                    s.voltage_v = Some(mv as f32 / 1000.0);
                }
            }
            MavMessage::GLOBAL_POSITION_INT(m) => {
                s.position = Some(Position {
                    lat_e7: m.lat,
                    lon_e7: m.lon,
                    alt_m: m.alt as f32 / 1000.0,
                    heading_deg: (m.hdg != u16::MAX).then(|| f32::from(m.hdg) / 100.0),
                    at: now,
                });
            }
            MavMessage::GPS_RAW_INT(m) => s.fix = Some((m.fix_type, now)),
            MavMessage::FENCE_STATUS(m) => {
                let breached = m.breach_status != 0;
                changed.rules |= breached != s.fence_breached;
                s.fence_breached = breached;
            }
            _ => {}
        }
        changed
    }
}

/// The vehicle rules of the safety authority.
#[derive(Debug, Clone, PartialEq)]
pub struct VehicleRules {
    /// Below this battery percentage the `battery` level is active. Default 25.
    pub battery_min_pct: u8,
    /// Flight modes in which the ground may alter measuring (case-insensitive names as
    /// [`FlightMode::as_str`] gives them); any other mode activates `flight_mode`. Default:
    /// ArduCopter `GUIDED`, `AUTO`, `LOITER`, `POSHOLD`, `BRAKE`, `CIRCLE`, `ALT_HOLD` and
    /// PX4 `OFFBOARD`, `AUTO.MISSION`, `AUTO.LOITER`, `POSCTL`, `ALTCTL`.
    pub allowed_modes: Vec<String>,
}

impl Default for VehicleRules {
    fn default() -> Self {
        VehicleRules {
            battery_min_pct: 25,
            allowed_modes: [
                "GUIDED",
                "AUTO",
                "LOITER",
                "POSHOLD",
                "BRAKE",
                "CIRCLE",
                "ALT_HOLD",
                "OFFBOARD",
                "AUTO.MISSION",
                "AUTO.LOITER",
                "POSCTL",
                "ALTCTL",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
        }
    }
}

impl VehicleRules {
    /// Whether `mode` is on the allow-list.
    pub fn allows(&self, mode: &FlightMode) -> bool {
        self.allowed_modes
            .iter()
            .any(|m| m.eq_ignore_ascii_case(mode.as_str()))
    }
}

/// The vehicle's safety levels at `now`:
/// - lost (silent for [`LOST_AFTER`]): `flight_mode` (its mode is unknown, so it is not on
///   the allow-list); nothing else is judged from stale state;
/// - `emergency_stop` while the autopilot reports an emergency or flight termination;
/// - `flight_mode` while the mode is not on [`VehicleRules::allowed_modes`];
/// - `geofence` while the fence is breached;
/// - `battery` while the remaining charge is below [`VehicleRules::battery_min_pct`].
///
/// With no vehicle configured, do not call this: pass [`SafetyState::NOMINAL`].
pub fn vehicle_safety(state: &VehicleState, rules: &VehicleRules, now: Duration) -> SafetyState {
    if state.is_lost(now) {
        return SafetyState::NOMINAL.with(SafetyLevel::FlightMode);
    }
    let mut s = SafetyState::NOMINAL;
    if state.emergency {
        s = s.with(SafetyLevel::EmergencyStop);
    }
    if !state.mode.as_ref().is_some_and(|m| rules.allows(m)) {
        s = s.with(SafetyLevel::FlightMode);
    }
    if state.fence_breached {
        s = s.with(SafetyLevel::Geofence);
    }
    if state.battery_pct.is_some_and(|p| p < rules.battery_min_pct) {
        s = s.with(SafetyLevel::Battery);
    }
    s
}

/// The record's geotag keys from the vehicle's position at `measured_at` (the caller's
/// clock): set only when the fix is 3D (or better) and both it and the position are under
/// [`GEOTAG_MAX_AGE`] old; otherwise the keys are left absent.
pub fn geotag(beacon: &mut BeaconFields, state: &VehicleState, measured_at: Duration) {
    let fresh = |at: Duration| measured_at.saturating_sub(at) < GEOTAG_MAX_AGE;
    let fix_3d = state.fix.is_some_and(|(fix, at)| {
        fresh(at) && (fix as u32) >= (GpsFixType::GPS_FIX_TYPE_3D_FIX as u32)
    });
    let Some(p) = state.position.filter(|p| fix_3d && fresh(p.at)) else {
        return;
    };
    let in_range = (-900_000_000..=900_000_000).contains(&p.lat_e7)
        && (-1_800_000_000..=1_800_000_000).contains(&p.lon_e7)
        && p.alt_m.is_finite();
    if !in_range {
        return;
    }
    beacon.lat_e7 = Some(p.lat_e7);
    beacon.lon_e7 = Some(p.lon_e7);
    beacon.alt_m = Some(p.alt_m);
    beacon.heading_deg = p.heading_deg.filter(|h| (0.0..360.0).contains(h));
}

/// A `NAMED_VALUE_FLOAT` name: 1-10 ASCII characters (MAVLink's field is 10 bytes; a longer
/// name would be cut short).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ValueName(&'static str);

/// A name that does not fit `NAMED_VALUE_FLOAT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueNameError {
    /// Empty or over 10 bytes.
    #[error("name {name:?} is {len} bytes; 1-10 fit")]
    Length {
        /// The name.
        name: &'static str,
        /// Its length.
        len: usize,
    },
    /// Not printable ASCII.
    #[error("name {0:?} is not printable ASCII")]
    NotAscii(&'static str),
}

impl ValueName {
    /// The longest name, bytes.
    pub const MAX_LEN: usize = 10;

    /// Checks `name`.
    ///
    /// # Errors
    /// [`ValueNameError`] when it is empty, over 10 bytes, or not printable ASCII.
    pub fn new(name: &'static str) -> Result<ValueName, ValueNameError> {
        if name.is_empty() || name.len() > Self::MAX_LEN {
            return Err(ValueNameError::Length {
                name,
                len: name.len(),
            });
        }
        if !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ValueNameError::NotAscii(name));
        }
        Ok(ValueName(name))
    }

    /// The name.
    pub fn as_str(self) -> &'static str {
        self.0
    }

    fn to_array(self) -> CharArray<10> {
        let mut a = [0u8; 10];
        a[..self.0.len()].copy_from_slice(self.0.as_bytes());
        CharArray::new(a)
    }
}

/// The names of the values sent for each own record, in the order sent:
/// - `SAR_RSSI` RSSI (dBm calibrated, else dBFS), `SAR_SNR` SNR (dB, absent when unknown),
///   `SAR_QUAL` quality score 0-100, `SAR_SRC` the coordinator's active source (0 = drone,
///   1 = ground);
/// - `SAR_DET` 1 when the beacon is detected, else 0; `SAR_PULSE` power of the most recent
///   pulse (absent before the first).
pub const VALUE_NAMES: [&str; 6] = [
    "SAR_RSSI",
    "SAR_SNR",
    "SAR_QUAL",
    "SAR_SRC",
    "SAR_DET",
    "SAR_PULSE",
];

/// Kinds of `STATUSTEXT`, each limited to one per [`STATUSTEXT_INTERVAL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextKind {
    /// The beacon was detected, or lost.
    Detection,
    /// The coordinator fell back to the drone's own receiver.
    Fallback,
    /// The coordinator recovered from a fallback.
    Recovery,
    /// A ground command was refused.
    Refused,
    /// The vehicle's safety state changed (lost, found, breach, battery, mode).
    Vehicle,
}

impl TextKind {
    const ALL: [TextKind; 5] = [
        TextKind::Detection,
        TextKind::Fallback,
        TextKind::Recovery,
        TextKind::Refused,
        TextKind::Vehicle,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, Default)]
struct TextSlot {
    last_sent: Option<Duration>,
    queue: VecDeque<(MavSeverity, String)>,
}

/// Counters of a [`Telemetry`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TelemetryStats {
    /// Records whose values were sent.
    pub records_sent: u64,
    /// Records whose values were left out to stay within the byte budget.
    pub records_thinned: u64,
    /// `STATUSTEXT`s dropped because more than [`STATUSTEXT_QUEUE`] of a kind waited.
    pub texts_dropped: u64,
}

/// The drone's MAVLink output, sans-IO: a heartbeat once a second, the values of each own
/// record, and `STATUSTEXT`s, all counted against a byte budget. Heartbeats and texts are
/// always sent (they may overdraw the budget); record values are thinned first: a record's
/// values are all sent or all left out.
///
/// Call order: [`Telemetry::record`] for each own record, [`Telemetry::text`] for each
/// event, [`Telemetry::tick`] at least every 100 ms, then drain [`Telemetry::poll`].
#[derive(Debug)]
pub struct Telemetry {
    budget_bps: u32,
    tokens: f64,
    last_refill: Option<Duration>,
    next_heartbeat: Duration,
    texts: [TextSlot; 5],
    out: VecDeque<MavMessage>,
    stats: TelemetryStats,
    extras: bool,
}

/// The values of [`VALUE_NAMES`] that are extras, left out while extras are shed
/// ([`Telemetry::set_extras`]): `SAR_SNR`, `SAR_QUAL`, `SAR_PULSE`. `SAR_RSSI`, `SAR_SRC`
/// and `SAR_DET`, what homing needs, are always sent.
pub const EXTRA_VALUES: [&str; 3] = ["SAR_SNR", "SAR_QUAL", "SAR_PULSE"];

/// The encoded size of `msg` in a MAVLink 2 frame (payload with trailing zeros cut, plus
/// header and checksum).
pub fn frame_len(msg: &MavMessage) -> u32 {
    use mavlink::Message as _;
    let mut buf = [0u8; 255];
    let len = msg.ser(mavlink::MavlinkVersion::V2, &mut buf);
    // Trailing zero bytes are not sent in MAVLink 2 (at least one payload byte stays).
    let trimmed = buf[..len]
        .iter()
        .rposition(|b| *b != 0)
        .map_or(1, |i| i + 1);
    // At most 255 bytes, so it fits.
    trimmed as u32 + FRAME_OVERHEAD
}

impl Telemetry {
    /// Output within `budget_bps` bytes per second.
    pub fn new(budget_bps: u32) -> Telemetry {
        Telemetry {
            budget_bps,
            tokens: f64::from(budget_bps),
            last_refill: None,
            next_heartbeat: Duration::ZERO,
            texts: Default::default(),
            out: VecDeque::new(),
            stats: TelemetryStats::default(),
            extras: true,
        }
    }

    /// Sends the extras or not (default on): without them, records carry only `SAR_RSSI`,
    /// `SAR_SRC` and `SAR_DET` (see [`EXTRA_VALUES`]), and detection and refusal
    /// `STATUSTEXT`s are dropped; fallback, recovery and vehicle texts are always sent.
    pub fn set_extras(&mut self, on: bool) {
        self.extras = on;
    }

    /// Counters.
    pub fn stats(&self) -> TelemetryStats {
        self.stats
    }

    fn refill(&mut self, boot: Duration) {
        let cap = f64::from(self.budget_bps);
        if let Some(last) = self.last_refill {
            let dt = boot.saturating_sub(last).as_secs_f64();
            self.tokens = (self.tokens + dt * cap).min(cap);
        }
        self.last_refill = Some(boot);
    }

    fn emit(&mut self, msg: MavMessage) {
        self.tokens -= f64::from(frame_len(&msg));
        self.out.push_back(msg);
    }

    /// The values of own record `record` at `boot` (time since the drone started, which
    /// becomes `time_boot_ms`), with the coordinator's `active` source and the detection
    /// state; left out when the budget cannot take all of them now.
    pub fn record(
        &mut self,
        boot: Duration,
        record: &RssiRecord,
        active: Option<SourceId>,
        detected: bool,
    ) {
        self.refill(boot);
        // Milliseconds since start wrap after 49 days, as MAVLink's field does.
        let time_boot_ms = (boot.as_millis() % (1u128 << 32)) as u32;
        let values = [
            Some(record.rssi_dbm.get()),
            record.snr_db.map(|s| s.get()),
            Some(f32::from(record.quality_score.get())),
            active.map(|s| if s == SourceId::GROUND { 1.0 } else { 0.0 }),
            Some(if detected { 1.0 } else { 0.0 }),
            record.beacon.last_pulse_dbm.map(|p| p.get()),
        ];
        let msgs: Vec<MavMessage> = VALUE_NAMES
            .iter()
            .zip(values)
            .filter(|(name, _)| self.extras || !EXTRA_VALUES.contains(name))
            .filter_map(|(name, value)| {
                let name = ValueName::new(name).ok()?;
                Some(MavMessage::NAMED_VALUE_FLOAT(NAMED_VALUE_FLOAT_DATA {
                    time_boot_ms,
                    value: value?,
                    name: name.to_array(),
                }))
            })
            .collect();
        let need: u32 = msgs.iter().map(frame_len).sum();
        if self.tokens < f64::from(need) {
            self.stats.records_thinned += 1;
            return;
        }
        self.stats.records_sent += 1;
        for m in msgs {
            self.emit(m);
        }
    }

    /// A `STATUSTEXT` of `kind` (cut to 50 bytes). Sent now if none of its kind went out in
    /// the last second, else queued and sent when its turn comes: a second, different event
    /// is never lost to the limit (an identical one waiting already is not queued twice).
    pub fn text(&mut self, boot: Duration, kind: TextKind, severity: MavSeverity, text: &str) {
        if !self.extras && matches!(kind, TextKind::Detection | TextKind::Refused) {
            return;
        }
        let slot = &mut self.texts[kind.index()];
        if slot.queue.iter().any(|(_, t)| t == text) {
            return;
        }
        if slot.queue.len() >= STATUSTEXT_QUEUE {
            slot.queue.pop_front();
            self.stats.texts_dropped += 1;
        }
        slot.queue.push_back((severity, text.to_owned()));
        self.flush_texts(boot);
    }

    fn flush_texts(&mut self, boot: Duration) {
        for kind in TextKind::ALL {
            let slot = &mut self.texts[kind.index()];
            let due = slot
                .last_sent
                .is_none_or(|at| boot.saturating_sub(at) >= STATUSTEXT_INTERVAL);
            if !due {
                continue;
            }
            let Some((severity, text)) = slot.queue.pop_front() else {
                continue;
            };
            slot.last_sent = Some(boot);
            let mut a = [0u8; 50];
            let mut n = text.len().min(50);
            // Cut on a character boundary.
            while !text.is_char_boundary(n) {
                n -= 1;
            }
            a[..n].copy_from_slice(&text.as_bytes()[..n]);
            self.emit(MavMessage::STATUSTEXT(STATUSTEXT_DATA {
                severity,
                text: CharArray::new(a),
            }));
        }
    }

    /// Time passed: the heartbeat when due, queued texts whose turn came.
    pub fn tick(&mut self, boot: Duration) {
        self.refill(boot);
        if boot >= self.next_heartbeat {
            self.next_heartbeat = boot + Duration::from_secs(1);
            self.emit(heartbeat());
        }
        self.flush_texts(boot);
    }

    /// The next message to send.
    pub fn poll(&mut self) -> Option<MavMessage> {
        self.out.pop_front()
    }
}

/// The drone's heartbeat: an onboard controller with no autopilot of its own.
pub fn heartbeat() -> MavMessage {
    MavMessage::HEARTBEAT(HEARTBEAT_DATA {
        custom_mode: 0,
        mavtype: MavType::MAV_TYPE_ONBOARD_CONTROLLER,
        autopilot: MavAutopilot::MAV_AUTOPILOT_INVALID,
        base_mode: MavModeFlag::empty(),
        system_status: MavState::MAV_STATE_ACTIVE,
        mavlink_version: 3,
    })
}

#[cfg(test)]
mod tests;
