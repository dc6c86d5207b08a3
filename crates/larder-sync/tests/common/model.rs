//! The model the mirror tests share: random filesystem changes, and the
//! tree a user would compare after a restore.

#![allow(dead_code)]

use fs_core::{
    DescriptorFlags as DF, DescriptorType, Fs, NewTimestamp, OpenFlags as OF, PathFlags as PF,
    Timestamp,
};
use larder_sync::{Mirror, ObjectStore, Retry};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// What a user would compare: kind, bytes or target, mode, mtime (symlink
/// times are not kept by every store, so not compared).
#[derive(Debug, PartialEq, Eq, Clone)]
pub enum Entry {
    File(Vec<u8>, u32, Timestamp),
    Dir(u32, Timestamp),
    Symlink(String),
}

pub fn tree(fs: &Fs) -> BTreeMap<String, Entry> {
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

pub fn fast_retry() -> Retry {
    Retry {
        attempts: 3,
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(4),
    }
}

#[derive(Clone, Debug)]
pub enum Op {
    Write(u8, Vec<u8>, u64),
    Truncate(u8, u64),
    Mkdir(u8),
    Rename(u8, u8),
    Unlink(u8),
    Rmdir(u8),
    Symlink(u8, u8),
    Link(u8, u8),
    Touch(u8, u64),
    Chmod(u8, u32),
    Sync,
}

/// A small namespace so operations collide: files and dirs at two levels.
pub fn name(n: u8) -> String {
    const TOP: [&str; 4] = ["a", "b", "d1", "d2"];
    let top = TOP[(n % 4) as usize];
    if n % 8 < 4 {
        top.to_string()
    } else {
        format!("d{}/{}", 1 + (n / 8) % 2, ["x", "y", "z"][(n % 3) as usize])
    }
}

pub fn op() -> impl Strategy<Value = Op> {
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
        1 => (any::<u8>(), 0o400u32..0o777).prop_map(|(n, m)| Op::Chmod(n, m)),
        2 => Just(Op::Sync),
    ]
}

/// Applies `op`; errors (a missing parent, a non-empty dir...) are fine:
/// the filesystem decides, the mirror must follow whatever it did.
pub fn apply(fs: &Fs, mirror: &Mirror, op: &Op) {
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
        Op::Chmod(n, m) => root.set_mode_at(PF::empty(), &name(*n), *m, 0, 0),
        Op::Sync => mirror.sync(fs).map(|_| ()).map_err(|e| panic!("sync: {e}")),
    };
}

pub fn restored(store: Arc<dyn ObjectStore>, prefix: &str) -> Fs {
    let fs = Fs::in_memory();
    Mirror::restore(store, prefix, &fs).unwrap();
    fs
}

pub fn round_trip(store: Arc<dyn ObjectStore>, ops: &[Op]) {
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
