//! A local directory as the store, in the same 1:1 layout: objects are
//! plain files, `dir/` markers are directories, symlink objects are
//! symlinks, and the metadata is the files' own (mode, owner, mtime), so
//! any tool can read the mirror. Writes go to a temporary file that is
//! renamed into place and fsync'd with its directory: a reader sees the old
//! or the new file, never a torn one, and a put that returned survives a
//! crash.

use crate::meta::{self, S_IFLNK, S_IFMT};
use crate::store::{Cond, ErrorKind, Metadata, ObjectInfo, ObjectStore, Result, StoreError};
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Names of files being written; never listed.
const TMP_PREFIX: &str = ".larder-tmp-";

pub struct LocalDir {
    root: PathBuf,
    /// Makes a condition check and the write after it one step for the
    /// writers in this process (other processes: see the README).
    lock: Mutex<()>,
    seq: AtomicU64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |e| {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut => ErrorKind::Transient,
            _ => ErrorKind::Permanent,
        };
        StoreError::new(kind, format!("{}: {e}", path.display()))
    }
}

impl LocalDir {
    /// A store rooted at `root`, created if missing.
    pub fn open(root: impl Into<PathBuf>) -> Result<LocalDir> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(io(&root))?;
        remove_stale_temps(&root);
        Ok(LocalDir {
            root,
            lock: Mutex::new(()),
            seq: AtomicU64::new(0),
        })
    }

    /// The host path of `key` (trailing `/` dropped); refuses keys that
    /// would leave the root.
    fn path(&self, key: &str) -> Result<PathBuf> {
        let rel = key.strip_suffix('/').unwrap_or(key);
        let bad = rel.is_empty()
            || rel.starts_with('/')
            || rel
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == ".." || c.starts_with(TMP_PREFIX));
        if bad {
            return Err(StoreError::new(
                ErrorKind::Permanent,
                format!("key {key:?} cannot be a path under the store"),
            ));
        }
        Ok(self.root.join(rel))
    }

    fn info(&self, key: String, path: &Path) -> Result<Option<ObjectInfo>> {
        let m = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(path)(e)),
        };
        let is_dir_key = key.ends_with('/');
        if is_dir_key != m.is_dir() {
            return Ok(None);
        }
        let size = if m.is_file() {
            m.len()
        } else if m.file_type().is_symlink() {
            fs::read_link(path).map_err(io(path))?.as_os_str().len() as u64
        } else {
            0
        };
        let mode = if m.file_type().is_symlink() {
            S_IFLNK | 0o777
        } else {
            m.mode()
        };
        let meta = meta::encode(
            mode,
            m.uid(),
            m.gid(),
            m.mtime().max(0) as u64,
            m.mtime_nsec() as u32,
        );
        Ok(Some(ObjectInfo {
            key,
            size,
            etag: etag(&m, size),
            meta,
        }))
    }

    fn walk(&self, dir: &Path, rel: &str, out: &mut Vec<ObjectInfo>) -> Result<()> {
        for entry in fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(TMP_PREFIX) {
                continue;
            }
            let key = format!("{rel}{name}");
            let path = entry.path();
            let is_dir = entry.file_type().map_err(io(&path))?.is_dir();
            if is_dir {
                if let Some(i) = self.info(format!("{key}/"), &path)? {
                    out.push(i);
                }
                self.walk(&path, &format!("{key}/"), out)?;
            } else if let Some(i) = self.info(key, &path)? {
                out.push(i);
            }
        }
        Ok(())
    }

    fn check(&self, key: &str, cond: &Cond) -> Result<()> {
        let current = self.head(key)?;
        cond.check(key, current.as_ref().map(|c| c.etag.as_str()))
    }

    fn temp(&self, dir: &Path) -> PathBuf {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        dir.join(format!("{TMP_PREFIX}{}-{n}", std::process::id()))
    }

    /// Mode, owner (when permitted) and mtime of `path` from `meta`.
    fn apply(path: &Path, meta: &Metadata) -> Result<()> {
        let m = meta::decode(meta);
        fs::set_permissions(path, fs::Permissions::from_mode(m.mode & 0o7777)).map_err(io(path))?;
        // Only root may give files away; elsewhere the owner is the user's.
        let _ = std::os::unix::fs::chown(path, Some(m.uid), Some(m.gid));
        let t = SystemTime::UNIX_EPOCH + Duration::new(m.mtime_secs, m.mtime_nanos);
        File::open(path)
            .and_then(|f| f.set_modified(t))
            .map_err(io(path))
    }
}

/// Deletes temporary files whose writer is gone (killed mid-put); those
/// of live processes (named by PID) are left to finish.
fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if let Some(rest) = name.strip_prefix(TMP_PREFIX) {
            let pid = rest.split('-').next().unwrap_or("");
            let alive = !pid.is_empty() && Path::new("/proc").join(pid).exists();
            if !alive {
                tracing::debug!(path = %path.display(), "removing a torn write's temporary file");
                let _ = fs::remove_file(&path);
            }
        } else if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_stale_temps(&path);
        }
    }
}

