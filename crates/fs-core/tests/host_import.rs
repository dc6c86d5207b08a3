//! Importing a host directory keeps what Linux shows of it.

use fs_core::host::{import_dir, ImportCause};
use fs_core::{
    image, DescriptorFlags as DF, DescriptorType, ErrorCode, Fs, FsConfig, ManualClock,
    NewTimestamp, OpenFlags as OF, PathFlags as PF, Timestamp,
};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

/// A host tree with what an import must keep: modes, times, a hard link,
/// symlinks (relative and absolute), an empty directory, a sparse file.
fn host_tree(h: &Path) {
    std::fs::create_dir_all(h.join("etc/app/empty")).unwrap();
    std::fs::write(h.join("etc/app/conf.toml"), b"name = \"larder\"\n").unwrap();
    std::fs::set_permissions(
        h.join("etc/app/conf.toml"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::hard_link(h.join("etc/app/conf.toml"), h.join("etc/conf-link")).unwrap();
    std::os::unix::fs::symlink("app/conf.toml", h.join("etc/soft")).unwrap();
    std::os::unix::fs::symlink("/abs/target", h.join("etc/abs")).unwrap();
    let sparse = std::fs::File::create(h.join("sparse")).unwrap();
    sparse.set_len(50 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    sparse.write_all_at(b"end", (50 << 20) - 3).unwrap();
    drop(sparse);
    let old =
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::new(1_234_567_890, 123_456_789);
    std::fs::File::options()
        .write(true)
        .open(h.join("etc/app/conf.toml"))
        .unwrap()
        .set_modified(old)
        .unwrap();
}

/// Both ways of importing: copying file contents in, and leaving them on
/// the host (by reference, as bundling does).
const IMPORTS: [(&str, Import); 2] = [
    ("copied", fs_core::host::import_dir_with_progress),
    ("by reference", fs_core::host::reference_dir_with_progress),
];

type Import = fn(
    &fs_core::Descriptor,
    &Path,
    &mut dyn FnMut(u64),
) -> Result<fs_core::host::ImportStats, fs_core::host::ImportError>;

#[test]
fn import_matches_the_host_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let h = tmp.path();
    host_tree(h);
    for (how, import) in IMPORTS {
        import_matches(h, how, import);
    }
}

fn import_matches(h: &Path, how: &str, import: Import) {
    let fs = Fs::in_memory();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let mut reported = 0;
    let stats = import(&root, h, &mut |n| reported += n).unwrap();
    assert_eq!(
        (stats.files, stats.hard_links, stats.symlinks, stats.dirs),
        (2, 1, 2, 3)
    );
    // Progress covers every byte copied, once (hard links are not copied).
    assert_eq!(reported, stats.bytes);
    assert!(reported > 0);

    for entry in walk(h) {
        let rel = entry.strip_prefix(h).unwrap().to_str().unwrap();
        let hm = std::fs::symlink_metadata(&entry).unwrap();
        let gm = root.stat_at(PF::empty(), rel).unwrap();
        assert_eq!(gm.mode, hm.mode() & 0o7777, "{how}: {rel} mode");
        assert_eq!(gm.nlink, hm.nlink(), "{how}: {rel} nlink");
        assert_eq!(
            (gm.mtime.seconds as i64, gm.mtime.nanoseconds as i64),
            (hm.mtime(), hm.mtime_nsec()),
            "{how}: {rel} mtime"
        );
        match gm.kind {
            DescriptorType::RegularFile => {
                assert_eq!(gm.size, hm.len());
                let f = root
                    .open_at(PF::empty(), rel, OF::empty(), DF::READ)
                    .unwrap();
                let mut buf = vec![0; gm.size as usize];
                f.read(&mut buf, 0).unwrap();
                assert_eq!(buf, std::fs::read(&entry).unwrap(), "{how}: {rel} content");
            }
            DescriptorType::SymbolicLink => {
                assert_eq!(
                    root.readlink_at(rel).unwrap(),
                    std::fs::read_link(&entry).unwrap().to_str().unwrap()
                )
            }
            DescriptorType::Directory => assert!(hm.is_dir()),
        }
    }
    // Hard links stay links; holes stay holes.
    assert_eq!(
        root.stat_at(PF::empty(), "etc/conf-link").unwrap().ino,
        root.stat_at(PF::empty(), "etc/app/conf.toml").unwrap().ino
    );
    assert!(root.stat_at(PF::empty(), "sparse").unwrap().allocated < 1 << 20);
}

/// A tree imported by reference is written out as the same image, byte for
/// byte, as the tree copied in, and the plan knows its length up front.
#[test]
fn a_tree_imported_by_reference_encodes_as_the_copied_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let h = tmp.path();
    host_tree(h);
    std::fs::write(
        h.join("dense"),
        (0..3u32 << 20)
            .map(|i| (i % 253) as u8 | 1)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp {
        seconds: 1_700_000_000,
        nanoseconds: 0,
    }));
    let images: Vec<Vec<u8>> = IMPORTS
        .iter()
        .map(|(_, import)| {
            let fs = Fs::new(FsConfig::default(), clock.clone()).unwrap();
            let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
            import(&root, h, &mut |_| {}).unwrap();
            // Importing reads the host tree, which may move its atimes
            // (strictatime): the same atime everywhere in both.
            let paths = walk(h)
                .into_iter()
                .map(|p| p.strip_prefix(h).unwrap().to_owned());
            for rel in paths.chain([".".into()]) {
                let at = NewTimestamp::Timestamp(Timestamp {
                    seconds: 1_600_000_000,
                    nanoseconds: 0,
                });
                root.set_times_at(
                    PF::empty(),
                    rel.to_str().unwrap(),
                    at,
                    NewTimestamp::NoChange,
                )
                .unwrap();
            }
            let bytes = image::encode(&root).unwrap();
            assert_eq!(image::plan(&root).unwrap().len(), bytes.len() as u64);
            bytes
        })
        .collect();
    assert!(images[0] == images[1], "the two images differ");
}

