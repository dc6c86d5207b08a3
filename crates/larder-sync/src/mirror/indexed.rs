//! The mirror's side of the index (see `crate::index`): listing a store
//! whose listings lack metadata with what the index or the last sync
//! vouches for, and keeping the index up to date.

use super::{kind_of, IndexState, Kind, Mirror, State, SyncError};
use crate::index::{self, Entry};
use crate::meta;
use crate::store::{Cond, ErrorKind, Listed, Metadata, ObjectInfo, ObjectStore, Progress};
use fs_core::{DescriptorFlags as DF, ErrorCode, Fs, PathFlags as PF};
use std::collections::{BTreeSet, HashMap};
use std::time::SystemTime;

/// An index larger than this is not read (a hundred million entries).
const MAX_INDEX: u64 = 8 << 30;

/// A restore's listing: every object with its metadata, symlink targets
/// the index gave (by key), and what became of the index.
pub(super) type Listing = (Vec<ObjectInfo>, HashMap<String, String>, IndexState);

/// Whether an object listed as written at `modified` was written before
/// the index listed as written at `index`: in an earlier second, as S3
/// lists whole seconds (unknown times are not). One written in the same
/// second may be later, so it is not.
fn before(modified: Option<SystemTime>, index: Option<SystemTime>) -> bool {
    let secs = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
    };
    match (modified.map(secs), index.map(secs)) {
        (Some(Ok(m)), Some(Ok(i))) => m < i,
        _ => false,
    }
}

impl Mirror {
    fn index_key(&self) -> String {
        format!("{}{}", self.prefix, index::KEY)
    }

