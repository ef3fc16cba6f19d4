//! Drone safety levels and their authority over ground commands; the conflict table is
//! on [`SafetyLevel::conflicts_with`].

use std::fmt;
use std::time::Duration;

use sarlink_schema::{Ack, AckCode, Cmd, CmdOp, FrequencyHz};

/// A safety level on the drone, in order of precedence (highest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SafetyLevel {
    /// Emergency stop engaged.
    EmergencyStop,
    /// The flight controller is in a mode the ground does not command (manual, RTL, land).
    FlightMode,
    /// At or beyond the geofence.
    Geofence,
    /// Battery below its reserve.
    Battery,
    /// Communication with the ground is degraded.
    Communication,
    /// The drone's own signal lock on the beacon is weak.
    Signal,
    /// The machine is short of CPU, memory or cooling and the drone is shedding work.
    Resources,
}

impl SafetyLevel {
    /// Every level, highest precedence first.
    pub const ALL: [SafetyLevel; 7] = [
        SafetyLevel::EmergencyStop,
        SafetyLevel::FlightMode,
        SafetyLevel::Geofence,
        SafetyLevel::Battery,
        SafetyLevel::Communication,
        SafetyLevel::Signal,
        SafetyLevel::Resources,
    ];

    /// Lower-case snake-case name, e.g. `"emergency_stop"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SafetyLevel::EmergencyStop => "emergency_stop",
            SafetyLevel::FlightMode => "flight_mode",
            SafetyLevel::Geofence => "geofence",
            SafetyLevel::Battery => "battery",
            SafetyLevel::Communication => "communication",
            SafetyLevel::Signal => "signal",
            SafetyLevel::Resources => "resources",
        }
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// Whether a ground command `op` conflicts with this level ("R" = refused with
    /// `safety`):
    ///
    /// | op / level   | emergency_stop | flight_mode | geofence | battery | communication | signal | resources |
    /// |--------------|:--:|:--:|:--:|:--:|:--:|:--:|:--:|
    /// | `tune`       | R | R | R | R | R | R |   |
    /// | `gain`       | R | R |   |   |   | R |   |
    /// | `gain_auto`  | R | R |   |   |   | R |   |
    /// | `rate`       | R |   |   | R | R |   | R |
    /// | `stream`     | R | R |   |   | R |   |   |
    ///
    /// Why: an emergency stop freezes everything. Retuning changes what the drone homes on,
    /// so it conflicts with every safety state. The flight controller owns the mission in a
    /// non-homing flight mode, so the ground may neither retune, re-gain, nor silence the
    /// stream. While re-acquiring a weak signal the receiver settings must not change under
    /// the drone. With a low battery or a poor link the drone chooses its own report rate
    /// (more reports cost power and bandwidth), and with a poor link it also owns the
    /// stream switch. While the machine sheds load the drone steps its own report rate, so
    /// the ground may not set one.
    pub const fn conflicts_with(self, op: CommandOp) -> bool {
        use CommandOp as O;
        use SafetyLevel as L;
        match self {
            L::EmergencyStop => true,
            L::FlightMode => matches!(op, O::Tune | O::Gain | O::GainAuto | O::Stream),
            L::Geofence => matches!(op, O::Tune),
            L::Battery => matches!(op, O::Tune | O::Rate),
            L::Communication => matches!(op, O::Tune | O::Rate | O::Stream),
            L::Signal => matches!(op, O::Tune | O::Gain | O::GainAuto),
            L::Resources => matches!(op, O::Rate),
        }
    }
}

impl fmt::Display for SafetyLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The set of safety levels active on the drone; empty means nominal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SafetyState(u8);

impl SafetyState {
    /// No safety level active.
    pub const NOMINAL: SafetyState = SafetyState(0);
    const ALL_BITS: u8 = (1 << SafetyLevel::ALL.len()) - 1;

    /// This state with `level` active too.
    #[must_use]
    pub const fn with(self, level: SafetyLevel) -> Self {
        SafetyState(self.0 | level.bit())
    }

    /// This state with `level` cleared.
    #[must_use]
    pub const fn without(self, level: SafetyLevel) -> Self {
        SafetyState(self.0 & !level.bit())
    }

    /// Whether `level` is active.
    pub const fn contains(self, level: SafetyLevel) -> bool {
        self.0 & level.bit() != 0
    }

    /// Whether no level is active.
    pub const fn is_nominal(self) -> bool {
        self.0 == 0
    }

    /// The active level with the highest precedence.
    pub fn highest(self) -> Option<SafetyLevel> {
        self.iter().next()
    }

    /// The active levels, highest precedence first.
    pub fn iter(self) -> impl Iterator<Item = SafetyLevel> {
        SafetyLevel::ALL
            .into_iter()
            .filter(move |l| self.contains(*l))
    }