/// A host file changed after it was imported by reference is never read
/// as other bytes: reading it, or writing the image, fails with `io`.
#[test]
fn a_host_file_changed_after_a_reference_import_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let h = tmp.path();
    std::fs::write(h.join("f"), vec![7u8; 100_000]).unwrap();
    let fs = Fs::in_memory();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    fs_core::host::reference_dir_with_progress(&root, h, &mut |_| {}).unwrap();
    std::fs::write(h.join("f"), vec![8u8; 100_000]).unwrap();

    let plan = image::plan(&root).unwrap();
    let mut written = 0u64;
    let r = plan.write_to(|b| {
        written += b.len() as u64;
        Ok::<(), ErrorCode>(())
    });
    assert_eq!(r, Err(ErrorCode::Io));
    let f = root
        .open_at(PF::empty(), "f", OF::empty(), DF::READ)
        .unwrap();
    let mut buf = vec![0; 100];
    assert_eq!(f.read(&mut buf, 0), Err(ErrorCode::Io));
    // Shortened on the host: the same.
    std::fs::write(h.join("f"), vec![7u8; 10]).unwrap();
    assert_eq!(f.read(&mut buf, 0), Err(ErrorCode::Io));
}

#[test]
fn import_errors_name_the_path() {
    let fs = Fs::in_memory();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let err = import_dir(&root, std::path::Path::new("/no/such/dir")).unwrap_err();
    assert!(err.to_string().contains("/no/such/dir"), "{err}");
    assert!(matches!(err.cause, ImportCause::Io(_)));
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("x"), b"1").unwrap();
    let ro = fs.root(DF::READ).unwrap();
    let err = import_dir(&ro, tmp.path()).unwrap_err();
    assert!(err.to_string().contains("not-permitted"), "{err}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}
