//! Sample sequencing: the sender's log of unacknowledged samples and the receiver's
//! exactly-once tracker (spec section 4, step 5).
//!
//! Both are generic over the sample type so the rules can be tested on plain integers.

use std::time::Instant;

use sarlink_pool::RingBuffer;

/// A peer's sequence claim that cannot be true.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SequenceError {
    /// `rx` or `welcome.resume_seq` acknowledges samples that were never sent.
    #[error("peer acknowledged up to {claimed} but only {sent} samples were sent")]
    AckBeyondSent {
        /// The acknowledged sequence number.
        claimed: u64,
        /// The next sequence number not yet sent.
        sent: u64,
    },
    /// An `rssi` message whose sequence numbers would overflow 64 bits.
    #[error("sample sequence overflows: seq {seq} with {count} samples")]
    Overflow {
        /// The message's first sequence number.
        seq: u64,
        /// Its number of samples.
        count: usize,
    },
    /// An `rssi` message starting further beyond the next expected sample than the stream
    /// can have produced (see [`Receiver::with_max_ahead`] and [`Receiver::with_growth`]).
    #[error("sample {seq} is more than {max_ahead} beyond the expected {expected}")]
    TooFarAhead {
        /// The message's first sequence number.
        seq: u64,
        /// The next sequence number expected.
        expected: u64,
        /// The largest distance allowed at that moment.
        max_ahead: u64,
    },
}

/// The sender's side of a sample stream.
///
/// Samples are numbered from 0. Each stays in a bounded ring until the peer acknowledges it
/// (`rx`), so it can be resent after a reconnect. When the ring is full the oldest sample
/// is evicted: if it had not been sent yet, it is lost and counted in
/// [`SenderStats::dropped_unsent`] (the receiver will count it as a gap).
///
/// Invariants: `acked <= first <= send <= next` is not required of `acked`, but
/// `first <= send <= next` and `ring.len() == next - first` always hold.
#[derive(Debug)]
pub struct SampleLog<T> {
    ring: RingBuffer<T>,
    /// Sequence number of the ring's oldest sample.
    first: u64,
    /// Next sequence number to transmit.
    send: u64,
    /// Next sequence number to assign.
    next: u64,
    stats: SenderStats,
}

/// Counters of a [`SampleLog`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderStats {
    /// Samples handed to the log.
    pub produced: u64,
    /// Samples transmitted, resends included.
    pub transmitted: u64,
    /// Samples transmitted again after a reconnect.
    pub resent: u64,
    /// Samples evicted before they were ever sent.
    pub dropped_unsent: u64,
    /// Samples evicted after sending but before acknowledgement.
    pub evicted_unacked: u64,
}

impl<T> SampleLog<T> {
    /// An empty log keeping at most `capacity` unacknowledged samples.
    ///
    /// # Panics
    /// When `capacity` is zero.
    pub fn new(capacity: usize) -> Self {
        Self {
            ring: RingBuffer::new_lazy(capacity),
            first: 0,
            send: 0,
            next: 0,
            stats: SenderStats::default(),
        }
    }

    /// Appends a sample and returns its sequence number.
    pub fn push(&mut self, sample: T) -> u64 {
        let seq = self.next;
        if self.ring.force_push(sample).is_some() {
            if self.first >= self.send {
                self.stats.dropped_unsent += 1;
                self.send += 1;
            } else {
                self.stats.evicted_unacked += 1;
            }
            self.first += 1;
        }
        self.next += 1;
        self.stats.produced += 1;
        seq
    }

    /// Releases every sample below `seq` (the peer's `rx`).
    ///
    /// # Errors
    /// [`SequenceError::AckBeyondSent`] when `seq` is above what was sent.
    pub fn ack(&mut self, seq: u64) -> Result<(), SequenceError> {
        if seq > self.send {
            return Err(SequenceError::AckBeyondSent {
                claimed: seq,
                sent: self.send,
            });
        }
        while self.first < seq {
            self.ring.pop();
            self.first += 1;
        }
        Ok(())
    }

