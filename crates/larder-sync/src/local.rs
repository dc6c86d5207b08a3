//! A local directory as the store, in the same 1:1 layout: objects are
//! plain files, `dir/` markers are directories, symlink objects are
//! symlinks, and the metadata is the files' own (mode, owner, mtime), so
//! any tool can read the mirror. Writes go to a temporary file that is
//! renamed into place and fsync'd with its directory: a reader sees the old
//! or the new file, never a torn one, and a put that returned survives a
//! crash.
//!
//! The invariant this file keeps: no operation ever reaches outside the
//! root. Keys are checked (no `..`, `.`, empty or absolute components),
//! and every path is walked from a descriptor of the root one component
//! at a time with `O_NOFOLLOW`, so a symlink object (which an app or
//! another store user can plant, pointing anywhere) is never traversed:
//! a key below it is simply not there, and a write below it is refused.
//!
//! A large file with a few changed ranges is rewritten in place instead,
//! journaled so that a crash still leaves it all old or all new (see
//! `patch`).

mod patch;

use crate::meta::{self, S_IFLNK, S_IFMT, S_IFREG};
use crate::store::{
    is_relative_key, Cond, ErrorKind, Metadata, ObjectInfo, ObjectStore, Piece, Result, Source,
    StoreError,
};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::Write;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Names of files being written; never listed.
const TMP_PREFIX: &str = ".larder-tmp-";

pub struct LocalDir {
    root: PathBuf,
    /// Every operation starts here, never from a path string.
    root_fd: File,
    /// Makes a condition check and the write after it one step for the
    /// writers in this process (other processes: see the README).
    lock: Mutex<()>,
    seq: AtomicU64,
    /// Bytes written to files in the store, journals included.
    written: AtomicU64,
    /// Versions rewritten in place, by inode, so reads pinned to one are
    /// still served where its bytes survive (see `LocalDir::patched`).
    patched: Mutex<HashMap<u64, Vec<Patched>>>,
    /// For crash tests: the patch step after which the process aborts.
    crash_after: AtomicU8,
}

/// A version of a file that was patched in place into a later one.
struct Patched {
    old_etag: String,
    /// The version it became (`None` while the patch runs).
    now: Option<String>,
    /// Byte ranges of the old version replaced since, and how much of it
    /// is still there: everything else reads the same in both.
    replaced: Vec<Range<u64>>,
    len: u64,
}

/// Older versions of a file than this many patches back are not served.
const PATCHED_KEPT: usize = 4;

fn kind_of(e: std::io::ErrorKind) -> ErrorKind {
    match e {
        std::io::ErrorKind::NotFound => ErrorKind::NotFound,
        std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut => ErrorKind::Transient,
        _ => ErrorKind::Permanent,
    }
}

/// An error about `key` (or the root, for "").
fn io(key: &str) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::at(kind_of(e.kind()), key, e.to_string())
}

fn errno(key: &str) -> impl FnOnce(Errno) -> StoreError + '_ {
    move |e| io(key)(e.into())
}

/// A key split into the directories above it and its last name.
struct KeyPath<'a> {
    parents: Vec<&'a str>,
    name: &'a str,
    dir: bool,
}

/// Refuses keys that are not a plain relative path of names: they could
/// leave the root, or name something no other tool would find there.
fn split(key: &str) -> Result<KeyPath<'_>> {
    let dir = key.ends_with('/');
    let rel = key.strip_suffix('/').unwrap_or(key);
    if !is_relative_key(key) || rel.split('/').any(|c| c.starts_with(TMP_PREFIX)) {
        return Err(StoreError::new(
            ErrorKind::Permanent,
            format!("key {key:?} cannot be a path under the store"),
        ));
    }
    let mut parents: Vec<&str> = rel.split('/').collect();
    let name = parents.pop().expect("not empty");
    Ok(KeyPath { parents, name, dir })
}

