//! Behaviour the differential test cannot check against Linux: sandbox
//! containment, capabilities, read-only mounts, quotas and limits, exact
//! timestamps, and the lifetime of unlinked files.

use fs_core::{
    AtimePolicy, Descriptor, DescriptorFlags as DF, DescriptorType, ErrorCode as E, Fs, FsConfig,
    ManualClock, NewTimestamp, OpenFlags as OF, PathFlags as PF, Timestamp,
};
use std::sync::Arc;

const RW: DF = DF::READ.union(DF::WRITE);
const FOLLOW: PF = PF::SYMLINK_FOLLOW;

fn ts(s: u64, ns: u32) -> Timestamp {
    Timestamp::new(s, ns).unwrap()
}

fn setup(config: FsConfig) -> (Fs, Descriptor, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(ts(1_700_000_000, 5)));
    let fs = Fs::new(config, clock.clone()).unwrap();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    (fs, root, clock)
}

fn create(dir: &Descriptor, path: &str, data: &[u8]) -> Descriptor {
    let f = dir
        .open_at(FOLLOW, path, OF::CREATE | OF::TRUNCATE, RW)
        .unwrap();
    assert_eq!(f.write(data, 0).unwrap(), data.len());
    f
}

fn read_all(dir: &Descriptor, path: &str) -> Result<Vec<u8>, E> {
    let f = dir.open_at(FOLLOW, path, OF::empty(), DF::READ)?;
    let mut buf = vec![0; f.stat().size as usize];
    let n = f.read(&mut buf, 0)?;
    buf.truncate(n);
    Ok(buf)
}

#[test]
fn dotdot_never_leaves_the_base_directory() {
    let (_fs, root, _) = setup(FsConfig::default());
    root.create_directory_at("a").unwrap();
    root.create_directory_at("a/b").unwrap();
    create(&root, "top", b"secret");
    assert_eq!(
        root.stat_at(PF::empty(), "..").unwrap_err(),
        E::NotPermitted
    );
    assert_eq!(
        root.stat_at(PF::empty(), "a/../..").unwrap_err(),
        E::NotPermitted
    );
    assert_eq!(
        root.stat_at(PF::empty(), "a/b/../../../top").unwrap_err(),
        E::NotPermitted
    );
    assert!(root.stat_at(PF::empty(), "a/b/../../top").is_ok());
    // A descriptor opened on a subdirectory is its own sandbox, as in wasmtime.
    let a = root
        .open_at(PF::empty(), "a", OF::DIRECTORY, DF::READ)
        .unwrap();
    assert_eq!(
        a.stat_at(PF::empty(), "../top").unwrap_err(),
        E::NotPermitted
    );
    assert_eq!(
        a.open_at(FOLLOW, "b/../../top", OF::empty(), DF::READ)
            .unwrap_err(),
        E::NotPermitted
    );
    assert!(a.stat_at(PF::empty(), "b/..").is_ok());
}

#[test]
fn absolute_paths_and_symlinks_stay_inside() {
    let (fs, root, _) = setup(FsConfig::default());
    root.create_directory_at("etc").unwrap();
    root.create_directory_at("usr").unwrap();
    create(&root, "usr/zone", b"UTC");
    root.symlink_any_at("/usr/zone", "etc/localtime").unwrap();
    root.symlink_at("../../../../usr/zone", "etc/escape")
        .unwrap();
    root.symlink_any_at("/", "etc/slash").unwrap();
    // An app cannot make one: WASI 0.2's symlink-at refuses a target
    // starting with `/` (not-permitted), and makes nothing.
    assert_eq!(
        root.symlink_at("/usr/zone", "etc/mine"),
        Err(E::NotPermitted)
    );
    assert_eq!(
        root.stat_at(PF::empty(), "etc/mine").unwrap_err(),
        E::NoEntry
    );
    // An absolute path argument is refused, as WASI paths are relative.
    assert_eq!(
        root.stat_at(PF::empty(), "/etc").unwrap_err(),
        E::NotPermitted
    );
    // From a whole-tree preopen an absolute target resolves from its root.
    assert_eq!(read_all(&root, "etc/localtime").unwrap(), b"UTC");
    assert_eq!(root.stat_at(FOLLOW, "etc/slash").unwrap().ino, root.ino());
    assert_eq!(read_all(&root, "etc/slash/usr/zone").unwrap(), b"UTC");
    // Climbing past the root through a relative target is refused.
    assert_eq!(read_all(&root, "etc/escape").unwrap_err(), E::NotPermitted);
    // A named preopen is its own root: absolute targets resolve inside it,
    // as in a chroot, and never reach the rest of the tree.
    let etc = fs.preopen("etc", DF::READ).unwrap();
    assert_eq!(read_all(&etc, "localtime").unwrap_err(), E::NoEntry);
    root.create_directory_at("etc/usr").unwrap();
    create(&root, "etc/usr/zone", b"inner");
    assert_eq!(read_all(&etc, "localtime").unwrap(), b"inner");
    // A plain subdirectory descriptor is not a root: absolute targets through
    // it would leave it, so they are refused.
    let sub = root
        .open_at(PF::empty(), "etc", OF::DIRECTORY, DF::READ)
        .unwrap();
    assert_eq!(read_all(&sub, "localtime").unwrap_err(), E::NotPermitted);
    // ...and `..` at that preopen is refused even though /etc has a parent.
    assert_eq!(
        etc.stat_at(PF::empty(), "../usr").unwrap_err(),
        E::NotPermitted
    );
    // Not following leaves the link itself reachable.
    assert_eq!(
        etc.stat_at(PF::empty(), "localtime").unwrap().kind,
        DescriptorType::SymbolicLink
    );
    assert_eq!(etc.readlink_at("localtime").unwrap(), "/usr/zone");
}

