//! A counting global allocator for tests that prove a path allocates nothing, or only
//! within a byte budget.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering};

/// Bytes allocated and not yet freed, by every thread of the process.
static LIVE: AtomicI64 = AtomicI64::new(0);

/// Heap bytes live in the whole process (every thread), when [`CountingAlloc`] is the
/// global allocator (otherwise always 0): what memory held by a server's own threads shows
/// up in. Allocations made before the allocator counted anything are not included, so
/// compare two readings.
pub fn live_bytes() -> i64 {
    LIVE.load(Ordering::Relaxed)
}

/// [`live_bytes`] once it has stopped moving between two readings `every` apart (a server's
/// threads have finished their turn).
pub fn settled_live_bytes(every: std::time::Duration) -> i64 {
    let mut last = live_bytes();
    loop {
        std::thread::sleep(every);
        let now = live_bytes();
        if now == last {
            return now;
        }
        last = now;
    }
}

/// Moves the process-wide live count by `delta` bytes.
fn live(delta: i64) {
    LIVE.fetch_add(delta, Ordering::Relaxed);
}

/// Heap use of one thread, as counted by [`CountingAlloc`].
///
/// Subtract two readings ([`AllocStats::since`]) or use [`alloc_stats_during`] to get the
/// use of one piece of code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AllocStats {
    /// Calls to `alloc`, `alloc_zeroed` and `realloc` (a reallocation counts as one
    /// allocation: it may move the block).
    pub allocations: u64,
    /// Bytes requested: the size of every `alloc` and `alloc_zeroed`, plus the growth of
    /// every `realloc` that grows (a shrinking `realloc` adds nothing). Frees are not
    /// subtracted, so this bounds the heap a piece of code asked for, not what it kept.
    pub bytes_allocated: u64,
}

impl AllocStats {
    /// The use between `earlier` and `self` (both read on the same thread).
    #[must_use]
    pub fn since(self, earlier: AllocStats) -> AllocStats {
        AllocStats {
            allocations: self.allocations.wrapping_sub(earlier.allocations),
            bytes_allocated: self.bytes_allocated.wrapping_sub(earlier.bytes_allocated),
        }
    }
}

thread_local! {
    // A `const` initialiser and a `Copy` value without `Drop`: the thread-local needs no
    // lazy initialisation and registers no destructor, so touching it from inside the
    // allocator never allocates (or recurses into the allocator).
    static STATS: Cell<AllocStats> = const {
        Cell::new(AllocStats {
            allocations: 0,
            bytes_allocated: 0,
        })
    };
}

/// A global allocator that counts the allocations (and reallocations) made by the current
/// thread, and the bytes they request; it forwards every call to [`System`]. Install it in
/// a test binary of its own:
///
/// ```ignore
/// #[global_allocator]
/// static ALLOC: sarlink_testkit::CountingAlloc = sarlink_testkit::CountingAlloc;
///
/// let (n, ()) = sarlink_testkit::allocations_during(|| hot_path());
/// assert_eq!(n, 0);
/// let (stats, ()) = sarlink_testkit::alloc_stats_during(|| decode_hostile_input());
/// assert!(stats.bytes_allocated <= budget);
/// ```
///
/// The counters are per thread, so tests running in parallel in the same binary do not
/// disturb each other's counts; work handed to another thread is not counted. One more
/// counter is process-wide: the bytes live right now ([`live_bytes`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

#[allow(unsafe_code)]
// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract is upheld by `System`; the counters are a thread-local `Cell` with
// a const initialiser and no destructor, and an atomic integer, neither of which allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            live(size(layout.size()));
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            live(size(layout.size()));
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        live(-size(layout.size()));
        // SAFETY: forwarded unchanged; `ptr` came from `System` through this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size.saturating_sub(layout.size()));
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        let moved = unsafe { System.realloc(ptr, layout, new_size) };
        if !moved.is_null() {
            live(size(new_size) - size(layout.size()));
        }
        moved
    }
}

/// A byte count as a signed delta. Cast invariant: an allocation is at most `isize::MAX`
/// bytes, which fits an `i64` on every supported target.
fn size(bytes: usize) -> i64 {
    bytes as i64
}

/// Counts one allocation of `bytes` on this thread.
fn count(bytes: usize) {
    // `try_with`: the thread-local may already be gone while a thread shuts down.
    let _ = STATS.try_with(|s| {
        let mut stats = s.get();
        stats.allocations = stats.allocations.wrapping_add(1);
        // Cast invariant: usize is at most 64 bits on every supported target.
        stats.bytes_allocated = stats.bytes_allocated.wrapping_add(bytes as u64);
        s.set(stats);
    });
}

/// Heap use so far by the current thread, when [`CountingAlloc`] is the global allocator
/// (otherwise always zero).
pub fn alloc_stats() -> AllocStats {
    STATS.with(Cell::get)
}

/// Runs `f` and returns the heap use it caused on this thread.
pub fn alloc_stats_during<R>(f: impl FnOnce() -> R) -> (AllocStats, R) {
    let before = alloc_stats();
    let r = f();
    (alloc_stats().since(before), r)
}

/// Allocations (and reallocations) made so far by the current thread, when
/// [`CountingAlloc`] is the global allocator (otherwise always 0).
pub fn allocations() -> u64 {
    alloc_stats().allocations
}

/// Runs `f` and returns how many allocations it made on this thread.
pub fn allocations_during<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let (stats, r) = alloc_stats_during(f);
    (stats.allocations, r)
}
