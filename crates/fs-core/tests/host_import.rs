//! Importing a host directory keeps what Linux shows of it.

use fs_core::host::{import_dir, ImportCause};
use fs_core::{DescriptorFlags as DF, DescriptorType, Fs, OpenFlags as OF, PathFlags as PF};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

#[test]
fn import_matches_the_host_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let h = tmp.path();
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

    let fs = Fs::in_memory();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let mut reported = 0;
    let stats = fs_core::host::import_dir_with_progress(&root, h, &mut |n| reported += n).unwrap();
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
        assert_eq!(gm.mode, hm.mode() & 0o7777, "{rel} mode");
        assert_eq!(gm.nlink, hm.nlink(), "{rel} nlink");
        assert_eq!(
            (gm.mtime.seconds as i64, gm.mtime.nanoseconds as i64),
            (hm.mtime(), hm.mtime_nsec()),
            "{rel} mtime"
        );
        match gm.kind {
            DescriptorType::RegularFile => {
                assert_eq!(gm.size, hm.len());
                let f = root
                    .open_at(PF::empty(), rel, OF::empty(), DF::READ)
                    .unwrap();
                let mut buf = vec![0; gm.size as usize];
                f.read(&mut buf, 0).unwrap();
                assert_eq!(buf, std::fs::read(&entry).unwrap(), "{rel} content");
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
