//! `larder serve-http`: `wasmtime serve` for HTTP handlers whose files live
//! in one shared Larder filesystem. Each request gets a fresh instance (as
//! under `wasmtime serve`); every instance, concurrent or later, sees the
//! same files, which outlive the requests and, with --store, the process.

use crate::host::Host;
use crate::run::{parse_env, EnvVar};
use crate::volume::VolumeArgs;
use crate::EXIT_USAGE;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use vfs_host::Vfs;
use wasmtime::Store;
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::WasiHttpView;

#[derive(clap::Args)]
pub struct ServeHttpArgs {
    /// The HTTP handler: a component exporting
    /// wasi:http/incoming-handler@0.2.x (the wasi:http/proxy world).
    app: PathBuf,
    /// Address to listen on (as `wasmtime serve --addr`).
    #[arg(long, default_value = "0.0.0.0:8080", value_name = "ADDR:PORT")]
    addr: SocketAddr,
    #[command(flatten)]
    volume: VolumeArgs,
    /// Set an environment variable for the handler; a bare KEY passes this
    /// process's value on.
    #[arg(long = "env", value_name = "KEY[=VALUE]", value_parser = parse_env)]
    env: Vec<EnvVar>,
}

fn usage(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("larder serve-http: {msg}");
    ExitCode::from(EXIT_USAGE)
}

/// What every request's instance is made from.
struct Service {
    pre: ProxyPre<Host>,
    vfs: Arc<Vfs>,
    env: Vec<(String, String)>,
}

pub fn main(args: ServeHttpArgs) -> ExitCode {
    let (engine, component) = match crate::host::load(&args.app) {
        Ok(loaded) => loaded,
        Err(e) => return usage(e),
    };
    let handles = component
        .component_type()
        .exports(&engine)
        .any(|(name, _)| name.starts_with("wasi:http/incoming-handler@0.2"));
    if !handles {
        return usage(format_args!(
            "{} does not export wasi:http/incoming-handler@0.2.x, so it is not an HTTP \
             handler (the wasi:http/proxy world); run command components with `larder run`",
            args.app.display()
        ));
    }
    let vfs = match args.volume.open(&args.app, &component) {
        Ok(vfs) => vfs,
        Err(e) => return usage(e),
    };
    let pre = crate::host::linker(&engine)
        .and_then(|l| l.instantiate_pre(&component))
        .and_then(ProxyPre::new);
    let pre = match pre {
        Ok(pre) => pre,
        Err(e) => {
            return usage(format_args!(
                "{} cannot be served: {e:#}",
                args.app.display()
            ))
        }
    };
    let service = Arc::new(Service {
        pre,
        vfs: vfs.clone(),
        env: args
            .env
            .into_iter()
            .filter_map(|EnvVar(k, v)| Some((k, v?)))
            .collect(),
    });
    let runtime = match crate::host::runtime(1) {
        Ok(r) => r,
        Err(e) => return usage(format_args!("cannot start: {e}")),
    };
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        // Tests and scripts read the port from this line (for :0).
        eprintln!("larder serve-http: serving HTTP on http://{local}/");
        accept(listener, service, crate::serve::shutdown()).await;
        Ok::<(), String>(())
    });
    if let Err(e) = result {
        return usage(e);
    }
    // What the requests wrote is in the filesystem, and goes to the store
    // now.
    drop(runtime);
    if let Err(e) = crate::volume::save(&vfs, "larder serve-http") {
        eprintln!("larder serve-http: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!("larder serve-http: stopped");
    ExitCode::SUCCESS
}

/// How long requests in flight at shutdown may take to finish.
const GRACE: Duration = Duration::from_secs(30);

/// Serves every connection on a task of its own (HTTP/1.1, kept alive)
/// until `stop`; then lets the requests in flight finish (idle connections
/// close at once), for up to [`GRACE`].
async fn accept(
    listener: tokio::net::TcpListener,
    service: Arc<Service>,
    stop: impl std::future::Future,
) {
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let client = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => client,
                // Out of descriptors and the like: this connection is
                // lost, the server goes on.
                Err(e) => {
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let service = service.clone();
        let served = http1::Builder::new().keep_alive(true).serve_connection(
            TokioIo::new(client),
            hyper::service::service_fn(move |req| {
                let service = service.clone();
                async move { Ok::<_, Infallible>(service.handle(req).await) }
            }),
        );
        let served = graceful.watch(served);
        tokio::spawn(async move {
            if let Err(e) = served.await {
                tracing::debug!("connection: {e}");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!(
            "larder serve-http: requests still running {}s after the stop signal were cut off",
            GRACE.as_secs()
        );
    }
}

impl Service {
    /// One request, on a fresh instance; a handler that traps or answers
    /// nothing gets the client a 500 (as under `wasmtime serve`).
    async fn handle(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<HyperOutgoingBody> {
        match self.instance_handles(req).await {
            Ok(resp) => resp,
            Err(e) => {
                eprintln!("larder serve-http: {e:?}");
                let body = Full::new(Bytes::from_static(b"500 Internal Server Error\n"))
                    .map_err(|never: Infallible| match never {})
                    .boxed_unsync();
                let mut resp = hyper::Response::new(body);
                *resp.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
                resp
            }
        }
    }

    async fn instance_handles(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> wasmtime::Result<hyper::Response<HyperOutgoingBody>> {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdio().envs(&self.env);
        let mut store = Store::new(self.pre.engine(), Host::new(wasi.build(), self.vfs.clone()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let out = store.data_mut().http().new_response_outparam(tx)?;
        let pre = self.pre.clone();
        // On a task of its own: the handler may go on (streaming the body)
        // after it has set the response.
        let task = tokio::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        });
        match rx.await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(code)) => Err(wasmtime::format_err!("the handler failed: {code:?}")),
            // The handler ended (or trapped) without setting a response.
            Err(_) => match task.await {
                Ok(Ok(())) => Err(wasmtime::format_err!(
                    "the handler returned without setting a response"
                )),
                Ok(Err(e)) => Err(e.context("the handler failed")),
                Err(e) => Err(wasmtime::format_err!("the handler's task failed: {e}")),
            },
        }
    }
}
