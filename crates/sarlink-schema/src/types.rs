//! Validated domain values carried by the messages.

use std::fmt;
use std::num::NonZeroU64;
use std::sync::Arc;

use crate::CloseCode;

/// Why a domain value was refused by its constructor.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// A quality score above 100.
    #[error("quality score {value} is above 100")]
    QualityOutOfRange {
        /// The refused score.
        value: u8,
    },
    /// A NaN or infinite level.
    #[error("{what} must be finite, got {value}")]
    NotFinite {
        /// Which kind of value (`"dBm"`, `"dB"`).
        what: &'static str,
        /// The refused value.
        value: f32,
    },
    /// A frequency of 0 Hz.
    #[error("frequency must be above 0 Hz")]
    ZeroFrequency,
    /// A node name that is empty or longer than [`NodeName::MAX_LEN`] bytes.
    #[error("node name must be 1-64 bytes of UTF-8, got {len} bytes")]
    NodeNameLength {
        /// Length of the refused name, in bytes.
        len: usize,
    },
    /// An `rssi` message without samples.
    #[error("an rssi message needs at least one sample")]
    NoSamples,
    /// A clipped fraction outside `0..=1` (or NaN).
    #[error("clip fraction must be in 0..=1, got {value}")]
    ClipFractionOutOfRange {
        /// The refused value.
        value: f32,
    },
}

/// Identifies the receiver that measured a record: 0 the drone's SDR, 1 the ground SDR,
/// 2-255 further sources.
///
/// Every `u8` is a valid source; the constants name the two the protocol assigns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(u8);

impl SourceId {
    /// The drone's own SDR (0).
    pub const DRONE: SourceId = SourceId(0);
    /// The ground station's SDR (1).
    pub const GROUND: SourceId = SourceId(1);

    /// Wraps a raw source number.
    pub const fn new(id: u8) -> SourceId {
        SourceId(id)
    }

    /// The raw source number.
    pub const fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SourceId::DRONE => f.write_str("drone"),
            SourceId::GROUND => f.write_str("ground"),
            SourceId(n) => write!(f, "source {n}"),
        }
    }
}

/// A measurement quality score, 0 (useless) to 100 (excellent) inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QualityScore(u8);

impl QualityScore {
    /// The highest score, 100.
    pub const MAX: QualityScore = QualityScore(100);

    /// Checks that `score` is at most 100.
    ///
    /// # Errors
    ///
    /// [`ValueError::QualityOutOfRange`] when `score > 100`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sarlink_schema::QualityScore;
    /// assert_eq!(QualityScore::new(87).unwrap().get(), 87);
    /// assert!(QualityScore::new(101).is_err());
    /// ```
    pub const fn new(score: u8) -> Result<QualityScore, ValueError> {
        if score <= 100 {
            Ok(QualityScore(score))
        } else {
            Err(ValueError::QualityOutOfRange { value: score })
        }
    }

    /// The score, 0-100.
    pub const fn get(self) -> u8 {
        self.0
    }
}

/// A finite power level in dBm (or dBFS when the sender announced `rssi_units: "dbfs"`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Dbm(f32);

impl Dbm {
    /// Checks that `level` is finite.
    ///
    /// # Errors
    ///
    /// [`ValueError::NotFinite`] for NaN or an infinity.
    ///
    /// # Examples
    ///
    /// ```
    /// use sarlink_schema::Dbm;
    /// assert_eq!(Dbm::new(-71.5).unwrap().get(), -71.5);
    /// assert!(Dbm::new(f32::NAN).is_err());
    /// ```
    pub fn new(level: f32) -> Result<Dbm, ValueError> {
        if level.is_finite() {
            Ok(Dbm(level))
        } else {
            Err(ValueError::NotFinite {
                what: "dBm",
                value: level,
            })
        }
    }

    /// The level.
    pub const fn get(self) -> f32 {
        self.0
    }
}

/// A finite ratio in dB (used for `snr_db`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Db(f32);

