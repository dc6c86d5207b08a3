//! The cursors behind `read-via-stream`, `write-via-stream` and
//! `append-via-stream`. Each holds its own handle to the file, so a stream
//! outlives the descriptor it came from, as in WASI. Binding layers wrap
//! these in their stream types and add nothing but error translation.
//!
//! The cursors work on anything with a file's four calls: fs-core's own
//! descriptors, or a stand-in for a file held elsewhere (the remote
//! adapter's), so stream semantics are written once.

use crate::descriptor::Descriptor;
use crate::error::{ErrorCode, Result};
use crate::types::DescriptorFlags;
use alloc::vec::Vec;

/// Largest single read handed out (the reader asks again for more): each
/// is a fresh buffer, and a 16 MiB one costs the host fresh pages every
/// time (a 16 MiB-buffer read of 100 MiB under `larder run` took 82-92 ms
/// capped at 16 MiB, 33-39 ms at 1 MiB).
pub const MAX_STREAM_READ: usize = 1 << 20;

/// What a stream needs of the file under it.
pub trait StreamFile {
    /// As [`Descriptor::read_append`].
    fn read_append(&self, out: &mut Vec<u8>, len: usize, offset: u64) -> Result<usize>;
    /// As [`Descriptor::read`]: straight into `buf` (a reader's memory).
    fn read_into(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let mut out = Vec::new();
        let n = self.read_append(&mut out, buf.len(), offset)?;
        buf[..n].copy_from_slice(&out[..n]);
        Ok(n)
    }
    /// The file's current size.
    fn size(&self) -> Result<u64>;
    /// As [`Descriptor::write`].
    fn write(&self, data: &[u8], offset: u64) -> Result<usize>;
    /// As [`Descriptor::append`].
    fn append(&self, data: &[u8]) -> Result<(u64, usize)>;
}

impl StreamFile for Descriptor {
    fn read_append(&self, out: &mut Vec<u8>, len: usize, offset: u64) -> Result<usize> {
        Descriptor::read_append(self, out, len, offset)
    }
    fn read_into(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        Descriptor::read(self, buf, offset)
    }
    fn size(&self) -> Result<u64> {
        Ok(self.stat().size)
    }
    fn write(&self, data: &[u8], offset: u64) -> Result<usize> {
        Descriptor::write(self, data, offset)
    }
    fn append(&self, data: &[u8]) -> Result<(u64, usize)> {
        Descriptor::append(self, data)
    }
}

pub struct FileReader<F = Descriptor> {
    fd: F,
    pos: u64,
}

impl<F: StreamFile> FileReader<F> {
    /// A reader of `fd` from `pos` (the caller checked the read mode).
    pub fn new(fd: F, pos: u64) -> Self {
        FileReader { fd, pos }
    }

    /// Up to `len` bytes from the cursor, which moves past them; `None` at
    /// end of file, where the stream is closed.
    pub fn read(&mut self, len: usize) -> Result<Option<Vec<u8>>> {
        if len == 0 {
            return Ok(Some(Vec::new()));
        }
        let mut buf = Vec::new();
        let n = self
            .fd
            .read_append(&mut buf, len.min(MAX_STREAM_READ), self.pos)?;
        if n == 0 {
            return Ok(None);
        }
        self.pos += n as u64;
        Ok(Some(buf))
    }

    /// Fills as much of `buf` as the file has from the cursor, which moves
    /// past it; 0 at end of file (or for an empty `buf`). Not capped at
    /// [`MAX_STREAM_READ`]: nothing is allocated, `buf` is the reader's.
    pub fn read_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        let n = self.fd.read_into(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }

    /// Moves the cursor up to `len` bytes on; `None` at end of file.
    pub fn skip(&mut self, len: u64) -> Result<Option<u64>> {
        let size = self.fd.size()?;
        if self.pos >= size && len > 0 {
            return Ok(None);
        }
        let n = size.saturating_sub(self.pos).min(len);
        self.pos += n;
        Ok(Some(n))
    }
}

pub struct FileWriter<F = Descriptor> {
    fd: F,
    /// `None` appends.
    pos: Option<u64>,
}

impl<F: StreamFile> FileWriter<F> {
    /// A writer of `fd` at `pos`, or appending for `None` (the caller
    /// checked the write mode).
    pub fn new(fd: F, pos: Option<u64>) -> Self {
        FileWriter { fd, pos }
    }

    /// Writes all of `bytes` (a stream write is all or an error); a full
    /// filesystem part way is `insufficient-space`.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let mut done = 0;
        while done < bytes.len() {
            let n = match self.pos {
                Some(pos) => self.fd.write(&bytes[done..], pos + done as u64)?,
                None => self.fd.append(&bytes[done..])?.1,
            };
            if n == 0 {
                return Err(ErrorCode::InsufficientSpace);
            }
            done += n;
        }
        if let Some(pos) = &mut self.pos {
            *pos += done as u64;
        }
        Ok(())
    }
}

impl Descriptor {
    /// A stream reading from `offset`; the descriptor must be open for reading.
    pub fn read_via_stream(&self, offset: u64) -> Result<FileReader> {
        self.stream_handle(DescriptorFlags::READ)
            .map(|fd| FileReader { fd, pos: offset })
    }

    /// A stream writing from `offset`; the descriptor must be open for writing.
    pub fn write_via_stream(&self, offset: u64) -> Result<FileWriter> {
        self.stream_handle(DescriptorFlags::WRITE)
            .map(|fd| FileWriter {
                fd,
                pos: Some(offset),
            })
    }

    /// A stream appending at the end of the file, atomically per write.
    pub fn append_via_stream(&self) -> Result<FileWriter> {
        self.stream_handle(DescriptorFlags::WRITE)
            .map(|fd| FileWriter { fd, pos: None })
    }

    fn stream_handle(&self, need: DescriptorFlags) -> Result<Descriptor> {
        if need.contains(DescriptorFlags::WRITE) {
            self.require_write_permission()?;
        }
        // A directory is never open for writing, so writes stop at the
        // mode.
        crate::descriptor::check_stream(self.get_type(), self.get_flags(), need)?;
        self.try_clone()
    }
}
