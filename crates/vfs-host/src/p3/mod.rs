//! `wasi:filesystem@0.3` on the shared filesystem: the same descriptors,
//! table and fs-core calls as 0.2 (`crate::types`), file data and
//! directory listings moving as streams, and every call `async` in WIT
//! answered at once (fs-core never waits on another caller; one that may
//! wait on a store leaves the worker as in 0.2, see `crate::calls`).

mod bindings;
mod convert;
mod streams;

use crate::convert::{FsError, FsResult};
use crate::{Ctx, HasVfs};
use bindings::wasi::filesystem0_3_0::preopens;
pub(crate) use bindings::wasi::filesystem0_3_0::types;
use convert as c;
use fs_core::Descriptor;
use streams::{Done, FileConsumer, FileProducer};
use types::{
    Advice, DescriptorFlags, DescriptorStat, DescriptorType, DirectoryEntry, ErrorCode, Filesize,
    MetadataHashValue, NewTimestamp, OpenFlags, PathFlags,
};
use wasmtime::component::{Access, Accessor, FutureReader, Resource, StreamReader};
use wasmtime::AsContextMut;

/// Adds `wasi:filesystem@0.3` served by the shared filesystem, for the
/// async linker (`ctx` as in `crate::add_filesystem`).
pub(crate) fn add_to_linker<T>(
    linker: &mut wasmtime::component::Linker<T>,
    ctx: fn(&mut T) -> Ctx<'_>,
) -> wasmtime::Result<()>
where
    T: crate::VfsView + Send + 'static,
{
    types::add_to_linker::<T, HasVfs>(linker, ctx)?;
    preopens::add_to_linker::<T, HasVfs>(linker, ctx)?;
    Ok(())
}

impl types::Host for Ctx<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<ErrorCode> {
        match err {
            FsError::Code(e) => Ok(c::code(e)),
            FsError::Trap(e) => Err(e),
        }
    }
}

impl types::HostDescriptor for Ctx<'_> {
    fn drop(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        self.close(fd)
    }
}

impl preopens::Host for Ctx<'_> {
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<Descriptor>, String)>> {
        self.preopened()
    }
}

/// A stream of `T` and the future its end is reported in.
type Streamed<T> = (StreamReader<T>, FutureReader<Result<(), ErrorCode>>);

/// A byte stream that ends at once, its future holding `e`.
fn failed<S: AsContextMut>(mut store: S, e: fs_core::ErrorCode) -> wasmtime::Result<Streamed<u8>> {
    let code = c::code(e);
    Ok((
        StreamReader::new(&mut store, std::iter::empty())?,
        FutureReader::new(&mut store, async move { wasmtime::error::Ok(Err(code)) })?,
    ))
}

