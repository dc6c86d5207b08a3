//! The store's version object, `.larder/version` (stores with an index
//! only): a few bytes, rewritten after every sync that changed the store,
//! so a poll learns whether any Larder writer changed anything with one
//! HEAD instead of listing the whole prefix (a request per 1,000 keys).
//!
//! Order is what makes it safe: a writer rewrites it only after its
//! objects are stored, and a poll reads it before it lists. So a poll
//! that finds the ETag it saw last has already listed everything written
//! before that version. A mirror's own rewrite is `If-Match` the ETag its
//! last poll saw: when that holds, nobody else's rewrite came between and
//! the new ETag counts as seen; when it fails, the rewrite is made anyway
//! and the next poll lists.
//!
//! Other tools do not rewrite it, so a poll also lists at least every
//! [`FULL_LISTING_EVERY`] whatever the version says.

use super::{Mirror, State};
use crate::index;
use crate::store::{Cond, ErrorKind, Metadata, ObjectStore};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// How often a poll lists whatever the version object says, to see what
/// other tools wrote.
pub const FULL_LISTING_EVERY: Duration = Duration::from_secs(60);

/// The version object's ETag, `None` if there is none.
type Etag = Option<String>;

/// What a poll does, by the version object.
pub(super) enum Gate {
    /// Nothing new since this mirror last looked: no listing.
    Quiet,
    /// List; once what it shows is applied, everything written before
    /// `version` is (`None`: the store keeps no version object).
    List { version: Option<Etag> },
}

/// What this mirror knows of the version object.
#[derive(Default)]
pub(super) struct Seen {
    /// Its ETag as of the last poll that applied everything listed, or of
    /// this mirror's own rewrite when nothing came between (`Some(None)`:
    /// there was none); `None` until then.
    etag: Option<Etag>,
    /// When a poll last listed the prefix.
    listed: Option<Instant>,
    /// A sync changed the store (or may have) and the version was not
    /// rewritten since: the next sync rewrites it.
    owed: bool,
}

/// Rewrites by this process, so no two bodies (and so no two S3 ETags,
/// the MD5 of the body) are alike.
static REWRITES: AtomicU64 = AtomicU64::new(0);

impl Mirror {
    fn version_key(&self) -> String {
        format!("{}{}", self.prefix, index::VERSION_KEY)
    }

    /// How often a poll lists the prefix whatever the version object says
    /// (default [`FULL_LISTING_EVERY`]): how late other tools' writes may
    /// be seen.
    pub fn with_full_listing_every(mut self, every: Duration) -> Mirror {
        self.full_listing_every = every;
        self
    }

    /// Whether a poll lists: not if no Larder writer changed the store
    /// since this mirror last looked and a full listing is not due.
    pub(super) fn gate(&self, st: &State) -> Result<Gate, super::SyncError> {
        if !self.indexed() {
            return Ok(Gate::List { version: None });
        }
        let now = self.store.head(&self.version_key())?.map(|i| i.etag);
        let due = st
            .seen
            .listed
            .is_none_or(|t| t.elapsed() >= self.full_listing_every);
        if !due && st.seen.etag.as_ref() == Some(&now) {
            return Ok(Gate::Quiet);
        }
        Ok(Gate::List { version: Some(now) })
    }

    /// Notes that everything written before the version a [`Gate::List`]
    /// read has been applied here.
    pub(super) fn listed_at(st: &mut State, version: Option<Etag>) {
        if let Some(v) = version {
            st.seen.etag = Some(v);
            st.seen.listed = Some(Instant::now());
        }
    }

    /// Notes that a sync changed the store, or may have (it failed part
    /// way); the version object is rewritten when `done`.
    pub(super) fn store_changed(&self, st: &mut State, done: bool) {
        if !self.indexed() {
            return;
        }
        st.seen.owed = true;
        if done {
            self.rewrite_version(st);
        }
    }

    /// After a sync that changed the store: the version object rewritten,
    /// so other writers' polls list. Failing is logged (their polls see
    /// the change at their next full listing) and retried at the next
    /// sync.
    fn rewrite_version(&self, st: &mut State) {
        let key = self.version_key();
        let body = format!(
            "{:016x} {}\n",
            writer_id(),
            REWRITES.fetch_add(1, Ordering::Relaxed)
        );
        let cond = match &st.seen.etag {
            Some(Some(etag)) => Cond::IfMatch(etag.clone()),
            Some(None) => Cond::IfNoneMatch,
            None => Cond::None,
        };
        let put = |cond: &Cond| {
            self.check_cond(&key, cond).and_then(|()| {
                self.store
                    .put(&key, body.as_bytes(), &Metadata::new(), cond)
            })
        };
        let done = match put(&cond) {
            // Nobody else's version came between: still all seen.
            Ok(etag) if cond != Cond::None => {
                st.seen.etag = Some(Some(etag));
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind == ErrorKind::Conflict => put(&Cond::None).map(|_| ()),
            Err(e) => Err(e),
        };
        match done {
            Ok(()) => st.seen.owed = false,
            Err(e) => tracing::warn!(
                error = %e,
                "the store's version object was not rewritten: other writers' polls see \
                 this sync's changes at their next full listing (retried at the next sync)"
            ),
        }
    }

    /// Whether a rewrite of the version object is owed.
    pub(super) fn version_owed(st: &State) -> bool {
        st.seen.owed
    }
}

/// This process's mark in the version object's body: random per process,
/// with the time it started, so two writers never write the same body.
fn writer_id() -> u64 {
    static ID: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *ID.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        h.write_u128(nanos);
        h.finish()
    })
}
