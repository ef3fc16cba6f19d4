//! [`RingBuffer`]: a fixed-capacity, oldest-first buffer with a high-water mark.

use std::collections::VecDeque;
use std::collections::vec_deque;
use std::iter::FusedIterator;

/// A high-water crossing reported by [`RingBuffer::take_high_water_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HighWaterEvent {
    /// Crossings since the event was last taken (at least 1).
    pub crossings: u64,
    /// The mark that was reached, in elements.
    pub high_water: usize,
    /// The buffer's capacity, in elements.
    pub capacity: usize,
}

/// A fixed-capacity buffer that keeps elements oldest-first.
///
/// Memory is allocated once, in [`new`](Self::new), and the buffer never grows.
/// [`push`](Self::push) hands the value back when the buffer is full;
/// [`force_push`](Self::force_push) makes room by evicting the oldest element and returns
/// it. Elements are popped and iterated oldest-first. This is a single-owner structure
/// (`&mut self`), not a concurrent queue.
///
/// # High-water mark
///
/// The buffer has a high-water mark, by default 90 % of its capacity (rounded up). The
/// owner can ask [`is_above_high_water`](Self::is_above_high_water) at any time, and
/// every push that brings the length up to the mark is recorded as a crossing, reported
/// once by [`take_high_water_event`](Self::take_high_water_event). A crossing is
/// edge-triggered: staying at or above the mark records nothing more; the length has to
/// drop below the mark and reach it again. Recording costs one comparison per push.
///
/// # Examples
///
/// Samples awaiting acknowledgement, released when the peer acknowledges a sequence
/// number:
///
/// ```
/// use sarlink_pool::RingBuffer;
///
/// let mut unacked = RingBuffer::new(4);
/// for seq in 1..=4_u64 {
///     unacked.push(seq).expect("room for four");
/// }
/// assert_eq!(unacked.push(5), Err(5), "full: the value is handed back");
/// assert!(unacked.take_high_water_event().is_some(), "4 of 4 is above 90 %");
///
/// let released = unacked.pop_while(|&seq| seq <= 2); // peer acknowledged seq 2
/// assert_eq!(released, 2);
/// assert_eq!(unacked.iter().copied().collect::<Vec<_>>(), [3, 4]);
///
/// assert_eq!(unacked.force_push(5), None);
/// assert_eq!(unacked.force_push(6), None);
/// assert_eq!(unacked.force_push(7), Some(3), "full: the oldest is evicted");
/// assert_eq!(unacked.evictions(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct RingBuffer<T> {
    items: VecDeque<T>,
    capacity: usize,
    high_water: usize,
    pending_crossings: u64,
    crossings: u64,
    evictions: u64,
}

