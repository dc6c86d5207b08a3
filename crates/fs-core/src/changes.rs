//! Which inodes changed: logs that a mirror reads to sync what changed
//! instead of walking the whole tree at every sync.
//!
//! Every change to an inode notes its number in each open log *before* the
//! filesystem's change sequence moves (see `Shared::change_of`). So a
//! reader that takes its log after reading the sequence finds every change
//! that sequence counts; a change noted but not yet counted is found
//! again at the next take. Linux's rules make the log enough to find
//! every path that changed: creating, linking, renaming or removing an
//! entry changes the directory holding it and the inode it names (ctime).
//!
//! An inode noted since the last take or open of any log is in every open
//! log already: its next changes cost one atomic load (see `Logs::note`).

use crate::sync::Mutex;
use alloc::collections::BTreeSet;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A log holds at most this many inodes; past it, it only says that
/// everything must be looked at (as cheap as the long list, by then).
const CAP: usize = 1 << 18;

#[derive(Default)]
struct Pending {
    inos: BTreeSet<u64>,
    overflowed: bool,
}

/// The inodes changed since this log was opened or last taken (see
/// [`crate::Fs::change_log`]).
pub struct ChangeLog {
    pending: Arc<Mutex<Pending>>,
    epoch: Arc<AtomicU64>,
}

/// What a [`ChangeLog`] holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changed {
    /// These inodes (some perhaps gone since), and nothing else.
    Inodes(BTreeSet<u64>),
    /// Too many to list: look at everything.
    Everything,
}

impl ChangeLog {
    /// What changed since the last take (or since the log was opened),
    /// emptying the log.
    pub fn take(&self) -> Changed {
        let mut p = self.pending.lock();
        // Inodes noted before this must be noted again when they change.
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let inos = core::mem::take(&mut p.inos);
        if core::mem::take(&mut p.overflowed) {
            Changed::Everything
        } else {
            Changed::Inodes(inos)
        }
    }

    /// Puts back what a take returned, for a reader that could not finish
    /// with it (merged with what changed since).
    pub fn put_back(&self, changed: Changed) {
        let mut p = self.pending.lock();
        match changed {
            Changed::Everything => {
                p.overflowed = true;
                p.inos.clear();
            }
            Changed::Inodes(inos) if !p.overflowed => {
                p.inos.extend(inos);
                if p.inos.len() > CAP {
                    p.overflowed = true;
                    p.inos.clear();
                }
            }
            Changed::Inodes(_) => {}
        }
    }
}

/// The open logs of one filesystem.
pub(crate) struct Logs {
    /// Whether any log is open (checked without the lock).
    any: AtomicBool,
    open: Mutex<Vec<Weak<Mutex<Pending>>>>,
    /// Moves at every open and take: an inode noted in this epoch is in
    /// every open log.
    epoch: Arc<AtomicU64>,
}

impl Default for Logs {
    fn default() -> Logs {
        Logs {
            any: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
            // Inodes start at 0: noted in no epoch.
            epoch: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl Logs {
    pub fn open(&self) -> ChangeLog {
        let p = Arc::new(Mutex::new(Pending::default()));
        self.open.lock().push(Arc::downgrade(&p));
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.any.store(true, Ordering::Release);
        ChangeLog {
            pending: p,
            epoch: self.epoch.clone(),
        }
    }

    /// Notes a change to `ino` in every open log, unless it was noted in
    /// this epoch (`noted`, the inode's own record of when). A leaf lock:
    /// called with the inode's lock held.
    pub fn note(&self, ino: u64, noted: &mut u64) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        if *noted == epoch {
            return;
        }
        *noted = epoch;
        let mut open = self.open.lock();
        open.retain(|w| match w.upgrade() {
            Some(p) => {
                let mut p = p.lock();
                if !p.overflowed {
                    p.inos.insert(ino);
                    if p.inos.len() > CAP {
                        p.overflowed = true;
                        p.inos.clear();
                    }
                }
                true
            }
            None => false,
        });
        if open.is_empty() {
            self.any.store(false, Ordering::Release);
        }
    }
}
