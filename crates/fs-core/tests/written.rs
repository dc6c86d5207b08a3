//! A file's changed ranges: applying the ranges a take returns to a copy
//! of the file as of the take before always gives the file as it is now
//! (the property a mirror that rewrites only those ranges relies on).

use fs_core::{Descriptor, DescriptorFlags as DF, Fs, OpenFlags as OF, PathFlags as PF};
use proptest::prelude::*;
use std::sync::Arc;

#[derive(Clone, Debug)]
enum Op {
    Write(u64, Vec<u8>),
    Append(Vec<u8>),
    Truncate(u64),
    Read(u64),
    /// A take: the copy is brought up to date from its ranges alone.
    Take,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..20_000u64, prop::collection::vec(any::<u8>(), 1..300)).prop_map(|(o, d)| Op::Write(o, d)),
        1 => prop::collection::vec(any::<u8>(), 1..300).prop_map(Op::Append),
        1 => (0..25_000u64).prop_map(Op::Truncate),
        1 => (0..25_000u64).prop_map(Op::Read),
        2 => Just(Op::Take),
    ]
}

fn contents(f: &Descriptor) -> Vec<u8> {
    let mut out = vec![0; f.stat().size as usize];
    let mut at = 0;
    while at < out.len() {
        let n = f.read(&mut out[at..], at as u64).unwrap();
        assert!(n > 0);
        at += n;
    }
    out
}

/// The copy brought up to date as a store that keeps everything outside
/// the ranges would: the new length, the ranges' bytes from the file.
fn apply(copy: &[u8], ranges: &[(u64, u64)], now: &[u8]) -> Vec<u8> {
    let mut out = now.to_vec();
    let mut at = 0u64;
    for &(a, b) in ranges.iter().chain([(u64::MAX, u64::MAX)].iter()) {
        // Bytes before this range are kept from the copy.
        let keep_end = a.min(now.len() as u64);
        if at < keep_end {
            assert!(
                keep_end as usize <= copy.len(),
                "kept bytes {at}..{keep_end} past the copy's end: a change was not noted"
            );
            out[at as usize..keep_end as usize]
                .copy_from_slice(&copy[at as usize..keep_end as usize]);
        }
        at = at.max(b);
    }
    out
}

proptest! {
    #[test]
    fn ranges_since_the_last_take_rebuild_the_file(
        source in prop::collection::vec(any::<u8>(), 0..30_000),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let fs = Fs::in_memory();
        let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
        let f = root.open_at(PF::empty(), "f", OF::CREATE, DF::READ | DF::WRITE).unwrap();
        // A lazily restored file: fetching its bytes is not a change.
        let size = source.len() as u64;
        f.set_source(Arc::new(source), size).unwrap();
        let first = f.take_written().unwrap();
        prop_assert!(first.since.is_none(), "never taken: unknown");
        let mut stamp = first.stamp;
        let mut copy = contents(&f);
        for op in ops {
            match op {
                Op::Write(o, d) => { f.write(&d, o).unwrap(); }
                Op::Append(d) => { f.append(&d).unwrap(); }
                Op::Truncate(n) => f.set_size(n).unwrap(),
                Op::Read(o) => { let _ = f.read(&mut [0; 100], o).unwrap(); }
                Op::Take => {
                    let w = f.take_written().unwrap();
                    prop_assert_eq!(w.size, f.stat().size);
                    let (since, ranges) = w.since.expect("taken before");
                    prop_assert_eq!(since, stamp);
                    prop_assert!(w.stamp != stamp);
                    prop_assert!(ranges.windows(2).all(|p| p[0].1 < p[1].0), "sorted, disjoint");
                    let now = contents(&f);
                    prop_assert_eq!(apply(&copy, &ranges, &now), now.clone());
                    copy = now;
                    stamp = w.stamp;
                }
            }
        }
    }
}

#[test]
fn a_read_of_a_lazy_file_changes_nothing_and_other_takers_break_the_chain() {
    let fs = Fs::in_memory();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let f = root
        .open_at(PF::empty(), "f", OF::CREATE, DF::READ | DF::WRITE)
        .unwrap();
    f.set_source(Arc::new(vec![7u8; 3 << 20]), 3 << 20).unwrap();
    let a = f.take_written().unwrap();
    assert_eq!(f.read(&mut [0; 10], 2 << 20).unwrap(), 10);
    f.write(b"xy", 100).unwrap();
    let b = f.take_written().unwrap();
    assert_eq!(b.since, Some((a.stamp, vec![(100, 102)])));

    // The same inode through another path (a hard link) takes too: the
    // first taker's next ranges are relative to a stamp it never saw.
    root.link_at(PF::empty(), "f", &root, "g").unwrap();
    let g = root
        .open_at(PF::empty(), "g", OF::empty(), DF::READ | DF::WRITE)
        .unwrap();
    f.write(b"z", 5).unwrap();
    let by_g = g.take_written().unwrap();
    assert_eq!(by_g.since, Some((b.stamp, vec![(5, 6)])));
    let by_f = f.take_written().unwrap();
    assert_eq!(by_f.since, Some((by_g.stamp, vec![])));
    assert_ne!(
        by_f.since.unwrap().0,
        b.stamp,
        "not the stamp f's copy holds"
    );

    // Contents replaced whole (given a source): unknown again.
    let h = root
        .open_at(PF::empty(), "h", OF::CREATE, DF::READ | DF::WRITE)
        .unwrap();
    assert_eq!(h.take_written().unwrap().since, None, "never taken");
    assert_eq!(h.take_written().unwrap().since.map(|s| s.1), Some(vec![]));
    h.set_source(Arc::new(vec![1u8; 10]), 10).unwrap();
    let after = h.take_written().unwrap();
    assert_eq!((after.since, after.size), (None, 10));
    let dir = root
        .open_at(PF::empty(), ".", OF::DIRECTORY, DF::READ)
        .unwrap();
    assert!(dir.take_written().is_err(), "a directory has no bytes");
}