impl<T> RingBuffer<T> {
    /// Creates an empty buffer holding at most `capacity` elements, with the high-water
    /// mark at 90 % of `capacity`, rounded up.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "RingBuffer capacity must be at least 1");
        // ceil(0.9 * capacity) without overflow: capacity - floor(capacity / 10).
        Self::with_high_water(capacity, capacity - capacity / 10)
    }

    /// Creates an empty buffer holding at most `capacity` elements, with the high-water
    /// mark at `high_water` elements.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0, or `high_water` is 0 or above `capacity`.
    #[must_use]
    pub fn with_high_water(capacity: usize, high_water: usize) -> Self {
        assert!(capacity > 0, "RingBuffer capacity must be at least 1");
        let mut ring = Self {
            items: VecDeque::with_capacity(capacity),
            capacity,
            high_water: capacity,
            pending_crossings: 0,
            crossings: 0,
            evictions: 0,
        };
        ring.set_high_water(high_water);
        ring
    }

    /// Like [`new`](Self::new), but memory is allocated as the buffer fills instead of up
    /// front. The bound is the same: never more than `capacity` elements (the backing storage
    /// grows by doubling, so it may reach up to twice `capacity` slots). Suits a buffer that is
    /// usually nearly empty but must be able to hold a lot (samples awaiting acknowledgement):
    /// its memory follows what it actually held, instead of creeping up to the whole capacity
    /// as the ring's head travels through a preallocated block.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0.
    #[must_use]
    pub fn new_lazy(capacity: usize) -> Self {
        assert!(capacity > 0, "RingBuffer capacity must be at least 1");
        let mut ring = Self {
            items: VecDeque::new(),
            capacity,
            high_water: capacity,
            pending_crossings: 0,
            crossings: 0,
            evictions: 0,
        };
        ring.set_high_water(capacity - capacity / 10);
        ring
    }

    /// Moves the high-water mark to `high_water` elements.
    ///
    /// This records no crossing by itself, even if the length is already at or above the
    /// new mark; the next crossing is the next push that brings the length up to it.
    ///
    /// # Panics
    ///
    /// If `high_water` is 0 or above the capacity.
    pub fn set_high_water(&mut self, high_water: usize) {
        assert!(
            (1..=self.capacity).contains(&high_water),
            "high-water mark {high_water} must be in 1..={}",
            self.capacity
        );
        self.high_water = high_water;
    }

    /// Appends `value` as the newest element, or hands it back in `Err` if the buffer is
    /// full.
    ///
    /// # Errors
    ///
    /// `Err(value)` if the buffer is full; the buffer is unchanged.
    pub fn push(&mut self, value: T) -> Result<(), T> {
        if self.is_full() {
            return Err(value);
        }
        self.push_unchecked(value);
        Ok(())
    }

    /// Appends `value` as the newest element; if the buffer is full, first evicts the
    /// oldest element and returns it.
    pub fn force_push(&mut self, value: T) -> Option<T> {
        if self.is_full() {
            let evicted = self.items.pop_front();
            self.items.push_back(value);
            self.evictions += 1;
            evicted
        } else {
            self.push_unchecked(value);
            None
        }
    }

    fn push_unchecked(&mut self, value: T) {
        self.items.push_back(value);
        // A push adds exactly one element, so the length reaches the mark from below
        // exactly when it becomes equal to it.
        if self.items.len() == self.high_water {
            self.crossings += 1;
            self.pending_crossings += 1;
        }
    }

    /// Removes and returns the oldest element.
    pub fn pop(&mut self) -> Option<T> {
        self.items.pop_front()
    }

    /// Removes the oldest elements while `pred` holds for them and returns how many
    /// were removed.
    ///
    /// Stops at the first element for which `pred` is false, even if later ones match.
    pub fn pop_while(&mut self, mut pred: impl FnMut(&T) -> bool) -> usize {
        let mut removed = 0;
        while self.items.front().is_some_and(&mut pred) {
            self.items.pop_front();
            removed += 1;
        }
        removed
    }

    /// Removes the oldest elements while `pred` holds for them, yielding them
    /// oldest-first.
    ///
    /// Removal is lazy: elements are removed as the iterator yields them. If it is
    /// dropped early, the elements not yet yielded stay in the buffer.
    pub fn drain_while<F: FnMut(&T) -> bool>(&mut self, pred: F) -> DrainWhile<'_, T, F> {
        DrainWhile {
            ring: self,
            pred,
            done: false,
        }
    }

    /// Keeps only the elements for which `keep` returns `true`, in order.
    pub fn retain(&mut self, keep: impl FnMut(&T) -> bool) {
        self.items.retain(keep);
    }

    /// Removes all elements, yielding them oldest-first.
    pub fn drain(&mut self) -> vec_deque::Drain<'_, T> {
        self.items.drain(..)
    }

    /// Removes all elements. The counters (evictions, crossings) are kept.
    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// The oldest element.
    #[must_use]
    pub fn front(&self) -> Option<&T> {
        self.items.front()
    }

    /// The newest element.
    #[must_use]
    pub fn back(&self) -> Option<&T> {
        self.items.back()
    }

    /// The element at `index`, counted from the oldest (index 0).
    #[must_use]
    pub fn get(&self, index: usize) -> Option<&T> {
        self.items.get(index)
    }

    /// Mutable access to the element at `index`, counted from the oldest (index 0).
    pub fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        self.items.get_mut(index)
    }

    /// Iterates oldest-first.
    pub fn iter(&self) -> vec_deque::Iter<'_, T> {
        self.items.iter()
    }

    /// Iterates oldest-first with mutable access.
    pub fn iter_mut(&mut self) -> vec_deque::IterMut<'_, T> {
        self.items.iter_mut()
    }

    /// Number of elements held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the buffer holds no elements.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The most elements the buffer holds.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether the buffer holds `capacity` elements, so `push` would fail.
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.items.len() == self.capacity
    }

    /// The high-water mark, in elements.
    #[must_use]
    pub fn high_water(&self) -> usize {
        self.high_water
    }

    /// Whether the length is at or above the high-water mark.
    #[must_use]
    pub fn is_above_high_water(&self) -> bool {
        self.items.len() >= self.high_water
    }

    /// Reports the high-water crossings recorded since the last call, if any, and
    /// forgets them.
    pub fn take_high_water_event(&mut self) -> Option<HighWaterEvent> {
        if self.pending_crossings == 0 {
            return None;
        }
        let crossings = std::mem::take(&mut self.pending_crossings);
        Some(HighWaterEvent {
            crossings,
            high_water: self.high_water,
            capacity: self.capacity,
        })
    }

    /// Total high-water crossings since the buffer was created.
    #[must_use]
    pub fn high_water_crossings(&self) -> u64 {
        self.crossings
    }

    /// Total elements evicted by [`force_push`](Self::force_push) since the buffer was
    /// created.
    #[must_use]
    pub fn evictions(&self) -> u64 {
        self.evictions
    }
}

impl<'a, T> IntoIterator for &'a RingBuffer<T> {
    type Item = &'a T;
    type IntoIter = vec_deque::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl<'a, T> IntoIterator for &'a mut RingBuffer<T> {
    type Item = &'a mut T;
    type IntoIter = vec_deque::IterMut<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter_mut()
    }
}

