//! How a volume is assembled: image, store and mounts in that order, each
//! over the one before; read-only subtrees stay out of the mirror; preopens.

use fs_core::{DescriptorFlags as DF, ErrorCode, Fs, OpenFlags as OF, PathFlags as PF};
use larder_sync::{Cond, MemStore, Mirror, ObjectStore};
use larder_volume::{BuildError, Mount, SyncMode, Volume, VolumeBuilder};
use std::sync::Arc;

fn read(volume: &Volume, path: &str) -> Vec<u8> {
    let root = volume.fs().root(DF::READ).unwrap();
    let f = root
        .open_at(PF::SYMLINK_FOLLOW, path, OF::empty(), DF::READ)
        .unwrap();
    let mut buf = vec![0; 1 << 16];
    let n = f.read(&mut buf, 0).unwrap();
    buf.truncate(n);
    buf
}

fn write(fs: &Fs, path: &str, body: &[u8]) {
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    if let Some((dir, _)) = path.rsplit_once('/') {
        root.create_directory_all(dir).unwrap();
    }
    let f = root
        .open_at(PF::empty(), path, OF::CREATE | OF::TRUNCATE, DF::WRITE)
        .unwrap();
    f.write(body, 0).unwrap();
}

/// An image (as `larder compose` bundles one) holding `files`.
fn image(files: &[(&str, &[u8])]) -> Arc<Vec<u8>> {
    let fs = Fs::in_memory();
    for (path, body) in files {
        write(&fs, path, body);
    }
    Arc::new(fs_core::image::encode(&fs.root(DF::READ).unwrap()).unwrap())
}

#[test]
fn mounts_and_preopens() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("app.toml"), b"k = 1\n").unwrap();
    let vfs = VolumeBuilder::new()
        .mount(Mount::parse(&format!("/etc/app={}:ro", tmp.path().display())).unwrap())
        .preopen("/", "/", false)
        .preopen("config", "/etc/app", true)
        .build()
        .unwrap();
    assert_eq!(read(&vfs, "etc/app/app.toml"), b"k = 1\n");
    let root = vfs.fs().root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    assert_eq!(
        root.unlink_file_at("etc/app/app.toml"),
        Err(fs_core::ErrorCode::ReadOnly)
    );
    for bad in ["etc=/tmp", "/etc/../x=/tmp", "/etc", "/etc="] {
        assert!(Mount::parse(bad).is_err(), "{bad} accepted");
    }
    let missing = VolumeBuilder::new()
        .mount(Mount::parse("/x=/no/such/dir").unwrap())
        .build();
    assert!(missing.err().unwrap().to_string().contains("/no/such/dir"));
}

/// The bundle's image is the bottom layer, host mounts go over it, and the
/// store's files over both: what the app made of its files last run wins
/// over what it shipped or was seeded with. Read-only parts of the image
/// and read-only mounts are always the bundled or host copy, never
/// restored over and never sent to the store.
#[test]
fn layers_image_then_mounts_then_store() {
    let store = Arc::new(MemStore::new());
    // What an earlier run left in the store (the read-only mount was
    // writable then).
    let earlier = Fs::in_memory();
    write(&earlier, "data/state", b"from the store");
    write(&earlier, "seed/a", b"the app's edit");
    write(&earlier, "etc/app/conf", b"stale copy of the mount");
    write(&earlier, "usr/share/doc", b"stale doc");
    Mirror::new(store.clone(), "p/").sync(&earlier).unwrap();

    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("conf"), b"from the host").unwrap();
    let seed = tempfile::tempdir().unwrap();
    std::fs::write(seed.path().join("a"), b"seeded").unwrap();
    std::fs::write(seed.path().join("b"), b"seeded too").unwrap();
    let img = image(&[
        ("data/state", b"from the image"),
        ("data/shipped", b"shipped"),
        ("usr/share/doc", b"read-only doc"),
    ]);
    let volume = VolumeBuilder::new()
        .image(img, vec!["/usr".into()])
        .store(store.clone(), "p/", SyncMode::OnFsync)
        .mount(Mount::parse(&format!("/etc/app={}:ro", host.path().display())).unwrap())
        .mount(Mount::parse(&format!("/seed={}", seed.path().display())).unwrap())
        .build()
        .unwrap();
    assert_eq!(read(&volume, "data/state"), b"from the store");
    assert_eq!(read(&volume, "data/shipped"), b"shipped");
    assert_eq!(read(&volume, "seed/a"), b"the app's edit");
    assert_eq!(read(&volume, "seed/b"), b"seeded too");
    assert_eq!(read(&volume, "etc/app/conf"), b"from the host");
    assert_eq!(read(&volume, "usr/share/doc"), b"read-only doc");
    let root = volume.fs().root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    for ro in ["usr/share/doc", "etc/app/conf"] {
        assert_eq!(root.unlink_file_at(ro), Err(ErrorCode::ReadOnly), "{ro}");
    }

    volume.sync().unwrap();
    let mut keys: Vec<String> = store
        .list("p/")
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    keys.sort();
    // The shipped and seeded files went to the store with the rest of the
    // writable tree; the read-only subtrees are excluded, so their stale
    // copies are neither refreshed nor removed.
    for k in ["p/data/shipped", "p/seed/b"] {
        assert!(keys.contains(&k.to_string()), "{k} not in {keys:?}");
    }
    for (key, stale) in [
        ("p/etc/app/conf", &b"stale copy of the mount"[..]),
        ("p/usr/share/doc", b"stale doc"),
    ] {
        assert_eq!(store.get(key, None, &Cond::None).unwrap(), stale);
    }
}

