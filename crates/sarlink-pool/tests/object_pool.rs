//! Behaviour of `ObjectPool` that users rely on: reset, factory, bounds, accounting.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sarlink_pool::ObjectPool;

fn counting_pool(max_pooled: usize) -> (ObjectPool<Vec<u32>>, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let made = Arc::new(AtomicUsize::new(0));
    let resets = Arc::new(AtomicUsize::new(0));
    let (m, r) = (Arc::clone(&made), Arc::clone(&resets));
    let pool = ObjectPool::builder(
        move || {
            m.fetch_add(1, Ordering::Relaxed);
            Vec::with_capacity(16)
        },
        move |v: &mut Vec<u32>| {
            r.fetch_add(1, Ordering::Relaxed);
            v.clear();
        },
    )
    .max_pooled(max_pooled)
    .build()
    .unwrap();
    (pool, made, resets)
}

#[test]
fn reset_is_applied_before_a_value_is_reused() {
    let (pool, made, resets) = counting_pool(4);
    let mut v = pool.checkout();
    v.extend([1, 2, 3]);
    drop(v);
    assert_eq!(resets.load(Ordering::Relaxed), 1);
    let v = pool.checkout();
    assert!(v.is_empty(), "the previous holder's data is gone");
    assert!(v.capacity() >= 16, "the same allocation is reused");
    assert_eq!(made.load(Ordering::Relaxed), 1);
    assert_eq!((pool.stats().hits, pool.stats().misses), (1, 1));
}

#[test]
fn factory_runs_only_on_misses() {
    let (pool, made, _) = counting_pool(4);
    for _ in 0..100 {
        let a = pool.checkout();
        let b = pool.checkout();
        drop((a, b));
    }
    let stats = pool.stats();
    assert_eq!(stats.requests(), 200);
    assert_eq!(stats.misses, 2);
    assert_eq!(made.load(Ordering::Relaxed), 2);
}

#[test]
fn pool_never_keeps_more_than_max_pooled() {
    let (pool, _, resets) = counting_pool(3);
    let held: Vec<_> = (0..10).map(|_| pool.checkout()).collect();
    drop(held);
    let stats = pool.stats();
    assert_eq!((stats.idle, stats.returns, stats.discarded_full), (3, 3, 7));
    assert_eq!(
        resets.load(Ordering::Relaxed),
        3,
        "values dropped because the pool is full are not reset"
    );
}

#[test]
fn keep_if_drops_values_that_grew_too_large() {
    let pool = ObjectPool::builder(Vec::<u8>::new, Vec::clear)
        .keep_if(|v| v.capacity() <= 1024)
        .build()
        .unwrap();
    let mut small = pool.checkout();
    small.extend_from_slice(&[1; 100]);
    let mut large = pool.checkout();
    large.extend_from_slice(&[1; 100_000]);
    drop((small, large));
    let stats = pool.stats();
    assert_eq!((stats.returns, stats.rejected, stats.idle), (1, 1, 1));
    assert!(pool.checkout().capacity() <= 1024);
}

#[test]
fn put_resets_and_respects_the_bound() {
    let (pool, _, resets) = counting_pool(1);
    assert!(pool.put(vec![9, 9]));
    assert!(!pool.put(vec![7]));
    assert_eq!(resets.load(Ordering::Relaxed), 1);
    assert!(pool.checkout().is_empty());
}

#[test]
fn prefill_creates_values_up_front() {
    let made = Arc::new(AtomicUsize::new(0));
    let m = Arc::clone(&made);
    let pool = ObjectPool::builder(move || m.fetch_add(1, Ordering::Relaxed), |_| {})
        .max_pooled(4)
        .prefill(4)
        .build()
        .unwrap();
    assert_eq!(made.load(Ordering::Relaxed), 4);
    let held: Vec<_> = (0..4).map(|_| pool.checkout()).collect();
    let mut ids: Vec<usize> = held.iter().map(|v| **v).collect();
    ids.sort_unstable();
    assert_eq!(ids, [0, 1, 2, 3]);
    assert_eq!((pool.stats().hits, pool.stats().misses), (4, 0));
}

#[test]
fn owned_guard_returns_from_another_thread() {
    let (pool, _, resets) = counting_pool(2);
    let mut v = pool.checkout().into_owned();
    v.push(42);
    std::thread::spawn(move || assert_eq!(*v, [42]))
        .join()
        .unwrap();
    assert_eq!(resets.load(Ordering::Relaxed), 1);
    assert_eq!(pool.idle(), 1);
    assert!(pool.checkout().is_empty());
}