impl Db {
    /// Checks that `ratio` is finite.
    ///
    /// # Errors
    ///
    /// [`ValueError::NotFinite`] for NaN or an infinity.
    pub fn new(ratio: f32) -> Result<Db, ValueError> {
        if ratio.is_finite() {
            Ok(Db(ratio))
        } else {
            Err(ValueError::NotFinite {
                what: "dB",
                value: ratio,
            })
        }
    }

    /// The ratio.
    pub const fn get(self) -> f32 {
        self.0
    }
}

/// A centre frequency in Hz, never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrequencyHz(NonZeroU64);

impl FrequencyHz {
    /// Checks that `hz` is not zero.
    ///
    /// # Errors
    ///
    /// [`ValueError::ZeroFrequency`] for 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use sarlink_schema::FrequencyHz;
    /// assert_eq!(FrequencyHz::new(406_025_000).unwrap().get(), 406_025_000);
    /// assert!(FrequencyHz::new(0).is_err());
    /// ```
    pub const fn new(hz: u64) -> Result<FrequencyHz, ValueError> {
        match NonZeroU64::new(hz) {
            Some(nz) => Ok(FrequencyHz(nz)),
            None => Err(ValueError::ZeroFrequency),
        }
    }

    /// The frequency in Hz (never 0).
    pub const fn get(self) -> u64 {
        self.0.get()
    }
}

/// One RSSI measurement: the `samples` of an `rssi` message (spec section 3.1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RssiRecord {
    /// End of the measurement window, ns since the Unix epoch (UTC).
    pub timestamp_ns: i64,
    /// Channel power; dBm when calibrated, else dBFS (see [`RssiUnits`]).
    pub rssi_dbm: Dbm,
    /// Centre frequency of the measured channel.
    pub frequency_hz: FrequencyHz,
    /// Which receiver measured it.
    pub source_id: SourceId,
    /// Measurement quality, derived from the SNR.
    pub quality_score: QualityScore,
    /// Channel power over the noise floor, if known.
    pub snr_db: Option<Db>,
    /// Noise floor, same units as `rssi_dbm`, if known.
    pub noise_dbm: Option<Dbm>,
    /// The beacon-aware keys of protocol 1.1 (all optional); [`BeaconFields::NONE`] for a 1.0
    /// record.
    pub beacon: BeaconFields,
}

/// A finite frequency offset in Hz (a carrier's measured offset from the channel's nominal
/// centre, `offset_hz`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct OffsetHz(f32);

impl OffsetHz {
    /// Checks that `hz` is finite.
    ///
    /// # Errors
    ///
    /// [`ValueError::NotFinite`] for NaN or an infinity.
    pub fn new(hz: f32) -> Result<OffsetHz, ValueError> {
        if hz.is_finite() {
            Ok(OffsetHz(hz))
        } else {
            Err(ValueError::NotFinite {
                what: "Hz",
                value: hz,
            })
        }
    }

    /// The offset, Hz.
    pub const fn get(self) -> f32 {
        self.0
    }
}

/// The fraction of a measurement's samples at the receiver's rails; invariant: `0 <= value
/// <= 1` (finite).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct ClipFraction(f32);

impl ClipFraction {
    /// No clipped sample.
    pub const ZERO: ClipFraction = ClipFraction(0.0);

    /// Checks that `fraction` is in `0..=1`.
    ///
    /// # Errors
    ///
    /// [`ValueError::ClipFractionOutOfRange`] outside that range or for NaN.
    ///
    /// # Examples
    ///
    /// ```
    /// use sarlink_schema::ClipFraction;
    /// assert_eq!(ClipFraction::new(0.25).unwrap().get(), 0.25);
    /// assert!(ClipFraction::new(1.5).is_err());
    /// ```
    pub fn new(fraction: f32) -> Result<ClipFraction, ValueError> {
        if (0.0..=1.0).contains(&fraction) {
            Ok(ClipFraction(fraction))
        } else {
            Err(ValueError::ClipFractionOutOfRange { value: fraction })
        }
    }

