//! The run bridge (`run-bridge` in wit/larder.wit): placed after a command
//! app whose adapter persists its files, it exports the app's
//! `wasi:cli/run`, calls the app's, then the adapter's last sync, so an
//! app returning from `main` leaves nothing behind. Three instructions of
//! core wasm, generated here rather than built.

use anyhow::{Context, Result};
use wasm_encoder::{
    CodeSection, EntityType, ExportKind, ExportSection, Function, FunctionSection, ImportSection,
    Module, TypeSection, ValType,
};

/// The bridge's imports: the app's `run` (through this stand-in) and the
/// adapter's last sync.
pub const APP_RUN: &str = "larder:vfs/app-run@0.1.0";
pub const PERSIST: &str = "larder:vfs/persist@0.1.0";
/// What it exports (under the name of the app's own version).
pub const RUN: &str = "wasi:cli/run@0.2.12";

pub fn component() -> Result<Vec<u8>> {
    // `func() -> result` is `() -> i32` in core wasm: 0 ok, 1 error.
    let mut types = TypeSection::new();
    types.ty().function([], [ValType::I32]);
    let mut imports = ImportSection::new();
    imports.import(APP_RUN, "run", EntityType::Function(0));
    imports.import(PERSIST, "flush", EntityType::Function(0));
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    let mut exports = ExportSection::new();
    exports.export(&format!("{RUN}#run"), ExportKind::Func, 2);
    let mut code = CodeSection::new();
    let mut f = Function::new([]);
    // Failure if either failed; the sync runs after a failed run too.
    f.instructions().call(0).call(1).i32_or().end();
    code.function(&f);
    let mut module = Module::new();
    module
        .section(&types)
        .section(&imports)
        .section(&funcs)
        .section(&exports)
        .section(&code);
    let module = module.finish();
    let (resolve, world) = crate::bundle::world("run-bridge")?;
    crate::bundle::component_of(module, &resolve, world).context("encoding the run bridge")
}
