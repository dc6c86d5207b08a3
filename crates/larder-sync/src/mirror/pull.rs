//! Picking up other writers' changes: while the local copy is clean, the
//! store's listing is compared with what was last synced, and objects
//! created, replaced or deleted there are applied here. A replaced file is
//! built beside the old one (contents lazy, as at restore) and renamed over
//! it, so readers see the old or the new file, never a mix. Paths changed
//! here since the last sync, and files open for writing, are left alone
//! (the next sync settles them, as a conflict if both sides changed).

use super::version::Gate;
use super::{apply_attrs, Kind, Mirror, State, SyncError, Synced};
use crate::meta;
use crate::store::{ObjectInfo, ObjectStore};
use fs_core::{DescriptorFlags as DF, ErrorCode, Fs, OpenFlags as OF, PathFlags as PF};
use std::collections::{BTreeMap, BTreeSet};

/// What one poll did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pulled {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    /// Remote changes not applied (the path changed here too, or a file
    /// is open for writing); tried again at the next poll.
    pub skipped: Vec<String>,
    /// Nothing was compared: local changes are waiting to be synced first.
    pub local_changes_pending: bool,
}

/// A restored file's inode and the source of its unfetched bytes.
type Restored = (u64, std::sync::Arc<crate::lazy::StoreSource>);

/// Where a replacement is built before it is renamed over the old path.
const PULL_TMP: &str = ".larder-pull-";

impl Mirror {
    /// Applies changes other writers made in the store since the last
    /// sync, if the local copy is clean (every local change synced);
    /// otherwise does nothing and says so (sync first).
    pub fn poll(&self, fs: &Fs) -> Result<Pulled, SyncError> {
        let mut st = self.lock();
        if !st.clean || fs.change_seq() != st.seen_seq {
            return Ok(Pulled {
                local_changes_pending: true,
                ..Pulled::default()
            });
        }
        // Where listing costs a request per 1,000 keys, only when another
        // writer's sync (or a full listing) is due.
        let version = match self.gate(&st)? {
            Gate::Quiet => return Ok(Pulled::default()),
            Gate::List { version } => version,
        };
        let (objects, vouched) = self.list_since_sync(&st)?;
        let mut remote: BTreeMap<String, (Kind, &ObjectInfo)> = BTreeMap::new();
        for o in &objects {
            if let Some((path, kind)) = self.object_path(o) {
                if !self.excluded(path)
                    && !path.rsplit('/').next().unwrap_or("").starts_with(PULL_TMP)
                {
                    remote.insert(path.to_string(), (kind, o));
                }
            }
        }
        let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY)?;
        let mut pulled = Pulled::default();
        let mut parents: BTreeSet<String> = BTreeSet::new();

        // Deleted there: children before their directories.
        for path in self.gone(&st, |p| remote.contains_key(p)) {
            let s = st.synced[&path].clone();
            if !unchanged_here(&root, &path, &s)? {
                pulled.skipped.push(path);
                continue;
            }
            let r = match s.kind {
                Kind::Dir => root.remove_directory_at(&path),
                _ => root.unlink_file_at(&path),
            };
            match r {
                Ok(()) | Err(ErrorCode::NoEntry) => {
                    st.synced.remove(&path);
                    pulled.deleted += 1;
                    refresh(&mut st, &root, &parent_of(&path))?;
                    parents.insert(parent_of(&path));
                }
                // Something new inside, made here meanwhile: it stays, and
                // the next sync stores the directory again.
                Err(ErrorCode::NotEmpty) => pulled.skipped.push(path),
                Err(e) => return Err(e.into()),
            }
        }

        // Created or replaced there: parents before children.
        for (path, (kind, o)) in &remote {
            let known = st.synced.get(path).cloned();
            match &known {
                Some(s) if s.etag == o.etag && s.kind == *kind => continue,
                Some(s) if !unchanged_here(&root, path, s)? => {
                    pulled.skipped.push(path.clone());
                    continue;
                }
                None if root.stat_at(PF::empty(), path).is_ok() => {
                    // Made here too since the last sync: the next sync
                    // finds theirs and keeps both.
                    pulled.skipped.push(path.clone());
                    continue;
                }
                _ => {}
            }
            let a = meta::decode(&o.meta);
            // Ok(None): refused here (left for the next poll).
            let outcome = (|| -> Result<Option<Option<Restored>>, SyncError> {
                match &known {
                    // A directory's own change is only its metadata.
                    Some(s) if s.kind == Kind::Dir && *kind == Kind::Dir => {
                        apply_attrs(&root, path, Kind::Dir, &a)?;
                        Ok(Some(None))
                    }
                    Some(s) if s.kind == *kind => self.replace(&st, &root, o, path, *kind, &a),
                    _ => {
                        // New, or another kind now: what was here goes
                        // first (a directory's children were deleted above).
                        if let Some(s) = &known {
                            let r = match s.kind {
                                Kind::Dir => root.remove_directory_at(path),
                                _ => root.unlink_file_at(path),
                            };
                            if r.is_err() {
                                return Ok(None);
                            }
                        }
                        let made = self.restore_one(&root, o, path, *kind, None)?;
                        apply_attrs(&root, path, *kind, &a)?;
                        Ok(Some(made.lazy))
                    }
                }
            })();
            let applied = match outcome {
                Ok(Some(applied)) => applied,
                Ok(None) => {
                    pulled.skipped.push(path.clone());
                    continue;
                }
                // The store failing is an error; an object that cannot be
                // a file here is skipped, as at restore.
                Err(e @ SyncError::Store(_)) => return Err(e),
                Err(e) => {
                    tracing::warn!(%path, error = %e, "not applied: cannot be a file here");
                    pulled.skipped.push(path.clone());
                    continue;
                }
            };
            if known.as_ref().is_some_and(|s| s.kind != *kind) {
                st.synced.remove(path);
            }
            if let Some((ino, source)) = applied {
                st.lazy.insert(ino, source);
            }
            if known.is_some() {
                pulled.updated += 1;
            } else {
                pulled.created += 1;
            }
            parents.insert(parent_of(path));
            self.record(&mut st, &root, path, *kind, &o.etag)?;
            refresh(&mut st, &root, &parent_of(path))?;
        }