    /// The fraction, 0 to 1.
    pub const fn get(self) -> f32 {
        self.0
    }
}

/// The beacon-aware keys of an RSSI record (protocol 1.1, spec section 3.1), every one
/// optional: detection, pulses and bursts, the carrier's offset and clipping.
///
/// The pulse keys describe the pulses that ended during the record's measurement window;
/// `last_pulse_*` are the most recent pulse's, held in every record until the next. Powers are
/// in the record's units (`rssi_units`), noise subtracted; nothing here is smoothed. A 1.0
/// receiver ignores these keys.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BeaconFields {
    /// Whether the sender counts the beacon as detected (`detected`).
    pub detected: Option<bool>,
    /// Pulses (bursts included) that ended during the window (`pulses`).
    pub pulses: Option<u32>,
    /// Mean power of those pulses, noise subtracted (`pulse_dbm`).
    pub pulse_dbm: Option<Dbm>,
    /// Width of the latest of those pulses, microseconds (`pulse_width_us`).
    pub pulse_width_us: Option<u32>,
    /// Start of the latest of those pulses, ns on the clock of `timestamp_ns`
    /// (`pulse_start_ns`).
    pub pulse_start_ns: Option<i64>,
    /// Start-to-start time from the pulse before it to the latest pulse, ms
    /// (`pulse_interval_ms`): a tag's period.
    pub pulse_interval_ms: Option<u32>,
    /// Power of the most recent pulse, held until the next (`last_pulse_dbm`).
    pub last_pulse_dbm: Option<Dbm>,
    /// Time from the end of that pulse to the end of the window, ms (`last_pulse_age_ms`).
    pub last_pulse_age_ms: Option<u32>,
    /// Whether a pulse that ended during the window was a burst, e.g. a 406 MHz beacon's
    /// 440/520 ms transmission (`burst`).
    pub burst: Option<bool>,
    /// The carrier's measured offset from the nominal channel centre `frequency_hz`, Hz
    /// (`offset_hz`).
    pub offset_hz: Option<OffsetHz>,
    /// Fraction of the window's samples at the receiver's rails (`clip_fraction`): above 0,
    /// `rssi_dbm` may read low.
    pub clip_fraction: Option<ClipFraction>,
    /// The EWMA weight of the newest window when `rssi_dbm` and `noise_dbm` are smoothed
    /// (`smoothing`, in `(0, 1]`); absent when they are not. The pulse keys are never
    /// smoothed.
    pub smoothing: Option<f32>,
    /// The samples behind the record were stale (`stale`): a live receiver delivered them
    /// late or far below its sample rate (a reconnecting or slow rtl_tcp server).
    pub stale: Option<bool>,
    /// Vehicle latitude at measurement time, 1e-7 degrees, WGS84 (`lat_e7`, -900000000 to
    /// 900000000). The geotag keys (`lat_e7`, `lon_e7`, `alt_m`, `heading_deg`) are present
    /// only when the vehicle's fix was 3D and under 1 s old when the record was made.
    pub lat_e7: Option<i32>,
    /// Vehicle longitude at measurement time, 1e-7 degrees, WGS84 (`lon_e7`, -1800000000 to
    /// 1800000000).
    pub lon_e7: Option<i32>,
    /// Vehicle altitude at measurement time, metres above mean sea level (`alt_m`).
    pub alt_m: Option<f32>,
    /// Vehicle heading at measurement time, degrees from true north, 0 to below 360
    /// (`heading_deg`); absent when the autopilot does not know it.
    pub heading_deg: Option<f32>,
}

impl BeaconFields {
    /// No beacon key (a protocol 1.0 record).
    pub const NONE: BeaconFields = BeaconFields {
        detected: None,
        pulses: None,
        pulse_dbm: None,
        pulse_width_us: None,
        pulse_start_ns: None,
        pulse_interval_ms: None,
        last_pulse_dbm: None,
        last_pulse_age_ms: None,
        burst: None,
        offset_hz: None,
        clip_fraction: None,
        smoothing: None,
        stale: None,
        lat_e7: None,
        lon_e7: None,
        alt_m: None,
        heading_deg: None,
    };