/// Runs `f`, then puts `dir`'s mtime back: the mirror sets directories'
/// times from their markers, and adding or removing a child must not move
/// them afterwards.
fn keeping_mtime<T>(dir: &Path, root: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let before = (dir != root)
        .then(|| fs::metadata(dir).and_then(|m| m.modified()).ok())
        .flatten();
    let r = f()?;
    if let Some(t) = before {
        File::open(dir)
            .and_then(|d| d.set_modified(t))
            .map_err(io(dir))?;
    }
    Ok(r)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

impl ObjectStore for LocalDir {
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        self.walk(&self.root, "", &mut out)?;
        out.retain(|o| o.key.starts_with(prefix));
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let path = self.path(key)?;
        self.info(key.to_string(), &path)
    }

    fn get(&self, key: &str, range: Option<Range<u64>>, cond: &Cond) -> Result<Vec<u8>> {
        let path = self.path(key)?;
        let m = fs::symlink_metadata(&path).map_err(io(&path))?;
        let all = if m.file_type().is_symlink() {
            let target = fs::read_link(&path)
                .map_err(io(&path))?
                .into_os_string()
                .into_encoded_bytes();
            cond.check(key, Some(&etag(&m, target.len() as u64)))?;
            target
        } else if m.is_file() {
            // The version is that of the file opened: replacements are
            // renames, so what is read below is all of one version.
            let mut f = File::open(&path).map_err(io(&path))?;
            let m = f.metadata().map_err(io(&path))?;
            cond.check(key, Some(&etag(&m, m.len())))?;
            let r = range.unwrap_or(0..m.len());
            let (start, end) = (r.start.min(m.len()), r.end.min(m.len()));
            let mut buf = vec![0; end.saturating_sub(start) as usize];
            f.seek(SeekFrom::Start(start)).map_err(io(&path))?;
            f.read_exact(&mut buf).map_err(io(&path))?;
            return Ok(buf);
        } else {
            Vec::new()
        };
        let len = all.len() as u64;
        let r = range.unwrap_or(0..len);
        Ok(all[r.start.min(len) as usize..r.end.min(len).max(r.start.min(len)) as usize].to_vec())
    }

    fn put(&self, key: &str, body: &[u8], meta: &Metadata, cond: &Cond) -> Result<String> {
        let path = self.path(key)?;
        let parent = path.parent().expect("under the root").to_path_buf();
        let _g = self.lock.lock().unwrap();
        self.check(key, cond)?;
        fs::create_dir_all(&parent).map_err(io(&parent))?;
        if key.ends_with('/') {
            keeping_mtime(&parent, &self.root, || match fs::create_dir(&path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
                Err(e) => Err(io(&path)(e)),
            })?;
            LocalDir::apply(&path, meta)?;
        } else {
            // A directory left where the file goes (a kind change) must be
            // empty: its objects were deleted first.
            if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                fs::remove_dir(&path).map_err(io(&path))?;
            }
            keeping_mtime(&parent, &self.root, || {
                let tmp = self.temp(&parent);
                if meta::decode(meta).mode & S_IFMT == S_IFLNK {
                    let target = String::from_utf8_lossy(body).into_owned();
                    std::os::unix::fs::symlink(target, &tmp).map_err(io(&tmp))?;
                } else {
                    let mut f = File::create(&tmp).map_err(io(&tmp))?;
                    f.write_all(body).map_err(io(&tmp))?;
                    LocalDir::apply(&tmp, meta)?;
                    f.sync_all().map_err(io(&tmp))?;
                }
                fs::rename(&tmp, &path).map_err(|e| {
                    let _ = fs::remove_file(&tmp);
                    io(&path)(e)
                })
            })?;
        }
        sync_dir(&parent)?;
        let info = self.head(key)?;
        info.map(|i| i.etag)
            .ok_or_else(|| StoreError::new(ErrorKind::Transient, format!("{key} vanished")))
    }

    fn copy(&self, from: &str, to: &str, meta: &Metadata, cond: &Cond) -> Result<String> {
        let body = self.get(from, None, &Cond::None)?;
        self.put(to, &body, meta, cond)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        let parent = path.parent().expect("under the root").to_path_buf();
        let _g = self.lock.lock().unwrap();
        keeping_mtime(&parent, &self.root, || self.remove(key, &path))
    }

    fn enforces_conditions(&self) -> bool {
        true
    }
}

impl LocalDir {
    fn remove(&self, key: &str, path: &Path) -> Result<()> {
        let r = if key.ends_with('/') {
            // Other tools' files may still be inside: the directory stays
            // for them, as a prefix stays in S3.
            match fs::remove_dir(path) {
                Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => Ok(()),
                r => r,
            }
        } else {
            fs::remove_file(path)
        };
        match r {
            Ok(()) => sync_dir(path.parent().expect("under the root")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(path)(e)),
        }
    }
}

/// A version tag that changes whenever the file is replaced (new inode) or
/// rewritten in place by another tool (size, mtime).
fn etag(m: &fs::Metadata, size: u64) -> String {
    format!(
        "\"{:x}-{:x}-{:x}.{}\"",
        m.ino(),
        size,
        m.mtime(),
        m.mtime_nsec()
    )
}
