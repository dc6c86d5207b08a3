//! What a sync does, decided before it does any of it: from what the store
//! held after the last sync and what the tree holds now, the store
//! operations in the order they must run. Pure (no store, no filesystem),
//! so it is tested alone; `Mirror` executes the plan, handling what only
//! the store can tell (conditions, conflicts, writes of unknown outcome).

use crate::meta::Kind;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// A version of an object: its kind, inode, change counter and data
/// version, as last synced (what the store holds) or as the tree has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    pub kind: Kind,
    pub ino: u64,
    pub change: u64,
    pub data_change: u64,
}

/// One step of a sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// A write to `path` whose outcome was unknown (`kind`), of a path now
    /// gone or of another kind: its object goes if it is that write,
    /// landed.
    ClearUnsure { path: String, kind: Kind },
    /// Delete `path`'s object, unless another writer changed it since.
    Delete { path: String },
    /// Make `path`'s object the tree's: a server-side copy of `from` (the
    /// same inode at the same data version, so the same bytes, synced
    /// under another name and not rewritten by this sync), else an upload.
    Write { path: String, from: Option<String> },
}

/// The steps that make the store hold `current`, given it holds `synced`
/// (plus, perhaps, the `unsure` writes). Paths `excluded` are left alone.
///
/// Order: unsure writes of paths that went are cleared first; then objects
/// whose kind changed are deleted, with whatever was stored below them
/// (children before their directory: in a directory store a file and a
/// directory cannot share a name); then every path the tree changed is
/// written, in path order, parents before children; last, what the tree
/// no longer has is deleted, children first.
pub(crate) fn plan(
    synced: &BTreeMap<String, Version>,
    unsure: &BTreeMap<String, Kind>,
    current: &BTreeMap<String, Version>,
    excluded: impl Fn(&str) -> bool,
) -> Vec<Op> {
    let mut ops = Vec::new();
    let kind_now = |p: &str| current.get(p).map(|v| v.kind);

    let stale: Vec<(&String, Kind)> = unsure
        .iter()
        .filter(|(p, &k)| kind_now(p) != Some(k))
        .map(|(p, &k)| (p, k))
        .collect();
    for (path, kind) in stale.iter().rev() {
        ops.push(Op::ClearUnsure {
            path: (*path).clone(),
            kind: *kind,
        });
    }

    let changed_kind = synced
        .iter()
        .filter(|(p, s)| kind_now(p).is_some_and(|k| k != s.kind));
    let mut first: BTreeSet<&String> = BTreeSet::new();
    for (path, _) in changed_kind {
        let below = format!("{path}/");
        first.extend(
            synced
                .range(below.clone()..)
                .take_while(|(p, _)| p.starts_with(&below))
                .filter(|(p, s)| kind_now(p) != Some(s.kind))
                .map(|(p, _)| p),
        );
        first.insert(path);
    }
    for path in first.iter().rev() {
        ops.push(Op::Delete {
            path: (*path).clone(),
        });
    }

    let up_to_date = |path: &str, now: &Version| {
        synced
            .get(path)
            .is_some_and(|s| s.ino == now.ino && s.change == now.change && s.kind == now.kind)
    };
    // Where each stored inode's bytes are, for renames and links: objects
    // still stored once the deletions above are done, and not rewritten by
    // this sync (a copy must not read an object this sync replaces).
    let written: HashSet<&str> = current
        .iter()
        .filter(|(p, v)| !up_to_date(p, v))
        .map(|(p, _)| p.as_str())
        .collect();
    let mut by_ino: HashMap<(u64, u64), &String> = HashMap::new();
    for (p, s) in synced {
        let copyable = s.kind == Kind::File
            && !first.contains(p)
            && !unsure.contains_key(p)
            && !written.contains(p.as_str());
        if copyable {
            by_ino.entry((s.ino, s.data_change)).or_insert(p);
        }
    }
    for (path, now) in current {
        if up_to_date(path, now) {
            continue;
        }
        let from = (now.kind == Kind::File)
            .then(|| by_ino.get(&(now.ino, now.data_change)))
            .flatten()
            .filter(|p| **p != path)
            .map(|p| (*p).clone());
        ops.push(Op::Write {
            path: path.clone(),
            from,
        });
    }

    for path in synced.keys().rev() {
        if !current.contains_key(path) && !first.contains(path) && !excluded(path) {
            ops.push(Op::Delete { path: path.clone() });
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Paths of a small tree, parents before children.
    const PATHS: [&str; 8] = ["a", "a/b", "a/b/c", "a/d", "e", "e/f", "g", "g/h"];

    fn parent(p: &str) -> Option<&str> {
        p.rsplit_once('/').map(|(d, _)| d)
    }

    /// A tree over PATHS: each path present or not, a file, directory or
    /// symlink, with inodes and versions from small ranges so renames,
    /// hard links and unchanged files all happen. Children only under
    /// directories.
    fn tree() -> impl Strategy<Value = BTreeMap<String, Version>> {
        prop::collection::vec((0..4u8, 0..4u64, 0..3u64), PATHS.len()).prop_map(|picks| {
            let mut t: BTreeMap<String, Version> = BTreeMap::new();
            for (path, (k, ino, v)) in PATHS.iter().zip(picks) {
                let parent_ok =
                    parent(path).is_none_or(|d| t.get(d).is_some_and(|p| p.kind == Kind::Dir));
                let kind = match k {
                    0 => continue,
                    1 => Kind::File,
                    2 => Kind::Dir,
                    _ => Kind::Symlink,
                };
                if !parent_ok {
                    continue;
                }
                // Directories and symlinks are their own inodes.
                let ino = if kind == Kind::File {
                    ino
                } else {
                    100 + t.len() as u64
                };
                t.insert(
                    path.to_string(),
                    Version {
                        kind,
                        ino,
                        change: v,
                        data_change: v,
                    },
                );
            }
            t
        })
    }

    fn unsure() -> impl Strategy<Value = BTreeMap<String, Kind>> {
        prop::collection::btree_map(
            prop::sample::select(PATHS.to_vec()).prop_map(String::from),
            prop::sample::select(vec![Kind::File, Kind::Dir, Kind::Symlink]),
            0..3,
        )
    }

    proptest! {
        /// The plan, applied to a model of a directory store (which cannot
        /// hold a file and a directory under one name, nor delete a
        /// directory with children), leaves exactly the tree; each copy
        /// reads an object holding the bytes it copies; each path is
        /// written at most once.
        #[test]
        fn the_plan_makes_the_store_the_tree(
            synced in tree(),
            current in tree(),
            unsure in unsure(),
            landed in any::<bool>(),
        ) {
            let ops = plan(&synced, &unsure, &current, |_| false);
            let mut store = synced.clone();
            let mut written = HashSet::new();
            for op in &ops {
                match op {
                    Op::ClearUnsure { path, kind } => {
                        // The write may have landed (then it is removed) or not.
                        if landed && store.get(path).is_some_and(|s| s.kind == *kind) {
                            store.remove(path);
                        }
                    }
                    Op::Delete { path } => {
                        let below = format!("{path}/");
                        prop_assert!(
                            !store.keys().any(|k| k.starts_with(&below)),
                            "{path} deleted before its children: {ops:?}"
                        );
                        store.remove(path);
                    }
                    Op::Write { path, from } => {
                        prop_assert!(written.insert(path.clone()), "{path} written twice");
                        let now = current[path];
                        if let Some(from) = from {
                            let src = store.get(from);
                            prop_assert!(
                                src.is_some_and(|s| s.ino == now.ino
                                    && s.data_change == now.data_change),
                                "copy of {path} from {from}, which holds {src:?}: {ops:?}"
                            );
                        }
                        let mut up = parent(path);
                        while let Some(d) = up {
                            let held = store.get(d).map(|s| s.kind);
                            prop_assert!(
                                held.is_none_or(|k| k == Kind::Dir),
                                "{path} written below {d}, a {held:?}: {ops:?}"
                            );
                            up = parent(d);
                        }
                        let held = store.get(path).map(|s| s.kind);
                        prop_assert!(
                            held.is_none_or(|k| k == now.kind),
                            "{path} ({:?}) written over a {held:?}: {ops:?}", now.kind
                        );
                        store.insert(path.clone(), now);
                    }
                }
            }
            prop_assert_eq!(&store, &current, "{:?}", ops);
        }

        /// A sync with nothing changed does nothing; excluded paths are
        /// never deleted.
        #[test]
        fn nothing_changed_is_nothing_done(t in tree()) {
            prop_assert_eq!(plan(&t, &BTreeMap::new(), &t, |_| false), vec![]);
            let excluded = plan(&t, &BTreeMap::new(), &BTreeMap::new(), |_| true);
            let deletes = excluded.iter().any(|op| matches!(op, Op::Delete { .. }));
            prop_assert!(!deletes, "{:?}", excluded);
        }
    }
}
