//! [`BufferPool`]: a bounded, thread-safe pool of [`BytesMut`] buffers.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use bytes::BytesMut;
use crossbeam_queue::ArrayQueue;

use crate::handle::PoolRef;
use crate::stats::{Counters, PoolStats};

/// Default for [`BufferPoolBuilder::max_pooled`].
pub const DEFAULT_MAX_POOLED: usize = 32;
/// Default for [`BufferPoolBuilder::buffer_capacity`]: 4 KiB.
pub const DEFAULT_BUFFER_CAPACITY: usize = 4 * 1024;
/// Default for [`BufferPoolBuilder::max_buffer_capacity`]: 64 KiB.
pub const DEFAULT_MAX_BUFFER_CAPACITY: usize = 64 * 1024;

/// Why a [`BufferPoolBuilder`] could not build a pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BufferPoolConfigError {
    /// `max_pooled` was zero; a pool must be able to keep at least one buffer.
    #[error("max_pooled must be at least 1")]
    ZeroMaxPooled,
    /// The default buffer capacity is above the cap, so every buffer would be dropped.
    #[error("buffer_capacity {buffer_capacity} is above max_buffer_capacity {max_buffer_capacity}")]
    CapacityAboveCap {
        /// The configured default capacity.
        buffer_capacity: usize,
        /// The configured cap.
        max_buffer_capacity: usize,
    },
    /// More buffers were asked to be pre-allocated than the pool can keep.
    #[error("prefill {prefill} is above max_pooled {max_pooled}")]
    PrefillAboveMax {
        /// The configured prefill count.
        prefill: usize,
        /// The configured bound.
        max_pooled: usize,
    },
}

/// Configures and builds a [`BufferPool`]; start with [`BufferPool::builder`].
#[derive(Debug, Clone)]
pub struct BufferPoolBuilder {
    max_pooled: usize,
    buffer_capacity: usize,
    max_buffer_capacity: usize,
    prefill: usize,
}

impl Default for BufferPoolBuilder {
    fn default() -> Self {
        Self {
            max_pooled: DEFAULT_MAX_POOLED,
            buffer_capacity: DEFAULT_BUFFER_CAPACITY,
            max_buffer_capacity: DEFAULT_MAX_BUFFER_CAPACITY,
            prefill: 0,
        }
    }
}

impl BufferPoolBuilder {
    /// The most buffers the pool keeps idle (default [`DEFAULT_MAX_POOLED`]).
    ///
    /// A buffer coming back while the pool already holds this many is dropped. This
    /// bounds the idle memory at `max_pooled * max_buffer_capacity` bytes.
    #[must_use]
    pub fn max_pooled(mut self, max_pooled: usize) -> Self {
        self.max_pooled = max_pooled;
        self
    }

    /// The capacity in bytes a [`BufferPool::checkout`] guarantees, and the capacity new
    /// buffers are allocated with (default [`DEFAULT_BUFFER_CAPACITY`]).
    #[must_use]
    pub fn buffer_capacity(mut self, buffer_capacity: usize) -> Self {
        self.buffer_capacity = buffer_capacity;
        self
    }

    /// The largest capacity in bytes a buffer may have to be kept (default
    /// [`DEFAULT_MAX_BUFFER_CAPACITY`]).
    ///
    /// A buffer that grew beyond it while checked out is dropped when it comes back,
    /// so one large message does not pin a large allocation for the rest of the mission.
    #[must_use]
    pub fn max_buffer_capacity(mut self, max_buffer_capacity: usize) -> Self {
        self.max_buffer_capacity = max_buffer_capacity;
        self
    }

    /// How many buffers of `buffer_capacity` bytes to allocate up front (default 0).
    ///
    /// Prefilling moves the allocations to start-up, so the first checkouts of a
    /// mission are hits. Prefilled buffers are not counted as requests or misses.
    #[must_use]
    pub fn prefill(mut self, prefill: usize) -> Self {
        self.prefill = prefill;
        self
    }