/// Opens the directory `name` in `dir`, never through a symlink: a symlink
/// answers "not a directory" (`O_NOFOLLOW`'s `ELOOP`, made one case).
fn enter(dir: &File, name: &str) -> rustix::io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rfs::openat(dir, name, flags, Mode::empty())
        .map(File::from)
        .map_err(|e| if e == Errno::LOOP { Errno::NOTDIR } else { e })
}

fn stat_at(dir: &File, name: &str) -> rustix::io::Result<rfs::Stat> {
    rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
}

/// A version tag that changes whenever the file is replaced (new inode) or
/// rewritten in place (size, mtime; for a regular file also its ctime,
/// which every write moves and no one can set back).
fn etag(st: &rfs::Stat, size: u64) -> String {
    let tag = format!(
        "{:x}-{:x}-{:x}.{}",
        st.st_ino, size, st.st_mtime, st.st_mtime_nsec
    );
    if FileType::from_raw_mode(st.st_mode).is_file() {
        format!("\"{tag}-{:x}.{}\"", st.st_ctime, st.st_ctime_nsec)
    } else {
        format!("\"{tag}\"")
    }
}

fn read_link_at(dir: &File, name: &str) -> rustix::io::Result<Vec<u8>> {
    rfs::readlinkat(dir, name, Vec::new()).map(|t| t.into_bytes())
}

/// The object that `name` in `dir`, as `st` (not followed) shows it, stands for.
fn describe(key: String, st: &rfs::Stat, dir: &File, name: &str) -> Result<ObjectInfo> {
    let ft = FileType::from_raw_mode(st.st_mode);
    let size = match ft {
        FileType::RegularFile => st.st_size as u64,
        FileType::Symlink => read_link_at(dir, name).map_err(errno(&key))?.len() as u64,
        _ => 0,
    };
    let mode = if ft.is_symlink() {
        S_IFLNK | 0o777
    } else {
        st.st_mode
    };
    let meta = meta::encode(
        mode,
        st.st_uid,
        st.st_gid,
        st.st_mtime.max(0) as u64,
        st.st_mtime_nsec as u32,
    );
    Ok(ObjectInfo {
        etag: etag(st, size),
        key,
        size,
        meta,
    })
}

impl LocalDir {
    /// A store rooted at `root`, created if missing (`larder run --store`).
    pub fn open(root: impl Into<PathBuf>) -> Result<LocalDir> {
        let root = root.into();
        fs::create_dir_all(&root)
            .map_err(|e| StoreError::new(kind_of(e.kind()), format!("{}: {e}", root.display())))?;
        LocalDir::open_existing(root)
    }

    /// A store rooted at `root`, which must be a directory already (for
    /// commands that only read a store: a typo must not create one).
    pub fn open_existing(root: impl Into<PathBuf>) -> Result<LocalDir> {
        let root = root.into();
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root_fd = rfs::open(&root, flags, Mode::empty())
            .map(File::from)
            .map_err(|e| {
                let e: std::io::Error = e.into();
                StoreError::new(kind_of(e.kind()), format!("{}: {e}", root.display()))
            })?;
        let store = LocalDir {
            root,
            root_fd,
            lock: Mutex::new(()),
            seq: AtomicU64::new(0),
            written: AtomicU64::new(0),
            patched: Mutex::new(HashMap::new()),
            crash_after: AtomicU8::new(0),
        };
        store.remove_stale_temps(&store.root_fd);
        Ok(store)
    }

