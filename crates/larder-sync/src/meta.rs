//! Object metadata in s3fs's convention, so s3fs, rclone and the AWS CLI
//! read the mirror's modes and times: `mode` (decimal, with the file-type
//! bits), `mtime` (whole seconds), `uid`, `gid`; plus Larder's own
//! `larder-mtime-ns` for the nanoseconds s3fs has no field for.

use crate::store::{Metadata, ObjectInfo};

pub use fs_core::mode::{S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attrs {
    /// With the file-type bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_secs: u64,
    pub mtime_nanos: u32,
}

pub fn encode(mode: u32, uid: u32, gid: u32, mtime_secs: u64, mtime_nanos: u32) -> Metadata {
    let mut m = Metadata::new();
    m.insert("mode".into(), mode.to_string());
    m.insert("uid".into(), uid.to_string());
    m.insert("gid".into(), gid.to_string());
    m.insert("mtime".into(), mtime_secs.to_string());
    m.insert("larder-mtime-ns".into(), mtime_nanos.to_string());
    m
}

pub fn encode_attrs(a: &Attrs) -> Metadata {
    encode(a.mode, a.uid, a.gid, a.mtime_secs, a.mtime_nanos)
}

/// What `meta` says, with defaults for what other tools leave out: a
/// regular file 0644 (a `dir/` key is a directory whatever its mode says),
/// owner 0, mtime 0.
pub fn decode(meta: &Metadata) -> Attrs {
    let num = |k: &str| meta.get(k).and_then(|v| v.trim().parse::<u64>().ok());
    // s3fs sometimes writes mtime with a fraction; keep the whole seconds.
    let secs = meta
        .get("mtime")
        .and_then(|v| v.split('.').next()?.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let mut mode = num("mode").map_or(S_IFREG | 0o644, |m| m as u32);
    if mode & S_IFMT == 0 {
        mode |= S_IFREG;
    }
    Attrs {
        mode,
        uid: num("uid").unwrap_or(0) as u32,
        gid: num("gid").unwrap_or(0) as u32,
        mtime_secs: secs,
        mtime_nanos: num("larder-mtime-ns")
            .filter(|&n| n < 1_000_000_000)
            .unwrap_or(0) as u32,
    }
}

/// What an object stands for in the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

/// The key of the object for `path` (relative) of `kind` under `prefix`:
/// the path itself, a directory's with a `/` (its marker object). The
/// layout every view of a store shares; [`object_path`] reads it back.
pub fn object_key(prefix: &str, path: &str, kind: Kind) -> String {
    match kind {
        Kind::Dir => format!("{prefix}{path}/"),
        _ => format!("{prefix}{path}"),
    }
}

/// The path (relative, past `prefix`) and kind of object `o`, as every
/// view of a store sees it (a restore, a poll, `larder ls`, `larder
/// export`). `.larder` and what is under it are Larder's own (the index):
/// `None`. A key that cannot be a path here (`a//b`, a `.` or `..`
/// component, a name over 255 bytes) is `None`, with a warning naming it,
/// so all of them skip the same objects alike.
pub fn object_path<'a>(prefix: &str, o: &'a ObjectInfo) -> Option<(&'a str, Kind)> {
    let rel = o.key.strip_prefix(prefix)?;
    // Larder's own index, not a file of the tree.
    if crate::index::reserved(rel.trim_end_matches('/')) {
        return None;
    }
    let mode = decode(&o.meta).mode;
    let (path, kind) = match rel.strip_suffix('/') {
        Some(p) => (p, Kind::Dir),
        None if mode & S_IFMT == S_IFDIR => (rel, Kind::Dir),
        None if mode & S_IFMT == S_IFLNK => (rel, Kind::Symlink),
        None => (rel, Kind::File),
    };
    if !valid_path(path) {
        if !path.is_empty() {
            tracing::warn!(
                "skipped {}: the key is not a usable path (an empty, `.` or `..` \
                 component, or a name over 255 bytes)",
                o.key
            );
        }
        return None;
    }
    Some((path, kind))
}

/// A key (past the prefix) that names a path: components neither empty
/// nor `.`/`..`, at most 255 bytes each, no NUL.
pub(crate) fn valid_path(path: &str) -> bool {
    !path.ends_with('/')
        && crate::store::is_relative_key(path)
        && path.split('/').all(|c| c.len() <= 255)
}
