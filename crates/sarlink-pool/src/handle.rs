//! How a guard refers to the pool it came from.

use std::ops::Deref;
use std::sync::Arc;

/// A guard's link to its pool: borrowed for the common case (no reference count
/// traffic on the hot path), owned when the guard must outlive the pool handle or move
/// to another thread with a `'static` bound.
pub(crate) enum PoolRef<'a, S> {
    Borrowed(&'a Arc<S>),
    Owned(Arc<S>),
}

impl<S> PoolRef<'_, S> {
    pub(crate) fn to_owned(&self) -> PoolRef<'static, S> {
        match self {
            PoolRef::Borrowed(shared) => PoolRef::Owned(Arc::clone(shared)),
            PoolRef::Owned(shared) => PoolRef::Owned(Arc::clone(shared)),
        }
    }
}

impl<S> Deref for PoolRef<'_, S> {
    type Target = S;

    fn deref(&self) -> &S {
        match self {
            PoolRef::Borrowed(shared) => shared,
            PoolRef::Owned(shared) => shared,
        }
    }
}
