//! Shared test harnesses and fixtures for the sarlink workspace (not published).
//!
//! - [`CountingAlloc`]: a global allocator that counts allocations per thread, for tests that
//!   prove a hot path allocates nothing in steady state.
//! - [`iq_data_dir`] / [`iq_capture`]: where the shared real RTL-SDR captures are.
//! - [`proxy::FaultProxy`]: a TCP proxy that injects latency, jitter, stalls, cuts and
//!   outages between a client and a server, for link, load and demo runs.

// The one place in the workspace with `unsafe`: a `GlobalAlloc` must be an `unsafe impl`.
// It only forwards to `std::alloc::System` and bumps a thread-local counter.
#![deny(unsafe_code)]

pub mod proxy;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// A global allocator that counts allocations (and reallocations) made by the current
/// thread. Install it in a test binary of its own:
///
/// ```ignore
/// #[global_allocator]
/// static ALLOC: sarlink_testkit::CountingAlloc = sarlink_testkit::CountingAlloc;
///
/// let n = sarlink_testkit::allocations_during(|| hot_path());
/// assert_eq!(n, 0);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

#[allow(unsafe_code)]
// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract is upheld by `System`; the counter is a thread-local `Cell` with a
// const initialiser, which never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` came from `System` through this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn bump() {
    // `try_with`: the thread-local may already be gone while a thread shuts down.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

/// Allocations (and reallocations) made so far by the current thread, when
/// [`CountingAlloc`] is the global allocator (otherwise always 0).
pub fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Runs `f` and returns how many allocations it made on this thread.
pub fn allocations_during<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let before = allocations();
    let r = f();
    (allocations() - before, r)
}

/// The directory of the shared real RTL-SDR captures: `$SARLINK_IQ_DIR` if set, else
/// `shared/data/iq` beside the workspace. `None` (after printing why) when absent, so a
/// test can skip.
pub fn iq_data_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("SARLINK_IQ_DIR") {
        Some(d) => PathBuf::from(d),
        None => workspace_root().join("../shared/data/iq"),
    };
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipping: real captures not found at {} (set SARLINK_IQ_DIR to their directory)",
            dir.display()
        );
        None
    }
}

/// A capture file from [`iq_data_dir`], or `None` (after printing why) when absent.
pub fn iq_capture(name: &str) -> Option<PathBuf> {
    let path = iq_data_dir()?.join(name);
    if path.is_file() {
        Some(path)
    } else {
        eprintln!("skipping: capture {} not found", path.display());
        None
    }
}

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> &'static Path {
    // This crate lives in `<root>/crates/sarlink-testkit`.
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[cfg(test)]
mod tests {
    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(super::workspace_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
    }
}
