//! Many threads checking out and returning under contention: no buffer is ever held by
//! two threads at once, and every buffer and checkout is accounted for at the end.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};

use sarlink_pool::BufferPool;

const THREADS: usize = 8;
const ITERATIONS: usize = 4_000;
const TAG_LEN: usize = 64;

fn tag(thread: usize, iteration: usize, slot: usize) -> [u8; TAG_LEN] {
    let mut out = [0; TAG_LEN];
    let id = ((thread as u64) << 40) | ((iteration as u64) << 8) | slot as u64;
    for chunk in out.chunks_exact_mut(8) {
        chunk.copy_from_slice(&id.to_le_bytes());
    }
    out
}

#[test]
fn buffers_are_never_shared_or_lost_under_contention() {
    // Fewer pooled buffers than threads, so the pool is both empty and full often.
    let pool = BufferPool::builder()
        .max_pooled(4)
        .buffer_capacity(256)
        .max_buffer_capacity(1024)
        .build()
        .unwrap();
    // Addresses of the allocations currently held by some thread.
    let held = Mutex::new(HashSet::new());
    let barrier = Barrier::new(THREADS);
    let oversized = AtomicUsize::new(0);

    std::thread::scope(|s| {
        for thread in 0..THREADS {
            let (pool, held, barrier, oversized) = (pool.clone(), &held, &barrier, &oversized);
            s.spawn(move || {
                barrier.wait();
                for iteration in 0..ITERATIONS {
                    // Hold one or two buffers at once.
                    let count = 1 + (thread + iteration) % 2;
                    let mut bufs = Vec::new();
                    for slot in 0..count {
                        let mut buf = pool.checkout();
                        assert!(buf.is_empty(), "checked-out buffer is cleared");
                        assert!(
                            held.lock().unwrap().insert(buf.as_ptr() as usize),
                            "the same buffer is held by two holders"
                        );
                        buf.extend_from_slice(&tag(thread, iteration, slot));
                        bufs.push(buf);
                    }
                    std::thread::yield_now();
                    for (slot, buf) in bufs.iter_mut().enumerate() {
                        assert_eq!(
                            buf[..],
                            tag(thread, iteration, slot),
                            "buffer changed under its holder"
                        );
                        assert!(held.lock().unwrap().remove(&(buf.as_ptr() as usize)));
                    }
                    if iteration % 97 == 0 {
                        bufs[0].reserve(4096);
                        oversized.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });

    let stats = pool.stats();
    let requests = (THREADS * ITERATIONS * 3 / 2) as u64;
    assert_eq!(stats.requests(), requests, "{stats:?}");
    assert_eq!(stats.hits + stats.misses, requests);
    // Every checkout came back and was either kept or dropped by policy.
    assert_eq!(stats.returns + stats.discarded(), requests, "{stats:?}");
    assert_eq!(stats.rejected, oversized.load(Ordering::Relaxed) as u64);
    // Every allocated buffer is either idle now or was dropped: none leaked, none doubled.
    assert_eq!(
        stats.misses,
        stats.idle as u64 + stats.discarded(),
        "{stats:?}"
    );
    assert!(stats.idle <= pool.max_pooled());
    assert!(held.lock().unwrap().is_empty());

    // The idle buffers are distinct allocations.
    let idle: Vec<_> = (0..stats.idle).map(|_| pool.checkout()).collect();
    let distinct: HashSet<usize> = idle.iter().map(|b| b.as_ptr() as usize).collect();
    assert_eq!(distinct.len(), stats.idle);
    assert_eq!(pool.stats().hits, stats.hits + stats.idle as u64);
}
