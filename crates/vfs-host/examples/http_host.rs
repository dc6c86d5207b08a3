//! An async HTTP host, as an edge runtime embeds wasmtime: every request to
//! a `wasi:http/proxy` component gets a fresh instance, and all instances
//! share one Larder filesystem, so what a request writes is there for the
//! next one (and, with `--store DIR`, for the next run of the host).
//!
//!     cargo run -p vfs-host --example http_host -- app.wasm \
//!         [--mount GUEST_DIR=HOST_DIR]... [--store DIR]
//!
//! then `curl http://127.0.0.1:8080/...`. `larder serve-http` is the same
//! host with every flag; `just example-http` runs this one with the
//! edge-http example service.

use hyper::server::conn::http1;
use std::sync::Arc;
use vfs_host::{SyncMode, Vfs, VfsCtxView, VfsView, VolumeBuilder};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// One request's store data: WASI, wasi:http, and the shared filesystem.
struct Request {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    vfs: Arc<Vfs>,
}

impl WasiView for Request {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl VfsView for Request {
    fn vfs(&mut self) -> VfsCtxView<'_> {
        VfsCtxView {
            vfs: &self.vfs,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Request {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: wasmtime_wasi_http::default_hooks(),
        }
    }
}

#[tokio::main]
async fn main() -> wasmtime::Result<()> {
    let usage = "usage: http_host APP.wasm [--mount GUEST_DIR=HOST_DIR]... [--store DIR]";
    let mut args = std::env::args().skip(1);
    let app = args.next().ok_or(wasmtime::format_err!("{usage}"))?;

    // The filesystem every instance shares: the whole tree is the preopen
    // `/`, host directories are copied in, and with a store each written
    // file goes there when closed (and is restored at the next start).
    let mut volume = VolumeBuilder::new().preopen("/", "/", false);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(wasmtime::format_err!("{usage}"))?;
        volume = match flag.as_str() {
            "--mount" => volume.mount(vfs_host::Mount::parse(&value)?),
            "--store" => {
                let store = Arc::new(larder_sync::LocalDir::open(&value)?);
                volume.store(store, "", SyncMode::OnClose)
            }
            _ => wasmtime::bail!("{usage}"),
        };
    }
    let vfs = Arc::new(Vfs::new(
        volume.build().map_err(|e| wasmtime::format_err!("{e}"))?,
    ));

    let engine = Engine::default();
    let component = Component::from_file(&engine, &app)?;
    let mut linker = Linker::new(&engine);
    // WASI with Larder's filesystem (async: long file calls leave the
    // executor's worker), plus wasi:http.
    vfs_host::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    let pre = ProxyPre::new(linker.instantiate_pre(&component)?)?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    println!("serving {app} on http://127.0.0.1:8080/");
    loop {
        let (client, _) = listener.accept().await?;
        let (pre, vfs) = (pre.clone(), vfs.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let (pre, vfs) = (pre.clone(), vfs.clone());
                async move { handle(pre, vfs, req).await }
            });
            let conn = http1::Builder::new().serve_connection(TokioIo::new(client), service);
            if let Err(e) = conn.await {
                eprintln!("connection: {e}");
            }
        });
    }
}

/// One request on a fresh instance.
async fn handle(
    pre: ProxyPre<Request>,
    vfs: Arc<Vfs>,
    req: hyper::Request<hyper::body::Incoming>,
) -> wasmtime::Result<hyper::Response<HyperOutgoingBody>> {
    let data = Request {
        wasi: WasiCtx::builder().inherit_stdio().build(),
        http: WasiHttpCtx::new(),
        table: ResourceTable::new(),
        vfs,
    };
    let mut store = Store::new(pre.engine(), data);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let req = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, req)?;
    let out = store.data_mut().http().new_response_outparam(tx)?;
    // The handler may keep writing the body after it has sent the head.
    let task = tokio::spawn(async move {
        let proxy = pre.instantiate_async(&mut store).await?;
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, req, out)
            .await
    });
    match rx.await {
        Ok(resp) => Ok(resp?),
        Err(_) => match task.await? {
            Ok(()) => wasmtime::bail!("the handler set no response"),
            Err(e) => Err(e),
        },
    }
}
