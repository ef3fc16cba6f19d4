//! Drivers: the I/O around the sans-IO cores. They own the sockets (through
//! `sarlink_link::driver`), the receiver thread, the files and the clock, feed the cores and
//! carry out what the cores ask for.

pub mod drone;
pub mod ground;
pub mod mavlink;
pub mod mqtt;

/// Whether a dashboard publication is due at `now`: every [`PUBLISH_INTERVAL`], or five
/// times less often while the dashboard-rate feature is shed. Moves `next` on when it is.
///
/// [`PUBLISH_INTERVAL`]: crate::dashboard::PUBLISH_INTERVAL
fn publish_due(next: &mut std::time::Instant, full_rate: bool) -> bool {
    let now = std::time::Instant::now();
    if now < *next {
        return false;
    }
    let every = if full_rate {
        crate::dashboard::PUBLISH_INTERVAL
    } else {
        crate::dashboard::PUBLISH_INTERVAL * 5
    };
    *next = (*next + every).max(now);
    true
}
