//! An object store in memory: what the mirror's tests run against beside
//! the real stores (faults come from wrapping it in [`crate::Faulty`]).

use crate::store::{
    Cond, ErrorKind, Listed, Metadata, ObjectInfo, ObjectStore, Part, Progress, Result, StoreError,
};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
struct Object {
    body: Arc<Vec<u8>>,
    meta: Metadata,
    etag: String,
    /// The write that made it, in order: its listed modification time.
    seq: u64,
}

/// Counters of what the store was asked to do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub puts: u64,
    pub put_bytes: u64,
    pub copies: u64,
    pub deletes: u64,
    pub gets: u64,
    pub get_bytes: u64,
    pub heads: u64,
    /// Listings (each counted as one request, whatever its length).
    pub lists: u64,
}

#[derive(Default)]
pub struct MemStore {
    objects: Mutex<BTreeMap<String, Object>>,
    next_etag: AtomicU64,
    traffic: Mutex<Traffic>,
    /// Behave like a store without conditional writes.
    no_conditions: AtomicBool,
    /// Behave like S3: listings without metadata (a HEAD each for it).
    bare_listings: AtomicBool,
    /// Behave like S3 in what the mirror sends: large files in whole
    /// parts, small ones whole, rather than the ranges that changed.
    whole_parts: AtomicBool,
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }

    pub fn set_conditions(&self, enforced: bool) {
        self.no_conditions.store(!enforced, Ordering::SeqCst);
    }

    /// Listings without metadata, as S3's are, so the mirror keeps an
    /// index. Listed times come from a clock that moves 10 s per write,
    /// so they order writes without a test waiting.
    pub fn set_bare_listings(&self, on: bool) {
        self.bare_listings.store(on, Ordering::SeqCst);
    }

    /// Large files sent in `PART`-sized pieces and small ones whole, as
    /// to S3, instead of the ranges that changed.
    pub fn set_whole_parts(&self, on: bool) {
        self.whole_parts.store(on, Ordering::SeqCst);
    }

    pub fn traffic(&self) -> Traffic {
        *self.traffic.lock().unwrap()
    }

    /// Every key and body, for comparing with a reference.
    pub fn contents(&self) -> BTreeMap<String, (Vec<u8>, Metadata)> {
        self.objects
            .lock()
            .unwrap()
            .iter()
            .map(|(k, o)| (k.clone(), (o.body.to_vec(), o.meta.clone())))
            .collect()
    }

    fn check(&self, current: Option<&Object>, cond: &Cond) -> Result<()> {
        if self.no_conditions.load(Ordering::SeqCst) {
            return Ok(());
        }
        if cond.holds(current.map(|o| o.etag.as_str())) {
            Ok(())
        } else {
            Err(StoreError::new(ErrorKind::Conflict, "precondition failed"))
        }
    }

    /// A new object's ETag and write sequence.
    fn etag(&self) -> (String, u64) {
        let n = self.next_etag.fetch_add(1, Ordering::SeqCst);
        (format!("\"m{n}\""), n)
    }

    /// One listing (counted) of the objects under `prefix`, each as `f`
    /// makes it.
    fn listing<T>(&self, prefix: &str, f: impl Fn(&str, &Object) -> T) -> Vec<T> {
        self.traffic.lock().unwrap().lists += 1;
        let objects = self.objects.lock().unwrap();
        objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, o)| f(k, o))
            .collect()
    }

    fn info(key: &str, o: &Object) -> ObjectInfo {
        ObjectInfo {
            key: key.to_string(),
            size: o.body.len() as u64,
            etag: o.etag.clone(),
            meta: o.meta.clone(),
        }
    }
}