#[test]
fn symlink_depth_limit_is_a_loop_error() {
    let (_fs, root, _) = setup(FsConfig::default());
    create(&root, "l0", b"end");
    for i in 1..=41 {
        root.symlink_at(&format!("l{}", i - 1), &format!("l{i}"))
            .unwrap();
    }
    assert_eq!(read_all(&root, "l40").unwrap(), b"end");
    assert_eq!(read_all(&root, "l41").unwrap_err(), E::Loop);
    root.symlink_at("self", "self").unwrap();
    assert_eq!(root.stat_at(FOLLOW, "self").unwrap_err(), E::Loop);
    assert_eq!(root.stat_at(FOLLOW, "self/x").unwrap_err(), E::Loop);
}

#[test]
fn name_and_path_limits() {
    let (_fs, root, _) = setup(FsConfig::default());
    let long = "n".repeat(256);
    assert_eq!(root.create_directory_at(&long).unwrap_err(), E::NameTooLong);
    root.create_directory_at(&"n".repeat(255)).unwrap();
    let deep = "d/".repeat(2048);
    assert_eq!(
        root.stat_at(PF::empty(), &deep).unwrap_err(),
        E::NameTooLong
    );
    assert_eq!(
        root.symlink_at(&"t".repeat(4096), "l").unwrap_err(),
        E::NameTooLong
    );
    assert_eq!(root.symlink_at("", "l").unwrap_err(), E::NoEntry);
    assert_eq!(root.stat_at(PF::empty(), "").unwrap_err(), E::NoEntry);
    assert_eq!(root.stat_at(PF::empty(), "a\0b").unwrap_err(), E::Invalid);
}

#[test]
fn descriptor_flags_are_enforced() {
    let (fs, root, _) = setup(FsConfig::default());
    create(&root, "f", b"data");
    let ro = root.open_at(FOLLOW, "f", OF::empty(), DF::READ).unwrap();
    assert_eq!(ro.write(b"x", 0).unwrap_err(), E::BadDescriptor);
    assert_eq!(ro.append(b"x").unwrap_err(), E::BadDescriptor);
    assert_eq!(ro.set_size(0).unwrap_err(), E::Invalid);
    let wo = root.open_at(FOLLOW, "f", OF::empty(), DF::WRITE).unwrap();
    assert_eq!(wo.read(&mut [0; 4], 0).unwrap_err(), E::BadDescriptor);
    assert_eq!(wo.get_flags(), DF::WRITE);
    // Neither read nor write asked: Linux's O_RDONLY.
    assert_eq!(
        root.open_at(FOLLOW, "f", OF::empty(), DF::empty())
            .unwrap()
            .get_flags(),
        DF::READ
    );
    // Sync flags are accepted and reported.
    let s = root
        .open_at(FOLLOW, "f", OF::empty(), RW | DF::DATA_INTEGRITY_SYNC)
        .unwrap();
    assert!(s.get_flags().contains(DF::DATA_INTEGRITY_SYNC));
    s.sync().unwrap();
    s.sync_data().unwrap();
    // File ops on a directory, directory ops on a file.
    assert_eq!(root.read(&mut [0; 4], 0).unwrap_err(), E::IsDirectory);
    assert_eq!(ro.create_directory_at("x").unwrap_err(), E::NotDirectory);
    assert_eq!(ro.read_directory().err(), Some(E::NotDirectory));

    // A preopen without mutate-directory refuses every change.
    let view = fs.root(DF::READ).unwrap();
    assert_eq!(view.get_flags(), DF::READ);
    assert_eq!(view.create_directory_at("x").unwrap_err(), E::NotPermitted);
    assert_eq!(
        view.open_at(FOLLOW, "n", OF::CREATE, DF::READ).unwrap_err(),
        E::NotPermitted
    );
    assert_eq!(
        view.open_at(FOLLOW, "f", OF::empty(), RW).unwrap_err(),
        E::NotPermitted
    );
    assert_eq!(
        view.open_at(FOLLOW, "f", OF::TRUNCATE, DF::READ)
            .unwrap_err(),
        E::NotPermitted
    );
    assert_eq!(view.unlink_file_at("f").unwrap_err(), E::NotPermitted);
    assert_eq!(
        view.rename_at("f", &view, "g").unwrap_err(),
        E::NotPermitted
    );
    assert_eq!(
        view.rename_at("f", &root, "g").unwrap_err(),
        E::NotPermitted
    );
    assert_eq!(view.symlink_at("f", "l").unwrap_err(), E::NotPermitted);
    assert_eq!(
        view.set_times_at(PF::empty(), "f", NewTimestamp::Now, NewTimestamp::Now)
            .unwrap_err(),
        E::NotPermitted
    );
    assert_eq!(
        view.set_times(NewTimestamp::Now, NewTimestamp::Now)
            .unwrap_err(),
        E::NotPermitted
    );
    // A file reached through it is never writable: not-permitted before
    // its open mode is looked at (as on wasmtime's read-only preopen).
    let vf = view.open_at(FOLLOW, "f", OF::empty(), DF::READ).unwrap();
    assert_eq!(vf.write(b"x", 0).unwrap_err(), E::NotPermitted);
    assert_eq!(vf.append(b"x").unwrap_err(), E::NotPermitted);
    assert_eq!(vf.set_size(0).unwrap_err(), E::NotPermitted);
    assert_eq!(vf.write_via_stream(0).err(), Some(E::NotPermitted));
    assert_eq!(vf.append_via_stream().err(), Some(E::NotPermitted));
    assert!(vf.read_via_stream(0).is_ok());
    assert_eq!(view.write_via_stream(0).err(), Some(E::BadDescriptor));
    assert_eq!(read_all(&view, "f").unwrap(), b"data");
    // Directories inherit the capability of the descriptor they came from
    // (wasi-libc opens them read-only and still expects mkdirat to work).
    let sub = root
        .open_at(PF::empty(), ".", OF::DIRECTORY, DF::READ)
        .unwrap();
    assert!(sub.get_flags().contains(DF::MUTATE_DIRECTORY));
    sub.create_directory_at("made-through-sub").unwrap();
    let vsub = view
        .open_at(PF::empty(), ".", OF::DIRECTORY, DF::READ)
        .unwrap();
    assert_eq!(vsub.create_directory_at("y").unwrap_err(), E::NotPermitted);
}

