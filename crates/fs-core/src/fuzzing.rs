//! Fuzzing harnesses, shared by the cargo-fuzz targets in `fuzz/` and by
//! `tests/fuzz_regressions.rs`, which replays every input the fuzzers kept.
//! Each harness panics only when an invariant breaks; any input at all may
//! be fed to it.

use crate::image::{self, Image, ImageError};
use crate::{
    Descriptor, DescriptorFlags as DF, DescriptorType, Fs, FsConfig, ManualClock, NewTimestamp,
    OpenFlags as OF, PathFlags as PF, Timestamp,
};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use arbitrary::Unstructured;

fn small_fs() -> (Fs, Descriptor) {
    let config = FsConfig {
        max_bytes: 16 << 20,
        max_inodes: 4096,
        max_open_handles: 256,
        ..FsConfig::default()
    };
    let fs = Fs::new(
        config,
        Arc::new(ManualClock::new(Timestamp {
            seconds: 1_000,
            nanoseconds: 0,
        })),
    )
    .expect("valid config");
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).expect("root");
    (fs, root)
}

/// Replaces the header and metadata checksums of `data` with correct ones,
/// so mutated images reach the structural checks.
fn reseal(data: &[u8]) -> Option<Vec<u8>> {
    if data.len() < 32 {
        return None;
    }
    let mut v = data.to_vec();
    let meta_len = u64::from_le_bytes(v[16..24].try_into().ok()?);
    let meta_end = 32usize.checked_add(usize::try_from(meta_len).ok()?)?;
    let meta_crc = crc32fast::hash(v.get(32..meta_end)?);
    v[24..28].copy_from_slice(&meta_crc.to_le_bytes());
    let h = crc32fast::hash(&v[..28]);
    v[28..32].copy_from_slice(&h.to_le_bytes());
    Some(v)
}

/// Decoder harness: whatever parses must load (or be refused by a quota,
/// leaving nothing behind) and must survive an encode/decode round trip.
pub fn image(data: &[u8]) {
    check_image(data);
    if let Some(sealed) = reseal(data) {
        check_image(&sealed);
    }
}

fn check_image(data: &[u8]) {
    check_lazy(data);
    let Ok(img) = Image::parse(data) else { return };
    let (fs, root) = small_fs();
    let before = fs.usage();
    match img.load_into(&root, false) {
        Ok(()) => {
            let again = image::encode(&root).expect("encode what was loaded");
            let (_fs2, root2) = small_fs();
            image::decode_into(&root2, &again, false).expect("re-decode own encoding");
            assert_eq!(
                image::encode(&root2).expect("encode"),
                again,
                "round trip changed the image"
            );
        }
        Err(ImageError::Fs(_)) => {
            assert_eq!(fs.usage(), before, "a refused image left something behind");
            assert_eq!(root.read_directory().expect("root").count(), 0);
        }
        Err(e) => panic!("parse accepted an image that load rejected: {e}"),
    }
}

/// Lazy loading accepts any input that parses (and more: file checksums
/// wait for first use); using every file then succeeds or fails with `io`
/// exactly when the eager parse would have refused the image.
fn check_lazy(data: &[u8]) {
    let (_fs, root) = small_fs();
    let source: Arc<dyn image::ImageSource> = Arc::new(data.to_vec());
    let eager = Image::parse(data).is_ok();
    match image::load_lazy(&root, source, false) {
        Ok(()) => match image::encode(&root) {
            Ok(_) => assert!(eager, "lazy load used a file the eager parse refused"),
            // A small quota may refuse a file's bytes when they arrive.
            Err(crate::ErrorCode::InsufficientSpace) => {}
            Err(e) => assert!(
                !eager && e == crate::ErrorCode::Io,
                "lazy load failed on use: {e}"
            ),
        },
        Err(ImageError::Fs(_)) => {}
        Err(e) => assert!(!eager, "lazy load refused an image that parses: {e}"),
    }
}

fn path(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    const PARTS: &[&str] = &["a", "b", "c", ".", "..", "", "ü"];
    let mut p = String::new();
    if u.ratio(1, 16)? {
        p.push('/');
    }
    let n = u.int_in_range(1..=4)?;
    for i in 0..n {
        if i > 0 {
            p.push('/');
        }
        if u.ratio(1, 64)? {
            p.extend(core::iter::repeat_n('x', 256));
        } else {
            p.push_str(u.choose(PARTS)?);
        }
    }
    if u.ratio(1, 8)? {
        p.push('/');
    }
    Ok(p)
}

fn timestamp(u: &mut Unstructured<'_>) -> arbitrary::Result<NewTimestamp> {
    Ok(match u.int_in_range(0..=2)? {
        0 => NewTimestamp::NoChange,
        1 => NewTimestamp::Now,
        _ => NewTimestamp::Timestamp(Timestamp {
            seconds: u.arbitrary()?,
            nanoseconds: u.arbitrary()?,
        }),
    })
}

