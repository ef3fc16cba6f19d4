//! [`ObjectPool`]: a bounded, thread-safe pool of reusable values.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::handle::PoolRef;
use crate::stats::{Counters, PoolStats};

/// Default for [`ObjectPoolBuilder::max_pooled`].
pub const DEFAULT_MAX_POOLED_OBJECTS: usize = 32;

type Factory<T> = Box<dyn Fn() -> T + Send + Sync>;
type Reset<T> = Box<dyn Fn(&mut T) + Send + Sync>;
type KeepIf<T> = Box<dyn Fn(&T) -> bool + Send + Sync>;

/// Why an [`ObjectPoolBuilder`] could not build a pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectPoolConfigError {
    /// `max_pooled` was zero; a pool must be able to keep at least one value.
    #[error("max_pooled must be at least 1")]
    ZeroMaxPooled,
    /// More values were asked to be created up front than the pool can keep.
    #[error("prefill {prefill} is above max_pooled {max_pooled}")]
    PrefillAboveMax {
        /// The configured prefill count.
        prefill: usize,
        /// The configured bound.
        max_pooled: usize,
    },
}

/// Configures and builds an [`ObjectPool`]; start with [`ObjectPool::builder`].
pub struct ObjectPoolBuilder<T> {
    factory: Factory<T>,
    reset: Reset<T>,
    keep_if: Option<KeepIf<T>>,
    max_pooled: usize,
    prefill: usize,
}

impl<T> ObjectPoolBuilder<T> {
    /// The most values the pool keeps idle (default [`DEFAULT_MAX_POOLED_OBJECTS`]).
    ///
    /// A value coming back while the pool already holds this many is dropped.
    #[must_use]
    pub fn max_pooled(mut self, max_pooled: usize) -> Self {
        self.max_pooled = max_pooled;
        self
    }

    /// How many values to create with the factory up front (default 0).
    ///
    /// Prefilled values are not counted as requests or misses.
    #[must_use]
    pub fn prefill(mut self, prefill: usize) -> Self {
        self.prefill = prefill;
        self
    }

    /// Only keep values for which `keep_if` returns `true` (default: keep all).
    ///
    /// It sees the value after the reset function ran. Use it to drop values that grew
    /// too large to be worth hoarding, for example
    /// `keep_if(|v: &Vec<u8>| v.capacity() <= 4096)`. Rejected values are counted in
    /// [`PoolStats::rejected`]. It runs inside the guard's `Drop`, so it must not panic.
    #[must_use]
    pub fn keep_if(mut self, keep_if: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
        self.keep_if = Some(Box::new(keep_if));
        self
    }

    /// Builds the pool and creates the prefilled values.
    ///
    /// # Errors
    ///
    /// [`ObjectPoolConfigError::ZeroMaxPooled`] if `max_pooled` is 0,
    /// [`ObjectPoolConfigError::PrefillAboveMax`] if `prefill` is above `max_pooled`.
    pub fn build(self) -> Result<ObjectPool<T>, ObjectPoolConfigError> {
        if self.max_pooled == 0 {
            return Err(ObjectPoolConfigError::ZeroMaxPooled);
        }
        if self.prefill > self.max_pooled {
            return Err(ObjectPoolConfigError::PrefillAboveMax {
                prefill: self.prefill,
                max_pooled: self.max_pooled,
            });
        }
        let queue = ArrayQueue::new(self.max_pooled);
        for _ in 0..self.prefill {
            // Cannot fail: prefill <= max_pooled was checked above.
            let _ = queue.push((self.factory)());
        }
        Ok(ObjectPool {
            shared: Arc::new(Shared {
                queue,
                factory: self.factory,
                reset: self.reset,
                keep_if: self.keep_if,
                counters: Counters::default(),
            }),
        })
    }
}

impl<T> fmt::Debug for ObjectPoolBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectPoolBuilder")
            .field("max_pooled", &self.max_pooled)
            .field("prefill", &self.prefill)
            .field("keep_if", &self.keep_if.is_some())
            .finish_non_exhaustive()
    }
}

struct Shared<T> {
    queue: ArrayQueue<T>,
    factory: Factory<T>,
    reset: Reset<T>,
    keep_if: Option<KeepIf<T>>,
    counters: Counters,
}

impl<T> Shared<T> {
    fn take(&self) -> T {
        if let Some(value) = self.queue.pop() {
            self.counters.hit();
            value
        } else {
            self.counters.miss();
            (self.factory)()
        }
    }

