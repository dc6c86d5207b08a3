//! `wasi:io/{error,poll,streams}`: file streams are served by fs-core and
//! are always ready; every other stream, pollable and error is the host's,
//! wrapped so it can travel through the same resource types.

use crate::exports::wasi::io::error::{self as error_exp, GuestError};
use crate::exports::wasi::io::poll::{self as poll_exp, GuestPollable, PollableBorrow};
use crate::exports::wasi::io::streams::{
    self as streams_exp, GuestInputStream, GuestOutputStream, InputStreamBorrow, StreamError,
};
#[cfg(feature = "remote")]
use crate::remote::{FileReader, FileWriter};
use crate::wasi::io::{error as host_error, poll as host_poll, streams as host};
use crate::Adapter;
#[cfg(not(feature = "remote"))]
use fs_core::stream::{FileReader, FileWriter};
use std::cell::RefCell;

/// What `check-write` allows per call for files.
const WRITE_BUDGET: u64 = 16 << 20;

pub enum IoError {
    Fs(fs_core::ErrorCode),
    Host(host_error::Error),
}

pub enum Pollable {
    /// File streams never block.
    Ready,
    Host(host_poll::Pollable),
}

pub enum Input {
    File(RefCell<FileReader>),
    Host(host::InputStream),
}

pub enum Output {
    File(RefCell<FileWriter>),
    Host(host::OutputStream),
}

fn failed(e: fs_core::ErrorCode) -> StreamError {
    StreamError::LastOperationFailed(error_exp::Error::new(IoError::Fs(e)))
}

/// A host stream error as ours.
fn host_err(e: host::StreamError) -> StreamError {
    match e {
        host::StreamError::LastOperationFailed(e) => {
            StreamError::LastOperationFailed(error_exp::Error::new(IoError::Host(e)))
        }
        host::StreamError::Closed => StreamError::Closed,
    }
}

fn ready() -> poll_exp::Pollable {
    poll_exp::Pollable::new(Pollable::Ready)
}

pub fn wrap_pollable(p: host_poll::Pollable) -> poll_exp::Pollable {
    poll_exp::Pollable::new(Pollable::Host(p))
}

impl error_exp::Guest for Adapter {
    type Error = IoError;
}

impl GuestError for IoError {
    fn to_debug_string(&self) -> String {
        match self {
            IoError::Fs(e) => e.to_string(),
            IoError::Host(e) => e.to_debug_string(),
        }
    }
}

/// Called before the app waits on the host (input, a timer, a poll): in
/// the persistent builds, closes grouped and waiting are synced first, so
/// an idle app never leaves a closed file out of the store.
fn before_blocking() {
    #[cfg(any(feature = "persist", feature = "persist-s3"))]
    if let Some(v) = crate::state::built() {
        v.commit_pending();
    }
}

impl poll_exp::Guest for Adapter {
    type Pollable = Pollable;

    fn poll(list: Vec<PollableBorrow<'_>>) -> Vec<u32> {
        let list: Vec<&Pollable> = list.iter().map(|p| p.get::<Pollable>()).collect();
        // Anything of ours is ready now: report it (with whatever host
        // pollables are ready too) without blocking.
        if list.iter().any(|p| matches!(p, Pollable::Ready)) {
            return (0..list.len() as u32)
                .filter(|&i| match list[i as usize] {
                    Pollable::Ready => true,
                    Pollable::Host(h) => h.ready(),
                })
                .collect();
        }
        // Only host pollables are left: the host blocks until one is ready,
        // and its indices are ours.
        before_blocking();
        let host: Vec<&host_poll::Pollable> = list
            .iter()
            .filter_map(|p| match p {
                Pollable::Host(h) => Some(h),
                Pollable::Ready => None,
            })
            .collect();
        host_poll::poll(&host)
    }
}

impl GuestPollable for Pollable {
    fn ready(&self) -> bool {
        match self {
            Pollable::Ready => true,
            Pollable::Host(p) => p.ready(),
        }
    }

    fn block(&self) {
        if let Pollable::Host(p) = self {
            before_blocking();
            p.block()
        }
    }
}

impl streams_exp::Guest for Adapter {
    type InputStream = Input;
    type OutputStream = Output;
}

impl Input {
    fn read_file(r: &RefCell<FileReader>, len: u64) -> Result<Vec<u8>, StreamError> {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        r.borrow_mut()
            .read(len)
            .map_err(failed)?
            .ok_or(StreamError::Closed)
    }
}

impl GuestInputStream for Input {
    fn read(&self, len: u64) -> Result<Vec<u8>, StreamError> {
        match self {
            Input::File(r) => Input::read_file(r, len),
            Input::Host(s) => s.read(len).map_err(host_err),
        }
    }

