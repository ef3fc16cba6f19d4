//! The MAVLink driver: the port to the flight controller (serial, UDP, TCP) or a simulated
//! vehicle, read and written on threads of their own so a silent, slow or garbage-speaking
//! port can never stall measuring.
//!
//! [`MavlinkLink::spawn`] starts a reader thread (`sarlink-mav-rx`: opens the port, retries
//! every second while it cannot, decodes frames and hands them over a bounded channel of
//! [`INBOUND_CAPACITY`], dropping when full) and a writer thread (`sarlink-mav-tx`: sends
//! what [`MavlinkLink::send`] queues, up to [`OUTBOUND_CAPACITY`] waiting, dropping when
//! full). Bytes that are not MAVLink are skipped by the decoder.

use std::fs::{File, OpenOptions};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use mavlink::dialects::ardupilotmega::{
    GLOBAL_POSITION_INT_DATA, GPS_RAW_INT_DATA, GpsFixType, HEARTBEAT_DATA, MavAutopilot,
    MavMessage, MavModeFlag, MavState, MavType, SYS_STATUS_DATA,
};
use mavlink::error::MessageReadError;
use mavlink::{MavConnection as _, MavHeader, MavlinkReader, MavlinkVersion};
use parking_lot::Mutex;

use crate::vehicle::MavlinkUrl;

/// Messages from the port waiting for the drone's main loop.
pub const INBOUND_CAPACITY: usize = 256;
/// Messages waiting to be written to the port.
pub const OUTBOUND_CAPACITY: usize = 256;
/// Delay before reopening a port that failed.
const RETRY: Duration = Duration::from_secs(1);

/// A message from the MAVLink network.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The sender's system id.
    pub system_id: u8,
    /// The sender's component id.
    pub component_id: u8,
    /// The message.
    pub message: MavMessage,
}

/// Counters of a [`MavlinkLink`].
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Messages decoded.
    pub received: AtomicU64,
    /// Frames that the decoder reported as not decodable (an unknown message id, a bad
    /// enum value); bytes that are not a frame at all are skipped silently.
    pub garbage: AtomicU64,
    /// Inbound messages dropped because the main loop was behind.
    pub inbound_dropped: AtomicU64,
    /// Messages written.
    pub sent: AtomicU64,
    /// Outbound messages dropped (queue full, port closed, or a write failed).
    pub outbound_dropped: AtomicU64,
}

/// The simulated vehicle's flight: its distance to the beacon, metres, at a time since it
/// started.
#[derive(Clone)]
pub struct SimFlight(pub Arc<dyn Fn(Duration) -> f64 + Send + Sync>);

impl std::fmt::Debug for SimFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimFlight")
    }
}

static PROCESS_START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Marks the process's start, which `time_boot_ms` counts from: call first thing in `main`
/// (later calls change nothing). Until called, the first call of [`since_start`] marks it.
pub fn mark_process_start() {
    PROCESS_START.get_or_init(Instant::now);
}

/// Time since [`mark_process_start`].
pub fn since_start() -> Duration {
    PROCESS_START.get_or_init(Instant::now).elapsed()
}

/// Where the simulated vehicle's beacon is: latitude and longitude, degrees.
pub const SIM_BEACON: (f64, f64) = (-33.865_143, 151.209_900);

/// A running connection to the flight controller.
#[derive(Debug)]
pub struct MavlinkLink {
    inbound: Receiver<Inbound>,
    outbound: Sender<MavMessage>,
    system_id: Arc<AtomicU8>,
    counters: Arc<LinkCounters>,
    stop: Arc<AtomicBool>,
}

/// A MAVLink port: the mavlink crate's UDP and TCP connections, or a serial device opened
/// here (the crate's own serial transport needs an MPL-2.0 dependency).
enum Port {
    Net(mavlink::Connection<MavMessage>),
    Serial {
        reader: Mutex<MavlinkReader<File>>,
        writer: Mutex<File>,
    },
}

impl Port {
    fn open(url: &MavlinkUrl) -> io::Result<Port> {
        match url {
            MavlinkUrl::Serial { path, baud } => {
                let file = OpenOptions::new().read(true).write(true).open(path)?;
                let mut t = rustix::termios::tcgetattr(&file)?;
                t.make_raw();
                t.set_speed(*baud)?;
                rustix::termios::tcsetattr(&file, rustix::termios::OptionalActions::Now, &t)?;
                let writer = file.try_clone()?;
                Ok(Port::Serial {
                    reader: Mutex::new(MavlinkReader::new(file)),
                    writer: Mutex::new(writer),
                })
            }
            MavlinkUrl::UdpIn(_) | MavlinkUrl::UdpOut(_) | MavlinkUrl::TcpOut(_) => {
                let mut c = mavlink::connect::<MavMessage>(&url.to_string())?;
                c.set_protocol_version(MavlinkVersion::V2);
                c.set_allow_recv_any_version(true);
                Ok(Port::Net(c))
            }
            MavlinkUrl::Sim => Err(io::Error::other("the simulated vehicle has no port")),
        }
    }

