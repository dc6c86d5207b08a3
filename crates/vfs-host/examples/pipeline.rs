//! A two-stage pipeline in one process: `ingest.wasm` writes batches into
//! the shared filesystem, then `process.wasm` reads them and writes a
//! summary, which the host reads back. Neither component touches a host
//! directory. Run with `just example-pipeline`.

use std::sync::Arc;
use vfs_host::{Vfs, VfsState, VolumeBuilder};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::WasiCtx;

fn main() -> wasmtime::Result<()> {
    let guests = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/guests/target/wasm32-wasip2/release");
    let engine = Engine::default();
    let mut linker = Linker::<VfsState>::new(&engine);
    vfs_host::add_to_linker_sync(&mut linker)?;
    let volume = VolumeBuilder::new()
        .build()
        .map_err(|e| wasmtime::format_err!("{e}"))?;
    let vfs = Arc::new(Vfs::new(volume));

    for (stage, args) in [
        ("ingest", vec!["ingest", "20"]),
        ("process", vec!["process"]),
    ] {
        let component = Component::from_file(&engine, guests.join(format!("{stage}.wasm")))?;
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdio().args(&args);
        let mut store = Store::new(&engine, VfsState::new(wasi.build(), vfs.clone()));
        let cmd = Command::instantiate(&mut store, &component, &linker)?;
        if cmd.wasi_cli_run().call_run(&mut store)?.is_err() {
            return Err(wasmtime::format_err!("{stage} failed"));
        }
    }

    use fs_core::{DescriptorFlags as DF, OpenFlags as OF, PathFlags as PF};
    let root = vfs
        .fs()
        .root(DF::READ)
        .map_err(|e| wasmtime::format_err!("{e}"))?;
    let f = root
        .open_at(PF::empty(), "data/summary.txt", OF::empty(), DF::READ)
        .map_err(|e| wasmtime::format_err!("{e}"))?;
    let mut buf = vec![0; f.stat().size as usize];
    f.read(&mut buf, 0)
        .map_err(|e| wasmtime::format_err!("{e}"))?;
    print!(
        "host reads /data/summary.txt: {}",
        String::from_utf8_lossy(&buf)
    );
    Ok(())
}
