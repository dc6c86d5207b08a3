//! File streams as wasmtime-wasi streams, over fs-core's cursors. fs-core
//! never blocks on another caller, so they are always ready; a chunk that
//! is large or may wait on the store runs where [`Calls`] says.

use crate::calls::{Calls, LARGE};
use crate::Ctx;
use bytes::Bytes;
use fs_core::stream::{FileReader, FileWriter};
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{InputStream, OutputStream, StreamError, StreamResult};

/// What `check-write` allows per call.
const WRITE_BUDGET: usize = 16 << 20;

/// Where a stream's long calls run, fixed when it is opened.
#[derive(Clone, Copy)]
pub(crate) struct Policy {
    calls: Calls,
    may_wait: bool,
}

impl Policy {
    /// For a stream of `d` (`write`: into it): its chunks may wait if the
    /// file has bytes to fetch, or if writes wait on the store.
    pub(crate) fn of(ctx: &Ctx<'_>, d: &fs_core::Descriptor, write: bool) -> Policy {
        Policy {
            calls: ctx.calls,
            may_wait: d.may_fetch() || (write && ctx.changes_wait()),
        }
    }

    pub(crate) fn run<R>(self, bytes: usize, f: impl FnOnce() -> R) -> R {
        self.calls.maybe_long(self.may_wait || bytes >= LARGE, f)
    }
}

pub struct Reader(FileReader, Policy);

impl Reader {
    pub(crate) fn new(r: FileReader, ctx: &Ctx<'_>, d: &fs_core::Descriptor) -> Reader {
        Reader(r, Policy::of(ctx, d, false))
    }
}

/// `Option` so that drop can hand the writer to the policy: the last close
/// of a written file may send it to the store.
pub struct Writer(Option<FileWriter>, Policy);

impl Writer {
    pub(crate) fn new(w: FileWriter, ctx: &Ctx<'_>, d: &fs_core::Descriptor) -> Writer {
        Writer(Some(w), Policy::of(ctx, d, true))
    }
}

fn failed(e: fs_core::ErrorCode) -> StreamError {
    StreamError::LastOperationFailed(wasmtime::Error::new(e))
}

#[async_trait::async_trait]
impl Pollable for Reader {
    async fn ready(&mut self) {}
}

impl InputStream for Reader {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        let r = &mut self.0;
        match self.1.run(size, || r.read(size)).map_err(failed)? {
            Some(buf) => Ok(Bytes::from(buf)),
            None => Err(StreamError::Closed),
        }
    }

    fn skip(&mut self, size: usize) -> StreamResult<usize> {
        match self.0.skip(size as u64).map_err(failed)? {
            Some(n) => Ok(n as usize),
            None => Err(StreamError::Closed),
        }
    }
}

#[async_trait::async_trait]
impl Pollable for Writer {
    async fn ready(&mut self) {}
}

impl OutputStream for Writer {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let w = self.0.as_mut().ok_or(StreamError::Closed)?;
        self.1.run(bytes.len(), || w.write(&bytes)).map_err(failed)
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_BUDGET)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            self.1.run(0, || drop(w));
        }
    }
}