    /// The raw bit set (bit `n` = the `n`-th entry of [`SafetyLevel::ALL`]).
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Rebuilds a state from [`SafetyState::bits`]; `None` when an unknown bit is set.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        if bits & !Self::ALL_BITS != 0 {
            None
        } else {
            Some(SafetyState(bits))
        }
    }

    /// Decides whether a ground command may run in this state.
    ///
    /// # Errors
    /// [`Refusal::Safety`] naming the highest active level that conflicts with `op`.
    ///
    /// # Examples
    /// ```
    /// use sarlink_coord::{CommandOp, SafetyLevel, SafetyState};
    ///
    /// let s = SafetyState::NOMINAL.with(SafetyLevel::Battery);
    /// assert!(s.authorize(CommandOp::Gain).is_ok());
    /// let refusal = s.authorize(CommandOp::Rate).unwrap_err();
    /// assert_eq!(refusal.code(), "safety");
    /// ```
    pub fn authorize(self, op: CommandOp) -> Result<(), Refusal> {
        match self.iter().find(|level| level.conflicts_with(op)) {
            Some(level) => Err(Refusal::Safety { level, op }),
            None => Ok(()),
        }
    }
}

impl SafetyState {
    /// [`SafetyState::authorize`] for a decoded `cmd`. An op this crate does not know
    /// ([`CmdOp::Unknown`]) is not a safety matter and passes; the drone answers it
    /// `unsupported` itself.
    ///
    /// # Errors
    /// As [`SafetyState::authorize`]; turn the refusal into the `ack` with
    /// [`Refusal::to_ack`].
    ///
    /// # Examples
    /// ```
    /// use sarlink_coord::{SafetyLevel, SafetyState};
    /// use sarlink_schema::{AckCode, Cmd, CmdOp, FrequencyHz};
    ///
    /// let cmd = Cmd { id: 7, target: None, op: CmdOp::Tune { frequency_hz: FrequencyHz::new(406_028_000)? } };
    /// let state = SafetyState::NOMINAL.with(SafetyLevel::Geofence);
    /// let ack = state.authorize_cmd(&cmd).unwrap_err().to_ack(cmd.id);
    /// assert_eq!((ack.id, ack.ok, ack.code), (7, false, Some(AckCode::Safety)));
    /// # Ok::<(), sarlink_schema::ValueError>(())
    /// ```
    pub fn authorize_cmd(self, cmd: &Cmd) -> Result<(), Refusal> {
        match CommandOp::from_cmd(&cmd.op) {
            Some(op) => self.authorize(op),
            None => Ok(()),
        }
    }
}

/// A ground command operation (wire spec, section 3.2, "Command ops").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandOp {
    /// `tune`: change the centre frequency.
    Tune,
    /// `gain`: set a manual gain.
    Gain,
    /// `gain_auto`: switch to automatic gain.
    GainAuto,
    /// `rate`: change the RSSI report rate.
    Rate,
    /// `stream`: start or stop the RSSI stream.
    Stream,
}

impl CommandOp {
    /// The wire name of the op.
    pub const fn as_str(self) -> &'static str {
        match self {
            CommandOp::Tune => "tune",
            CommandOp::Gain => "gain",
            CommandOp::GainAuto => "gain_auto",
            CommandOp::Rate => "rate",
            CommandOp::Stream => "stream",
        }
    }

    /// The op of a decoded command; `None` for [`CmdOp::Unknown`].
    pub fn from_cmd(op: &CmdOp) -> Option<Self> {
        match op {
            CmdOp::Tune { .. } => Some(CommandOp::Tune),
            CmdOp::Gain { .. } => Some(CommandOp::Gain),
            CmdOp::GainAuto => Some(CommandOp::GainAuto),
            CmdOp::Rate { .. } => Some(CommandOp::Rate),
            CmdOp::Stream { .. } => Some(CommandOp::Stream),
            CmdOp::Unknown { .. } => None,
        }
    }

    /// Parses a wire op name; `None` for an unknown op.
    pub fn from_wire(op: &str) -> Option<Self> {
        match op {
            "tune" => Some(CommandOp::Tune),
            "gain" => Some(CommandOp::Gain),
            "gain_auto" => Some(CommandOp::GainAuto),
            "rate" => Some(CommandOp::Rate),
            "stream" => Some(CommandOp::Stream),
            _ => None,
        }
    }
}

/// Who asked for something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The drone's own logic.
    Drone,
    /// A ground station or observer command.
    Ground,
}

/// Why a ground command is refused; the drone answers it with `ack ok:false` and
/// [`Refusal::code`] as `code` and the `Display` text as `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// A drone safety level conflicts with the command.
    Safety {
        /// The highest active level that conflicts.
        level: SafetyLevel,
        /// The refused op.
        op: CommandOp,
    },
    /// A concurrent drone request for the same setting won (it was newer, or tied).
    Superseded {
        /// The refused op.
        op: CommandOp,
    },
}

impl Refusal {
    /// The `ack` `code`: `"safety"` or `"busy"`.
    pub const fn code(&self) -> &'static str {
        match self {
            Refusal::Safety { .. } => "safety",
            Refusal::Superseded { .. } => "busy",
        }
    }
}

