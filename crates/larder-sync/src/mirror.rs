//! The mirror: keeps an object store equal to a Larder filesystem, path for
//! path, and rebuilds a filesystem from a store.
//!
//! A sync compares the tree with what the last sync left in the store
//! (path -> inode, change sequence, kind, ETag) and sends only the
//! difference: new and changed objects first, parents before children
//! (a file whose inode and change sequence match an object already stored
//! elsewhere is a rename or a link: a server-side copy), then deletions,
//! children before parents. A crash in between leaves both the old and the
//! new name of a renamed file, never neither. Whatever fails stays in the
//! difference, so the next sync sends it again: nothing is dropped.
//!
//! A restore builds the tree from the listing and leaves file contents in
//! the store, fetched as reads reach them (see `lazy`); `poll` (in `pull`)
//! applies other writers' changes while the local copy is clean, where
//! listing is costly only once the store's version object says another
//! writer synced (see `version`).
//!
//! Where listings lack metadata (S3), the mirror keeps an index of what it
//! stored (see `crate::index`) beside the objects: a restore trusts it for
//! every object the listing shows unchanged and asks the store only about
//! the rest. It is rewritten after a sync once enough has changed, and at
//! [`Mirror::settle`]; a stale or unusable one costs requests, never
//! correctness.

use crate::index;
use crate::lazy::StoreSource;
use crate::meta::{self, Kind, S_IFDIR, S_IFLNK, S_IFREG};
use crate::plan::{self, Op, Version};
use crate::retry::{Retry, Retrying};
use crate::store::{
    Cond, ErrorKind, Metadata, ObjectInfo, ObjectStore, Piece, Progress, Source, StoreError,
};
use fs_core::{
    Changed, DescriptorFlags as DF, DescriptorType, ErrorCode, Fs, NewTimestamp, OpenFlags as OF,
    PathFlags as PF, Stat, SyncHook, Timestamp,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

mod indexed;
mod ledger;
mod pull;
mod scan;
mod version;
pub use pull::Pulled;
pub use version::FULL_LISTING_EVERY;

#[derive(Clone, Debug)]
struct Synced {
    ino: u64,
    change: u64,
    data_change: u64,
    kind: Kind,
    etag: String,
    /// Hashes of the stored object's PART-sized pieces (large files only):
    /// a later sync sends only the pieces that changed.
    parts: Vec<[u8; 32]>,
    /// The take of the file's changed ranges that the object holds it as
    /// of (stores that write ranges only; see [`fs_core::Written`]): the
    /// next upload sends the ranges changed since that take alone.
    stamp: Option<u64>,
}

/// Large files are compared and rewritten in pieces of this size (S3's
/// part copies need at least 5 MiB per part but the last).
const PART: usize = 8 << 20;
const PARTS_FROM: usize = 2 * PART;

/// The hash of a piece kept without being read (never equal to a real
/// one in practice, so the piece is compared again after it is read).
const UNKNOWN_HASH: [u8; 32] = [0; 32];

/// The hash of a piece of `len` bytes that is all hole (nothing was ever
/// written there), given without reading it. The length is in it: a
/// stored hole shorter than today's (the file grew) is not the same piece.
fn hole_hash(len: u64) -> [u8; 32] {
    *blake3::Hasher::new_derive_key("larder 2026 hole piece")
        .update(&len.to_le_bytes())
        .finalize()
        .as_bytes()
}

/// Part hashes kept per file at most (80 GB of 8 MiB parts); a larger
/// file is sent whole each time.
const MAX_HASHED_PARTS: u64 = 10_000;

/// What [`Mirror::restore_one`] made of a file: the source of its
/// unfetched bytes (by inode) and, for stores that write ranges, the take
/// its object holds it as of.
#[derive(Default)]
struct Made {
    lazy: Option<(u64, Arc<StoreSource>)>,
    stamp: Option<u64>,
}

/// Changed ranges are sent rounded out to this (a page): fewer, larger
/// writes, and what databases write anyway.
const RANGE_GRAIN: u64 = 4096;

/// A file as pieces of its stored object, at its size when the ranges
/// were taken: the ranges
/// written since the take the object holds it as of (rounded out to
/// pages) new, the rest kept. All new when those ranges do not apply:
/// nothing stored, or stored from another take (see [`fs_core::Written`]).
fn ranged_pieces(prev: Option<&Synced>, written: &fs_core::Written) -> Vec<Piece> {
    let size = written.size;
    let ranges = match (&written.since, prev) {
        (Some((since, ranges)), Some(p)) if p.kind == Kind::File && p.stamp == Some(*since) => {
            ranges
        }
        _ if size == 0 => return Vec::new(),
        _ => return vec![Piece::New(0..size)],
    };
    let mut pieces = Vec::new();
    let mut at = 0;
    for &(a, b) in ranges {
        let a = (a - a % RANGE_GRAIN).max(at);
        let b = b
            .div_ceil(RANGE_GRAIN)
            .saturating_mul(RANGE_GRAIN)
            .min(size);
        if a >= b {
            continue;
        }
        if at < a {
            pieces.push(Piece::Keep(at..a));
        }
        match pieces.last_mut() {
            Some(Piece::New(r)) if r.end == a => r.end = b,
            _ => pieces.push(Piece::New(a..b)),
        }
        at = b;
    }
    if at < size {
        pieces.push(Piece::Keep(at..size));
    }
    pieces
}

/// A file of the filesystem as an upload's source. Bytes past its end
/// (truncated since the pieces were planned) read as zeros: the file's
/// data version then moved, and the next sync sends it again.
struct FileSource(fs_core::Descriptor);

impl Source for FileSource {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> crate::store::Result<()> {
        let mut n = 0;
        while n < buf.len() {
            match self.0.read(&mut buf[n..], offset + n as u64) {
                Ok(0) => {
                    buf[n..].fill(0);
                    break;
                }
                Ok(k) => n += k,
                Err(e) => {
                    return Err(StoreError::new(
                        ErrorKind::Transient,
                        format!("reading the file to send: {e}"),
                    ))
                }
            }
        }
        Ok(())
    }

    fn data_in(
        &self,
        range: std::ops::Range<u64>,
    ) -> crate::store::Result<Vec<std::ops::Range<u64>>> {
        let runs = self
            .0
            .data_in(range.start, range.end)
            .map_err(|e| StoreError::new(ErrorKind::Transient, format!("the file to send: {e}")))?;
        Ok(runs.into_iter().map(|(a, b)| a..b).collect())
    }
}

/// A large file on its way to the store: its pieces (new ones read from
/// the file as they are sent), the hashes to remember for them, and the
/// file's data version when they were hashed.
struct Upload {
    pieces: Vec<Piece>,
    hashes: Vec<[u8; 32]>,
    file: Arc<FileSource>,
    data_change: u64,
}

impl Upload {
    fn source(&self) -> Arc<dyn Source> {
        self.file.clone()
    }

    /// Bytes the store is sent (kept pieces are copied there).
    fn new_bytes(&self) -> u64 {
        crate::store::new_bytes(&self.pieces)
    }

    /// The hashes to remember: unknown if the file changed while it was
    /// being sent (what went up may not be what was hashed).
    fn hashes(&self) -> Vec<[u8; 32]> {
        if self.file.0.stat().data_change == self.data_change {
            self.hashes.clone()
        } else {
            vec![UNKNOWN_HASH; self.hashes.len()]
        }
    }
}

struct Node {
    kind: Kind,
    stat: Stat,
}

#[derive(Default)]
struct State {
    /// What the store holds, as of the last successful operation on each.
    synced: ledger::Ledger,
    /// The filesystem's change sequence when the last full sync began.
    seen_seq: u64,
    /// Whether the last sync finished; if not, there is work left.
    clean: bool,
    conflicts: Vec<String>,
    last_error: Option<String>,
    /// Sources of files restored lazily, by inode, to re-point when the
    /// mirror moves their unfetched bytes to a new object.
    lazy: HashMap<u64, Arc<StoreSource>>,
    /// Writes that failed in a way that may still have reached the store
    /// (a timeout, a dropped connection), by path.
    unsure: BTreeMap<String, Unsure>,
    /// When the last sync failed, if the last one did.
    failed_at: Option<Instant>,
    index: IndexState,
    /// The store's version object as this mirror knows it (see `version`).
    seen: version::Seen,
    /// The filesystem's log of changed inodes (with its device number),
    /// so a sync looks only at what changed (see `scan`); none before the
    /// first sync, which looks at everything.
    log: Option<(u64, fs_core::ChangeLog)>,
    /// Paths the next sync looks at whatever the log says (directories a
    /// restore made only because keys imply them).
    pending: BTreeSet<String>,
}

/// The store's index as this mirror knows it (stores whose listings lack
/// metadata only).
#[derive(Default)]
struct IndexState {
    /// Its ETag when this mirror last read or wrote it.
    etag: Option<String>,
    /// Paths written or deleted since.
    touched: BTreeSet<String>,
    /// Missing, unusable or out of date at restore: rewritten at the next
    /// sync.
    stale: bool,
}

/// After a sync, the index is rewritten once this many paths changed
/// since it was (or a hundredth of the tree, if more): a restore after a
/// crash asks the store about at most that many objects.
const INDEX_EVERY: usize = 64;

thread_local! {
    /// The mirrors (by address) whose state this thread holds locked.
    static HELD: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`Mirror::lock`]'s guard.
struct Locked<'a> {
    st: std::sync::MutexGuard<'a, State>,
    id: usize,
}

