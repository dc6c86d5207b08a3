//! vfs-host: `wasi:filesystem` for wasmtime embedders, backed by fs-core.
//!
//! Many `Store`s, on many threads, share one [`Vfs`] (an `Arc`). Everything
//! that is not the filesystem (stdio, clocks, random, sockets) comes from
//! wasmtime-wasi unchanged, and the streams a descriptor hands out are
//! wasmtime-wasi streams. This crate only translates: filesystem semantics
//! live in fs-core.

mod bindings;
mod convert;
mod preopens;
mod streams;
mod types;
mod vfs;

pub use convert::FsError;
pub use vfs::{Mount, MountError, Vfs, VfsBuilder};

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

struct HasVfs;

impl HasData for HasVfs {
    type Data<'a> = VfsCtxView<'a>;
}

/// Adds all of WASI Preview 2 (sync) to `linker`, with `wasi:filesystem`
/// served by the shared [`Vfs`] instead of the host's filesystem.
pub fn add_to_linker_sync<T>(linker: &mut Linker<T>) -> wasmtime::Result<()>
where
    T: VfsView + wasmtime_wasi::WasiView + 'static,
{
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    // Replace wasmtime-wasi's filesystem interfaces with ours.
    linker.allow_shadowing(true);
    bindings::wasi::filesystem::types::add_to_linker::<T, HasVfs>(linker, T::vfs)?;
    bindings::wasi::filesystem::preopens::add_to_linker::<T, HasVfs>(linker, T::vfs)?;
    linker.allow_shadowing(false);
    Ok(())
}
