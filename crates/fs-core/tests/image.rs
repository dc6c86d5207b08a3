//! The image format: round trips keep everything a tree can express, and
//! damaged or hostile input is rejected with an error, never a panic.

use fs_core::image::{self, ImageError};
use fs_core::{
    Descriptor, DescriptorFlags as DF, DescriptorType, ErrorCode as E, Fs, FsConfig, ManualClock,
    NewTimestamp, OpenFlags as OF, PathFlags as PF, Stat, Timestamp,
};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

const RW: DF = DF::READ.union(DF::WRITE);

fn new_fs() -> (Fs, Descriptor) {
    let fs = Fs::new(
        FsConfig::default(),
        Arc::new(ManualClock::new(Timestamp::new(1_600_000_000, 0).unwrap())),
    )
    .unwrap();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    (fs, root)
}

#[derive(Debug, PartialEq)]
struct Snap {
    kind: DescriptorType,
    size: u64,
    nlink: u64,
    mtime: Timestamp,
    atime: Timestamp,
    content: Vec<u8>,
    target: Option<String>,
}

/// Everything observable about a tree, keyed by path; hard links show up as
/// shared inode numbers, which are compared as groups.
fn snapshot(root: &Descriptor) -> (BTreeMap<String, Snap>, Vec<Vec<String>>) {
    let mut out = BTreeMap::new();
    let mut by_ino: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut pending = vec![".".to_string()];
    while let Some(dir) = pending.pop() {
        let d = root
            .open_at(PF::empty(), &dir, OF::DIRECTORY, DF::READ)
            .unwrap();
        for e in d.read_directory().unwrap() {
            let e = e.unwrap();
            let p = format!("{dir}/{}", e.name);
            let s: Stat = root.stat_at(PF::empty(), &p).unwrap();
            let (content, target) = match s.kind {
                DescriptorType::RegularFile => {
                    let f = root
                        .open_at(PF::empty(), &p, OF::empty(), DF::READ)
                        .unwrap();
                    let mut b = vec![0; s.size as usize];
                    f.read(&mut b, 0).unwrap();
                    (b, None)
                }
                DescriptorType::SymbolicLink => (vec![], Some(root.readlink_at(&p).unwrap())),
                DescriptorType::Directory => {
                    pending.push(p.clone());
                    (vec![], None)
                }
            };
            by_ino.entry(s.ino).or_default().push(p.clone());
            out.insert(
                p,
                Snap {
                    kind: s.kind,
                    size: s.size,
                    nlink: s.nlink,
                    mtime: s.mtime,
                    atime: s.atime,
                    content,
                    target,
                },
            );
        }
    }
    let mut groups: Vec<Vec<String>> = by_ino.into_values().collect();
    groups.sort();
    (out, groups)
}

#[derive(Clone, Debug)]
enum Build {
    Dir(String),
    File {
        path: String,
        offset: u64,
        len: usize,
        byte: u8,
    },
    Link(String, String),
    Symlink(String, String),
    Times(String, u64, u32),
}

fn build() -> impl Strategy<Value = Build> {
    let name = proptest::sample::select(vec!["a", "b", "c", "ü", "long-name.txt"]);
    let path = proptest::collection::vec(name, 1..4).prop_map(|v| v.join("/"));
    prop_oneof![
        path.clone().prop_map(Build::Dir),
        (
            path.clone(),
            prop_oneof![0..100u64, 0..10_000_000u64],
            0..200_000usize,
            any::<u8>()
        )
            .prop_map(|(path, offset, len, byte)| Build::File {
                path,
                offset,
                len,
                byte
            }),
        (path.clone(), path.clone()).prop_map(|(a, b)| Build::Link(a, b)),
        (path.clone(), "[a-z/.]{1,20}").prop_map(|(p, t)| Build::Symlink(p, t)),
        (path, any::<u64>(), 0..1_000_000_000u32).prop_map(|(p, s, n)| Build::Times(p, s, n)),
    ]
}

