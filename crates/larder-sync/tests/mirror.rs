//! The mirror against a model: random changes to a filesystem, synced at
//! random moments, must come back whole when a new filesystem is restored
//! from the store; in a local directory the mirror is a plain tree any
//! tool reads; faults delay, never lose; other writers are never
//! overwritten unseen.

mod common;

use common::faults::{faults_delay_never_lose_in, hooked};
use common::model::*;
use fs_core::{
    DescriptorFlags as DF, Fs, NewTimestamp, OpenFlags as OF, PathFlags as PF, Timestamp,
};
use larder_sync::{Faulty, LocalDir, MemStore, Mirror, ObjectStore, SyncMode};
use proptest::prelude::*;
use std::sync::Arc;

proptest! {
    #[test]
    fn restores_what_was_synced_in_memory(ops in prop::collection::vec(op(), 0..40)) {
        round_trip(Arc::new(MemStore::new()), &ops);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    /// Every sync after the first looks only at what fs-core logged as
    /// changed; after each one the store holds exactly the tree (a change
    /// the log or the mirror missed would stay missing).
    #[test]
    fn every_sync_stores_exactly_the_tree(ops in prop::collection::vec(op(), 0..60)) {
        let store = Arc::new(MemStore::new());
        let fs = Fs::in_memory();
        let mirror = Mirror::new(store.clone(), "p/");
        for op in &ops {
            apply(&fs, &mirror, op);
            if matches!(op, Op::Sync) {
                let t = tree(&fs);
                prop_assert_eq!(stored_paths(&store, "p/"), t.keys().cloned().collect::<Vec<_>>());
                prop_assert_eq!(tree(&restored(store.clone(), "p/")), t);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn restores_what_was_synced_in_a_directory(ops in prop::collection::vec(op(), 0..30)) {
        let dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).unwrap();
        round_trip(Arc::new(LocalDir::open(dir.path()).unwrap()), &ops);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// A second host that syncs and polls whenever the first syncs ends up
    /// with the first's tree, whatever the changes; with bare listings (as
    /// S3's) too, where the last sync vouches for what did not change.
    #[test]
    fn polling_follows_another_host(ops in prop::collection::vec(op(), 0..30), bare: bool) {
        let store = Arc::new(MemStore::new());
        store.set_bare_listings(bare);
        let a = Fs::in_memory();
        let ma = Mirror::new(store.clone(), "p/").with_retry(fast_retry());
        let b = Fs::in_memory();
        let mb = Mirror::restore(store.clone(), "p/", &b).unwrap();
        for op in &ops {
            apply(&a, &ma, op);
            if matches!(op, Op::Sync) {
                mb.sync(&b).unwrap();
                let p = mb.poll(&b).unwrap();
                prop_assert!(p.skipped.is_empty() && !p.local_changes_pending, "{:?}", p);
                prop_assert_eq!(tree(&b), tree(&a));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    /// Where listings lack metadata (as S3's do), a restore after
    /// `settle` takes every object's metadata from the index: the same
    /// tree, and not one HEAD.
    #[test]
    fn an_index_restores_the_same_tree_with_no_heads(ops in prop::collection::vec(op(), 0..40)) {
        let store = Arc::new(MemStore::new());
        store.set_bare_listings(true);
        let fs = Fs::in_memory();
        let mirror = Mirror::new(store.clone(), "p/").with_retry(fast_retry());
        for op in &ops {
            apply(&fs, &mirror, op);
        }
        mirror.settle(&fs).unwrap();
        let before = store.traffic();
        let again = restored(store.clone(), "p/");
        let t = store.traffic();
        prop_assert_eq!(tree(&again), tree(&fs));
        prop_assert_eq!(t.heads - before.heads, 0);
        prop_assert_eq!(t.lists - before.lists, 1);
    }
}

/// A tree with a file, a directory, a symlink and a mode, synced and
/// settled into a store with bare listings (an index written).
fn indexed_tree(store: &Arc<MemStore>) {
    let fs = Fs::in_memory();
    let m = Mirror::new(store.clone(), "p/");
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    root.create_directory_at("etc").unwrap();
    put_file(&fs, "etc/conf", b"v1");
    root.set_mode_at(PF::empty(), "etc/conf", 0o600, 0, 0)
        .unwrap();
    put_file(&fs, "a", b"aaa");
    put_file(&fs, "b", b"bbb");
    root.symlink_at("etc/conf", "link").unwrap();
    m.settle(&fs).unwrap();
}

/// What a restore makes of the store, and the HEADs it took.
fn restore_counting(store: &Arc<MemStore>) -> (Fs, u64) {
    let before = store.traffic().heads;
    let fs = Fs::in_memory();
    let m = Mirror::restore(store.clone(), "p/", &fs).unwrap();
    let heads = store.traffic().heads - before;
    // And what that mirror's first sync leaves: the index repaired.
    m.settle(&fs).unwrap();
    (fs, heads)
}

/// The tree a restore that trusts no index makes (every object's
/// metadata from the store itself).
fn reference(store: &Arc<MemStore>) -> std::collections::BTreeMap<String, Entry> {
    store.set_bare_listings(false);
    let t = tree(&restored(store.clone(), "p/"));
    store.set_bare_listings(true);
    t
}

/// A truncated, hand-edited, or older index, or objects changed, added
/// and removed by other tools since it was written: each is noticed (the
/// objects it no longer describes are asked about), the restored tree is
/// the store's, and the next sync rewrites the index so the restore after
/// needs no HEAD at all.
#[test]
fn a_corrupt_or_stale_index_is_detected_and_repaired() {
    let index = |store: &MemStore| store.contents()["p/.larder/index"].0.clone();
    let put_index = |store: &MemStore, bytes: &[u8]| {
        store
            .put(
                "p/.larder/index",
                bytes,
                &Default::default(),
                &larder_sync::Cond::None,
            )
            .unwrap();
    };
    type Spoil = dyn Fn(&Arc<MemStore>);
    let cases: Vec<(&str, Box<Spoil>)> = vec![
        (
            "truncated",
            Box::new(move |s: &Arc<MemStore>| {
                let i = index(s);
                put_index(s, &i[..i.len() / 2]);
            }),
        ),
        (
            "a byte edited",
            Box::new(move |s: &Arc<MemStore>| {
                let mut i = index(s);
                let mid = i.len() / 2;
                i[mid] ^= 1;
                put_index(s, &i);
            }),
        ),
        (
            "other tools' changes",
            Box::new(|s: &Arc<MemStore>| {
                let none = &larder_sync::Cond::None;
                s.put(
                    "p/a",
                    b"rewritten by another tool",
                    &Default::default(),
                    none,
                )
                .unwrap();
                s.put("p/new", b"added by another tool", &Default::default(), none)
                    .unwrap();
                s.delete("p/b").unwrap();
            }),
        ),
        (
            "older than the objects",
            Box::new(move |s: &Arc<MemStore>| {
                let old = index(s);
                // A later writer's changes and index, then the old one back.
                let fs = Fs::in_memory();
                let later = Mirror::restore(s.clone(), "p/", &fs).unwrap();
                put_file(&fs, "etc/conf", b"version two, after the index");
                let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
                root.set_mode_at(PF::empty(), "a", 0o700, 0, 0).unwrap();
                later.settle(&fs).unwrap();
                put_index(s, &old);
            }),
        ),
    ];
    for (what, spoil) in cases {
        let store = Arc::new(MemStore::new());
        store.set_bare_listings(true);
        indexed_tree(&store);
        assert_eq!(restore_counting(&store).1, 0, "{what}: the good index");
        spoil(&store);
        let want = reference(&store);
        let (got, heads) = restore_counting(&store);
        assert_eq!(tree(&got), want, "{what}: restored from a spoiled index");
        assert!(heads > 0, "{what}: the spoiled index was trusted");
        let (again, heads) = restore_counting(&store);
        assert_eq!(tree(&again), want, "{what}: after the repair");
        assert_eq!(heads, 0, "{what}: the index was not repaired");
    }
}

/// `.larder` at the root is where the index lives: never stored from the
/// tree, never restored into it, whatever a store holds there.
#[test]
fn the_index_s_place_is_not_part_of_the_tree() {
    let store = Arc::new(MemStore::new());
    store.set_bare_listings(true);
    let fs = Fs::in_memory();
    let m = Mirror::new(store.clone(), "p/");
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    root.create_directory_at(".larder").unwrap();
    put_file(&fs, ".larder/mine", b"an app's own");
    put_file(&fs, "kept", b"kept");
    m.settle(&fs).unwrap();
    let keys: Vec<String> = store.contents().into_keys().collect();
    assert_eq!(keys, ["p/.larder/index", "p/.larder/version", "p/kept"]);
    // Another tool's object there is not restored either.
    store
        .put(
            "p/.larder/theirs",
            b"x",
            &Default::default(),
            &larder_sync::Cond::None,
        )
        .unwrap();
    let back: Vec<String> = tree(&restored(store.clone(), "p/")).into_keys().collect();
    assert_eq!(back, ["kept"]);
}

/// Stores that list metadata (a local directory, memory) get no index:
/// a local store stays the app's tree and nothing else, however much
/// changes.
#[test]
fn stores_that_list_metadata_get_no_index() {
    let dir = tempfile::tempdir().unwrap();
    let local = Arc::new(LocalDir::open(dir.path()).unwrap());
    let mem = Arc::new(MemStore::new());
    for store in [local as Arc<dyn ObjectStore>, mem.clone()] {
        let fs = Fs::in_memory();
        let m = Mirror::new(store.clone(), "");
        for i in 0..200 {
            put_file(&fs, &format!("f{i}"), b"x");
            if i % 50 == 0 {
                m.sync(&fs).unwrap();
            }
        }
        m.settle(&fs).unwrap();
        let keys: Vec<String> = store.list("").unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(keys.len(), 200, "{keys:?}");
    }
    assert!(!dir.path().join(".larder").exists());
    assert!(mem.contents().keys().all(|k| !k.starts_with(".larder")));
}

/// A synced directory with a file in it, replaced by a file of the same
/// name: a directory store must drop the old children before the directory
/// can become a file (found by the property test above on a CI run).
#[test]
fn a_directory_replaced_by_a_file_round_trips() {
    // name(3) is "d2", name(12) is "d2/x".
    let ops = [
        Op::Mkdir(3),
        Op::Write(12, b"inside".to_vec(), 0),
        Op::Sync,
        Op::Unlink(12),
        Op::Rmdir(3),
        Op::Write(3, b"now a file".to_vec(), 0),
    ];
    let dir = tempfile::tempdir().unwrap();
    round_trip(Arc::new(LocalDir::open(dir.path()).unwrap()), &ops);
    round_trip(Arc::new(MemStore::new()), &ops);
}

/// A sync that looks only at what changed reaches each path without
/// following symlinks: a file still stored under a directory now replaced
/// by a symlink to another is not read through the symlink.
#[test]
fn a_directory_replaced_by_a_symlink_is_not_followed() {
    let store = Arc::new(MemStore::new());
    let fs = Fs::in_memory();
    let mirror = Mirror::new(store.clone(), "p/");
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    for d in ["d1", "d2"] {
        root.create_directory_at(d).unwrap();
        put_file(&fs, &format!("{d}/x"), d.as_bytes());
    }
    mirror.sync(&fs).unwrap();
    root.rename_at("d1", &root, "moved").unwrap();
    root.symlink_at("d2", "d1").unwrap();
    put_file(&fs, "moved/x", b"changed after the move");
    mirror.sync(&fs).unwrap();
    let t = tree(&fs);
    assert_eq!(tree(&restored(store.clone(), "p/")), t);
    // Nothing else is stored either (a restore skips what cannot be).
    assert_eq!(
        stored_paths(&store, "p/"),
        t.keys().cloned().collect::<Vec<_>>()
    );
}

/// The paths of the objects under `prefix`, in order.
fn stored_paths(store: &MemStore, prefix: &str) -> Vec<String> {
    let mut paths: Vec<String> = store
        .list(prefix)
        .unwrap()
        .into_iter()
        .map(|o| o.key[prefix.len()..].trim_end_matches('/').to_string())
        .collect();
    paths.sort();
    paths
}

/// The local mirror is a plain tree: std::fs sees the same paths, bytes,
/// modes, mtimes and symlink targets as the filesystem.
#[test]
fn a_local_mirror_reads_as_plain_files() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Fs::in_memory();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    root.create_directory_at("etc").unwrap();
    let f = root
        .open_at(PF::empty(), "etc/app.toml", OF::CREATE, DF::WRITE)
        .unwrap();
    f.write(b"name = 1\n", 0).unwrap();
    root.set_mode_at(PF::empty(), "etc/app.toml", 0o600, 0, 0)
        .unwrap();
    let t = Timestamp::new(1_600_000_000, 123_456_789).unwrap();
    root.set_times_at(
        PF::empty(),
        "etc/app.toml",
        NewTimestamp::NoChange,
        NewTimestamp::Timestamp(t),
    )
    .unwrap();
    root.symlink_at("etc/app.toml", "link").unwrap();
    root.create_directory_at("empty").unwrap();
    let mirror = Mirror::new(Arc::new(LocalDir::open(dir.path()).unwrap()), "");
    mirror.sync(&fs).unwrap();

    use std::os::unix::fs::MetadataExt;
    let p = dir.path();
    assert_eq!(
        std::fs::read(p.join("etc/app.toml")).unwrap(),
        b"name = 1\n"
    );
    let m = std::fs::metadata(p.join("etc/app.toml")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o600);
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_600_000_000, 123_456_789));
    assert_eq!(
        std::fs::read_link(p.join("link")).unwrap().to_str(),
        Some("etc/app.toml")
    );
    assert!(p.join("empty").is_dir(), "empty directories persist");

    // Changes by other tools show up at the next restore.
    std::fs::write(p.join("etc/added-by-hand"), b"hi").unwrap();
    std::fs::create_dir_all(p.join("new/deep")).unwrap();
    std::fs::write(p.join("new/deep/file"), b"x").unwrap();
    let back = tree(&restored(Arc::new(LocalDir::open(p).unwrap()), ""));
    assert!(matches!(&back["etc/added-by-hand"], Entry::File(d, _, _) if d == b"hi"));
    assert!(matches!(&back["new/deep/file"], Entry::File(d, _, _) if d == b"x"));
}

/// Keys other S3 tools write (no directory markers, no metadata) appear as
/// files with default modes; keys that cannot be paths are skipped.
#[test]
fn objects_from_other_writers_appear_as_files() {
    let store = Arc::new(MemStore::new());
    let none = Default::default();
    for (k, body) in [
        ("p/reports/2026/q1.csv", &b"a,b\n"[..]),
        ("p/top.txt", b"top"),
        ("p/bad//name", b"skipped"),
        ("p/../escape", b"skipped"),
    ] {
        store.put(k, body, &none, &larder_sync::Cond::None).unwrap();
    }
    let fs = restored(store, "p");
    let t = tree(&fs);
    assert!(matches!(&t["reports/2026/q1.csv"], Entry::File(d, 0o644, _) if d == b"a,b\n"));
    assert!(matches!(&t["reports"], Entry::Dir(0o755, _)));
    assert!(matches!(&t["top.txt"], Entry::File(d, _, _) if d == b"top"));
    assert!(
        !t.keys().any(|k| k.contains("escape") || k.contains("name")),
        "{t:?}"
    );
}

/// A renamed file is copied in the store, not uploaded again.
#[test]
fn a_rename_is_a_server_side_copy() {
    let store = Arc::new(MemStore::new());
    let fs = Fs::in_memory();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let f = root
        .open_at(PF::empty(), "big", OF::CREATE, DF::WRITE)
        .unwrap();
    f.write(&vec![7; 1 << 20], 0).unwrap();
    let mirror = Mirror::new(store.clone(), "");
    mirror.sync(&fs).unwrap();
    let before = store.traffic();
    root.create_directory_at("dir").unwrap();
    root.rename_at("big", &root, "dir/moved").unwrap();
    let r = mirror.sync(&fs).unwrap();
    let after = store.traffic();
    assert_eq!((r.copied, r.deleted), (1, 1), "{r:?}");
    assert!(after.put_bytes - before.put_bytes < 1024, "{r:?}");
    assert_eq!(tree(&restored(store, "")), tree(&fs));
}

/// A store that fails: sync retries, then reports; nothing queued is lost,
/// and once the store is back the next sync sends it all. The in-memory
/// store and a host directory, through the same faults.
#[test]
fn faults_delay_never_lose() {
    faults_delay_never_lose_in(Faulty::new(MemStore::new()));
    let dir = tempfile::tempdir().unwrap();
    faults_delay_never_lose_in(Faulty::new(LocalDir::open(dir.path()).unwrap()));
}

/// Soon after a failed sync, a close (which nobody waits on to learn the
/// outcome) makes one attempt per request rather than retrying, so an app
/// closing files in an outage is not held up; fsync still retries.
#[test]
fn closes_in_an_outage_do_not_wait_out_the_retries() {
    let store = Arc::new(Faulty::new(MemStore::new()));
    let (fs, mirror) = hooked(&store, SyncMode::OnClose);
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let open = |name: &str| {
        root.open_at(PF::empty(), name, OF::CREATE, DF::WRITE)
            .unwrap()
    };
    let refused = || store.refused();
    store.set_down(true);
    let f = open("a");
    f.write(b"one", 0).unwrap();
    assert_eq!(f.sync(), Err(fs_core::ErrorCode::Io));
    assert_eq!(refused(), u64::from(fast_retry().attempts), "fsync retries");
    drop(f);
    assert_eq!(refused(), u64::from(fast_retry().attempts) + 1, "one try");
    let g = open("b");
    g.write(b"two", 0).unwrap();
    drop(g);
    assert_eq!(refused(), u64::from(fast_retry().attempts) + 2);
    // Back: the next close sends everything.
    store.set_down(false);
    let h = open("c");
    drop(h);
    assert!(mirror.status().clean, "{:?}", mirror.status());
    assert_eq!(tree(&restored(store, "")), tree(&fs));
}

/// Write-through: every change is in the store when its call returns, with
/// no fsync or close; while the store is down calls still succeed, the
/// changes queue, and the first change after it is back sends them all.
#[test]
fn write_through_stores_each_change_before_returning() {
    let store = Arc::new(Faulty::new(MemStore::new()));
    let (fs, mirror) = hooked(&store, SyncMode::WriteThrough);
    let held = |key: &str| store.contents().get(key).map(|(b, _)| b.clone());
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let f = root
        .open_at(PF::empty(), "a", OF::CREATE, DF::WRITE)
        .unwrap();
    assert_eq!(held("a"), Some(Vec::new()), "create");
    f.write(b"first", 0).unwrap();
    assert_eq!(held("a").as_deref(), Some(&b"first"[..]), "write");
    root.create_directory_at("d").unwrap();
    assert!(held("d/").is_some(), "mkdir");
    root.rename_at("a", &root, "d/a").unwrap();
    assert_eq!(held("a"), None, "rename: old key");
    assert_eq!(
        held("d/a").as_deref(),
        Some(&b"first"[..]),
        "rename: new key"
    );

    store.set_down(true);
    f.write(b"second", 0).unwrap();
    root.symlink_at("d/a", "s").unwrap();
    assert!(!mirror.status().clean);
    assert_eq!(f.sync(), Err(fs_core::ErrorCode::Io), "fsync reports it");
    store.set_down(false);
    f.set_size(6).unwrap();
    assert!(mirror.status().clean, "{:?}", mirror.status());
    assert_eq!(held("d/a").as_deref(), Some(&b"second"[..]));
    assert_eq!(tree(&restored(store.clone(), "")), tree(&fs));
    root.unlink_file_at("s").unwrap();
    assert_eq!(held("s"), None, "unlink");
}

/// Two filesystems on one prefix change the same file: the second to sync
/// finds the other's version, keeps its own beside it, and says so.
#[test]
fn another_writers_change_is_never_overwritten() {
    for enforced in [true, false] {
        let store = Arc::new(MemStore::new());
        store.set_conditions(enforced);
        let (fs1, fs2) = (Fs::in_memory(), Fs::in_memory());
        let m1 = Mirror::new(store.clone(), "");
        let w = |fs: &Fs, data: &[u8]| {
            let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
            let f = root
                .open_at(
                    PF::empty(),
                    "shared.txt",
                    OF::CREATE | OF::TRUNCATE,
                    DF::WRITE,
                )
                .unwrap();
            f.write(data, 0).unwrap();
        };
        w(&fs1, b"base");
        m1.sync(&fs1).unwrap();
        let m2 = Mirror::restore(store.clone(), "", &fs2).unwrap();
        w(&fs1, b"from host one");
        m1.sync(&fs1).unwrap();
        w(&fs2, b"from host two");
        let r = m2.sync(&fs2).unwrap();
        assert_eq!(r.conflicts.len(), 1, "{r:?}");
        let t = tree(&restored(store.clone(), ""));
        assert!(matches!(&t["shared.txt"], Entry::File(d, _, _) if d == b"from host one"));
        let kept: Vec<_> = t
            .iter()
            .filter(|(k, _)| k.starts_with("shared.txt.larder-conflict-"))
            .collect();
        assert!(
            matches!(kept[..], [(_, Entry::File(d, _, _))] if d == b"from host two"),
            "conditions enforced: {enforced}: {t:?}"
        );
        assert_eq!(m2.status().conflicts.len(), 1);
    }
}

/// A write that took effect but whose reply was lost: the retry finds our
/// own object, which is not a conflict.
#[test]
fn a_lost_reply_is_not_a_conflict() {
    let store = Arc::new(Faulty::new(MemStore::new()));
    let fs = Fs::in_memory();
    let mirror = Mirror::new(store.clone(), "").with_retry(fast_retry());
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let f = root
            .open_at(PF::empty(), name, OF::CREATE, DF::WRITE)
            .unwrap();
        f.write(name.repeat(1000 + i).as_bytes(), 0).unwrap();
    }
    store.lose_replies(2);
    let r = mirror.sync(&fs).unwrap();
    assert!(r.conflicts.is_empty(), "{r:?}");
    root.rename_at("a", &root, "d").unwrap();
    root.unlink_file_at("b").unwrap();
    store.lose_replies(2);
    let r = mirror.sync(&fs).unwrap();
    assert!(r.conflicts.is_empty(), "{r:?}");
    assert_eq!(tree(&restored(store, "")), tree(&fs));
}

/// A write that failed for good but had landed (a reply lost, then the
/// store down for every retry) is recognised as ours later: a removal,
/// a rewrite or a change of kind made meanwhile replaces it, with no
/// conflict reported and nothing left behind. (Found by the composed-app
/// outage test: SIGSTOP'd servers apply requests queued before the stop.)
#[test]
fn a_write_that_landed_unseen_is_still_ours() {
    let store = Arc::new(Faulty::new(MemStore::new()));
    let fs = Fs::in_memory();
    let once = larder_sync::Retry {
        attempts: 1,
        ..fast_retry()
    };
    let mirror = Mirror::new(store.clone(), "").with_retry(once);
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let write = |name: &str, text: &str| {
        let f = root
            .open_at(PF::empty(), name, OF::CREATE | OF::TRUNCATE, DF::WRITE)
            .unwrap();
        f.write(text.as_bytes(), 0).unwrap();
    };
    let sync_lost = || {
        store.lose_replies(1);
        assert!(
            mirror.sync(&fs).is_err(),
            "the only attempt's reply is lost"
        );
    };
    write("kept", "v1");
    mirror.sync(&fs).unwrap();

    // Created, landed unseen, then removed here.
    write("gone", "x");
    sync_lost();
    root.unlink_file_at("gone").unwrap();
    // Created, landed unseen, then rewritten here.
    write("again", "first");
    sync_lost();
    write("again", "second, longer");
    // Updated, landed unseen, then removed here.
    write("kept", "v2");
    sync_lost();
    root.unlink_file_at("kept").unwrap();
    // A file landed unseen, then a directory of the same name here.
    write("kind", "file");
    sync_lost();
    root.unlink_file_at("kind").unwrap();
    root.create_directory_at("kind").unwrap();

    let r = mirror.sync(&fs).unwrap();
    assert!(r.conflicts.is_empty(), "{r:?}");
    let keys: Vec<String> = store.contents().into_keys().collect();
    assert_eq!(keys, ["again", "kind/"], "nothing else is left");
    assert_eq!(tree(&restored(store, "")), tree(&fs));
}

/// A small change to a large file sends the pieces it touched, not the
/// file; whatever the change (inside a piece, across two, growing,
/// shrinking), the store ends up holding exactly the file.
#[test]
fn small_changes_to_large_files_send_only_changed_pieces() {
    let store = Arc::new(MemStore::new());
    let fs = Fs::in_memory();
    let mirror = Mirror::new(store.clone(), "");
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let f = root
        .open_at(PF::empty(), "big", OF::CREATE, DF::READ | DF::WRITE)
        .unwrap();
    let data: Vec<u8> = (0..40u32 << 20).map(|i| (i % 253) as u8).collect();
    f.write(&data, 0).unwrap();
    mirror.sync(&fs).unwrap();
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    for (what, at, len, size, max_sent) in [
        ("4 KiB inside a piece", 20 << 20, 4096, None, 8.0),
        ("across two pieces", (16 << 20) - 100, 200, None, 16.0),
        ("grown by 1 MiB", 40 << 20, 1 << 20, None, 9.0),
        ("shrunk to 30 MiB", 0, 0, Some(30u64 << 20), 8.0),
    ] {
        let before = store.traffic().put_bytes;
        if len > 0 {
            f.write(&vec![0xab; len], at).unwrap();
        }
        if let Some(s) = size {
            f.set_size(s).unwrap();
        }
        let r = mirror.sync(&fs).unwrap();
        let sent = store.traffic().put_bytes - before;
        assert!(
            mib(sent) <= max_sent,
            "{what}: sent {:.1} MiB ({r:?})",
            mib(sent)
        );
        assert_eq!(tree(&restored(store.clone(), "")), tree(&fs), "{what}");
    }
}

fn pattern(len: u64, seed: u64) -> Vec<u8> {
    (0..len)
        .map(|i| ((i ^ seed).wrapping_mul(0x9e37_79b9) >> 11) as u8)
        .collect()
}

fn read_at(f: &fs_core::Descriptor, at: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    let mut n = 0;
    while n < len {
        match f.read(&mut buf[n..], at + n as u64).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    buf.truncate(n);
    buf
}

/// A large file restored from the store costs nothing until read; reads
/// fetch only the chunks they reach; a small overwrite syncs as one piece
/// (one page to a store that writes ranges, one 8 MiB part to one that
/// copies whole parts, as S3) without fetching the rest; and after that
/// sync, renames and restores every byte is still the right one.
#[test]
fn restore_is_lazy_and_a_small_overwrite_fetches_and_sends_little() {
    lazy_restore_and_small_overwrite(true);
    lazy_restore_and_small_overwrite(false);
}

fn lazy_restore_and_small_overwrite(ranges: bool) {
    const MIB: u64 = 1 << 20;
    let store = Arc::new(MemStore::new());
    store.set_whole_parts(!ranges);
    let mut model = pattern(40 * MIB + 77, 1);
    {
        let fs = Fs::in_memory();
        let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
        let f = root
            .open_at(PF::empty(), "big", OF::CREATE, DF::WRITE)
            .unwrap();
        f.write(&model, 0).unwrap();
        Mirror::new(store.clone(), "").sync(&fs).unwrap();
    }
    let fs = Fs::in_memory();
    let gets = || store.traffic().get_bytes;
    let mirror = Mirror::restore(store.clone(), "", &fs).unwrap();
    assert_eq!(gets(), 0, "restore fetched file contents");
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let f = root
        .open_at(PF::empty(), "big", OF::empty(), DF::READ | DF::WRITE)
        .unwrap();
    assert_eq!(f.stat().size, model.len() as u64);
    assert_eq!(
        read_at(&f, 30 * MIB + 5, 4096),
        &model[30 << 20 | 5..][..4096]
    );
    assert_eq!(gets(), MIB, "one chunk for one small read");

    f.write(b"changed", 20 * MIB).unwrap();
    model[20 << 20..][..7].copy_from_slice(b"changed");
    let before = store.traffic().put_bytes;
    let r = mirror.sync(&fs).unwrap();
    let piece = if ranges { 4096 } else { 8 * MIB };
    assert_eq!(r.bytes_uploaded, piece, "{r:?}");
    assert_eq!(store.traffic().put_bytes - before, piece);
    // The piece around the write (the page, or 16..24 MiB) was read to be
    // sent, a chunk at a time.
    assert!(gets() <= MIB + piece.max(MIB), "fetched {} bytes", gets());

    // Unfetched bytes now come from the object the sync wrote.
    assert_eq!(read_at(&f, 5 * MIB, 100), &model[5 << 20..][..100]);
    // A rename moves the object; the file still reads whole afterwards.
    root.rename_at("big", &root, "moved").unwrap();
    mirror.sync(&fs).unwrap();
    assert!(store.contents().contains_key("moved") && !store.contents().contains_key("big"));
    assert!(
        read_at(&f, 0, model.len() + 1) == model,
        "bytes differ after a rename"
    );
    assert_eq!(tree(&restored(store.clone(), "")), tree(&fs));
}

/// Another writer replacing the object before the untouched part of a
/// lazily restored file was read: reads of that part fail with an I/O
/// error rather than mixing their bytes into ours.
#[test]
fn bytes_of_a_replaced_version_are_never_mixed_in() {
    let store = Arc::new(MemStore::new());
    let ours = pattern(3 << 20, 2);
    store
        .put("f", &ours, &Default::default(), &larder_sync::Cond::None)
        .unwrap();
    let fs = Fs::in_memory();
    let _mirror = Mirror::restore(store.clone(), "", &fs).unwrap();
    let root = fs.root(DF::READ).unwrap();
    let f = root
        .open_at(PF::empty(), "f", OF::empty(), DF::READ)
        .unwrap();
    assert_eq!(read_at(&f, 0, 10), &ours[..10]);
    store
        .put(
            "f",
            &pattern(3 << 20, 3),
            &Default::default(),
            &larder_sync::Cond::None,
        )
        .unwrap();
    // The first chunk was fetched before: still ours.
    assert_eq!(read_at(&f, 0, 10), &ours[..10]);
    let mut buf = [0u8; 10];
    assert_eq!(f.read(&mut buf, 2 << 20), Err(fs_core::ErrorCode::Io));
}

fn put_file(fs: &Fs, path: &str, data: &[u8]) {
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let f = root
        .open_at(PF::empty(), path, OF::CREATE | OF::TRUNCATE, DF::WRITE)
        .unwrap();
    f.write(data, 0).unwrap();
}

/// Two hosts on one prefix: what one syncs, the other's poll applies
/// (creates, rewrites, renames, deletes, chmod, a directory becoming a
/// file), leaving both trees equal; never over local changes not yet
/// synced, nor over a file open for writing.
#[test]
fn polling_applies_another_hosts_changes_when_clean() {
    let store = Arc::new(MemStore::new());
    let a = Fs::in_memory();
    let ma = Mirror::new(store.clone(), "p/");
    let ra = a.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    ra.create_directory_at("etc").unwrap();
    ra.create_directory_at("data").unwrap();
    ra.create_directory_at("d").unwrap();
    put_file(&a, "etc/conf", b"v1");
    put_file(&a, "data/big", &pattern(3 << 20, 9));
    put_file(&a, "d/inside", b"x");
    put_file(&a, "gone", b"bye");
    ra.symlink_at("etc/conf", "link").unwrap();
    ma.sync(&a).unwrap();

    let b = Fs::in_memory();
    let mb = Mirror::restore(store.clone(), "p/", &b).unwrap();
    mb.sync(&b).unwrap();
    assert_eq!(tree(&b), tree(&a));

    put_file(&a, "etc/conf", b"version two");
    ra.set_mode_at(PF::empty(), "etc/conf", 0o600, 0, 0)
        .unwrap();
    ra.create_directory_at("new").unwrap();
    put_file(&a, "new/file", b"fresh");
    ra.unlink_file_at("gone").unwrap();
    ra.rename_at("data/big", &ra, "data/big2").unwrap();
    ra.unlink_file_at("d/inside").unwrap();
    ra.remove_directory_at("d").unwrap();
    put_file(&a, "d", b"now a file");
    ma.sync(&a).unwrap();

    let p = mb.poll(&b).unwrap();
    assert!(p.skipped.is_empty() && !p.local_changes_pending, "{p:?}");
    assert!(p.created >= 3 && p.updated >= 1 && p.deleted >= 3, "{p:?}");
    assert_eq!(tree(&b), tree(&a));
    // What the poll applied is not sent back, and then all is quiet.
    let r = mb.sync(&b).unwrap();
    assert_eq!(r.uploaded + r.copied + r.deleted, 0, "sent back: {r:?}");
    assert_eq!(
        mb.poll(&b).unwrap(),
        larder_sync::Pulled::default(),
        "a second poll"
    );

    // Local changes not yet synced: the poll waits for the sync.
    put_file(&b, "etc/conf", b"b's own");
    put_file(&a, "new/file", b"fresh 2");
    ma.sync(&a).unwrap();
    assert!(mb.poll(&b).unwrap().local_changes_pending);
    mb.sync(&b).unwrap();
    assert_eq!(mb.poll(&b).unwrap().updated, 1);

    // A file open for writing is not replaced under its writer.
    let rb = b.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let held = rb
        .open_at(PF::empty(), "new/file", OF::empty(), DF::WRITE)
        .unwrap();
    put_file(&a, "new/file", b"fresh 3");
    ma.sync(&a).unwrap();
    // (As the periodic loop does: a sync, then a poll.)
    mb.sync(&b).unwrap();
    assert_eq!(mb.poll(&b).unwrap().skipped, ["new/file"]);
    drop(held);
    mb.sync(&b).unwrap();
    assert_eq!(mb.poll(&b).unwrap().updated, 1);
    assert_eq!(tree(&b), tree(&restored(store, "p/")));
}

/// As the periodic loop does, a sync, then a poll: what the poll did and
/// the requests it sent (listings, HEADs).
fn poll_cost(store: &MemStore, m: &Mirror, fs: &Fs) -> (larder_sync::Pulled, u64, u64) {
    m.sync(fs).unwrap();
    let before = store.traffic();
    let p = m.poll(fs).unwrap();
    let t = store.traffic();
    assert!(!p.local_changes_pending);
    (p, t.lists - before.lists, t.heads - before.heads)
}

/// Where listing costs requests (S3), a poll first HEADs the version
/// object every Larder sync that changed the store rewrites, and lists
/// only when it moved: a quiet store costs one request per poll, and no
/// change is missed, whoever's sync came first.
#[test]
fn polls_list_only_when_another_writer_synced() {
    let store = Arc::new(Faulty::new(MemStore::new()));
    store.set_bare_listings(true);
    let a = Fs::in_memory();
    let ma = Mirror::new(store.clone(), "p/").with_retry(fast_retry());
    put_file(&a, "one", b"1");
    ma.sync(&a).unwrap();
    let b = Fs::in_memory();
    let mb = Mirror::restore(store.clone(), "p/", &b).unwrap();
    // The first poll lists; then nothing changed: one HEAD, no listing.
    assert_eq!(poll_cost(&store, &mb, &b).1, 1);
    for _ in 0..3 {
        let (p, lists, heads) = poll_cost(&store, &mb, &b);
        assert_eq!((p, lists, heads), (Default::default(), 0, 1));
    }

    // Another writer's sync moves the version: the next poll lists.
    put_file(&a, "one", b"2");
    ma.sync(&a).unwrap();
    let (p, lists, _) = poll_cost(&store, &mb, &b);
    assert_eq!((p.updated, lists), (1, 1), "{p:?}");
    assert_eq!(poll_cost(&store, &mb, &b).1, 0);

    // Its own sync, with nobody else's in between, leaves it quiet.
    put_file(&b, "mine", b"b");
    let before = store.traffic().puts;
    assert_eq!(poll_cost(&store, &mb, &b).1, 0, "its own sync");
    assert_eq!(store.traffic().puts - before, 2, "the file and the version");

    // Another writer's sync lands before its own: the rewrite it makes
    // after is not taken as all seen, and the next poll lists.
    put_file(&a, "two", b"from a");
    ma.sync(&a).unwrap();
    put_file(&b, "mine", b"b again");
    let (p, lists, _) = poll_cost(&store, &mb, &b);
    assert_eq!((p.created, lists), (1, 1), "{p:?}");

    // A sync whose rewrite of the version failed: its objects are stored
    // but nobody is told until its next sync, which rewrites it even with
    // nothing else to send.
    store.refuse_writes_under(Some("p/.larder/"));
    put_file(&a, "three", b"from a");
    ma.sync(&a).unwrap();
    store.refuse_writes_under(None);
    assert!(store.head("p/three").unwrap().is_some());
    assert_eq!(poll_cost(&store, &mb, &b).1, 0, "not told yet");
    let r = ma.sync(&a).unwrap();
    assert_eq!(r.uploaded, 0);
    let (p, lists, _) = poll_cost(&store, &mb, &b);
    assert_eq!((p.created, lists), (1, 1), "{p:?}");
    assert_eq!(tree(&b), tree(&restored(store.clone(), "p/")));

    // A change the poll had to leave (a file open for writing here) is
    // listed for again at the next poll, though the version is the same.
    let held = b
        .root(DF::READ | DF::MUTATE_DIRECTORY)
        .unwrap()
        .open_at(PF::empty(), "one", OF::empty(), DF::WRITE)
        .unwrap();
    put_file(&a, "one", b"3");
    ma.sync(&a).unwrap();
    assert_eq!(poll_cost(&store, &mb, &b).0.skipped, ["one"]);
    drop(held);
    let (p, lists, _) = poll_cost(&store, &mb, &b);
    assert_eq!((p.updated, lists), (1, 1), "{p:?}");
    assert_eq!(tree(&b), tree(&restored(store.clone(), "p/")));
}

/// Other tools do not rewrite the version object: what they write is seen
/// at the next full listing, one every `with_full_listing_every`.
#[test]
fn polls_still_list_now_and_then_for_other_tools() {
    let store = Arc::new(MemStore::new());
    store.set_bare_listings(true);
    let fs = Fs::in_memory();
    let every = std::time::Duration::from_millis(300);
    let m = Mirror::restore(store.clone(), "p/", &fs)
        .unwrap()
        .with_full_listing_every(every);
    assert_eq!(poll_cost(&store, &m, &fs).1, 1, "the first poll");
    let started = std::time::Instant::now();
    let meta = larder_sync::meta::encode(0o100644, 0, 0, 1_700_000_000, 0);
    store
        .put(
            "p/theirs",
            b"by another tool",
            &meta,
            &larder_sync::Cond::None,
        )
        .unwrap();
    let (p, lists, _) = poll_cost(&store, &m, &fs);
    if started.elapsed() < every {
        assert_eq!((p.created, lists), (0, 0), "listed before it was due");
    }
    std::thread::sleep(every);
    let (p, lists, _) = poll_cost(&store, &m, &fs);
    assert_eq!((p.created, lists), (1, 1), "{p:?}");
    assert_eq!(tree(&fs)["theirs"], tree(&restored(store, "p/"))["theirs"]);
}

/// Runs `f` on a thread of its own; fails the test if it has not returned
/// within `secs` (a deadlock would otherwise hang the suite).
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: still running after {secs} s (deadlocked?)")
        }
        Err(_) => panic!("{what}: failed (see its panic above)"),
    }
}

/// Polling under every sync mode: a poll that creates, replaces and
/// deletes files another writer changed closes the files it restores, and
/// on close and write-through that close reaches the mirror's own
/// hook while the poll holds its state. It must neither wait on itself nor
/// hold up the app.
#[test]
fn polling_applies_other_writers_changes_under_every_sync_mode() {
    for mode in [SyncMode::OnFsync, SyncMode::OnClose, SyncMode::WriteThrough] {
        within(120, &format!("{mode:?}"), move || poll_while_writing(mode));
    }
}

fn poll_while_writing(sync: SyncMode) {
    let mode = format!("{sync:?}");
    let store = Arc::new(MemStore::new());
    let (fs, mirror) = hooked(&store, sync);
    let other = Fs::in_memory();
    let theirs = Mirror::new(store.clone(), "").with_retry(fast_retry());
    let o = other.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    put_file(&other, "old", b"old");
    put_file(&other, "replaced", b"v1");
    theirs.sync(&other).unwrap();
    mirror.sync(&fs).unwrap();
    let p = mirror.poll(&fs).unwrap();
    assert_eq!(p.created, 2, "{mode}");

    put_file(&other, "new", b"from the other writer");
    put_file(&other, "replaced", b"v2");
    o.unlink_file_at("old").unwrap();
    theirs.sync(&other).unwrap();
    let (fs, mirror) = within(30, &mode, move || {
        // The first poll's own restores are synced (nothing to send).
        mirror.sync(&fs).unwrap();
        let p = mirror.poll(&fs).unwrap();
        assert_eq!((p.created, p.updated, p.deleted), (1, 1, 1), "{p:?}");
        (fs, mirror)
    });
    assert_eq!(tree(&fs), tree(&other), "{mode}");

    // The app writes and closes files while the other writer keeps
    // changing the store and a poll thread applies it.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fs = Arc::new(fs);
    let poller = {
        let (fs, mirror, stop) = (fs.clone(), mirror.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if mirror.sync(&fs).is_ok() {
                    mirror.poll(&fs).unwrap();
                }
            }
        })
    };
    let writer = std::thread::spawn(move || {
        for i in 0..40 {
            put_file(&other, &format!("theirs-{i}"), b"t");
            put_file(&other, "replaced", format!("v{i}").as_bytes());
            if i >= 2 {
                o.unlink_file_at(&format!("theirs-{}", i - 2)).unwrap();
            }
            theirs.sync(&other).unwrap();
        }
        (other, theirs)
    });
    {
        let fs = fs.clone();
        within(60, &mode, move || {
            for i in 0..40 {
                put_file(&fs, &format!("mine-{i}"), b"m");
            }
        });
    }
    let (other, _theirs) = within(60, &mode, move || writer.join().unwrap());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    within(60, &mode, move || poller.join().unwrap());
    // Settled: each side's files reach the other.
    mirror.sync(&fs).unwrap();
    let p = mirror.poll(&fs).unwrap();
    assert!(p.skipped.is_empty(), "{mode}: {p:?}");
    let mine = tree(&fs);
    for i in 0..40 {
        assert!(mine.contains_key(&format!("mine-{i}")), "{mode}");
        assert!(
            store.head(&format!("mine-{i}")).unwrap().is_some(),
            "{mode}"
        );
    }
    let theirs_now = tree(&other);
    for (path, entry) in &theirs_now {
        assert_eq!(mine.get(path), Some(entry), "{mode}: {path}");
    }
}

