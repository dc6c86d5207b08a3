//! The empty filesystem plugged into the S3 adapter's own libc: under
//! wasmtime it offers no preopens (what a libc asks first), rather than
//! trapping, so file code linked into the adapter fails softly if reached.

use wasmtime::component::{Component, Linker, ResourceAny};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

struct Host {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

#[test]
fn it_offers_no_directories() {
    let bytes = larder_compose::no_filesystem().unwrap();
    let engine = Engine::new(Config::new().wasm_component_model(true)).unwrap();
    let component = Component::new(&engine, &bytes).unwrap();
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    let mut store = Store::new(
        &engine,
        Host {
            ctx: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        },
    );
    let instance = linker.instantiate(&mut store, &component).unwrap();
    let preopens = instance
        .get_export_index(&mut store, None, "wasi:filesystem/preopens@0.2.12")
        .expect("exports preopens");
    let get = instance
        .get_export_index(&mut store, Some(&preopens), "get-directories")
        .expect("exports get-directories");
    let get = instance
        .get_typed_func::<(), (Vec<(ResourceAny, String)>,)>(&mut store, get)
        .unwrap();
    let (dirs,) = get.call(&mut store, ()).unwrap();
    assert!(dirs.is_empty());
    // Every function of wasi:filesystem/types is there for libc to link.
    let types = instance
        .get_export_index(&mut store, None, "wasi:filesystem/types@0.2.12")
        .expect("exports types");
    for f in ["filesystem-error-code", "[method]descriptor.open-at"] {
        assert!(
            instance
                .get_export_index(&mut store, Some(&types), f)
                .is_some(),
            "{f}"
        );
    }
}