    /// Builds the pool and allocates the prefilled buffers.
    ///
    /// # Errors
    ///
    /// [`BufferPoolConfigError::ZeroMaxPooled`] if `max_pooled` is 0,
    /// [`BufferPoolConfigError::CapacityAboveCap`] if `buffer_capacity` is above
    /// `max_buffer_capacity`, [`BufferPoolConfigError::PrefillAboveMax`] if `prefill` is
    /// above `max_pooled`.
    pub fn build(self) -> Result<BufferPool, BufferPoolConfigError> {
        if self.max_pooled == 0 {
            return Err(BufferPoolConfigError::ZeroMaxPooled);
        }
        if self.buffer_capacity > self.max_buffer_capacity {
            return Err(BufferPoolConfigError::CapacityAboveCap {
                buffer_capacity: self.buffer_capacity,
                max_buffer_capacity: self.max_buffer_capacity,
            });
        }
        if self.prefill > self.max_pooled {
            return Err(BufferPoolConfigError::PrefillAboveMax {
                prefill: self.prefill,
                max_pooled: self.max_pooled,
            });
        }
        let queue = ArrayQueue::new(self.max_pooled);
        for _ in 0..self.prefill {
            // Cannot fail: prefill <= max_pooled was checked above.
            let _ = queue.push(BytesMut::with_capacity(self.buffer_capacity));
        }
        Ok(BufferPool {
            shared: Arc::new(Shared {
                queue,
                buffer_capacity: self.buffer_capacity,
                max_buffer_capacity: self.max_buffer_capacity,
                counters: Counters::default(),
            }),
        })
    }
}

struct Shared {
    queue: ArrayQueue<BytesMut>,
    buffer_capacity: usize,
    max_buffer_capacity: usize,
    counters: Counters,
}

impl Shared {
    fn take(&self, capacity: usize) -> BytesMut {
        // A request above the cap would only grow a pooled buffer that is then dropped
        // on return; leave the pooled ones for requests they can serve.
        if capacity <= self.max_buffer_capacity {
            if let Some(mut buf) = self.queue.pop() {
                // Buffers are cleared on return, so `try_reclaim` only checks the
                // capacity, or moves the view back to the start of an allocation no one
                // else shares any more; it never allocates. Reclaiming can reveal an
                // allocation above the cap (one that was shared when it came back and is
                // ours alone now); that one is not handed out.
                if buf.try_reclaim(capacity) && buf.capacity() <= self.max_buffer_capacity {
                    self.counters.hit();
                    return buf;
                }
                // Too small and not reclaimable, or above the cap: drop it and allocate
                // one of exactly the requested capacity.
                self.counters.rejected();
            }
        }
        self.counters.miss();
        BytesMut::with_capacity(capacity)
    }

    fn give_back(&self, mut buf: BytesMut) -> bool {
        buf.clear();
        if self.is_over_cap(&mut buf) {
            self.counters.rejected();
            return false;
        }
        match self.queue.push(buf) {
            Ok(()) => {
                self.counters.returned();
                true
            }
            Err(_full) => {
                self.counters.discarded_full();
                false
            }
        }
    }

    /// Whether the empty `buf` holds more than `max_buffer_capacity` bytes.
    ///
    /// `capacity()` can understate the allocation behind a buffer: after `advance` or
    /// `split_to` the view starts inside it. Asking to reclaim one byte more than the cap
    /// succeeds exactly when the allocation is ours alone and larger than the cap (and
    /// fails without side effects otherwise). An allocation still shared with a live
    /// `Bytes` cannot be measured; it is measured again at the buffer's next checkout
    /// (if reclaiming reveals it) or return. This check costs a few nanoseconds per
    /// return; it is what keeps the idle memory bound honest.
    fn is_over_cap(&self, buf: &mut BytesMut) -> bool {
        debug_assert!(buf.is_empty());
        buf.capacity() > self.max_buffer_capacity
            || self
                .max_buffer_capacity
                .checked_add(1)
                .is_some_and(|over| buf.try_reclaim(over))
    }
}

