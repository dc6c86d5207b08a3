//! `wasi:filesystem/preopens`: fresh descriptors for the configured preopens.

use crate::bindings::wasi::filesystem::preopens;
use crate::Ctx;
use wasmtime::component::Resource;

impl preopens::Host for Ctx<'_> {
    fn get_directories(
        &mut self,
    ) -> wasmtime::Result<Vec<(Resource<fs_core::Descriptor>, String)>> {
        let dirs = self
            .vfs
            .volume()
            .open_preopens()
            .map_err(|e| wasmtime::format_err!("opening preopens: {e}"))?;
        dirs.into_iter()
            .map(|(d, name)| Ok((self.table.push(d)?, name)))
            .collect()
    }
}
