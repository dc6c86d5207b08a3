//! A store wrapper that drops every condition before it reaches the store
//! and says so, as a server honouring none of them would: the mirror must
//! then check ETags itself.

#![allow(dead_code)]

use larder_sync::store::{Part, Piece, Progress, Result, Source};
use larder_sync::{Cond, Listed, Metadata, ObjectInfo, ObjectStore};
use std::ops::Range;
use std::sync::Arc;

pub struct Ignoring(pub Arc<dyn ObjectStore>);

impl ObjectStore for Ignoring {
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.0.list(prefix)
    }
    fn lists_metadata(&self) -> bool {
        self.0.lists_metadata()
    }
    fn writes_ranges(&self) -> bool {
        self.0.writes_ranges()
    }
    fn list_keys(&self, prefix: &str) -> Result<Vec<Listed>> {
        self.0.list_keys(prefix)
    }
    fn head_many(&self, keys: Vec<String>, progress: &Progress<'_>) -> Result<Vec<ObjectInfo>> {
        self.0.head_many(keys, progress)
    }
    fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        self.0.head(key)
    }
    fn get(&self, key: &str, range: Option<Range<u64>>, _: &Cond) -> Result<Vec<u8>> {
        self.0.get(key, range, &Cond::None)
    }
    fn put(&self, key: &str, body: &[u8], meta: &Metadata, _: &Cond) -> Result<String> {
        self.0.put(key, body, meta, &Cond::None)
    }
    fn put_parts(&self, key: &str, parts: &[Part], meta: &Metadata, _: &Cond) -> Result<String> {
        self.0.put_parts(key, parts, meta, &Cond::None)
    }
    fn put_from(
        &self,
        key: &str,
        pieces: &[Piece],
        source: &Arc<dyn Source>,
        meta: &Metadata,
        _: &Cond,
    ) -> Result<String> {
        self.0.put_from(key, pieces, source, meta, &Cond::None)
    }
    fn copy(&self, from: &str, to: &str, meta: &Metadata, _: &Cond) -> Result<String> {
        self.0.copy(from, to, meta, &Cond::None)
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.0.delete(key)
    }
    fn enforces_conditions(&self) -> bool {
        false
    }
}
