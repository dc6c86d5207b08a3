//! `larder serve-http`: `wasmtime serve` for HTTP handlers whose files live
//! in one shared Larder filesystem. Each request gets a fresh instance;
//! every instance, concurrent or later, sees the same files, which outlive
//! the requests and, with --store, the process. WASI 0.2 handlers
//! (`wasi:http/incoming-handler`) are called directly; WASI 0.3 ones
//! (`wasi:http/handler`, async) through wasmtime-wasi-http's
//! `ProxyHandler`, whose worker keeps the instance's event loop running
//! while the response body streams.

use crate::host::Host;
use crate::run::{parse_env, EnvVar};
use crate::volume::VolumeArgs;
use crate::EXIT_USAGE;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;
use std::time::Instant;
use vfs_host::Vfs;
use wasmtime::Store;
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, Proxy, ProxyHandler, ShouldAccept, WorkerExpiration, WorkerState,
    WorkerStatus,
};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::WasiHttpView;

#[derive(clap::Args)]
pub struct ServeHttpArgs {
    /// The HTTP handler: a component exporting
    /// wasi:http/incoming-handler@0.2.x (the wasi:http/proxy world) or
    /// wasi:http/handler@0.3.x (the service world).
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
struct Instances {
    pre: wasmtime::component::InstancePre<Host>,
    vfs: Arc<Vfs>,
    env: Vec<(String, String)>,
}

impl Instances {
    fn store(&self) -> Store<Host> {
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdio().envs(&self.env);
        Store::new(self.pre.engine(), Host::new(wasi.build(), self.vfs.clone()))
    }
}

/// The handler, by WASI version.
enum Service {
    P2(Instances, ProxyPre<Host>),
    P3(ProxyHandler<Services>),
}

pub fn main(args: ServeHttpArgs) -> ExitCode {
    let (engine, component) = match crate::host::load(&args.app) {
        Ok(loaded) => loaded,
        Err(e) => return usage(e),
    };
    let exports = |prefix: &str| {
        component
            .component_type()
            .exports(&engine)
            .any(|(name, _)| name.starts_with(prefix))
    };
    let p3 = exports("wasi:http/handler@0.3");
    if !p3 && !exports("wasi:http/incoming-handler@0.2") {
        return usage(format_args!(
            "{} exports neither wasi:http/incoming-handler@0.2.x nor wasi:http/handler@0.3.x, \
             so it is not an HTTP handler; run command components with `larder run`",
            args.app.display()
        ));
    }
    let per_request = args.volume.stores_each_request();
    let vfs = match args.volume.open(&args.app, &component) {
        Ok(vfs) => vfs,
        Err(e) => return usage(e),
    };
    let stored = (per_request && vfs.volume().mirror().is_some()).then(|| vfs.clone());
    let cannot = |e: wasmtime::Error| {
        usage(format_args!(
            "{} cannot be served: {e:#}",
            args.app.display()
        ))
    };
    let pre = match crate::host::linker(&engine).and_then(|l| l.instantiate_pre(&component)) {
        Ok(pre) => pre,
        Err(e) => return cannot(e),
    };
    let instances = Instances {
        pre: pre.clone(),
        vfs: vfs.clone(),
        env: args
            .env
            .into_iter()
            .filter_map(|EnvVar(k, v)| Some((k, v?)))
            .collect(),
    };
    let service = if p3 {
        match ServicePre::new(pre) {
            Ok(service) => Service::P3(ProxyHandler::new(Services { instances, service })),
            Err(e) => return cannot(e),
        }
    } else {
        match ProxyPre::new(pre) {
            Ok(proxy) => Service::P2(instances, proxy),
            Err(e) => return cannot(e),
        }
    };
    let service = Arc::new(Server { service, stored });
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
    service: Arc<Server>,
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
        // A response's head and body may be written apart (the body
        // streams from the instance): without this, Nagle's algorithm
        // holds the second write for the client's delayed ACK (40 ms).
        if let Err(e) = client.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY: {e}");
        }
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

/// The handler, and the filesystem whose store each response waits for
/// (none: responses do not wait).
struct Server {
    service: Service,
    stored: Option<Arc<Vfs>>,
}

/// Makes every change so far durable in the store, off the async threads.
async fn store_changes(vfs: Arc<Vfs>) -> Result<(), String> {
    let synced = tokio::task::spawn_blocking(move || {
        let volume = vfs.volume();
        match volume.mirror() {
            Some(m) => m.sync(volume.fs()).map(|_| ()).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    });
    synced.await.map_err(|e| e.to_string())?
}

/// Answers with `status` and `text`.
fn plain(status: hyper::StatusCode, text: &'static str) -> hyper::Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from_static(text.as_bytes()))
        .map_err(|never: Infallible| match never {})
        .boxed_unsync();
    let mut resp = hyper::Response::new(body);
    *resp.status_mut() = status;
    resp
}

impl Server {
    /// One request: the handler's answer, sent once what the request
    /// changed is in the store (if responses wait for it): the head
    /// after a sync, and the body's end after another, so a client that
    /// has the whole response knows the request's changes are durable.
    /// One that cannot be stored is a 503, or a body cut short.
    async fn handle(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<HyperOutgoingBody> {
        let resp = self.service.handle(req).await;
        let Some(vfs) = &self.stored else {
            return resp;
        };
        if let Err(e) = store_changes(vfs.clone()).await {
            eprintln!("larder serve-http: the request's changes are not in the store: {e}");
            return plain(
                hyper::StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Unavailable: the request's changes could not be stored\n",
            );
        }
        let vfs = vfs.clone();
        resp.map(|body| {
            StoredAtEnd {
                body,
                vfs: Some(vfs),
                syncing: None,
            }
            .boxed_unsync()
        })
    }
}

/// A response body whose end waits for the store to hold what the
/// request changed while the body streamed.
struct StoredAtEnd {
    body: HyperOutgoingBody,
    /// `None` once the end is stored.
    vfs: Option<Arc<Vfs>>,
    syncing: Option<Syncing>,
}

/// A sync under way, for [`StoredAtEnd`].
type Syncing = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

impl hyper::body::Body for StoredAtEnd {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        if self.syncing.is_none() {
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(None) => match self.vfs.take() {
                    Some(vfs) => self.syncing = Some(Box::pin(store_changes(vfs))),
                    None => return Poll::Ready(None),
                },
                other => return other,
            }
        }
        let syncing = self.syncing.as_mut().expect("set above");
        match syncing.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                self.syncing = None;
                Poll::Ready(result.err().map(|e| {
                    eprintln!("larder serve-http: the request's changes are not in the store: {e}");
                    Err(wasmtime_wasi_http::Error::InternalError(Some(format!(
                        "the request's changes could not be stored: {e}"
                    ))))
                }))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // The end is reported only once the store has the changes.
        self.vfs.is_none() && self.syncing.is_none() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

impl Service {
    /// One request, on a fresh instance; a handler that traps or answers
    /// nothing gets the client a 500 (as under `wasmtime serve`).
    async fn handle(
        &self,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<HyperOutgoingBody> {
        let answered = match self {
            Service::P2(instances, pre) => instances.p2_handles(pre, req).await,
            Service::P3(handler) => {
                let req = req.map(|body| body.map_err(Into::into).boxed_unsync());
                let sent = Arc::new(Sent::default());
                match handler.handle(sent.clone(), req).await {
                    Ok(resp) => Ok(resp.map(|body| Tracked { body, sent }.boxed_unsync())),
                    Err(e) => {
                        sent.finish();
                        Err(e)
                    }
                }
            }
        };
        match answered {
            Ok(resp) => resp,
            Err(e) => {
                eprintln!("larder serve-http: {e:?}");
                plain(
                    hyper::StatusCode::INTERNAL_SERVER_ERROR,
                    "500 Internal Server Error\n",
                )
            }
        }
    }
}

impl Instances {
    async fn p2_handles(
        &self,
        pre: &ProxyPre<Host>,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> wasmtime::Result<hyper::Response<HyperOutgoingBody>> {
        let mut store = self.store();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let out = store.data_mut().http().new_response_outparam(tx)?;
        let pre = pre.clone();
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

/// A WASI 0.3 handler's instances, its exports checked once.
struct Services {
    instances: Instances,
    service: ServicePre<Host>,
}

/// WASI 0.3 handlers: a fresh instance per request, as for 0.2 (the
/// filesystem is shared either way; instances are not reused, so no
/// request sees another's memory).
impl HandlerState for Services {
    type StoreData = Host;
    type WorkerExpiration = WhenIdle;
    type WorkerState = OneRequest;

    async fn instantiate(&self) -> wasmtime::Result<Instance<Host, WhenIdle, OneRequest>> {
        let mut store = self.instances.store();
        let proxy = Proxy::P3(self.service.instantiate_async(&mut store).await?);
        let request = Arc::new(Mutex::new(None));
        Ok(Instance {
            store,
            proxy,
            view: <Host as WasiHttpView>::http,
            expiration: WhenIdle {
                request: request.clone(),
                unused: None,
            },
            state: OneRequest { request },
        })
    }
}

/// Whether a 0.3 response has been sent: its body may stream from the
/// instance (a file's `read-via-stream`, say) after the handler returned,
/// so the instance lives until hyper is done with the body.
#[derive(Default)]
struct Sent(Mutex<(bool, Option<std::task::Waker>)>);

impl Sent {
    fn finish(&self) {
        let mut s = self.0.lock().unwrap();
        s.0 = true;
        if let Some(w) = s.1.take() {
            w.wake();
        }
    }

    fn poll(&self, cx: &Context<'_>) -> Poll<()> {
        let mut s = self.0.lock().unwrap();
        if s.0 {
            Poll::Ready(())
        } else {
            s.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// A response body that says when hyper is done with it (sent, or the
/// client went away).
struct Tracked {
    body: HyperOutgoingBody,
    sent: Arc<Sent>,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.sent.finish();
    }
}

/// The request a worker took, shared with its expiration.
type Taken = Arc<Mutex<Option<Arc<Sent>>>>;

/// A worker takes one request.
struct OneRequest {
    request: Taken,
}

impl WorkerState for OneRequest {
    type StoreData = Host;
    type RequestData = Arc<Sent>;

    /// `No` rather than `Never` after the first: a worker told `Never`
    /// ends (dropping its store) as soon as the handler has answered, but
    /// the body may still be streaming out of the store's event loop; it
    /// ends when its expiration says the body is sent.
    fn should_accept_request(&self, _concurrent: usize, total: usize) -> ShouldAccept {
        if total == 0 {
            ShouldAccept::Yes
        } else {
            ShouldAccept::No
        }
    }

    /// No deadline, as for 0.2 (see README's Limits).
    fn on_request_start(
        &self,
        _: wasmtime::StoreContextMut<'_, Host>,
        sent: Arc<Sent>,
        _: wasmtime::component::TaskGroupId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        *self.request.lock().unwrap() = Some(sent);
        Box::pin(std::future::pending())
    }

    fn drop(&self, store: Store<Host>, result: wasmtime::Result<()>) {
        if let Err(e) = result {
            eprintln!("larder serve-http: {e:?}");
        }
        drop(store);
    }
}

/// A worker ends once it is idle and the request it took has been
/// answered and its body sent; one that never got a request, after a
/// while.
struct WhenIdle {
    request: Taken,
    unused: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl WorkerExpiration for WhenIdle {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        state: WorkerStatus,
        _start: Instant,
    ) -> Poll<()> {
        if state != WorkerStatus::Idle {
            return Poll::Pending;
        }
        let taken = self.request.lock().unwrap().clone();
        match taken {
            Some(sent) => sent.poll(cx),
            None => self
                .unused
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_secs(10))))
                .as_mut()
                .poll(cx),
        }
    }
}
