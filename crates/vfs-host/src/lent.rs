//! `larder:vfs/store` for composed apps whose adapter keeps its own
//! filesystem persistent (`larder compose --persist host`): the host lends
//! one of its object stores, scoped to a prefix. The app's files never
//! touch the shared [`Vfs`](crate::Vfs) tree; only the store is shared.

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "larder:vfs/store-host",
        imports: { default: trappable },
        with: { "larder:vfs/store.upload": super::Upload },
        require_store_data_send: true,
    });
}

pub(crate) use bindings::larder::vfs::store::add_to_linker;
use bindings::larder::vfs::store::{Condition, Error, Host, HostUpload, Listed, ObjectInfo, Part};
use larder_sync::spool::Spool;
use larder_sync::store::{is_relative_key, Part as SyncPart};
use larder_sync::{Cond, ErrorKind, Metadata, ObjectStore, StoreError};
use std::sync::Arc;
use wasmtime::component::Resource;

/// A store lent to composed apps, their keys under `prefix`.
#[derive(Clone)]
pub struct LentStore {
    store: Arc<dyn ObjectStore>,
    prefix: String,
}

impl LentStore {
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> LentStore {
        let mut prefix = prefix.trim_start_matches('/').to_string();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        LentStore { store, prefix }
    }

    /// The store key for the app's `key`, confined to the prefix: keys
    /// that are not relative paths of names are refused (the mirror never
    /// makes them).
    fn key(&self, key: &str) -> Result<String, Error> {
        // "": the whole prefix (a listing of everything).
        if !key.is_empty() && !is_relative_key(key) {
            return Err(Error::Permanent(format!(
                "key {key:?} is not a relative path of names"
            )));
        }
        Ok(format!("{}{key}", self.prefix))
    }

    /// `o` as the app sees it: its key relative to the prefix.
    fn info(&self, o: larder_sync::ObjectInfo) -> ObjectInfo {
        ObjectInfo {
            key: o.key[self.prefix.len()..].to_string(),
            size: o.size,
            etag: o.etag,
            meta: o.meta.into_iter().collect(),
        }
    }
}

/// An `upload` in progress: its new bytes spool on the host, and the
/// object goes to the store at `finish`.
pub struct Upload {
    key: String,
    /// `None` once finished.
    spool: Option<Spool>,
}

impl Upload {
    fn spool(&mut self) -> Result<&mut Spool, Error> {
        self.spool.as_mut().ok_or_else(|| finished(&self.key))
    }
}

fn finished(key: &str) -> Error {
    Error::Permanent(format!("{key}: the upload is finished"))
}

fn cond(c: Condition) -> Cond {
    match c {
        Condition::None => Cond::None,
        Condition::IfMatch(etag) => Cond::IfMatch(etag),
        Condition::IfNoneMatch => Cond::IfNoneMatch,
    }
}

fn meta(m: Vec<(String, String)>) -> Metadata {
    m.into_iter().collect()
}

fn error(e: StoreError) -> Error {
    let m = e.to_string();
    match e.kind {
        ErrorKind::NotFound => Error::NotFound(m),
        ErrorKind::Conflict => Error::Conflict(m),
        ErrorKind::Transient => Error::Transient(m),
        ErrorKind::Permanent => Error::Permanent(m),
    }
}

impl crate::Ctx<'_> {
    fn lent(&self) -> Result<&LentStore, Error> {
        lent(self.vfs)
    }
}

fn lent(vfs: &crate::Vfs) -> Result<&LentStore, Error> {
    vfs.lent().ok_or_else(|| {
        Error::Permanent("no store was lent to this app (larder run --store URL)".into())
    })
}

