//! Inodes. Directory entries and descriptors hold `Arc<Inode>`, so an
//! unlinked file lives exactly as long as its last handle, and its memory
//! goes back to the quota when that handle drops.
//!
//! Lock order: a directory before anything inside it; two directories not
//! related by ancestry only under `Shared::rename_lock`. `parent` is a leaf
//! lock, never held while taking another.

use crate::data::FileData;
use crate::fs::Shared;
use crate::sync::{Mutex, RwLock};
use crate::time::Timestamp;
use crate::types::DescriptorType;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

pub(crate) struct Inode {
    pub ino: u64,
    pub kind: DescriptorType,
    /// Part of a read-only mount: every change answers `read-only`.
    readonly: AtomicBool,
    /// Descriptors open for writing on this inode.
    pub writers: AtomicU32,
    pub state: RwLock<State>,
    /// The directory holding this one (directories only; root has none).
    pub parent: Mutex<Weak<Inode>>,
    pub shared: Arc<Shared>,
}

pub(crate) struct State {
    pub meta: Meta,
    pub body: Body,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Meta {
    /// The inode's number (kept here so a change can be logged by it).
    pub ino: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u64,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    /// The filesystem's change sequence at this inode's last change (see
    /// [`crate::Stat::change`]).
    pub change: u64,
    /// The change sequence at the last change to the data (or entries).
    pub data_change: u64,
    /// The change logs' epoch when a change to this inode was last noted
    /// in them (see [`crate::changes`]).
    pub noted: u64,
}

pub(crate) enum Body {
    File(FileData),
    Dir(Dir),
    Symlink(String),
}

#[derive(Default)]
pub(crate) struct Dir {
    pub entries: BTreeMap<String, Arc<Inode>>,
}

impl Meta {
    pub fn new(ino: u64, mode: u32, now: Timestamp) -> Meta {
        Meta {
            ino,
            mode,
            uid: 0,
            gid: 0,
            nlink: 1,
            atime: now,
            mtime: now,
            ctime: now,
            change: 0,
            data_change: 0,
            noted: 0,
        }
    }
    /// Data changed: mtime and ctime move.
    pub fn modified(&mut self, now: Timestamp, shared: &Shared) {
        self.mtime = now;
        self.changed(now, shared);
        self.data_change = self.change;
    }
    /// Status changed: ctime moves, and the change sequence.
    pub fn changed(&mut self, now: Timestamp, shared: &Shared) {
        self.ctime = now;
        self.change = shared.change_of(self.ino, &mut self.noted);
    }
}

impl Inode {
    /// Allocates an inode against the inode quota.
    pub fn new(shared: &Arc<Shared>, body: Body, mode: u32) -> crate::Result<Arc<Inode>> {
        shared.reserve_inode()?;
        let now = shared.now();
        let kind = match body {
            Body::File(_) => DescriptorType::RegularFile,
            Body::Dir(_) => DescriptorType::Directory,
            Body::Symlink(_) => DescriptorType::SymbolicLink,
        };
        let ino = shared.next_ino();
        let mut meta = Meta::new(ino, mode, now);
        meta.change = shared.change_of(ino, &mut meta.noted);
        meta.data_change = meta.change;
        if kind == DescriptorType::Directory {
            meta.nlink = 2;
        }
        Ok(Arc::new(Inode {
            ino,
            kind,
            readonly: AtomicBool::new(false),
            writers: AtomicU32::new(0),
            state: RwLock::new(State { meta, body }),
            parent: Mutex::new(Weak::new()),
            shared: shared.clone(),
        }))
    }

    pub fn is_dir(&self) -> bool {
        self.kind == DescriptorType::Directory
    }

    pub fn is_symlink(&self) -> bool {
        self.kind == DescriptorType::SymbolicLink
    }

    pub fn readonly(&self) -> bool {
        self.readonly.load(Ordering::Relaxed)
    }

    pub fn set_readonly(&self) {
        self.readonly.store(true, Ordering::Relaxed)
    }

    /// Fails with `read-only` if this inode belongs to a read-only mount.
    pub fn check_writable(&self) -> crate::Result<()> {
        if self.readonly() {
            Err(crate::ErrorCode::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// A directory with no entries (false for anything else).
    pub fn is_empty_dir(&self) -> bool {
        self.state
            .read()
            .dir()
            .is_some_and(|d| d.entries.is_empty())
    }

    /// Fetches a lazily loaded file's contents if they are still pending.
    pub fn load_file(&self) -> crate::Result<()> {
        self.load_range(0, u64::MAX)
    }

    /// Fetches what a use of `offset..offset+len` needs of a lazily loaded
    /// file's contents.
    pub fn load_range(&self, offset: u64, len: u64) -> crate::Result<()> {
        if !self.state.read().file().is_some_and(|f| f.is_pending()) {
            return Ok(());
        }
        match self.state.write().file_mut() {
            Some(f) => f.load_range(&self.shared, offset, len),
            None => Ok(()),
        }
    }

    pub fn parent(&self) -> Option<Arc<Inode>> {
        self.parent.lock().upgrade()
    }

    pub fn set_parent(&self, parent: &Arc<Inode>) {
        *self.parent.lock() = Arc::downgrade(parent);
    }
}

impl State {
    pub fn dir(&self) -> Option<&Dir> {
        match &self.body {
            Body::Dir(d) => Some(d),
            _ => None,
        }
    }
    pub fn dir_mut(&mut self) -> Option<&mut Dir> {
        match &mut self.body {
            Body::Dir(d) => Some(d),
            _ => None,
        }
    }
    pub fn file(&self) -> Option<&FileData> {
        match &self.body {
            Body::File(f) => Some(f),
            _ => None,
        }
    }
    pub fn file_mut(&mut self) -> Option<&mut FileData> {
        match &mut self.body {
            Body::File(f) => Some(f),
            _ => None,
        }
    }
    pub fn size(&self) -> u64 {
        match &self.body {
            Body::File(f) => f.size(),
            // What ext4 reports for a one-block directory.
            Body::Dir(_) => 4096,
            Body::Symlink(t) => t.len() as u64,
        }
    }
}

impl Drop for Inode {
    fn drop(&mut self) {
        let state = self.state.get_mut();
        match &mut state.body {
            Body::File(f) => f.release(&self.shared),
            Body::Dir(d) => {
                // Tear a whole tree down without recursion: a deep tree must
                // not overflow a small wasm stack.
                let mut pending: Vec<Arc<Inode>> =
                    core::mem::take(&mut d.entries).into_values().collect();
                while let Some(child) = pending.pop() {
                    if let Some(mut inner) = Arc::into_inner(child) {
                        if let Body::Dir(d) = &mut inner.state.get_mut().body {
                            pending.extend(core::mem::take(&mut d.entries).into_values());
                        }
                    }
                }
            }
            Body::Symlink(_) => {}
        }
        self.shared.release_inode();
    }
}
