//! Locks. With `std`, parking_lot (fair, fast, no poisoning); without it,
//! spin locks, which never actually spin in a single-threaded wasm guest.
//! Both expose the same guard-returning API, so the engine has one code path.

#[cfg(feature = "std")]
pub(crate) use parking_lot::{Mutex, RwLock};

#[cfg(not(feature = "std"))]
pub(crate) use spin::{Mutex, RwLock};