impl<T> IntoIterator for RingBuffer<T> {
    type Item = T;
    type IntoIter = vec_deque::IntoIter<T>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

/// Iterator returned by [`RingBuffer::drain_while`].
#[derive(Debug)]
pub struct DrainWhile<'a, T, F> {
    ring: &'a mut RingBuffer<T>,
    pred: F,
    done: bool,
}

impl<T, F: FnMut(&T) -> bool> Iterator for DrainWhile<'_, T, F> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.done {
            return None;
        }
        if self.ring.items.front().is_some_and(&mut self.pred) {
            self.ring.items.pop_front()
        } else {
            self.done = true;
            None
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else {
            (0, Some(self.ring.len()))
        }
    }
}

impl<T, F: FnMut(&T) -> bool> FusedIterator for DrainWhile<'_, T, F> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_high_water_is_ninety_percent_rounded_up() {
        for (capacity, mark) in [
            (1, 1),
            (2, 2),
            (9, 9),
            (10, 9),
            (11, 10),
            (15, 14),
            (100, 90),
            (1000, 900),
        ] {
            assert_eq!(
                RingBuffer::<u8>::new(capacity).high_water(),
                mark,
                "capacity {capacity}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "capacity must be at least 1")]
    fn zero_capacity_panics() {
        let _ = RingBuffer::<u8>::new(0);
    }

    #[test]
    #[should_panic(expected = "high-water mark 5 must be in 1..=4")]
    fn high_water_above_capacity_panics() {
        let _ = RingBuffer::<u8>::with_high_water(4, 5);
    }

    #[test]
    fn crossing_is_edge_triggered_and_rearms_below_the_mark() {
        let mut ring = RingBuffer::with_high_water(4, 2);
        ring.push(1).unwrap();
        assert!(!ring.is_above_high_water());
        assert_eq!(ring.take_high_water_event(), None);
        ring.push(2).unwrap();
        assert!(ring.is_above_high_water());
        ring.push(3).unwrap();
        ring.force_push(4);
        ring.force_push(5);
        assert_eq!(
            ring.take_high_water_event(),
            Some(HighWaterEvent {
                crossings: 1,
                high_water: 2,
                capacity: 4
            })
        );
        assert_eq!(ring.take_high_water_event(), None, "reported once");
        ring.pop_while(|&v| v < 5);
        assert!(!ring.is_above_high_water());
        ring.push(6).unwrap();
        ring.pop();
        ring.push(7).unwrap();
        ring.push(8).unwrap();
        assert_eq!(ring.take_high_water_event().map(|e| e.crossings), Some(2));
        assert_eq!(ring.high_water_crossings(), 3);
    }

    #[test]
    fn drain_while_dropped_early_keeps_the_rest() {
        let mut ring = RingBuffer::new(8);
        for v in 0..6 {
            ring.push(v).unwrap();
        }
        let first_two: Vec<_> = ring.drain_while(|&v| v < 4).take(2).collect();
        assert_eq!(first_two, [0, 1]);
        assert_eq!(ring.iter().copied().collect::<Vec<_>>(), [2, 3, 4, 5]);
        assert_eq!(ring.drain_while(|&v| v < 4).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(ring.iter().copied().collect::<Vec<_>>(), [4, 5]);
    }

    #[test]
    fn iteration_is_oldest_first_both_ways_with_exact_size() {
        let mut ring = RingBuffer::new(3);
        for v in 0..5 {
            ring.force_push(v);
        }
        let iter = ring.iter();
        assert_eq!(iter.len(), 3);
        assert_eq!(iter.copied().collect::<Vec<_>>(), [2, 3, 4]);
        assert_eq!(ring.iter().rev().copied().collect::<Vec<_>>(), [4, 3, 2]);
        assert_eq!(
            (ring.front(), ring.back(), ring.get(1), ring.get(3)),
            (Some(&2), Some(&4), Some(&3), None)
        );
        assert_eq!(ring.into_iter().collect::<Vec<_>>(), [2, 3, 4]);
    }

    #[test]
    fn never_grows_beyond_capacity() {
        let mut ring = RingBuffer::new(16);
        let allocated = ring.items.capacity();
        for v in 0..1000 {
            ring.force_push(v);
        }
        assert_eq!(ring.len(), 16);
        assert_eq!(ring.items.capacity(), allocated);
        assert_eq!(ring.evictions(), 1000 - 16);
    }

    #[test]
    fn lazy_rings_allocate_only_what_they_hold_and_keep_the_bound() {
        let mut r = RingBuffer::new_lazy(1000);
        assert_eq!(r.items.capacity(), 0);
        for i in 0..100 {
            r.push(i).unwrap();
            r.pop();
        }
        assert!(
            r.items.capacity() <= 8,
            "a nearly empty ring stays small: {}",
            r.items.capacity()
        );
        for i in 0..1000 {
            r.push(i).unwrap();
        }
        assert_eq!(r.push(1000), Err(1000), "same bound as a preallocated ring");
        assert_eq!(r.force_push(1001), Some(0));
        assert_eq!(r.len(), 1000);
        assert!(r.high_water_crossings() >= 1);
    }
}
