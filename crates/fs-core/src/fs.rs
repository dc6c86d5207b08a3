//! The filesystem as a whole: configuration, limits, accounting, and the
//! entry points that hand out root (preopen) descriptors.

use crate::descriptor::Descriptor;
use crate::error::{ErrorCode, Result};
use crate::inode::{Body, Dir, Inode};
use crate::sync::{Mutex, RwLock};
use crate::time::{Clock, Timestamp};
use crate::types::{DescriptorFlags, PathFlags};
use alloc::sync::{Arc, Weak};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// When reads update the access time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtimePolicy {
    /// Linux's default mount option: only when atime is not newer than
    /// mtime/ctime, or is a day old.
    Relatime,
    /// Every read.
    Strict,
    /// Never.
    NoAtime,
}

/// Sizes and limits of one filesystem. Exceeding a limit gives the matching
/// WASI error, never an abort.
#[derive(Clone, Debug)]
pub struct FsConfig {
    /// Bytes per data block; a power of two from 4 KiB to 1 MiB.
    pub block_size: usize,
    /// Total bytes of file data (`insufficient-space` past it).
    pub max_bytes: u64,
    /// Total inodes, the root included (`insufficient-space` past it).
    pub max_inodes: u64,
    /// Open descriptors at once, clones held by streams included
    /// (`insufficient-memory` past it: WASI has no EMFILE). The default
    /// sits well below wasmtime's 100,000 component handles per store, so
    /// a guest opening files in a loop gets an error, not a trap.
    pub max_open_handles: u64,
    /// Largest file size (`file-too-large` past it).
    pub max_file_size: u64,
    /// Bytes in one path component (`name-too-long`).
    pub max_name_len: usize,
    /// Bytes in a whole path argument or symlink target (`name-too-long`).
    pub max_path_len: usize,
    /// Symlinks followed in one resolution (`loop` past it).
    pub max_symlinks: u32,
    /// Hard links to one inode (`too-many-links`).
    pub max_links: u64,
    pub atime: AtimePolicy,
}

impl FsConfig {
    /// Limits for a filesystem in `memory` bytes of RAM, by tmpfs's
    /// defaults: file data up to half of it, and one inode per 8 KiB (half
    /// its 4 KiB pages), so neither many small files nor a few large ones
    /// can take the memory it lives in. [`FsConfig::default`] has no such
    /// limits; every Larder entry point sets these.
    pub fn for_memory(memory: u64) -> FsConfig {
        FsConfig {
            max_bytes: memory / 2,
            max_inodes: (memory / 8192).max(1),
            ..FsConfig::default()
        }
    }
}

/// Bytes one operation's small allocations (a tree node, a name, an inode,
/// a descriptor) may take: asked for as one block before any of them, so
/// that memory running out answers `insufficient-memory` instead of
/// aborting half-way (those allocations cannot fail gracefully).
const HEADROOM: usize = 64 << 10;

/// What an operation that grows the filesystem (a create, a link, a new
/// data block) must find free besides, so that once growing stops for
/// want of memory, opening, listing and deleting still work. Together with
/// [`HEADROOM`] below dlmalloc's 256 KiB mmap threshold, so a probe is
/// carved from the heap and returned to it.
const RESERVE: usize = 128 << 10;

fn probe(bytes: usize) -> Result<()> {
    // Only where running out is an ordinary event: a wasm guest under its
    // runtime's memory cap. A 64-bit host overcommits (the quota is what
    // bounds memory there), and the probe would cost a fifth of a create.
    if !cfg!(any(target_arch = "wasm32", feature = "alloc-probe")) {
        return Ok(());
    }
    let mut probe: alloc::vec::Vec<u8> = alloc::vec::Vec::new();
    probe
        .try_reserve_exact(bytes)
        .map_err(|_| ErrorCode::InsufficientMemory)
}

/// [`HEADROOM`], or `insufficient-memory`.
pub(crate) fn headroom() -> Result<()> {
    probe(HEADROOM)
}

/// [`HEADROOM`] and [`RESERVE`], or `insufficient-memory`.
pub(crate) fn room_to_grow() -> Result<()> {
    probe(HEADROOM + RESERVE)
}

/// [`FsConfig::max_open_handles`] by default: what a guest may hold open
/// while its runtime still has handles left for streams, pollables and
/// everything else.
pub const DEFAULT_MAX_OPEN_HANDLES: u64 = 32_768;

