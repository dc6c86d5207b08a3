//! Fault injection around any store: the mirror's tests run the in-memory,
//! local-directory and S3 stores through the same outages.

use crate::store::{
    Cond, ErrorKind, Listed, Metadata, ObjectInfo, ObjectStore, Part, Piece, Progress, Result,
    Source, StoreError,
};
use std::ops::{Deref, Range};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// `S`, failing requests on demand. Every request first passes the gate
/// (refused while down or by an injected failure, as transient errors);
/// writes may also take effect and then lose their reply.
pub struct Faulty<S> {
    inner: S,
    /// Fail this many requests before serving again.
    fail_next: AtomicU64,
    /// Fail every request while set: the server is down.
    down: AtomicBool,
    /// Apply this many writes but answer them with a transient error, as
    /// when a reply is lost after the server acted.
    lose_replies: AtomicU64,
    /// Requests refused so far.
    refused: AtomicU64,
    /// Each request takes at least this many microseconds (a far server).
    latency_us: AtomicU64,
    /// Writes to keys starting with this fail (transient) while set.
    refuse_under: std::sync::Mutex<Option<String>>,
}

impl<S: ObjectStore> Faulty<S> {
    pub fn new(inner: S) -> Faulty<S> {
        Faulty {
            inner,
            fail_next: AtomicU64::new(0),
            down: AtomicBool::new(false),
            lose_replies: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            latency_us: AtomicU64::new(0),
            refuse_under: Default::default(),
        }
    }

    /// Writes (put, parts, copy, delete) to keys starting with `prefix`
    /// fail with a transient error until called with `None`; the rest are
    /// served.
    pub fn refuse_writes_under(&self, prefix: Option<&str>) {
        *self.refuse_under.lock().unwrap() = prefix.map(str::to_string);
    }

    /// Every request takes `latency` longer, as to a distant server.
    pub fn set_latency(&self, latency: std::time::Duration) {
        self.latency_us
            .store(latency.as_micros() as u64, Ordering::SeqCst);
    }

    /// The next `n` requests fail with a transient error.
    pub fn fail_next(&self, n: u64) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    /// Every request fails (transient) until `set_down(false)`.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// The next `n` writes (put, parts, copy, delete) take effect, then
    /// fail (transient).
    pub fn lose_replies(&self, n: u64) {
        self.lose_replies.store(n, Ordering::SeqCst);
    }

    /// Requests refused while down or by an injected failure.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    fn gate(&self) -> Result<()> {
        let us = self.latency_us.load(Ordering::SeqCst);
        if us > 0 {
            std::thread::sleep(std::time::Duration::from_micros(us));
        }
        let failed = self.down.load(Ordering::SeqCst)
            || self
                .fail_next
                .try_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if failed {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::new(ErrorKind::Transient, "injected failure"));
        }
        Ok(())
    }

    /// [`Faulty::gate`], for a write to `key`.
    fn write_gate(&self, key: &str) -> Result<()> {
        self.gate()?;
        let refused = self
            .refuse_under
            .lock()
            .unwrap()
            .as_deref()
            .is_some_and(|p| key.starts_with(p));
        if refused {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::new(ErrorKind::Transient, "injected failure"));
        }
        Ok(())
    }

    /// A write the store carried out: its reply may be lost.
    fn written<T>(&self, result: Result<T>) -> Result<T> {
        let lost = result.is_ok()
            && self
                .lose_replies
                .try_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        match lost {
            true => Err(StoreError::new(ErrorKind::Transient, "reply lost")),
            false => result,
        }
    }
}

/// The wrapped store, for what is not a request (counters, contents).
impl<S> Deref for Faulty<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.inner
    }
}

impl<S: ObjectStore> ObjectStore for Faulty<S> {
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.gate()?;
        self.inner.list(prefix)
    }
    fn list_reporting(&self, prefix: &str, progress: &Progress<'_>) -> Result<Vec<ObjectInfo>> {
        self.gate()?;
        self.inner.list_reporting(prefix, progress)
    }
    fn lists_metadata(&self) -> bool {
        self.inner.lists_metadata()
    }
    fn writes_ranges(&self) -> bool {
        self.inner.writes_ranges()
    }
    fn list_keys(&self, prefix: &str) -> Result<Vec<Listed>> {
        self.gate()?;
        self.inner.list_keys(prefix)
    }
    fn head_many(&self, keys: Vec<String>, progress: &Progress<'_>) -> Result<Vec<ObjectInfo>> {
        self.gate()?;
        self.inner.head_many(keys, progress)
    }
    fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        self.gate()?;
        self.inner.head(key)
    }
    fn get(&self, key: &str, range: Option<Range<u64>>, cond: &Cond) -> Result<Vec<u8>> {
        self.gate()?;
        self.inner.get(key, range, cond)
    }
    fn put(&self, key: &str, body: &[u8], meta: &Metadata, cond: &Cond) -> Result<String> {
        self.write_gate(key)?;
        self.written(self.inner.put(key, body, meta, cond))
    }
    fn put_parts(&self, key: &str, parts: &[Part], meta: &Metadata, cond: &Cond) -> Result<String> {
        self.write_gate(key)?;
        self.written(self.inner.put_parts(key, parts, meta, cond))
    }
    fn put_from(
        &self,
        key: &str,
        pieces: &[Piece],
        source: &Arc<dyn Source>,
        meta: &Metadata,
        cond: &Cond,
    ) -> Result<String> {
        self.write_gate(key)?;
        self.written(self.inner.put_from(key, pieces, source, meta, cond))
    }
    fn copy(&self, from: &str, to: &str, meta: &Metadata, cond: &Cond) -> Result<String> {
        self.write_gate(to)?;
        self.written(self.inner.copy(from, to, meta, cond))
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.write_gate(key)?;
        self.written(self.inner.delete(key))
    }
    fn enforces_conditions(&self) -> bool {
        self.inner.enforces_conditions()
    }
}