    /// Restarts transmission from `resume_seq` after a reconnect (the server's
    /// `welcome.resume_seq`): everything below it counts as delivered.
    ///
    /// # Errors
    /// [`SequenceError::AckBeyondSent`] when `resume_seq` is above what was ever produced.
    pub fn resume(&mut self, resume_seq: u64) -> Result<(), SequenceError> {
        if resume_seq > self.next {
            return Err(SequenceError::AckBeyondSent {
                claimed: resume_seq,
                sent: self.next,
            });
        }
        while self.first < resume_seq {
            self.ring.pop();
            self.first += 1;
        }
        let restart = resume_seq.max(self.first);
        self.stats.resent += self.send.saturating_sub(restart);
        self.send = restart;
        Ok(())
    }

    /// The next unsent run of at most `max` samples and the sequence number of its first,
    /// marked as sent; `None` when everything has been sent.
    pub fn take_batch(&mut self, max: usize) -> Option<(u64, impl ExactSizeIterator<Item = &T>)> {
        let pending = self.next - self.send;
        if pending == 0 || max == 0 {
            return None;
        }
        // `send - first` is below `ring.len() <= capacity`, a usize.
        let offset = usize::try_from(self.send - self.first).expect("offset within ring");
        let n = usize::try_from(pending).map_or(max, |p| p.min(max));
        let seq = self.send;
        self.send += n as u64;
        self.stats.transmitted += n as u64;
        Some((seq, self.ring.iter().skip(offset).take(n)))
    }

    /// Samples produced but not yet transmitted.
    pub fn backlog(&self) -> u64 {
        self.next - self.send
    }

    /// Samples held (sent or not) awaiting acknowledgement.
    pub fn unacked(&self) -> usize {
        self.ring.len()
    }

    /// The sequence number the next pushed sample gets.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Counters.
    pub fn stats(&self) -> &SenderStats {
        &self.stats
    }
}

/// The receiver's side of a peer's sample stream: delivers each sequence number at most
/// once and counts gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receiver {
    expected: u64,
    max_ahead: u64,
    /// Samples per second the window grows by while the stream is silent, and since when.
    growth: Option<(u64, Instant)>,
    /// Samples delivered.
    pub delivered: u64,
    /// Samples received again (already delivered), discarded.
    pub duplicates: u64,
    /// Sequence numbers skipped: samples the sender dropped before sending.
    pub gaps: u64,
}

/// What part of an `rssi` message to deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// Index of the first sample to deliver within the message.
    pub skip: usize,
    /// Sequence number of that sample.
    pub seq: u64,
    /// Number of samples to deliver (may be zero).
    pub count: usize,
    /// Gap found before this message.
    pub gap: u64,
}

impl Receiver {
    /// A receiver expecting `resume_seq` next, accepting any gap.
    pub fn starting_at(resume_seq: u64) -> Self {
        Self {
            expected: resume_seq,
            max_ahead: u64::MAX,
            growth: None,
            delivered: 0,
            duplicates: 0,
            gaps: 0,
        }
    }

    /// Refuses messages that start more than `max_ahead` beyond the next expected sample:
    /// a sender can only skip what its ring evicted, so a larger jump is a false claim (a
    /// takeover trying to move the resume position out of the real sender's reach).
    pub fn with_max_ahead(mut self, max_ahead: u64) -> Self {
        self.max_ahead = max_ahead;
        self
    }

    /// Widens the window by `per_second` samples for every second the stream has been
    /// silent, counted from `heard` (when the stream's position last moved) and from each
    /// accepted message after it. A sender produces no faster than `per_second`, so a jump
    /// within the widened window is a ring that overflowed during a long outage, not a false
    /// claim; and no claim can ever reach further than that rate allows.
    pub fn with_growth(mut self, per_second: u64, heard: Instant) -> Self {
        self.growth = Some((per_second, heard));
        self
    }

    /// The largest jump allowed at `now`.
    pub fn window(&self, now: Instant) -> u64 {
        let grown = self.growth.map_or(0, |(rate, heard)| {
            let idle = now.saturating_duration_since(heard);
            // Whole milliseconds: exact enough, and u128 keeps the product from overflowing.
            let samples = u128::from(rate) * idle.as_millis() / 1000;
            u64::try_from(samples).unwrap_or(u64::MAX)
        });
        self.max_ahead.saturating_add(grown)
    }

    /// The next sequence number expected: every sample below it has been received (the
    /// value carried by `rx`).
    pub fn expected(&self) -> u64 {
        self.expected
    }

