//! What the tree holds now, for a sync to compare with what the store
//! holds: the whole tree (the first sync), or only the paths fs-core's
//! change log points at.
//!
//! The log names inodes; the ledger says where each was stored. Linux's
//! rules make that enough: an entry created, linked, renamed or removed
//! changes both its directory and the inode it names, so every path whose
//! object may be wrong is a stored path of a changed inode, an entry of a
//! changed directory, or below a directory that is not the one stored at
//! its path. The plan over those paths alone is the plan over the tree.
//!
//! Paths are reached one component at a time without following symlinks,
//! as the walk of the whole tree reaches them: a directory replaced by a
//! symlink to another never shows that one's entries under its name.

use super::{kind_of, Mirror, Node, State};
use crate::index;
use crate::meta::Kind;
use fs_core::{Descriptor, DescriptorFlags as DF, ErrorCode, Fs, OpenFlags as OF, PathFlags as PF};
use std::collections::{BTreeMap, BTreeSet};

/// What a sync looks at.
pub(super) struct Seen {
    /// The tree's entries, of the paths looked at.
    pub now: BTreeMap<String, Node>,
    /// The paths looked at, or `None` for the whole tree.
    pub looked: Option<BTreeSet<String>>,
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// A gone or replaced path component: the path is not in the tree.
fn absent<T>(r: Result<T, ErrorCode>) -> Result<Option<T>, ErrorCode> {
    match r {
        Ok(t) => Ok(Some(t)),
        Err(ErrorCode::NoEntry | ErrorCode::NotDirectory | ErrorCode::Loop) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The directory at `path`, if every component of it is a directory.
fn open_dir(root: &Descriptor, path: &str) -> Result<Option<Descriptor>, ErrorCode> {
    let mut d = root.try_clone()?;
    for name in path.split('/').filter(|n| !n.is_empty()) {
        match absent(d.open_at(PF::empty(), name, OF::DIRECTORY, DF::READ))? {
            Some(next) => d = next,
            None => return Ok(None),
        }
    }
    Ok(Some(d))
}

/// The entry at `path`, if its parents are directories.
fn entry_at(root: &Descriptor, path: &str) -> Result<Option<Node>, ErrorCode> {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let Some(d) = open_dir(root, dir)? else {
        return Ok(None);
    };
    Ok(absent(d.stat_at(PF::empty(), name))?.map(|stat| Node {
        kind: kind_of(stat.kind),
        stat,
    }))
}

impl Mirror {
    /// Every mirrored entry of the tree, by path.
    pub(super) fn scan(&self, fs: &Fs) -> Result<BTreeMap<String, Node>, ErrorCode> {
        let root = fs.root(DF::READ)?;
        let mut out = BTreeMap::new();
        self.walk(&root, "", &mut out)?;
        Ok(out)
    }

    /// Adds every mirrored entry below directory `dir` to `out`.
    fn walk(
        &self,
        root: &Descriptor,
        dir: &str,
        out: &mut BTreeMap<String, Node>,
    ) -> Result<(), ErrorCode> {
        let mut dirs = vec![dir.to_string()];
        while let Some(dir) = dirs.pop() {
            // Changed under us: the next sync sees what it became.
            let Some(d) = open_dir(root, &dir)? else {
                continue;
            };
            for (path, node) in self.entries(&d, &dir)? {
                if node.kind == Kind::Dir {
                    dirs.push(path.clone());
                }
                out.insert(path, node);
            }
        }
        Ok(())
    }

    /// The mirrored entries of directory `d`, which is at `dir`.
    fn entries(&self, d: &Descriptor, dir: &str) -> Result<Vec<(String, Node)>, ErrorCode> {
        let mut out = Vec::new();
        for entry in d.read_directory()? {
            let entry = entry?;
            let path = join(dir, &entry.name);
            if self.excluded(&path) {
                if path == index::RESERVED {
                    self.warn_reserved();
                }
                continue;
            }
            if let Some(stat) = absent(d.stat_at(PF::empty(), &entry.name))? {
                let kind = kind_of(stat.kind);
                out.push((path, Node { kind, stat }));
            }
        }
        Ok(out)
    }

    /// The paths that may differ from what the store holds, given the
    /// inodes changed since the last sync (see the module's comment), with
    /// the tree's entries at them.
    pub(super) fn scan_changed(
        &self,
        st: &State,
        fs: &Fs,
        inos: &BTreeSet<u64>,
    ) -> Result<Seen, ErrorCode> {
        let root = fs.root(DF::READ)?;
        let mut looked: BTreeSet<String> =
            st.pending.iter().chain(st.unsure.keys()).cloned().collect();
        for ino in inos {
            looked.extend(st.synced.paths_of(*ino).iter().cloned());
        }
        let mut now = BTreeMap::new();
        // Directories whose entries changed.
        let mut list = Vec::new();
        if inos.contains(&root.stat().ino) {
            list.push(String::new());
        }
        for path in &looked {
            if self.excluded(path) {
                continue;
            }
            let Some(node) = entry_at(&root, path)? else {
                continue;
            };
            let same_dir = st.synced.get(path).filter(|s| {
                s.kind == Kind::Dir && node.kind == Kind::Dir && s.ino == node.stat.ino
            });
            if same_dir.is_some_and(|s| s.data_change != node.stat.data_change) {
                list.push(path.clone());
            }
            now.insert(path.clone(), node);
        }
        for dir in list {
            let Some(d) = open_dir(&root, &dir)? else {
                continue;
            };
            for (path, node) in self.entries(&d, &dir)? {
                looked.insert(path.clone());
                now.insert(path, node);
            }
        }
        // Where a directory is not the one stored at its path, all below
        // it in the store and in the tree.
        let mut below = Vec::new();
        for path in &looked {
            let held = st.synced.get(path).map(|s| (s.kind, s.ino));
            let here = now.get(path).map(|n| (n.kind, n.stat.ino));
            let dir = |v: Option<(Kind, u64)>| v.is_some_and(|(k, _)| k == Kind::Dir);
            if held != here && (dir(held) || dir(here)) {
                below.push(path.clone());
            }
        }
        for path in below {
            looked.extend(st.synced.below(&path).cloned());
            if now.get(&path).is_some_and(|n| n.kind == Kind::Dir) {
                let mut tree = BTreeMap::new();
                self.walk(&root, &path, &mut tree)?;
                looked.extend(tree.keys().cloned());
                now.extend(tree);
            }
        }
        Ok(Seen {
            now,
            looked: Some(looked),
        })
    }
}