impl std::ops::Deref for Locked<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.st
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.st
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            if let Some(i) = h.iter().rposition(|&x| x == self.id) {
                h.swap_remove(i);
            }
        });
    }
}

/// For this long after a failed sync, syncs nobody waits on (at close,
/// write-through) make one attempt per request instead of retrying, so an
/// app closing files during an outage is not held up by every retry; fsync
/// still retries, and reports.
const QUIET_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// What an unsure write sent: an object with exactly this metadata (which
/// carries the mtime to the nanosecond) and size is that write, landed.
#[derive(Clone, Debug)]
struct Unsure {
    kind: Kind,
    meta: Metadata,
    size: u64,
}

impl Unsure {
    fn landed(&self, info: &ObjectInfo) -> bool {
        info.meta == self.meta && info.size == self.size
    }
}

/// What one sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub uploaded: usize,
    pub copied: usize,
    pub deleted: usize,
    pub bytes_uploaded: u64,
    /// `path -> where the local version was kept`, for each object another
    /// writer had changed.
    pub conflicts: Vec<String>,
}

#[derive(Debug)]
pub enum SyncError {
    /// The store failed (after retries, for transient errors).
    Store(StoreError),
    /// Reading the filesystem failed.
    Fs(ErrorCode),
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncError::Store(e) => write!(f, "store: {e}"),
            SyncError::Fs(e) => write!(f, "filesystem: {e}"),
        }
    }
}

impl std::error::Error for SyncError {}

impl From<StoreError> for SyncError {
    fn from(e: StoreError) -> Self {
        SyncError::Store(e)
    }
}

impl From<ErrorCode> for SyncError {
    fn from(e: ErrorCode) -> Self {
        SyncError::Fs(e)
    }
}

/// What `status` tells about the mirror.
#[derive(Clone, Debug, Default)]
pub struct Status {
    pub clean: bool,
    pub conflicts: Vec<String>,
    pub last_error: Option<String>,
}

