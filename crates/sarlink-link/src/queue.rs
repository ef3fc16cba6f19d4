//! The priority send queue for encoded messages.
//!
//! Three classes, served strictly in order: [`Priority::Control`] (`cmd`, `ack`, `ping`,
//! `pong`, `bye`), then [`Priority::Data`] (`rx`; `rssi` batches are built from the sample
//! ring at send time, see [`crate::Session`]), then [`Priority::Telemetry`] (`status`,
//! `decision`). The queue is bounded in bytes. When an item does not fit, the oldest item of
//! the lowest class that is not more important than the newcomer is dropped, repeatedly, until
//! it fits; if that is not enough the newcomer itself is dropped. Every drop is counted.

use std::collections::VecDeque;

use bytes::Bytes;

/// Send priority of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// `cmd`, `ack`, `ping`, `pong`, `bye`: sent first.
    Control = 0,
    /// `rssi`, `rx`.
    Data = 1,
    /// `status`, `decision`: sent last, dropped first.
    Telemetry = 2,
}

impl Priority {
    /// All classes, most important first.
    pub const ALL: [Priority; 3] = [Priority::Control, Priority::Data, Priority::Telemetry];

    fn index(self) -> usize {
        self as usize
    }
}

/// Drop counters of a [`SendQueue`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Items dropped per class (indexed by `Priority as usize`).
    pub dropped: [u64; 3],
    /// Bytes dropped in all.
    pub dropped_bytes: u64,
    /// Items accepted in all.
    pub queued: u64,
}

impl QueueStats {
    /// Items dropped in all classes.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

/// What [`SendQueue::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushOutcome {
    /// Whether the new item was queued (false: it was dropped itself).
    pub queued: bool,
    /// How many older items were dropped to make room.
    pub evicted: usize,
}

/// A byte-bounded, three-class priority queue of encoded message payloads.
#[derive(Debug)]
pub struct SendQueue {
    classes: [VecDeque<Bytes>; 3],
    bytes: usize,
    max_bytes: usize,
    stats: QueueStats,
}

