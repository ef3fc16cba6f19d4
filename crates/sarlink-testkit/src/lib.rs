//! Shared test harnesses and fixtures for the sarlink workspace (not published). Every
//! fixture more than one test or benchmark needs lives here, once.
//!
//! - [`record`] / [`record_at`]: a deterministic stream of RSSI records.
//! - `pair` (feature `link`): the deterministic two-endpoint harness for
//!   `sarlink_link::Session`, with injected time and lost or chunked transmissions.
//! - [`CountingAlloc`]: a global allocator that counts allocations and bytes per thread (and
//!   the bytes live in the whole process, [`live_bytes`]), for
//!   tests that prove a hot path allocates nothing in steady state, or stays within a
//!   budget on hostile input ([`allocations_during`], [`alloc_stats_during`]).
//! - [`iq_data_dir`] / [`iq_capture`]: where the shared real RTL-SDR captures are.
//! - [`proxy::FaultProxy`]: a TCP proxy that injects latency, jitter, stalls, cuts and
//!   outages between a client and a server, for link, load and demo runs.
//!
//! # Features
//! - `link`: the `pair` module, which depends on `sarlink-link`. Off by default, so the
//!   crates below `sarlink-link` (wire, schema, sdr) can use the rest without building it.
//!
//! `sarlink-wire`, `sarlink-schema` and `sarlink-link` list this crate as a dev-dependency
//! while it depends on them (directly or through `sarlink-schema`): cargo allows that cycle.
//! Their integration tests link the same library this crate links, so they share its types;
//! their unit tests (`#[cfg(test)]` in `src/`) are a second copy of the library and must not
//! use this crate's types with theirs.

// The one place in the workspace with `unsafe`: a `GlobalAlloc` must be an `unsafe impl`.
// It only forwards to `std::alloc::System` and bumps thread-local counters.
#![deny(unsafe_code)]

mod alloc;
#[cfg(feature = "tls")]
pub mod fleet;
#[cfg(feature = "link")]
mod frame;
#[cfg(feature = "link")]
pub mod pair;
pub mod proxy;
mod record;

use std::path::{Path, PathBuf};

pub use alloc::{
    AllocStats, CountingAlloc, alloc_stats, alloc_stats_during, allocations, allocations_during,
    live_bytes, settled_live_bytes,
};
#[cfg(feature = "link")]
pub use frame::frame;
pub use record::{RECORD_EPOCH_NS, record, record_at};

/// A session configuration whose timers (handshake timeout, liveness, degradation, pings)
/// are two minutes: nothing times out or pings while a test holds connections to measure
/// something else (memory, for instance).
#[cfg(feature = "link")]
pub fn patient_session(
    role: sarlink_schema::Role,
    node: &str,
    stream: u64,
) -> sarlink_link::SessionConfig {
    let long = std::time::Duration::from_secs(120);
    let node = sarlink_schema::NodeName::new(node).expect("a test's node name");
    let mut session = sarlink_link::SessionConfig::new(role, node, stream);
    session.handshake_timeout = long;
    session.liveness_timeout = long;
    session.degraded_after = long;
    session.ping_interval = long;
    session
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