    /// The path (relative) `key` stands for, if it is one this mirror
    /// keeps; a directory marker's without its `/`.
    fn kept_path<'a>(&self, key: &'a str) -> Option<&'a str> {
        let rel = key.strip_prefix(&self.prefix)?;
        let path = rel.strip_suffix('/').unwrap_or(rel);
        (meta::valid_path(path) && !self.excluded(path)).then_some(path)
    }

    /// The store's objects with their metadata, for a restore: where the
    /// listing lacks it, from the index for every object listed with the
    /// ETag and size the index recorded and written before it, and by a
    /// HEAD for the rest (calling `progress` as those come in).
    pub(super) fn list_indexed(&self, progress: &Progress<'_>) -> Result<Listing, SyncError> {
        if !self.indexed() {
            let all = self.store.list_reporting(&self.prefix, progress)?;
            return Ok((all, HashMap::new(), IndexState::default()));
        }
        let listed = self.store.list_keys(&self.prefix)?;
        let key = self.index_key();
        let mut state = IndexState {
            stale: true,
            ..IndexState::default()
        };
        let mut written = None;
        let mut entries: HashMap<String, Entry> = HashMap::new();
        match listed.iter().find(|l| l.key == key) {
            None => tracing::info!(
                "the store has no index yet: asking it for each object's metadata \
                 (the next sync writes one)"
            ),
            Some(l) => {
                state.etag = Some(l.etag.clone());
                if let Some(all) = self.read_index(l)? {
                    written = l.modified;
                    entries = all
                        .into_iter()
                        .map(|e| (meta::object_key(&self.prefix, &e.path, e.kind), e))
                        .collect();
                }
            }
        }
        let (mut objects, mut ask, mut targets) = (Vec::new(), Vec::new(), HashMap::new());
        let mut asked_kept = 0;
        for l in listed {
            if l.key == key || self.excluded_key(&l.key) {
                continue;
            }
            if self.kept_path(&l.key).is_none() {
                // A key that cannot be a path here: asked about all the
                // same, so the restore names it as skipped.
                ask.push(l.key);
                continue;
            }
            let vouched = entries
                .get(&l.key)
                .filter(|e| e.etag == l.etag && e.size == l.size && before(l.modified, written));
            match vouched {
                Some(e) => {
                    if let Some(t) = &e.target {
                        targets.insert(l.key.clone(), t.clone());
                    }
                    objects.push(ObjectInfo {
                        meta: meta::encode_attrs(&e.attrs),
                        key: l.key,
                        size: l.size,
                        etag: l.etag,
                    });
                }
                None => {
                    asked_kept += 1;
                    ask.push(l.key);
                }
            }
        }
        let vouched = objects.len();
        state.stale = asked_kept > 0 || vouched < entries.len();
        if written.is_some() {
            tracing::info!(
                vouched,
                asked = asked_kept,
                "listed the store with its index{}",
                if state.stale {
                    " (out of date: the next sync rewrites it)"
                } else {
                    ""
                }
            );
        }
        objects.extend(self.store.head_many(ask, progress)?);
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok((objects, targets, state))
    }

    /// The store's objects under the prefix with their metadata, as a
    /// restore sees them (the index's shortcut included, the index itself
    /// and excluded subtrees left out), and the symlink targets the index
    /// gave, by key: for views of a store (`larder ls`, `larder export`).
    pub fn objects(
        &self,
        progress: &Progress<'_>,
    ) -> Result<(Vec<ObjectInfo>, HashMap<String, String>), SyncError> {
        let (objects, targets, _) = self.list_indexed(progress)?;
        Ok((objects, targets))
    }

    /// Whether `key` is under a subtree this mirror leaves out (so not
    /// worth a request).
    fn excluded_key(&self, key: &str) -> bool {
        key.strip_prefix(&self.prefix)
            .is_some_and(|rel| self.excluded(rel.strip_suffix('/').unwrap_or(rel)))
    }

    /// The index as listed in `l`, if it is usable; `None`, logged, if it
    /// is not (it is then rewritten at the next sync) or changed since.
    fn read_index(&self, l: &Listed) -> Result<Option<Vec<Entry>>, SyncError> {
        if l.size > MAX_INDEX {
            tracing::warn!(
                size = l.size,
                "the store's index is too large to read: ignored"
            );
            return Ok(None);
        }
        match self.store.get(&l.key, None, &Cond::IfMatch(l.etag.clone())) {
            Ok(bytes) => match index::decode(&bytes) {
                Ok(entries) => Ok(Some(entries)),
                Err(why) => {
                    tracing::warn!(
                        %why,
                        "the store's index is unusable: asking the store for each object's \
                         metadata instead (the next sync rewrites it)"
                    );
                    Ok(None)
                }
            },
            // Rewritten or removed since the listing: not the one listed.
            Err(e) if matches!(e.kind, ErrorKind::Conflict | ErrorKind::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The store's objects with their metadata, for a poll: where the
    /// listing lacks it, objects listed with the ETag the last sync knows
    /// for their path are vouched for by it (with only their kind, since
    /// the poll leaves them be: their keys are returned too), the rest
    /// asked about.
    pub(super) fn list_since_sync(
        &self,
        st: &State,
    ) -> Result<(Vec<ObjectInfo>, BTreeSet<String>), SyncError> {
        if !self.indexed() {
            return Ok((self.store.list(&self.prefix)?, BTreeSet::new()));
        }
        let (mut objects, mut ask, mut vouched) = (Vec::new(), Vec::new(), BTreeSet::new());
        for l in self.store.list_keys(&self.prefix)? {
            if self.excluded_key(&l.key) {
                continue;
            }
            let dir = l.key.ends_with('/');
            let known = self.kept_path(&l.key).and_then(|p| st.synced.get(p));
            match known {
                Some(s) if s.etag == l.etag && (s.kind == Kind::Dir) == dir => {
                    let bits = match s.kind {
                        Kind::Symlink => meta::S_IFLNK,
                        Kind::Dir => meta::S_IFDIR,
                        Kind::File => meta::S_IFREG,
                    };
                    vouched.insert(l.key.clone());
                    objects.push(ObjectInfo {
                        meta: meta::encode(bits, 0, 0, 0, 0),
                        key: l.key,
                        size: l.size,
                        etag: l.etag,
                    });
                }
                _ => ask.push(l.key),
            }
        }
        objects.extend(self.store.head_many(ask, &|_, _| {})?);
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok((objects, vouched))
    }

    /// Rewrites the index from what the last sync stored. Another
    /// writer's index in the meantime is merged (theirs, with ours over it
    /// for every path this mirror changed since its last index). Failing
    /// is logged, not returned: the index only saves requests.
    pub(super) fn write_index(&self, fs: &Fs, st: &mut State) {
        let key = self.index_key();
        let mut entries = match self.index_entries(fs, st) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "the index was not written");
                return;
            }
        };
        let mut cond = st
            .index
            .etag
            .clone()
            .map_or(Cond::IfNoneMatch, Cond::IfMatch);
        for _ in 0..3 {
            let bytes = index::encode(&entries);
            let put = self
                .check_cond(&key, &cond)
                .and_then(|()| self.store.put(&key, &bytes, &Metadata::new(), &cond));
            match put {
                Ok(etag) => {
                    st.index = IndexState {
                        etag: Some(etag),
                        ..IndexState::default()
                    };
                    return;
                }
                Err(e) if e.kind == ErrorKind::Conflict => {
                    let theirs = match self.store.head(&key) {
                        Ok(Some(info)) => {
                            let l = Listed {
                                key: key.clone(),
                                size: info.size,
                                etag: info.etag.clone(),
                                modified: None,
                            };
                            cond = Cond::IfMatch(info.etag);
                            self.read_index(&l).ok().flatten().unwrap_or_default()
                        }
                        Ok(None) => {
                            cond = Cond::IfNoneMatch;
                            Vec::new()
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "the index was not written");
                            return;
                        }
                    };
                    entries = merge(theirs, entries, &st.index.touched);
                }
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        "the index was not written (a restore asks the store about what \
                         changed since the last one)"
                    );
                    return;
                }
            }
        }
        tracing::warn!("the index was not written: other writers kept rewriting it");
    }

    /// An entry for every synced path still as the sync stored it (one
    /// changed since is left out: its object is then asked about).
    fn index_entries(&self, fs: &Fs, st: &State) -> Result<Vec<Entry>, ErrorCode> {
        let root = fs.root(DF::READ)?;
        let mut out = Vec::with_capacity(st.synced.len());
        for (path, s) in st.synced.iter() {
            let Ok(stat) = root.stat_at(PF::empty(), path) else {
                continue;
            };
            if stat.ino != s.ino || stat.change != s.change || kind_of(stat.kind) != s.kind {
                continue;
            }
            let target = match s.kind {
                Kind::Symlink => match root.readlink_at(path) {
                    Ok(t) => Some(t),
                    Err(_) => continue,
                },
                _ => None,
            };
            let size = match (s.kind, &target) {
                (Kind::File, _) => stat.size,
                (_, Some(t)) => t.len() as u64,
                _ => 0,
            };
            out.push(Entry {
                path: path.clone(),
                kind: s.kind,
                size,
                attrs: Mirror::attrs(s.kind, &stat),
                etag: s.etag.clone(),
                target,
            });
        }
        Ok(out)
    }

    /// The last sync of a session: [`Mirror::sync`], then the index brought
    /// up to date, so the next restore asks the store about nothing.
    pub fn settle(&self, fs: &Fs) -> Result<crate::Report, SyncError> {
        let report = self.sync(fs)?;
        let mut st = self.lock();
        if self.indexed() && st.clean && (st.index.stale || !st.index.touched.is_empty()) {
            self.write_index(fs, &mut st);
        }
        Ok(report)
    }
}

/// Their entries, with ours in place of theirs for each path in
/// `touched` (absent from ours: deleted here).
fn merge(theirs: Vec<Entry>, ours: Vec<Entry>, touched: &BTreeSet<String>) -> Vec<Entry> {
    let mut all: std::collections::BTreeMap<String, Entry> = theirs
        .into_iter()
        .filter(|e| !touched.contains(&e.path))
        .map(|e| (e.path.clone(), e))
        .collect();
    for e in ours.into_iter().filter(|e| touched.contains(&e.path)) {
        all.insert(e.path.clone(), e);
    }
    all.into_values().collect()
}