/// The sync mode reaches the hook: on close, a written file is in the
/// store once closed (and the close sync finished); on fsync only, not
/// until fsync.
#[test]
fn the_sync_mode_decides_when_changes_leave() {
    for (mode, at_close) in [(SyncMode::OnClose, true), (SyncMode::OnFsync, false)] {
        let store = Arc::new(MemStore::new());
        let volume = VolumeBuilder::new()
            .store(store.clone(), "", mode)
            .build()
            .unwrap();
        let root = volume.fs().root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
        let f = root
            .open_at(PF::empty(), "f", OF::CREATE, DF::WRITE)
            .unwrap();
        f.write(b"x", 0).unwrap();
        drop(f);
        let t = std::time::Instant::now();
        let present = || store.head("f").unwrap().is_some();
        while at_close && !present() && t.elapsed().as_secs() < 20 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(present(), at_close, "{mode:?}");
        let f = root
            .open_at(PF::empty(), "f", OF::empty(), DF::WRITE)
            .unwrap();
        f.sync().unwrap();
        assert!(
            present(),
            "{mode:?}: fsync returned before the store had it"
        );
    }
}

/// Group commit: 40 files written and closed in a burst against a store
/// 20 ms away return without waiting for it (one round trip each would
/// take 0.8 s at least) and all reach the store soon after on their own;
/// an fsync right after a burst still returns only once everything
/// before it is stored. Write-through keeps closes
/// synchronous.
#[test]
fn closes_in_a_burst_share_one_sync_and_fsync_still_waits() {
    use larder_sync::Faulty;
    use std::time::{Duration, Instant};
    for mode in [SyncMode::OnClose, SyncMode::WriteThrough] {
        let store = Arc::new(Faulty::new(MemStore::new()));
        let volume = VolumeBuilder::new()
            .store(store.clone(), "", mode)
            .build()
            .unwrap();
        store.set_latency(Duration::from_millis(20));
        let root = volume.fs().root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
        let t = Instant::now();
        for i in 0..40 {
            let f = root
                .open_at(PF::empty(), &format!("f{i}"), OF::CREATE, DF::WRITE)
                .unwrap();
            f.write(format!("file {i}").as_bytes(), 0).unwrap();
        }
        let closing = t.elapsed();
        let stored = |i: usize| store.head(&format!("f{i}")).unwrap().is_some();
        if mode == SyncMode::WriteThrough {
            assert!(
                stored(39),
                "write-through: the last close returned before its sync"
            );
            continue;
        }
        assert!(
            closing < Duration::from_millis(400),
            "40 closes took {closing:?}: they waited for the store"
        );
        // fsync of a file written after the burst: everything is stored
        // when it returns.
        let f = root
            .open_at(PF::empty(), "last", OF::CREATE, DF::WRITE)
            .unwrap();
        f.write(b"last", 0).unwrap();
        f.sync().unwrap();
        store.set_latency(Duration::ZERO);
        assert!(
            (0..40).all(stored) && store.head("last").unwrap().is_some(),
            "fsync returned before the closed files were stored"
        );
        drop(f);
        // A burst with no fsync after it reaches the store on its own.
        for i in 40..60 {
            let f = root
                .open_at(PF::empty(), &format!("f{i}"), OF::CREATE, DF::WRITE)
                .unwrap();
            f.write(b"x", 0).unwrap();
        }
        let t = Instant::now();
        while !(40..60).all(stored) && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!((40..60).all(stored), "closed files never reached the store");
    }
}