#[test]
fn open_flag_combinations() {
    let (_fs, root, _) = setup(FsConfig::default());
    root.create_directory_at("d").unwrap();
    for bad in [OF::CREATE, OF::EXCLUSIVE, OF::TRUNCATE] {
        assert_eq!(
            root.open_at(FOLLOW, "d", OF::DIRECTORY | bad, DF::READ)
                .unwrap_err(),
            E::Invalid
        );
    }
    assert_eq!(
        root.open_at(FOLLOW, ".", OF::CREATE, DF::READ).unwrap_err(),
        E::IsDirectory
    );
    assert_eq!(
        root.open_at(FOLLOW, ".", OF::CREATE | OF::EXCLUSIVE, DF::READ)
            .unwrap_err(),
        E::Exist
    );
    assert_eq!(
        root.open_at(FOLLOW, "d", OF::empty(), RW).unwrap_err(),
        E::IsDirectory
    );
    // Creating through a dangling symlink creates its target.
    root.symlink_at("d/target", "dangling").unwrap();
    create(&root, "dangling", b"via link");
    assert_eq!(read_all(&root, "d/target").unwrap(), b"via link");
    assert_eq!(
        root.open_at(FOLLOW, "dangling", OF::CREATE | OF::EXCLUSIVE, RW)
            .unwrap_err(),
        E::Exist
    );
    assert_eq!(
        root.open_at(PF::empty(), "dangling", OF::CREATE, RW)
            .unwrap_err(),
        E::Loop
    );
}

#[test]
fn read_only_mounts_refuse_every_change() {
    let (_fs, root, clock) = setup(FsConfig::default());
    root.create_directory_at("etc").unwrap();
    root.create_directory_at("etc/app").unwrap();
    create(&root, "etc/app/conf", b"k=v");
    create(&root, "outside", b"o");
    let etc = root
        .open_at(PF::empty(), "etc", OF::DIRECTORY, DF::READ)
        .unwrap();
    etc.set_read_only_recursive();
    let before = root.stat_at(PF::empty(), "etc/app/conf").unwrap();
    clock.advance_nanos(10_000_000_000);
    assert_eq!(read_all(&root, "etc/app/conf").unwrap(), b"k=v");
    // Reads leave no trace either (no atime update on a read-only mount).
    assert_eq!(root.stat_at(PF::empty(), "etc/app/conf").unwrap(), before);
    assert_eq!(
        root.open_at(FOLLOW, "etc/app/conf", OF::empty(), RW)
            .unwrap_err(),
        E::ReadOnly
    );
    assert_eq!(
        root.open_at(FOLLOW, "etc/app/conf", OF::TRUNCATE, DF::READ)
            .unwrap_err(),
        E::ReadOnly
    );
    assert_eq!(
        root.open_at(FOLLOW, "etc/app/new", OF::CREATE, RW)
            .unwrap_err(),
        E::ReadOnly
    );
    // Opening an existing file with O_CREAT but no write is allowed, as on Linux.
    assert!(root
        .open_at(FOLLOW, "etc/app/conf", OF::CREATE, DF::READ)
        .is_ok());
    assert_eq!(
        root.create_directory_at("etc/app/x").unwrap_err(),
        E::ReadOnly
    );
    assert_eq!(
        root.create_directory_at("etc/app/conf").unwrap_err(),
        E::Exist
    );
    assert_eq!(
        root.unlink_file_at("etc/app/conf").unwrap_err(),
        E::ReadOnly
    );
    assert_eq!(
        root.unlink_file_at("etc/app/missing").unwrap_err(),
        E::ReadOnly
    );
    assert_eq!(
        root.remove_directory_at("etc/app").unwrap_err(),
        E::ReadOnly
    );
    assert_eq!(
        root.rename_at("etc/app/conf", &root, "stolen").unwrap_err(),
        E::ReadOnly
    );
    assert_eq!(
        root.rename_at("outside", &root, "etc/app/conf")
            .unwrap_err(),
        E::ReadOnly
    );
    assert_eq!(root.symlink_at("x", "etc/app/l").unwrap_err(), E::ReadOnly);
    assert_eq!(
        root.link_at(PF::empty(), "etc/app/conf", &root, "hard")
            .unwrap_err(),
        E::CrossDevice
    );
    assert_eq!(
        root.link_at(PF::empty(), "outside", &root, "etc/app/hard")
            .unwrap_err(),
        E::ReadOnly
    );
    assert_eq!(
        root.set_times_at(
            PF::empty(),
            "etc/app/conf",
            NewTimestamp::Now,
            NewTimestamp::Now
        )
        .unwrap_err(),
        E::ReadOnly
    );
    // Outside the mount everything still works.
    root.rename_at("outside", &root, "moved").unwrap();
}