    fn recv(&self) -> Result<(MavHeader, MavMessage), MessageReadError> {
        match self {
            Port::Net(c) => c.recv(),
            Port::Serial { reader, .. } => reader.lock().read_any_message::<MavMessage>(),
        }
    }

    fn send(&self, header: &MavHeader, msg: &MavMessage) -> bool {
        match self {
            Port::Net(c) => c.send(header, msg).is_ok(),
            Port::Serial { writer, .. } => {
                mavlink::write_v2_msg(&mut *writer.lock(), *header, msg).is_ok()
            }
        }
    }
}

impl MavlinkLink {
    /// Starts talking to the flight controller at `url` as component `component_id`, or
    /// starts the simulated vehicle (`sim`, flying `flight`; a straight approach when
    /// `None`). The port is opened on the reader thread, and reopened every second while it
    /// fails, so a vehicle that is not there yet does not stop the drone.
    ///
    /// # Errors
    /// When a thread cannot be started.
    pub fn spawn(
        url: &MavlinkUrl,
        component_id: u8,
        flight: Option<SimFlight>,
    ) -> io::Result<MavlinkLink> {
        let (in_tx, inbound) = bounded(INBOUND_CAPACITY);
        let (outbound, out_rx) = bounded::<MavMessage>(OUTBOUND_CAPACITY);
        let system_id = Arc::new(AtomicU8::new(1));
        let counters = Arc::new(LinkCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let link = MavlinkLink {
            inbound,
            outbound,
            system_id: Arc::clone(&system_id),
            counters: Arc::clone(&counters),
            stop: Arc::clone(&stop),
        };
        if *url == MavlinkUrl::Sim {
            let flight = flight.unwrap_or_else(|| {
                SimFlight(Arc::new(|t: Duration| {
                    (3000.0 - 20.0 * t.as_secs_f64()).max(100.0)
                }))
            });
            thread::Builder::new()
                .name("sarlink-mav-sim".into())
                .spawn(move || simulate(&flight, &in_tx, &out_rx, &counters, &stop))?;
            return Ok(link);
        }
        let slot: Arc<Mutex<Option<Arc<Port>>>> = Arc::new(Mutex::new(None));
        {
            let (url, slot, counters, stop) = (
                url.clone(),
                Arc::clone(&slot),
                Arc::clone(&counters),
                Arc::clone(&stop),
            );
            thread::Builder::new()
                .name("sarlink-mav-rx".into())
                .spawn(move || read_loop(&url, &slot, &in_tx, &counters, &stop))?;
        }
        thread::Builder::new()
            .name("sarlink-mav-tx".into())
            .spawn(move || {
                let mut sequence = 0u8;
                for msg in &out_rx {
                    let port = slot.lock().clone();
                    let header = MavHeader {
                        system_id: system_id.load(Ordering::Relaxed),
                        component_id,
                        sequence,
                    };
                    sequence = sequence.wrapping_add(1);
                    let sent = port.is_some_and(|p| p.send(&header, &msg));
                    let counter = if sent {
                        &counters.sent
                    } else {
                        &counters.outbound_dropped
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })?;
        Ok(link)
    }

    /// Messages from the network.
    pub fn events(&self) -> &Receiver<Inbound> {
        &self.inbound
    }

    /// Queues `msg` for the port; dropped (and counted) when the queue is full.
    pub fn send(&self, msg: MavMessage) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.outbound.try_send(msg)
        {
            self.counters
                .outbound_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends as system `id` from now on (the vehicle's, once its heartbeat is heard).
    pub fn set_system_id(&self, id: u8) {
        self.system_id.store(id, Ordering::Relaxed);
    }

    /// The counters.
    pub fn counters(&self) -> &LinkCounters {
        &self.counters
    }
}

impl Drop for MavlinkLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn read_loop(
    url: &MavlinkUrl,
    slot: &Mutex<Option<Arc<Port>>>,
    tx: &Sender<Inbound>,
    counters: &LinkCounters,
    stop: &AtomicBool,
) {
    let mut warned = false;
    while !stop.load(Ordering::Relaxed) {
        let port = match Port::open(url) {
            Ok(p) => Arc::new(p),
            Err(e) => {
                if !warned {
                    tracing::warn!(%url, error = %e, "cannot open the MAVLink port; retrying every second");
                    warned = true;
                }
                thread::sleep(RETRY);
                continue;
            }
        };
        tracing::info!(%url, "MAVLink port open");
        warned = false;
        *slot.lock() = Some(Arc::clone(&port));
        let mut failures = 0u32;
        while !stop.load(Ordering::Relaxed) {
            match port.recv() {
                Ok((h, message)) => {
                    failures = 0;
                    counters.received.fetch_add(1, Ordering::Relaxed);
                    let inbound = Inbound {
                        system_id: h.system_id,
                        component_id: h.component_id,
                        message,
                    };
                    if tx.try_send(inbound).is_err() {
                        counters.inbound_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(MessageReadError::Parse(_)) => {
                    counters.garbage.fetch_add(1, Ordering::Relaxed);
                }
                Err(MessageReadError::Io(e)) => {
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) {
                        continue;
                    }
                    failures += 1;
                    // A TCP peer that closed, or a port that keeps failing: reopen it.
                    let reopen = matches!(url, MavlinkUrl::TcpOut(_))
                        && e.kind() == io::ErrorKind::UnexpectedEof
                        || failures >= 10;
                    if reopen {
                        tracing::warn!(%url, error = %e, "the MAVLink port failed; reopening");
                        break;
                    }
                    thread::sleep(Duration::from_millis(100));
                }
            }
        }
        *slot.lock() = None;
        thread::sleep(RETRY);
    }
}

/// The simulated vehicle: an ArduCopter in GUIDED with a 3D fix, flying from the north
/// straight towards [`SIM_BEACON`] as `flight` says, its battery draining slowly; heartbeat
/// at 1 Hz, position at 10 Hz. What the drone sends it is counted and discarded.
fn simulate(
    flight: &SimFlight,
    tx: &Sender<Inbound>,
    sent: &Receiver<MavMessage>,
    counters: &LinkCounters,
    stop: &AtomicBool,
) {
    let start = Instant::now();
    let mut next_heartbeat = start;
    let metres_per_degree = 111_320.0;
    while !stop.load(Ordering::Relaxed) {
        let t = start.elapsed();
        let mut msgs = Vec::with_capacity(4);
        if Instant::now() >= next_heartbeat {
            next_heartbeat += Duration::from_secs(1);
            msgs.push(MavMessage::HEARTBEAT(HEARTBEAT_DATA {
                custom_mode: 4, // GUIDED
                mavtype: MavType::MAV_TYPE_QUADROTOR,
                autopilot: MavAutopilot::MAV_AUTOPILOT_ARDUPILOTMEGA,
                base_mode: MavModeFlag::MAV_MODE_FLAG_SAFETY_ARMED
                    | MavModeFlag::MAV_MODE_FLAG_CUSTOM_MODE_ENABLED,
                system_status: MavState::MAV_STATE_ACTIVE,
                mavlink_version: 3,
            }));
            let pct = (95.0 - t.as_secs_f64() / 20.0).max(30.0);
            msgs.push(MavMessage::SYS_STATUS(SYS_STATUS_DATA {
                voltage_battery: 15_800,
                // Clamped to 30-95 above, so it fits.
                battery_remaining: pct as i8,
                ..SYS_STATUS_DATA::DEFAULT
            }));
            msgs.push(MavMessage::GPS_RAW_INT(GPS_RAW_INT_DATA {
                fix_type: GpsFixType::GPS_FIX_TYPE_3D_FIX,
                satellites_visible: 14,
                ..GPS_RAW_INT_DATA::DEFAULT
            }));
        }
        let north_m = (flight.0)(t).max(0.0);
        let lat = SIM_BEACON.0 + north_m / metres_per_degree;
        msgs.push(MavMessage::GLOBAL_POSITION_INT(GLOBAL_POSITION_INT_DATA {
            time_boot_ms: u32::try_from(t.as_millis()).unwrap_or(u32::MAX),
            // Degrees within range, so the 1e-7 values fit an i32.
            lat: (lat * 1e7).round() as i32,
            lon: (SIM_BEACON.1 * 1e7).round() as i32,
            alt: 120_000,
            relative_alt: 60_000,
            hdg: 18_000, // heading south, to the beacon
            ..GLOBAL_POSITION_INT_DATA::DEFAULT
        }));
        for message in msgs {
            let inbound = Inbound {
                system_id: 1,
                component_id: 1,
                message,
            };
            if tx.try_send(inbound).is_err() {
                counters.inbound_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        while sent.try_recv().is_ok() {
            counters.sent.fetch_add(1, Ordering::Relaxed);
        }
        thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulated_vehicle_flies_towards_the_beacon() {
        let flight = SimFlight(Arc::new(|t: Duration| 1000.0 - 2000.0 * t.as_secs_f64()));
        let link = MavlinkLink::spawn(&MavlinkUrl::Sim, 191, Some(flight)).unwrap();
        let mut lats = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while lats.len() < 5 && Instant::now() < deadline {
            if let Ok(m) = link.events().recv_timeout(Duration::from_secs(1)) {
                if let MavMessage::GLOBAL_POSITION_INT(p) = m.message {
                    lats.push(p.lat);
                }
            }
        }
        assert_eq!(lats.len(), 5);
        assert!(lats.windows(2).all(|w| w[1] <= w[0]), "{lats:?}");
        assert!(lats[4] < lats[0], "{lats:?}");
    }

    #[test]
    fn a_serial_stream_of_random_bytes_with_frames_between_never_panics_the_decoder() {
        use crate::vehicle::VehicleTracker;
        let mut stream = Vec::new();
        let mut x = 0x9e37_79b9_u32;
        for i in 0..200u8 {
            for _ in 0..(usize::from(i) * 7 % 300) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                // The low byte of the xorshift state.
                stream.push(x as u8);
            }
            let header = MavHeader {
                system_id: 3,
                component_id: 1,
                sequence: i,
            };
            mavlink::write_v2_msg(&mut stream, header, &crate::vehicle::heartbeat()).unwrap();
        }
        let mut reader = MavlinkReader::new(std::io::Cursor::new(stream));
        let mut tracker = VehicleTracker::new(Duration::ZERO, 191);
        let (mut frames, mut errors) = (0, 0);
        loop {
            match reader.read_any_message::<MavMessage>() {
                Ok((h, m)) => {
                    frames += 1;
                    tracker.handle(Duration::ZERO, h.system_id, h.component_id, &m);
                }
                Err(MessageReadError::Io(_)) => break,
                Err(MessageReadError::Parse(_)) => errors += 1,
            }
        }
        // Garbage can swallow the frame right after it (a false start of frame), never
        // the decoder.
        assert!(frames >= 150, "{frames} frames, {errors} parse errors");
    }

    #[test]
    fn garbage_on_a_udp_port_is_skipped_and_a_heartbeat_after_it_decodes() {
        use std::net::UdpSocket;
        let vehicle = UdpSocket::bind("127.0.0.1:0").unwrap();
        let url = MavlinkUrl::UdpOut(vehicle.local_addr().unwrap().to_string());
        let link = MavlinkLink::spawn(&url, 191, None).unwrap();
        // The drone speaks first (udpout), so the vehicle learns its address.
        let mut buf = [0u8; 512];
        let deadline = Instant::now() + Duration::from_secs(10);
        let drone = loop {
            link.send(crate::vehicle::heartbeat());
            vehicle
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            if let Ok((_, from)) = vehicle.recv_from(&mut buf) {
                break from;
            }
            assert!(Instant::now() < deadline, "no heartbeat from the drone");
        };
        let mut x = 0x2545_f491_u32;
        for _ in 0..200 {
            let garbage: Vec<u8> = (0..200)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    // The low byte of the xorshift state.
                    x as u8
                })
                .collect();
            vehicle.send_to(&garbage, drone).unwrap();
        }
        let mut frame = Vec::new();
        mavlink::write_v2_msg(
            &mut frame,
            MavHeader {
                system_id: 9,
                component_id: 1,
                sequence: 0,
            },
            &crate::vehicle::heartbeat(),
        )
        .unwrap();
        // A vehicle keeps sending heartbeats: a later one gets through even if the garbage
        // ended in what looked like the start of a frame.
        let deadline = Instant::now() + Duration::from_secs(10);
        let got = loop {
            assert!(
                Instant::now() < deadline,
                "no heartbeat decoded after the garbage"
            );
            vehicle.send_to(&frame, drone).unwrap();
            if let Ok(m) = link.events().recv_timeout(Duration::from_millis(200)) {
                if m.system_id == 9 {
                    break m;
                }
            }
        };
        assert!(matches!(got.message, MavMessage::HEARTBEAT(_)));
    }
}