fn apply(root: &Descriptor, b: &Build) {
    let _ = match b {
        Build::Dir(p) => root.create_directory_at(p),
        Build::File {
            path,
            offset,
            len,
            byte,
        } => root
            .open_at(PF::empty(), path, OF::CREATE, RW)
            .and_then(|f| f.write(&vec![*byte; *len], *offset).map(|_| ())),
        Build::Link(a, b) => root.link_at(PF::empty(), a, root, b),
        Build::Symlink(p, t) => root.symlink_at(t, p),
        Build::Times(p, s, n) => {
            let t = NewTimestamp::Timestamp(Timestamp::new(*s, *n).unwrap());
            root.set_times_at(PF::empty(), p, t, t)
        }
    };
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn round_trip_keeps_the_tree(steps in proptest::collection::vec(build(), 0..40)) {
        let (_fs, root) = new_fs();
        for s in &steps {
            apply(&root, s);
        }
        let bytes = image::encode(&root).unwrap();
        let (fs2, root2) = new_fs();
        image::decode_into(&root2, &bytes, false).unwrap();
        // Encoding is deterministic (checked before snapshots read, and so
        // move, access times).
        prop_assert_eq!(image::encode(&root2).unwrap(), bytes);
        prop_assert_eq!(snapshot(&root), snapshot(&root2));
        prop_assert_eq!(root.stat().nlink, root2.stat().nlink);
        // Holes stay holes: the copy allocates no more than the original.
        prop_assert!(fs2.usage().bytes <= _fs.usage().bytes);
    }
}

fn sample() -> Vec<u8> {
    let (_fs, root) = new_fs();
    root.create_directory_at("etc").unwrap();
    root.create_directory_at("etc/app").unwrap();
    let f = root
        .open_at(PF::empty(), "etc/app/conf", OF::CREATE, RW)
        .unwrap();
    f.write(b"key = value\n", 0).unwrap();
    f.write(b"tail", 66_000).unwrap();
    root.link_at(PF::empty(), "etc/app/conf", &root, "etc/hard")
        .unwrap();
    root.symlink_at("app/conf", "etc/soft").unwrap();
    image::encode(&root).unwrap()
}

#[test]
fn every_truncation_is_rejected() {
    let img = sample();
    for len in 0..img.len() {
        assert!(
            image::Image::parse(&img[..len]).is_err(),
            "prefix of {len} bytes accepted"
        );
    }
    assert!(image::Image::parse(&img).is_ok());
}

#[test]
fn every_bit_flip_is_rejected() {
    let img = sample();
    for i in 0..img.len() {
        for bit in [0, 3, 7] {
            let mut bad = img.clone();
            bad[i] ^= 1 << bit;
            assert!(
                image::Image::parse(&bad).is_err(),
                "flip at byte {i} bit {bit} accepted"
            );
        }
    }
}

#[test]
fn errors_name_the_problem() {
    let img = sample();
    assert_eq!(
        image::Image::parse(b"not an image at all, not at all!").err(),
        Some(ImageError::BadMagic)
    );
    let mut v2 = img.clone();
    v2[8] = 2;
    let hcrc = crc32fast::hash(&v2[..28]);
    v2[28..32].copy_from_slice(&hcrc.to_le_bytes());
    assert_eq!(
        image::Image::parse(&v2).err(),
        Some(ImageError::UnsupportedVersion(2))
    );
    let msg = image::Image::parse(&img[..10]).err().unwrap().to_string();
    assert!(msg.contains("truncated"), "{msg}");
}

/// Re-seals a hand-edited metadata section so only the structural checks
/// can reject it.
fn reseal(img: &mut Vec<u8>, count: u32, meta: &[u8], data: &[u8]) {
    img.clear();
    img.extend_from_slice(image::MAGIC);
    img.extend_from_slice(&1u16.to_le_bytes());
    img.extend_from_slice(&0u16.to_le_bytes());
    img.extend_from_slice(&count.to_le_bytes());
    img.extend_from_slice(&(meta.len() as u64).to_le_bytes());
    img.extend_from_slice(&crc32fast::hash(meta).to_le_bytes());
    let h = crc32fast::hash(img);
    img.extend_from_slice(&h.to_le_bytes());
    img.extend_from_slice(meta);
    img.extend_from_slice(data);
}