    fn blocking_read(&self, len: u64) -> Result<Vec<u8>, StreamError> {
        match self {
            Input::File(r) => Input::read_file(r, len),
            Input::Host(s) => {
                before_blocking();
                s.blocking_read(len).map_err(host_err)
            }
        }
    }

    fn skip(&self, len: u64) -> Result<u64, StreamError> {
        match self {
            Input::File(r) => r
                .borrow_mut()
                .skip(len)
                .map_err(failed)?
                .ok_or(StreamError::Closed),
            Input::Host(s) => s.skip(len).map_err(host_err),
        }
    }

    fn blocking_skip(&self, len: u64) -> Result<u64, StreamError> {
        match self {
            Input::File(_) => self.skip(len),
            Input::Host(s) => {
                before_blocking();
                s.blocking_skip(len).map_err(host_err)
            }
        }
    }

    fn subscribe(&self) -> poll_exp::Pollable {
        match self {
            Input::File(_) => ready(),
            Input::Host(s) => wrap_pollable(s.subscribe()),
        }
    }
}

impl Output {
    fn write_file(w: &RefCell<FileWriter>, bytes: &[u8]) -> Result<(), StreamError> {
        w.borrow_mut().write(bytes).map_err(failed)
    }

    fn write_zeroes_file(w: &RefCell<FileWriter>, len: u64) -> Result<(), StreamError> {
        let zeros = vec![0; len.min(64 << 10) as usize];
        let mut left = len;
        while left > 0 {
            let n = left.min(zeros.len() as u64);
            Output::write_file(w, &zeros[..n as usize])?;
            left -= n;
        }
        Ok(())
    }

    /// Moves up to `len` bytes from `src` to this stream (the generic path,
    /// when either end is a file).
    fn copy_from(&self, src: &Input, len: u64, blocking: bool) -> Result<u64, StreamError> {
        let len = len.min(self.check_write()?.max(1));
        let bytes = if blocking {
            src.blocking_read(len)?
        } else {
            src.read(len)?
        };
        let n = bytes.len() as u64;
        if blocking {
            self.blocking_write_and_flush(bytes)?;
        } else {
            self.write(bytes)?;
        }
        Ok(n)
    }
}

impl GuestOutputStream for Output {
    fn check_write(&self) -> Result<u64, StreamError> {
        match self {
            Output::File(_) => Ok(WRITE_BUDGET),
            Output::Host(s) => s.check_write().map_err(host_err),
        }
    }

    fn write(&self, contents: Vec<u8>) -> Result<(), StreamError> {
        match self {
            Output::File(w) => Output::write_file(w, &contents),
            Output::Host(s) => s.write(&contents).map_err(host_err),
        }
    }

    fn blocking_write_and_flush(&self, contents: Vec<u8>) -> Result<(), StreamError> {
        match self {
            Output::File(w) => Output::write_file(w, &contents),
            Output::Host(s) => s.blocking_write_and_flush(&contents).map_err(host_err),
        }
    }

    fn flush(&self) -> Result<(), StreamError> {
        match self {
            Output::File(_) => Ok(()),
            Output::Host(s) => s.flush().map_err(host_err),
        }
    }

    fn blocking_flush(&self) -> Result<(), StreamError> {
        match self {
            Output::File(_) => Ok(()),
            Output::Host(s) => s.blocking_flush().map_err(host_err),
        }
    }

    fn subscribe(&self) -> poll_exp::Pollable {
        match self {
            Output::File(_) => ready(),
            Output::Host(s) => wrap_pollable(s.subscribe()),
        }
    }

    fn write_zeroes(&self, len: u64) -> Result<(), StreamError> {
        match self {
            Output::File(w) => Output::write_zeroes_file(w, len),
            Output::Host(s) => s.write_zeroes(len).map_err(host_err),
        }
    }

    fn blocking_write_zeroes_and_flush(&self, len: u64) -> Result<(), StreamError> {
        match self {
            Output::File(w) => Output::write_zeroes_file(w, len),
            Output::Host(s) => s.blocking_write_zeroes_and_flush(len).map_err(host_err),
        }
    }

    fn splice(&self, src: InputStreamBorrow<'_>, len: u64) -> Result<u64, StreamError> {
        match (self, src.get::<Input>()) {
            (Output::Host(dst), Input::Host(src)) => dst.splice(src, len).map_err(host_err),
            (_, src) => self.copy_from(src, len, false),
        }
    }

    fn blocking_splice(&self, src: InputStreamBorrow<'_>, len: u64) -> Result<u64, StreamError> {
        match (self, src.get::<Input>()) {
            (Output::Host(dst), Input::Host(src)) => {
                dst.blocking_splice(src, len).map_err(host_err)
            }
            (_, src) => self.copy_from(src, len, true),
        }
    }
}