    /// How many of the keys are present.
    pub fn len(&self) -> usize {
        [
            self.detected.is_some(),
            self.pulses.is_some(),
            self.pulse_dbm.is_some(),
            self.pulse_width_us.is_some(),
            self.pulse_start_ns.is_some(),
            self.pulse_interval_ms.is_some(),
            self.last_pulse_dbm.is_some(),
            self.last_pulse_age_ms.is_some(),
            self.burst.is_some(),
            self.offset_hz.is_some(),
            self.clip_fraction.is_some(),
            self.smoothing.is_some(),
            self.stale.is_some(),
            self.lat_e7.is_some(),
            self.lon_e7.is_some(),
            self.alt_m.is_some(),
            self.heading_deg.is_some(),
        ]
        .into_iter()
        .filter(|&present| present)
        .count()
    }

    /// Whether no key is present.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A node's name: 1-64 bytes of UTF-8.
///
/// Cloning it is cheap (shared, not copied): a name travels with every batch of records a
/// server hands its application.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeName(Arc<str>);

impl NodeName {
    /// The longest name, in bytes.
    pub const MAX_LEN: usize = 64;

    /// Checks that `name` is 1-64 bytes long.
    ///
    /// # Errors
    ///
    /// [`ValueError::NodeNameLength`] for an empty name or one over 64 bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use sarlink_schema::NodeName;
    /// assert_eq!(NodeName::new("drone-1").unwrap().as_str(), "drone-1");
    /// assert!(NodeName::new("").is_err());
    /// ```
    pub fn new(name: impl Into<String>) -> Result<NodeName, ValueError> {
        let name = name.into();
        if (1..=Self::MAX_LEN).contains(&name.len()) {
            Ok(NodeName(Arc::from(name)))
        } else {
            Err(ValueError::NodeNameLength { len: name.len() })
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as an owned string.
    pub fn into_inner(self) -> String {
        self.0.as_ref().to_owned()
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 16-byte random nonce (`hello.nonce`, `challenge.nonce`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nonce(pub [u8; 16]);

impl Nonce {
    /// The nonce's bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

/// A 32-byte HMAC-SHA256 tag (`auth.mac`, `welcome.mac`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 32]);

impl Mac {
    /// The tag's bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A protocol version, `[major, minor]` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProtocolVersion {
    /// Incompatible revisions.
    pub major: u16,
    /// Compatible additions (new optional keys, new message types).
    pub minor: u16,
}

impl ProtocolVersion {
    /// Version 1.0.
    pub const V1_0: ProtocolVersion = ProtocolVersion { major: 1, minor: 0 };
    /// Version 1.1: 1.0 plus the optional beacon keys of the RSSI record
    /// ([`BeaconFields`]). This crate reads and writes both: the keys are optional, and a 1.0
    /// receiver ignores them.
    pub const V1_1: ProtocolVersion = ProtocolVersion { major: 1, minor: 1 };
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// What a client is (`hello.role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A drone streaming its measurements.
    Drone,
    /// A ground station.
    Ground,
    /// A read-only observer.
    Observer,
}

impl Role {
    /// The wire string: `"drone"`, `"ground"` or `"observer"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Drone => "drone",
            Role::Ground => "ground",
            Role::Observer => "observer",
        }
    }

    /// Parses a wire string; `None` for anything else.
    pub fn from_wire(s: &str) -> Option<Role> {
        match s {
            "drone" => Some(Role::Drone),
            "ground" => Some(Role::Ground),
            "observer" => Some(Role::Observer),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Units of a sender's `rssi_dbm` and `noise_dbm` values (`hello.rssi_units`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RssiUnits {
    /// Calibrated dBm (the default when `rssi_units` is absent).
    #[default]
    Dbm,
    /// Uncalibrated dB relative to the ADC's full scale.
    Dbfs,
}

impl RssiUnits {
    /// The wire string: `"dbm"` or `"dbfs"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RssiUnits::Dbm => "dbm",
            RssiUnits::Dbfs => "dbfs",
        }
    }

    /// Parses a wire string; `None` for anything else.
    pub fn from_wire(s: &str) -> Option<RssiUnits> {
        match s {
            "dbm" => Some(RssiUnits::Dbm),
            "dbfs" => Some(RssiUnits::Dbfs),
            _ => None,
        }
    }
}

/// The `code` of a `reject` or `bye`: one of the spec's [`CloseCode`]s, or a code this
/// version does not know, which receivers treat as a generic error.
///
/// Decoding never yields `Unknown` for a string that names a known code; build values with
/// [`WireCode::from_wire`] or `From<CloseCode>` to keep that property.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WireCode {
    /// A code from the spec.
    Known(CloseCode),
    /// Any other string.
    Unknown(String),
}

impl WireCode {
    /// Classifies a wire string.
    ///
    /// # Examples
    ///
    /// ```
    /// use sarlink_schema::{CloseCode, WireCode};
    /// assert_eq!(WireCode::from_wire("shutdown"), WireCode::Known(CloseCode::Shutdown));
    /// assert_eq!(WireCode::from_wire("gremlins").close_code(), None);
    /// ```
    pub fn from_wire(s: &str) -> WireCode {
        match CloseCode::from_wire(s) {
            Some(code) => WireCode::Known(code),
            None => WireCode::Unknown(s.to_owned()),
        }
    }

    /// The wire string.
    pub fn as_str(&self) -> &str {
        match self {
            WireCode::Known(code) => code.as_str(),
            WireCode::Unknown(s) => s,
        }
    }

    /// The known code, or `None` for an unknown one (a generic error).
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            WireCode::Known(code) => Some(*code),
            WireCode::Unknown(_) => None,
        }
    }
}

impl From<CloseCode> for WireCode {
    fn from(code: CloseCode) -> WireCode {
        WireCode::Known(code)
    }
}

impl fmt::Display for WireCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a drone refused a command (`ack.code`).
///
/// The spec names these four "such as"; any other string is kept as `Other`. Decoding never
/// yields `Other` for one of the four named codes; build values with
/// [`AckCode::from_wire`] to keep that property.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AckCode {
    /// A parameter is out of the hardware's range.
    Range,
    /// Refused for safety.
    Safety,
    /// The drone cannot do it now.
    Busy,
    /// The drone does not implement the op (also the answer to [`crate::CmdOp::Unknown`]).
    Unsupported,
    /// Any other code.
    Other(String),
}

impl AckCode {
    /// Classifies a wire string.
    pub fn from_wire(s: &str) -> AckCode {
        match s {
            "range" => AckCode::Range,
            "safety" => AckCode::Safety,
            "busy" => AckCode::Busy,
            "unsupported" => AckCode::Unsupported,
            other => AckCode::Other(other.to_owned()),
        }
    }