/// Operation-sequence harness: arbitrary calls through the public API must
/// never panic, and afterwards the accounting must match the tree.
pub fn ops(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let (fs, root) = small_fs();
    let clock_fs = fs.clone();
    let mut fds: Vec<Descriptor> = Vec::new();
    let _ = run_ops(&mut u, &clock_fs, &root, &mut fds);
    drop(fds);
    let (inodes, bytes) = census(&root);
    let usage = fs.usage();
    assert_eq!(usage.open_handles, 1, "descriptors leaked");
    assert_eq!(usage.inodes, inodes, "inode accounting drifted");
    assert_eq!(usage.bytes, bytes, "byte accounting drifted");
}

fn run_ops(
    u: &mut Unstructured<'_>,
    fs: &Fs,
    root: &Descriptor,
    fds: &mut Vec<Descriptor>,
) -> arbitrary::Result<()> {
    while !u.is_empty() {
        let base = if !fds.is_empty() && u.ratio(1, 3)? {
            &fds[u.choose_index(fds.len())?]
        } else {
            root
        };
        let pf = if u.arbitrary()? {
            PF::SYMLINK_FOLLOW
        } else {
            PF::empty()
        };
        match u.int_in_range(0..=18)? {
            0 => {
                let of = OF::from_bits_truncate(u.arbitrary()?);
                let df = DF::from_bits_truncate(u.arbitrary()?);
                if let Ok(fd) = base.open_at(pf, &path(u)?, of, df) {
                    fds.push(fd);
                }
            }
            1 => {
                let _ = base.create_directory_at(&path(u)?);
            }
            2 => {
                let _ = base.unlink_file_at(&path(u)?);
            }
            3 => {
                let _ = base.remove_directory_at(&path(u)?);
            }
            4 => {
                let other = if fds.is_empty() {
                    root
                } else {
                    &fds[u.choose_index(fds.len())?]
                };
                let _ = base.rename_at(&path(u)?, other, &path(u)?);
            }
            5 => {
                let _ = base.link_at(pf, &path(u)?, root, &path(u)?);
            }
            6 => {
                let _ = base.symlink_at(&path(u)?, &path(u)?);
            }
            7 => {
                let _ = base.readlink_at(&path(u)?);
            }
            8 => {
                let _ = base.stat_at(pf, &path(u)?);
            }
            9 => {
                let _ = base.set_times_at(pf, &path(u)?, timestamp(u)?, timestamp(u)?);
            }
            10 => {
                let len = u.int_in_range(0..=70_000)?;
                let off = if u.arbitrary()? {
                    u.int_in_range(0..=300_000)?
                } else {
                    u.arbitrary()?
                };
                let _ = base.write(&alloc::vec![0xa5; len], off);
            }
            11 => {
                let mut buf = alloc::vec![0; u.int_in_range(0..=70_000)?];
                let _ = base.read(&mut buf, u.arbitrary()?);
            }
            12 => {
                let size = if u.arbitrary()? {
                    u.int_in_range(0..=300_000)?
                } else {
                    u.arbitrary()?
                };
                let _ = base.set_size(size);
            }
            13 => {
                let _ = base.append(&alloc::vec![1; u.int_in_range(0..=5_000)?]);
            }
            14 => {
                if let Ok(mut s) = base.read_directory() {
                    for _ in 0..u.int_in_range(0..=8)? {
                        let _ = s.next_entry();
                    }
                }
            }
            15 => {
                if !fds.is_empty() {
                    let i = u.choose_index(fds.len())?;
                    fds.swap_remove(i);
                }
            }
            16 => {
                let _ = base.set_times(timestamp(u)?, timestamp(u)?);
            }
            17 => {
                if u.ratio(1, 8)? {
                    base.set_read_only_recursive();
                }
            }
            _ => {
                if let Ok(p) = fs.preopen(&path(u)?, DF::READ | DF::MUTATE_DIRECTORY) {
                    fds.push(p);
                }
            }
        }
    }
    Ok(())
}

/// Inodes reachable from the root (the root included) and their bytes.
fn census(root: &Descriptor) -> (u64, u64) {
    let mut seen: alloc::collections::BTreeMap<u64, u64> = alloc::collections::BTreeMap::new();
    seen.insert(root.ino(), 0);
    let mut pending = alloc::vec![String::from(".")];
    while let Some(dir) = pending.pop() {
        let d = root
            .open_at(PF::empty(), &dir, OF::DIRECTORY, DF::READ)
            .expect("walk");
        for e in d.read_directory().expect("dir") {
            let e = e.expect("entry");
            let p = alloc::format!("{dir}/{}", e.name);
            let st = root.stat_at(PF::empty(), &p).expect("stat");
            if seen.insert(st.ino, st.allocated).is_none() && e.kind == DescriptorType::Directory {
                pending.push(p);
            }
        }
    }
    (seen.len() as u64, seen.values().sum())
}