impl Default for FsConfig {
    fn default() -> Self {
        FsConfig {
            block_size: 64 * 1024,
            max_bytes: u64::MAX,
            max_inodes: u64::MAX,
            max_open_handles: DEFAULT_MAX_OPEN_HANDLES,
            max_file_size: i64::MAX as u64,
            max_name_len: 255,
            max_path_len: 4096,
            max_symlinks: 40,
            max_links: 65_000,
            atime: AtimePolicy::Relatime,
        }
    }
}

/// What makes changes durable beyond memory (a mirror to a directory or an
/// object store), called by fsync and by the close of a descriptor opened
/// for writing. Called with no lock of the filesystem held.
pub trait SyncHook: Send + Sync {
    /// `sync` / `sync-data` on inode `ino`: return once its data (and, unless
    /// `data_only`, its metadata) is durable; the error is what fsync gives.
    fn sync(&self, fs: &Fs, ino: u64, data_only: bool) -> Result<()>;
    /// The last descriptor open for writing on `ino` (of those opened, and
    /// their clones, such as a stream's) was dropped. Nothing can be
    /// reported from here; a failure must stay queued for the next sync.
    fn closed(&self, fs: &Fs, ino: u64);
    /// Whether [`changed`](Self::changed) is wanted (write-through); asked
    /// once, when the hook is installed.
    fn wants_changes(&self) -> bool {
        false
    }
    /// An operation that may have changed the tree or a file (a write, a
    /// truncate, a create, a rename...) is returning, its locks released.
    /// Like `closed`, it cannot fail the operation.
    fn changed(&self, _fs: &Fs) {}
}

/// Calls the hook's `changed` when dropped: made at the start of a
/// mutating operation, so it runs after every lock taken later is gone.
pub(crate) struct ChangeNotice(Arc<Shared>);

impl Drop for ChangeNotice {
    fn drop(&mut self) {
        if let Some((hook, fs)) = self.0.sync_hook() {
            hook.changed(&fs);
        }
    }
}

/// State every inode and descriptor of one filesystem shares.
pub(crate) struct Shared {
    pub config: FsConfig,
    pub block_shift: u32,
    pub dev: u64,
    pub clock: Arc<dyn Clock>,
    next_ino: AtomicU64,
    change_seq: AtomicU64,
    used_bytes: AtomicU64,
    used_inodes: AtomicU64,
    open_handles: AtomicU64,
    /// Serialises renames between different directories, so the ancestry
    /// check and the move happen as one step (as Linux's s_vfs_rename_mutex).
    pub rename_lock: Mutex<()>,
    sync_hook: RwLock<Option<Arc<dyn SyncHook>>>,
    logs: crate::changes::Logs,
    /// Whether the hook wants `changed` (checked without the lock).
    notify_changes: AtomicBool,
    /// The root, for handing the hook an [`Fs`] (weak: the root owns us).
    root: Mutex<Weak<Inode>>,
}

static NEXT_DEV: AtomicU64 = AtomicU64::new(1);

impl Shared {
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
    pub fn next_ino(&self) -> u64 {
        self.next_ino.fetch_add(1, Ordering::Relaxed)
    }
    pub fn sync_hook(self: &Arc<Self>) -> Option<(Arc<dyn SyncHook>, Fs)> {
        let hook = self.sync_hook.read().clone()?;
        let root = self.root.lock().upgrade()?;
        Some((
            hook,
            Fs {
                shared: self.clone(),
                root,
            },
        ))
    }
    /// For a mutating operation to hold while it runs (write-through).
    pub fn change_notice(self: &Arc<Self>) -> Option<ChangeNotice> {
        self.notify_changes
            .load(Ordering::Relaxed)
            .then(|| ChangeNotice(self.clone()))
    }
    /// The change sequence's next value, for a change to inode `ino`,
    /// noted first in the open change logs (see [`crate::changes`];
    /// `noted` is the inode's [`crate::inode::Meta::noted`]).
    pub fn change_of(&self, ino: u64, noted: &mut u64) -> u64 {
        self.logs.note(ino, noted);
        self.change_seq.fetch_add(1, Ordering::AcqRel) + 1
    }

    fn reserve(counter: &AtomicU64, n: u64, limit: u64) -> Result<()> {
        counter
            .try_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= limit)
            })
            .map(|_| ())
            .map_err(|_| ErrorCode::InsufficientSpace)
    }

    pub fn reserve_bytes(&self, n: u64) -> Result<()> {
        Self::reserve(&self.used_bytes, n, self.config.max_bytes)
    }
    pub fn charge_bytes(&self, n: u64) {
        self.used_bytes.fetch_add(n, Ordering::AcqRel);
    }
    pub fn release_bytes(&self, n: u64) {
        self.used_bytes.fetch_sub(n, Ordering::AcqRel);
    }
    pub fn reserve_inode(&self) -> Result<()> {
        room_to_grow()?;
        Self::reserve(&self.used_inodes, 1, self.config.max_inodes)
    }
    pub fn release_inode(&self) {
        self.used_inodes.fetch_sub(1, Ordering::AcqRel);
    }
    pub fn open_handle(&self) -> Result<()> {
        headroom()?;
        Self::reserve(&self.open_handles, 1, self.config.max_open_handles)
            .map_err(|_| ErrorCode::InsufficientMemory)
    }
    pub fn close_handle(&self) {
        self.open_handles.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Usage counters, for quotas and leak checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub inodes: u64,
    pub open_handles: u64,
}

