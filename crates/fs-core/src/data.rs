//! File contents: a sparse map of fixed-size blocks.
//!
//! Each block stores only a prefix of its range; bytes past a block's length
//! (up to the file size) read as zeros. So holes cost nothing, a small file
//! costs about its size, and full blocks are allocated exactly once. Every
//! byte of capacity is charged to the filesystem's byte quota before it is
//! allocated, and allocation failure is an error, never an abort.
//!
//! Invariant: no block holds bytes at or beyond `size`.

use crate::error::{ErrorCode, Result};
use crate::fs::Shared;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

#[derive(Default)]
pub(crate) struct FileData {
    size: u64,
    /// Bytes of capacity held by `blocks`, as charged to the quota.
    allocated: u64,
    blocks: BTreeMap<u64, Vec<u8>>,
}

impl FileData {
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn allocated(&self) -> u64 {
        self.allocated
    }

    /// Walks the bytes at `offset..offset+len` (clamped to the file size)
    /// block by block: `piece(stored, len)` gets each block's stored bytes
    /// (possibly fewer than `len`, the rest being a hole) or `None` for a
    /// whole hole. Returns the byte count walked.
    fn walk(
        &self,
        shift: u32,
        offset: u64,
        len: usize,
        mut piece: impl FnMut(Option<&[u8]>, usize),
    ) -> usize {
        if offset >= self.size {
            return 0;
        }
        let n = (self.size - offset).min(len as u64) as usize;
        let bs = 1u64 << shift;
        let mut done = 0usize;
        while done < n {
            let pos = offset + done as u64;
            let within = (pos & (bs - 1)) as usize;
            let chunk = ((bs as usize) - within).min(n - done);
            match self.blocks.get(&(pos >> shift)) {
                Some(block) if block.len() > within => {
                    let have = (block.len() - within).min(chunk);
                    piece(Some(&block[within..within + have]), chunk);
                }
                _ => piece(None, chunk),
            }
            done += chunk;
        }
        n
    }

    /// Copies bytes at `offset` into `buf`; returns how many (0 at or past
    /// end of file).
    pub fn read(&self, shift: u32, offset: u64, buf: &mut [u8]) -> usize {
        let mut at = 0;
        self.walk(shift, offset, buf.len(), |stored, len| {
            let out = &mut buf[at..at + len];
            let have = stored.map_or(0, |s| s.len());
            if let Some(s) = stored {
                out[..have].copy_from_slice(s);
            }
            out[have..].fill(0);
            at += len;
        })
    }

    /// Appends up to `len` bytes at `offset` to `out` without zero-filling
    /// it first (holes are appended as zeros); returns how many.
    pub fn read_append(
        &self,
        shift: u32,
        offset: u64,
        len: usize,
        out: &mut alloc::vec::Vec<u8>,
    ) -> usize {
        out.reserve(len.min(self.size.saturating_sub(offset) as usize));
        self.walk(shift, offset, len, |stored, len| {
            let have = stored.map_or(0, |s| s.len());
            if let Some(s) = stored {
                out.extend_from_slice(s);
            }
            out.resize(out.len() + len - have, 0);
        })
    }

    /// Writes `data` at `offset`, growing the file as needed. Returns how many
    /// bytes were written: fewer than asked only when space ran out part way
    /// (as a full disk does on Linux); an error when nothing could be written.
    pub fn write(&mut self, shared: &Shared, offset: u64, data: &[u8]) -> Result<usize> {
        if data.is_empty() {
            return Ok(0);
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
            let block = match self.block_for_write(shared, pos >> shift, within + chunk) {
                Ok(b) => b,
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            if block.len() < within {
                block.resize(within, 0);
            }
            let end = within + chunk;
            if block.len() < end {
                // Append the tail without zero-filling it first.
                let overlap = block.len() - within;
                block[within..].copy_from_slice(&data[done..done + overlap]);
                block.extend_from_slice(&data[done + overlap..done + chunk]);
            } else {
                block[within..end].copy_from_slice(&data[done..done + chunk]);
            }
            done += chunk;
        }
        self.size = self.size.max(offset + done as u64);
        Ok(done)
    }

    /// The block at `index` with capacity for at least `need` bytes,
    /// allocating or growing it against the quota.
    fn block_for_write(
        &mut self,
        shared: &Shared,
        index: u64,
        need: usize,
    ) -> Result<&mut Vec<u8>> {
        let bs = 1usize << shared.block_shift;
        let cap = self.blocks.get(&index).map_or(0, Vec::capacity);
        if cap < need {
            // A block written to its end gets exactly one block; a growing
            // tail doubles (amortised appends) but never past a block.
            let target = if need == bs {
                bs
            } else {
                need.max(cap.saturating_mul(2)).min(bs)
            };
            let extra = (target - cap) as u64;
            shared.reserve_bytes(extra)?;
            let block = self.blocks.entry(index).or_default();
            if block.try_reserve_exact(target - block.len()).is_err() {
                shared.release_bytes(extra);
                if block.is_empty() {
                    self.blocks.remove(&index);
                }
                return Err(ErrorCode::InsufficientMemory);
            }
            // The allocator may round up; charge what was really taken.
            let got = (block.capacity() - cap) as u64;
            if got > extra {
                // Rounding may overshoot the quota slightly; refusing the
                // write for it would be worse.
                shared.charge_bytes(got - extra);
            }
            self.allocated += got;
        }
        Ok(self.blocks.entry(index).or_default())
    }

    /// Grows (with a hole) or shrinks the file to `new`.
    pub fn set_size(&mut self, shared: &Shared, new: u64) -> Result<()> {
        if new > shared.config.max_file_size {
            return Err(ErrorCode::FileTooLarge);
        }
        if new < self.size {
            let shift = shared.block_shift;
            let bs = 1u64 << shift;
            // First block index that lies wholly past the new end.
            let first_gone = new.div_ceil(bs);
            let gone = self.blocks.split_off(&first_gone);
            let freed: u64 = gone.values().map(|b| b.capacity() as u64).sum();
            self.allocated -= freed;
            shared.release_bytes(freed);
            if new % bs != 0 {
                let last = new >> shift;
                let keep = (new - (last << shift)) as usize;
                if let Some(block) = self.blocks.get_mut(&last) {
                    if block.len() > keep {
                        block.truncate(keep);
                        let before = block.capacity();
                        if keep < before / 2 {
                            block.shrink_to_fit();
                        }
                        let freed = (before - block.capacity()) as u64;
                        self.allocated -= freed;
                        shared.release_bytes(freed);
                    }
                }
            }
        }
        self.size = new;
        Ok(())
    }

    /// Gives all memory back to the quota (the inode is going away).
    pub fn release(&mut self, shared: &Shared) {
        shared.release_bytes(self.allocated);
        self.allocated = 0;
        self.blocks.clear();
        self.size = 0;
    }

    /// Stored extents as (offset, bytes), for serialisation; holes skipped.
    pub fn extents(&self, shift: u32) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        self.blocks
            .iter()
            .filter(|(_, b)| !b.is_empty())
            .map(move |(i, b)| (i << shift, b.as_slice()))
    }
}