/// A read-only mount's root stays where it is, as a Linux mount point:
/// it cannot be renamed, replaced or removed (even when empty), so no one
/// can put their own files where the read-only ones were.
#[test]
fn a_read_only_mount_root_is_immovable() {
    let (_fs, root, _) = setup(FsConfig::default());
    root.create_directory_at("etc").unwrap();
    create(&root, "etc/conf", b"k=v");
    root.create_directory_at("empty").unwrap();
    create(&root, "file", b"f");
    root.create_directory_at("decoy").unwrap();
    create(&root, "plain", b"p");
    for path in ["etc", "empty", "file"] {
        root.open_at(PF::empty(), path, OF::empty(), DF::READ)
            .unwrap()
            .set_read_only_recursive();
    }
    assert_eq!(root.rename_at("etc", &root, "etc2").unwrap_err(), E::Busy);
    assert_eq!(root.rename_at("empty", &root, "gone").unwrap_err(), E::Busy);
    assert_eq!(root.rename_at("file", &root, "moved").unwrap_err(), E::Busy);
    assert_eq!(
        root.rename_at("decoy", &root, "empty").unwrap_err(),
        E::Busy
    );
    assert_eq!(root.rename_at("plain", &root, "file").unwrap_err(), E::Busy);
    assert_eq!(root.remove_directory_at("empty").unwrap_err(), E::Busy);
    assert_eq!(root.remove_directory_at("etc").unwrap_err(), E::Busy);
    assert_eq!(root.unlink_file_at("file").unwrap_err(), E::Busy);
    // Renaming a mount root onto itself changes nothing, as on Linux.
    root.rename_at("etc", &root, "etc").unwrap();
    assert_eq!(read_all(&root, "etc/conf").unwrap(), b"k=v");
    assert_eq!(read_all(&root, "file").unwrap(), b"f");
    assert!(root.stat_at(PF::empty(), "empty").is_ok());
    // What is not a mount root still moves.
    root.rename_at("decoy", &root, "decoy2").unwrap();
}

#[test]
fn unlinked_open_files_live_until_the_last_handle() {
    let (fs, root, _) = setup(FsConfig::default());
    let base = fs.usage();
    let f = create(&root, "tmp", &vec![3u8; 300_000]);
    let g = root.open_at(FOLLOW, "tmp", OF::empty(), DF::READ).unwrap();
    let used = fs.usage();
    assert!(used.bytes >= 300_000 && used.bytes < 400_000, "{used:?}");
    root.unlink_file_at("tmp").unwrap();
    assert_eq!(root.stat_at(PF::empty(), "tmp").unwrap_err(), E::NoEntry);
    assert_eq!(f.stat().nlink, 0);
    f.write(b"still", 0).unwrap();
    let mut buf = [0; 5];
    g.read(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"still");
    assert_eq!(fs.usage().bytes, used.bytes);
    drop(f);
    assert_eq!(fs.usage().inodes, used.inodes);
    drop(g);
    assert_eq!(fs.usage().bytes, base.bytes);
    assert_eq!(fs.usage().inodes, base.inodes);
    // A removed directory held open answers for nothing new.
    root.create_directory_at("gone").unwrap();
    let d = root
        .open_at(PF::empty(), "gone", OF::DIRECTORY, DF::READ)
        .unwrap();
    root.remove_directory_at("gone").unwrap();
    assert_eq!(d.stat().nlink, 0);
    assert_eq!(d.create_directory_at("x").unwrap_err(), E::NoEntry);
    assert_eq!(
        d.open_at(FOLLOW, "x", OF::CREATE, RW).unwrap_err(),
        E::NoEntry
    );
    assert_eq!(d.read_directory().unwrap().count(), 0);
    // Linking an unlinked file back in is refused, as Linux does.
    let h = create(&root, "h", b"h");
    root.unlink_file_at("h").unwrap();
    drop(h);
}

#[test]
fn hard_links_share_one_inode() {
    let (_fs, root, _) = setup(FsConfig::default());
    let f = create(&root, "a", b"one");
    root.link_at(PF::empty(), "a", &root, "b").unwrap();
    let b = root.open_at(FOLLOW, "b", OF::empty(), RW).unwrap();
    assert!(f.is_same_object(&b));
    assert_eq!(f.stat().nlink, 2);
    b.write(b"two", 0).unwrap();
    assert_eq!(read_all(&root, "a").unwrap(), b"two");
    // Renaming one link onto another of the same inode does nothing.
    root.rename_at("a", &root, "b").unwrap();
    assert!(root.stat_at(PF::empty(), "a").is_ok());
    root.unlink_file_at("a").unwrap();
    assert_eq!(b.stat().nlink, 1);
    root.create_directory_at("d").unwrap();
    assert_eq!(
        root.link_at(PF::empty(), "d", &root, "d2").unwrap_err(),
        E::NotPermitted
    );
    // Links to a symlink: without follow the link itself, with follow its target.
    root.symlink_at("b", "s").unwrap();
    root.link_at(PF::empty(), "s", &root, "s2").unwrap();
    assert_eq!(root.readlink_at("s2").unwrap(), "b");
    root.link_at(FOLLOW, "s", &root, "b2").unwrap();
    assert_eq!(root.stat_at(PF::empty(), "b2").unwrap().ino, b.ino());
    let other = Fs::in_memory();
    let oroot = other.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    assert_eq!(
        root.link_at(PF::empty(), "b", &oroot, "x").unwrap_err(),
        E::CrossDevice
    );
    assert_eq!(
        root.rename_at("b", &oroot, "x").unwrap_err(),
        E::CrossDevice
    );
}

#[test]
fn link_count_limit() {
    let (_fs, root, _) = setup(FsConfig {
        max_links: 3,
        ..FsConfig::default()
    });
    create(&root, "f", b"");
    root.link_at(PF::empty(), "f", &root, "g").unwrap();
    root.link_at(PF::empty(), "f", &root, "h").unwrap();
    assert_eq!(
        root.link_at(PF::empty(), "f", &root, "i").unwrap_err(),
        E::TooManyLinks
    );
    // A directory's link count is 2 + subdirectories.
    root.create_directory_at("d").unwrap();
    root.create_directory_at("d/1").unwrap();
    assert_eq!(
        root.create_directory_at("d/2").unwrap_err(),
        E::TooManyLinks
    );
}