/// A file grown to 2^62 bytes (two guest calls: set-size, then sync)
/// cannot be sent whole: the sync fails with an error, the host lives, and
/// once the file is a storable size again the next sync sends everything.
#[test]
fn a_file_too_large_to_hold_fails_the_sync_not_the_host() {
    let store = Arc::new(MemStore::new());
    let (fs, mirror) = hooked(&store, SyncMode::OnClose);
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    put_file(&fs, "small", b"kept");
    let f = root
        .open_at(PF::empty(), "huge", OF::CREATE, DF::READ | DF::WRITE)
        .unwrap();
    f.set_size(1 << 62).unwrap();
    assert_eq!(f.sync().unwrap_err(), fs_core::ErrorCode::Io);
    assert!(mirror.sync(&fs).is_err());
    f.set_size(3).unwrap();
    f.sync().unwrap();
    assert_eq!(
        store.get("huge", None, &larder_sync::Cond::None).unwrap(),
        [0, 0, 0]
    );
    assert_eq!(
        store.get("small", None, &larder_sync::Cond::None).unwrap(),
        b"kept"
    );
}

/// A file appended to and overwritten by another thread while syncs run
/// into a local store: each sync's ranges and size are taken together, so
/// no sync keeps bytes the stored copy lacks (which would be a conflict
/// copy), and once the writer stops the store holds exactly the file.
#[test]
fn syncs_racing_writes_stay_exact() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalDir::open(dir.path().join("s")).unwrap());
    let fs = Fs::in_memory();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let f = root
        .open_at(PF::empty(), "log", OF::CREATE, DF::READ | DF::WRITE)
        .unwrap();
    f.write(&pattern(200 << 10, 3), 0).unwrap();
    let mirror = Mirror::new(store.clone(), "");
    mirror.sync(&fs).unwrap();
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    let done = Arc::new(AtomicBool::new(false));
    let syncs = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (f, done, syncs) = (f.try_clone().unwrap(), done.clone(), syncs.clone());
        std::thread::spawn(move || {
            for i in 0..20_000u64 {
                f.append(&pattern(100, i)).unwrap();
                if i % 7 == 0 {
                    f.write(b"overwritten", (i * 7919) % (200 << 10)).unwrap();
                }
                // Paced so that syncs run all along, however fast either is.
                if i % 500 == 0 {
                    let seen = syncs.load(SeqCst);
                    while syncs.load(SeqCst) == seen {
                        std::thread::yield_now();
                    }
                }
            }
            done.store(true, SeqCst);
        })
    };
    while !done.load(SeqCst) {
        let r = mirror.sync(&fs).unwrap();
        assert!(r.conflicts.is_empty(), "sync {}: {r:?}", syncs.load(SeqCst));
        syncs.fetch_add(1, SeqCst);
    }
    writer.join().unwrap();
    let r = mirror.sync(&fs).unwrap();
    assert!(r.conflicts.is_empty(), "{r:?}");
    assert!(
        syncs.load(SeqCst) >= 40,
        "only {syncs:?} syncs raced the writer"
    );
    let size = f.stat().size as usize;
    assert_eq!(
        store.get("log", None, &larder_sync::Cond::None).unwrap(),
        read_at(&f, 0, size)
    );
    assert_eq!(tree(&restored(store.clone(), "")), tree(&fs));
}

