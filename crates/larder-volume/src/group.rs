//! Group commit for closes: files closed in a burst (a `cp -r`, an
//! archive unpacked, an app saving many small files) go to the store in
//! one sync shortly after the burst, instead of one store round trip per
//! close while the app waits.
//!
//! A close never promised durability (on Linux neither does it): fsync
//! does, and it is untouched, still syncing everything before it returns.
//! What a close promises here is that the file reaches the store soon
//! without anyone asking: once no file has been closed for [`QUIET`], or
//! [`LINGER`] after the first close of a burst, whichever is first; and at
//! the end of the run, with everything else. Where no thread can be made
//! (a component), closes are grouped only if the host syncs what waits
//! before it blocks (`GroupCommit::deferred`): the burst's sync then comes at
//! the first close [`LINGER`] after its start, before the app waits on
//! anything, or at the end; otherwise each close syncs before it returns.

use fs_core::{Fs, SyncHook};
use larder_sync::MirrorHook;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

/// A burst is over once no close came for this long.
pub const QUIET: Duration = Duration::from_millis(2);
/// The longest a closed file waits for its sync while closes keep coming.
pub const LINGER: Duration = Duration::from_millis(50);

#[derive(Default)]
struct Burst {
    /// When the first close not yet synced came, if one did.
    first: Option<Instant>,
    last: Option<Instant>,
}

/// The closes waiting for their sync, shared by the hook and the worker.
#[derive(Default)]
pub(crate) struct Committer {
    burst: Mutex<Burst>,
    wake: Condvar,
    /// A worker is running: closes may be left to it.
    active: AtomicBool,
}

impl Committer {
    /// Whether a worker groups the closes (they return at once).
    pub(crate) fn working(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Forgets the burst; whether there was one.
    pub(crate) fn take(&self) -> bool {
        let mut b = self.burst.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *b).first.is_some()
    }

    /// Whether the burst began LINGER ago or more (then taken).
    fn take_if_lingered(&self) -> bool {
        let mut b = self.burst.lock().unwrap_or_else(|e| e.into_inner());
        let lingered = b.first.is_some_and(|f| f.elapsed() >= LINGER);
        if lingered {
            *b = Burst::default();
        }
        lingered
    }

    fn note(&self) {
        let now = Instant::now();
        let mut b = self.burst.lock().unwrap_or_else(|e| e.into_inner());
        b.first.get_or_insert(now);
        b.last = Some(now);
        self.wake.notify_one();
    }

    /// Waits for a burst to end; `None` once `alive` says to stop.
    fn next_burst(&self, alive: impl Fn() -> bool) -> Option<()> {
        let mut b = self.burst.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if !alive() {
                return None;
            }
            let (Some(first), Some(last)) = (b.first, b.last) else {
                // Idle: check now and then whether the volume is gone.
                b = self
                    .wake
                    .wait_timeout(b, Duration::from_secs(1))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                continue;
            };
            let now = Instant::now();
            let until = (last + QUIET).min(first + LINGER);
            if now >= until {
                *b = Burst::default();
                return Some(());
            }
            b = self
                .wake
                .wait_timeout(b, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// The mirror's hook, with closes left to the worker while one runs.
pub(crate) struct GroupCommit {
    pub inner: MirrorHook,
    pub committer: Arc<Committer>,
    /// Closes are grouped (`--sync-mode close`); write-through answers
    /// each change before the call returns, and its closes do too.
    pub grouped: bool,
    /// No worker: the host syncs waiting closes before it blocks (see
    /// `VolumeBuilder::defer_closes`).
    pub deferred: bool,
}

impl SyncHook for GroupCommit {
    fn sync(&self, fs: &Fs, ino: u64, data_only: bool) -> fs_core::Result<()> {
        self.inner.sync(fs, ino, data_only)
    }

    fn closed(&self, fs: &Fs, ino: u64) {
        let c = &self.committer;
        if self.grouped && c.active.load(Ordering::Acquire) {
            c.note();
        } else if self.grouped && self.deferred {
            c.note();
            if c.take_if_lingered() {
                self.inner.closed(fs, ino);
            }
        } else {
            self.inner.closed(fs, ino);
        }
    }

    fn wants_changes(&self) -> bool {
        self.inner.wants_changes()
    }

    fn changed(&self, fs: &Fs) {
        self.inner.changed(fs)
    }
}

/// Starts the worker that syncs each burst of closes while `volume`
/// lives; closes stay synchronous if it cannot start.
pub(crate) fn start(volume: &Arc<crate::Volume>, committer: &Arc<Committer>) {
    let weak: Weak<crate::Volume> = Arc::downgrade(volume);
    let c = committer.clone();
    let worker = move || {
        while c.next_burst(|| weak.strong_count() > 0).is_some() {
            let Some(v) = weak.upgrade() else { return };
            if let Some(m) = &v.mirror {
                m.sync_in_background(&v.fs);
            }
        }
    };
    match std::thread::Builder::new()
        .name("group commit".into())
        .spawn(worker)
    {
        Ok(_) => committer.active.store(true, Ordering::Release),
        Err(e) => tracing::debug!(error = %e, "no group commit: closes sync one by one"),
    }
}
