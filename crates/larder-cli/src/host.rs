//! What `larder run` and `larder serve-http` give an app: WASI 0.2 from
//! wasmtime-wasi, `wasi:filesystem` from the shared Larder filesystem, and
//! `wasi:http` (outgoing requests; incoming ones under serve-http) from
//! wasmtime-wasi-http, all on the async linker.

use std::sync::Arc;
use vfs_host::{Vfs, VfsCtxView, VfsView};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::Engine;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// One instance's store data.
pub struct Host {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    vfs: Arc<Vfs>,
}

impl Host {
    pub fn new(wasi: WasiCtx, vfs: Arc<Vfs>) -> Host {
        Host {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            vfs,
        }
    }
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl VfsView for Host {
    fn vfs(&mut self) -> VfsCtxView<'_> {
        VfsCtxView {
            vfs: &self.vfs,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: wasmtime_wasi_http::default_hooks(),
        }
    }
}

/// WASI 0.2 and 0.3 with Larder's filesystem, plus `wasi:http` (as
/// `wasmtime run -S http` and `wasmtime serve` give it).
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<Host>> {
    let mut linker = Linker::new(engine);
    vfs_host::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// An engine that caches compiled code where the wasmtime CLI does (its
/// config file, else `~/.cache/wasmtime`), so an app run again starts
/// without being compiled again; without a usable cache, it compiles.
fn engine() -> Engine {
    let mut config = wasmtime::Config::new();
    match wasmtime::Cache::from_file(None) {
        Ok(cache) => {
            config.cache(Some(cache));
        }
        Err(e) => tracing::debug!(error = %e, "no compilation cache"),
    }
    Engine::new(&config).unwrap_or_default()
}

/// The runtime the apps run on: tokio's multi-thread one, so a long
/// filesystem call leaves its worker (see vfs_host::add_to_linker_async),
/// with at least `workers` worker threads (and one per CPU).
pub fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(cpus))
        .enable_all()
        .build()
}

/// Reads and compiles the component at `app`; the error is a usage message
/// naming what is wrong with it.
pub fn load(app: &std::path::Path) -> Result<(Engine, wasmtime::component::Component), String> {
    let bytes =
        crate::read_input(app).map_err(|e| format!("cannot read {}: {e}", app.display()))?;
    if is_core_module(&bytes) {
        return Err(format!(
            "{} is a core WebAssembly module, not a component; build for wasm32-wasip2 or adapt it with `wasm-tools component new`",
            app.display()
        ));
    }
    let engine = engine();
    let component = wasmtime::component::Component::new(&engine, &bytes)
        .map_err(|e| format!("{} is not a valid component: {e:#}", app.display()))?;
    Ok((engine, component))
}

/// A core module starts with the same magic as a component but a different
/// version/layer field.
fn is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0]
}