impl Refusal {
    /// The `ack` code as the schema's type: [`AckCode::Safety`] or [`AckCode::Busy`].
    pub fn ack_code(&self) -> AckCode {
        match self {
            Refusal::Safety { .. } => AckCode::Safety,
            Refusal::Superseded { .. } => AckCode::Busy,
        }
    }

    /// The `ack` refusing command `id`: `ok: false`, [`Refusal::ack_code`], and this
    /// refusal's `Display` text as `reason`.
    pub fn to_ack(&self, id: u32) -> Ack {
        Ack::refuse(id, self.ack_code(), self.to_string())
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Safety { level, op } => {
                write!(
                    f,
                    "{} refused: drone safety level {level} is active",
                    op.as_str()
                )
            }
            Refusal::Superseded { op } => {
                write!(
                    f,
                    "{} refused: superseded by the drone's own request",
                    op.as_str()
                )
            }
        }
    }
}

/// A request for a centre frequency, from the drone or the ground.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrequencyRequest {
    /// The requested centre frequency.
    pub frequency_hz: FrequencyHz,
    /// When the request was issued, on the coordinator's clock.
    pub issued_at: Duration,
}

/// The outcome of [`resolve_frequency`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrequencyResolution {
    /// Whose request won.
    pub winner: Origin,
    /// The frequency to tune to.
    pub frequency_hz: FrequencyHz,
    /// The refusal to send for the ground's `tune` when the drone won.
    pub ground_refusal: Option<Refusal>,
}

/// Arbitrates concurrent frequency requests from the drone and the ground.
///
/// In a safety state the drone's request wins and the ground's is refused with
/// [`Refusal::Safety`]; otherwise the newest wins, and ties go to the drone (the ground's
/// request is then refused with [`Refusal::Superseded`], code `busy`).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use sarlink_coord::{FrequencyRequest, Origin, SafetyState, resolve_frequency};
/// use sarlink_schema::FrequencyHz;
///
/// let hz = |f| FrequencyHz::new(f).unwrap();
/// let drone = FrequencyRequest { frequency_hz: hz(406_025_000), issued_at: Duration::from_secs(1) };
/// let ground = FrequencyRequest { frequency_hz: hz(406_028_000), issued_at: Duration::from_secs(2) };
/// let r = resolve_frequency(SafetyState::NOMINAL, drone, ground);
/// assert_eq!(r.winner, Origin::Ground);
/// assert_eq!(r.frequency_hz.get(), 406_028_000);
/// ```
pub fn resolve_frequency(
    safety: SafetyState,
    drone: FrequencyRequest,
    ground: FrequencyRequest,
) -> FrequencyResolution {
    let drone_wins = |ground_refusal| FrequencyResolution {
        winner: Origin::Drone,
        frequency_hz: drone.frequency_hz,
        ground_refusal: Some(ground_refusal),
    };
    if let Err(refusal) = safety.authorize(CommandOp::Tune) {
        return drone_wins(refusal);
    }
    if ground.issued_at > drone.issued_at {
        FrequencyResolution {
            winner: Origin::Ground,
            frequency_hz: ground.frequency_hz,
            ground_refusal: None,
        }
    } else {
        drone_wins(Refusal::Superseded {
            op: CommandOp::Tune,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip_and_reject_unknown() {
        let s = SafetyState::NOMINAL
            .with(SafetyLevel::Signal)
            .with(SafetyLevel::Geofence);
        assert_eq!(SafetyState::from_bits(s.bits()), Some(s));
        assert_eq!(SafetyState::from_bits(0x80), None);
        assert_eq!(s.highest(), Some(SafetyLevel::Geofence));
        assert_eq!(
            s.without(SafetyLevel::Geofence).highest(),
            Some(SafetyLevel::Signal)
        );
    }

    #[test]
    fn op_names_round_trip() {
        for op in [
            CommandOp::Tune,
            CommandOp::Gain,
            CommandOp::GainAuto,
            CommandOp::Rate,
            CommandOp::Stream,
        ] {
            assert_eq!(CommandOp::from_wire(op.as_str()), Some(op));
        }
        assert_eq!(CommandOp::from_wire("launch"), None);
        assert_eq!(
            CommandOp::from_cmd(&CmdOp::Unknown {
                op: "launch".into()
            }),
            None
        );
        assert_eq!(
            CommandOp::from_cmd(&CmdOp::Rate { hz: 5.0 }),
            Some(CommandOp::Rate)
        );
    }

    #[test]
    fn refusals_map_to_acks() {
        let r = Refusal::Superseded {
            op: CommandOp::Tune,
        };
        let ack = r.to_ack(3);
        assert_eq!((ack.id, ack.ok, ack.code), (3, false, Some(AckCode::Busy)));
        assert_eq!(
            ack.reason.as_deref(),
            Some("tune refused: superseded by the drone's own request")
        );
        let unknown = Cmd {
            id: 1,
            target: None,
            op: CmdOp::Unknown { op: "x".into() },
        };
        let all = SafetyLevel::ALL
            .into_iter()
            .fold(SafetyState::NOMINAL, SafetyState::with);
        assert_eq!(all.authorize_cmd(&unknown), Ok(()));
    }
}