    /// Accounts for an `rssi` message of `count` samples starting at `seq`, received at
    /// `now`.
    ///
    /// # Errors
    /// [`SequenceError::Overflow`] when `seq + count` does not fit in 64 bits;
    /// [`SequenceError::TooFarAhead`] when `seq` is beyond the allowed distance
    /// ([`window`](Self::window)). Nothing is counted or moved on error.
    pub fn accept(
        &mut self,
        seq: u64,
        count: usize,
        now: Instant,
    ) -> Result<Accepted, SequenceError> {
        let end = seq
            .checked_add(count as u64)
            .ok_or(SequenceError::Overflow { seq, count })?;
        let window = self.window(now);
        if seq.saturating_sub(self.expected) > window {
            return Err(SequenceError::TooFarAhead {
                seq,
                expected: self.expected,
                max_ahead: window,
            });
        }
        if let Some((_, heard)) = &mut self.growth {
            *heard = now;
        }
        let gap = seq.saturating_sub(self.expected);
        let start = seq.max(self.expected);
        let fresh = end.saturating_sub(start);
        let dup = count as u64 - fresh;
        self.gaps += gap;
        self.duplicates += dup;
        self.delivered += fresh;
        self.expected = self.expected.max(end);
        // `start - seq` <= count, a usize.
        Ok(Accepted {
            skip: (start - seq) as usize,
            seq: start,
            count: fresh as usize,
            gap,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    /// One fixed instant: these tests do not depend on time unless they say so.
    fn t0() -> Instant {
        static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *T0.get_or_init(Instant::now)
    }

    fn drain<T: Copy>(log: &mut SampleLog<T>, max: usize) -> Vec<(u64, T)> {
        let mut out = Vec::new();
        while let Some((seq, items)) = log.take_batch(max) {
            out.extend(items.copied().enumerate().map(|(i, v)| (seq + i as u64, v)));
        }
        out
    }

    #[test]
    fn batches_follow_sequence_and_ack_releases() {
        let mut log = SampleLog::new(8);
        for v in 0..5u32 {
            assert_eq!(log.push(v * 10), u64::from(v));
        }
        assert_eq!(
            drain(&mut log, 2),
            [(0, 0), (1, 10), (2, 20), (3, 30), (4, 40)]
        );
        assert_eq!(log.unacked(), 5);
        log.ack(3).unwrap();
        assert_eq!(log.unacked(), 2);
        assert_eq!(
            log.ack(6),
            Err(SequenceError::AckBeyondSent {
                claimed: 6,
                sent: 5
            })
        );
    }

    #[test]
    fn resume_resends_unacknowledged_samples() {
        let mut log = SampleLog::new(8);
        for v in 0..6u32 {
            log.push(v);
        }
        drain(&mut log, 10);
        // The server saw 0..=3 before the link died.
        log.resume(4).unwrap();
        assert_eq!(drain(&mut log, 10), [(4, 4), (5, 5)]);
        assert_eq!(log.stats().resent, 2);
        assert!(log.resume(7).is_err(), "claims a sample never produced");
    }

    #[test]
    fn overflow_while_disconnected_loses_oldest_and_is_counted() {
        let mut log = SampleLog::new(4);
        for v in 0..10u32 {
            log.push(v);
        }
        assert_eq!(log.stats().dropped_unsent, 6);
        log.resume(0).unwrap();
        assert_eq!(drain(&mut log, 3), [(6, 6), (7, 7), (8, 8), (9, 9)]);
        let mut rx = Receiver::starting_at(0);
        let a = rx.accept(6, 4, t0()).unwrap();
        assert_eq!(
            a,
            Accepted {
                skip: 0,
                seq: 6,
                count: 4,
                gap: 6
            }
        );
        assert_eq!(rx.gaps, 6);
    }

    #[test]
    fn receiver_delivers_each_sequence_once() {
        let mut rx = Receiver::starting_at(0);
        assert_eq!(
            rx.accept(0, 3, t0()).unwrap(),
            Accepted {
                skip: 0,
                seq: 0,
                count: 3,
                gap: 0
            }
        );
        // A resend overlapping what was delivered.
        assert_eq!(
            rx.accept(1, 4, t0()).unwrap(),
            Accepted {
                skip: 2,
                seq: 3,
                count: 2,
                gap: 0
            }
        );
        assert_eq!(rx.accept(0, 2, t0()).unwrap().count, 0);
        assert_eq!((rx.delivered, rx.duplicates, rx.expected()), (5, 4, 5));
        assert_eq!(
            rx.accept(u64::MAX, 2, t0()),
            Err(SequenceError::Overflow {
                seq: u64::MAX,
                count: 2
            })
        );
    }

    #[test]
    fn a_jump_beyond_the_window_is_refused_and_moves_nothing() {
        let mut rx = Receiver::starting_at(10).with_max_ahead(100);
        assert_eq!(
            rx.accept(1_000_000_000_000_000, 1, t0()),
            Err(SequenceError::TooFarAhead {
                seq: 1_000_000_000_000_000,
                expected: 10,
                max_ahead: 100
            })
        );
        assert_eq!(
            rx.accept(111, 1, t0()).unwrap_err().to_string(),
            "sample 111 is more than 100 beyond the expected 10"
        );
        assert_eq!((rx.expected(), rx.delivered, rx.gaps), (10, 0, 0));
        // Exactly at the bound: a gap the sender's ring can have made.
        assert_eq!(rx.accept(110, 1, t0()).unwrap().gap, 100);
        assert_eq!(rx.expected(), 111);
    }

    #[test]
    fn a_silent_stream_takes_back_a_ring_that_overflowed_but_never_an_impossible_jump() {
        // A drone at 10 Hz with a 100-sample ring, out of range for an hour: it resumes at
        // its oldest sample, 36,000 - 100 beyond the expected one.
        let heard = t0();
        let back = heard + Duration::from_secs(3600);
        let mut rx = Receiver::starting_at(10)
            .with_max_ahead(100)
            .with_growth(1_000, heard);
        assert_eq!(rx.window(heard), 100);
        assert_eq!(rx.window(back), 100 + 3_600_000);
        // Nothing is taken that this rate cannot have produced, however long the silence.
        assert!(matches!(
            rx.accept(1_000_000_000_000_000, 1, back),
            Err(SequenceError::TooFarAhead {
                max_ahead: 3_600_100,
                ..
            })
        ));
        let a = rx.accept(10 + 35_900, 100, back).unwrap();
        assert_eq!((a.gap, a.count, rx.expected()), (35_900, 100, 36_010));
        // The window counts from the last message: a second later it is back to one
        // second's growth.
        let later = back + Duration::from_secs(1);
        assert_eq!(rx.window(later), 1_100);
        assert!(rx.accept(36_010 + 1_101, 1, later).is_err());
        assert_eq!(rx.accept(36_010 + 1_100, 1, later).unwrap().gap, 1_100);
    }

    proptest! {
        /// Whatever the interleaving of pushes, sends, losses and reconnects, the receiver
        /// gets every sample at most once, in order, and gaps + delivered + still-pending
        /// account for every sample produced.
        #[test]
        fn exactly_once_across_reconnects(ops in proptest::collection::vec(0u8..5, 1..400), cap in 1usize..16) {
            let mut log = SampleLog::new(cap);
            let mut rx = Receiver::starting_at(0);
            let mut delivered = Vec::new();
            let mut in_flight: Vec<(u64, Vec<u64>)> = Vec::new();
            let mut produced = 0u64;
            for op in ops {
                match op {
                    0 | 1 => { log.push(produced); produced += 1; }
                    2 => if let Some((seq, items)) = log.take_batch(3) {
                        in_flight.push((seq, items.copied().collect()));
                    },
                    3 => { // the network delivers what is in flight; the receiver acks
                        for (seq, items) in in_flight.drain(..) {
                            let a = rx.accept(seq, items.len(), t0()).unwrap();
                            delivered.extend_from_slice(&items[a.skip..a.skip + a.count]);
                        }
                        log.ack(rx.expected()).unwrap();
                    }
                    _ => { // the connection dies: in-flight data is lost, then resume
                        in_flight.clear();
                        log.resume(rx.expected()).unwrap();
                    }
                }
            }
            for w in delivered.windows(2) { prop_assert!(w[0] < w[1]); }
            for (i, v) in delivered.iter().enumerate() { prop_assert!(*v >= i as u64); }
            // Everything is delivered, counted as a gap, or still in the sender's hands.
            let pending = log.next_seq() - rx.expected();
            prop_assert_eq!(rx.delivered + rx.gaps + pending, produced);
            prop_assert!(rx.gaps <= log.stats().dropped_unsent + log.stats().evicted_unacked);
        }
    }
}