#[test]
fn rename_semantics() {
    let (_fs, root, _) = setup(FsConfig::default());
    for d in ["a", "a/b", "a/b/c", "empty", "full", "full/x"] {
        root.create_directory_at(d).unwrap();
    }
    create(&root, "f", b"f");
    assert_eq!(
        root.rename_at("a", &root, "a/b/c/a").unwrap_err(),
        E::Invalid
    );
    assert_eq!(root.rename_at("a", &root, "a/b").unwrap_err(), E::Invalid);
    assert_eq!(
        root.rename_at("a/b/c", &root, "a").unwrap_err(),
        E::NotEmpty
    );
    assert_eq!(root.rename_at("a", &root, "full").unwrap_err(), E::NotEmpty);
    assert_eq!(
        root.rename_at("a", &root, "f").unwrap_err(),
        E::NotDirectory
    );
    assert_eq!(
        root.rename_at("f", &root, "empty").unwrap_err(),
        E::IsDirectory
    );
    assert_eq!(root.rename_at(".", &root, "z").unwrap_err(), E::Busy);
    root.rename_at("a", &root, "a").unwrap();
    let moved = root.stat_at(PF::empty(), "a/b").unwrap().ino;
    root.rename_at("a/b", &root, "empty").unwrap();
    assert_eq!(root.stat_at(PF::empty(), "empty").unwrap().ino, moved);
    assert_eq!(root.stat_at(PF::empty(), "a").unwrap().nlink, 2);
    assert_eq!(root.stat_at(PF::empty(), ".").unwrap().nlink, 2 + 3);
    // A descriptor follows its object through renames.
    let f = root.open_at(FOLLOW, "f", OF::empty(), RW).unwrap();
    root.rename_at("f", &root, "empty/c/f2").unwrap();
    f.write(b"g", 0).unwrap();
    assert_eq!(read_all(&root, "empty/c/f2").unwrap(), b"g");
    // `..` of a moved directory is its new parent.
    assert_eq!(root.stat_at(PF::empty(), "empty/c/..").unwrap().ino, moved);
}

#[test]
fn timestamps_follow_linux_rules() {
    let (_fs, root, clock) = setup(FsConfig::default());
    let t0 = ts(1_700_000_000, 5);
    let f = create(&root, "f", b"x");
    let s = f.stat();
    assert_eq!((s.atime, s.mtime, s.ctime), (t0, t0, t0));
    assert_eq!(root.stat().mtime, t0);

    clock.set(ts(1_700_000_010, 123_456_789));
    let t1 = ts(1_700_000_010, 123_456_789);
    f.write(b"y", 0).unwrap();
    let s = f.stat();
    assert_eq!(
        (s.atime, s.mtime, s.ctime),
        (t0, t1, t1),
        "write moves mtime and ctime"
    );
    // An empty write changes nothing.
    clock.set(ts(1_700_000_020, 0));
    f.write(b"", 0).unwrap();
    assert_eq!(f.stat().mtime, t1);
    // relatime: the first read after a modification moves atime...
    f.read(&mut [0; 1], 0).unwrap();
    assert_eq!(f.stat().atime, ts(1_700_000_020, 0));
    // ...later reads do not, until a day has passed.
    clock.set(ts(1_700_000_030, 0));
    f.read(&mut [0; 1], 0).unwrap();
    assert_eq!(f.stat().atime, ts(1_700_000_020, 0));
    clock.set(ts(1_700_000_020 + 86_400, 0));
    f.read(&mut [0; 1], 0).unwrap();
    assert_eq!(f.stat().atime, ts(1_700_000_020 + 86_400, 0));

    // set-times: explicit, now, no-change; ctime always moves.
    clock.set(ts(1_800_000_000, 1));
    f.set_times(
        NewTimestamp::Timestamp(ts(5, 999_999_999)),
        NewTimestamp::NoChange,
    )
    .unwrap();
    let s = f.stat();
    assert_eq!(
        (s.atime, s.mtime, s.ctime),
        (ts(5, 999_999_999), t1, ts(1_800_000_000, 1))
    );
    f.set_times(NewTimestamp::NoChange, NewTimestamp::Now)
        .unwrap();
    assert_eq!(f.stat().mtime, ts(1_800_000_000, 1));
    let bad = NewTimestamp::Timestamp(Timestamp {
        seconds: 1,
        nanoseconds: 1_000_000_000,
    });
    assert_eq!(
        f.set_times(bad, NewTimestamp::NoChange).unwrap_err(),
        E::Invalid
    );
    // Both no-change: nothing moves, not even ctime.
    clock.set(ts(1_900_000_000, 0));
    f.set_times(NewTimestamp::NoChange, NewTimestamp::NoChange)
        .unwrap();
    assert_eq!(f.stat().ctime, ts(1_800_000_000, 1));

    // Namespace changes: link/unlink/rename move the inode's ctime and the
    // directories' mtime and ctime, not the inode's mtime.
    root.create_directory_at("d").unwrap();
    clock.set(ts(1_950_000_000, 0));
    root.link_at(PF::empty(), "f", &root, "d/g").unwrap();
    let s = f.stat();
    assert_eq!(
        (s.mtime, s.ctime),
        (ts(1_800_000_000, 1), ts(1_950_000_000, 0))
    );
    assert_eq!(
        root.stat_at(PF::empty(), "d").unwrap().mtime,
        ts(1_950_000_000, 0)
    );
    clock.set(ts(1_960_000_000, 0));
    root.rename_at("d/g", &root, "g").unwrap();
    assert_eq!(f.stat().ctime, ts(1_960_000_000, 0));
    clock.set(ts(1_970_000_000, 0));
    root.unlink_file_at("g").unwrap();
    assert_eq!(f.stat().ctime, ts(1_970_000_000, 0));
    // Symlink timestamps can be set without touching the target.
    root.symlink_at("f", "s").unwrap();
    root.set_times_at(
        PF::empty(),
        "s",
        NewTimestamp::Timestamp(ts(7, 0)),
        NewTimestamp::Timestamp(ts(8, 0)),
    )
    .unwrap();
    assert_eq!(root.stat_at(PF::empty(), "s").unwrap().mtime, ts(8, 0));
    assert_ne!(f.stat().mtime, ts(8, 0));
}

