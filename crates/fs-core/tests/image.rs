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
        prop_assert_eq!(image::encode(&root2).unwrap(), bytes.clone());
        // Loaded lazily, the tree reads back the same (compared while both
        // copies are fresh, as reading moves access times).
        let (_fs3, root3) = new_fs();
        image::load_lazy(&root3, Arc::new(bytes.clone()), false).unwrap();
        prop_assert_eq!(image::encode(&root3).unwrap(), bytes.clone());
        let copy = snapshot(&root2);
        prop_assert_eq!(&snapshot(&root3), &copy);
        prop_assert_eq!(snapshot(&root), copy);
        prop_assert_eq!(root.stat().nlink, root2.stat().nlink);
        // Holes stay holes: the copy allocates no more than the original.
        prop_assert!(fs2.usage().bytes <= _fs.usage().bytes);
    }
}

/// An image source that counts the bytes it hands out and can corrupt one.
struct Counting {
    bytes: Vec<u8>,
    read: std::sync::atomic::AtomicU64,
}

impl image::ImageSource for Counting {
    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> fs_core::Result<()> {
        self.read
            .fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
        self.bytes.read_at(offset, buf)
    }
}

fn lazy_sample(big: usize) -> (Fs, Descriptor, Arc<Counting>, Vec<u8>) {
    let (_fs, root) = new_fs();
    root.create_directory_at("etc").unwrap();
    let big_data: Vec<u8> = (0..big).map(|i| (i * 7 % 251) as u8).collect();
    let f = root.open_at(PF::empty(), "big", OF::CREATE, RW).unwrap();
    f.write(&big_data, 0).unwrap();
    let f = root
        .open_at(PF::empty(), "etc/small", OF::CREATE, RW)
        .unwrap();
    f.write(b"small", 0).unwrap();
    let bytes = image::encode(&root).unwrap();
    let source = Arc::new(Counting {
        bytes,
        read: Default::default(),
    });
    let (fs, root) = new_fs();
    image::load_lazy(&root, source.clone(), true).unwrap();
    (fs, root, source, big_data)
}

#[test]
fn lazy_load_reads_only_metadata_until_contents_are_used() {
    let (fs, root, source, big) = lazy_sample(3 << 20);
    let loaded = source.read.load(std::sync::atomic::Ordering::Relaxed);
    assert!(loaded < 1024, "loading read {loaded} bytes");
    assert_eq!(fs.usage().bytes, 0, "nothing stored before first use");
    // Metadata needs no contents.
    assert_eq!(
        root.stat_at(PF::empty(), "big").unwrap().size,
        big.len() as u64
    );
    assert_eq!(
        source.read.load(std::sync::atomic::Ordering::Relaxed),
        loaded
    );
    let f = root
        .open_at(PF::empty(), "big", OF::empty(), DF::READ)
        .unwrap();
    let mut buf = vec![0; 10];
    assert_eq!(f.read(&mut buf, 1 << 20).unwrap(), 10);
    assert_eq!(buf, big[1 << 20..(1 << 20) + 10]);
    // The whole file was fetched once (to check its checksum), the small
    // one not at all.
    let after = source.read.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(after - loaded, big.len() as u64);
    let mut all = vec![0; big.len()];
    f.read(&mut all, 0).unwrap();
    assert_eq!(all, big);
    assert_eq!(
        source.read.load(std::sync::atomic::Ordering::Relaxed),
        after
    );
    // The read-only flag holds for lazily loaded trees too.
    let w = root.open_at(PF::empty(), "etc/small", OF::empty(), DF::WRITE);
    assert_eq!(w.err(), Some(E::ReadOnly));
}

#[test]
fn lazy_file_copies_on_write_and_truncate_skips_the_fetch() {
    let (_fs, root) = new_fs();
    for (name, data) in [("a", &b"0123456789"[..]), ("b", b"bbbb")] {
        let f = root.open_at(PF::empty(), name, OF::CREATE, RW).unwrap();
        f.write(data, 0).unwrap();
    }
    let source = Arc::new(Counting {
        bytes: image::encode(&root).unwrap(),
        read: Default::default(),
    });
    let (_fs2, root2) = new_fs();
    image::load_lazy(&root2, source.clone(), false).unwrap();
    let a = root2.open_at(PF::empty(), "a", OF::empty(), RW).unwrap();
    a.write(b"AB", 4).unwrap();
    let mut buf = vec![0; 10];
    a.read(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"0123AB6789");
    let before = source.read.load(std::sync::atomic::Ordering::Relaxed);
    let b = root2
        .open_at(PF::empty(), "b", OF::TRUNCATE, DF::WRITE)
        .unwrap();
    assert_eq!(b.stat().size, 0);
    assert_eq!(
        source.read.load(std::sync::atomic::Ordering::Relaxed),
        before
    );
    // The source itself is untouched: a second load sees the originals.
    let (_fs3, root3) = new_fs();
    image::load_lazy(&root3, source.clone(), false).unwrap();
    let a3 = root3
        .open_at(PF::empty(), "a", OF::empty(), DF::READ)
        .unwrap();
    a3.read(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"0123456789");
}

#[test]
fn lazy_file_with_damaged_bytes_fails_with_io_and_others_still_read() {
    let (_fs, root, source, _) = lazy_sample(100);
    let mut bytes = source.bytes.clone();
    // The data section ends with etc/small's bytes ("small").
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    let (fs, root2) = new_fs();
    image::load_lazy(&root2, Arc::new(bytes), false).unwrap();
    drop(root);
    let f = root2
        .open_at(PF::empty(), "etc/small", OF::empty(), DF::READ)
        .unwrap();
    let mut buf = vec![0; 5];
    assert_eq!(f.read(&mut buf, 0), Err(E::Io));
    assert_eq!(
        f.read(&mut buf, 0),
        Err(E::Io),
        "stays failed, never half loaded"
    );
    let big = root2
        .open_at(PF::empty(), "big", OF::empty(), DF::READ)
        .unwrap();
    assert_eq!(big.read(&mut buf, 0).unwrap(), 5);
    assert!(fs.usage().bytes >= 100 && fs.usage().bytes < 1000);
}

#[test]
fn lazy_load_over_quota_fails_on_use_and_gives_space_back() {
    let (_fs, root, source, big) = lazy_sample(200_000);
    drop(root);
    let fs = Fs::new(
        FsConfig {
            max_bytes: 100_000,
            ..FsConfig::default()
        },
        Arc::new(ManualClock::new(Timestamp::new(1, 0).unwrap())),
    )
    .unwrap();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    image::load_lazy(&root, source, false).unwrap();
    let f = root
        .open_at(PF::empty(), "big", OF::empty(), DF::READ)
        .unwrap();
    let mut buf = vec![0; 4];
    assert_eq!(f.read(&mut buf, 0), Err(E::InsufficientSpace));
    assert_eq!(fs.usage().bytes, 0);
    assert_eq!(f.stat().size, big.len() as u64);
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