/// A bounded, thread-safe pool of [`BytesMut`] buffers.
///
/// [`checkout`](Self::checkout) hands out a [`PooledBuf`] guard that derefs to
/// [`BytesMut`] and gives the buffer back, cleared, when dropped. The pool keeps at
/// most [`max_pooled`](BufferPoolBuilder::max_pooled) idle buffers and never keeps one
/// whose capacity grew beyond [`max_buffer_capacity`](BufferPoolBuilder::max_buffer_capacity),
/// so its idle memory is bounded by construction. Counters are available through
/// [`stats`](Self::stats).
///
/// The pool is a cheap handle: clones share the same buffers and counters, and it can
/// be used from any number of threads (the idle buffers sit in a lock-free
/// [`ArrayQueue`]).
///
/// The cap applies to the allocation behind a buffer, not only to the view
/// [`BytesMut::capacity`] reports: a buffer that was advanced or split still holds its
/// whole allocation, and is measured by it. Memory shared with a
/// [`Bytes`](bytes::Bytes) split off the buffer belongs to that `Bytes` too and stays
/// alive until it is dropped; such a buffer is measured again at its next checkout or
/// return, and dropped then if its allocation is above the cap.
///
/// # Examples
///
/// ```
/// use sarlink_pool::BufferPool;
///
/// let pool = BufferPool::builder().buffer_capacity(1024).max_pooled(8).build()?;
/// {
///     let mut buf = pool.checkout();
///     assert!(buf.capacity() >= 1024);
///     buf.extend_from_slice(b"frame");
/// } // the buffer goes back to the pool here
/// let buf = pool.checkout();
/// assert!(buf.is_empty(), "buffers come back cleared");
/// assert_eq!(pool.stats().hits, 1);
/// # Ok::<(), sarlink_pool::BufferPoolConfigError>(())
/// ```
#[derive(Clone)]
pub struct BufferPool {
    shared: Arc<Shared>,
}

impl BufferPool {
    /// Starts configuring a pool; every setting has a documented default.
    #[must_use]
    pub fn builder() -> BufferPoolBuilder {
        BufferPoolBuilder::default()
    }

    /// Checks out a cleared buffer with at least
    /// [`buffer_capacity`](BufferPoolBuilder::buffer_capacity) bytes of capacity.
    ///
    /// Takes an idle buffer if there is one (a hit), otherwise allocates (a miss).
    #[must_use]
    pub fn checkout(&self) -> PooledBuf<'_> {
        self.checkout_with_capacity(self.shared.buffer_capacity)
    }

    /// Checks out a cleared buffer with at least `capacity` bytes of capacity.
    ///
    /// An idle buffer that is too small is dropped and a new one of exactly `capacity`
    /// bytes is allocated (a miss). A `capacity` above the cap is always a fresh
    /// allocation, and that buffer is dropped rather than kept when it comes back.
    #[must_use]
    pub fn checkout_with_capacity(&self, capacity: usize) -> PooledBuf<'_> {
        PooledBuf {
            buf: self.shared.take(capacity),
            pool: Some(PoolRef::Borrowed(&self.shared)),
        }
    }

    /// Gives a buffer to the pool, for example one taken out with
    /// [`PooledBuf::into_inner`] or allocated elsewhere.
    ///
    /// Returns whether the buffer was kept: it is dropped if its capacity is above the
    /// cap or the pool is full. A kept buffer is cleared.
    pub fn put(&self, buf: BytesMut) -> bool {
        self.shared.give_back(buf)
    }

    /// Number of buffers idle in the pool right now.
    #[must_use]
    pub fn idle(&self) -> usize {
        self.shared.queue.len()
    }

    /// The most buffers the pool keeps idle.
    #[must_use]
    pub fn max_pooled(&self) -> usize {
        self.shared.queue.capacity()
    }

    /// The capacity [`checkout`](Self::checkout) guarantees, in bytes.
    #[must_use]
    pub fn buffer_capacity(&self) -> usize {
        self.shared.buffer_capacity
    }

    /// The largest capacity a buffer may have to be kept, in bytes.
    #[must_use]
    pub fn max_buffer_capacity(&self) -> usize {
        self.shared.max_buffer_capacity
    }

    /// A snapshot of the pool's counters.
    #[must_use]
    pub fn stats(&self) -> PoolStats {
        self.shared.counters.snapshot(self.idle())
    }
}

impl Default for BufferPool {
    /// A pool with every [`BufferPoolBuilder`] default.
    fn default() -> Self {
        Self::builder()
            .build()
            .expect("the builder defaults are a valid configuration")
    }
}

impl fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferPool")
            .field("max_pooled", &self.max_pooled())
            .field("buffer_capacity", &self.shared.buffer_capacity)
            .field("max_buffer_capacity", &self.shared.max_buffer_capacity)
            .field("stats", &self.stats())
            .finish()
    }
}

