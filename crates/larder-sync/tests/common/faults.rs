//! A hooked mirror over a store with injected faults, shared by the
//! in-memory, local-directory and S3 tests.
#![allow(dead_code)]

use super::model::*;
use fs_core::{DescriptorFlags as DF, Fs, OpenFlags as OF, PathFlags as PF};
use larder_sync::{Faulty, Mirror, MirrorHook, ObjectStore, SyncMode};
use std::sync::Arc;

/// A filesystem mirrored to `store` through the hook fsync and, per
/// `mode`, close or every change go through.
pub fn hooked<S: ObjectStore + 'static>(store: &Arc<S>, mode: SyncMode) -> (Fs, Arc<Mirror>) {
    let fs = Fs::in_memory();
    let mirror = Arc::new(Mirror::new(store.clone(), "").with_retry(fast_retry()));
    fs.set_sync_hook(Arc::new(MirrorHook::new(mirror.clone(), mode)));
    (fs, mirror)
}

/// A store that fails (see `faults_delay_never_lose` in mirror.rs): sync
/// retries, then reports; nothing queued is lost, and once the store is
/// back the next sync sends it all.
pub fn faults_delay_never_lose_in<S: ObjectStore + 'static>(store: Faulty<S>) {
    let store = Arc::new(store);
    let (fs, mirror) = hooked(&store, SyncMode::OnClose);
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let f = root
        .open_at(PF::empty(), "a", OF::CREATE, DF::WRITE)
        .unwrap();
    f.write(b"one", 0).unwrap();
    // Transient failures under the retry budget are invisible.
    store.fail_next(2);
    f.sync().unwrap();

    store.set_down(true);
    f.write(b"two", 0).unwrap();
    root.create_directory_at("d").unwrap();
    assert_eq!(
        f.sync(),
        Err(fs_core::ErrorCode::Io),
        "fsync reports what is not durable"
    );
    let status = mirror.status();
    assert!(!status.clean && status.last_error.is_some(), "{status:?}");
    drop(f); // the close's sync fails too, silently; the change stays queued
    store.set_down(false);
    mirror.sync(&fs).unwrap();
    assert!(mirror.status().clean);
    assert!(store.refused() > 0);
    assert_eq!(tree(&restored(store, "")), tree(&fs));
}
