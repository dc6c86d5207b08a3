//! The persistent build: the filesystem is restored from the store the host
//! lends (`larder:vfs/store`) and mirrored back to it by the sync engine,
//! on fsync and when a written file is closed, as `larder run --store`
//! does on the host.

use crate::larder::vfs::store as host;
use fs_core::Fs;
use larder_sync::store::{Part, Result};
use larder_sync::{
    Cond, ErrorKind, Metadata, Mirror, MirrorHook, ObjectInfo, ObjectStore, StoreError,
};
use std::ops::Range;
use std::sync::Arc;

/// The host's store, seen through the sync engine's interface.
struct Lent;

fn cond(c: &Cond) -> host::Condition {
    match c {
        Cond::None => host::Condition::None,
        Cond::IfMatch(etag) => host::Condition::IfMatch(etag.clone()),
        Cond::IfNoneMatch => host::Condition::IfNoneMatch,
    }
}

fn meta(m: &Metadata) -> Vec<(String, String)> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn info(i: host::ObjectInfo) -> ObjectInfo {
    ObjectInfo {
        key: i.key,
        size: i.size,
        etag: i.etag,
        meta: i.meta.into_iter().collect(),
    }
}

fn error(e: host::Error) -> StoreError {
    let (kind, message) = match e {
        host::Error::NotFound(m) => (ErrorKind::NotFound, m),
        host::Error::Conflict(m) => (ErrorKind::Conflict, m),
        host::Error::Transient(m) => (ErrorKind::Transient, m),
        host::Error::Permanent(m) => (ErrorKind::Permanent, m),
    };
    StoreError::new(kind, message)
}

impl ObjectStore for Lent {
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        Ok(host::list(prefix)
            .map_err(error)?
            .into_iter()
            .map(info)
            .collect())
    }
    fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        Ok(host::head(key).map_err(error)?.map(info))
    }
    fn get(&self, key: &str, range: Option<Range<u64>>, c: &Cond) -> Result<Vec<u8>> {
        host::get(key, range.map(|r| (r.start, r.end)), &cond(c)).map_err(error)
    }
    fn put(&self, key: &str, body: &[u8], m: &Metadata, c: &Cond) -> Result<String> {
        host::put(key, body, &meta(m), &cond(c)).map_err(error)
    }
    fn put_parts(&self, key: &str, parts: &[Part], m: &Metadata, c: &Cond) -> Result<String> {
        let parts: Vec<host::Part> = parts
            .iter()
            .map(|p| match p {
                Part::Keep(r) => host::Part::Keep((r.start, r.end)),
                Part::Data(d) => host::Part::Data(d.clone()),
            })
            .collect();
        host::put_parts(key, &parts, &meta(m), &cond(c)).map_err(error)
    }
    fn copy(&self, from: &str, to: &str, m: &Metadata, c: &Cond) -> Result<String> {
        host::copy(from, to, &meta(m), &cond(c)).map_err(error)
    }
    fn delete(&self, key: &str) -> Result<()> {
        host::delete(key).map_err(error)
    }
    fn enforces_conditions(&self) -> bool {
        host::enforces_conditions()
    }
}

/// Restores what the store holds into `fs` (over the bundle: the store's
/// version of a file wins) and mirrors every later change back to it.
/// `read_only` subtrees (bundled read-only mounts) are not mirrored.
pub fn attach(fs: &Fs, read_only: &[String]) -> std::result::Result<(), String> {
    let mirror = Mirror::restore(Arc::new(Lent), "", fs).map_err(|e| e.to_string())?;
    let mirror = read_only
        .iter()
        .fold(mirror, |m, path| m.exclude(path.trim_start_matches('/')));
    fs.set_sync_hook(Arc::new(MirrorHook {
        mirror: Arc::new(mirror),
        on_close: true,
        write_through: false,
    }));
    Ok(())
}
