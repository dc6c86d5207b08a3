//! The change log: every inode a call changes is in it, once, until taken;
//! each open log sees every change; a log too long says "everything".

use fs_core::{Changed, DescriptorFlags as DF, Fs, OpenFlags as OF, PathFlags as PF};
use std::collections::BTreeSet;

fn inos(c: Changed) -> BTreeSet<u64> {
    match c {
        Changed::Inodes(i) => i,
        Changed::Everything => panic!("expected a list of inodes"),
    }
}

#[test]
fn each_change_names_the_inodes_it_changed() {
    let fs = Fs::in_memory();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    root.create_directory_at("d").unwrap();
    let f = root
        .open_at(PF::empty(), "d/f", OF::CREATE, DF::READ | DF::WRITE)
        .unwrap();
    let ino = |p: &str| root.stat_at(PF::empty(), p).unwrap().ino;
    let (r, d, file) = (root.stat().ino, ino("d"), ino("d/f"));

    let log = fs.change_log();
    assert_eq!(log.take(), Changed::Inodes(BTreeSet::new()));
    f.write(b"data", 0).unwrap();
    f.write(b"more", 4).unwrap();
    assert_eq!(inos(log.take()), BTreeSet::from([file]));
    assert_eq!(inos(log.take()), BTreeSet::new(), "taken once");

    // A rename changes both directories and the inode it moves.
    root.rename_at("d/f", &root, "g").unwrap();
    assert_eq!(inos(log.take()), BTreeSet::from([r, d, file]));
    // A link changes the directory and the inode (its link count).
    root.link_at(PF::empty(), "g", &root, "d/h").unwrap();
    assert_eq!(inos(log.take()), BTreeSet::from([d, file]));
    // An unlink, likewise; a chmod changes the inode alone.
    root.unlink_file_at("g").unwrap();
    root.set_mode_at(PF::empty(), "d", 0o700, 0, 0).unwrap();
    assert_eq!(inos(log.take()), BTreeSet::from([r, d, file]));
    // Reads change nothing.
    let mut buf = [0; 8];
    f.read(&mut buf, 0).unwrap();
    root.stat_at(PF::empty(), "d/h").unwrap();
    assert_eq!(inos(log.take()), BTreeSet::new());
}

#[test]
fn logs_are_independent_and_put_back_merges() {
    let fs = Fs::in_memory();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let (a, b) = (fs.change_log(), fs.change_log());
    root.create_directory_at("x").unwrap();
    let x = root.stat_at(PF::empty(), "x").unwrap().ino;
    let first = a.take();
    assert!(inos(first.clone()).contains(&x));
    root.create_directory_at("y").unwrap();
    let y = root.stat_at(PF::empty(), "y").unwrap().ino;
    // A reader that could not finish puts its take back: merged.
    a.put_back(first);
    let merged = inos(a.take());
    assert!(merged.contains(&x) && merged.contains(&y));
    assert_eq!(inos(b.take()), merged, "the other log saw the same");
    drop(b);
    root.create_directory_at("z").unwrap();
    assert_eq!(inos(a.take()).len(), 2, "the root and z");
}

#[test]
fn a_log_too_long_says_everything() {
    let fs = Fs::in_memory();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let log = fs.change_log();
    for i in 0..(1 << 18) + 1 {
        root.symlink_at("t", &format!("s{i}")).unwrap();
    }
    assert_eq!(log.take(), Changed::Everything);
    root.symlink_at("t", "after").unwrap();
    assert_eq!(inos(log.take()).len(), 2, "then a list again");
    log.put_back(Changed::Everything);
    assert_eq!(log.take(), Changed::Everything);
}