#[test]
fn atime_policies() {
    for (policy, moves) in [
        (AtimePolicy::Strict, 2),
        (AtimePolicy::NoAtime, 0),
        (AtimePolicy::Relatime, 1),
    ] {
        let (_fs, root, clock) = setup(FsConfig {
            atime: policy,
            ..FsConfig::default()
        });
        let f = create(&root, "f", b"x");
        let mut seen = vec![f.stat().atime];
        for i in 1..=2 {
            clock.advance_nanos(1_000);
            f.read(&mut [0], 0).unwrap();
            let a = f.stat().atime;
            if a != *seen.last().unwrap() {
                seen.push(a);
            }
            let _ = i;
        }
        assert_eq!(seen.len() - 1, moves, "{policy:?}");
    }
}

#[test]
fn sparse_files_cost_nothing_for_holes() {
    let (fs, root, _) = setup(FsConfig::default());
    let f = create(&root, "sparse", b"");
    let far = 1u64 << 40;
    f.write(b"end", far).unwrap();
    let s = f.stat();
    assert_eq!(s.size, far + 3);
    assert!(s.allocated <= 64 * 1024, "{s:?}");
    let mut buf = vec![1u8; 100_000];
    assert_eq!(f.read(&mut buf, 12345).unwrap(), buf.len());
    assert!(buf.iter().all(|&b| b == 0));
    let mut tail = [0u8; 10];
    assert_eq!(f.read(&mut tail, far - 2).unwrap(), 5);
    assert_eq!(&tail[..5], b"\0\0end");
    // Growing with set-size allocates nothing; shrinking frees.
    f.set_size(far * 2).unwrap();
    assert_eq!(f.stat().allocated, s.allocated);
    f.set_size(0).unwrap();
    assert_eq!(f.stat().allocated, 0);
    assert_eq!(fs.usage().bytes, 0);
    // Shrinking in the middle of a block zeroes what lies past the new end.
    f.write(&[9u8; 10_000], 0).unwrap();
    f.set_size(100).unwrap();
    f.set_size(10_000).unwrap();
    let mut buf = vec![1u8; 10_000];
    f.read(&mut buf, 0).unwrap();
    assert!(buf[..100].iter().all(|&b| b == 9) && buf[100..].iter().all(|&b| b == 0));
}

#[test]
fn quotas_become_errors_not_aborts() {
    let (fs, root, _) = setup(FsConfig {
        max_bytes: 1 << 20,
        max_inodes: 10,
        ..FsConfig::default()
    });
    let f = create(&root, "big", b"");
    let chunk = vec![1u8; 300_000];
    let mut total = 0;
    loop {
        match f.write(&chunk, total as u64) {
            Ok(n) => {
                total += n;
                if n < chunk.len() {
                    break;
                }
            }
            Err(e) => {
                assert_eq!(e, E::InsufficientSpace);
                break;
            }
        }
    }
    assert_eq!(
        total,
        1 << 20,
        "a full quota leaves a short write, like a full disk"
    );
    assert_eq!(
        f.write(b"more", total as u64).unwrap_err(),
        E::InsufficientSpace
    );
    assert_eq!(f.set_size(0), Ok(()));
    assert_eq!(fs.usage().bytes, 0);
    assert_eq!(f.write(&chunk, 0).unwrap(), chunk.len());

    // Inodes: root + "big" + 8 more.
    for i in 0..8 {
        root.create_directory_at(&format!("d{i}")).unwrap();
    }
    assert_eq!(
        root.create_directory_at("x").unwrap_err(),
        E::InsufficientSpace
    );
    assert_eq!(
        root.open_at(FOLLOW, "x", OF::CREATE, RW).unwrap_err(),
        E::InsufficientSpace
    );
    assert_eq!(root.symlink_at("t", "x").unwrap_err(), E::InsufficientSpace);
    root.remove_directory_at("d0").unwrap();
    root.symlink_at("t", "x").unwrap();

    let (_fs, root, _) = setup(FsConfig {
        max_file_size: 1000,
        ..FsConfig::default()
    });
    let f = create(&root, "f", b"");
    assert_eq!(f.write(&[1; 2000], 0).unwrap(), 1000);
    assert_eq!(f.write(&[1], 1000).unwrap_err(), E::FileTooLarge);
    assert_eq!(f.set_size(1001).unwrap_err(), E::FileTooLarge);

    let (_fs, root, _) = setup(FsConfig {
        max_open_handles: 3,
        ..FsConfig::default()
    });
    let _a = create(&root, "a", b"");
    let _b = root.open_at(FOLLOW, "a", OF::empty(), DF::READ).unwrap();
    assert_eq!(
        root.open_at(FOLLOW, "a", OF::empty(), DF::READ)
            .unwrap_err(),
        E::InsufficientMemory
    );
    assert_eq!(_a.try_clone().unwrap_err(), E::InsufficientMemory);
    drop(_b);
    assert!(root.open_at(FOLLOW, "a", OF::empty(), DF::READ).is_ok());
}

