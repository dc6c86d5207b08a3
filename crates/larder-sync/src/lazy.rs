//! Contents restored lazily: a file's bytes stay in the store and are
//! fetched with range GETs as reads reach them (fs-core asks for whole
//! chunks). Every GET names the version the bytes belong to, so a file is
//! never a mix of two versions; when the mirror itself replaces the object
//! (an upload keeping the unfetched ranges as server-side copies, a
//! rename's copy) it points the source at the new key and version.

use crate::store::{Cond, ErrorKind, ObjectStore};
use fs_core::image::ImageSource;
use fs_core::ErrorCode;
use std::sync::{Arc, Mutex};

pub(crate) struct StoreSource {
    /// Retrying transient failures (`crate::retry::Retrying`).
    store: Arc<dyn ObjectStore>,
    size: u64,
    /// The object holding the unfetched bytes: (key, ETag).
    at: Mutex<(String, String)>,
}

impl StoreSource {
    pub fn new(store: Arc<dyn ObjectStore>, size: u64, key: &str, etag: &str) -> StoreSource {
        StoreSource {
            store,
            size,
            at: Mutex::new((key.to_string(), etag.to_string())),
        }
    }

    /// The unfetched bytes now live in `key` at version `etag`.
    pub fn repoint(&self, key: &str, etag: &str) {
        *self.at.lock().unwrap_or_else(|e| e.into_inner()) = (key.to_string(), etag.to_string());
    }

    pub fn at(&self) -> (String, String) {
        self.at.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl ImageSource for StoreSource {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> fs_core::Result<()> {
        let range = offset..offset + buf.len() as u64;
        loop {
            let (key, etag) = self.at();
            let got = self
                .store
                .get(&key, Some(range.clone()), &Cond::IfMatch(etag.clone()));
            match got {
                Ok(bytes) if bytes.len() == buf.len() => {
                    buf.copy_from_slice(&bytes);
                    return Ok(());
                }
                Ok(bytes) => {
                    tracing::error!(%key, want = buf.len(), got = bytes.len(), "store object shorter than restored");
                    return Err(ErrorCode::Io);
                }
                // The mirror moved the bytes while this request was out.
                Err(e) if e.kind == ErrorKind::Conflict && self.at() != (key.clone(), etag) => {}
                Err(e) => {
                    let why = match e.kind {
                        ErrorKind::Conflict | ErrorKind::NotFound => {
                            "another writer replaced the object before these bytes were fetched"
                        }
                        _ => "the store failed",
                    };
                    tracing::error!(%key, error = %e, "{why}");
                    return Err(ErrorCode::Io);
                }
            }
        }
    }
}