fn dir_node(entries: &[(&str, u32)]) -> Vec<u8> {
    let mut m = vec![2u8];
    m.extend_from_slice(&0o755u32.to_le_bytes());
    m.extend_from_slice(&[0; 8]);
    m.extend_from_slice(&[0; 36]);
    m.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (name, child) in entries {
        m.extend_from_slice(&(name.len() as u16).to_le_bytes());
        m.extend_from_slice(name.as_bytes());
        m.extend_from_slice(&child.to_le_bytes());
    }
    m
}

#[test]
fn hostile_trees_are_rejected() {
    let cases: Vec<(Vec<Vec<u8>>, &str)> = vec![
        (
            vec![dir_node(&[("a", 1)]), dir_node(&[("b", 1)])],
            "directory named twice",
        ),
        (
            vec![dir_node(&[("a", 1)]), dir_node(&[("up", 0)])],
            "entry names the root",
        ),
        (
            vec![dir_node(&[]), dir_node(&[("a", 2)]), dir_node(&[("b", 1)])],
            "directory cycle",
        ),
        (vec![dir_node(&[]), dir_node(&[])], "unreachable node"),
        (vec![dir_node(&[("a", 5)])], "does not exist"),
        (
            vec![dir_node(&[("..", 1)]), dir_node(&[])],
            "invalid entry name",
        ),
        (
            vec![dir_node(&[("a/b", 1)]), dir_node(&[])],
            "invalid entry name",
        ),
        (
            vec![
                dir_node(&[("b", 1), ("a", 2)]),
                dir_node(&[]),
                dir_node(&[]),
            ],
            "not sorted",
        ),
        (
            vec![
                dir_node(&[("a", 1), ("a", 2)]),
                dir_node(&[]),
                dir_node(&[]),
            ],
            "not sorted",
        ),
    ];
    for (nodes, reason) in cases {
        let meta: Vec<u8> = nodes.concat();
        let mut img = Vec::new();
        reseal(&mut img, nodes.len() as u32, &meta, &[]);
        let err = image::Image::parse(&img).err().expect(reason).to_string();
        assert!(err.contains(reason), "{err} should mention {reason}");
    }
}

#[test]
fn decoding_respects_the_target() {
    let img = sample();
    let (_fs, root) = new_fs();
    root.create_directory_at("full").unwrap();
    root.create_directory_at("full/x").unwrap();
    let full = root
        .open_at(PF::empty(), "full", OF::DIRECTORY, DF::READ)
        .unwrap();
    assert_eq!(
        image::decode_into(&full, &img, false),
        Err(ImageError::Fs(E::NotEmpty))
    );
    // A read-only load is a read-only mount.
    root.create_directory_at("mnt").unwrap();
    let mnt = root
        .open_at(PF::empty(), "mnt", OF::DIRECTORY, DF::READ)
        .unwrap();
    image::decode_into(&mnt, &img, true).unwrap();
    assert_eq!(
        root.unlink_file_at("mnt/etc/hard").unwrap_err(),
        E::ReadOnly
    );
    assert_eq!(
        root.stat_at(PF::empty(), "mnt/etc/app/conf").unwrap().nlink,
        2
    );
    // Quotas apply to what an image brings in, and a refused image leaves
    // nothing behind.
    let small = Fs::new(
        FsConfig {
            max_bytes: 10,
            ..FsConfig::default()
        },
        Arc::new(ManualClock::default()),
    )
    .unwrap();
    let sroot = small.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let before = small.usage();
    assert_eq!(
        image::decode_into(&sroot, &img, false),
        Err(ImageError::Fs(E::InsufficientSpace))
    );
    assert_eq!(small.usage(), before);
    assert_eq!(sroot.read_directory().unwrap().count(), 0);
}
