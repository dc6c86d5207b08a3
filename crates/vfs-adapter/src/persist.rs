//! The persistent builds' store and last sync. The filesystem is restored
//! from the store and mirrored back to it on fsync and when a written file
//! is closed, as `larder run --store` does on the host; larder-volume sets
//! that up (crate::state). The store is the one the host lends
//! (`larder:vfs/store`, feature `persist`) or S3 reached over `wasi:http`
//! (feature `persist-s3`, bucket named by the bundle).

use crate::exports::larder::vfs::persist;
use crate::exports::wasi::cli::exit as exit_exp;
use crate::wasi::cli::exit as host_exit;
use crate::Adapter;
use larder_sync::ObjectStore;
use std::sync::Arc;

#[cfg(feature = "persist")]
use lent::Lent;

#[cfg(feature = "persist")]
mod lent {
    use crate::larder::vfs::store as host;
    use larder_sync::store::{buffer, put_from_memory, Part, Piece, Result, Source};
    use larder_sync::{
        Cond, ErrorKind, Listed, Metadata, ObjectInfo, ObjectStore, Progress, StoreError,
    };
    use std::ops::Range;
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    /// New bytes up to this cross in one `put`; more, or a rewrite that
    /// keeps pieces of the stored version, go through an `upload` this much
    /// at a time, so neither side holds a large file's bytes (or a sparse
    /// file's holes) whole.
    const CHUNK: u64 = 1 << 20;

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

    fn listed(l: host::Listed) -> Listed {
        Listed {
            key: l.key,
            size: l.size,
            etag: l.etag,
            modified: l.modified.map(|(s, n)| UNIX_EPOCH + Duration::new(s, n)),
        }
    }

    impl ObjectStore for Lent {
        fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
            Ok(host::list(prefix)
                .map_err(error)?
                .into_iter()
                .map(info)
                .collect())
        }
        fn lists_metadata(&self) -> bool {
            host::lists_metadata()
        }
        fn list_keys(&self, prefix: &str) -> Result<Vec<Listed>> {
            Ok(host::list_keys(prefix)
                .map_err(error)?
                .into_iter()
                .map(listed)
                .collect())
        }
        fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
            Ok(host::head(key).map_err(error)?.map(info))
        }
        fn head_many(&self, keys: Vec<String>, progress: &Progress<'_>) -> Result<Vec<ObjectInfo>> {
            let total = keys.len() as u64;
            let mut all: Vec<ObjectInfo> = host::head_many(&keys)
                .map_err(error)?
                .into_iter()
                .map(info)
                .collect();
            all.sort_by(|a, b| a.key.cmp(&b.key));
            progress(total, total);
            Ok(all)
        }
        fn writes_ranges(&self) -> bool {
            host::writes_ranges()
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
        fn put_from(
            &self,
            key: &str,
            pieces: &[Piece],
            source: &Arc<dyn Source>,
            m: &Metadata,
            c: &Cond,
        ) -> Result<String> {
            // A small file without kept pieces crosses in one call.
            let small = |p: &Piece| matches!(p, Piece::New(r) if r.end - r.start <= CHUNK);
            if pieces.len() <= 1 && pieces.iter().all(small) {
                return put_from_memory(self, key, pieces, source, m, c);
            }
            let size = pieces
                .last()
                .map_or(0, |(Piece::Keep(r) | Piece::New(r))| r.end);
            let upload = host::Upload::new(key, size);
            let mut buf = buffer(key, CHUNK)?;
            for p in pieces {
                match p {
                    Piece::Keep(r) => upload.keep(r.start, r.end).map_err(error)?,
                    // Only the data: holes are left out, and read as zeros.
                    Piece::New(r) => {
                        for d in source.data_in(r.clone())? {
                            let mut at = d.start;
                            while at < d.end {
                                let chunk = &mut buf[..(d.end - at).min(CHUNK) as usize];
                                source.read_at(at, chunk)?;
                                upload.write(at, chunk).map_err(error)?;
                                at += chunk.len() as u64;
                            }
                        }
                    }
                }
            }
            upload.finish(&meta(m), &cond(c)).map_err(error)
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
pub fn store() -> Result<(Arc<dyn ObjectStore>, String), String> {
    Ok((Arc::new(Lent), String::new()))
}

#[cfg(feature = "persist-s3")]
pub fn store() -> Result<(Arc<dyn ObjectStore>, String), String> {
    use larder_sync::s3::{S3Config, S3Store};
    let url = crate::larder::vfs::bundle::store();
    let config = S3Config::from_url(&url).map_err(|e| format!("{url}: {e}"))?;
    let s3 = S3Store::open(&config).map_err(|e| format!("{url}: {e}"))?;
    Ok((Arc::new(s3), config.prefix))
}

/// The last sync: what fsync and close have not sent yet (changes to
/// files still open, directories made, names removed or renamed).
fn flush() -> Result<(), ()> {
    let Some(volume) = crate::state::built() else {
        return Ok(());
    };
    volume.sync().map(|_| ()).map_err(|e| {
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