    /// Bytes this store has written to files (objects, temporary files and
    /// journals), for measuring what a workload costs it.
    pub fn bytes_written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    fn count(&self, n: usize) {
        self.written.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// For crash tests only: abort the process after step `n` (1 to 4) of
    /// the next in-place patch.
    #[doc(hidden)]
    pub fn crash_after_step(&self, n: u8) {
        self.crash_after.store(n, Ordering::Relaxed);
    }
}

/// The message a store logs when it closes (see [`written_in_log`]).
const CLOSED: &str = "local store closed";

/// What a store wrote in its life, for anyone measuring it
/// (`RUST_LOG=larder_sync::local=info`).
impl Drop for LocalDir {
    fn drop(&mut self) {
        tracing::info!(
            store = %self.root.display(),
            bytes_written = self.bytes_written(),
            "{CLOSED}"
        );
    }
}

/// The bytes written that a closing store logged, found in `log` (a
/// process's stderr with `RUST_LOG=larder_sync::local=info`): how a
/// benchmark or test learns what a `larder run` cost its store.
pub fn written_in_log(log: &str) -> Option<u64> {
    log.lines().filter(|l| l.contains(CLOSED)).find_map(|l| {
        let at = l.find("bytes_written=")? + "bytes_written=".len();
        l[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    })
}

impl LocalDir {
    /// A patch of inode `ino` from `old_etag` is under way: it replaces
    /// `replaced` and leaves `len` bytes.
    fn note_patch(&self, ino: u64, old_etag: String, replaced: Vec<Range<u64>>, len: u64) {
        let mut all = self.patched.lock().unwrap_or_else(|e| e.into_inner());
        let list = all.entry(ino).or_default();
        // Older versions that became this one are now that much further off.
        list.retain(|p| p.now.as_deref() == Some(old_etag.as_str()));
        for p in list.iter_mut() {
            p.now = None;
            p.replaced.extend(replaced.iter().cloned());
            p.len = p.len.min(len);
        }
        list.push(Patched {
            old_etag,
            now: None,
            replaced,
            len,
        });
        if list.len() > PATCHED_KEPT {
            list.remove(0);
        }
    }

    /// The patch of `ino` under way finished as version `now`.
    fn finish_patch(&self, ino: u64, now: &str) {
        let mut all = self.patched.lock().unwrap_or_else(|e| e.into_inner());
        for p in all.entry(ino).or_default() {
            p.now = Some(now.to_string());
        }
    }

    fn forget_patches(&self, ino: u64) {
        let mut all = self.patched.lock().unwrap_or_else(|e| e.into_inner());
        all.remove(&ino);
    }

    /// Whether `range` of version `pinned` of the file that is now `st`
    /// (its ETag `current`) reads the same from the file as it is: the
    /// file was patched in place from that version, and neither replaced
    /// those bytes nor cut them off. A lazily restored file's unfetched
    /// bytes are read this way while, and just after, the mirror patches
    /// its object.
    fn patched(&self, st: &rfs::Stat, pinned: &str, current: &str, range: &Range<u64>) -> bool {
        let all = self.patched.lock().unwrap_or_else(|e| e.into_inner());
        all.get(&st.st_ino).is_some_and(|list| {
            list.iter().any(|p| {
                p.old_etag == pinned
                    && p.now.as_deref().is_none_or(|now| now == current)
                    && range.end <= p.len
                    && !p
                        .replaced
                        .iter()
                        .any(|r| r.start < range.end && range.start < r.end)
            })
        })
    }

    /// Where the store is on the host.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory `parents` names, entered one name at a time and never
    /// through a symlink; `create` makes the missing ones.
    fn dir(&self, key: &str, parents: &[&str], create: bool) -> Result<File> {
        let mut dir = self.root_fd.try_clone().map_err(io(key))?;
        for (i, name) in parents.iter().enumerate() {
            let mut next = enter(&dir, name);
            if create && matches!(next, Err(Errno::NOENT)) {
                match rfs::mkdirat(&dir, *name, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(errno(key)(e)),
                }
                next = enter(&dir, name);
            }
            dir = next.map_err(|e| {
                if e == Errno::NOTDIR {
                    let above = parents[..=i].join("/");
                    StoreError::at(
                        if create {
                            ErrorKind::Permanent
                        } else {
                            ErrorKind::NotFound
                        },
                        key,
                        format!("{above} in the store is not a directory"),
                    )
                } else {
                    errno(key)(e)
                }
            })?;
        }
        Ok(dir)
    }

    fn info(&self, key: String, dir: &File, name: &str) -> Result<Option<ObjectInfo>> {
        let st = match stat_at(dir, name) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(errno(&key)(e)),
        };
        if key.ends_with('/') != FileType::from_raw_mode(st.st_mode).is_dir() {
            return Ok(None);
        }
        describe(key, &st, dir, name).map(Some)
    }

    fn walk(&self, dir: &File, rel: &str, out: &mut Vec<ObjectInfo>) -> Result<()> {
        let mut entries = rfs::Dir::read_from(dir).map_err(errno(rel))?;
        while let Some(entry) = entries.read() {
            let entry = entry.map_err(errno(rel))?;
            let raw = entry.file_name().to_bytes();
            if raw == b"." || raw == b".." {
                continue;
            }
            let Ok(name) = std::str::from_utf8(raw) else {
                tracing::warn!(
                    "skipping {}/{}: not a UTF-8 name, so not a path Larder can hold",
                    self.root.join(rel).display(),
                    raw.escape_ascii()
                );
                continue;
            };
            if name.starts_with(TMP_PREFIX) {
                continue;
            }
            let key = format!("{rel}{name}");
            let st = match stat_at(dir, name) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue, // gone since the listing
                Err(e) => return Err(errno(&key)(e)),
            };
            if FileType::from_raw_mode(st.st_mode).is_dir() {
                let key = format!("{key}/");
                out.push(describe(key.clone(), &st, dir, name)?);
                match enter(dir, name) {
                    Ok(sub) => self.walk(&sub, &key, out)?,
                    Err(Errno::NOENT | Errno::NOTDIR) => {} // replaced meanwhile
                    Err(e) => return Err(errno(&key)(e)),
                }
            } else {
                out.push(describe(key, &st, dir, name)?);
            }
        }
        Ok(())
    }

