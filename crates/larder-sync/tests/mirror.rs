//! The mirror against a model: random changes to a filesystem, synced at
//! random moments, must come back whole when a new filesystem is restored
//! from the store; in a local directory the mirror is a plain tree any
//! tool reads; faults delay, never lose; other writers are never
//! overwritten unseen.

use fs_core::{
    DescriptorFlags as DF, DescriptorType, Fs, NewTimestamp, OpenFlags as OF, PathFlags as PF,
    Timestamp,
};
use larder_sync::{LocalDir, MemStore, Mirror, MirrorHook, ObjectStore, Retry};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// What a user would compare: kind, bytes or target, mode, mtime (symlink
/// times are not kept by every store, so not compared).
#[derive(Debug, PartialEq, Eq, Clone)]
enum Entry {
    File(Vec<u8>, u32, Timestamp),
    Dir(u32, Timestamp),
    Symlink(String),
}

fn tree(fs: &Fs) -> BTreeMap<String, Entry> {
    let root = fs.root(DF::READ).unwrap();
    let mut out = BTreeMap::new();
    let mut dirs = vec![String::new()];
    while let Some(dir) = dirs.pop() {
        let d = if dir.is_empty() {
            root.try_clone().unwrap()
        } else {
            root.open_at(PF::empty(), &dir, OF::DIRECTORY, DF::READ)
                .unwrap()
        };
        for e in d.read_directory().unwrap() {
            let e = e.unwrap();
            let path = if dir.is_empty() {
                e.name
            } else {
                format!("{dir}/{}", e.name)
            };
            let st = root.stat_at(PF::empty(), &path).unwrap();
            let entry = match st.kind {
                DescriptorType::Directory => {
                    dirs.push(path.clone());
                    Entry::Dir(st.mode, st.mtime)
                }
                DescriptorType::SymbolicLink => Entry::Symlink(root.readlink_at(&path).unwrap()),
                DescriptorType::RegularFile => {
                    let f = root
                        .open_at(PF::empty(), &path, OF::empty(), DF::READ)
                        .unwrap();
                    let mut buf = vec![0; st.size as usize];
                    let mut n = 0;
                    while n < buf.len() {
                        n += f.read(&mut buf[n..], n as u64).unwrap();
                    }
                    Entry::File(buf, st.mode, st.mtime)
                }
            };
            out.insert(path, entry);
        }
    }
    out
}

fn fast_retry() -> Retry {
    Retry {
        attempts: 3,
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(4),
    }
}

#[derive(Clone, Debug)]
enum Op {
    Write(u8, Vec<u8>, u64),
    Truncate(u8, u64),
    Mkdir(u8),
    Rename(u8, u8),
    Unlink(u8),
    Rmdir(u8),
    Symlink(u8, u8),
    Link(u8, u8),
    Touch(u8, u64),
    Sync,
}

/// A small namespace so operations collide: files and dirs at two levels.
fn name(n: u8) -> String {
    const TOP: [&str; 4] = ["a", "b", "d1", "d2"];
    let top = TOP[(n % 4) as usize];
    if n % 8 < 4 {
        top.to_string()
    } else {
        format!("d{}/{}", 1 + (n / 8) % 2, ["x", "y", "z"][(n % 3) as usize])
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u8>(), prop::collection::vec(any::<u8>(), 0..3000), 0u64..5000)
            .prop_map(|(n, d, o)| Op::Write(n, d, o)),
        1 => (any::<u8>(), 0u64..4000).prop_map(|(n, s)| Op::Truncate(n, s)),
        2 => any::<u8>().prop_map(Op::Mkdir),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Rename(a, b)),
        1 => any::<u8>().prop_map(Op::Unlink),
        1 => any::<u8>().prop_map(Op::Rmdir),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Symlink(a, b)),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Link(a, b)),
        1 => (any::<u8>(), 0u64..2_000_000_000).prop_map(|(n, t)| Op::Touch(n, t)),
        2 => Just(Op::Sync),
    ]
}

/// Applies `op`; errors (a missing parent, a non-empty dir...) are fine:
/// the filesystem decides, the mirror must follow whatever it did.
fn apply(fs: &Fs, mirror: &Mirror, op: &Op) {
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let _ = match op {
        Op::Write(n, d, o) => root
            .open_at(PF::empty(), &name(*n), OF::CREATE, DF::READ | DF::WRITE)
            .and_then(|f| f.write(d, *o).map(|_| ())),
        Op::Truncate(n, s) => root
            .open_at(PF::empty(), &name(*n), OF::empty(), DF::WRITE)
            .and_then(|f| f.set_size(*s)),
        Op::Mkdir(n) => root.create_directory_at(&name(*n)),
        Op::Rename(a, b) => root.rename_at(&name(*a), &root, &name(*b)),
        Op::Unlink(n) => root.unlink_file_at(&name(*n)),
        Op::Rmdir(n) => root.remove_directory_at(&name(*n)),
        Op::Symlink(a, b) => root.symlink_at(&name(*a), &name(*b)),
        Op::Link(a, b) => root.link_at(PF::empty(), &name(*a), &root, &name(*b)),
        Op::Touch(n, t) => root.set_times_at(
            PF::empty(),
            &name(*n),
            NewTimestamp::NoChange,
            NewTimestamp::Timestamp(Timestamp::new(*t, (*t % 1_000_000_000) as u32).unwrap()),
        ),
        Op::Sync => mirror.sync(fs).map(|_| ()).map_err(|e| panic!("sync: {e}")),
    };
}

fn restored(store: Arc<dyn ObjectStore>, prefix: &str) -> Fs {
    let fs = Fs::in_memory();
    Mirror::restore(store, prefix, &fs).unwrap();
    fs
}

fn round_trip(store: Arc<dyn ObjectStore>, ops: &[Op]) {
    let fs = Fs::in_memory();
    let mirror = Mirror::new(store.clone(), "pre/fix").with_retry(fast_retry());
    for op in ops {
        apply(&fs, &mirror, op);
    }
    mirror.sync(&fs).unwrap();
    assert_eq!(tree(&restored(store.clone(), "pre/fix/")), tree(&fs));
    // And a restored filesystem carries on: one more change round-trips.
    let again = Fs::in_memory();
    let m2 = Mirror::restore(store.clone(), "pre/fix", &again).unwrap();
    apply(&again, &m2, &Op::Write(1, b"after restore".to_vec(), 7));
    m2.sync(&again).unwrap();
    assert_eq!(tree(&restored(store, "pre/fix")), tree(&again));
}

proptest! {
    #[test]
    fn restores_what_was_synced_in_memory(ops in prop::collection::vec(op(), 0..40)) {
        round_trip(Arc::new(MemStore::new()), &ops);
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
/// and once the store is back the next sync sends it all.
#[test]
fn faults_delay_never_lose() {
    let store = Arc::new(MemStore::new());
    let fs = Fs::in_memory();
    let mirror = Arc::new(Mirror::new(store.clone(), "").with_retry(fast_retry()));
    fs.set_sync_hook(Arc::new(MirrorHook {
        mirror: mirror.clone(),
        on_close: true,
    }));
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
    assert_eq!(tree(&restored(store, "")), tree(&fs));
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
