//! What the store holds, by path, as of the last successful operation on
//! each, with the paths of each inode beside it: the change log names
//! inodes, and a sync must find where they were.

use super::Synced;
use std::collections::{BTreeMap, HashMap};

#[derive(Default)]
pub(super) struct Ledger {
    paths: BTreeMap<String, Synced>,
    /// Every path above, by its inode (several for hard links).
    inos: HashMap<u64, Vec<String>>,
}

impl std::ops::Deref for Ledger {
    type Target = BTreeMap<String, Synced>;
    fn deref(&self) -> &Self::Target {
        &self.paths
    }
}

impl Ledger {
    pub fn insert(&mut self, path: String, s: Synced) {
        let ino = s.ino;
        if let Some(old) = self.paths.insert(path.clone(), s) {
            if old.ino == ino {
                return;
            }
            self.forget(old.ino, &path);
        }
        self.inos.entry(ino).or_default().push(path);
    }

    pub fn remove(&mut self, path: &str) -> Option<Synced> {
        let old = self.paths.remove(path)?;
        self.forget(old.ino, path);
        Some(old)
    }

    fn forget(&mut self, ino: u64, path: &str) {
        if let Some(v) = self.inos.get_mut(&ino) {
            v.retain(|p| p != path);
            if v.is_empty() {
                self.inos.remove(&ino);
            }
        }
    }

    /// Where `ino` was stored.
    pub fn paths_of(&self, ino: u64) -> &[String] {
        self.inos.get(&ino).map(Vec::as_slice).unwrap_or_default()
    }

    /// Everything stored below directory `dir` (not `dir` itself).
    pub fn below<'a>(&'a self, dir: &str) -> impl Iterator<Item = &'a String> + 'a {
        let prefix = format!("{dir}/");
        self.paths
            .range(prefix.clone()..)
            .take_while(move |(p, _)| p.starts_with(&prefix))
            .map(|(p, _)| p)
    }

    /// A path's versions moved without its object changing (a poll
    /// applied the store's own change): the same inode.
    pub fn set_versions(&mut self, path: &str, change: u64, data_change: u64) {
        if let Some(s) = self.paths.get_mut(path) {
            s.change = change;
            s.data_change = data_change;
        }
    }
}
