//! Model-based test of `RingBuffer` against `VecDeque`.
//!
//! Random operation sequences run on the ring and on a model built from a plain
//! `VecDeque` plus the documented rules; after every operation the return values, the
//! contents, the counters and the high-water state must be identical.

use std::collections::VecDeque;

use proptest::prelude::*;
use sarlink_pool::RingBuffer;

#[derive(Debug, Clone)]
enum Op {
    Push(u16),
    ForcePush(u16),
    Pop,
    Clear,
    Drain,
    /// Release everything below an acknowledged value, like an ack releases sequence
    /// numbers.
    PopWhileBelow(u16),
    /// `drain_while(< bound)`, but only `take` items are pulled before the iterator is
    /// dropped.
    DrainWhileBelow {
        bound: u16,
        take: usize,
    },
    RetainEven,
    TakeEvent,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u16>().prop_map(|v| Op::Push(v % 512)),
        3 => any::<u16>().prop_map(|v| Op::ForcePush(v % 512)),
        2 => Just(Op::Pop),
        1 => (0..512_u16).prop_map(Op::PopWhileBelow),
        1 => ((0..512_u16), (0..16_usize))
            .prop_map(|(bound, take)| Op::DrainWhileBelow { bound, take }),
        1 => Just(Op::RetainEven),
        2 => Just(Op::TakeEvent),
        1 => Just(Op::Clear),
        1 => Just(Op::Drain),
    ]
}

/// The reference: a `VecDeque` with the documented rules written out independently.
struct Model {
    items: VecDeque<u16>,
    capacity: usize,
    high_water: usize,
    pending: u64,
    crossings: u64,
    evictions: u64,
}

impl Model {
    fn note_growth(&mut self, before: usize) {
        if before < self.high_water && self.items.len() >= self.high_water {
            self.pending += 1;
            self.crossings += 1;
        }
    }

    fn push(&mut self, v: u16) -> Result<(), u16> {
        if self.items.len() >= self.capacity {
            return Err(v);
        }
        let before = self.items.len();
        self.items.push_back(v);
        self.note_growth(before);
        Ok(())
    }

    fn force_push(&mut self, v: u16) -> Option<u16> {
        let before = self.items.len();
        let evicted = if before == self.capacity {
            self.evictions += 1;
            self.items.pop_front()
        } else {
            None
        };
        self.items.push_back(v);
        self.note_growth(before);
        evicted
    }

    fn release_below(&mut self, bound: u16, limit: usize) -> Vec<u16> {
        let mut out = Vec::new();
        while out.len() < limit && self.items.front().is_some_and(|&v| v < bound) {
            out.extend(self.items.pop_front());
        }
        out
    }

    fn take_event(&mut self) -> Option<u64> {
        (self.pending > 0).then(|| std::mem::take(&mut self.pending))
    }
}

fn check_same(ring: &RingBuffer<u16>, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        ring.iter().copied().collect::<Vec<_>>(),
        Vec::from(model.items.clone())
    );
    prop_assert_eq!(
        ring.iter().rev().copied().collect::<Vec<_>>(),
        model.items.iter().rev().copied().collect::<Vec<_>>()
    );
    prop_assert_eq!(ring.iter().len(), model.items.len());
    prop_assert_eq!(ring.len(), model.items.len());
    prop_assert_eq!(ring.is_empty(), model.items.is_empty());
    prop_assert_eq!(ring.is_full(), model.items.len() == model.capacity);
    prop_assert_eq!(ring.front(), model.items.front());
    prop_assert_eq!(ring.back(), model.items.back());
    for i in 0..=model.capacity {
        prop_assert_eq!(ring.get(i), model.items.get(i));
    }
    prop_assert_eq!(ring.capacity(), model.capacity);
    prop_assert_eq!(ring.high_water(), model.high_water);
    prop_assert_eq!(
        ring.is_above_high_water(),
        model.items.len() >= model.high_water
    );
    prop_assert_eq!(ring.high_water_crossings(), model.crossings);
    prop_assert_eq!(ring.evictions(), model.evictions);
    Ok(())
}

proptest! {
    #[test]
    fn ring_buffer_matches_vecdeque_model(
        capacity in 1..=12_usize,
        mark in proptest::option::of(1..=12_usize),
        ops in proptest::collection::vec(op(), 0..200),
    ) {
        // `None`: the default mark, 90 % rounded up, computed here as ceil(9c / 10).
        let high_water = mark.map_or((9 * capacity).div_ceil(10), |m| m.min(capacity));
        let mut ring = match mark {
            None => RingBuffer::new(capacity),
            Some(_) => RingBuffer::with_high_water(capacity, high_water),
        };
        let mut model = Model {
            items: VecDeque::new(),
            capacity,
            high_water,
            pending: 0,
            crossings: 0,
            evictions: 0,
        };
        check_same(&ring, &model)?;
        for op in ops {
            match op {
                Op::Push(v) => prop_assert_eq!(ring.push(v), model.push(v)),
                Op::ForcePush(v) => prop_assert_eq!(ring.force_push(v), model.force_push(v)),
                Op::Pop => prop_assert_eq!(ring.pop(), model.items.pop_front()),
                Op::Clear => {
                    ring.clear();
                    model.items.clear();
                }
                Op::Drain => {
                    let drained: Vec<u16> = ring.drain().collect();
                    prop_assert_eq!(drained, Vec::from(std::mem::take(&mut model.items)));
                }
                Op::PopWhileBelow(bound) => {
                    let expected = model.release_below(bound, usize::MAX).len();
                    prop_assert_eq!(ring.pop_while(|&v| v < bound), expected);
                }
                Op::DrainWhileBelow { bound, take } => {
                    let got: Vec<u16> = ring.drain_while(|&v| v < bound).take(take).collect();
                    prop_assert_eq!(got, model.release_below(bound, take));
                }
                Op::RetainEven => {
                    ring.retain(|&v| v % 2 == 0);
                    model.items.retain(|&v| v % 2 == 0);
                }
                Op::TakeEvent => {
                    let got = ring.take_high_water_event();
                    let expected = model.take_event();
                    prop_assert_eq!(got.map(|e| e.crossings), expected);
                    if let Some(event) = got {
                        prop_assert_eq!((event.high_water, event.capacity), (high_water, capacity));
                    }
                }
            }
            check_same(&ring, &model)?;
        }
        // Whatever is still pending is reported exactly once at the end.
        prop_assert_eq!(ring.take_high_water_event().map(|e| e.crossings), model.take_event());
        prop_assert_eq!(ring.take_high_water_event(), None);
    }
}
