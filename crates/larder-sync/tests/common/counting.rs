//! A store wrapper that counts the bytes fetched through it, to show what
//! a lazy restore reads from a real server.

#![allow(dead_code)]

use larder_sync::store::{Part, Piece, Progress, Result, Source};
use larder_sync::{Cond, Listed, Metadata, ObjectInfo, ObjectStore};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub struct Counting {
    pub inner: Arc<dyn ObjectStore>,
    pub fetched: AtomicU64,
    /// The largest body handed to `put` or `put_parts`.
    pub largest_put: AtomicU64,
}

impl Counting {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<Counting> {
        Arc::new(Counting {
            inner,
            fetched: AtomicU64::new(0),
            largest_put: AtomicU64::new(0),
        })
    }

    pub fn fetched(&self) -> u64 {
        self.fetched.load(Ordering::SeqCst)
    }

    pub fn largest_put(&self) -> u64 {
        self.largest_put.load(Ordering::SeqCst)
    }
}

impl ObjectStore for Counting {
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.inner.list(prefix)
    }
    fn lists_metadata(&self) -> bool {
        self.inner.lists_metadata()
    }
    fn writes_ranges(&self) -> bool {
        self.inner.writes_ranges()
    }
    fn list_keys(&self, prefix: &str) -> Result<Vec<Listed>> {
        self.inner.list_keys(prefix)
    }
    fn head_many(&self, keys: Vec<String>, progress: &Progress<'_>) -> Result<Vec<ObjectInfo>> {
        self.inner.head_many(keys, progress)
    }
    fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        self.inner.head(key)
    }
    fn get(&self, key: &str, range: Option<Range<u64>>, cond: &Cond) -> Result<Vec<u8>> {
        let b = self.inner.get(key, range, cond)?;
        self.fetched.fetch_add(b.len() as u64, Ordering::SeqCst);
        Ok(b)
    }
    fn put(&self, key: &str, body: &[u8], meta: &Metadata, cond: &Cond) -> Result<String> {
        self.largest_put
            .fetch_max(body.len() as u64, Ordering::SeqCst);
        self.inner.put(key, body, meta, cond)
    }
    fn put_parts(&self, key: &str, parts: &[Part], meta: &Metadata, cond: &Cond) -> Result<String> {
        let new: usize = parts
            .iter()
            .map(|p| match p {
                Part::Data(d) => d.len(),
                Part::Keep(_) => 0,
            })
            .sum();
        self.largest_put.fetch_max(new as u64, Ordering::SeqCst);
        self.inner.put_parts(key, parts, meta, cond)
    }
    fn put_from(
        &self,
        key: &str,
        pieces: &[Piece],
        source: &Arc<dyn Source>,
        meta: &Metadata,
        cond: &Cond,
    ) -> Result<String> {
        self.inner.put_from(key, pieces, source, meta, cond)
    }
    fn copy(&self, from: &str, to: &str, meta: &Metadata, cond: &Cond) -> Result<String> {
        self.inner.copy(from, to, meta, cond)
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key)
    }
    fn enforces_conditions(&self) -> bool {
        self.inner.enforces_conditions()
    }
}
