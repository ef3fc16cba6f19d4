//! Steady-state 10 Hz streaming allocates nothing per sample on the sending side: pushing a
//! sample, transmitting it, and handling the `rx`, `ping` and `pong` traffic that comes back.
//! (Its own test binary, because it installs a counting global allocator.)

use std::time::{Duration, Instant};

use bytes::BytesMut;
use sarlink_link::{Event, Session, SessionConfig};
use sarlink_schema::{Db, Dbm, FrequencyHz, NodeName, QualityScore, Role, RssiRecord, SourceId};

#[global_allocator]
static ALLOC: sarlink_testkit::CountingAlloc = sarlink_testkit::CountingAlloc;

fn record(i: u64) -> RssiRecord {
    RssiRecord {
        timestamp_ns: 1_764_000_000_000_000_000 + i as i64 * 100_000_000,
        rssi_dbm: Dbm::new(-70.0 - (i % 20) as f32).unwrap(),
        frequency_hz: FrequencyHz::new(406_025_000).unwrap(),
        source_id: SourceId::DRONE,
        quality_score: QualityScore::new(80).unwrap(),
        snr_db: Some(Db::new(15.0).unwrap()),
        noise_dbm: Some(Dbm::new(-95.0).unwrap()),
        beacon: sarlink_schema::BeaconFields::NONE,
    }
}

#[test]
fn ten_hz_streaming_allocates_nothing_per_sample_on_the_sender() {
    let mut now = Instant::now();
    let mut drone = Session::client(
        SessionConfig::new(Role::Drone, NodeName::new("d").unwrap(), 1),
        now,
        [1; 16],
    );
    let mut ground = Session::server(
        SessionConfig::new(Role::Ground, NodeName::new("g").unwrap(), 2),
        now,
        [2; 16],
    );
    let mut up = BytesMut::with_capacity(64 * 1024);
    let mut down = BytesMut::with_capacity(64 * 1024);
    let mut up_in = BytesMut::with_capacity(64 * 1024);
    let mut down_in = BytesMut::with_capacity(64 * 1024);
    let mut sender_allocs = 0u64;
    let mut delivered = 0u64;
    // 30 s of warm-up, then 60 s (600 samples) measured.
    for i in 0..900u64 {
        let measure = i >= 300;
        now += Duration::from_millis(100);
        let (n, ()) = sarlink_testkit::allocations_during(|| {
            drone.handle_timeout(now);
            drone.push_sample(record(i));
            up.clear();
            drone.poll_transmit(now, &mut up);
            while drone.poll_event().is_some() {}
        });
        if measure {
            sender_allocs += n;
        }
        // The ground side is not what is measured (it hands records to its application).
        up_in.extend_from_slice(&up);
        ground.handle_input(now, &mut up_in);
        while let Some(e) = ground.poll_event() {
            match e {
                Event::HelloReceived(_) => ground.accept(0, now),
                Event::Samples { records, .. } => delivered += records.len() as u64,
                _ => {}
            }
        }
        ground.handle_timeout(now);
        down.clear();
        ground.poll_transmit(now, &mut down);
        let (n, ()) = sarlink_testkit::allocations_during(|| {
            down_in.extend_from_slice(&down);
            drone.handle_input(now, &mut down_in);
            while drone.poll_event().is_some() {}
        });
        if measure {
            sender_allocs += n;
        }
    }
    assert!(drone.is_established() && ground.is_established());
    assert_eq!(delivered, 900, "every sample arrived");
    assert!(
        drone.rtt().count >= 80,
        "pings and pongs flowed while measuring"
    );
    assert_eq!(
        sender_allocs, 0,
        "allocations on the sending side over 600 samples"
    );
    // The counter is live: a real allocation is seen (so the zero above means something).
    let (n, v) =
        sarlink_testkit::allocations_during(|| std::hint::black_box(Vec::<u64>::with_capacity(64)));
    assert!(n >= 1 && v.capacity() >= 64);
}