#[test]
fn readdir_is_stable_while_the_directory_changes() {
    let (_fs, root, _) = setup(FsConfig::default());
    for i in 0..100 {
        create(&root, &format!("f{i:03}"), b"");
    }
    let mut stream = root.read_directory().unwrap();
    let mut seen = Vec::new();
    for step in 0..200 {
        // Churn: remove entries behind and ahead, add new ones.
        if step % 3 == 0 {
            let _ = root.unlink_file_at(&format!("f{:03}", (step * 7) % 100));
            create(&root, &format!("g{step:03}"), b"");
        }
        match stream.next_entry().unwrap() {
            Some(e) => seen.push(e.name),
            None => break,
        }
    }
    let unique: std::collections::BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no entry twice");
    // Every entry present from start to end was returned.
    let present: Vec<String> = root
        .read_directory()
        .unwrap()
        .map(|e| e.unwrap().name)
        .collect();
    for name in present.iter().filter(|n| n.starts_with('f')) {
        assert!(unique.contains(name), "{name} missing");
    }
    assert!(!seen.iter().any(|n| n == "." || n == ".."));
}

#[test]
fn metadata_hash_tracks_identity_and_changes() {
    let (_fs, root, clock) = setup(FsConfig::default());
    let a = create(&root, "a", b"1");
    let b = create(&root, "b", b"1");
    assert_ne!(a.metadata_hash(), b.metadata_hash());
    assert_eq!(
        a.metadata_hash(),
        root.metadata_hash_at(PF::empty(), "a").unwrap()
    );
    let h = a.metadata_hash();
    a.read(&mut [0], 0).unwrap();
    assert_eq!(a.metadata_hash(), h, "reads do not change it");
    clock.advance_nanos(1);
    a.write(b"2", 0).unwrap();
    assert_ne!(a.metadata_hash(), h, "writes do");
    assert!(!a.is_same_object(&b));
    let a2 = root.open_at(FOLLOW, "a", OF::empty(), DF::READ).unwrap();
    assert!(a.is_same_object(&a2));
    let dup = a.try_clone().unwrap();
    assert!(dup.is_same_object(&a) && dup.get_flags() == a.get_flags());
}

#[test]
fn appends_land_at_the_end() {
    let (_fs, root, _) = setup(FsConfig::default());
    let f = create(&root, "log", b"abc");
    assert_eq!(f.append(b"def").unwrap(), (3, 3));
    f.set_size(1).unwrap();
    assert_eq!(f.append(b"X").unwrap(), (1, 1));
    assert_eq!(read_all(&root, "log").unwrap(), b"aX");
}

#[test]
fn deep_trees_drop_without_recursion() {
    let (fs, root, _) = setup(FsConfig::default());
    let mut dir = root
        .open_at(PF::empty(), ".", OF::DIRECTORY, DF::READ)
        .unwrap();
    for _ in 0..20_000 {
        dir.create_directory_at("d").unwrap();
        create(&dir, "f", b"payload");
        dir = dir
            .open_at(PF::empty(), "d", OF::DIRECTORY, DF::READ)
            .unwrap();
    }
    drop(dir);
    assert_eq!(fs.usage().inodes, 1 + 2 * 20_000);
    drop(root);
    // Dropping the filesystem tears the tree down iteratively.
    drop(fs);
}

#[test]
fn error_codes_map_to_distinct_errnos() {
    let mut errnos: Vec<i32> = E::ALL.iter().map(|e| e.errno()).collect();
    errnos.sort();
    errnos.dedup();
    assert_eq!(errnos.len(), E::ALL.len());
    for e in E::ALL {
        assert_eq!(E::from_errno(e.errno()), Some(e));
        assert!(!e.name().is_empty());
    }
    assert_eq!(
        std::io::Error::from(E::NoEntry).kind(),
        std::io::ErrorKind::NotFound
    );
}

#[test]
fn invalid_block_sizes_are_rejected() {
    for bs in [0, 1000, 2048, 3 << 12, 2 << 20] {
        let cfg = FsConfig {
            block_size: bs,
            ..FsConfig::default()
        };
        assert_eq!(
            Fs::new(cfg, Arc::new(ManualClock::default()))
                .err()
                .map(|_| ()),
            Some(())
        );
    }
}

#[test]
fn read_append_matches_read() {
    let (_fs, root, _) = setup(FsConfig::default());
    let f = create(&root, "f", b"");
    f.write(&[3u8; 70_000], 10).unwrap();
    f.write(b"end", 300_000).unwrap();
    for (off, len) in [
        (0u64, 10usize),
        (0, 400_000),
        (65_530, 20),
        (69_990, 100_000),
        (299_999, 10),
        (400_000, 5),
    ] {
        let mut a = vec![9u8; len];
        let n = f.read(&mut a, off).unwrap();
        a.truncate(n);
        let mut b = b"prefix".to_vec();
        assert_eq!(f.read_append(&mut b, len, off).unwrap(), n);
        assert_eq!(&b[6..], &a[..], "offset {off} len {len}");
    }
    let wo = root.open_at(FOLLOW, "f", OF::empty(), DF::WRITE).unwrap();
    assert_eq!(
        wo.read_append(&mut Vec::new(), 1, 0).unwrap_err(),
        E::BadDescriptor
    );
}