pub struct Mirror {
    /// The store, its transient failures retried; hurried (one attempt
    /// per request) for the length of a background sync soon after a
    /// failure (see QUIET_AFTER_FAILURE).
    store: Retrying,
    /// The same store retried as patiently as ever, for lazily restored
    /// files' reads (an app waits on those, whatever a sync is doing).
    patient: Arc<dyn ObjectStore>,
    prefix: String,
    /// Guest paths (relative) whose subtrees are not mirrored.
    exclude: Vec<String>,
    state: Mutex<State>,
    warned_reserved: std::sync::atomic::AtomicBool,
    /// See [`Mirror::with_full_listing_every`].
    full_listing_every: Duration,
}

fn kind_of(t: DescriptorType) -> Kind {
    match t {
        DescriptorType::RegularFile => Kind::File,
        DescriptorType::Directory => Kind::Dir,
        DescriptorType::SymbolicLink => Kind::Symlink,
    }
}

/// Mode, owner and times from the store's metadata (symlinks keep theirs).
fn apply_attrs(
    root: &fs_core::Descriptor,
    path: &str,
    kind: Kind,
    a: &meta::Attrs,
) -> Result<(), ErrorCode> {
    if kind != Kind::Symlink {
        root.set_mode_at(PF::empty(), path, a.mode & 0o7777, a.uid, a.gid)?;
    }
    let t = NewTimestamp::Timestamp(Timestamp::new(a.mtime_secs, a.mtime_nanos)?);
    root.set_times_at(PF::empty(), path, t, t)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Mirror {
    /// A mirror of an empty filesystem into `store` under `prefix` (empty,
    /// or ending in `/`). Use [`Mirror::restore`] to start from what the
    /// store holds.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Mirror {
        let mut prefix = prefix.trim_start_matches('/').to_string();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        let retry = Retry::default();
        Mirror {
            store: Retrying::new(store.clone(), retry),
            patient: Arc::new(Retrying::new(store, retry)),
            prefix,
            exclude: Vec::new(),
            state: Mutex::new(State::default()),
            warned_reserved: Default::default(),
            full_listing_every: FULL_LISTING_EVERY,
        }
    }

    /// Retries transient failures per `retry` (default: [`Retry`]'s).
    pub fn with_retry(mut self, retry: Retry) -> Mirror {
        let inner = self.store.inner().clone();
        self.store = Retrying::new(inner.clone(), retry);
        self.patient = Arc::new(Retrying::new(inner, retry));
        self
    }

    /// Leaves the subtree at guest path `path` out (read-only mounts).
    pub fn exclude(mut self, path: &str) -> Mirror {
        self.exclude.push(path.trim_matches('/').to_string());
        self
    }

    fn key(&self, path: &str, kind: Kind) -> String {
        meta::object_key(&self.prefix, path, kind)
    }

    /// Excluded subtrees, and `.larder` (the index's place in the store).
    fn excluded(&self, path: &str) -> bool {
        index::reserved(path)
            || self
                .exclude
                .iter()
                .any(|e| e.is_empty() || path == e || path.starts_with(&format!("{e}/")))
    }

    /// Whether this mirror keeps an index: where listings lack metadata.
    fn indexed(&self) -> bool {
        !self.store.lists_metadata()
    }

    /// Notes that `path`'s object changed since the index was written.
    fn touched(&self, st: &mut State, path: &str) {
        if self.indexed() {
            st.index.touched.insert(path.to_string());
        }
    }

    /// A `.larder` at the root is the index's place in the store: said
    /// once per mirror, since it is never stored.
    fn warn_reserved(&self) {
        if !self
            .warned_reserved
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(
                "/{} is not kept in the store: the name is Larder's own there",
                index::RESERVED
            );
        }
    }

    /// What the object of a `kind` entry with stat `s` records.
    fn attrs(kind: Kind, s: &Stat) -> meta::Attrs {
        let type_bits = match kind {
            Kind::File => S_IFREG,
            Kind::Dir => S_IFDIR,
            Kind::Symlink => S_IFLNK,
        };
        let mode = if kind == Kind::Symlink {
            0o777
        } else {
            s.mode & 0o7777
        };
        meta::Attrs {
            mode: type_bits | mode,
            uid: s.uid,
            gid: s.gid,
            mtime_secs: s.mtime.seconds,
            mtime_nanos: s.mtime.nanoseconds,
        }
    }

    fn metadata(kind: Kind, s: &Stat) -> Metadata {
        meta::encode_attrs(&Mirror::attrs(kind, s))
    }

    /// The object's body: file contents, symlink target, nothing for a dir.
    fn body(fs: &Fs, path: &str, kind: Kind) -> Result<Vec<u8>, ErrorCode> {
        let root = fs.root(DF::READ)?;
        match kind {
            Kind::Dir => Ok(Vec::new()),
            Kind::Symlink => Ok(root.readlink_at(path)?.into_bytes()),
            Kind::File => {
                let f = root.open_at(PF::empty(), path, OF::empty(), DF::READ)?;
                // A whole body is held for the upload: a size that cannot be
                // held (a sparse file grown to 2^62 bytes, say) fails this
                // sync with an error rather than aborting the host.
                let size =
                    usize::try_from(f.stat().size).map_err(|_| ErrorCode::InsufficientMemory)?;
                let mut out = Vec::new();
                out.try_reserve_exact(size).map_err(|_| {
                    tracing::error!(%path, size, "too large to send: it does not fit in memory");
                    ErrorCode::InsufficientMemory
                })?;
                let mut buf = vec![0; 1 << 20];
                loop {
                    let n = f.read(&mut buf, out.len() as u64)?;
                    if n == 0 {
                        return Ok(out);
                    }
                    out.extend_from_slice(&buf[..n]);
                }
            }
        }
    }

    /// Whether `path` is a large file restored lazily whose unfetched bytes
    /// are those of the object at `key` as last synced: then its pieces
    /// that were never fetched are kept by server-side copy, not read.
    fn keeps_unchanged(&self, st: &State, path: &str, node: &Node, key: &str) -> bool {
        node.kind == Kind::File
            && node.stat.size >= PARTS_FROM as u64
            && st.synced.get(path).is_some_and(|s| {
                s.kind == Kind::File
                    && st
                        .lazy
                        .get(&node.stat.ino)
                        .is_some_and(|src| src.at() == (key.to_string(), s.etag.clone()))
            })
    }

    /// A large file as pieces: each PART-sized piece whose hash matches
    /// `stored` (what the object holds at that offset) kept, the rest new.
    /// Holes are hashed without being read. With `unchanged` (a lazily
    /// restored file), pieces nothing has written since the restore are
    /// kept without being read (their hash unknown).
    fn upload(
        fs: &Fs,
        path: &str,
        stored: &[[u8; 32]],
        unchanged: bool,
    ) -> Result<Upload, ErrorCode> {
        let f = Mirror::open_file(fs, path)?;
        let stat = f.0.stat();
        let size = stat.size;
        let from_source = if unchanged {
            f.0.from_source()?
        } else {
            Vec::new()
        };
        let (mut pieces, mut hashes) = (Vec::new(), Vec::new());
        if size.div_ceil(PART as u64) > MAX_HASHED_PARTS {
            pieces.push(Piece::New(0..size));
        } else {
            let mut buf = Vec::new();
            buf.try_reserve_exact(PART)
                .map_err(|_| ErrorCode::InsufficientMemory)?;
            buf.resize(PART, 0);
            let mut at = 0u64;
            while at < size {
                let end = (at + PART as u64).min(size);
                if from_source.iter().any(|&(a, b)| a <= at && end <= b) {
                    pieces.push(Piece::Keep(at..end));
                    hashes.push(UNKNOWN_HASH);
                    at = end;
                    continue;
                }
                let hash = if f.0.data_in(at, end)?.is_empty() {
                    hole_hash(end - at)
                } else {
                    let chunk = &mut buf[..(end - at) as usize];
                    f.read_at(at, chunk).map_err(|_| ErrorCode::Io)?;
                    *blake3::hash(chunk).as_bytes()
                };
                let n = hashes.len();
                pieces.push(if stored.get(n) == Some(&hash) {
                    Piece::Keep(at..end)
                } else {
                    Piece::New(at..end)
                });
                hashes.push(hash);
                at = end;
            }
        }
        Ok(Upload {
            pieces,
            hashes,
            file: Arc::new(f),
            data_change: stat.data_change,
        })
    }

    fn open_file(fs: &Fs, path: &str) -> Result<FileSource, ErrorCode> {
        let root = fs.root(DF::READ)?;
        Ok(FileSource(root.open_at(
            PF::empty(),
            path,
            OF::empty(),
            DF::READ,
        )?))
    }

    /// Whether `cond` holds in the store, for stores that do not check
    /// conditions themselves.
    fn check_cond(&self, key: &str, cond: &Cond) -> crate::store::Result<()> {
        if self.store.enforces_conditions() || *cond == Cond::None {
            return Ok(());
        }
        let current = self.store.head(key)?;
        cond.check(key, current.as_ref().map(|c| c.etag.as_str()))
    }

    /// Makes the store hold the tree as it is now; returns once everything
    /// is durable in the store (or with the error that stopped it, the rest
    /// left for the next sync).
    pub fn sync(&self, fs: &Fs) -> Result<Report, SyncError> {
        self.sync_with(fs, false)
    }

    fn sync_with(&self, fs: &Fs, background: bool) -> Result<Report, SyncError> {
        let mut st = self.lock();
        let seq = fs.change_seq();
        if st.clean && seq == st.seen_seq && !Mirror::version_owed(&st) {
            return Ok(Report::default());
        }
        st.clean = false;
        let changed = match &st.log {
            Some((dev, log)) if *dev == fs.dev() => log.take(),
            _ => {
                // Opened before the walk of the whole tree, so nothing
                // that changes during it is missed by the next sync.
                st.log = Some((fs.dev(), fs.change_log()));
                Changed::Everything
            }
        };
        let hurried = background
            && st
                .failed_at
                .is_some_and(|t| t.elapsed() < QUIET_AFTER_FAILURE);
        self.store.set_hurried(hurried);
        let result = self.sync_locked(&mut st, fs, &changed);
        self.store.set_hurried(false);
        match &result {
            Ok(report) => {
                st.pending.clear();
                st.seen_seq = seq;
                st.clean = true;
                st.last_error = None;
                st.failed_at = None;
                let every = INDEX_EVERY.max(st.synced.len() / 100);
                if self.indexed() && (st.index.stale || st.index.touched.len() >= every) {
                    self.write_index(fs, &mut st);
                }
                let sent = report.uploaded + report.copied + report.deleted > 0
                    || !report.conflicts.is_empty();
                if sent || Mirror::version_owed(&st) {
                    self.store_changed(&mut st, true);
                }
                st.conflicts.extend(report.conflicts.iter().cloned());
                if report.uploaded + report.copied + report.deleted > 0 {
                    tracing::info!(
                        "synced to the store: {} uploaded ({} bytes), {} copied, {} deleted, \
                         {} conflicts kept",
                        report.uploaded,
                        report.bytes_uploaded,
                        report.copied,
                        report.deleted,
                        report.conflicts.len()
                    );
                }
            }
            Err(e) => {
                if let Some((_, log)) = &st.log {
                    log.put_back(changed);
                }
                // Some of it may be in the store: the version is rewritten
                // once a sync finishes.
                self.store_changed(&mut st, false);
                tracing::error!(error = %e, "sync failed; changes stay queued");
                st.last_error = Some(e.to_string());
                st.failed_at = Some(Instant::now());
            }
        }
        result
    }

    /// A sync nobody waits on (a close, a write-through change): errors are
    /// logged and the changes stay queued; shortly after a failure, one
    /// attempt per request (see QUIET_AFTER_FAILURE).
    pub fn sync_in_background(&self, fs: &Fs) {
        // Asked from inside the mirror's own work on the filesystem (a
        // file a poll restored being closed, a change write-through sees):
        // what the mirror wrote is the store's already, and waiting for
        // the lock this thread holds would never end.
        if self.held_here() {
            return;
        }
        let _ = self.sync_with(fs, true);
    }

    /// The state, locked, noting on this thread that it is held.
    fn lock(&self) -> Locked<'_> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let id = self as *const Mirror as usize;
        HELD.with(|h| h.borrow_mut().push(id));
        Locked { st, id }
    }

    fn held_here(&self) -> bool {
        let id = self as *const Mirror as usize;
        HELD.with(|h| h.borrow().contains(&id))
    }

    /// Plans the sync (see [`crate::plan`]) and carries the plan out.
    fn sync_locked(&self, st: &mut State, fs: &Fs, changed: &Changed) -> Result<Report, SyncError> {
        let seen = match changed {
            Changed::Inodes(inos) => self.scan_changed(st, fs, inos)?,
            Changed::Everything => scan::Seen {
                now: self.scan(fs)?,
                looked: None,
            },
        };
        let current = seen.now;
        let mut report = Report::default();
        let now: BTreeMap<String, Version> = current
            .iter()
            .map(|(p, n)| {
                let s = &n.stat;
                let v = Version {
                    kind: n.kind,
                    ino: s.ino,
                    change: s.change,
                    data_change: s.data_change,
                };
                (p.clone(), v)
            })
            .collect();
        let version = |s: &Synced| Version {
            kind: s.kind,
            ino: s.ino,
            change: s.change,
            data_change: s.data_change,
        };
        let held: BTreeMap<String, Version> = match &seen.looked {
            Some(looked) => looked
                .iter()
                .filter_map(|p| Some((p.clone(), version(st.synced.get(p)?))))
                .collect(),
            None => st
                .synced
                .iter()
                .map(|(p, s)| (p.clone(), version(s)))
                .collect(),
        };
        let unsure: BTreeMap<String, Kind> =
            st.unsure.iter().map(|(p, u)| (p.clone(), u.kind)).collect();
        for op in plan::plan(&held, &unsure, &now, |p| self.excluded(p)) {
            match op {
                Op::ClearUnsure { path, kind } => {
                    self.clear_unsure(st, &path, kind, &mut report)?
                }
                Op::Delete { path } => self.delete_one(st, &path, &mut report)?,
                Op::Write { path, from } => {
                    self.write_one(st, fs, &path, &current[&path], from, &mut report)?
                }
            }
        }
        Ok(report)
    }

    /// An unsure write of a path gone since (or now of another kind): the
    /// object is removed if it is that write, landed.
    fn clear_unsure(
        &self,
        st: &mut State,
        path: &str,
        kind: Kind,
        report: &mut Report,
    ) -> Result<(), SyncError> {
        let Some(u) = st.unsure.get(path).cloned() else {
            return Ok(());
        };
        let key = self.key(path, kind);
        if let Some(info) = self.store.head(&key)? {
            if u.landed(&info) {
                self.store.delete(&key)?;
                report.deleted += 1;
                if st.synced.get(path).is_some_and(|s| s.kind == kind) {
                    st.synced.remove(path);
                }
                self.touched(st, path);
            }
        }
        st.unsure.remove(path);
        Ok(())
    }

    /// Makes `path`'s object the tree's `node`: copied from `from`, or
    /// uploaded (a large file in parts, sending only those that changed).
    /// Another writer's change is kept beside ours; a write of unknown
    /// outcome is remembered (see `unsure`).
    fn write_one(
        &self,
        st: &mut State,
        fs: &Fs,
        path: &str,
        node: &Node,
        source: Option<String>,
        report: &mut Report,
    ) -> Result<(), SyncError> {
        let key = self.key(path, node.kind);
        let cond = self.write_cond(st, path, &key)?;
        let prev = st.synced.get(path);
        let meta = Mirror::metadata(node.kind, &node.stat);
        let mut parts = source
            .as_ref()
            .and_then(|p| st.synced.get(p))
            .map(|s| s.parts.clone())
            .unwrap_or_default();
        let mut stamp = None;
        let result = match &source {
            Some(from) => {
                let from_key = self.key(from, Kind::File);
                self.check_cond(&key, &cond)
                    .and_then(|()| self.store.copy(&from_key, &key, &meta, &cond))
            }
            None if node.kind == Kind::File && self.store.writes_ranges() => {
                let f = match Mirror::open_file(fs, path) {
                    Ok(f) => f,
                    // Gone since the scan: the next sync deletes it.
                    Err(ErrorCode::NoEntry) => return Ok(()),
                    Err(e) => return Err(e.into()),
                };
                let written = f.0.take_written()?;
                stamp = Some(written.stamp);
                let pieces = ranged_pieces(prev, &written);
                report.bytes_uploaded += crate::store::new_bytes(&pieces);
                parts = Vec::new();
                let source: Arc<dyn Source> = Arc::new(f);
                self.check_cond(&key, &cond)
                    .and_then(|()| self.store.put_from(&key, &pieces, &source, &meta, &cond))
            }
            None if node.kind == Kind::File && node.stat.size >= PARTS_FROM as u64 => {
                let unchanged = self.keeps_unchanged(st, path, node, &key);
                let stored = prev
                    .filter(|s| s.kind == Kind::File && !unchanged)
                    .map_or(&[][..], |s| &s.parts[..]);
                let up = match Mirror::upload(fs, path, stored, unchanged) {
                    Ok(up) => up,
                    // Gone since the scan: the next sync deletes it.
                    Err(ErrorCode::NoEntry) => return Ok(()),
                    Err(e) => return Err(e.into()),
                };
                report.bytes_uploaded += up.new_bytes();
                let source = up.source();
                let r = self.check_cond(&key, &cond).and_then(|()| {
                    {
                        self.store.put_from(&key, &up.pieces, &source, &meta, &cond)
                    }
                });
                parts = up.hashes();
                r
            }
            None => {
                let body = match Mirror::body(fs, path, node.kind) {
                    Ok(b) => b,
                    // Gone since the scan: the next sync deletes it.
                    Err(ErrorCode::NoEntry) => return Ok(()),
                    Err(e) => return Err(e.into()),
                };
                parts = Vec::new();
                report.bytes_uploaded += body.len() as u64;
                self.check_cond(&key, &cond)
                    .and_then(|()| self.store.put(&key, &body, &meta, &cond))
            }
        };
        let etag = match result {
            Ok(etag) => {
                if source.is_some() {
                    report.copied += 1;
                } else {
                    report.uploaded += 1;
                }
                if let Some(src) = st.lazy.get(&node.stat.ino) {
                    src.repoint(&key, &etag);
                }
                etag
            }
            Err(e) if e.kind == ErrorKind::Conflict && node.kind == Kind::Dir => {
                stamp = None;
                // Directory markers carry only metadata: ours wins.
                self.store.put(&key, &[], &meta, &Cond::None)?
            }
            Err(e) if e.kind == ErrorKind::Conflict => {
                match self.already_ours(fs, path, node, &key, &meta)? {
                    Some(etag) => {
                        if let Some(src) = st.lazy.get(&node.stat.ino) {
                            src.repoint(&key, &etag);
                        }
                        etag
                    }
                    None => {
                        // The object at `path` is theirs now.
                        parts = Vec::new();
                        stamp = None;
                        self.keep_conflict(fs, path, node, &meta, report)?
                    }
                }
            }
            Err(e) => {
                // It may have landed all the same: remember what was
                // sent, to recognise it (see `write_cond`, `unsure`).
                let size = if node.kind == Kind::Dir {
                    0
                } else {
                    node.stat.size
                };
                let kind = node.kind;
                st.unsure
                    .insert(path.to_string(), Unsure { kind, meta, size });
                return Err(e.into());
            }
        };
        st.unsure.remove(path);
        self.touched(st, path);
        st.synced.insert(
            path.to_string(),
            Synced {
                ino: node.stat.ino,
                change: node.stat.change,
                data_change: node.stat.data_change,
                kind: node.kind,
                etag,
                parts,
                stamp,
            },
        );
        Ok(())
    }

    /// The condition a write of `path` needs: the object must still be the
    /// one last synced (or absent). After an unsure write it may be that
    /// write instead, landed: then that is the version to replace.
    fn write_cond(&self, st: &State, path: &str, key: &str) -> Result<Cond, SyncError> {
        let synced = match st.synced.get(path) {
            Some(s) => Cond::IfMatch(s.etag.clone()),
            None => Cond::IfNoneMatch,
        };
        let Some(u) = st.unsure.get(path) else {
            return Ok(synced);
        };
        Ok(match self.store.head(key)? {
            Some(info) if u.landed(&info) => Cond::IfMatch(info.etag),
            _ => synced,
        })
    }

    /// Synced paths (not excluded) that `present` says are no longer
    /// there, children before their directories.
    fn gone(&self, st: &State, present: impl Fn(&str) -> bool) -> Vec<String> {
        st.synced
            .keys()
            .rev()
            .filter(|p| !present(p) && !self.excluded(p))
            .cloned()
            .collect()
    }

    /// Whether the object at `key` is already exactly ours: a request that
    /// timed out may still have reached the server, and the retry then
    /// finds its own write. Returns its ETag if so.
    fn already_ours(
        &self,
        fs: &Fs,
        path: &str,
        node: &Node,
        key: &str,
        meta: &Metadata,
    ) -> Result<Option<String>, SyncError> {
        let Some(info) = self.store.head(key)? else {
            return Ok(None);
        };
        if info.meta != *meta {
            return Ok(None);
        }
        if node.kind == Kind::File && node.stat.size >= PARTS_FROM as u64 {
            // Compared a piece at a time: a large file is never held whole.
            let f = Mirror::open_file(fs, path)?;
            let size = f.0.stat().size;
            if info.size != size {
                return Ok(None);
            }
            let pinned = Cond::IfMatch(info.etag.clone());
            let mut ours = vec![0; PART];
            let mut at = 0;
            while at < size {
                let end = (at + PART as u64).min(size);
                let ours = &mut ours[..(end - at) as usize];
                f.read_at(at, ours)?;
                let theirs = self.store.get(key, Some(at..end), &pinned)?;
                if theirs != *ours {
                    return Ok(None);
                }
                at = end;
            }
            return Ok(Some(info.etag));
        }
        let ours = Mirror::body(fs, path, node.kind)?;
        if info.size != ours.len() as u64 {
            return Ok(None);
        }
        let theirs = self.store.get(key, None, &Cond::None)?;
        Ok((theirs == ours).then_some(info.etag))
    }

    /// Another writer changed `path` in the store: keep both. Ours goes to
    /// `PATH.larder-conflict-SECS`; `path` keeps theirs. Returns their ETag.
    fn keep_conflict(
        &self,
        fs: &Fs,
        path: &str,
        node: &Node,
        meta: &Metadata,
        report: &mut Report,
    ) -> Result<String, SyncError> {
        // A large file goes up from the file, a part at a time.
        let large = node.kind == Kind::File && node.stat.size >= PARTS_FROM as u64;
        let (body, whole) = if large {
            let f = Mirror::open_file(fs, path)?;
            let size = f.0.stat().size;
            let source: Arc<dyn Source> = Arc::new(f);
            (Vec::new(), Some((source, [Piece::New(0..size)])))
        } else {
            (Mirror::body(fs, path, node.kind)?, None)
        };
        let mut n = 0;
        let kept = loop {
            let suffix = if n == 0 {
                String::new()
            } else {
                format!("-{n}")
            };
            let candidate = format!("{path}.larder-conflict-{}{suffix}", now_secs());
            let key = self.key(&candidate, node.kind);
            match match &whole {
                Some((source, pieces)) => {
                    self.store
                        .put_from(&key, pieces, source, meta, &Cond::IfNoneMatch)
                }
                None => self.store.put(&key, &body, meta, &Cond::IfNoneMatch),
            } {
                Ok(_) => break candidate,
                Err(e) if e.kind == ErrorKind::Conflict && n < 100 => n += 1,
                Err(e) => return Err(e.into()),
            }
        };
        tracing::warn!(%path, %kept, "another writer changed this file in the store; kept ours beside it");
        report.conflicts.push(format!("{path} -> {kept}"));
        let key = self.key(path, node.kind);
        let theirs = self.store.head(&key)?;
        Ok(theirs.map(|t| t.etag).unwrap_or_default())
    }

    /// Deletes `path`'s object unless another writer changed it since.
    fn delete_one(&self, st: &mut State, path: &str, report: &mut Report) -> Result<(), SyncError> {
        let Some(s) = st.synced.get(path).cloned() else {
            return Ok(());
        };
        let key = self.key(path, s.kind);
        let current: Option<ObjectInfo> = self.store.head(&key)?;
        let ours =
            |c: &ObjectInfo| c.etag == s.etag || st.unsure.get(path).is_some_and(|u| u.landed(c));
        match current {
            Some(c) if !ours(&c) && s.kind != Kind::Dir => {
                tracing::warn!(%path, "not deleting: another writer changed it in the store");
                report
                    .conflicts
                    .push(format!("{path} (deleted here, changed there: kept)"));
            }
            Some(_) => {
                self.store.delete(&key)?;
                report.deleted += 1;
            }
            None => {}
        }
        st.synced.remove(path);
        st.unsure.remove(path);
        self.touched(st, path);
        Ok(())
    }

    /// Conflicts so far, the last error, and whether all is in the store.
    pub fn status(&self) -> Status {
        let st = self.lock();
        Status {
            clean: st.clean,
            conflicts: st.conflicts.clone(),
            last_error: st.last_error.clone(),
        }
    }

    /// Rebuilds the store's tree in `fs` (normally empty) and returns the
    /// mirror that continues from it. Objects other tools wrote appear as
    /// files (directories implied by their keys are created); keys that
    /// cannot be paths are skipped with a warning.
    pub fn restore(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        fs: &Fs,
    ) -> Result<Mirror, SyncError> {
        Mirror::restore_reporting(store, prefix, fs, &|_, _| {})
    }

    /// [`Mirror::restore`], calling `progress(done, total)` as the store
    /// lists objects (for a progress bar: on S3 each needs a request).
    pub fn restore_reporting(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        fs: &Fs,
        progress: &Progress<'_>,
    ) -> Result<Mirror, SyncError> {
        let mirror = Mirror::new(store, prefix);
        mirror.restore_into(fs, progress)?;
        Ok(mirror)
    }

    /// The path and kind an object stands for; `None` (logged) for keys
    /// that cannot be a path here.
    fn object_path<'a>(&self, o: &'a ObjectInfo) -> Option<(&'a str, Kind)> {
        meta::object_path(&self.prefix, o)
    }

    /// Rebuilds the store's tree in `fs`, over what it already holds (the
    /// store's version of a file replaces the one there), leaving out the
    /// subtrees this mirror [excludes](Mirror::exclude); this mirror then
    /// continues from it. [`Mirror::restore_reporting`] on a fresh mirror.
    pub fn restore_into(&self, fs: &Fs, progress: &Progress<'_>) -> Result<(), SyncError> {
        let (objects, targets, index) = self.list_indexed(progress)?;
        let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY)?;
        let mut etags: BTreeMap<String, (Kind, String)> = BTreeMap::new();
        let mut attrs: Vec<(String, meta::Attrs)> = Vec::new();
        let mut lazy: HashMap<u64, Arc<StoreSource>> = HashMap::new();
        let mut stamps: HashMap<String, u64> = HashMap::new();
        for o in &objects {
            let Some((path, kind)) = self.object_path(o) else {
                continue;
            };
            if self.excluded(path) {
                continue;
            }
            let a = meta::decode(&o.meta);
            let target = targets.get(&o.key).map(String::as_str);
            match self.restore_one(&root, o, path, kind, target) {
                Ok(made) => {
                    if let Some((ino, source)) = made.lazy {
                        lazy.insert(ino, source);
                    }
                    if let Some(stamp) = made.stamp {
                        stamps.insert(path.to_string(), stamp);
                    }
                }
                // The store failing is an error; an object that cannot be
                // a file here (a name taken by a file) is skipped.
                Err(e @ SyncError::Store(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(key = %o.key, error = %e, "skipped: cannot restore this object");
                    continue;
                }
            }
            etags.insert(path.to_string(), (kind, o.etag.clone()));
            attrs.push((path.to_string(), a));
        }
        // Modes and times last, deepest first, so creating children does
        // not move a directory's mtime afterwards.
        for (path, a) in attrs.iter().rev() {
            apply_attrs(&root, path, etags[path].0, a)?;
        }
        let mut st = self.lock();
        // From before the walk below, so what changes after it is logged.
        st.log = Some((fs.dev(), fs.change_log()));
        let current = self.scan(fs)?;
        for (path, node) in current {
            match etags.get(&path) {
                Some((kind, etag)) if *kind == node.kind => st.synced.insert(
                    path.clone(),
                    Synced {
                        ino: node.stat.ino,
                        change: node.stat.change,
                        data_change: node.stat.data_change,
                        kind: node.kind,
                        etag: etag.clone(),
                        // Unknown until the file is next uploaded whole.
                        parts: Vec::new(),
                        // The app has not run yet: the file is the object.
                        stamp: stamps.get(&path).copied(),
                    },
                ),
                // Not stored as it is here (a directory only implied by
                // keys): the first sync's to store.
                _ => {
                    st.pending.insert(path);
                }
            }
        }
        tracing::info!(
            "restored {} entries from the store ({} objects listed)",
            st.synced.len(),
            objects.len()
        );
        st.lazy = lazy;
        st.index = index;
        // Directories only implied by keys get their markers at the first
        // sync, which is therefore not clean yet.
        st.seen_seq = fs.change_seq();
        st.clean = false;
        Ok(())
    }

    /// Fetches everything still unfetched of the files restored lazily,
    /// many at once (an optional warm-up after `restore`; reads fetch what
    /// they need anyway).
    pub fn prefetch(&self, fs: &Fs) -> Result<(), SyncError> {
        const FETCHERS: usize = 16;
        let inos: std::collections::HashSet<u64> = {
            let st = self.lock();
            st.lazy.keys().copied().collect()
        };
        let files: Vec<String> = self
            .scan(fs)?
            .into_iter()
            .filter(|(_, n)| n.kind == Kind::File && inos.contains(&n.stat.ino))
            .map(|(p, _)| p)
            .collect();
        let root = fs.root(DF::READ)?;
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failed: Mutex<Option<SyncError>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..FETCHERS.min(files.len()) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(path) = files.get(i) else {
                        return;
                    };
                    if failed.lock().unwrap_or_else(|e| e.into_inner()).is_some() {
                        return;
                    }
                    let r = match root.open_at(PF::empty(), path, OF::empty(), DF::READ) {
                        Ok(f) => f.fetch(),
                        // Changed since the scan: nothing left to fetch.
                        Err(ErrorCode::NoEntry | ErrorCode::IsDirectory) => Ok(()),
                        Err(e) => Err(e),
                    };
                    if let Err(e) = r.map_err(SyncError::from) {
                        failed
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(e);
                        return;
                    }
                });
            }
        });
        match failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Makes `path` the object `o` (a symlink's `target`, if known, saves
    /// fetching its body).
    fn restore_one(
        &self,
        root: &fs_core::Descriptor,
        o: &ObjectInfo,
        path: &str,
        kind: Kind,
        target: Option<&str>,
    ) -> Result<Made, SyncError> {
        // Parents first (other tools write keys without directory markers).
        if let Some((parent, _)) = path.rsplit_once('/') {
            root.create_directory_all(parent)?;
        }
        match kind {
            Kind::Dir => match root.create_directory_at(path) {
                Ok(()) | Err(ErrorCode::Exist) => Ok(Made::default()),
                Err(e) => Err(e.into()),
            },
            Kind::Symlink => {
                let target = match target {
                    Some(t) => t.to_string(),
                    None => String::from_utf8(self.store.get(&o.key, None, &Cond::None)?)
                        .map_err(|_| SyncError::Fs(ErrorCode::IllegalByteSequence))?,
                };
                root.symlink_any_at(&target, path)?;
                Ok(Made::default())
            }
            // The bytes stay in the store until a read reaches them.
            Kind::File => {
                let f = root.open_at(PF::empty(), path, OF::CREATE | OF::TRUNCATE, DF::WRITE)?;
                let lazy = if o.size == 0 {
                    None
                } else {
                    let source = Arc::new(StoreSource::new(
                        self.patient.clone(),
                        o.size,
                        &o.key,
                        &o.etag,
                    ));
                    f.set_source(source.clone(), o.size)?;
                    Some((f.stat().ino, source))
                };
                // Stores that write ranges: a fresh take, so the file's
                // first change sends only what changed.
                let stamp = match self.store.writes_ranges() {
                    true => Some(f.take_written()?.stamp),
                    false => None,
                };
                Ok(Made { lazy, stamp })
            }
        }
    }
}