    fn check(&self, key: &str, cond: &Cond) -> Result<()> {
        let current = self.head(key)?;
        cond.check(key, current.as_ref().map(|c| c.etag.as_str()))
    }

    fn temp(&self) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{TMP_PREFIX}{}-{n}", std::process::id())
    }

    /// Mode, owner (when permitted) and mtime of the open `f` from `meta`.
    fn apply(key: &str, f: &File, meta: &Metadata) -> Result<()> {
        let m = meta::decode(meta);
        f.set_permissions(fs::Permissions::from_mode(m.mode & 0o7777))
            .map_err(io(key))?;
        // Only root may give files away; elsewhere the owner is the user's.
        let _ = std::os::unix::fs::fchown(f, Some(m.uid), Some(m.gid));
        let t = SystemTime::UNIX_EPOCH + Duration::new(m.mtime_secs, m.mtime_nanos);
        f.set_modified(t).map_err(io(key))
    }

    /// Writes the file or symlink object `key` as `name` in `dir`: to a
    /// temporary name first, renamed over the old one.
    fn replace(
        &self,
        key: &str,
        dir: &File,
        name: &str,
        content: Content<'_>,
        meta: &Metadata,
    ) -> Result<()> {
        let tmp = self.temp();
        let written = match content {
            Content::Bytes(body) if meta::decode(meta).mode & S_IFMT == S_IFLNK => {
                rfs::symlinkat(OsStr::from_bytes(body), dir, tmp.as_str()).map_err(errno(key))
            }
            content => {
                let flags = OFlags::WRONLY
                    | OFlags::CREATE
                    | OFlags::EXCL
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC;
                rfs::openat(dir, tmp.as_str(), flags, Mode::from_raw_mode(0o600))
                    .map_err(errno(key))
                    .and_then(|fd| {
                        let mut f = File::from(fd);
                        match content {
                            Content::Bytes(body) => {
                                f.write_all(body).map_err(io(key))?;
                                self.count(body.len());
                            }
                            Content::Pieces(pieces, source, old) => {
                                write_pieces(self, key, &f, pieces, source, old.as_ref())?
                            }
                        }
                        LocalDir::apply(key, &f, meta)?;
                        f.sync_all().map_err(io(key))
                    })
            }
        };
        let renamed =
            written.and_then(|()| rfs::renameat(dir, tmp.as_str(), dir, name).map_err(errno(key)));
        if renamed.is_err() {
            let _ = rfs::unlinkat(dir, tmp.as_str(), AtFlags::empty());
        }
        renamed
    }

    /// The regular file at `name` in `dir`, open for reading, if there is one.
    fn open_file(key: &str, dir: &File, name: &str) -> Result<Option<File>> {
        // NONBLOCK: should a FIFO be swapped in, the open must not hang.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let f: File = match rfs::openat(dir, name, flags, Mode::empty()) {
            Ok(fd) => fd.into(),
            Err(Errno::NOENT | Errno::LOOP) => return Ok(None),
            Err(e) => return Err(errno(key)(e)),
        };
        let st = rfs::fstat(&f).map_err(errno(key))?;
        Ok(FileType::from_raw_mode(st.st_mode).is_file().then_some(f))
    }

    fn put_dir(&self, key: &str, dir: &File, name: &str, meta: &Metadata) -> Result<()> {
        match rfs::mkdirat(dir, name, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(errno(key)(e)),
        }
        let d = enter(dir, name).map_err(|e| {
            if e == Errno::NOTDIR {
                StoreError::at(
                    ErrorKind::Permanent,
                    key,
                    "a file or symlink stands where the directory goes",
                )
            } else {
                errno(key)(e)
            }
        })?;
        LocalDir::apply(key, &d, meta)
    }
}

