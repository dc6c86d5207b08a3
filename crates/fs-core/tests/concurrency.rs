//! Stress test of the thread-safe mode: many threads on one filesystem,
//! with invariants checked during and after.

use fs_core::{
    Descriptor, DescriptorFlags as DF, DescriptorType, ErrorCode as E, Fs, OpenFlags as OF,
    PathFlags as PF,
};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

const THREADS: usize = 8;
const ITERS: usize = 3000;
const RECORD: usize = 64;
const RW: DF = DF::READ.union(DF::WRITE);

fn record(t: usize, i: usize) -> Vec<u8> {
    let mut r = format!("{t:02}:{i:06}:").into_bytes();
    r.resize(RECORD - 1, b'a' + t as u8);
    r.push(b'\n');
    r
}

fn open(root: &Descriptor, p: &str) -> Descriptor {
    root.open_at(PF::SYMLINK_FOLLOW, p, OF::CREATE, RW).unwrap()
}

#[test]
fn many_threads_one_filesystem() {
    let fs = Fs::in_memory();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    for d in ["shared", "shared/dir", "x", "y"] {
        root.create_directory_at(d).unwrap();
    }
    drop(open(&root, "shared/log"));
    let blocks = open(&root, "shared/blocks");
    blocks.set_size(64 * 4096).unwrap();
    for t in 0..THREADS {
        root.create_directory_at(&format!("x/d{t}")).unwrap();
        drop(open(&root, &format!("x/d{t}/payload")));
    }
    let stop = AtomicBool::new(false);
    // A deadlock must fail the test, not hang CI.
    std::thread::spawn(|| {
        std::thread::sleep(std::time::Duration::from_secs(120));
        eprintln!("many_threads_one_filesystem: no progress in 120 s, deadlock");
        std::process::exit(101);
    });

    std::thread::scope(|s| {
        let mut writers = Vec::new();
        for t in 0..THREADS {
            let fs = fs.clone();
            writers.push(s.spawn(move || {
                let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
                let log = root
                    .open_at(PF::empty(), "shared/log", OF::empty(), DF::WRITE)
                    .unwrap();
                let blocks = root
                    .open_at(PF::empty(), "shared/blocks", OF::empty(), RW)
                    .unwrap();
                let mut at_x = true;
                for i in 0..ITERS {
                    // Appends from every thread to one file.
                    assert_eq!(log.append(&record(t, i)).unwrap().1, RECORD);
                    // Whole-block overwrites that must never be seen torn.
                    let k = (t * 7 + i) % 64;
                    blocks
                        .write(&[(t * ITERS + i) as u8; 4096], (k * 4096) as u64)
                        .unwrap();
                    // Files created (and some removed) in one directory.
                    drop(open(&root, &format!("shared/dir/t{t}-{i}")));
                    if i % 4 == 3 {
                        root.unlink_file_at(&format!("shared/dir/t{t}-{}", i - 1))
                            .unwrap();
                    }
                    // Directories moved between x and y in both directions at
                    // once. A neighbour may be holding ours nested in its own.
                    let (from, to) = if at_x { ("x", "y") } else { ("y", "x") };
                    match root.rename_at(&format!("{from}/d{t}"), &root, &format!("{to}/d{t}")) {
                        Ok(()) => at_x = !at_x,
                        Err(E::NoEntry) => {
                            at_x = root.stat_at(PF::empty(), &format!("x/d{t}")).is_ok()
                        }
                        Err(e) => panic!("moving d{t}: {e:?}"),
                    }
                    // Try to move a neighbour's directory into ours while it
                    // may be doing the reverse: must never build a cycle.
                    let n = (t + 1) % THREADS;
                    for (a, b) in [("x", "y"), ("y", "x"), ("x", "x"), ("y", "y")] {
                        match root.rename_at(
                            &format!("{a}/d{n}"),
                            &root,
                            &format!("{b}/d{t}/nested{n}"),
                        ) {
                            Ok(()) => {
                                // Put it back. Our own directory may meanwhile
                                // be nested in another's; retry until that
                                // thread has put it back too.
                                let mut tries = 0u64;
                                'back: loop {
                                    for c in ["x", "y"] {
                                        match root.rename_at(
                                            &format!("{c}/d{t}/nested{n}"),
                                            &root,
                                            &format!("{a}/d{n}"),
                                        ) {
                                            Ok(()) => break 'back,
                                            Err(E::NoEntry) => {}
                                            Err(e) => panic!("putting d{n} back: {e:?}"),
                                        }
                                    }
                                    tries += 1;
                                    assert!(tries < 10_000_000, "d{n} stuck");
                                    std::thread::yield_now();
                                }
                            }
                            Err(e) => assert!(
                                matches!(e, E::NoEntry | E::Invalid | E::NotEmpty),
                                "unexpected {e:?}"
                            ),
                        }
                    }
                }
            }));
        }
        // Readers checking the no-torn-block invariant while writers run.
        let stop = &stop;
        let fs2 = fs.clone();
        let reader = s.spawn(move || {
            let root = fs2.root(DF::READ).unwrap();
            let blocks = root
                .open_at(PF::empty(), "shared/blocks", OF::empty(), DF::READ)
                .unwrap();
            let mut buf = vec![0u8; 4096];
            let mut checks = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for k in 0..64 {
                    blocks.read(&mut buf, k * 4096).unwrap();
                    assert!(buf.iter().all(|&b| b == buf[0]), "torn block {k}");
                    checks += 1;
                }
                let _ = root.read_directory().unwrap().count();
                let _ = root.stat_at(PF::empty(), "shared/dir");
            }
            checks
        });
        let results: Vec<_> = writers.into_iter().map(|w| w.join()).collect();
        stop.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
        for r in results {
            if let Err(panic) = r {
                std::panic::resume_unwind(panic);
            }
        }
    });

    // Every record exactly once, untorn, in each thread's order.
    let log = root
        .open_at(PF::empty(), "shared/log", OF::empty(), DF::READ)
        .unwrap();
    let mut data = vec![0u8; log.stat().size as usize];
    assert_eq!(log.read(&mut data, 0).unwrap(), THREADS * ITERS * RECORD);
    let mut next = [0usize; THREADS];
    for rec in data.chunks(RECORD) {
        let t: usize = std::str::from_utf8(&rec[..2]).unwrap().parse().unwrap();
        let i: usize = std::str::from_utf8(&rec[3..9]).unwrap().parse().unwrap();
        assert_eq!(rec, record(t, i).as_slice(), "torn record");
        assert_eq!(i, next[t], "thread {t} out of order");
        next[t] += 1;
    }
    // The shared directory holds exactly what was created and not removed.
    let names: HashSet<String> = root
        .open_at(PF::empty(), "shared/dir", OF::DIRECTORY, DF::READ)
        .unwrap()
        .read_directory()
        .unwrap()
        .map(|e| e.unwrap().name)
        .collect();
    assert_eq!(names.len(), THREADS * (ITERS - ITERS / 4));
    // Each thread's directory is in x or y, exactly once, with its payload.
    for t in 0..THREADS {
        let in_x = root.stat_at(PF::empty(), &format!("x/d{t}")).is_ok();
        let in_y = root.stat_at(PF::empty(), &format!("y/d{t}")).is_ok();
        assert!(in_x ^ in_y, "d{t} lost or duplicated");
        let dir = if in_x { "x" } else { "y" };
        assert!(root
            .stat_at(PF::empty(), &format!("{dir}/d{t}/payload"))
            .is_ok());
    }
    // The tree is a tree (no cycle, everything reachable once), and the
    // inode and byte accounting matches what is reachable.
    drop(blocks);
    let (inodes, bytes) = census(&root);
    assert_eq!(fs.usage().inodes, inodes);
    assert_eq!(fs.usage().bytes, bytes);
}

/// Walks the tree from the root: returns the inode count (root included)
/// and bytes allocated, panicking on a directory seen twice (a cycle).
fn census(root: &Descriptor) -> (u64, u64) {
    let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
    let mut dirs = HashSet::new();
    let mut pending = vec![String::from(".")];
    seen.insert(root.ino(), 0);
    while let Some(dir) = pending.pop() {
        let d = root
            .open_at(PF::empty(), &dir, OF::DIRECTORY, DF::READ)
            .unwrap();
        assert!(dirs.insert(d.ino()), "directory {dir} reached twice: cycle");
        for e in d.read_directory().unwrap() {
            let e = e.unwrap();
            let p = format!("{dir}/{}", e.name);
            let st = root.stat_at(PF::empty(), &p).unwrap();
            seen.insert(st.ino, st.allocated);
            if e.kind == DescriptorType::Directory {
                pending.push(p);
            }
        }
    }
    (seen.len() as u64, seen.values().sum())
}