    fn give_back(&self, mut value: T) -> bool {
        // Racy by design: at worst one value is reset and then dropped, or dropped while
        // a slot just freed up. It saves the reset when the pool is plainly full.
        if self.queue.is_full() {
            self.counters.discarded_full();
            return false;
        }
        (self.reset)(&mut value);
        if let Some(keep_if) = &self.keep_if {
            if !keep_if(&value) {
                self.counters.rejected();
                return false;
            }
        }
        match self.queue.push(value) {
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
}

/// A bounded, thread-safe pool of reusable values of type `T`.
///
/// Values are created by a factory when the pool is empty and cleaned by a reset
/// function when they come back, so a checkout sees either a fresh value or a reset
/// one, never what a previous holder left in it.
/// [`checkout`](Self::checkout) hands out a [`Pooled`] guard that derefs to `T` and
/// gives the value back when dropped. At most
/// [`max_pooled`](ObjectPoolBuilder::max_pooled) values are kept idle.
///
/// The pool is a cheap handle: clones share the same values and counters, and it can
/// be used from any number of threads when `T: Send`.
///
/// # Examples
///
/// ```
/// use sarlink_pool::ObjectPool;
///
/// let pool = ObjectPool::builder(Vec::<u32>::new, Vec::clear).max_pooled(4).build()?;
/// let mut samples = pool.checkout();
/// samples.extend([1, 2, 3]);
/// drop(samples);
/// assert!(pool.checkout().is_empty(), "reset ran when the value came back");
/// assert_eq!(pool.stats().hits, 1);
/// # Ok::<(), sarlink_pool::ObjectPoolConfigError>(())
/// ```
pub struct ObjectPool<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for ObjectPool<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> ObjectPool<T> {
    /// Starts configuring a pool that creates values with `factory` and cleans
    /// returned ones with `reset`.
    ///
    /// `reset` runs inside the guard's `Drop`, so it must not panic.
    pub fn builder(
        factory: impl Fn() -> T + Send + Sync + 'static,
        reset: impl Fn(&mut T) + Send + Sync + 'static,
    ) -> ObjectPoolBuilder<T> {
        ObjectPoolBuilder {
            factory: Box::new(factory),
            reset: Box::new(reset),
            keep_if: None,
            max_pooled: DEFAULT_MAX_POOLED_OBJECTS,
            prefill: 0,
        }
    }

    /// Checks out a value: an idle one if there is one (a hit), otherwise a new one
    /// from the factory (a miss).
    #[must_use]
    pub fn checkout(&self) -> Pooled<'_, T> {
        Pooled {
            value: Some(self.shared.take()),
            pool: PoolRef::Borrowed(&self.shared),
        }
    }

    /// Gives a value to the pool, for example one taken out with [`Pooled::into_inner`].
    ///
    /// The value is reset first. Returns whether it was kept: it is dropped if the pool
    /// is full or `keep_if` rejects it.
    pub fn put(&self, value: T) -> bool {
        self.shared.give_back(value)
    }

    /// Number of values idle in the pool right now.
    #[must_use]
    pub fn idle(&self) -> usize {
        self.shared.queue.len()
    }

    /// The most values the pool keeps idle.
    #[must_use]
    pub fn max_pooled(&self) -> usize {
        self.shared.queue.capacity()
    }

    /// A snapshot of the pool's counters.
    #[must_use]
    pub fn stats(&self) -> PoolStats {
        self.shared.counters.snapshot(self.idle())
    }
}

impl<T> fmt::Debug for ObjectPool<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectPool")
            .field("max_pooled", &self.max_pooled())
            .field("stats", &self.stats())
            .finish()
    }
}

/// A value checked out of an [`ObjectPool`]; gives it back when dropped.
///
/// Derefs to `T`. The guard borrows the pool handle it came from; to move it to another
/// thread or store it beyond that borrow, turn it into a `Pooled<'static, T>` with
/// [`into_owned`](Self::into_owned). To keep the value for good, call
/// [`into_inner`](Self::into_inner).
pub struct Pooled<'a, T> {
    /// `Some` for the guard's whole life: only `into_inner`, `into_owned` and `drop`
    /// take it, and all three consume the guard.
    value: Option<T>,
    pool: PoolRef<'a, Shared<T>>,
}

const PRESENT: &str = "a Pooled guard holds its value until it is consumed";

impl<T> Pooled<'_, T> {
    /// Makes the guard independent of the pool handle it was checked out from, so it
    /// can be sent to another thread or stored; it still goes back to the same pool.
    ///
    /// This costs one reference-count increment, which plain checkouts avoid.
    #[must_use]
    pub fn into_owned(mut self) -> Pooled<'static, T> {
        Pooled {
            value: self.value.take(),
            pool: self.pool.to_owned(),
        }
    }

    /// Takes the value out of the pool: it will not be given back or reset.
    #[must_use]
    pub fn into_inner(mut self) -> T {
        self.pool.counters.detached();
        self.value.take().expect(PRESENT)
    }
}

impl<T> Deref for Pooled<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.value.as_ref().expect(PRESENT)
    }
}

impl<T> DerefMut for Pooled<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.value.as_mut().expect(PRESENT)
    }
}

impl<T> Drop for Pooled<'_, T> {
    fn drop(&mut self) {
        if let Some(value) = self.value.take() {
            self.pool.give_back(value);
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Pooled<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pooled").field(&self.value).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_rejects_inconsistent_settings() {
        let err = ObjectPool::builder(|| 0_u8, |_| {})
            .max_pooled(0)
            .build()
            .unwrap_err();
        assert_eq!(err, ObjectPoolConfigError::ZeroMaxPooled);
        let err = ObjectPool::builder(|| 0_u8, |_| {})
            .max_pooled(1)
            .prefill(2)
            .build()
            .unwrap_err();
        assert_eq!(
            err,
            ObjectPoolConfigError::PrefillAboveMax {
                prefill: 2,
                max_pooled: 1
            }
        );
        assert_eq!(err.to_string(), "prefill 2 is above max_pooled 1");
    }

    #[test]
    fn detached_value_is_not_reset_or_returned() {
        let pool = ObjectPool::builder(Vec::<u8>::new, Vec::clear)
            .build()
            .unwrap();
        let mut v = pool.checkout();
        v.push(1);
        let v = v.into_inner();
        assert_eq!(v, [1]);
        let stats = pool.stats();
        assert_eq!((stats.detached, stats.returns, stats.idle), (1, 0, 0));
    }

    #[test]
    fn pool_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ObjectPool<Vec<u8>>>();
        assert_send_sync::<Pooled<'static, Vec<u8>>>();
    }
}