impl LocalDir {
    /// Deletes temporary files whose writer is gone (killed mid-put), and
    /// finishes or undoes the in-place patches such a writer left journals
    /// of; those of live processes (named by PID) are left to finish.
    fn remove_stale_temps(&self, dir: &File) {
        let Ok(mut entries) = rfs::Dir::read_from(dir) else {
            return;
        };
        while let Some(Ok(e)) = entries.read() {
            let Ok(name) = e.file_name().to_str() else {
                continue;
            };
            if name == "." || name == ".." {
                continue;
            }
            if let Some(rest) = name.strip_prefix(TMP_PREFIX) {
                let pid = rest.split('-').next().unwrap_or("");
                let alive = !pid.is_empty() && Path::new("/proc").join(pid).exists();
                if !alive && name.ends_with(".journal") {
                    patch::recover(self, dir, name);
                } else if !alive {
                    tracing::debug!(name, "removing a torn write's temporary file");
                    let _ = rfs::unlinkat(dir, name, AtFlags::empty());
                }
            } else if let Ok(sub) = enter(dir, name) {
                self.remove_stale_temps(&sub);
            }
        }
    }
}

/// Runs `f`, then puts `dir`'s mtime back: the mirror sets directories'
/// times from their markers, and adding or removing a child must not move
/// them afterwards. The root has no marker and keeps real times.
fn keeping_mtime<T>(
    key: &str,
    dir: &File,
    is_root: bool,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let before = (!is_root)
        .then(|| dir.metadata().and_then(|m| m.modified()).ok())
        .flatten();
    let r = f()?;
    if let Some(t) = before {
        dir.set_modified(t).map_err(io(key))?;
    }
    Ok(r)
}

/// `chunk` cut into runs of 4 KiB pages (the last one perhaps short) that
/// are all zeros or not, in order: (range, zeros).
fn page_runs(chunk: &[u8]) -> Vec<(Range<usize>, bool)> {
    const PAGE: usize = 4096;
    let mut runs: Vec<(Range<usize>, bool)> = Vec::new();
    for (i, page) in chunk.chunks(PAGE).enumerate() {
        let zeros = page.iter().all(|&b| b == 0);
        let r = i * PAGE..i * PAGE + page.len();
        match runs.last_mut() {
            Some((last, z)) if *z == zeros => last.end = r.end,
            _ => runs.push((r, zeros)),
        }
    }
    runs
}

