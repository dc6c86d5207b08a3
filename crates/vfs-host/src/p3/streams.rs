//! File data as `stream<u8>`, one copy each way: a read goes from fs-core's
//! blocks straight into the reader's buffer (the guest's memory when a
//! guest reads), and a write from the writer's buffer straight into
//! fs-core. Each stream ends its result future: `ok` when it ran to its
//! end (or the other side dropped it), the error code where a call failed.

use super::convert::code;
use super::types::ErrorCode;
use crate::streams::Policy;
use fs_core::stream::{FileReader, FileWriter};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::oneshot;
use wasmtime::component::VecBuffer;
use wasmtime::component::{Destination, Source, StreamConsumer, StreamProducer, StreamResult};
use wasmtime::StoreContextMut;

/// Where a stream's end is reported (the WIT's result future).
pub(crate) struct Done(Option<oneshot::Sender<Result<(), ErrorCode>>>);

impl Done {
    pub(crate) fn new() -> (Done, oneshot::Receiver<Result<(), ErrorCode>>) {
        let (tx, rx) = oneshot::channel();
        (Done(Some(tx)), rx)
    }

    /// Reports `r`, if nothing was reported yet.
    pub(crate) fn finish(&mut self, r: Result<(), fs_core::ErrorCode>) {
        if let Some(tx) = self.0.take() {
            // The guest may have dropped the future; nobody is told then.
            let _ = tx.send(r.map_err(code));
        }
    }
}

impl Drop for Done {
    /// A stream dropped part way (by its reader or writer) ended well.
    fn drop(&mut self) {
        self.finish(Ok(()))
    }
}

/// A host reader names no size; it gets this much per read.
const HOST_READ: usize = 64 << 10;

/// `read-via-stream`'s producer.
pub(crate) struct FileProducer {
    pub(crate) reader: FileReader,
    pub(crate) done: Done,
    pub(crate) policy: Policy,
}

impl<D> StreamProducer<D> for FileProducer {
    type Item = u8;
    type Buffer = VecBuffer<u8>;

    fn poll_produce<'a>(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        store: StoreContextMut<'a, D>,
        dst: Destination<'a, u8, Self::Buffer>,
        _finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let me = self.get_mut();
        let mut dst = dst.as_direct(store, HOST_READ);
        let buf = dst.remaining();
        if buf.is_empty() {
            // A zero-length read asks whether data is ready: a file always is.
            return Poll::Ready(Ok(StreamResult::Completed));
        }
        let (reader, policy) = (&mut me.reader, me.policy);
        match policy.run(buf.len(), || reader.read_into(buf)) {
            Ok(0) => {
                me.done.finish(Ok(()));
                Poll::Ready(Ok(StreamResult::Dropped))
            }
            Ok(n) => {
                dst.mark_written(n);
                Poll::Ready(Ok(StreamResult::Completed))
            }
            Err(e) => {
                me.done.finish(Err(e));
                Poll::Ready(Ok(StreamResult::Dropped))
            }
        }
    }
}

/// `write-via-stream`'s and `append-via-stream`'s consumer.
pub(crate) struct FileConsumer {
    /// `Option` so that drop can hand the writer to the policy: the last
    /// close of a written file may send it to the store.
    pub(crate) writer: Option<FileWriter>,
    pub(crate) done: Done,
    pub(crate) policy: Policy,
}

impl<D> StreamConsumer<D> for FileConsumer {
    type Item = u8;

    fn poll_consume(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        store: StoreContextMut<D>,
        src: Source<'_, u8>,
        _finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let me = self.get_mut();
        let mut src = src.as_direct(store);
        let bytes = src.remaining();
        let n = bytes.len();
        let Some(writer) = me.writer.as_mut() else {
            return Poll::Ready(Ok(StreamResult::Dropped));
        };
        match me.policy.run(n, || writer.write(bytes)) {
            Ok(()) => {
                src.mark_read(n);
                Poll::Ready(Ok(StreamResult::Completed))
            }
            Err(e) => {
                me.done.finish(Err(e));
                Poll::Ready(Ok(StreamResult::Dropped))
            }
        }
    }
}

impl Drop for FileConsumer {
    fn drop(&mut self) {
        let (writer, policy) = (self.writer.take(), self.policy);
        policy.run(0, || drop(writer));
    }
}