/// One filesystem. Cheap to clone (an `Arc`); `Send + Sync`, with a lock per
/// inode, so many threads may use it at once.
#[derive(Clone)]
pub struct Fs {
    pub(crate) shared: Arc<Shared>,
    pub(crate) root: Arc<Inode>,
}

impl Fs {
    /// An empty filesystem: a root directory with mode 0755.
    pub fn new(config: FsConfig, clock: Arc<dyn Clock>) -> Result<Fs> {
        let bs = config.block_size;
        if !bs.is_power_of_two() || !(4096..=1 << 20).contains(&bs) {
            return Err(ErrorCode::Invalid);
        }
        let shared = Arc::new(Shared {
            block_shift: bs.trailing_zeros(),
            config,
            dev: NEXT_DEV.fetch_add(1, Ordering::Relaxed),
            clock,
            next_ino: AtomicU64::new(1),
            change_seq: AtomicU64::new(0),
            used_bytes: AtomicU64::new(0),
            used_inodes: AtomicU64::new(0),
            open_handles: AtomicU64::new(0),
            rename_lock: Mutex::new(()),
            sync_hook: RwLock::new(None),
            logs: Default::default(),
            notify_changes: AtomicBool::new(false),
            root: Mutex::new(Weak::new()),
        });
        let root = Inode::new(&shared, Body::Dir(Dir::default()), 0o755)?;
        *shared.root.lock() = Arc::downgrade(&root);
        Ok(Fs { shared, root })
    }

    /// An empty filesystem with default limits on the system clock.
    #[cfg(feature = "std")]
    pub fn in_memory() -> Fs {
        Fs::new(FsConfig::default(), Arc::new(crate::time::SystemClock))
            .expect("default configuration is valid")
    }

    /// Installs what fsync and closes report to (replacing any before).
    pub fn set_sync_hook(&self, hook: Arc<dyn SyncHook>) {
        self.shared
            .notify_changes
            .store(hook.wants_changes(), Ordering::Relaxed);
        *self.shared.sync_hook.write() = Some(hook);
    }

    /// The change sequence so far: every change to any inode moves it (see
    /// [`crate::Stat::change`]), so an unchanged value means nothing changed.
    pub fn change_seq(&self) -> u64 {
        self.shared.change_seq.load(Ordering::Acquire)
    }

    /// A log of the inodes that change from now on, for syncing only
    /// what changed (see [`crate::changes`]). Costs a little on every
    /// change while it is open.
    pub fn change_log(&self) -> crate::ChangeLog {
        self.shared.logs.open()
    }

    pub fn config(&self) -> &FsConfig {
        &self.shared.config
    }

    /// The device number `stat` reports for every inode of this filesystem.
    pub fn dev(&self) -> u64 {
        self.shared.dev
    }

    pub fn usage(&self) -> Usage {
        Usage {
            bytes: self.shared.used_bytes.load(Ordering::Acquire),
            inodes: self.shared.used_inodes.load(Ordering::Acquire),
            open_handles: self.shared.open_handles.load(Ordering::Acquire),
        }
    }

    /// A descriptor for the root directory, usable as a preopen. `flags`
    /// should hold READ, plus MUTATE_DIRECTORY for a writable preopen.
    pub fn root(&self, flags: DescriptorFlags) -> Result<Descriptor> {
        Descriptor::new_preopen(self.shared.clone(), self.root.clone(), flags)
    }

    /// A descriptor for the directory at `path` (relative to the root) that
    /// is its own sandbox: resolution through it never leaves it. This is how
    /// hosts offer a subdirectory as a named preopen.
    pub fn preopen(&self, path: &str, flags: DescriptorFlags) -> Result<Descriptor> {
        let root = self.root(DescriptorFlags::READ)?;
        let dir = root.resolve_inode(PathFlags::SYMLINK_FOLLOW, path)?;
        if !dir.is_dir() {
            return Err(ErrorCode::NotDirectory);
        }
        Descriptor::new_preopen(self.shared.clone(), dir, flags)
    }
}