/// Writes `chunk` at `at`, leaving out its 4 KiB pages of zeros (as
/// `cp --sparse=always` does), in one write per run of the others.
/// Returns the bytes written.
fn write_nonzero(f: &File, chunk: &[u8], at: u64) -> std::io::Result<usize> {
    let mut written = 0;
    for (run, zeros) in page_runs(chunk) {
        if !zeros {
            f.write_all_at(&chunk[run.clone()], at + run.start as u64)?;
            written += run.len();
        }
    }
    Ok(written)
}

/// The ranges of `range` in `f` that may hold data (SEEK_DATA/SEEK_HOLE):
/// a kept range of a sparse file is copied without reading its holes.
fn data_of(f: &File, range: Range<u64>) -> rustix::io::Result<Vec<Range<u64>>> {
    let mut out = Vec::new();
    let mut at = range.start;
    while at < range.end {
        let start = match rfs::seek(f, rfs::SeekFrom::Data(at)) {
            Ok(start) if start < range.end => start,
            Ok(_) | Err(Errno::NXIO) => break,
            Err(e) => return Err(e),
        };
        let end = rfs::seek(f, rfs::SeekFrom::Hole(start))?.min(range.end);
        out.push(start..end);
        at = end;
    }
    Ok(out)
}

/// The current version `old` open for writing, if rewriting `pieces` of
/// it in place is worth it (see `patch::worth_it`) and touches no other
/// name (a file another tool hard-linked is replaced instead).
fn patchable(old: &File, pieces: &[Piece]) -> Option<File> {
    let st = rfs::fstat(old).ok()?;
    if st.st_nlink != 1 || !patch::worth_it(pieces, st.st_size as u64) {
        return None;
    }
    // Through /proc (a magic link, followed): the same file, whatever has
    // been renamed over its name since. Without /proc, or without write
    // permission on it, the file is replaced instead.
    let fd = rustix::fd::AsRawFd::as_raw_fd(old);
    let flags = OFlags::RDWR | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let rw = File::from(rfs::open(format!("/proc/self/fd/{fd}"), flags, Mode::empty()).ok()?);
    let again = rfs::fstat(&rw).ok()?;
    (again.st_ino == st.st_ino && again.st_dev == st.st_dev).then_some(rw)
}

/// What a file object is written from.
enum Content<'a> {
    Bytes(&'a [u8]),
    /// Pieces of a source and of the current version (open), as
    /// [`ObjectStore::put_from`] gives them.
    Pieces(&'a [Piece], &'a Arc<dyn Source>, Option<File>),
}

/// Writes `pieces` into the empty `f` a MiB at a time, skipping holes and
/// chunks of zeros, so they stay holes; then sets its length.
fn write_pieces(
    store: &LocalDir,
    key: &str,
    f: &File,
    pieces: &[Piece],
    source: &Arc<dyn Source>,
    old: Option<&File>,
) -> Result<()> {
    const CHUNK: u64 = 1 << 20;
    let mut buf = vec![0u8; CHUNK as usize];
    let mut len = 0;
    let old_len = match old {
        Some(f) => f.metadata().map_err(io(key))?.len(),
        None => 0,
    };
    for piece in pieces {
        let (Piece::Keep(r) | Piece::New(r)) = piece;
        if matches!(piece, Piece::Keep(_)) && r.end > old_len {
            return Err(StoreError::at(
                ErrorKind::Conflict,
                key,
                "the current version lacks the kept bytes",
            ));
        }
        let data = match (piece, old) {
            (Piece::Keep(r), Some(old)) => data_of(old, r.clone()).map_err(errno(key))?,
            (Piece::Keep(r), None) => vec![r.clone()],
            (Piece::New(r), _) => source.data_in(r.clone())?,
        };
        for d in data {
            let mut at = d.start;
            while at < d.end {
                let n = (d.end - at).min(CHUNK) as usize;
                let chunk = &mut buf[..n];
                match (piece, old) {
                    (Piece::Keep(_), Some(old)) => old.read_exact_at(chunk, at).map_err(io(key))?,
                    (Piece::Keep(_), None) => {
                        return Err(StoreError::at(
                            ErrorKind::Conflict,
                            key,
                            "no current version to keep pieces of",
                        ))
                    }
                    (Piece::New(_), _) => source.read_at(at, chunk)?,
                }
                store.count(write_nonzero(f, chunk, at).map_err(io(key))?);
                at += n as u64;
            }
        }
        len = r.end;
    }
    f.set_len(len).map_err(io(key))
}

