//! Retrying as a store layer: [`Retrying`] wraps any store and retries its
//! transient failures with exponential backoff, so the code above it (the
//! mirror, lazily restored files) asks once and gets the final answer.

use crate::store::{
    Cond, ErrorKind, Listed, Metadata, ObjectInfo, ObjectStore, Part, Piece, Progress, Result,
    Source,
};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How hard to try before a store error is reported.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 6,
            first_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
        }
    }
}

/// `inner`, with transient failures retried per `policy`.
pub struct Retrying {
    inner: Arc<dyn ObjectStore>,
    policy: Retry,
    /// While set, one attempt per request: for work nobody waits on, soon
    /// after a failure (see the mirror's quiet period).
    hurried: AtomicBool,
}

impl Retrying {
    pub fn new(inner: Arc<dyn ObjectStore>, policy: Retry) -> Retrying {
        Retrying {
            inner,
            policy,
            hurried: AtomicBool::new(false),
        }
    }

    /// The store this layer retries.
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    pub fn policy(&self) -> Retry {
        self.policy
    }

    /// Makes requests try once (`true`) or per the policy again.
    pub fn set_hurried(&self, on: bool) {
        self.hurried.store(on, Ordering::Relaxed);
    }

    /// Runs `op`, retrying transient failures with exponential backoff;
    /// `key` names it in the log.
    fn run<T>(&self, key: &str, mut op: impl FnMut() -> Result<T>) -> Result<T> {
        let attempts = match self.hurried.load(Ordering::Relaxed) {
            true => 1,
            false => self.policy.attempts,
        };
        let mut delay = self.policy.first_delay;
        let mut attempt = 1;
        loop {
            match op() {
                Err(e) if e.kind == ErrorKind::Transient && attempt < attempts => {
                    tracing::warn!(%key, attempt, error = %e, "store request failed; retrying");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(self.policy.max_delay);
                    attempt += 1;
                }
                r => return r,
            }
        }
    }
}

impl ObjectStore for Retrying {
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.run(prefix, || self.inner.list(prefix))
    }
    fn list_reporting(&self, prefix: &str, progress: &Progress<'_>) -> Result<Vec<ObjectInfo>> {
        self.run(prefix, || self.inner.list_reporting(prefix, progress))
    }
    fn lists_metadata(&self) -> bool {
        self.inner.lists_metadata()
    }
    fn writes_ranges(&self) -> bool {
        self.inner.writes_ranges()
    }
    fn list_keys(&self, prefix: &str) -> Result<Vec<Listed>> {
        self.run(prefix, || self.inner.list_keys(prefix))
    }
    fn head_many(&self, keys: Vec<String>, progress: &Progress<'_>) -> Result<Vec<ObjectInfo>> {
        self.run("", || self.inner.head_many(keys.clone(), progress))
    }
    fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        self.run(key, || self.inner.head(key))
    }
    fn get(&self, key: &str, range: Option<Range<u64>>, cond: &Cond) -> Result<Vec<u8>> {
        self.run(key, || self.inner.get(key, range.clone(), cond))
    }
    fn put(&self, key: &str, body: &[u8], meta: &Metadata, cond: &Cond) -> Result<String> {
        self.run(key, || self.inner.put(key, body, meta, cond))
    }
    fn put_parts(&self, key: &str, parts: &[Part], meta: &Metadata, cond: &Cond) -> Result<String> {
        self.run(key, || self.inner.put_parts(key, parts, meta, cond))
    }
    fn put_from(
        &self,
        key: &str,
        pieces: &[Piece],
        source: &Arc<dyn Source>,
        meta: &Metadata,
        cond: &Cond,
    ) -> Result<String> {
        self.run(key, || self.inner.put_from(key, pieces, source, meta, cond))
    }
    fn copy(&self, from: &str, to: &str, meta: &Metadata, cond: &Cond) -> Result<String> {
        self.run(to, || self.inner.copy(from, to, meta, cond))
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.run(key, || self.inner.delete(key))
    }
    fn enforces_conditions(&self) -> bool {
        self.inner.enforces_conditions()
    }
}
