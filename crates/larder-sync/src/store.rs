//! The object-store interface the mirror writes through, small enough for
//! S3, a local directory and an in-memory store with faults to implement.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

/// User metadata of an object, keys without the `x-amz-meta-` prefix.
pub type Metadata = BTreeMap<String, String>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// Changes whenever the object does; what conditional writes compare.
    pub etag: String,
    pub meta: Metadata,
}

/// An object as a listing names it, before its user metadata is known
/// (S3 listings leave that out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub etag: String,
    /// When it was last written, by the store's clock, if the listing
    /// says (S3 gives whole seconds).
    pub modified: Option<std::time::SystemTime>,
}

/// A precondition on a write or delete, so another writer's version is
/// never replaced unseen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cond {
    None,
    /// Only if the object exists with this ETag (`If-Match`).
    IfMatch(String),
    /// Only if no object exists at the key (`If-None-Match: *`).
    IfNoneMatch,
}

impl Cond {
    /// Whether the condition holds when the object's ETag is `current`
    /// (`None`: no object).
    pub fn holds(&self, current: Option<&str>) -> bool {
        match self {
            Cond::None => true,
            Cond::IfMatch(etag) => current == Some(etag.as_str()),
            Cond::IfNoneMatch => current.is_none(),
        }
    }

