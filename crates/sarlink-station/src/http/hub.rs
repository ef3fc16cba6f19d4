//! The hand-over point between the data plane and the HTTP threads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use serde::ser::{Serialize, SerializeTuple, Serializer};

/// One point of a drone's chart history: the newest records of both receivers at `t_ms`.
///
/// Serialized as a JSON array `[t_ms, rssi, snr, ground_rssi, ground_snr]` (absent values
/// are `null`) to keep `/api/state` small.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HistoryPoint {
    /// Milliseconds since the Unix epoch.
    pub t_ms: i64,
    /// The drone's receiver: RSSI (dBm, or dBFS when uncalibrated).
    pub rssi: Option<f32>,
    /// The drone's receiver: SNR, dB.
    pub snr: Option<f32>,
    /// The ground's receiver: RSSI.
    pub ground_rssi: Option<f32>,
    /// The ground's receiver: SNR, dB.
    pub ground_snr: Option<f32>,
}

impl Serialize for HistoryPoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(5)?;
        t.serialize_element(&self.t_ms)?;
        for v in [self.rssi, self.snr, self.ground_rssi, self.ground_snr] {
            // NaN and infinities are not JSON: they become null like absent values.
            t.serialize_element(&v.filter(|x| x.is_finite()))?;
        }
        t.end()
    }
}

/// Chart history per drone, by node name (each list oldest first and bounded by whoever
/// builds it; [`crate::dashboard::Dashboard`] keeps [`crate::dashboard::HISTORY_POINTS`]).
pub type History = BTreeMap<Arc<str>, Vec<HistoryPoint>>;

#[derive(Debug, Default)]
struct Slot {
    generation: u64,
    live: Option<Arc<str>>,
    history: Arc<History>,
}

#[derive(Debug, Default)]
struct Inner {
    slot: Mutex<Slot>,
    cond: Condvar,
    closed: AtomicBool,
    skipped: AtomicU64,
}

/// The newest publication of the data plane, shared with the HTTP threads. Cloning shares
/// it.
///
/// The data plane calls [`Hub::publish`]; it never blocks. HTTP threads hold the lock only
/// to clone two `Arc`s.
#[derive(Debug, Clone, Default)]
pub struct Hub(Arc<Inner>);

impl Hub {
    /// An empty hub (`/api/state` answers `{"live":null,...}` until the first publication).
    pub fn new() -> Hub {
        Hub::default()
    }

    /// Publishes `live` (a JSON object: what the live stream sends and `/api/state` holds
    /// under `live`) and the chart `history`. Returns `false`, dropping the publication, when
    /// an HTTP thread holds the lock at this instant: the caller never waits, and simply
    /// publishes again at its next interval.
    pub fn publish(&self, live: String, history: Arc<History>) -> bool {
        let Some(mut slot) = self.0.slot.try_lock() else {
            self.0.skipped.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        slot.generation += 1;
        slot.live = Some(Arc::from(live));
        slot.history = history;
        drop(slot);
        self.0.cond.notify_all();
        true
    }

    /// Publications dropped because the lock was busy.
    pub fn skipped(&self) -> u64 {
        self.0.skipped.load(Ordering::Relaxed)
    }

    /// The newest publication: generation (0 before the first), live object, history.
    pub(crate) fn latest(&self) -> (u64, Option<Arc<str>>, Arc<History>) {
        let slot = self.0.slot.lock();
        (
            slot.generation,
            slot.live.clone(),
            Arc::clone(&slot.history),
        )
    }

    /// Waits up to `timeout` for a publication newer than generation `seen`; `None` on
    /// timeout or when the hub is closed.
    pub(crate) fn wait_newer(&self, seen: u64, timeout: Duration) -> Option<(u64, Arc<str>)> {
        let mut slot = self.0.slot.lock();
        if slot.generation <= seen && !self.is_closed() {
            let _ = self.0.cond.wait_for(&mut slot, timeout);
        }
        if self.is_closed() || slot.generation <= seen {
            return None;
        }
        slot.live.clone().map(|l| (slot.generation, l))
    }

    /// Wakes every waiting reader for good (the server is stopping).
    pub(crate) fn close(&self) {
        self.0.closed.store(true, Ordering::Relaxed);
        let _guard = self.0.slot.lock();
        self.0.cond.notify_all();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::Relaxed)
    }

    /// `/api/state`: `{"live": <newest live object or null>, "history": {node: [points]}}`.
    pub(crate) fn state_json(&self) -> String {
        let (_, live, history) = self.latest();
        let history = serde_json::to_string(&*history).unwrap_or_else(|_| "{}".to_owned());
        format!(
            "{{\"live\":{},\"history\":{history}}}",
            live.as_deref().unwrap_or("null")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_points_are_compact_arrays_and_non_finite_values_are_null() {
        let p = HistoryPoint {
            t_ms: 5,
            rssi: Some(-71.5),
            snr: Some(f32::NAN),
            ground_rssi: None,
            ground_snr: Some(3.0),
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            "[5,-71.5,null,null,3.0]"
        );
    }

    #[test]
    fn readers_see_each_new_publication_and_time_out_without_one() {
        let hub = Hub::new();
        assert_eq!(hub.wait_newer(0, Duration::from_millis(1)), None);
        assert!(hub.publish("{\"a\":1}".into(), Arc::default()));
        let (g, live) = hub.wait_newer(0, Duration::from_millis(1)).unwrap();
        assert_eq!((g, &*live), (1, "{\"a\":1}"));
        assert_eq!(hub.wait_newer(1, Duration::from_millis(1)), None);
        let mut h = History::new();
        h.insert(Arc::from("d1"), vec![HistoryPoint::default()]);
        assert!(hub.publish("{}".into(), Arc::new(h)));
        assert_eq!(
            hub.state_json(),
            r#"{"live":{},"history":{"d1":[[0,null,null,null,null]]}}"#
        );
    }

    #[test]
    fn a_publication_is_dropped_not_waited_for_while_a_reader_holds_the_lock() {
        let hub = Hub::new();
        let guard = hub.0.slot.lock();
        assert!(!hub.publish("{}".into(), Arc::default()));
        drop(guard);
        assert_eq!(hub.skipped(), 1);
        assert!(hub.publish("{}".into(), Arc::default()));
    }

    #[test]
    fn closing_wakes_a_waiting_reader() {
        let hub = Hub::new();
        let reader = hub.clone();
        let t = std::thread::spawn(move || reader.wait_newer(0, Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(50));
        hub.close();
        assert_eq!(t.join().unwrap(), None);
    }
}