/// A database-like file in a local store: after its first upload, each
/// sync writes about what changed (a page, an append) to the store, patched
/// in place (the same file on the host), also right after a restore; and
/// the store always restores to the tree.
#[test]
fn a_local_store_writes_what_changed() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let local = Arc::new(LocalDir::open(dir.path().join("s")).unwrap());
    let store: Arc<dyn ObjectStore> = local.clone();
    let fs = Fs::in_memory();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let f = root
        .open_at(PF::empty(), "db", OF::CREATE, DF::READ | DF::WRITE)
        .unwrap();
    f.write(&pattern(4 << 20, 9), 0).unwrap();
    let mirror = Mirror::new(store.clone(), "");
    mirror.sync(&fs).unwrap();
    let ino = || std::fs::metadata(dir.path().join("s/db")).unwrap().ino();
    let first = ino();
    let mut before = local.bytes_written();
    for round in 0..3u64 {
        f.write(b"a changed row", (1 << 20) + round * 10_000)
            .unwrap();
        f.append(&pattern(5000, round)).unwrap();
        let r = mirror.sync(&fs).unwrap();
        let written = local.bytes_written() - before;
        before = local.bytes_written();
        assert!(
            written < 32 << 10,
            "round {round}: {written} bytes written for a row and 5000 appended ({r:?})"
        );
        assert_eq!(ino(), first, "round {round}: replaced, not patched");
        assert_eq!(tree(&restored(store.clone(), "")), tree(&fs));
    }
    // Restored afresh (lazily): its first change is a patch as well.
    let fs = Fs::in_memory();
    let mirror = Mirror::restore(store.clone(), "", &fs).unwrap();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let f = root
        .open_at(PF::empty(), "db", OF::empty(), DF::READ | DF::WRITE)
        .unwrap();
    f.write(b"after the restore", 3 << 20).unwrap();
    let before = local.bytes_written();
    mirror.sync(&fs).unwrap();
    let written = local.bytes_written() - before;
    assert!(
        written < 16 << 10,
        "{written} bytes written after a restore"
    );
    assert_eq!(ino(), first);
    assert_eq!(tree(&restored(store.clone(), "")), tree(&fs));
}