/// When a mirrored filesystem sends its changes to the store: always on
/// fsync, which returns only once they are there, and whenever its owner
/// calls [`Mirror::sync`] (`larder run` does at exit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// Also when a file written through a descriptor is closed.
    OnClose,
    /// Only on fsync.
    OnFsync,
    /// Also every interval (from a thread the filesystem's owner runs).
    Periodic(std::time::Duration),
    /// After every change (write, truncate, create, rename, delete, chmod,
    /// set-times), before the call returns: a store request per change.
    WriteThrough,
}

/// Plugs a mirror into a filesystem: fsync returns once the store has it
/// (or `io` with the reason logged), and per [`SyncMode`] closing a
/// written file or every change syncs too (a failure there is logged and
/// stays queued for the next change or fsync, which reports it).
pub struct MirrorHook {
    mirror: Arc<Mirror>,
    mode: SyncMode,
}

impl MirrorHook {
    pub fn new(mirror: Arc<Mirror>, mode: SyncMode) -> MirrorHook {
        MirrorHook { mirror, mode }
    }
}

impl SyncHook for MirrorHook {
    fn sync(&self, fs: &Fs, _ino: u64, _data_only: bool) -> fs_core::Result<()> {
        self.mirror.sync(fs).map(|_| ()).map_err(|e| {
            tracing::error!(error = %e, "fsync: not durable in the store");
            ErrorCode::Io
        })
    }

    fn closed(&self, fs: &Fs, _ino: u64) {
        if matches!(self.mode, SyncMode::OnClose | SyncMode::WriteThrough) {
            self.mirror.sync_in_background(fs);
        }
    }

    fn wants_changes(&self) -> bool {
        self.mode == SyncMode::WriteThrough
    }

    fn changed(&self, fs: &Fs) {
        self.mirror.sync_in_background(fs);
    }
}