    /// The wire string.
    pub fn as_str(&self) -> &str {
        match self {
            AckCode::Range => "range",
            AckCode::Safety => "safety",
            AckCode::Busy => "busy",
            AckCode::Unsupported => "unsupported",
            AckCode::Other(s) => s,
        }
    }
}

impl fmt::Display for AckCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_accepts_0_to_100_only() {
        assert_eq!(QualityScore::new(0).unwrap().get(), 0);
        assert_eq!(QualityScore::new(100).unwrap(), QualityScore::MAX);
        assert_eq!(
            QualityScore::new(101),
            Err(ValueError::QualityOutOfRange { value: 101 })
        );
        assert_eq!(
            QualityScore::new(255),
            Err(ValueError::QualityOutOfRange { value: 255 })
        );
    }

    #[test]
    fn a_record_is_copy_and_small() {
        // The link's sample ring copies records: they stay `Copy` and small (1.0 fields took
        // 40 bytes; the 1.1 keys, beacon, provenance and geotag, add at most 128, so a full
        // 65,536-record ring stays under 11 MiB).
        fn copy<T: Copy>() {}
        copy::<RssiRecord>();
        copy::<BeaconFields>();
        let size = std::mem::size_of::<RssiRecord>();
        assert!(size <= 168, "{size} bytes");
    }