/// A sparse file goes to a local store by its data: a terabyte holding
/// three short runs syncs at once (never read or held whole), is just as
/// sparse on the host, and reads back the same there; rewritten with a
/// piece kept from the stored version, it stays sparse.
#[test]
fn a_sparse_file_stays_sparse_in_a_local_store() {
    use std::os::unix::fs::{FileExt, MetadataExt};
    const TIB: u64 = 1 << 40;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalDir::open(dir.path().join("s")).unwrap());
    let fs = Fs::in_memory();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let f = root
        .open_at(PF::empty(), "sparse", OF::CREATE, DF::READ | DF::WRITE)
        .unwrap();
    let runs = [(0, &b"head"[..]), (5 << 30, b"middle"), (TIB - 4, b"tail")];
    for (at, bytes) in runs {
        f.write(bytes, at).unwrap();
    }
    let mirror = Arc::new(Mirror::new(store.clone(), ""));
    let (m, fs2) = (mirror.clone(), fs.clone());
    within(60, "a terabyte sparse file to sync", move || {
        m.sync(&fs2).unwrap()
    });
    let on_host = std::fs::File::open(dir.path().join("s/sparse")).unwrap();
    let m = on_host.metadata().unwrap();
    assert_eq!(m.len(), TIB);
    assert!(
        m.blocks() * 512 <= 64 << 10,
        "{} bytes allocated",
        m.blocks() * 512
    );
    for (at, bytes) in runs {
        let mut back = vec![0; bytes.len() + 8];
        let n = on_host.read_at(&mut back, at.saturating_sub(4)).unwrap();
        let want: Vec<u8> = (at.saturating_sub(4)..at.saturating_sub(4) + n as u64)
            .map(|i| {
                i.checked_sub(at)
                    .and_then(|k| bytes.get(k as usize).copied())
                    .unwrap_or(0)
            })
            .collect();
        assert_eq!(back[..n], want, "at {at}");
    }

    // A 40 MiB sparse file changed in one piece: the others are kept from
    // the stored version (copied there, holes skipped), still sparse.
    let g = root
        .open_at(PF::empty(), "forty", OF::CREATE, DF::READ | DF::WRITE)
        .unwrap();
    g.write(b"start", 0).unwrap();
    g.write(b"end", (40 << 20) - 3).unwrap();
    mirror.sync(&fs).unwrap();
    g.write(b"changed", 20 << 20).unwrap();
    let r = mirror.sync(&fs).unwrap();
    assert!(r.bytes_uploaded <= 8 << 20, "{r:?}");
    let stored = store.get("forty", None, &larder_sync::Cond::None).unwrap();
    assert_eq!(stored, read_at(&g, 0, 40 << 20));
    let m = std::fs::metadata(dir.path().join("s/forty")).unwrap();
    assert!(
        m.blocks() * 512 <= 64 << 10,
        "{} bytes allocated",
        m.blocks() * 512
    );
}

