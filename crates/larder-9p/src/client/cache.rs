//! File data a client has read, kept across reads and checked at open
//! (close-to-open consistency).

use std::collections::HashMap;
use std::rc::Rc;

/// File data kept across reads, per client.
const CACHE_LIMIT: usize = 256 << 20;

/// File data this instance has read, by inode, valid while the file's
/// data version is the one it was read at.
#[derive(Default)]
pub(super) struct Cache {
    files: HashMap<u64, CachedFile>,
    bytes: usize,
}

struct CachedFile {
    version: u64,
    /// Whole blocks, or the last one short (end of file as it was then).
    blocks: HashMap<u64, Rc<Vec<u8>>>,
}

impl Cache {
    /// At open: keep what was cached only if the file has not changed.
    pub fn validate(&mut self, ino: u64, version: u64) {
        if let Some(f) = self.files.get(&ino) {
            if f.version != version {
                self.invalidate(ino);
            }
        }
        self.files.entry(ino).or_insert_with(|| CachedFile {
            version,
            blocks: HashMap::new(),
        });
    }

    /// Forgets the file: it changed on the server (seen at open), or this
    /// instance changed it (its version there moved on).
    pub fn invalidate(&mut self, ino: u64) {
        if let Some(f) = self.files.remove(&ino) {
            self.bytes -= f.blocks.values().map(|b| b.len()).sum::<usize>();
        }
    }

    pub fn get(&self, ino: u64, block: u64) -> Option<Rc<Vec<u8>>> {
        self.files.get(&ino)?.blocks.get(&block).cloned()
    }

    pub fn put(&mut self, ino: u64, block: u64, data: Vec<u8>) -> Rc<Vec<u8>> {
        let data = Rc::new(data);
        while self.bytes + data.len() > CACHE_LIMIT && self.evict_one() {}
        if let Some(f) = self.files.get_mut(&ino) {
            self.bytes += data.len();
            if let Some(old) = f.blocks.insert(block, data.clone()) {
                self.bytes -= old.len();
            }
        }
        data
    }

    fn evict_one(&mut self) -> bool {
        let Some((&ino, _)) = self.files.iter().find(|(_, f)| !f.blocks.is_empty()) else {
            return false;
        };
        let f = self.files.get_mut(&ino).expect("found above");
        let &block = f.blocks.keys().next().expect("not empty");
        let len = f.blocks.remove(&block).map_or(0, |b| b.len());
        self.bytes -= len;
        true
    }
}
