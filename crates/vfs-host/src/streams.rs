//! File streams as wasmtime-wasi streams: reads and writes go straight to
//! fs-core, which never blocks, so they are always ready.

use bytes::Bytes;
use fs_core::Descriptor;
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{InputStream, OutputStream, StreamError, StreamResult};

/// Largest single read handed to the guest (it asks again for more).
const MAX_READ: usize = 16 << 20;
/// What `check-write` allows per call.
const WRITE_BUDGET: usize = 16 << 20;

pub struct FileReader {
    fd: Descriptor,
    pos: u64,
}

impl FileReader {
    pub fn new(fd: Descriptor, pos: u64) -> Self {
        FileReader { fd, pos }
    }
}

fn failed(e: fs_core::ErrorCode) -> StreamError {
    StreamError::LastOperationFailed(wasmtime::Error::new(e))
}

#[async_trait::async_trait]
impl Pollable for FileReader {
    async fn ready(&mut self) {}
}

impl InputStream for FileReader {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        if size == 0 {
            return Ok(Bytes::new());
        }
        let mut buf = Vec::new();
        let n = self
            .fd
            .read_append(&mut buf, size.min(MAX_READ), self.pos)
            .map_err(failed)?;
        if n == 0 {
            return Err(StreamError::Closed);
        }
        self.pos += n as u64;
        Ok(Bytes::from(buf))
    }

    fn skip(&mut self, size: usize) -> StreamResult<usize> {
        let len = self.fd.stat().size;
        if self.pos >= len && size > 0 {
            return Err(StreamError::Closed);
        }
        let n = (len - self.pos).min(size as u64);
        self.pos += n;
        Ok(n as usize)
    }
}

pub struct FileWriter {
    fd: Descriptor,
    /// `None` appends: every write lands at the end of the file.
    pos: Option<u64>,
}

impl FileWriter {
    pub fn at(fd: Descriptor, pos: u64) -> Self {
        FileWriter { fd, pos: Some(pos) }
    }
    pub fn append(fd: Descriptor) -> Self {
        FileWriter { fd, pos: None }
    }
}

#[async_trait::async_trait]
impl Pollable for FileWriter {
    async fn ready(&mut self) {}
}

impl OutputStream for FileWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let mut done = 0;
        while done < bytes.len() {
            let n = match self.pos {
                Some(pos) => self.fd.write(&bytes[done..], pos + done as u64),
                None => self.fd.append(&bytes[done..]).map(|(_, n)| n),
            }
            .map_err(failed)?;
            if n == 0 {
                return Err(failed(fs_core::ErrorCode::InsufficientSpace));
            }
            done += n;
        }
        if let Some(pos) = &mut self.pos {
            *pos += done as u64;
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_BUDGET)
    }
}