    /// [`Cond::holds`] as the conflict error stores give for `key`.
    pub fn check(&self, key: &str, current: Option<&str>) -> Result<()> {
        if self.holds(current) {
            Ok(())
        } else {
            Err(StoreError::at(
                ErrorKind::Conflict,
                key,
                "changed by another writer",
            ))
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    /// A precondition failed: someone else wrote the object.
    Conflict,
    /// Worth retrying: timeouts, 5xx, throttling, dropped connections.
    Transient,
    /// Not worth retrying: bad credentials, a missing bucket, bad input.
    Permanent,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError {
    /// For the code that decides whether to retry.
    pub kind: ErrorKind,
    /// The object (or prefix) the request was about, if it was about one.
    pub key: Option<String>,
    /// What went wrong.
    pub message: String,
}

impl StoreError {
    /// An error about no object in particular (the store, credentials).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> StoreError {
        StoreError {
            kind,
            key: None,
            message: message.into(),
        }
    }

    /// An error about the object at `key`.
    pub fn at(kind: ErrorKind, key: &str, message: impl Into<String>) -> StoreError {
        StoreError {
            kind,
            key: Some(key.to_string()),
            message: message.into(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{key}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for StoreError {}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A piece of an object being rewritten from its current version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// These bytes of the current object, unchanged (a server-side copy).
    Keep(Range<u64>),
    /// New bytes.
    Data(Vec<u8>),
}

/// Where an upload's new bytes are read from, a piece at a time as they
/// are sent, so a large file is never held whole.
pub trait Source: Send + Sync {
    /// Fills all of `buf` with the bytes at `offset` (holes read as zeros).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;
    /// The ranges of `range` that may hold data, sorted; the rest are
    /// holes, which a store that can may leave unwritten.
    fn data_in(&self, range: Range<u64>) -> Result<Vec<Range<u64>>>;
}

/// A piece of an object written from a [`Source`], at the same offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// These bytes of the current object, unchanged.
    Keep(Range<u64>),
    /// These bytes of the source.
    New(Range<u64>),
}

impl Piece {
    /// The offsets it covers, kept or new.
    pub fn range(&self) -> &Range<u64> {
        let (Piece::Keep(r) | Piece::New(r)) = self;
        r
    }
}

/// The length of the object `pieces` (contiguous from 0) make.
pub fn pieces_len(pieces: &[Piece]) -> u64 {
    pieces.last().map_or(0, |p| p.range().end)
}

/// The bytes of `pieces` that are new (sent, not kept).
pub fn new_bytes(pieces: &[Piece]) -> u64 {
    pieces
        .iter()
        .map(|p| match p {
            Piece::New(r) => r.end - r.start,
            Piece::Keep(_) => 0,
        })
        .sum()
}

/// `bytes` as an in-memory buffer, or the error saying it cannot be.
pub fn buffer(key: &str, bytes: u64) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    usize::try_from(bytes)
        .ok()
        .and_then(|n| buf.try_reserve_exact(n).ok().map(|()| n))
        .map(|n| {
            buf.resize(n, 0);
            buf
        })
        .ok_or_else(|| {
            StoreError::at(
                ErrorKind::Permanent,
                key,
                format!("{bytes} bytes do not fit in memory"),
            )
        })
}

/// [`ObjectStore::put_from`] by holding the new bytes in memory.
pub fn put_from_memory<S: ObjectStore + ?Sized>(
    store: &S,
    key: &str,
    pieces: &[Piece],
    source: &std::sync::Arc<dyn Source>,
    meta: &Metadata,
    cond: &Cond,
) -> Result<String> {
    let mut parts = Vec::with_capacity(pieces.len());
    for p in pieces {
        parts.push(match p {
            Piece::Keep(r) => Part::Keep(r.clone()),
            Piece::New(r) => {
                let mut buf = buffer(key, r.end - r.start)?;
                source.read_at(r.start, &mut buf)?;
                Part::Data(buf)
            }
        });
    }
    match &parts[..] {
        [Part::Data(all)] => store.put(key, all, meta, cond),
        [] => store.put(key, &[], meta, cond),
        _ => store.put_parts(key, &parts, meta, cond),
    }
}

/// Whether `key` is a relative path of names (`a/b`, or `a/b/` for a
/// directory marker): no empty, `.` or `..` names, no leading `/`, no NUL.
/// Only such keys are paths beneath a store's root or a prefix; a local
/// directory or a server normalising dot segments would put others
/// elsewhere.
pub fn is_relative_key(key: &str) -> bool {
    let body = key.strip_suffix('/').unwrap_or(key);
    !body.is_empty()
        && !body.contains('\0')
        && body
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Called with (done, total) during long operations.
pub type Progress<'a> = dyn Fn(u64, u64) + Send + Sync + 'a;

/// Flat keys, `/` as separator by convention, as in S3.
pub trait ObjectStore: Send + Sync {
    /// Every object whose key starts with `prefix`, in key order.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;
    /// `list`, calling `progress(done, total)` as objects' metadata comes
    /// in, for stores where that takes a request per object.
    fn list_reporting(&self, prefix: &str, progress: &Progress<'_>) -> Result<Vec<ObjectInfo>> {
        let all = self.list(prefix)?;
        progress(all.len() as u64, all.len() as u64);
        Ok(all)
    }
    /// Whether [`ObjectStore::list`] has each object's metadata at no
    /// extra cost (a local directory). If not (S3: a HEAD per object), the
    /// mirror keeps an index and lists with [`ObjectStore::list_keys`].
    fn lists_metadata(&self) -> bool {
        true
    }
    /// Whether rewriting a few ranges of an object costs about those
    /// ranges (a local directory rewrites them in place). The mirror then
    /// sends a changed file as the ranges written since its last upload,
    /// whatever its size, instead of whole or in `PART`-sized pieces.
    fn writes_ranges(&self) -> bool {
        false
    }
    /// Every object under `prefix`, in key order, without user metadata:
    /// a request per 1,000 keys on S3.
    fn list_keys(&self, prefix: &str) -> Result<Vec<Listed>> {
        Ok(self
            .list(prefix)?
            .into_iter()
            .map(|o| Listed {
                key: o.key,
                size: o.size,
                etag: o.etag,
                modified: None,
            })
            .collect())
    }
    /// The metadata of each of `keys` (those gone are left out), in key
    /// order, calling `progress(done, total)`: many at once where the
    /// store can.
    fn head_many(&self, keys: Vec<String>, progress: &Progress<'_>) -> Result<Vec<ObjectInfo>> {
        let total = keys.len() as u64;
        let mut out = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            out.extend(self.head(k)?);
            progress(i as u64 + 1, total);
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
    fn head(&self, key: &str) -> Result<Option<ObjectInfo>>;
    /// The object's bytes, or those in `range` (clamped to its size), from
    /// the version `cond` names (`IfMatch`: a Conflict if it changed, so
    /// ranges read at different times never mix two versions).
    fn get(&self, key: &str, range: Option<Range<u64>>, cond: &Cond) -> Result<Vec<u8>>;
    /// Writes the whole object atomically (readers see old or new, never a
    /// mix) and durably; returns the new ETag.
    fn put(&self, key: &str, body: &[u8], meta: &Metadata, cond: &Cond) -> Result<String>;
    /// Rewrites `key` as the concatenation of `parts`, kept ranges taken
    /// from its current version (which `cond` names), like `put`. Stores
    /// with server-side part copies send only the new bytes.
    fn put_parts(&self, key: &str, parts: &[Part], meta: &Metadata, cond: &Cond) -> Result<String> {
        let mut body = Vec::new();
        for p in parts {
            match p {
                Part::Keep(r) => body.extend(self.get(key, Some(r.clone()), cond)?),
                Part::Data(d) => body.extend_from_slice(d),
            }
        }
        self.put(key, &body, meta, cond)
    }
    /// Writes `key` from `pieces` (contiguous from offset 0), new bytes
    /// read from `source` as they are sent, like `put_parts`. Stores that
    /// can stream override this; the default holds the new bytes in memory
    /// (failing, not aborting, when they do not fit).
    fn put_from(
        &self,
        key: &str,
        pieces: &[Piece],
        source: &std::sync::Arc<dyn Source>,
        meta: &Metadata,
        cond: &Cond,
    ) -> Result<String> {
        put_from_memory(self, key, pieces, source, meta, cond)
    }
    /// Server-side copy of `from` to `to` with `meta`; returns the new ETag.
    fn copy(&self, from: &str, to: &str, meta: &Metadata, cond: &Cond) -> Result<String>;
    /// Deleting what is not there succeeds.
    fn delete(&self, key: &str) -> Result<()>;
    /// Whether `put`/`put_parts`/`copy` enforce [`Cond`] themselves (the
    /// server, or the store checking the ETag just before where the server
    /// does not); the mirror checks ETags with `head` first when not.
    fn enforces_conditions(&self) -> bool;
}
