//! A store-backed volume: files come back from the store lazily, or all at
//! once in the background with `prefetch`.

use fs_core::{DescriptorFlags as DF, OpenFlags as OF, PathFlags as PF};
use larder_sync::{Cond, Faulty, MemStore, ObjectStore};
use larder_volume::{SyncMode, VolumeBuilder};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn store_with_files() -> Arc<Faulty<MemStore>> {
    let store = Arc::new(Faulty::new(MemStore::new()));
    for (key, len) in [("app/a.bin", 3 << 20), ("app/d/b.txt", 10)] {
        let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        store
            .put(key, &body, &Default::default(), &Cond::None)
            .unwrap();
    }
    store
}

#[test]
fn contents_are_fetched_when_read_unless_prefetched() {
    let store = store_with_files();
    let vfs = VolumeBuilder::new()
        .store(store.clone(), "app/", SyncMode::OnFsync)
        .build()
        .unwrap();
    assert_eq!(store.traffic().get_bytes, 0, "fetched before any read");
    let root = vfs.fs().root(DF::READ).unwrap();
    let f = root
        .open_at(PF::empty(), "d/b.txt", OF::empty(), DF::READ)
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(f.read(&mut buf, 0).unwrap(), 10);
    assert_eq!(&buf[..10], &(0..10).collect::<Vec<u8>>()[..]);
    assert_eq!(store.traffic().get_bytes, 10);

    let store = store_with_files();
    let vfs = VolumeBuilder::new()
        .store(store.clone(), "app/", SyncMode::OnFsync)
        .prefetch(true)
        .build()
        .unwrap();
    let root = vfs.fs().root(DF::READ).unwrap();
    let unfetched = |p: &str| {
        let f = root.open_at(PF::empty(), p, OF::empty(), DF::READ).unwrap();
        f.unfetched().unwrap().len()
    };
    let t = Instant::now();
    while unfetched("a.bin") + unfetched("d/b.txt") > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "prefetch did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(store.traffic().get_bytes, (3 << 20) + 10);
    // Everything is in memory now: the store going away changes nothing.
    store.set_down(true);
    let f = root
        .open_at(PF::empty(), "a.bin", OF::empty(), DF::READ)
        .unwrap();
    let mut buf = vec![0u8; 100];
    f.read(&mut buf, (2 << 20) + 7).unwrap();
    let want: Vec<u8> = ((2 << 20) + 7..(2 << 20) + 107)
        .map(|i: u32| (i % 251) as u8)
        .collect();
    assert_eq!(buf, want);
}

/// Two filesystems on one store, each polling: a file one of them syncs
/// shows up in the other, and so does its deletion.
#[test]
fn polling_shares_changes_between_two_filesystems() {
    let store = Arc::new(MemStore::new());
    let open = || {
        VolumeBuilder::new()
            .store(store.clone(), "shared/", SyncMode::OnFsync)
            .poll(Duration::from_millis(30))
            .build()
            .unwrap()
    };
    let (a, b) = (open(), open());
    let wait_for = |what: &str, cond: &dyn Fn() -> bool| {
        let t = Instant::now();
        while !cond() {
            assert!(t.elapsed() < Duration::from_secs(20), "{what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let ra = a.fs().root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let f = ra
        .open_at(PF::empty(), "note", OF::CREATE, DF::WRITE)
        .unwrap();
    f.write(b"from a", 0).unwrap();
    f.sync().unwrap();
    drop(f);
    let rb = b.fs().root(DF::READ).unwrap();
    let read_b = || {
        let f = rb
            .open_at(PF::empty(), "note", OF::empty(), DF::READ)
            .ok()?;
        let mut buf = [0u8; 16];
        let n = f.read(&mut buf, 0).ok()?;
        Some(buf[..n].to_vec())
    };
    wait_for("b sees a's file", &|| {
        read_b().as_deref() == Some(&b"from a"[..])
    });
    ra.unlink_file_at("note").unwrap();
    a.sync().unwrap();
    wait_for("b sees the deletion", &|| read_b().is_none());
}

/// What a host may run on its async threads: a lazily restored file may
/// fetch until every byte is in (then it never waits); changes wait on the
/// store only under write-through, or for a close with no group commit.
#[test]
fn only_calls_that_can_wait_on_the_store_say_so() {
    for (mode, changes_wait) in [
        (SyncMode::OnClose, false),
        (SyncMode::OnFsync, false),
        (SyncMode::Periodic(Duration::from_secs(60)), false),
        (SyncMode::WriteThrough, true),
    ] {
        let store = store_with_files();
        let vfs = VolumeBuilder::new()
            .store(store.clone(), "app/", mode)
            .build()
            .unwrap();
        assert_eq!(vfs.changes_may_wait(), changes_wait, "{mode:?}");
        assert!(vfs.may_wait(), "{mode:?}: fsync waits on the store");
        let root = vfs.fs().root(DF::READ).unwrap();
        let f = root
            .open_at(PF::empty(), "d/b.txt", OF::empty(), DF::READ)
            .unwrap();
        assert!(f.may_fetch(), "{mode:?}: restored lazily");
        f.read(&mut [0u8; 16], 0).unwrap();
        assert!(!f.may_fetch(), "{mode:?}: every byte fetched");
        assert!(!root.may_fetch(), "directories hold no bytes");
    }
    // With no worker to group them, a close may sync in its own call.
    let store = store_with_files();
    let vfs = VolumeBuilder::new()
        .store(store, "app/", SyncMode::OnClose)
        .defer_closes(true)
        .build()
        .unwrap();
    assert!(vfs.changes_may_wait());
}