impl SendQueue {
    /// An empty queue that holds at most `max_bytes` of payload.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            classes: Default::default(),
            bytes: 0,
            max_bytes,
            stats: QueueStats::default(),
        }
    }

    /// Queues `payload` in `class`, dropping older, less important items if it must.
    pub fn push(&mut self, class: Priority, payload: Bytes) -> PushOutcome {
        let len = payload.len();
        let mut evicted = 0;
        if len > self.max_bytes {
            self.count_drop(class, len);
            return PushOutcome {
                queued: false,
                evicted,
            };
        }
        while self.bytes + len > self.max_bytes {
            // The least important non-empty class that is not more important than `class`.
            let victim = Priority::ALL
                .iter()
                .rev()
                .copied()
                .find(|p| *p >= class && !self.classes[p.index()].is_empty());
            let Some(victim) = victim else {
                self.count_drop(class, len);
                return PushOutcome {
                    queued: false,
                    evicted,
                };
            };
            let old = self.classes[victim.index()]
                .pop_front()
                .expect("class is non-empty");
            self.bytes -= old.len();
            self.count_drop(victim, old.len());
            evicted += 1;
        }
        self.bytes += len;
        self.classes[class.index()].push_back(payload);
        self.stats.queued += 1;
        PushOutcome {
            queued: true,
            evicted,
        }
    }

    fn count_drop(&mut self, class: Priority, len: usize) {
        self.stats.dropped[class.index()] += 1;
        self.stats.dropped_bytes += len as u64;
    }

    /// Takes the next item: the oldest of the most important non-empty class.
    pub fn pop(&mut self) -> Option<(Priority, Bytes)> {
        for class in Priority::ALL {
            if let Some(item) = self.classes[class.index()].pop_front() {
                self.bytes -= item.len();
                return Some((class, item));
            }
        }
        None
    }

    /// The class of the item [`pop`](Self::pop) would return.
    pub fn peek_class(&self) -> Option<Priority> {
        Priority::ALL
            .into_iter()
            .find(|c| !self.classes[c.index()].is_empty())
    }

    /// Number of items queued in `class`.
    pub fn len_of(&self, class: Priority) -> usize {
        self.classes[class.index()].len()
    }

    /// Number of items queued.
    pub fn len(&self) -> usize {
        self.classes.iter().map(VecDeque::len).sum()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0 && self.classes.iter().all(VecDeque::is_empty)
    }

    /// Payload bytes queued.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The byte bound.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Drop counters.
    pub fn stats(&self) -> &QueueStats {
        &self.stats
    }

    /// Removes everything (counted as dropped).
    pub fn clear(&mut self) {
        while let Some((class, item)) = self.pop() {
            self.count_drop(class, item.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item(tag: u8, len: usize) -> Bytes {
        Bytes::from(vec![tag; len])
    }

    #[test]
    fn serves_control_then_data_then_telemetry_fifo_within_class() {
        let mut q = SendQueue::new(1000);
        q.push(Priority::Telemetry, item(1, 10));
        q.push(Priority::Data, item(2, 10));
        q.push(Priority::Control, item(3, 10));
        q.push(Priority::Data, item(4, 10));
        q.push(Priority::Control, item(5, 10));
        let order: Vec<u8> = std::iter::from_fn(|| q.pop()).map(|(_, b)| b[0]).collect();
        assert_eq!(order, [3, 5, 2, 4, 1]);
        assert!(q.is_empty());
    }

    #[test]
    fn full_queue_drops_oldest_of_lowest_class_first() {
        let mut q = SendQueue::new(40);
        q.push(Priority::Control, item(1, 10));
        q.push(Priority::Telemetry, item(2, 10));
        q.push(Priority::Telemetry, item(3, 10));
        q.push(Priority::Data, item(4, 10));
        // Full. A data item evicts the oldest telemetry item (2), not control or data.
        let out = q.push(Priority::Data, item(5, 10));
        assert_eq!(
            out,
            PushOutcome {
                queued: true,
                evicted: 1
            }
        );
        assert_eq!(q.stats().dropped, [0, 0, 1]);
        let order: Vec<u8> = std::iter::from_fn(|| q.pop()).map(|(_, b)| b[0]).collect();
        assert_eq!(order, [1, 4, 5, 3]);
    }

    #[test]
    fn a_newcomer_never_evicts_a_more_important_item() {
        let mut q = SendQueue::new(20);
        q.push(Priority::Control, item(1, 10));
        q.push(Priority::Control, item(2, 10));
        let out = q.push(Priority::Telemetry, item(3, 10));
        assert_eq!(
            out,
            PushOutcome {
                queued: false,
                evicted: 0
            }
        );
        assert_eq!(q.stats().dropped, [0, 0, 1]);
        assert_eq!(q.len_of(Priority::Control), 2);
        // The same class replaces its own oldest item.
        let out = q.push(Priority::Control, item(4, 10));
        assert_eq!(
            out,
            PushOutcome {
                queued: true,
                evicted: 1
            }
        );
        assert_eq!(q.pop().unwrap().1[0], 2);
        assert_eq!(q.pop().unwrap().1[0], 4);
    }

    #[test]
    fn an_item_larger_than_the_bound_is_dropped_alone() {
        let mut q = SendQueue::new(20);
        q.push(Priority::Telemetry, item(1, 10));
        let out = q.push(Priority::Control, item(2, 21));
        assert_eq!(
            out,
            PushOutcome {
                queued: false,
                evicted: 0
            }
        );
        assert_eq!(q.len(), 1);
        assert_eq!(q.stats().dropped_bytes, 21);
    }

    proptest! {
        #[test]
        fn bounded_and_every_item_accounted_for(ops in proptest::collection::vec((0u8..4, 1usize..60), 1..200)) {
            let mut q = SendQueue::new(100);
            let (mut pushed, mut popped) = (0u64, 0u64);
            for (op, len) in ops {
                if op == 3 {
                    if q.pop().is_some() { popped += 1; }
                } else {
                    q.push(Priority::ALL[op as usize], item(op, len));
                    pushed += 1;
                }
                prop_assert!(q.bytes() <= q.max_bytes());
                prop_assert_eq!(pushed, popped + q.len() as u64 + q.stats().dropped_total());
            }
        }
    }
}