/// A sparse file that grows: its old last piece was a short hole, the same
/// piece now is a whole one. It must be sent, not kept (the stored object
/// has no bytes there to keep), and the store then holds the file.
#[test]
fn a_growing_sparse_file_never_keeps_bytes_the_store_lacks() {
    let store = Arc::new(MemStore::new());
    let fs = Fs::in_memory();
    let mirror = Mirror::new(store.clone(), "");
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let f = root
        .open_at(PF::empty(), "grows", OF::CREATE, DF::READ | DF::WRITE)
        .unwrap();
    f.write(b"data", 0).unwrap();
    f.set_size((16 << 20) + (3 << 20)).unwrap();
    mirror.sync(&fs).unwrap();
    f.set_size(32 << 20).unwrap();
    mirror.sync(&fs).unwrap();
    let stored = store.get("grows", None, &larder_sync::Cond::None).unwrap();
    assert_eq!(stored, read_at(&f, 0, 32 << 20));
}

/// The retry layer: transient failures are retried up to the policy's
/// attempts and then reported; hurried, a request is tried once.
#[test]
fn retrying_retries_transient_failures_only() {
    use larder_sync::{Cond, ErrorKind, Metadata, Retry, Retrying};
    let faulty = Arc::new(Faulty::new(MemStore::default()));
    let policy = Retry {
        attempts: 3,
        first_delay: std::time::Duration::from_millis(1),
        max_delay: std::time::Duration::from_millis(2),
    };
    let store = Retrying::new(faulty.clone(), policy);
    let meta = Metadata::new();
    faulty.fail_next(2);
    store.put("a", b"1", &meta, &Cond::None).unwrap();
    assert_eq!(faulty.refused(), 2);
    faulty.fail_next(3);
    let e = store.put("a", b"2", &meta, &Cond::None).unwrap_err();
    assert_eq!((e.kind, faulty.refused()), (ErrorKind::Transient, 5));
    store.set_hurried(true);
    faulty.fail_next(1);
    assert!(store.head("a").is_err());
    assert_eq!(faulty.refused(), 6);
    store.set_hurried(false);
    assert_eq!(store.get("a", None, &Cond::None).unwrap(), b"1");
    // A conflict is an answer, not a failure: reported as it is.
    let e = store.put("a", b"3", &meta, &Cond::IfNoneMatch).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert_eq!(store.get("a", None, &Cond::None).unwrap(), b"1");
}
