//! Large files with a few changed ranges are rewritten in place in a local
//! store: what they read back as agrees with a model after every write;
//! the bytes written are about the bytes changed; reads pinned to an older
//! version get its bytes or a conflict, never another version's; and a
//! process killed after any step of a patch leaves the file all old or all
//! new once the store is opened again.

use larder_sync::meta::{self, S_IFREG};
use larder_sync::store::{Piece, Source};
use larder_sync::{Cond, ErrorKind, LocalDir, ObjectStore};
use proptest::prelude::*;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

struct Bytes(Vec<u8>);

impl Source for Bytes {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> larder_sync::store::Result<()> {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.0.get(offset as usize + i).copied().unwrap_or(0);
        }
        Ok(())
    }
    fn data_in(&self, range: Range<u64>) -> larder_sync::store::Result<Vec<Range<u64>>> {
        Ok(vec![range])
    }
}

fn file_meta(mtime: u64) -> larder_sync::Metadata {
    meta::encode(S_IFREG | 0o644, 0, 0, mtime, 5)
}

/// `new` as pieces of `old`: the ranges that differ (whole pages) new,
/// the rest kept, as the mirror sends a file whose changed ranges it knows.
fn pieces(old: &[u8], new: &[u8]) -> Vec<Piece> {
    const PAGE: usize = 4096;
    let mut out: Vec<Piece> = Vec::new();
    let mut at = 0;
    while at < new.len() {
        let end = (at + PAGE).min(new.len());
        let same = end <= old.len() && old[at..end] == new[at..end];
        let r = at as u64..end as u64;
        match (out.last_mut(), same) {
            (Some(Piece::Keep(last)), true) | (Some(Piece::New(last)), false) => last.end = r.end,
            (_, true) => out.push(Piece::Keep(r)),
            (_, false) => out.push(Piece::New(r)),
        }
        at = end;
    }
    out
}

fn put(store: &LocalDir, key: &str, old: &[u8], new: &[u8], cond: &Cond, mtime: u64) -> String {
    let source: Arc<dyn Source> = Arc::new(Bytes(new.to_vec()));
    store
        .put_from(key, &pieces(old, new), &source, &file_meta(mtime), cond)
        .unwrap()
}

fn journals(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".larder-tmp-"))
        .collect()
}

#[derive(Clone, Debug)]
enum Edit {
    Overwrite(usize, Vec<u8>),
    Zero(usize, usize),
    Append(Vec<u8>),
    Truncate(usize),
    /// Replaced whole by another writer's put (a new file).
    Replace,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        5 => (0..300_000usize, prop::collection::vec(any::<u8>(), 1..9000)).prop_map(|(o, d)| Edit::Overwrite(o, d)),
        1 => (0..300_000usize, 1..20_000usize).prop_map(|(o, n)| Edit::Zero(o, n)),
        2 => prop::collection::vec(any::<u8>(), 1..40_000).prop_map(Edit::Append),
        1 => (0..300_000usize).prop_map(Edit::Truncate),
        1 => Just(Edit::Replace),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn patched_files_read_back_as_the_model(
        start in prop::collection::vec(any::<u8>(), 70_000..300_000),
        edits in prop::collection::vec(edit(), 1..12),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDir::open(dir.path()).unwrap();
        let mut model = start;
        let mut etag = put(&store, "db", &[], &model, &Cond::IfNoneMatch, 1);
        for (n, e) in edits.into_iter().enumerate() {
            let old = model.clone();
            let old_etag = etag.clone();
            let mut cond = Cond::IfMatch(etag.clone());
            match e {
                Edit::Overwrite(o, d) => {
                    let o = o.min(model.len());
                    if model.len() < o + d.len() { model.resize(o + d.len(), 0); }
                    model[o..o + d.len()].copy_from_slice(&d);
                }
                Edit::Zero(o, n) => {
                    let o = o.min(model.len());
                    let end = (o + n).min(model.len());
                    model[o..end].fill(0);
                }
                Edit::Append(d) => model.extend_from_slice(&d),
                Edit::Truncate(n) => model.truncate(n),
                Edit::Replace => {
                    etag = store.put("db", &model, &file_meta(2), &Cond::None).unwrap();
                    continue;
                }
            }
            let before = store.bytes_written();
            let ps = pieces(&old, &model);
            let new_bytes: u64 = ps.iter().map(|p| match p { Piece::New(r) => r.end - r.start, _ => 0 }).sum();
            let ino = || std::fs::metadata(dir.path().join("db")).unwrap().ino();
            let ino_before = ino();
            etag = put(&store, "db", &old, &model, &cond, 10 + n as u64);
            let in_place = ino() == ino_before;
            let written = store.bytes_written() - before;
            prop_assert_ne!(&etag, &old_etag, "a patch is a new version");
            prop_assert_eq!(store.get("db", None, &Cond::None).unwrap(), model.clone());
            prop_assert_eq!(std::fs::read(dir.path().join("db")).unwrap(), model.clone());
            prop_assert_eq!(journals(dir.path()), Vec::<String>::new());
            // Never more than a whole new file, plus the replaced bytes once
            // more (journal) and the journal's own records.
            prop_assert!(written <= (model.len() as u64).max(2 * new_bytes + 4096) + 64 * 1024,
                "{written} bytes written for {new_bytes} new bytes of {}", model.len());
            if 2 * new_bytes < model.len() as u64 / 4 && model.len() >= 64 << 10 {
                prop_assert!(written < model.len() as u64 / 2,
                    "{written} bytes written for {new_bytes} new bytes of {}: not patched", model.len());
            }
            // A read pinned to the version before: its bytes where a patch
            // kept them (a lazily restored file's unfetched bytes), a
            // conflict where it replaced or cut them, or after a replacement.
            for p in &ps {
                let Piece::Keep(r) = p else { continue };
                let r = r.start..r.end.min(r.start + 5000);
                let got = store.get("db", Some(r.clone()), &Cond::IfMatch(old_etag.clone()));
                if in_place {
                    prop_assert_eq!(&got.unwrap()[..], &old[r.start as usize..r.end as usize]);
                } else {
                    prop_assert_eq!(got.map_err(|e| e.kind), Err(ErrorKind::Conflict));
                }
            }
            for p in &ps {
                let Piece::New(r) = p else { continue };
                if r.start < old.len() as u64 {
                    let r = r.start..r.end.min(old.len() as u64);
                    let got = store.get("db", Some(r), &Cond::IfMatch(old_etag.clone()));
                    prop_assert_eq!(got.map_err(|e| e.kind), Err(ErrorKind::Conflict));
                }
            }
            // Written against a version that is gone: refused.
            cond = Cond::IfMatch(old_etag);
            let source: Arc<dyn Source> = Arc::new(Bytes(model.clone()));
            let stale = store.put_from("db", &pieces(&model, &model), &source, &file_meta(3), &cond);
            prop_assert_eq!(stale.map_err(|e| e.kind), Err(ErrorKind::Conflict));
        }
    }
}

