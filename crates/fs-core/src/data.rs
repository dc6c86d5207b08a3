//! File contents: a sparse map of fixed-size blocks.
//!
//! Each block stores one contiguous run of its bytes (`start..start+len`
//! within the block); everything else in the block, up to the file size,
//! reads as zeros. So holes cost nothing, a small file costs about its size,
//! a small write anywhere in an untouched block costs about its size, and
//! full blocks are allocated exactly once. Every byte of capacity is charged
//! to the filesystem's byte quota before it is allocated, and allocation
//! failure is an error, never an abort.
//!
//! A file loaded lazily starts out `pending`: its size is known but its
//! bytes still live in a source. A file from an image carries a checksum of
//! all its bytes, so it is fetched and checked whole the first time anything
//! touches it. A file without one (restored from an object store, whose
//! reads are checked by version instead) is fetched a chunk at a time as
//! reads reach it; bytes a write replaces are never fetched.
//!
//! Invariant: no block holds bytes at or beyond `size`.

use crate::error::{ErrorCode, Result};
use crate::fs::Shared;
use crate::image::ImageSource;
use crate::written::{Marks, Written};
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;

/// Where a lazily loaded file's bytes are: extents `(file offset, source
/// offset, length)` of `source`, sorted and disjoint. With `crc`, the bytes
/// together hash to it and load all at once; without, a range at a time,
/// and `extents` shrinks to what is still unfetched.
pub(crate) struct Pending {
    pub source: Arc<dyn ImageSource>,
    pub extents: Vec<(u64, u64, u64)>,
    pub crc: Option<u32>,
}

impl Pending {
    /// Reads the unfetched bytes in file order, FETCH_CHUNK at a time into
    /// `buf`, giving `chunk(file offset, bytes)` each piece.
    pub fn read_chunks<E: From<ErrorCode>>(
        &self,
        buf: &mut Vec<u8>,
        mut chunk: impl FnMut(u64, &[u8]) -> core::result::Result<(), E>,
    ) -> core::result::Result<(), E> {
        for &(off, src, len) in &self.extents {
            let mut done = 0;
            while done < len {
                let n = (len - done).min(FETCH_CHUNK) as usize;
                buf.clear();
                buf.try_reserve_exact(n)
                    .map_err(|_| ErrorCode::InsufficientMemory)?;
                buf.resize(n, 0);
                self.source.read_at(src + done, buf)?;
                chunk(off + done, buf)?;
                done += n as u64;
            }
        }
        Ok(())
    }

    /// Forgets the unfetched bytes at `from..to` (fetched or overwritten).
    fn cut(&mut self, from: u64, to: u64) {
        cut(&mut self.extents, from, to);
    }
}

/// Removes file offsets `from..to` from sorted, disjoint extents
/// `(file offset, source offset, length)`.
fn cut(extents: &mut Vec<(u64, u64, u64)>, from: u64, to: u64) {
    let mut kept = Vec::with_capacity(extents.len() + 1);
    for &(off, src, len) in extents.iter() {
        let end = off + len;
        if end <= from || off >= to {
            kept.push((off, src, len));
            continue;
        }
        if off < from {
            kept.push((off, src, from - off));
        }
        if end > to {
            kept.push((to, src + (to - off), end - to));
        }
    }
    *extents = kept;
}

/// How much of a pending file is fetched from the source at once.
const FETCH_CHUNK: u64 = 1 << 20;

#[derive(Default)]
struct Block {
    /// Offset within the block of `data[0]`.
    start: usize,
    data: Vec<u8>,
}

impl Block {
    fn end(&self) -> usize {
        self.start + self.data.len()
    }
}