impl ObjectStore for LocalDir {
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        self.walk(&self.root_fd, "", &mut out)?;
        out.retain(|o| o.key.starts_with(prefix));
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let p = split(key)?;
        let dir = match self.dir(key, &p.parents, false) {
            Ok(d) => d,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        self.info(key.to_string(), &dir, p.name)
    }

    fn get(&self, key: &str, range: Option<Range<u64>>, cond: &Cond) -> Result<Vec<u8>> {
        let p = split(key)?;
        let dir = self.dir(key, &p.parents, false)?;
        let st = stat_at(&dir, p.name).map_err(errno(key))?;
        let all = match FileType::from_raw_mode(st.st_mode) {
            FileType::Symlink if !p.dir => {
                let target = read_link_at(&dir, p.name).map_err(errno(key))?;
                cond.check(key, Some(&etag(&st, target.len() as u64)))?;
                target
            }
            FileType::RegularFile if !p.dir => {
                // The version is that of the file opened: replacements are
                // renames, so what is read below is all of one version.
                // NONBLOCK: should a FIFO be swapped in, the open must not hang.
                let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
                let f: File = rfs::openat(&dir, p.name, flags, Mode::empty())
                    .map_err(errno(key))?
                    .into();
                // Never in the middle of an in-place patch (see `patch`).
                let _locked = patch::Flock::shared(key, &f)?;
                let st = rfs::fstat(&f).map_err(errno(key))?;
                if !FileType::from_raw_mode(st.st_mode).is_file() {
                    return Err(StoreError::at(ErrorKind::NotFound, key, "replaced"));
                }
                let len = st.st_size as u64;
                let current = etag(&st, len);
                if let Err(e) = cond.check(key, Some(&current)) {
                    // Bytes a patch of the pinned version left as they were.
                    match (cond, &range) {
                        (Cond::IfMatch(pinned), Some(r))
                            if self.patched(&st, pinned, &current, r) => {}
                        _ => return Err(e),
                    }
                }
                let r = range.unwrap_or(0..len);
                let (start, end) = (r.start.min(len), r.end.min(len));
                let n = usize::try_from(end.saturating_sub(start))
                    .map_err(|_| StoreError::at(ErrorKind::Permanent, key, "range too large"))?;
                let mut buf = Vec::new();
                buf.try_reserve_exact(n).map_err(|_| {
                    StoreError::at(
                        ErrorKind::Permanent,
                        key,
                        format!("{n} bytes do not fit in memory; read it in ranges"),
                    )
                })?;
                buf.resize(n, 0);
                f.read_exact_at(&mut buf, start).map_err(io(key))?;
                return Ok(buf);
            }
            FileType::Directory if p.dir => Vec::new(),
            _ => return Err(StoreError::at(ErrorKind::NotFound, key, "no such object")),
        };
        let len = all.len() as u64;
        let r = range.unwrap_or(0..len);
        Ok(all[r.start.min(len) as usize..r.end.min(len).max(r.start.min(len)) as usize].to_vec())
    }

    fn put(&self, key: &str, body: &[u8], meta: &Metadata, cond: &Cond) -> Result<String> {
        let p = split(key)?;
        let _g = self.lock.lock().unwrap();
        self.check(key, cond)?;
        let dir = self.dir(key, &p.parents, true)?;
        let is_root = p.parents.is_empty();
        if p.dir {
            keeping_mtime(key, &dir, is_root, || self.put_dir(key, &dir, p.name, meta))?;
        } else {
            // A directory left where the file goes (a kind change) must be
            // empty: its objects were deleted first.
            if stat_at(&dir, p.name).is_ok_and(|st| FileType::from_raw_mode(st.st_mode).is_dir()) {
                rfs::unlinkat(&dir, p.name, AtFlags::REMOVEDIR).map_err(errno(key))?;
            }
            keeping_mtime(key, &dir, is_root, || {
                self.replace(key, &dir, p.name, Content::Bytes(body), meta)
            })?;
        }
        dir.sync_all().map_err(io(key))?;
        let info = self.info(key.to_string(), &dir, p.name)?;
        info.map(|i| i.etag)
            .ok_or_else(|| StoreError::at(ErrorKind::Transient, key, "vanished"))
    }