/// A file of 1 MiB; then a patch of one page and a 100 KiB append: what it
/// costs the store is the page twice (journal, place) and the append once.
#[test]
fn a_patch_writes_about_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalDir::open(dir.path()).unwrap();
    let old: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let e = put(&store, "db", &[], &old, &Cond::IfNoneMatch, 1);
    assert_eq!(store.bytes_written(), 1 << 20);
    let mut new = old.clone();
    new[5000] ^= 1;
    new.extend((0..100 << 10).map(|i| (i % 7) as u8 + 1));
    let ino = std::fs::metadata(dir.path().join("db")).unwrap().ino();
    put(&store, "db", &old, &new, &Cond::IfMatch(e), 2);
    let written = store.bytes_written() - (1 << 20);
    let data = 2 * 4096 + (100 << 10);
    // Plus the journal's header and record headers.
    assert!(
        (data..data + 512).contains(&written),
        "{written} bytes written by the patch"
    );
    let m = std::fs::metadata(dir.path().join("db")).unwrap();
    assert_eq!(m.ino(), ino, "patched in place, not replaced");
    assert_eq!(m.mtime(), 2);
    assert_eq!(std::fs::read(dir.path().join("db")).unwrap(), new);
}

/// Step `n` of a patch of `db` from `old` to `new`, in a child process
/// that aborts right after it (this same test, run again with the step in
/// the environment).
const CHILD: &str = "LARDER_PATCH_CRASH_STEP";

fn sample(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(seed).wrapping_add(seed))
        .collect()
}

fn versions() -> (Vec<u8>, Vec<u8>) {
    let old = sample(3 << 20, 3);
    let mut new = old.clone();
    new[100_000..108_000].copy_from_slice(&sample(8000, 7));
    new[(2 << 20)..(2 << 20) + 3].copy_from_slice(b"new");
    new.extend(sample(300_000, 11));
    (old, new)
}

#[test]
fn a_patch_killed_after_any_step_leaves_the_file_old_or_new() {
    let (old, new) = versions();
    if let Ok(step) = std::env::var(CHILD) {
        // The child: patch, and die after `step`.
        let dir = std::env::var("LARDER_PATCH_CRASH_DIR").unwrap();
        let store = LocalDir::open(&dir).unwrap();
        let etag = store.head("db").unwrap().unwrap().etag;
        store.crash_after_step(step.parse().unwrap());
        put(&store, "db", &old, &new, &Cond::IfMatch(etag), 2);
        unreachable!("the patch went past its crash point");
    }
    for (step, damage, want_new) in [
        (1, false, false),
        (2, false, false),
        (3, false, true),
        (4, false, true),
        // A journal whose commit did not reach the disk whole.
        (3, true, false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = LocalDir::open(dir.path()).unwrap();
            put(&store, "db", &[], &old, &Cond::IfNoneMatch, 1);
        }
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_patch_killed_after_any_step_leaves_the_file_old_or_new",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(CHILD, step.to_string())
            .env("LARDER_PATCH_CRASH_DIR", dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "step {step}: the child did not die");
        let left = journals(dir.path());
        assert_eq!(left.len(), 1, "step {step}: one journal left, {left:?}");
        if damage {
            let j = dir.path().join(&left[0]);
            let len = std::fs::metadata(&j).unwrap().len();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&j)
                .unwrap()
                .set_len(len - 1)
                .unwrap();
        }
        // Opening the store again finishes or undoes the patch.
        let store = LocalDir::open(dir.path()).unwrap();
        let got = std::fs::read(dir.path().join("db")).unwrap();
        let want = if want_new { &new } else { &old };
        assert!(
            got == *want,
            "step {step} (damaged: {damage}): neither the version expected nor whole ({} bytes)",
            got.len()
        );
        assert_eq!(
            journals(dir.path()),
            Vec::<String>::new(),
            "step {step}: journal left"
        );
        let m = std::fs::metadata(dir.path().join("db")).unwrap();
        assert_eq!(
            m.mtime(),
            if want_new { 2 } else { 1 },
            "step {step}: mtime"
        );
        assert_eq!(store.get("db", None, &Cond::None).unwrap(), *want);
    }
}
