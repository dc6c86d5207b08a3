//! `wasi:filesystem/preopens`: fresh descriptors for the configured preopens.

use crate::bindings::wasi::filesystem0_2_12::preopens;
use crate::Ctx;
use wasmtime::component::Resource;

impl preopens::Host for Ctx<'_> {
    fn get_directories(
        &mut self,
    ) -> wasmtime::Result<Vec<(Resource<fs_core::Descriptor>, String)>> {
        self.preopened()
    }
}

impl Ctx<'_> {
    /// Fresh descriptors for the preopens, in the guest's table (0.2's and
    /// 0.3's alike).
    pub(crate) fn preopened(
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
