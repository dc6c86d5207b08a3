//! vfs-host: `wasi:filesystem` for wasmtime embedders, backed by fs-core.
//!
//! Many `Store`s, on many threads, share one [`Vfs`] (an `Arc`). Everything
//! that is not the filesystem (stdio, clocks, random, sockets) comes from
//! wasmtime-wasi unchanged, and the streams a descriptor hands out are
//! wasmtime-wasi streams. This crate only translates: filesystem semantics
//! live in fs-core, and how a filesystem is assembled (mounts, preopens, a
//! store it persists to) in larder-volume, re-exported here.

mod bindings;
mod calls;
mod convert;
mod lent;
mod p3;
mod preopens;
mod streams;
mod types;
mod vfs;

pub use convert::FsError;
pub use larder_volume::{
    default_config, host_memory, BuildError, Mount, Preopen, SyncMode, Volume, VolumeBuilder,
};
pub use lent::LentStore;
pub use vfs::Vfs;

use wasmtime::component::{HasData, Linker, ResourceTable};

/// What the filesystem bindings need from a store's data.
pub struct VfsCtxView<'a> {
    pub vfs: &'a Vfs,
    pub table: &'a mut ResourceTable,
}

/// Implemented by a store's data type to give the bindings the shared
/// filesystem and the store's resource table.
pub trait VfsView: Send {
    fn vfs(&mut self) -> VfsCtxView<'_>;
}

/// A ready-made store data type: a WASI context, the store's resource
/// table and the shared filesystem. Embedders with their own store data
/// implement [`VfsView`] (and `WasiView`) on it instead.
pub struct VfsState {
    pub wasi: wasmtime_wasi::WasiCtx,
    pub table: ResourceTable,
    pub vfs: std::sync::Arc<Vfs>,
}

impl VfsState {
    pub fn new(wasi: wasmtime_wasi::WasiCtx, vfs: std::sync::Arc<Vfs>) -> Self {
        VfsState {
            wasi,
            table: ResourceTable::new(),
            vfs,
        }
    }
}

impl wasmtime_wasi::WasiView for VfsState {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl VfsView for VfsState {
    fn vfs(&mut self) -> VfsCtxView<'_> {
        VfsCtxView {
            vfs: &self.vfs,
            table: &mut self.table,
        }
    }
}

/// What the host functions work with: the view, and where long calls run
/// (the only difference between the sync and async linkers).
pub(crate) struct Ctx<'a> {
    pub vfs: &'a Vfs,
    pub table: &'a mut ResourceTable,
    pub calls: calls::Calls,
}

fn inline<T: VfsView>(t: &mut T) -> Ctx<'_> {
    let v = t.vfs();
    Ctx {
        vfs: v.vfs,
        table: v.table,
        calls: calls::Calls::Inline,
    }
}

fn off_worker<T: VfsView>(t: &mut T) -> Ctx<'_> {
    Ctx {
        calls: calls::Calls::OffWorker,
        ..inline(t)
    }
}

pub(crate) struct HasVfs;

impl HasData for HasVfs {
    type Data<'a> = Ctx<'a>;
}

/// Adds all of WASI Preview 2 (sync) to `linker`, with `wasi:filesystem`
/// served by the shared [`Vfs`] instead of the host's filesystem. For
/// embedders that call `instantiate` and `call` (not the `_async` ones).
pub fn add_to_linker_sync<T>(linker: &mut Linker<T>) -> wasmtime::Result<()>
where
    T: VfsView + wasmtime_wasi::WasiView + 'static,
{
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    add_filesystem(linker, inline::<T>)
}

/// Adds all of WASI Preview 2 (async) to `linker`, with `wasi:filesystem`
/// served by the shared [`Vfs`]: for embedders on tokio's multi-thread
/// runtime that use `instantiate_async` and `call_async` (`wasmtime serve`,
/// wasmtime-wasi-http). Calls that may take long (a store round trip, a
/// large copy) leave the executor's worker thread (`block_in_place`), so
/// other instances keep being served meanwhile. On a current-thread
/// runtime they run inline; a `LocalSet` driven by `Runtime::block_on`
/// forbids blocking (tokio panics there), so drive instances from a
/// spawned task or use [`add_to_linker_sync`].
pub fn add_to_linker_async<T>(linker: &mut Linker<T>) -> wasmtime::Result<()>
where
    T: VfsView + wasmtime_wasi::WasiView + 'static,
{
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    add_filesystem(linker, off_worker::<T>)?;
    // WASI 0.3 apps: the rest of 0.3 from wasmtime-wasi, the filesystem ours.
    wasmtime_wasi::p3::cli::add_to_linker(linker)?;
    wasmtime_wasi::p3::clocks::add_to_linker(linker)?;
    wasmtime_wasi::p3::random::add_to_linker(linker)?;
    wasmtime_wasi::p3::sockets::add_to_linker(linker)?;
    p3::add_to_linker(linker, off_worker::<T>)
}

/// The same host functions for both linkers; `ctx` says where long calls run.
fn add_filesystem<T>(linker: &mut Linker<T>, ctx: fn(&mut T) -> Ctx<'_>) -> wasmtime::Result<()>
where
    T: VfsView + 'static,
{
    // Replace wasmtime-wasi's filesystem interfaces with ours.
    linker.allow_shadowing(true);
    bindings::wasi::filesystem0_2_12::types::add_to_linker::<T, HasVfs>(linker, ctx)?;
    bindings::wasi::filesystem0_2_12::preopens::add_to_linker::<T, HasVfs>(linker, ctx)?;
    linker.allow_shadowing(false);
    // For composed apps that keep their own files in a store the host lends.
    lent::add_to_linker::<T, HasVfs>(linker, ctx)?;
    Ok(())
}