impl ObjectStore for MemStore {
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        Ok(self.listing(prefix, MemStore::info))
    }

    fn list_reporting(&self, prefix: &str, progress: &Progress<'_>) -> Result<Vec<ObjectInfo>> {
        if !self.lists_metadata() {
            let keys = self.list_keys(prefix)?.into_iter().map(|l| l.key);
            return self.head_many(keys.collect(), progress);
        }
        let all = self.list(prefix)?;
        progress(all.len() as u64, all.len() as u64);
        Ok(all)
    }

    fn lists_metadata(&self) -> bool {
        !self.bare_listings.load(Ordering::SeqCst)
    }

    /// Kept ranges are copied in memory: as cheap as the new ones.
    fn writes_ranges(&self) -> bool {
        !self.whole_parts.load(Ordering::SeqCst)
    }

    fn list_keys(&self, prefix: &str) -> Result<Vec<Listed>> {
        Ok(self.listing(prefix, |k, o| Listed {
            key: k.to_string(),
            size: o.body.len() as u64,
            etag: o.etag.clone(),
            modified: Some(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(10 * o.seq + 1_000),
            ),
        }))
    }

    fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        self.traffic.lock().unwrap().heads += 1;
        Ok(self
            .objects
            .lock()
            .unwrap()
            .get(key)
            .map(|o| MemStore::info(key, o)))
    }

    fn get(&self, key: &str, range: Option<Range<u64>>, cond: &Cond) -> Result<Vec<u8>> {
        let o = self
            .objects
            .lock()
            .unwrap()
            .get(key)
            .cloned()
            .ok_or_else(|| StoreError::at(ErrorKind::NotFound, key, "no such object"))?;
        self.check(Some(&o), cond)?;
        let len = o.body.len() as u64;
        let r = range.unwrap_or(0..len);
        let (start, end) = (r.start.min(len) as usize, r.end.min(len) as usize);
        let bytes = o.body[start..end.max(start)].to_vec();
        let mut t = self.traffic.lock().unwrap();
        t.gets += 1;
        t.get_bytes += bytes.len() as u64;
        Ok(bytes)
    }

    fn put(&self, key: &str, body: &[u8], meta: &Metadata, cond: &Cond) -> Result<String> {
        let mut objects = self.objects.lock().unwrap();
        self.check(objects.get(key), cond)?;
        let (etag, seq) = self.etag();
        objects.insert(
            key.to_string(),
            Object {
                body: Arc::new(body.to_vec()),
                meta: meta.clone(),
                etag: etag.clone(),
                seq,
            },
        );
        let mut t = self.traffic.lock().unwrap();
        t.puts += 1;
        t.put_bytes += body.len() as u64;
        Ok(etag)
    }

    /// Kept ranges are copied inside the store (counted as copies, not
    /// uploads), as S3's part copies are.
    fn put_parts(&self, key: &str, parts: &[Part], meta: &Metadata, cond: &Cond) -> Result<String> {
        let mut objects = self.objects.lock().unwrap();
        self.check(objects.get(key), cond)?;
        let current = objects.get(key).map(|o| o.body.clone()).unwrap_or_default();
        let mut body = Vec::new();
        let mut sent = 0;
        for p in parts {
            match p {
                Part::Keep(r) => {
                    let end = (r.end as usize).min(current.len());
                    body.extend_from_slice(&current[(r.start as usize).min(end)..end]);
                }
                Part::Data(d) => {
                    body.extend_from_slice(d);
                    sent += d.len() as u64;
                }
            }
        }
        let (etag, seq) = self.etag();
        objects.insert(
            key.to_string(),
            Object {
                body: Arc::new(body),
                meta: meta.clone(),
                etag: etag.clone(),
                seq,
            },
        );
        let mut t = self.traffic.lock().unwrap();
        t.puts += 1;
        t.put_bytes += sent;
        Ok(etag)
    }

    fn copy(&self, from: &str, to: &str, meta: &Metadata, cond: &Cond) -> Result<String> {
        let mut objects = self.objects.lock().unwrap();
        let body = objects
            .get(from)
            .ok_or_else(|| StoreError::at(ErrorKind::NotFound, from, "no such object"))?
            .body
            .clone();
        self.check(objects.get(to), cond)?;
        let (etag, seq) = self.etag();
        objects.insert(
            to.to_string(),
            Object {
                body,
                meta: meta.clone(),
                etag: etag.clone(),
                seq,
            },
        );
        self.traffic.lock().unwrap().copies += 1;
        Ok(etag)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.objects.lock().unwrap().remove(key);
        self.traffic.lock().unwrap().deletes += 1;
        Ok(())
    }

    fn enforces_conditions(&self) -> bool {
        !self.no_conditions.load(Ordering::SeqCst)
    }
}