/// A buffer checked out of a [`BufferPool`]; gives it back when dropped.
///
/// Derefs to [`BytesMut`]. The guard borrows the pool handle it came from; to move it
/// to another thread or store it beyond that borrow, turn it into a
/// `PooledBuf<'static>` with [`into_owned`](Self::into_owned). To keep the buffer for
/// good, call [`into_inner`](Self::into_inner). To send part of it without giving up
/// the rest, split it (`buf.split().freeze()`): the remainder goes back to the pool,
/// and its full capacity is reclaimed on a later checkout once the split-off part is
/// dropped.
pub struct PooledBuf<'a> {
    buf: BytesMut,
    /// `None` once detached by `into_inner`, so `Drop` does nothing.
    pool: Option<PoolRef<'a, Shared>>,
}

impl PooledBuf<'_> {
    /// Makes the guard independent of the pool handle it was checked out from, so it
    /// can be sent to another thread or stored; it still goes back to the same pool.
    ///
    /// This costs one reference-count increment, which plain checkouts avoid.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = sarlink_pool::BufferPool::builder().build()?;
    /// let mut buf = pool.checkout().into_owned();
    /// buf.extend_from_slice(b"to the writer thread");
    /// std::thread::spawn(move || assert_eq!(buf.len(), 20)).join().unwrap();
    /// assert_eq!(pool.idle(), 1, "dropped on the other thread, back in the pool");
    /// # Ok::<(), sarlink_pool::BufferPoolConfigError>(())
    /// ```
    #[must_use]
    pub fn into_owned(mut self) -> PooledBuf<'static> {
        PooledBuf {
            buf: std::mem::take(&mut self.buf),
            pool: self.pool.take().map(|pool| pool.to_owned()),
        }
    }

    /// Takes the buffer out of the pool: it will not be given back.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = sarlink_pool::BufferPool::builder().build()?;
    /// let mut buf = pool.checkout();
    /// buf.extend_from_slice(b"kept");
    /// let frame = buf.into_inner().freeze();
    /// assert_eq!(&frame[..], b"kept");
    /// assert_eq!(pool.stats().detached, 1);
    /// assert_eq!(pool.idle(), 0);
    /// # Ok::<(), sarlink_pool::BufferPoolConfigError>(())
    /// ```
    #[must_use]
    pub fn into_inner(mut self) -> BytesMut {
        if let Some(pool) = self.pool.take() {
            pool.counters.detached();
        }
        std::mem::take(&mut self.buf)
    }
}

impl Deref for PooledBuf<'_> {
    type Target = BytesMut;

    fn deref(&self) -> &BytesMut {
        &self.buf
    }
}

impl DerefMut for PooledBuf<'_> {
    fn deref_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }
}

impl AsRef<[u8]> for PooledBuf<'_> {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl AsMut<[u8]> for PooledBuf<'_> {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

impl Drop for PooledBuf<'_> {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give_back(std::mem::take(&mut self.buf));
        }
    }
}