// Every call is a store round trip, so each may leave the worker thread
// (see `crate::calls`).
impl Host for crate::Ctx<'_> {
    fn list(&mut self, prefix: String) -> wasmtime::Result<Result<Vec<ObjectInfo>, Error>> {
        Ok(self.calls.long(|| {
            let l = self.lent()?;
            let all = l.store.list(&l.key(&prefix)?).map_err(error)?;
            Ok(all.into_iter().map(|o| l.info(o)).collect())
        }))
    }

    fn lists_metadata(&mut self) -> wasmtime::Result<bool> {
        Ok(self.vfs.lent().is_none_or(|l| l.store.lists_metadata()))
    }

    fn list_keys(&mut self, prefix: String) -> wasmtime::Result<Result<Vec<Listed>, Error>> {
        Ok(self.calls.long(|| {
            let l = self.lent()?;
            let all = l.store.list_keys(&l.key(&prefix)?).map_err(error)?;
            Ok(all
                .into_iter()
                .map(|o| Listed {
                    key: o.key[l.prefix.len()..].to_string(),
                    size: o.size,
                    etag: o.etag,
                    modified: o
                        .modified
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map(|d| (d.as_secs(), d.subsec_nanos())),
                })
                .collect())
        }))
    }

    fn head_many(&mut self, keys: Vec<String>) -> wasmtime::Result<Result<Vec<ObjectInfo>, Error>> {
        Ok(self.calls.long(|| {
            let l = self.lent()?;
            let keys = keys
                .iter()
                .map(|k| l.key(k))
                .collect::<Result<Vec<_>, _>>()?;
            let all = l.store.head_many(keys, &|_, _| {}).map_err(error)?;
            Ok(all.into_iter().map(|o| l.info(o)).collect())
        }))
    }

    fn writes_ranges(&mut self) -> wasmtime::Result<bool> {
        Ok(self.vfs.lent().is_some_and(|l| l.store.writes_ranges()))
    }

    fn head(&mut self, key: String) -> wasmtime::Result<Result<Option<ObjectInfo>, Error>> {
        Ok(self.calls.long(|| {
            let l = self.lent()?;
            Ok(l.store
                .head(&l.key(&key)?)
                .map_err(error)?
                .map(|o| ObjectInfo {
                    key,
                    size: o.size,
                    etag: o.etag,
                    meta: o.meta.into_iter().collect(),
                }))
        }))
    }

    fn get(
        &mut self,
        key: String,
        range: Option<(u64, u64)>,
        c: Condition,
    ) -> wasmtime::Result<Result<Vec<u8>, Error>> {
        Ok(self.calls.long(|| {
            let l = self.lent()?;
            l.store
                .get(&l.key(&key)?, range.map(|(a, b)| a..b), &cond(c))
                .map_err(error)
        }))
    }

    fn put(
        &mut self,
        key: String,
        body: Vec<u8>,
        m: Vec<(String, String)>,
        c: Condition,
    ) -> wasmtime::Result<Result<String, Error>> {
        Ok(self.calls.long(|| {
            let l = self.lent()?;
            l.store
                .put(&l.key(&key)?, &body, &meta(m), &cond(c))
                .map_err(error)
        }))
    }

    fn put_parts(
        &mut self,
        key: String,
        parts: Vec<Part>,
        m: Vec<(String, String)>,
        c: Condition,
    ) -> wasmtime::Result<Result<String, Error>> {
        Ok(self.calls.long(|| {
            let l = self.lent()?;
            let parts: Vec<SyncPart> = parts
                .into_iter()
                .map(|p| match p {
                    Part::Keep((a, b)) => SyncPart::Keep(a..b),
                    Part::Data(d) => SyncPart::Data(d),
                })
                .collect();
            l.store
                .put_parts(&l.key(&key)?, &parts, &meta(m), &cond(c))
                .map_err(error)
        }))
    }

    fn copy(
        &mut self,
        source: String,
        destination: String,
        m: Vec<(String, String)>,
        c: Condition,
    ) -> wasmtime::Result<Result<String, Error>> {
        Ok(self.calls.long(|| {
            let l = self.lent()?;
            l.store
                .copy(&l.key(&source)?, &l.key(&destination)?, &meta(m), &cond(c))
                .map_err(error)
        }))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), Error>> {
        Ok(self.calls.long(|| {
            let l = self.lent()?;
            l.store.delete(&l.key(&key)?).map_err(error)
        }))
    }

    fn enforces_conditions(&mut self) -> wasmtime::Result<bool> {
        Ok(self
            .vfs
            .lent()
            .is_some_and(|l| l.store.enforces_conditions()))
    }
}

impl HostUpload for crate::Ctx<'_> {
    fn new(&mut self, key: String, size: u64) -> wasmtime::Result<Resource<Upload>> {
        let spool = Some(Spool::new(size));
        Ok(self.table.push(Upload { key, spool })?)
    }

    fn keep(
        &mut self,
        upload: Resource<Upload>,
        start: u64,
        end: u64,
    ) -> wasmtime::Result<Result<(), Error>> {
        let up = self.table.get_mut(&upload)?;
        Ok(up.spool().and_then(|s| s.keep(start..end).map_err(error)))
    }

    fn write(
        &mut self,
        upload: Resource<Upload>,
        offset: u64,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let up = self.table.get_mut(&upload)?;
        Ok(self.calls.long(|| {
            up.spool()
                .and_then(|s| s.write(offset, &data).map_err(error))
        }))
    }

    fn finish(
        &mut self,
        upload: Resource<Upload>,
        m: Vec<(String, String)>,
        c: Condition,
    ) -> wasmtime::Result<Result<String, Error>> {
        let (vfs, calls) = (self.vfs, self.calls);
        let up = self.table.get_mut(&upload)?;
        Ok(calls.long(|| {
            let l = lent(vfs)?;
            let key = l.key(&up.key)?;
            let spool = up.spool.take().ok_or_else(|| finished(&up.key))?;
            spool
                .finish(&*l.store, &key, &meta(m), &cond(c))
                .map_err(error)
        }))
    }

    fn drop(&mut self, upload: Resource<Upload>) -> wasmtime::Result<()> {
        self.table.delete(upload)?;
        Ok(())
    }
}
