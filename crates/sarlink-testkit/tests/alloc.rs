//! The counting allocator counts what a test relies on: allocations, requested bytes,
//! reallocation growth, and only the current thread's. (Its own test binary, because it
//! installs the global allocator.)

use std::hint::black_box;

use sarlink_testkit::{AllocStats, CountingAlloc, alloc_stats_during, allocations_during};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[test]
fn counts_allocations_and_bytes() {
    let (stats, v) = alloc_stats_during(|| black_box(Vec::<u8>::with_capacity(100)));
    assert_eq!(
        stats,
        AllocStats {
            allocations: 1,
            bytes_allocated: 100
        }
    );

    // Growing by realloc counts one allocation and the growth only.
    let mut v = v;
    let (stats, ()) = alloc_stats_during(|| v.reserve_exact(300));
    assert_eq!(v.capacity(), 300);
    assert_eq!(
        stats,
        AllocStats {
            allocations: 1,
            bytes_allocated: 200
        }
    );

    // Freeing and shrinking add nothing to the byte count.
    let (stats, ()) = alloc_stats_during(|| {
        v.shrink_to(10);
        drop(v);
    });
    assert_eq!(stats.bytes_allocated, 0);

    let (n, ()) = allocations_during(|| {});
    assert_eq!(n, 0);
}

#[test]
fn other_threads_are_not_counted() {
    let (stats, ()) = alloc_stats_during(|| {
        std::thread::scope(|s| {
            s.spawn(|| black_box(vec![0_u8; 1 << 20]));
        });
    });
    // Spawning allocates on this thread, but far less than the other thread's 1 MiB.
    assert!(stats.bytes_allocated < 1 << 20, "{stats:?}");
}