/// With no thread to group closes (a component), the host defers them:
/// closes in a burst share a sync per 50 ms of closing (their directory
/// is sent once per sync, not once per file), what waits is stored when
/// the host is about to block (`commit_pending`), and fsync still stores
/// everything first.
#[test]
fn deferred_closes_wait_for_the_host_or_the_linger_not_each_close() {
    use larder_sync::{Faulty, ObjectStore};
    use std::time::Duration;
    let store = Arc::new(Faulty::new(MemStore::new()));
    let volume = VolumeBuilder::new()
        .store(store.clone(), "", SyncMode::OnClose)
        .defer_closes(true)
        .build()
        .unwrap();
    let root = volume.fs().root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    root.create_directory_at("d").unwrap();
    volume.sync().unwrap();
    let stored = |i: usize| store.head(&format!("d/f{i}")).unwrap().is_some();
    let close = |i: usize| {
        let f = root
            .open_at(PF::empty(), &format!("d/f{i}"), OF::CREATE, DF::WRITE)
            .unwrap();
        f.write(format!("file {i}").as_bytes(), 0).unwrap();
    };
    // A quick burst: nothing stored until the host says it will wait.
    for i in 0..20 {
        close(i);
    }
    std::thread::sleep(Duration::from_millis(60));
    assert!(!(0..20).any(stored), "a close synced on its own");
    volume.commit_pending();
    assert!((0..20).all(stored), "commit_pending left closes waiting");
    let puts = store.traffic().puts;
    volume.commit_pending();
    assert_eq!(store.traffic().puts, puts, "nothing waited: nothing sent");

    // A long burst against a store 1 ms away: a sync per 50 ms of it.
    store.set_latency(Duration::from_millis(1));
    let before = store.traffic().puts;
    let t = std::time::Instant::now();
    for i in 20..120 {
        close(i);
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = t.elapsed();
    assert!((20..30).all(stored), "a long burst never synced");
    let sent = store.traffic().puts - before;
    // Each file once, and the directory once per sync: at most one sync
    // per 50 ms of the burst (each close on its own would send 200).
    let syncs = took.as_millis() as u64 / 50 + 2;
    assert!(
        sent <= 100 + syncs,
        "{sent} objects sent for 100 closes in {took:?}"
    );
    // fsync stores everything before it returns.
    let f = root
        .open_at(PF::empty(), "last", OF::CREATE, DF::WRITE)
        .unwrap();
    f.write(b"last", 0).unwrap();
    f.sync().unwrap();
    assert!((20..120).all(stored) && store.head("last").unwrap().is_some());
}

/// Preopens name directories that exist (checked at build, naming the
/// path), and read-only ones cannot change the tree.
#[test]
fn preopens_are_checked_and_keep_their_rights() {
    let err = VolumeBuilder::new()
        .preopen("data", "/data", false)
        .build()
        .err()
        .unwrap();
    assert!(
        matches!(&err, BuildError::Fs { guest, code: ErrorCode::NoEntry } if guest == "/data"),
        "{err:?}"
    );
    let img = image(&[("data/a", b"a")]);
    let volume = VolumeBuilder::new()
        .image(img, vec![])
        .preopen("rw", "/", false)
        .preopen("ro", "/data", true)
        .build()
        .unwrap();
    let mut dirs = volume.open_preopens().unwrap();
    assert_eq!(
        dirs.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>(),
        ["rw", "ro"]
    );
    let (ro, _) = dirs.pop().unwrap();
    assert_eq!(ro.unlink_file_at("a"), Err(ErrorCode::NotPermitted));
    let (rw, _) = dirs.pop().unwrap();
    rw.unlink_file_at("data/a").unwrap();
    // Without any, the whole tree is `/`, writable.
    let plain = VolumeBuilder::new().build().unwrap();
    assert_eq!(plain.preopens().len(), 1);
    assert_eq!(plain.preopens()[0].name, "/");
}