    #[test]
    fn beacon_values_are_validated() {
        assert_eq!(ClipFraction::new(1.0).unwrap().get(), 1.0);
        assert_eq!(ClipFraction::new(0.0).unwrap(), ClipFraction::ZERO);
        for bad in [-0.001, 1.001, f32::NAN, f32::INFINITY] {
            assert!(matches!(
                ClipFraction::new(bad),
                Err(ValueError::ClipFractionOutOfRange { .. })
            ));
        }
        assert!(matches!(
            OffsetHz::new(f32::NAN),
            Err(ValueError::NotFinite { what: "Hz", .. })
        ));
        assert_eq!(OffsetHz::new(-7000.5).unwrap().get(), -7000.5);
        assert!(BeaconFields::NONE.is_empty());
        let some = BeaconFields {
            burst: Some(false),
            pulses: Some(0),
            ..BeaconFields::default()
        };
        assert_eq!(some.len(), 2);
        assert_eq!(BeaconFields::default(), BeaconFields::NONE);
    }

    #[test]
    fn levels_must_be_finite() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            assert!(matches!(
                Dbm::new(bad),
                Err(ValueError::NotFinite { what: "dBm", .. })
            ));
            assert!(matches!(
                Db::new(bad),
                Err(ValueError::NotFinite { what: "dB", .. })
            ));
        }
        assert_eq!(Dbm::new(-0.0).unwrap().get(), 0.0);
        assert_eq!(Db::new(f32::MAX).unwrap().get(), f32::MAX);
    }

    #[test]
    fn frequency_must_be_nonzero() {
        assert_eq!(FrequencyHz::new(0), Err(ValueError::ZeroFrequency));
        assert_eq!(FrequencyHz::new(u64::MAX).unwrap().get(), u64::MAX);
    }

    #[test]
    fn node_name_is_1_to_64_bytes() {
        assert_eq!(
            NodeName::new(""),
            Err(ValueError::NodeNameLength { len: 0 })
        );
        assert!(NodeName::new("x".repeat(64)).is_ok());
        assert_eq!(
            NodeName::new("x".repeat(65)),
            Err(ValueError::NodeNameLength { len: 65 })
        );
        // 32 two-byte characters are 64 bytes; 33 are too many.
        assert!(NodeName::new("é".repeat(32)).is_ok());
        assert_eq!(
            NodeName::new("é".repeat(33)),
            Err(ValueError::NodeNameLength { len: 66 })
        );
    }

    #[test]
    fn source_id_names_the_two_assigned_sources() {
        assert_eq!(SourceId::DRONE.get(), 0);
        assert_eq!(SourceId::GROUND.get(), 1);
        assert_eq!(SourceId::new(7).to_string(), "source 7");
        assert_eq!(SourceId::GROUND.to_string(), "ground");
    }

    #[test]
    fn codes_round_trip_through_their_wire_strings() {
        for code in CloseCode::ALL {
            assert_eq!(WireCode::from_wire(code.as_str()), WireCode::Known(code));
        }
        assert_eq!(
            WireCode::from_wire("nope"),
            WireCode::Unknown("nope".into())
        );
        for s in ["range", "safety", "busy", "unsupported", "battery"] {
            assert_eq!(AckCode::from_wire(s).as_str(), s);
        }
        assert_eq!(
            AckCode::from_wire("battery"),
            AckCode::Other("battery".into())
        );
        for role in [Role::Drone, Role::Ground, Role::Observer] {
            assert_eq!(Role::from_wire(role.as_str()), Some(role));
        }
        assert_eq!(Role::from_wire("pilot"), None);
        assert_eq!(RssiUnits::from_wire("dbfs"), Some(RssiUnits::Dbfs));
        assert_eq!(RssiUnits::default(), RssiUnits::Dbm);
    }
}
