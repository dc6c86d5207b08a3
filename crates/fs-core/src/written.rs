//! Which bytes of a file changed: the ranges written or resized since a
//! mirror last took them, so it sends (and a store rewrites) only those.
//!
//! Each take stamps the file with a number no other take in this process
//! gets, and returns the ranges changed since the previous take with that
//! take's stamp. A mirror applies them to its stored copy only if that copy
//! was written from the take with that very stamp. So anything else that
//! took in between (another mirror, or the same mirror for a hard link's
//! other path), a file whose contents were replaced whole, or a failed
//! upload (its stamp never recorded) makes the ranges not apply, and the
//! mirror sends the whole file: never a wrong file, at worst a larger
//! write.
//!
//! Bytes fetched from a lazy file's source are not changes (see
//! `FileData::load_range`), and ranges coarsen rather than grow without
//! bound: past `MAX_RANGES` they are rounded out to whole pages, then to
//! ever larger pieces, which only ever adds bytes to resend.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

/// More ranges than this and they are rounded out to coarser pieces.
const MAX_RANGES: usize = 1024;

/// The first rounding past `MAX_RANGES` (a page: what databases write).
const FIRST_GRAIN: u64 = 4096;

static STAMPS: AtomicU64 = AtomicU64::new(1);

/// What [`crate::Descriptor::take_written`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The stamp this take gave the file.
    pub stamp: u64,
    /// The file's size at the take: what the ranges describe. (Read apart,
    /// a write landing between would be in neither this take's size nor
    /// the next take's ranges.)
    pub size: u64,
    /// The previous take's stamp and the byte ranges `(start, end)`
    /// written, truncated or extended since (sorted, disjoint, perhaps
    /// reaching past the end of the file); `None` when unknown (never taken
    /// before, or the contents were replaced whole since).
    pub since: Option<(u64, Vec<(u64, u64)>)>,
}

/// A file's changed ranges since its last take.
pub(crate) struct Marks {
    stamp: u64,
    /// Every range is a multiple of this (1: exact).
    grain: u64,
    ranges: Vec<(u64, u64)>,
}

impl Marks {
    /// Notes `start..end` as changed. False when there was no memory for
    /// it: the caller then forgets the marks (unknown is always safe).
    #[must_use]
    pub fn add(&mut self, start: u64, end: u64) -> bool {
        if start >= end {
            return true;
        }
        let (s, e) = self.round(start, end);
        let i = self.ranges.partition_point(|r| r.1 < s);
        let j = self.ranges.partition_point(|r| r.0 <= e);
        if i == j {
            if self.ranges.try_reserve(1).is_err() {
                return false;
            }
            self.ranges.insert(i, (s, e));
        } else {
            let merged = (self.ranges[i].0.min(s), self.ranges[j - 1].1.max(e));
            self.ranges.drain(i + 1..j);
            self.ranges[i] = merged;
        }
        while self.ranges.len() > MAX_RANGES {
            self.coarsen();
        }
        true
    }

    fn round(&self, start: u64, end: u64) -> (u64, u64) {
        let g = self.grain;
        (
            start - start % g,
            end.div_ceil(g).saturating_mul(g).max(end),
        )
    }

    /// Rounds every range out to a coarser grain, merging those that meet.
    fn coarsen(&mut self) {
        self.grain = if self.grain < FIRST_GRAIN {
            FIRST_GRAIN
        } else {
            self.grain.saturating_mul(16)
        };
        let old = core::mem::take(&mut self.ranges);
        let mut out: Vec<(u64, u64)> = Vec::with_capacity(old.len());
        for (a, b) in old {
            let (a, b) = self.round(a, b);
            match out.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        self.ranges = out;
    }
}

/// Stamps `marks` afresh and returns what it held, for a file of `size`
/// bytes.
pub(crate) fn take(marks: &mut Option<alloc::boxed::Box<Marks>>, size: u64) -> Written {
    let stamp = STAMPS.fetch_add(1, Ordering::Relaxed);
    let fresh = Marks {
        stamp,
        grain: 1,
        ranges: Vec::new(),
    };
    let since = match marks.as_deref_mut() {
        Some(m) => {
            let ranges = core::mem::take(&mut m.ranges);
            let prev = m.stamp;
            *m = fresh;
            Some((prev, ranges))
        }
        None => {
            *marks = Some(alloc::boxed::Box::new(fresh));
            None
        }
    };
    Written { stamp, size, since }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks() -> Marks {
        Marks {
            stamp: 0,
            grain: 1,
            ranges: Vec::new(),
        }
    }

    #[test]
    fn ranges_merge_when_they_meet_or_overlap() {
        let mut m = marks();
        assert!(m.add(10, 20));
        assert!(m.add(30, 40));
        assert!(m.add(20, 25)); // meets the first
        assert_eq!(m.ranges, [(10, 25), (30, 40)]);
        assert!(m.add(5, 35)); // spans both
        assert_eq!(m.ranges, [(5, 40)]);
        assert!(m.add(0, 0));
        assert_eq!(m.ranges, [(5, 40)]);
    }

    #[test]
    fn too_many_ranges_round_out_to_pages_and_still_cover_every_byte() {
        let mut m = marks();
        let writes: Vec<(u64, u64)> = (0..3000u64)
            .map(|i| (i * 10_000 + 7, i * 10_000 + 9))
            .collect();
        for &(a, b) in &writes {
            assert!(m.add(a, b));
        }
        assert!(m.ranges.len() <= MAX_RANGES);
        assert!(m.grain >= FIRST_GRAIN);
        for (a, b) in writes {
            let i = m.ranges.partition_point(|r| r.1 <= a);
            assert!(m.ranges[i].0 <= a && b <= m.ranges[i].1, "{a}..{b} lost");
        }
        assert!(m.ranges.windows(2).all(|w| w[0].1 < w[1].0));
    }
}