/// Runs `f` on the caller's context.
async fn with<U, R>(store: &Accessor<U, HasVfs>, f: impl FnOnce(&mut Ctx<'_>) -> R + Send) -> R
where
    U: 'static,
    R: Send,
{
    store.with(|mut access| f(&mut access.get()))
}

/// Runs `f` on the descriptor `fd`, a call that may wait on the store.
async fn on_fd<U, R>(
    store: &Accessor<U, HasVfs>,
    fd: &Resource<Descriptor>,
    f: impl FnOnce(&Descriptor) -> fs_core::Result<R> + Send,
) -> FsResult<R>
where
    U: 'static,
    R: Send,
{
    with(store, |ctx| {
        let d = ctx.fd(fd)?;
        Ok(ctx.waits_on(d, || f(d))?)
    })
    .await
}

/// `sync` or `sync-data` on `fd`: with a store, it waits for it.
async fn sync_fd<U: 'static>(
    store: &Accessor<U, HasVfs>,
    fd: &Resource<Descriptor>,
    f: impl FnOnce(&Descriptor) -> fs_core::Result<()> + Send,
) -> FsResult<()> {
    with(store, |ctx| {
        let d = ctx.fd(fd)?;
        Ok(ctx.syncs(|| f(d))?)
    })
    .await
}

impl<U: 'static> types::HostDescriptorWithStore<U> for HasVfs {
    fn read_via_stream(
        mut store: Access<'_, U, Self>,
        fd: Resource<Descriptor>,
        offset: Filesize,
    ) -> wasmtime::Result<Streamed<u8>> {
        let ctx = store.get();
        let d = ctx.table.get(&fd)?;
        let policy = crate::streams::Policy::of(&ctx, d, false);
        let reader = match d.read_via_stream(offset) {
            Ok(r) => r,
            Err(e) => return failed(store, e),
        };
        let (done, result) = Done::new();
        let producer = FileProducer {
            reader,
            done,
            policy,
        };
        Ok((
            StreamReader::new(&mut store, producer)?,
            FutureReader::new(&mut store, result)?,
        ))
    }

    fn write_via_stream(
        store: Access<'_, U, Self>,
        fd: Resource<Descriptor>,
        data: StreamReader<u8>,
        offset: Filesize,
    ) -> wasmtime::Result<FutureReader<Result<(), ErrorCode>>> {
        consume(store, fd, data, |d| d.write_via_stream(offset))
    }

    fn append_via_stream(
        store: Access<'_, U, Self>,
        fd: Resource<Descriptor>,
        data: StreamReader<u8>,
    ) -> wasmtime::Result<FutureReader<Result<(), ErrorCode>>> {
        consume(store, fd, data, |d| d.append_via_stream())
    }

    fn read_directory(
        mut store: Access<'_, U, Self>,
        fd: Resource<Descriptor>,
    ) -> wasmtime::Result<Streamed<DirectoryEntry>> {
        // fs-core lists a directory as it is when the listing starts; the
        // entries go to the reader as one batch.
        let mut entries = Vec::new();
        let listed = (|| {
            let mut dir = store.get().table.get(&fd)?.read_directory()?;
            while let Some(e) = dir.next_entry()? {
                entries.push(c::dir_entry(e));
            }
            FsResult::Ok(())
        })();
        let result = match listed {
            Ok(()) => Ok(()),
            Err(FsError::Code(e)) => Err(c::code(e)),
            Err(FsError::Trap(e)) => return Err(e),
        };
        Ok((
            StreamReader::new(&mut store, entries)?,
            FutureReader::new(&mut store, async move { wasmtime::error::Ok(result) })?,
        ))
    }

    async fn advise(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        offset: Filesize,
        len: Filesize,
        advice: Advice,
    ) -> FsResult<()> {
        with(store, |ctx| {
            Ok(ctx.fd(&fd)?.advise(offset, len, c::advice(advice))?)
        })
        .await
    }

    async fn sync_data(store: &Accessor<U, Self>, fd: Resource<Descriptor>) -> FsResult<()> {
        sync_fd(store, &fd, |d| d.sync_data()).await
    }

    async fn get_flags(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
    ) -> FsResult<DescriptorFlags> {
        with(store, |ctx| {
            Ok(c::wit_descriptor_flags(ctx.fd(&fd)?.get_flags()))
        })
        .await
    }

    async fn get_type(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
    ) -> FsResult<DescriptorType> {
        with(store, |ctx| Ok(c::descriptor_type(ctx.fd(&fd)?.get_type()))).await
    }

    async fn set_size(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        size: Filesize,
    ) -> FsResult<()> {
        on_fd(store, &fd, |d| d.set_size(size)).await
    }

    async fn set_times(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        atim: NewTimestamp,
        mtim: NewTimestamp,
    ) -> FsResult<()> {
        let (atim, mtim) = (c::new_timestamp(atim)?, c::new_timestamp(mtim)?);
        on_fd(store, &fd, |d| d.set_times(atim, mtim)).await
    }

    async fn sync(store: &Accessor<U, Self>, fd: Resource<Descriptor>) -> FsResult<()> {
        sync_fd(store, &fd, |d| d.sync()).await
    }

    async fn create_directory_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<()> {
        on_fd(store, &fd, |d| d.create_directory_at(&path)).await
    }

    async fn stat(store: &Accessor<U, Self>, fd: Resource<Descriptor>) -> FsResult<DescriptorStat> {
        with(store, |ctx| Ok(c::stat(ctx.fd(&fd)?.stat()))).await
    }

    async fn stat_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        flags: PathFlags,
        path: String,
    ) -> FsResult<DescriptorStat> {
        with(store, |ctx| {
            Ok(c::stat(ctx.fd(&fd)?.stat_at(c::path_flags(flags), &path)?))
        })
        .await
    }

    async fn set_times_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        flags: PathFlags,
        path: String,
        atim: NewTimestamp,
        mtim: NewTimestamp,
    ) -> FsResult<()> {
        let (atim, mtim) = (c::new_timestamp(atim)?, c::new_timestamp(mtim)?);
        on_fd(store, &fd, |d| {
            d.set_times_at(c::path_flags(flags), &path, atim, mtim)
        })
        .await
    }

    async fn link_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        old_flags: PathFlags,
        old_path: String,
        new_fd: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        with(store, |ctx| {
            let (old, new) = (ctx.fd(&fd)?, ctx.fd(&new_fd)?);
            let flags = c::path_flags(old_flags);
            Ok(ctx.waits(|| old.link_at(flags, &old_path, new, &new_path))?)
        })
        .await
    }

    async fn open_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        flags: PathFlags,
        path: String,
        oflags: OpenFlags,
        dflags: DescriptorFlags,
    ) -> FsResult<Resource<Descriptor>> {
        with(store, |ctx| {
            let d = ctx.fd(&fd)?;
            let (flags, oflags) = (c::path_flags(flags), c::open_flags(oflags));
            let dflags = c::descriptor_flags(dflags);
            let opened = ctx.waits(|| d.open_at(flags, &path, oflags, dflags))?;
            Ok(ctx.table.push(opened)?)
        })
        .await
    }

    async fn readlink_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<String> {
        with(store, |ctx| Ok(ctx.fd(&fd)?.readlink_at(&path)?)).await
    }

    async fn remove_directory_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<()> {
        on_fd(store, &fd, |d| d.remove_directory_at(&path)).await
    }

    async fn rename_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        old: String,
        new_fd: Resource<Descriptor>,
        new: String,
    ) -> FsResult<()> {
        with(store, |ctx| {
            let (a, b) = (ctx.fd(&fd)?, ctx.fd(&new_fd)?);
            Ok(ctx.waits(|| a.rename_at(&old, b, &new))?)
        })
        .await
    }

    async fn symlink_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        target: String,
        path: String,
    ) -> FsResult<()> {
        on_fd(store, &fd, |d| d.symlink_at(&target, &path)).await
    }

    async fn unlink_file_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<()> {
        on_fd(store, &fd, |d| d.unlink_file_at(&path)).await
    }

    async fn is_same_object(
        store: &Accessor<U, Self>,
        a: Resource<Descriptor>,
        b: Resource<Descriptor>,
    ) -> wasmtime::Result<bool> {
        with(store, |ctx| {
            Ok(ctx.table.get(&a)?.is_same_object(ctx.table.get(&b)?))
        })
        .await
    }

    async fn metadata_hash(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
    ) -> FsResult<MetadataHashValue> {
        with(store, |ctx| {
            Ok(c::metadata_hash(ctx.fd(&fd)?.metadata_hash()))
        })
        .await
    }

    async fn metadata_hash_at(
        store: &Accessor<U, Self>,
        fd: Resource<Descriptor>,
        flags: PathFlags,
        path: String,
    ) -> FsResult<MetadataHashValue> {
        with(store, |ctx| {
            let d = ctx.fd(&fd)?;
            Ok(c::metadata_hash(
                d.metadata_hash_at(c::path_flags(flags), &path)?,
            ))
        })
        .await
    }
}

/// `write-via-stream` and `append-via-stream`: `open` makes the writer
/// (checking the mode); the stream's bytes then go to it as they come.
fn consume<U: 'static>(
    mut store: Access<'_, U, HasVfs>,
    fd: Resource<Descriptor>,
    mut data: StreamReader<u8>,
    open: impl FnOnce(&Descriptor) -> fs_core::Result<fs_core::stream::FileWriter>,
) -> wasmtime::Result<FutureReader<Result<(), ErrorCode>>> {
    let ctx = store.get();
    let d = ctx.table.get(&fd)?;
    let policy = crate::streams::Policy::of(&ctx, d, true);
    let (mut done, result) = Done::new();
    match open(d) {
        Ok(writer) => {
            let consumer = FileConsumer {
                writer: Some(writer),
                done,
                policy,
            };
            data.pipe(&mut store, consumer)?;
        }
        Err(e) => {
            data.close(&mut store)?;
            done.finish(Err(e));
        }
    }
    FutureReader::new(&mut store, result)
}