#[derive(Default)]
pub(crate) struct FileData {
    size: u64,
    /// Bytes of capacity held by `blocks`, as charged to the quota.
    allocated: u64,
    blocks: BTreeMap<u64, Block>,
    pending: Option<Box<Pending>>,
    /// For a file given a ranged source: extents that still hold the
    /// source's bytes (fetched or not), i.e. that no write or truncate has
    /// touched since. What a mirror can keep without reading.
    clean: Vec<(u64, u64, u64)>,
    /// The ranges changed since a mirror last took them (see `written`);
    /// none until the first take.
    marks: Option<Box<Marks>>,
}

impl FileData {
    /// A file of `size` bytes whose contents stay in `pending` until used.
    pub fn lazy(size: u64, pending: Pending) -> FileData {
        FileData {
            size,
            pending: Some(Box::new(pending)),
            ..FileData::default()
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn allocated(&self) -> u64 {
        let unfetched: u64 = self
            .pending
            .iter()
            .flat_map(|p| &p.extents)
            .map(|e| e.2)
            .sum();
        self.allocated + unfetched
    }

    /// Byte ranges still holding the bytes of the ranged source the file
    /// was given (fetched or not).
    pub fn clean(&self) -> Vec<(u64, u64)> {
        self.clean
            .iter()
            .map(|&(off, _, len)| (off, off + len))
            .collect()
    }

    /// The ranges changed since the last take, stamping the file afresh
    /// (see `written`).
    pub fn take_written(&mut self) -> Written {
        crate::written::take(&mut self.marks, self.size)
    }

    /// Notes `start..end` as changed for the next take.
    fn mark(&mut self, start: u64, end: u64) {
        if let Some(m) = &mut self.marks {
            if !m.add(start, end) {
                self.marks = None;
            }
        }
    }

    /// Gives an empty file `size` bytes that live in a ranged source.
    pub fn from_source(source: Arc<dyn ImageSource>, size: u64) -> FileData {
        FileData {
            size,
            pending: Some(Box::new(Pending {
                source,
                extents: alloc::vec![(0, 0, size)],
                crc: None,
            })),
            clean: alloc::vec![(0, 0, size)],
            ..FileData::default()
        }
    }

    /// The ranges of `start..end` that may hold non-zero bytes, sorted and
    /// merged: blocks' stored runs and bytes still in a source. The rest
    /// are holes. Costs the blocks in the range, not the file's size.
    pub fn data_in(&self, shift: u32, start: u64, end: u64) -> Vec<(u64, u64)> {
        let end = end.min(self.size);
        if start >= end {
            return Vec::new();
        }
        let mut runs: Vec<(u64, u64)> = self
            .blocks
            .range(start >> shift..=(end - 1) >> shift)
            .map(|(&i, b)| ((i << shift) + b.start as u64, (i << shift) + b.end() as u64))
            .chain(self.unfetched())
            .map(|(a, b)| (a.max(start), b.min(end)))
            .filter(|(a, b)| a < b)
            .collect();
        runs.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(runs.len());
        for (a, b) in runs {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        merged
    }

    /// Byte ranges whose contents still live only in the source.
    pub fn unfetched(&self) -> Vec<(u64, u64)> {
        self.pending
            .iter()
            .flat_map(|p| &p.extents)
            .map(|&(off, _, len)| (off, off + len))
            .collect()
    }

    /// The source of a file whose bytes all still live in a checksummed
    /// source (a lazily loaded image, a host file imported by reference),
    /// for copying them on without holding them in memory.
    pub fn whole_source(&self) -> Option<&Pending> {
        self.pending
            .as_deref()
            .filter(|p| p.crc.is_some() && self.blocks.is_empty())
    }

    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Makes the bytes at `offset..offset+len` readable: fetches whatever
    /// of them (whole chunks around them; the whole file when it has a
    /// checksum) still lives in the source. Fetched chunks stay fetched
    /// even if a later one fails.
    pub fn load_range(&mut self, shared: &Shared, offset: u64, len: u64) -> Result<()> {
        match &self.pending {
            None => return Ok(()),
            Some(p) if p.crc.is_some() => return self.load(shared),
            Some(_) => {}
        }
        let from = offset - offset % FETCH_CHUNK;
        let to = offset
            .saturating_add(len)
            .min(self.size)
            .div_ceil(FETCH_CHUNK)
            .saturating_mul(FETCH_CHUNK);
        let mut p = self.pending.take().expect("checked above");
        // Fetched bytes are the source's: writing them keeps them clean,
        // and they are no change to send.
        let clean = core::mem::take(&mut self.clean);
        let marks = self.marks.take();
        let wanted: Vec<(u64, u64, u64)> = p
            .extents
            .iter()
            .filter(|&&(off, _, len)| off < to && off + len > from)
            .map(|&(off, src, len)| {
                let (a, b) = (off.max(from), (off + len).min(to));
                (a, src + (a - off), b - a)
            })
            .collect();
        let mut buf = Vec::new();
        let mut result = Ok(());
        'fetch: for (off, src, len) in wanted {
            let mut done = 0;
            while done < len {
                let n = (len - done).min(FETCH_CHUNK) as usize;
                let r = (|| {
                    buf.clear();
                    buf.try_reserve_exact(n)
                        .map_err(|_| ErrorCode::InsufficientMemory)?;
                    buf.resize(n, 0);
                    p.source.read_at(src + done, &mut buf)?;
                    match self.write(shared, off + done, &buf)? {
                        w if w < n => Err(ErrorCode::InsufficientSpace),
                        _ => Ok(()),
                    }
                })();
                if let Err(e) = r {
                    result = Err(e);
                    break 'fetch;
                }
                p.cut(off + done, off + done + n as u64);
                done += n as u64;
            }
        }
        self.clean = clean;
        self.marks = marks;
        if !p.extents.is_empty() {
            self.pending = Some(p);
        }
        result
    }

    /// Fetches a pending file's bytes into blocks (charged to the quota) and
    /// checks them against the image's checksum. On failure the file stays
    /// pending and holds nothing, so a later access tries again.
    pub fn load(&mut self, shared: &Shared) -> Result<()> {
        if self.pending.as_ref().is_some_and(|p| p.crc.is_none()) {
            return self.load_range(shared, 0, u64::MAX);
        }
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        let size = self.size;
        // Fetched bytes are no change to send.
        let marks = self.marks.take();
        let fetched = (|| {
            let mut crc = crc32fast::Hasher::new();
            p.read_chunks(&mut Vec::new(), |at, bytes| {
                crc.update(bytes);
                match self.write(shared, at, bytes)? {
                    n if n < bytes.len() => Err(ErrorCode::InsufficientSpace),
                    _ => Ok(()),
                }
            })?;
            if Some(crc.finalize()) != p.crc {
                return Err(ErrorCode::Io);
            }
            Ok(())
        })();
        if let Err(e) = fetched {
            self.release(shared);
            self.pending = Some(p);
            self.size = size;
            self.marks = marks;
            return Err(e);
        }
        self.size = size;
        self.marks = marks;
        Ok(())
    }

    /// Walks the bytes at `offset..offset+len` (clamped to the file size)
    /// block by block: `piece(zeros, stored, total)` describes each piece of
    /// `total` bytes as `zeros` zero bytes, then `stored`, then zeros for the
    /// rest. Returns the byte count walked.
    fn walk(
        &self,
        shift: u32,
        offset: u64,
        len: usize,
        mut piece: impl FnMut(usize, &[u8], usize),
    ) -> usize {
        if offset >= self.size {
            return 0;
        }
        let n = (self.size - offset).min(len as u64) as usize;
        let bs = 1u64 << shift;
        let mut done = 0usize;
        while done < n {
            let pos = offset + done as u64;
            let c0 = (pos & (bs - 1)) as usize;
            let chunk = ((bs as usize) - c0).min(n - done);
            let c1 = c0 + chunk;
            match self.blocks.get(&(pos >> shift)) {
                Some(b) if b.start.max(c0) < b.end().min(c1) => {
                    let (s0, s1) = (b.start.max(c0), b.end().min(c1));
                    piece(s0 - c0, &b.data[s0 - b.start..s1 - b.start], chunk);
                }
                _ => piece(chunk, &[], chunk),
            }
            done += chunk;
        }
        n
    }

    /// Copies bytes at `offset` into `buf`; returns how many (0 at or past
    /// end of file).
    pub fn read(&self, shift: u32, offset: u64, buf: &mut [u8]) -> usize {
        let mut at = 0;
        self.walk(shift, offset, buf.len(), |zeros, stored, total| {
            let out = &mut buf[at..at + total];
            let (lead, rest) = out.split_at_mut(zeros);
            lead.fill(0);
            rest[..stored.len()].copy_from_slice(stored);
            rest[stored.len()..].fill(0);
            at += total;
        })
    }

    /// Appends up to `len` bytes at `offset` to `out` without zero-filling
    /// it first (holes are appended as zeros); returns how many.
    pub fn read_append(&self, shift: u32, offset: u64, len: usize, out: &mut Vec<u8>) -> usize {
        out.reserve(len.min(self.size.saturating_sub(offset) as usize));
        self.walk(shift, offset, len, |zeros, stored, total| {
            out.resize(out.len() + zeros, 0);
            out.extend_from_slice(stored);
            out.resize(out.len() + total - zeros - stored.len(), 0);
        })
    }

    /// Writes `data` at `offset`, growing the file as needed. Returns how many
    /// bytes were written: fewer than asked only when space ran out part way
    /// (as a full disk does on Linux); an error when nothing could be written.
    pub fn write(&mut self, shared: &Shared, offset: u64, data: &[u8]) -> Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        // A checksummed file loads whole; a ranged one keeps its unfetched
        // bytes where they are, minus those this write replaces (below).
        if self.pending.as_ref().is_some_and(|p| p.crc.is_some()) {
            self.load(shared)?;
        }
        let max = shared.config.max_file_size;
        if offset >= max {
            return Err(ErrorCode::FileTooLarge);
        }
        let data = &data[..data.len().min((max - offset) as usize)];
        let shift = shared.block_shift;
        let bs = 1usize << shift;
        let mut done = 0usize;
        while done < data.len() {
            let pos = offset + done as u64;
            let within = (pos & (bs as u64 - 1)) as usize;
            let chunk = (bs - within).min(data.len() - done);
            match self.write_block(shared, pos >> shift, within, &data[done..done + chunk]) {
                Ok(()) => done += chunk,
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            }
        }
        // A write past the end also makes the gap before it (zeros).
        self.mark(offset.min(self.size), offset + done as u64);
        self.size = self.size.max(offset + done as u64);
        cut(&mut self.clean, offset, offset + done as u64);
        if let Some(p) = &mut self.pending {
            p.cut(offset, offset + done as u64);
            if p.extents.is_empty() {
                self.pending = None;
            }
        }
        Ok(done)
    }

    /// Stores `src` at offset `w0` of block `index`, widening the block's
    /// stored run to cover it (the gap between, if any, becomes zeros).
    fn write_block(&mut self, shared: &Shared, index: u64, w0: usize, src: &[u8]) -> Result<()> {
        let bs = 1usize << shared.block_shift;
        let w1 = w0 + src.len();
        if !self.blocks.contains_key(&index) {
            crate::fs::room_to_grow()?;
        }
        let block = self.blocks.entry(index).or_default();
        if block.data.is_empty() {
            block.start = w0;
        }
        let (new_start, new_end) = (block.start.min(w0), block.end().max(w1));
        let need = new_end - new_start;
        let cap = block.data.capacity();
        if cap < need {
            // A block written to its end gets exactly one block; a growing
            // run doubles (amortised appends) but never past a block.
            let target = if need == bs {
                bs
            } else {
                need.max(cap.saturating_mul(2)).min(bs)
            };
            let reserved = shared.reserve_bytes((target - cap) as u64);
            if reserved.is_err()
                || block
                    .data
                    .try_reserve_exact(target - block.data.len())
                    .is_err()
            {
                if reserved.is_ok() {
                    shared.release_bytes((target - cap) as u64);
                }
                if block.data.is_empty() {
                    self.blocks.remove(&index);
                }
                return Err(reserved.err().unwrap_or(ErrorCode::InsufficientMemory));
            }
            // The allocator may round up; charge what was really taken.
            let got = block.data.capacity() - cap;
            if got > target - cap {
                shared.charge_bytes((got - (target - cap)) as u64);
            }
            self.allocated += got as u64;
        }
        if w0 < block.start {
            // Widen to the left: move the stored run right, zero the gap.
            let by = block.start - w0;
            let old = block.data.len();
            block.data.resize(old + by, 0);
            block.data.copy_within(0..old, by);
            block.data[..by].fill(0);
            block.start = w0;
        }
        let (a, b) = (w0 - block.start, w1 - block.start);
        let len = block.data.len();
        if b <= len {
            block.data[a..b].copy_from_slice(src);
        } else if a <= len {
            // Append the tail without zero-filling it first.
            block.data[a..].copy_from_slice(&src[..len - a]);
            block.data.extend_from_slice(&src[len - a..]);
        } else {
            block.data.resize(a, 0);
            block.data.extend_from_slice(src);
        }
        Ok(())
    }

    /// Grows (with a hole) or shrinks the file to `new`.
    pub fn set_size(&mut self, shared: &Shared, new: u64) -> Result<()> {
        if new > shared.config.max_file_size {
            return Err(ErrorCode::FileTooLarge);
        }
        if new == 0 {
            // Nothing of the old contents survives: no need to fetch them.
            self.pending = None;
        }
        cut(&mut self.clean, new, u64::MAX);
        match &mut self.pending {
            Some(p) if p.crc.is_none() => {
                // Bytes past the new end are gone, so a later grow reads
                // zeros there rather than old contents.
                p.cut(new, u64::MAX);
                if p.extents.is_empty() {
                    self.pending = None;
                }
            }
            _ => self.load(shared)?,
        }
        if new < self.size {
            let shift = shared.block_shift;
            let bs = 1u64 << shift;
            // First block index that lies wholly past the new end.
            let gone = self.blocks.split_off(&new.div_ceil(bs));
            let mut freed: u64 = gone.values().map(|b| b.data.capacity() as u64).sum();
            if !new.is_multiple_of(bs) {
                let last = new >> shift;
                let keep = (new - (last << shift)) as usize;
                if let Some(block) = self.blocks.get_mut(&last) {
                    if block.start >= keep {
                        freed += block.data.capacity() as u64;
                        self.blocks.remove(&last);
                    } else if block.end() > keep {
                        block.data.truncate(keep - block.start);
                        let before = block.data.capacity();
                        if block.data.len() < before / 2 {
                            block.data.shrink_to_fit();
                        }
                        freed += (before - block.data.capacity()) as u64;
                    }
                }
            }
            self.allocated -= freed;
            shared.release_bytes(freed);
        }
        // Bytes cut off read as zeros if the file grows again; bytes added
        // are zeros: either way they changed.
        self.mark(self.size.min(new), self.size.max(new));
        self.size = new;
        Ok(())
    }

    /// Gives all memory back to the quota (the inode is going away).
    pub fn release(&mut self, shared: &Shared) {
        shared.release_bytes(self.allocated);
        self.allocated = 0;
        self.blocks.clear();
        self.pending = None;
        self.clean.clear();
        self.marks = None;
        self.size = 0;
    }

    /// Stored extents as (offset, bytes), for serialisation; holes skipped.
    pub fn extents(&self, shift: u32) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        self.blocks
            .iter()
            .filter(|(_, b)| !b.data.is_empty())
            .map(move |(i, b)| ((i << shift) + b.start as u64, b.data.as_slice()))
    }
}
