//! Where a filesystem call that may take long runs.
//!
//! The sync and async linkers register the very same host functions (one
//! translation of `wasi:filesystem`); they differ only in this policy. Under
//! the sync linker the embedder chose to block, so everything runs inline.
//! Under the async linker a call that may wait on a store round trip (a
//! volume with a store or a lazily read image, a lent store) or that copies
//! a large buffer runs in `tokio::task::block_in_place`: the worker thread
//! hands its other tasks (other instances' requests) to a fresh worker
//! while this one works, so the executor never stalls on it. Short calls
//! (a stat, an open in memory) stay inline, where a handoff would cost more
//! than the call.
//!
//! block_in_place rather than `spawn_blocking` because the guest is
//! suspended in this call either way, and it needs no second, `async`
//! copy of the interface glue. It needs tokio's multi-thread runtime (what
//! `wasmtime serve`, Spin and `larder serve-http` run); elsewhere (no
//! runtime, a current-thread runtime) calls run inline.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Copies at least this large are worth moving off the worker.
pub(crate) const LARGE: usize = 256 << 10;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Calls {
    /// The sync linker: the embedder blocks its own thread.
    Inline,
    /// The async linker: long calls leave the executor's worker.
    OffWorker,
}

impl Calls {
    /// Runs `f`, which may take long.
    pub(crate) fn long<R>(self, f: impl FnOnce() -> R) -> R {
        match self {
            Calls::OffWorker if on_multi_thread_runtime() => tokio::task::block_in_place(f),
            _ => f(),
        }
    }

    /// Runs `f`, long if `long` (else inline).
    pub(crate) fn maybe_long<R>(self, long: bool, f: impl FnOnce() -> R) -> R {
        if long {
            self.long(f)
        } else {
            f()
        }
    }
}

fn on_multi_thread_runtime() -> bool {
    Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread)
}
