//! File streams as wasmtime-wasi streams, over fs-core's cursors. fs-core
//! never blocks, so they are always ready.

use bytes::Bytes;
use fs_core::stream::{FileReader, FileWriter};
use wasmtime_wasi_io::poll::Pollable;
use wasmtime_wasi_io::streams::{InputStream, OutputStream, StreamError, StreamResult};

/// What `check-write` allows per call.
const WRITE_BUDGET: usize = 16 << 20;

pub struct Reader(pub FileReader);
pub struct Writer(pub FileWriter);

fn failed(e: fs_core::ErrorCode) -> StreamError {
    StreamError::LastOperationFailed(wasmtime::Error::new(e))
}

#[async_trait::async_trait]
impl Pollable for Reader {
    async fn ready(&mut self) {}
}

impl InputStream for Reader {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        match self.0.read(size).map_err(failed)? {
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
        self.0.write(&bytes).map_err(failed)
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_BUDGET)
    }
}