        // Creating and deleting moved the parents' mtimes: put back what
        // the store says, so the next sync has nothing to send for them.
        for dir in parents.iter().rev().filter(|d| !d.is_empty()) {
            if let Some((Kind::Dir, o)) = remote.get(dir) {
                // Listed with only its kind: its metadata is asked for.
                let headed;
                let o = match vouched.contains(&o.key) {
                    true => match self.store.head(&o.key)? {
                        Some(info) => {
                            headed = info;
                            &headed
                        }
                        None => continue,
                    },
                    false => *o,
                };
                if root.stat_at(PF::empty(), dir).is_ok() {
                    apply_attrs(&root, dir, Kind::Dir, &meta::decode(&o.meta))?;
                    self.record(&mut st, &root, dir, Kind::Dir, &o.etag)?;
                }
            }
        }
        if pulled.created + pulled.updated + pulled.deleted > 0 {
            tracing::info!(?pulled, "applied changes from the store");
        }
        // What was skipped is listed again at the next poll.
        if pulled.skipped.is_empty() {
            Mirror::listed_at(&mut st, version);
        }
        Ok(pulled)
    }

    /// Builds the new version of `path` beside it and renames it over;
    /// `None` if the rename was refused (left for the next poll).
    fn replace(
        &self,
        st: &State,
        root: &fs_core::Descriptor,
        o: &ObjectInfo,
        path: &str,
        kind: Kind,
        a: &meta::Attrs,
    ) -> Result<Option<Option<Restored>>, SyncError> {
        let parent = parent_of(path);
        let tmp = format!(
            "{}{PULL_TMP}{}",
            if parent.is_empty() {
                String::new()
            } else {
                format!("{parent}/")
            },
            st.synced.len()
        );
        let _ = root.unlink_file_at(&tmp);
        let made = self.restore_one(root, o, &tmp, kind, None)?;
        apply_attrs(root, &tmp, kind, a)?;
        if root.rename_at(&tmp, root, path).is_err() {
            let _ = root.unlink_file_at(&tmp);
            return Ok(None);
        }
        Ok(Some(made.lazy))
    }

    /// Notes `path` as holding the store's version `etag`.
    fn record(
        &self,
        st: &mut State,
        root: &fs_core::Descriptor,
        path: &str,
        kind: Kind,
        etag: &str,
    ) -> Result<(), SyncError> {
        let stat = root.stat_at(PF::empty(), path)?;
        st.synced.insert(
            path.to_string(),
            Synced {
                ino: stat.ino,
                change: stat.change,
                data_change: stat.data_change,
                kind,
                etag: etag.to_string(),
                parts: Vec::new(),
                // The app may be writing it already: sent whole next time.
                stamp: None,
            },
        );
        Ok(())
    }
}

/// Whether `path` is still what the last sync stored, and not open for
/// writing.
fn unchanged_here(root: &fs_core::Descriptor, path: &str, s: &Synced) -> Result<bool, SyncError> {
    let stat = match root.stat_at(PF::empty(), path) {
        Ok(st) => st,
        Err(ErrorCode::NoEntry) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    if stat.ino != s.ino || stat.change != s.change {
        return Ok(false);
    }
    if s.kind == Kind::File {
        let f = root.open_at(PF::empty(), path, OF::empty(), DF::READ)?;
        return Ok(f.writers() == 0);
    }
    Ok(true)
}

/// The directory `dir` changed by this poll, not by anyone here: still
/// what the store holds as far as the next sync is concerned.
fn refresh(st: &mut State, root: &fs_core::Descriptor, dir: &str) -> Result<(), SyncError> {
    if st.synced.contains_key(dir) {
        let stat = root.stat_at(PF::empty(), dir)?;
        st.synced.set_versions(dir, stat.change, stat.data_change);
    }
    Ok(())
}

fn parent_of(path: &str) -> String {
    path.rsplit_once('/')
        .map(|(p, _)| p.to_string())
        .unwrap_or_default()
}