    /// Written a MiB at a time from the source and the current version,
    /// holes left as holes: a sparse file stays sparse in the store.
    fn put_from(
        &self,
        key: &str,
        pieces: &[Piece],
        source: &Arc<dyn Source>,
        meta: &Metadata,
        cond: &Cond,
    ) -> Result<String> {
        let p = split(key)?;
        if p.dir || meta::decode(meta).mode & S_IFMT != S_IFREG {
            return crate::store::put_from_memory(self, key, pieces, source, meta, cond);
        }
        let _g = self.lock.lock().unwrap();
        self.check(key, cond)?;
        let dir = self.dir(key, &p.parents, true)?;
        let old = if pieces.iter().any(|p| matches!(p, Piece::Keep(_))) {
            Some(LocalDir::open_file(key, &dir, p.name)?.ok_or_else(|| {
                StoreError::at(ErrorKind::Conflict, key, "changed by another writer")
            })?)
        } else {
            None
        };
        if let Some(target) = old.as_ref().and_then(|old| patchable(old, pieces)) {
            keeping_mtime(key, &dir, p.parents.is_empty(), || {
                self.patch(key, &dir, p.name, &target, pieces, source, meta)
            })?;
            let info = self.info(key.to_string(), &dir, p.name)?;
            return info
                .map(|i| i.etag)
                .ok_or_else(|| StoreError::at(ErrorKind::Transient, key, "vanished"));
        }
        if stat_at(&dir, p.name).is_ok_and(|st| FileType::from_raw_mode(st.st_mode).is_dir()) {
            rfs::unlinkat(&dir, p.name, AtFlags::REMOVEDIR).map_err(errno(key))?;
        }
        keeping_mtime(key, &dir, p.parents.is_empty(), || {
            let content = Content::Pieces(pieces, source, old);
            self.replace(key, &dir, p.name, content, meta)
        })?;
        dir.sync_all().map_err(io(key))?;
        let info = self.info(key.to_string(), &dir, p.name)?;
        info.map(|i| i.etag)
            .ok_or_else(|| StoreError::at(ErrorKind::Transient, key, "vanished"))
    }

    fn copy(&self, from: &str, to: &str, meta: &Metadata, cond: &Cond) -> Result<String> {
        let body = self.get(from, None, &Cond::None)?;
        self.put(to, &body, meta, cond)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let p = split(key)?;
        let _g = self.lock.lock().unwrap();
        let dir = match self.dir(key, &p.parents, false) {
            Ok(d) => d,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        keeping_mtime(key, &dir, p.parents.is_empty(), || {
            let r = if p.dir {
                // Other tools' files may still be inside: the directory stays
                // for them, as a prefix stays in S3. A file there is another
                // key's, not this one's.
                match rfs::unlinkat(&dir, p.name, AtFlags::REMOVEDIR) {
                    Err(Errno::NOTEMPTY | Errno::NOTDIR) => return Ok(()),
                    r => r,
                }
            } else {
                match stat_at(&dir, p.name) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode).is_dir() => Err(Errno::ISDIR),
                    _ => rfs::unlinkat(&dir, p.name, AtFlags::empty()),
                }
            };
            match r {
                Ok(()) => dir.sync_all().map_err(io(key)),
                Err(Errno::NOENT) => Ok(()),
                Err(e) => Err(errno(key)(e)),
            }
        })
    }

    /// Large files with a few changed ranges are patched in place.
    fn writes_ranges(&self) -> bool {
        true
    }

    fn enforces_conditions(&self) -> bool {
        true
    }
}
