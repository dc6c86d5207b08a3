//! The persistent builds: the filesystem is restored from a store and
//! mirrored back to it by the sync engine, on fsync and when a written file
//! is closed, as `larder run --store` does on the host. The store is the
//! one the host lends (`larder:vfs/store`, feature `persist`) or S3 reached
//! over `wasi:http` (feature `persist-s3`, bucket named by the bundle).

use crate::exports::larder::vfs::persist;
use crate::exports::wasi::cli::exit as exit_exp;
use crate::wasi::cli::exit as host_exit;
use crate::Adapter;
use fs_core::Fs;
use larder_sync::{Mirror, MirrorHook, ObjectStore};
use std::sync::{Arc, OnceLock};

/// The mirror and its filesystem, once restored (the first time the app
/// touches a file); the last sync has nothing to do before that.
static MIRRORED: OnceLock<(Arc<Mirror>, Fs)> = OnceLock::new();

#[cfg(feature = "persist")]
use lent::Lent;

#[cfg(feature = "persist")]
mod lent {
    use crate::larder::vfs::store as host;
    use larder_sync::store::{Part, Result};
    use larder_sync::{Cond, ErrorKind, Metadata, ObjectInfo, ObjectStore, StoreError};
    use std::ops::Range;

    /// The host's store, seen through the sync engine's interface.
    pub struct Lent;

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
}

/// The store and the key prefix the filesystem lives under. The host's
/// store is already at its prefix.
#[cfg(feature = "persist")]
fn store() -> Result<(Arc<dyn ObjectStore>, String), String> {
    Ok((Arc::new(Lent), String::new()))
}

#[cfg(feature = "persist-s3")]
fn store() -> Result<(Arc<dyn ObjectStore>, String), String> {
    use larder_sync::s3::{S3Config, S3Store};
    let url = crate::larder::vfs::bundle::store();
    let config = S3Config::from_url(&url).map_err(|e| format!("{url}: {e}"))?;
    let s3 = S3Store::open(&config).map_err(|e| format!("{url}: {e}"))?;
    Ok((Arc::new(s3), config.prefix))
}

/// Restores what the store holds into `fs` (over the bundle: the store's
/// version of a file wins) and mirrors every later change back to it.
/// `read_only` subtrees (bundled read-only mounts) are not mirrored.
pub fn attach(fs: &Fs, read_only: &[String]) -> Result<(), String> {
    let (store, prefix) = store()?;
    let mirror = Mirror::restore(store, &prefix, fs).map_err(|e| e.to_string())?;
    let mirror = read_only
        .iter()
        .fold(mirror, |m, path| m.exclude(path.trim_start_matches('/')));
    let mirror = Arc::new(mirror);
    fs.set_sync_hook(Arc::new(MirrorHook {
        mirror: mirror.clone(),
        on_close: true,
        write_through: false,
    }));
    let _ = MIRRORED.set((mirror, fs.clone()));
    Ok(())
}

/// The last sync: what fsync and close have not sent yet (changes to
/// files still open, directories made, names removed or renamed).
fn flush() -> Result<(), ()> {
    let Some((mirror, fs)) = MIRRORED.get() else {
        return Ok(());
    };
    mirror.sync(fs).map(|_| ()).map_err(|e| {
        eprintln!("larder: the app's last changes are not in the store: {e}");
    })
}

impl persist::Guest for Adapter {
    fn flush() -> Result<(), ()> {
        flush()
    }
}

/// An app ending itself (`std::process::exit`) ends here first: the
/// status turns to failure if its files could not be saved.
impl exit_exp::Guest for Adapter {
    fn exit(status: Result<(), ()>) {
        let saved = flush();
        host_exit::exit(status.and(saved));
    }

    /// Unstable in WASI 0.2 and off in hosts by default: calling the
    /// host's would make every composed app import it, so the code is
    /// passed on as success or failure.
    fn exit_with_code(code: u8) {
        let saved = flush();
        host_exit::exit(if code == 0 { saved } else { Err(()) });
    }
}