#[test]
fn small_writes_anywhere_cost_about_their_size() {
    let (fs, root, _) = setup(FsConfig::default());
    let f = create(&root, "f", b"");
    // Ten bytes near the end of the first block, and in the middle of others.
    for off in [65_000u64, 1 << 20, (1 << 30) + 30_000] {
        f.write(b"0123456789", off).unwrap();
    }
    assert!(f.stat().allocated <= 3 * 16, "{:?}", f.stat());
    // Writing before a block's stored run widens it; the gap reads as zeros.
    f.write(b"ab", 64_990).unwrap();
    let mut buf = [9u8; 20];
    f.read(&mut buf, 64_990).unwrap();
    assert_eq!(&buf[..2], b"ab");
    assert_eq!(&buf[2..10], &[0u8; 8]);
    assert_eq!(&buf[10..], b"0123456789");
    assert_eq!(fs.usage().bytes, f.stat().allocated);
    f.set_size(64_995).unwrap();
    let mut buf = [9u8; 10];
    assert_eq!(f.read(&mut buf, 64_990).unwrap(), 5);
    assert_eq!(&buf[..5], b"ab\0\0\0");
    f.set_size(64_000).unwrap();
    assert_eq!(
        f.stat().allocated,
        0,
        "a block wholly past the new end is freed"
    );
    assert_eq!(fs.usage().bytes, 0);
}

/// `data_in` finds the written runs of a sparse file and nothing of its
/// holes (what a copy of it may skip), clipped to the range asked and to
/// the file's size.
#[test]
fn data_in_finds_the_written_runs_of_a_sparse_file() {
    let fs = Fs::in_memory();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let f = root
        .open_at(PF::empty(), "sparse", OF::CREATE, DF::READ | DF::WRITE)
        .unwrap();
    f.write(b"abc", 10).unwrap();
    f.write(b"defgh", 70_000).unwrap();
    f.write(b"ij", 1 << 30).unwrap();
    // Adjacent writes in neighbouring blocks merge into one run.
    f.write(&[1; 100], (3 << 20) - 50).unwrap();
    f.set_size(1 << 40).unwrap();
    let all = f.data_in(0, u64::MAX).unwrap();
    assert_eq!(
        all,
        [
            (10, 13),
            (70_000, 70_005),
            ((3 << 20) - 50, (3 << 20) + 50),
            (1 << 30, (1 << 30) + 2)
        ]
    );
    assert_eq!(f.data_in(11, 70_002).unwrap(), [(11, 13), (70_000, 70_002)]);
    assert_eq!(f.data_in(100, 69_999).unwrap(), []);
    // Every byte outside the runs reads as zero.
    let mut buf = vec![0; 80_000];
    f.read(&mut buf, 0).unwrap();
    for (i, b) in buf.iter().enumerate() {
        let i = i as u64;
        let inside = all.iter().any(|&(a, z)| a <= i && i < z);
        assert_eq!(*b != 0, inside, "byte {i}");
    }
    f.set_size(12).unwrap();
    assert_eq!(f.data_in(0, u64::MAX).unwrap(), [(10, 12)]);
    assert_eq!(
        root.open_at(PF::empty(), ".", OF::empty(), DF::READ)
            .unwrap()
            .data_in(0, 1),
        Err(E::IsDirectory)
    );
}

/// The file-type bits every translating crate uses are Linux's, and each
/// type survives the round trip through them.
#[test]
fn mode_bits_are_linux_file_types() {
    use rustix::fs::FileType;
    for (kind, linux) in [
        (DescriptorType::Directory, FileType::Directory),
        (DescriptorType::RegularFile, FileType::RegularFile),
        (DescriptorType::SymbolicLink, FileType::Symlink),
    ] {
        assert_eq!(kind.mode_bits(), linux.as_raw_mode());
        assert_eq!(DescriptorType::from_mode(kind.mode_bits() | 0o7777), kind);
    }
    assert_eq!(fs_core::mode::S_IFMT, libc_ifmt());
    // What fs-core does not store reads as a file.
    let fifo = FileType::Fifo.as_raw_mode();
    assert_eq!(
        DescriptorType::from_mode(fifo | 0o644),
        DescriptorType::RegularFile
    );
}

/// `S_IFMT`: the union of every file type's bits.
fn libc_ifmt() -> rustix::fs::RawMode {
    use rustix::fs::FileType::*;
    [
        RegularFile,
        Directory,
        Symlink,
        Fifo,
        Socket,
        CharacterDevice,
        BlockDevice,
    ]
    .iter()
    .fold(0, |m, t| m | t.as_raw_mode())
}

/// `create_directory_all` answers as `std::fs::create_dir_all` does on
/// Linux, from the same starting tree: a fresh chain, one partly there,
/// trailing and doubled slashes, a symlink to a directory on the way, and
/// a file in the way above the last name and at it.
#[test]
fn create_directory_all_matches_std() {
    let host = tempfile::tempdir().unwrap();
    let (_fs, root, _) = setup(FsConfig::default());
    std::fs::create_dir(host.path().join("have")).unwrap();
    root.create_directory_at("have").unwrap();
    std::fs::write(host.path().join("file"), b"x").unwrap();
    create(&root, "file", b"x");
    std::os::unix::fs::symlink("have", host.path().join("link")).unwrap();
    root.symlink_at("have", "link").unwrap();
    for path in [
        "a/b/c", "have/x/y", "have", "d//e/", "link/z", "link", "file/sub", "file", "a/b/c",
    ] {
        let linux = std::fs::create_dir_all(host.path().join(path))
            .map_err(|e| E::from_errno(e.raw_os_error().unwrap()).unwrap());
        let ours = root.create_directory_all(path);
        assert_eq!(ours, linux, "{path}");
        let kind = |p: &str| root.stat_at(PF::SYMLINK_FOLLOW, p).map(|s| s.kind);
        assert_eq!(
            kind(path.trim_end_matches('/')).is_ok_and(|k| k == DescriptorType::Directory),
            host.path().join(path).is_dir(),
            "{path}"
        );
    }
}