impl fmt::Debug for PooledBuf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledBuf")
            .field("len", &self.buf.len())
            .field("capacity", &self.buf.capacity())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(max_pooled: usize) -> BufferPool {
        BufferPool::builder()
            .max_pooled(max_pooled)
            .buffer_capacity(256)
            .max_buffer_capacity(1024)
            .build()
            .expect("valid config")
    }

    #[test]
    fn builder_rejects_inconsistent_settings() {
        assert_eq!(
            BufferPool::builder().max_pooled(0).build().unwrap_err(),
            BufferPoolConfigError::ZeroMaxPooled
        );
        assert_eq!(
            BufferPool::builder()
                .buffer_capacity(2048)
                .max_buffer_capacity(1024)
                .build()
                .unwrap_err(),
            BufferPoolConfigError::CapacityAboveCap {
                buffer_capacity: 2048,
                max_buffer_capacity: 1024
            }
        );
        assert_eq!(
            BufferPool::builder()
                .max_pooled(2)
                .prefill(3)
                .build()
                .unwrap_err(),
            BufferPoolConfigError::PrefillAboveMax {
                prefill: 3,
                max_pooled: 2
            }
        );
    }

    #[test]
    fn defaults_are_valid_and_documented() {
        let pool = BufferPool::default();
        assert_eq!(pool.max_pooled(), DEFAULT_MAX_POOLED);
        assert_eq!(pool.buffer_capacity(), DEFAULT_BUFFER_CAPACITY);
        assert_eq!(pool.max_buffer_capacity(), DEFAULT_MAX_BUFFER_CAPACITY);
        assert_eq!(pool.idle(), 0);
    }

    #[test]
    fn error_display_is_lowercase_without_period() {
        let msg = BufferPoolConfigError::PrefillAboveMax {
            prefill: 3,
            max_pooled: 2,
        }
        .to_string();
        assert_eq!(msg, "prefill 3 is above max_pooled 2");
    }

    #[test]
    fn returned_buffer_is_cleared_and_reused() {
        let pool = pool(4);
        let mut buf = pool.checkout();
        buf.extend_from_slice(b"secret");
        let ptr = buf.as_ptr();
        drop(buf);
        let buf = pool.checkout();
        assert!(buf.is_empty());
        assert_eq!(buf.as_ptr(), ptr, "the same allocation is handed out again");
        let stats = pool.stats();
        assert_eq!((stats.hits, stats.misses, stats.returns), (1, 1, 1));
    }

    #[test]
    fn split_remainder_is_reclaimed_once_the_frame_is_dropped() {
        let pool = pool(4);
        let mut buf = pool.checkout();
        buf.extend_from_slice(&[7; 200]);
        let frame = buf.split().freeze();
        drop(buf);
        assert_eq!(frame.len(), 200);
        drop(frame);
        let buf = pool.checkout();
        assert!(buf.capacity() >= 256);
        assert_eq!(pool.stats().hits, 1, "reclaimed in place, no allocation");
    }

    #[test]
    fn undersized_buffer_still_shared_is_replaced() {
        let pool = pool(4);
        let mut buf = pool.checkout();
        buf.extend_from_slice(&[7; 200]);
        let frame = buf.split().freeze();
        drop(buf); // remainder (56 bytes) goes back while `frame` still shares it
        let buf = pool.checkout();
        assert!(buf.capacity() >= 256);
        let stats = pool.stats();
        assert_eq!((stats.hits, stats.misses, stats.rejected), (0, 2, 1));
        assert_eq!(frame.len(), 200);
    }

    #[test]
    fn large_allocation_behind_an_advanced_view_is_not_kept() {
        use bytes::Buf;

        let pool = pool(4);
        let mut buf = pool.checkout();
        buf.extend_from_slice(&[1; 8000]);
        buf.advance(7900);
        assert!(
            buf.capacity() <= 1024,
            "the view looks small: {}",
            buf.capacity()
        );
        drop(buf);
        assert_eq!(pool.idle(), 0, "the 8000-byte allocation was not hoarded");
        assert_eq!(pool.stats().rejected, 1);
    }

    #[test]
    fn large_allocation_shared_on_return_is_dropped_within_one_cycle() {
        let pool = pool(4);
        let mut buf = pool.checkout();
        buf.extend_from_slice(&[1; 8000]);
        let frame = buf.split_to(7900).freeze();
        drop(buf); // a 100-byte view of an allocation `frame` still shares
        assert_eq!(pool.idle(), 1);
        drop(frame); // the pooled buffer is now the sole owner of the large allocation
        let buf = pool.checkout();
        assert!(buf.capacity() >= 256);
        drop(buf);
        assert_eq!(pool.stats().rejected, 1, "found at checkout or at return");
        assert_eq!(pool.idle(), 1);
        assert!(pool.checkout().capacity() <= 1024);
    }

    #[test]
    fn put_keeps_buffers_within_policy() {
        let pool = pool(1);
        assert!(!pool.put(BytesMut::with_capacity(4096)), "over the cap");
        let mut outside = BytesMut::with_capacity(512);
        outside.extend_from_slice(b"x");
        assert!(pool.put(outside));
        assert!(!pool.put(BytesMut::with_capacity(512)), "pool full");
        let stats = pool.stats();
        assert_eq!(
            (
                stats.rejected,
                stats.returns,
                stats.discarded_full,
                stats.idle
            ),
            (1, 1, 1, 1)
        );
        assert!(pool.checkout().is_empty());
    }

    #[test]
    fn pool_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<BufferPool>();
        assert_send_sync::<PooledBuf<'static>>();
    }
}
