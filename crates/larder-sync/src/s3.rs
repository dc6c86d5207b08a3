//! S3 and S3-compatible servers as the store (aws-sdk-s3). Credentials,
//! region and endpoint come from the standard `AWS_*` environment (and, on
//! the host, config files and profiles); an endpoint URL and path-style
//! addressing serve other servers.
//!
//! The mirror is synchronous like the filesystem it mirrors, so requests
//! are waited for: on the host on a small tokio runtime of the store's own;
//! inside a component over `wasi:http` (aws-smithy-wasm) on wstd's
//! executor, which is what lets a composed app reach S3 with no help from
//! its runtime beyond `wasi:http`.

use crate::store::{
    buffer, Cond, ErrorKind, Listed, Metadata, ObjectInfo, ObjectStore, Part, Piece, Progress,
    Result, Source, StoreError,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, MetadataDirective};
use aws_sdk_s3::Client;
use futures::stream::{self, StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Bodies above this go up in parts, several at once.
const MULTIPART_THRESHOLD: usize = 16 << 20;
const PART_SIZE: usize = 8 << 20;
/// Requests in flight at once for listings (one HEAD per object, for its
/// metadata) and for parts.
const PARALLEL: usize = 32;
const PARALLEL_PARTS: usize = 4;
/// S3's limits: parts per upload, and bytes per object.
const MAX_PARTS: u64 = 10_000;
const MAX_OBJECT: u64 = 5 << 40;

/// One part of a multipart upload.
enum Up {
    /// Bytes of the object's current version (UploadPartCopy).
    Copy(Range<u64>),
    Bytes(Vec<u8>),
    /// Bytes of a source, read when the part is sent (a few at a time, so
    /// a large file is never in memory whole).
    Read(Arc<dyn Source>, Range<u64>),
}

/// Where the store is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    /// Key prefix the filesystem lives under: empty, or ending in `/`.
    pub prefix: String,
    /// For S3-compatible servers, e.g. `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    /// Overrides `AWS_REGION` / the profile's region.
    pub region: Option<String>,
    /// Bucket in the path, not the host name (most non-AWS servers).
    pub path_style: bool,
    /// How long one request may take before it counts as failed (and the
    /// mirror retries it); default 60 s.
    pub attempt_timeout: Option<Duration>,
}

impl S3Config {
    /// `s3://bucket/prefix[?endpoint=URL&region=R&path-style=BOOL&timeout=SECS]`.
    /// Path-style defaults to on with an explicit endpoint (servers other
    /// than AWS mostly want it). Errors name what is wrong, not the URL.
    pub fn from_url(url: &str) -> std::result::Result<S3Config, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or("expected s3://bucket/prefix")?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.is_empty() {
            return Err("no bucket (expected s3://bucket/prefix)".into());
        }
        let mut prefix = prefix.trim_matches('/').to_string();
        if !prefix.is_empty() {
            prefix.push('/');
        }
        let mut config = S3Config {
            bucket: bucket.to_string(),
            prefix,
            ..Default::default()
        };
        let mut path_style = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "endpoint" if v.starts_with("http://") || v.starts_with("https://") => {
                    config.endpoint = Some(v.to_string())
                }
                "endpoint" => return Err(format!("endpoint {v:?} is not an http(s) URL")),
                "region" if !v.is_empty() => config.region = Some(v.to_string()),
                "region" => return Err("region is empty".into()),
                "path-style" => {
                    path_style = Some(match v {
                        "true" | "1" | "" => true,
                        "false" | "0" => false,
                        _ => return Err("path-style is true or false".into()),
                    })
                }
                "timeout" => match v.parse::<f64>() {
                    Ok(secs) if secs > 0.0 && secs.is_finite() && secs <= 86_400.0 => {
                        config.attempt_timeout = Some(Duration::from_secs_f64(secs))
                    }
                    _ => return Err(format!("timeout {v:?}: expected seconds, above 0")),
                },
                _ => {
                    return Err(format!(
                        "unknown option {k:?} (endpoint, region, path-style, timeout)"
                    ))
                }
            }
        }
        config.path_style = path_style.unwrap_or(config.endpoint.is_some());
        Ok(config)
    }
}

pub struct S3Store {
    inner: Inner,
    rt: Runtime,
    requests: Arc<AtomicU64>,
}

/// Counts the HTTP requests the SDK sends, retries included (for figures:
/// the bench prints them).
#[derive(Debug)]
struct CountRequests(Arc<AtomicU64>);

impl aws_sdk_s3::config::Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "larder-count-requests"
    }

    fn read_before_transmit(
        &self,
        _: &aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_s3::config::RuntimeComponents,
        _: &mut aws_sdk_s3::config::ConfigBag,
    ) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// What requests need; cheap to clone into each request's task.
#[derive(Clone)]
struct Inner {
    client: Client,
    bucket: String,
    conds: Conditions,
}

/// The request a write goes up by; each honours conditions on its own
/// (moto, for one, honours them on PutObject but ignores `If-Match` on
/// CompleteMultipartUpload and both on CopyObject).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    Put,
    Complete,
    Copy,
}

/// Which conditional writes the server honours, probed when the store
/// opens. Where one is not honoured (ignored, or refused), the store sends
/// the request without it and checks the object's ETag with a HEAD just
/// before, which leaves a window of one round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conditions {
    pub put_if_none_match: bool,
    pub put_if_match: bool,
    pub complete_if_none_match: bool,
    pub complete_if_match: bool,
    pub copy_if_none_match: bool,
    pub copy_if_match: bool,
}

impl Conditions {
    const ALL: Conditions = Conditions {
        put_if_none_match: true,
        put_if_match: true,
        complete_if_none_match: true,
        complete_if_match: true,
        copy_if_none_match: true,
        copy_if_match: true,
    };

    fn honours(&self, via: Via, cond: &Cond) -> bool {
        match (via, cond) {
            (_, Cond::None) => true,
            (Via::Put, Cond::IfNoneMatch) => self.put_if_none_match,
            (Via::Put, Cond::IfMatch(_)) => self.put_if_match,
            (Via::Complete, Cond::IfNoneMatch) => self.complete_if_none_match,
            (Via::Complete, Cond::IfMatch(_)) => self.complete_if_match,
            (Via::Copy, Cond::IfNoneMatch) => self.copy_if_none_match,
            (Via::Copy, Cond::IfMatch(_)) => self.copy_if_match,
        }
    }

    /// The requests not honoured, named as in S3's API.
    pub fn not_honoured(&self) -> Vec<&'static str> {
        [
            (self.put_if_none_match, "PutObject If-None-Match"),
            (self.put_if_match, "PutObject If-Match"),
            (
                self.complete_if_none_match,
                "CompleteMultipartUpload If-None-Match",
            ),
            (self.complete_if_match, "CompleteMultipartUpload If-Match"),
            (self.copy_if_none_match, "CopyObject If-None-Match"),
            (self.copy_if_match, "CopyObject If-Match"),
        ]
        .into_iter()
        .filter(|(honoured, _)| !honoured)
        .map(|(_, name)| name)
        .collect()
    }
}

type HttpResponse = aws_sdk_s3::config::http::HttpResponse;

/// A store error for an SDK error: precondition failures are conflicts;
/// timeouts, dropped connections, throttling and 5xx are worth retrying.
/// Its message is what the AWS CLI would say (the error code and the
/// server's message); the SDK's whole account goes to the debug log.
fn classify<E>(bucket: &str, what: &str, e: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    tracing::debug!("{what}: {}", aws_sdk_s3::error::DisplayErrorContext(&e));
    if no_credentials(&e) {
        return StoreError::new(
            ErrorKind::Permanent,
            "Unable to locate credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
             or a profile (AWS_PROFILE, ~/.aws/credentials), as for the AWS CLI",
        );
    }
    let (kind, msg) = match &e {
        SdkError::TimeoutError(_) => (ErrorKind::Transient, "timed out".to_string()),
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => (
            ErrorKind::Transient,
            format!("cannot reach the server: {}", innermost(&e)),
        ),
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code().unwrap_or("");
            let kind = match (status, code) {
                (412, _) | (_, "PreconditionFailed") => ErrorKind::Conflict,
                // A concurrent conditional write to the same key.
                (409, "ConditionalRequestConflict") => ErrorKind::Conflict,
                (_, "NoSuchBucket") => ErrorKind::Permanent,
                (404, _) | (_, "NoSuchKey" | "NotFound") => ErrorKind::NotFound,
                (429 | 500..=599, _)
                | (_, "SlowDown" | "Throttling" | "RequestTimeout" | "InternalError") => {
                    ErrorKind::Transient
                }
                _ => ErrorKind::Permanent,
            };
            let msg = match (code, se.err().message()) {
                ("NoSuchBucket", _) => {
                    return StoreError::new(
                        kind,
                        format!("NoSuchBucket: the bucket {bucket} does not exist"),
                    )
                }
                ("", _) => format!("HTTP {status}"),
                (code, Some(m)) if !m.is_empty() => format!("{code}: {m}"),
                (code, _) => format!("{code} (HTTP {status})"),
            };
            (kind, msg)
        }
        _ => (ErrorKind::Permanent, innermost(&e)),
    };
    StoreError::at(kind, what, msg)
}

/// Whether the SDK gave up before sending for want of credentials.
fn no_credentials<E, R>(e: &SdkError<E, R>) -> bool
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(c) = s.downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
        {
            return matches!(
                c,
                aws_credential_types::provider::error::CredentialsError::CredentialsNotLoaded(_)
            );
        }
        source = s.source();
    }
    false
}

/// The deepest cause of an error: the one a person can act on (connection
/// refused, a DNS failure), without the layers the SDK wraps it in.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(s) = last.source() {
        last = s;
    }
    last.to_string()
}

/// `bucket/key` for CopyObject, the key percent-encoded.
fn copy_source(bucket: &str, key: &str) -> String {
    let mut s = format!("{bucket}/");
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// `If-Match` / `If-None-Match: *` on a get, a put or a multipart
/// completion (different builder types with the same two setters).
macro_rules! with_cond {
    ($req:expr, $cond:expr) => {
        match $cond {
            Cond::IfMatch(etag) => $req.if_match(etag),
            Cond::IfNoneMatch => $req.if_none_match("*"),
            Cond::None => $req,
        }
    };
}

/// How many of a listing's HEADs are done, of how many.
#[derive(Default)]
struct Counter {
    done: AtomicU64,
    total: AtomicU64,
}

fn meta_map(meta: &Metadata) -> HashMap<String, String> {
    meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Runs requests to completion for the synchronous mirror.
#[cfg(not(target_arch = "wasm32"))]
struct Runtime(tokio::runtime::Runtime);

#[cfg(not(target_arch = "wasm32"))]
impl Runtime {
    fn new() -> Result<Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map(Runtime)
            .map_err(|e| StoreError::new(ErrorKind::Permanent, format!("tokio: {e}")))
    }

    /// Runs `f` and waits for it. The caller may be inside another runtime
    /// (wasmtime-wasi's sync host functions are), where blocking on ours is
    /// refused, so the task is spawned and waited for without tokio.
    fn run<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let task = self.0.spawn(f);
        futures::executor::block_on(task).unwrap_or_else(|e| {
            Err(StoreError::new(
                ErrorKind::Transient,
                format!("S3 request task: {e}"),
            ))
        })
    }

    /// [`Runtime::run`] for HEADs by the many, calling `progress` with
    /// their count every 100 ms meanwhile.
    fn counted<T: Send + 'static, F>(
        &self,
        f: impl FnOnce(Arc<Counter>) -> F,
        progress: &Progress<'_>,
    ) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        let count = Arc::new(Counter::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let task = f(count.clone());
        self.0.spawn(async move {
            let _ = tx.send(task.await);
        });
        let report = || {
            progress(
                count.done.load(Ordering::Relaxed),
                count.total.load(Ordering::Relaxed),
            )
        };
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                // The count at the end too: a quick listing may never see
                // a tick.
                Ok(r) => {
                    report();
                    return r;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => report(),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(StoreError::new(
                        ErrorKind::Transient,
                        "S3 request task ended without an answer",
                    ))
                }
            }
        }
    }

    /// The SDK's configuration from the usual sources (environment,
    /// profiles, instance metadata), as every AWS tool reads them.
    fn shared_config(&self, config: &S3Config) -> Result<aws_sdk_s3::config::Builder> {
        Ok(self.0.block_on(async {
            let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
            if let Some(r) = &config.region {
                loader = loader.region(aws_config::Region::new(r.clone()));
            }
            let shared = loader.load().await;
            let mut b = aws_sdk_s3::config::Builder::from(&shared);
            if shared.region().is_none() {
                b = b.region(aws_sdk_s3::config::Region::new("us-east-1"));
            }
            b
        }))
    }
}

/// Inside a component: one request at a time from the adapter's calls,
/// with wstd's reactor running the SDK's futures (several HEADs or parts
/// at once within a call) over `wasi:http`.
#[cfg(target_arch = "wasm32")]
struct Runtime;

#[cfg(target_arch = "wasm32")]
impl Runtime {
    fn new() -> Result<Runtime> {
        Ok(Runtime)
    }

    fn run<T>(&self, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        wstd::runtime::block_on(f)
    }

    /// No thread to report from: progress is given once, at the end.
    fn counted<T, F>(&self, f: impl FnOnce(Arc<Counter>) -> F, _: &Progress<'_>) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        wstd::runtime::block_on(f(Arc::new(Counter::default())))
    }

    /// The environment is the only source in a sandbox: `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` (or
    /// `AWS_DEFAULT_REGION`), `AWS_ENDPOINT_URL_S3` (or `AWS_ENDPOINT_URL`).
    fn shared_config(&self, config: &S3Config) -> Result<aws_sdk_s3::config::Builder> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let (Some(id), Some(secret)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
        else {
            return Err(StoreError::new(
                ErrorKind::Permanent,
                "no credentials: give the component AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY (e.g. wasmtime run --env AWS_ACCESS_KEY_ID \
                 --env AWS_SECRET_ACCESS_KEY)",
            ));
        };
        let credentials = aws_credential_types::Credentials::new(
            id,
            secret,
            env("AWS_SESSION_TOKEN"),
            None,
            "environment",
        );
        let region = config
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        let mut b = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(region))
            .credentials_provider(credentials)
            .http_client(aws_smithy_wasm::wasi::WasiHttpClientBuilder::new().build())
            .sleep_impl(aws_smithy_wasm::wasi::WasiSleep);
        if let Some(ep) = env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL")) {
            b = b.endpoint_url(ep);
        }
        Ok(b)
    }
}

impl S3Store {
    fn run<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        self.rt.run(f)
    }

    /// The store, its conditional writes probed (see [`Conditions`]): the
    /// probe's writes are also what finds a missing bucket or bad
    /// credentials at once.
    pub fn open(config: &S3Config) -> Result<S3Store> {
        let mut store = S3Store::open_for_reading(config)?;
        let (i, prefix) = (store.inner.clone(), config.prefix.clone());
        store.inner.conds = store.run(async move { i.probe(&prefix).await })?;
        let ignored = store.inner.conds.not_honoured();
        if !ignored.is_empty() {
            tracing::warn!(
                bucket = %store.inner.bucket,
                "the server does not honour {}; Larder checks the ETag with a HEAD just before each such write instead, which leaves a window of one round trip",
                ignored.join(", ")
            );
        }
        Ok(store)
    }

    /// The store for reading only (`larder ls`, `cat`, `export`): nothing
    /// is probed, so nothing is written and read-only credentials work.
    /// Writes through it would send every condition as if honoured.
    pub fn open_for_reading(config: &S3Config) -> Result<S3Store> {
        let rt = Runtime::new()?;
        let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .operation_attempt_timeout(config.attempt_timeout.unwrap_or(Duration::from_secs(60)))
            .build();
        // One attempt per call: the mirror retries, with backoff, and
        // keeps what failed queued.
        let mut b = rt
            .shared_config(config)?
            .force_path_style(config.path_style)
            .timeout_config(timeouts)
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(1));
        if let Some(ep) = &config.endpoint {
            b = b.endpoint_url(ep);
        }
        let requests = Arc::new(AtomicU64::new(0));
        b = b.interceptor(CountRequests(requests.clone()));
        Ok(S3Store {
            inner: Inner {
                client: Client::from_conf(b.build()),
                bucket: config.bucket.clone(),
                conds: Conditions::ALL,
            },
            rt,
            requests,
        })
    }

    /// HTTP requests sent so far (each attempt counts).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Which conditional writes the server honours (see [`Conditions`]).
    pub fn conditions(&self) -> Conditions {
        self.inner.conds
    }
}

impl Inner {
    /// Tries each conditional write on an object of its own that exists
    /// (a condition that must fail, so honoured means refused with 412).
    /// The objects' plain puts are the store's first requests: a missing
    /// bucket or bad credentials fail here. Needs `self.conds` = ALL.
    async fn probe(&self, prefix: &str) -> Result<Conditions> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        // No process ids in a component: a random tag keeps two starts apart.
        let tag = std::hash::BuildHasher::hash_one(
            &std::collections::hash_map::RandomState::new(),
            nanos,
        );
        let keys: Vec<String> = (0..6)
            .map(|n| format!("{prefix}.larder-probe-{tag:016x}-{n}"))
            .collect();
        let none = Metadata::new();
        let created = futures::future::join_all(
            keys.iter()
                .map(|k| self.put(k, b"probe".to_vec(), &none, &Cond::None)),
        )
        .await;
        let outcome = async {
            created.into_iter().collect::<Result<Vec<_>>>()?;
            let wrong = Cond::IfMatch("\"larder-probe-no-such-etag\"".into());
            let one_part = || vec![Up::Bytes(b"probe".to_vec())];
            let (a, b, c, d, e, f) = futures::join!(
                self.put(&keys[0], Vec::new(), &none, &Cond::IfNoneMatch),
                self.put(&keys[1], Vec::new(), &none, &wrong),
                self.put_parts(&keys[2], one_part(), &none, &Cond::IfNoneMatch),
                self.put_parts(&keys[3], one_part(), &none, &wrong),
                self.copy(&keys[4], &keys[4], &none, &Cond::IfNoneMatch),
                self.copy(&keys[5], &keys[5], &none, &wrong),
            );
            // Refused with 412: honoured. Done anyway, or refused for
            // another reason (a server that rejects the header): not
            // usable, so never sent. Only a transient failure is an error.
            let honoured = |r: Result<String>| match r {
                Err(e) if e.kind == ErrorKind::Conflict => Ok(true),
                Err(e) if e.kind == ErrorKind::Transient => Err(e),
                _ => Ok(false),
            };
            Ok(Conditions {
                put_if_none_match: honoured(a)?,
                put_if_match: honoured(b)?,
                complete_if_none_match: honoured(c)?,
                complete_if_match: honoured(d)?,
                copy_if_none_match: honoured(e)?,
                copy_if_match: honoured(f)?,
            })
        }
        .await;
        futures::future::join_all(keys.iter().map(|k| self.delete(k))).await;
        outcome
    }

    /// The condition to send with a write by `via`: `cond` itself where
    /// the server honours it; otherwise checked now against the object's
    /// ETag, and nothing sent.
    async fn sendable(&self, key: &str, via: Via, cond: &Cond) -> Result<Cond> {
        if self.conds.honours(via, cond) {
            return Ok(cond.clone());
        }
        let current = self.head(key).await?;
        cond.check(key, current.as_ref().map(|c| c.etag.as_str()))?;
        Ok(Cond::None)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(h) => {
                let mut meta: Metadata = h
                    .metadata()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.to_lowercase(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                // An object another tool wrote has no `mtime`: its
                // Last-Modified stands in, as s3fs takes it.
                if let (false, Some(t)) = (meta.contains_key("mtime"), h.last_modified()) {
                    if t.secs() >= 0 {
                        meta.insert("mtime".into(), t.secs().to_string());
                        meta.insert("larder-mtime-ns".into(), t.subsec_nanos().to_string());
                    }
                }
                Ok(Some(ObjectInfo {
                    key: key.to_string(),
                    size: h.content_length().unwrap_or(0).max(0) as u64,
                    etag: h.e_tag().unwrap_or("").to_string(),
                    meta,
                }))
            }
            Err(e) => {
                let e = classify(&self.bucket, key, e);
                if e.kind == ErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Listing, then a HEAD per object; `count` follows the HEADs.
    async fn list(&self, prefix: &str, count: &Counter) -> Result<Vec<ObjectInfo>> {
        let keys = self.list_keys(prefix).await?;
        self.head_many(keys.into_iter().map(|l| l.key).collect(), count)
            .await
    }

    /// The listing alone: a request per 1,000 keys.
    async fn list_keys(&self, prefix: &str) -> Result<Vec<Listed>> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| classify(&self.bucket, prefix, e))?;
            keys.extend(page.contents().iter().filter_map(|o| {
                Some(Listed {
                    key: o.key()?.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    etag: o.e_tag().unwrap_or("").to_string(),
                    modified: o
                        .last_modified()
                        .and_then(|t| std::time::SystemTime::try_from(*t).ok()),
                })
            }));
            token = page.next_continuation_token().map(String::from);
            if token.is_none() {
                break;
            }
        }
        keys.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(keys)
    }

    /// A HEAD per key, many at once (listings carry no user metadata);
    /// `count` follows them. Keys gone meanwhile are left out.
    async fn head_many(&self, keys: Vec<String>, count: &Counter) -> Result<Vec<ObjectInfo>> {
        count.total.store(keys.len() as u64, Ordering::Relaxed);
        let mut infos: Vec<ObjectInfo> = stream::iter(keys)
            .map(|k| async move {
                let r = self.head(&k).await;
                count.done.fetch_add(1, Ordering::Relaxed);
                r
            })
            .buffer_unordered(PARALLEL)
            .try_filter_map(|i| async move { Ok(i) })
            .try_collect()
            .await?;
        infos.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(infos)
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>, cond: &Cond) -> Result<Vec<u8>> {
        let mut req = self.client.get_object().bucket(&self.bucket).key(key);
        req = with_cond!(req, cond);
        if let Some(r) = &range {
            if r.end <= r.start {
                return Ok(Vec::new());
            }
            req = req.range(format!("bytes={}-{}", r.start, r.end - 1));
        }
        let out = match req.send().await {
            Ok(o) => o,
            // A range starting past the end: nothing there.
            Err(e) if range.is_some() && e.code() == Some("InvalidRange") => return Ok(Vec::new()),
            Err(e) => return Err(classify(&self.bucket, key, e)),
        };
        // The reply names its version: a server ignoring If-Match on a
        // GET still never mixes two versions into one file.
        if let (Cond::IfMatch(_), Some(etag)) = (cond, out.e_tag()) {
            cond.check(key, Some(etag))?;
        }
        let bytes = out.body.collect().await.map_err(|e| {
            StoreError::at(ErrorKind::Transient, key, format!("reading the body: {e}"))
        })?;
        Ok(bytes.into_bytes().to_vec())
    }

    async fn put(&self, key: &str, body: Vec<u8>, meta: &Metadata, cond: &Cond) -> Result<String> {
        if body.len() > MULTIPART_THRESHOLD {
            return self.put_multipart(key, &body, meta, cond).await;
        }
        let cond = self.sendable(key, Via::Put, cond).await?;
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .set_metadata(Some(meta_map(meta)));
        req = with_cond!(req, &cond);
        let r = req
            .send()
            .await
            .map_err(|e| classify(&self.bucket, key, e))?;
        Ok(r.e_tag().unwrap_or("").to_string())
    }

    /// A large body as a multipart upload: every part new.
    async fn put_multipart(
        &self,
        key: &str,
        body: &[u8],
        meta: &Metadata,
        cond: &Cond,
    ) -> Result<String> {
        let parts = body
            .chunks(PART_SIZE)
            .map(|c| Up::Bytes(c.to_vec()))
            .collect();
        self.put_parts(key, parts, meta, cond).await
    }

    /// A multipart upload whose kept parts are UploadPartCopy from the
    /// object's current version (pinned by ETag when `cond` names one).
    async fn put_parts(
        &self,
        key: &str,
        parts: Vec<Up>,
        meta: &Metadata,
        cond: &Cond,
    ) -> Result<String> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .set_metadata(Some(meta_map(meta)))
            .send()
            .await
            .map_err(|e| classify(&self.bucket, key, e))?;
        let id = created.upload_id().unwrap_or("").to_string();
        let source = copy_source(&self.bucket, key);
        let done = stream::iter(parts.into_iter().enumerate())
            .map(|(n, part)| {
                let (id, source) = (&id, &source);
                async move {
                    let number = n as i32 + 1;
                    // New bytes are read here, as the part goes up.
                    let bytes = match part {
                        Up::Copy(r) => Err(r),
                        Up::Bytes(d) => Ok(d),
                        Up::Read(source, r) => {
                            let mut buf = buffer(key, r.end - r.start)?;
                            source.read_at(r.start, &mut buf)?;
                            Ok(buf)
                        }
                    };
                    let etag = match bytes {
                        Err(r) => {
                            let mut req = self
                                .client
                                .upload_part_copy()
                                .bucket(&self.bucket)
                                .key(key)
                                .upload_id(id)
                                .part_number(number)
                                .copy_source(source)
                                .copy_source_range(format!("bytes={}-{}", r.start, r.end - 1));
                            if let Cond::IfMatch(etag) = cond {
                                req = req.copy_source_if_match(etag);
                            }
                            let out = req
                                .send()
                                .await
                                .map_err(|e| classify(&self.bucket, key, e))?;
                            out.copy_part_result()
                                .and_then(|c| c.e_tag())
                                .unwrap_or("")
                                .to_string()
                        }
                        Ok(d) => {
                            let out = self
                                .client
                                .upload_part()
                                .bucket(&self.bucket)
                                .key(key)
                                .upload_id(id)
                                .part_number(number)
                                .body(ByteStream::from(d))
                                .send()
                                .await
                                .map_err(|e| classify(&self.bucket, key, e))?;
                            out.e_tag().unwrap_or("").to_string()
                        }
                    };
                    Ok::<_, StoreError>(
                        CompletedPart::builder()
                            .part_number(number)
                            .e_tag(etag)
                            .build(),
                    )
                }
            })
            .buffered(PARALLEL_PARTS)
            .try_collect::<Vec<_>>()
            .await;
        self.complete(key, &id, done, cond).await
    }

    async fn complete(
        &self,
        key: &str,
        id: &str,
        parts: Result<Vec<CompletedPart>>,
        cond: &Cond,
    ) -> Result<String> {
        // Checked after the parts are up, so the window is the
        // completion's round trip, not the whole upload.
        let checked = match parts {
            Ok(p) => self
                .sendable(key, Via::Complete, cond)
                .await
                .map(|c| (p, c)),
            Err(e) => Err(e),
        };
        let (parts, cond) = match checked {
            Ok(pc) => pc,
            Err(e) => {
                let _ = self.abort(key, id).await;
                return Err(e);
            }
        };
        let mut req = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            );
        req = with_cond!(req, &cond);
        match req.send().await {
            Ok(r) => Ok(r.e_tag().unwrap_or("").to_string()),
            Err(e) => {
                let _ = self.abort(key, id).await;
                Err(classify(&self.bucket, key, e))
            }
        }
    }

    async fn abort(&self, key: &str, id: &str) -> Result<()> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&self.bucket, key, e))
    }

    async fn copy(&self, from: &str, to: &str, meta: &Metadata, cond: &Cond) -> Result<String> {
        let cond = self.sendable(to, Via::Copy, cond).await?;
        let mut req = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(to)
            .copy_source(copy_source(&self.bucket, from))
            .metadata_directive(MetadataDirective::Replace)
            .set_metadata(Some(meta_map(meta)));
        req = with_cond!(req, &cond);
        let r = req
            .send()
            .await
            .map_err(|e| classify(&self.bucket, to, e))?;
        Ok(r.copy_object_result()
            .and_then(|c| c.e_tag())
            .unwrap_or("")
            .to_string())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&self.bucket, key, e))
    }
}

impl ObjectStore for S3Store {
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.list_reporting(prefix, &|_, _| {})
    }

    fn list_reporting(&self, prefix: &str, progress: &Progress<'_>) -> Result<Vec<ObjectInfo>> {
        let (i, prefix) = (self.inner.clone(), prefix.to_string());
        let all = self
            .rt
            .counted(|c| async move { i.list(&prefix, &c).await }, progress)?;
        progress(all.len() as u64, all.len() as u64);
        Ok(all)
    }

    fn lists_metadata(&self) -> bool {
        false
    }

    fn list_keys(&self, prefix: &str) -> Result<Vec<Listed>> {
        let (i, prefix) = (self.inner.clone(), prefix.to_string());
        self.run(async move { i.list_keys(&prefix).await })
    }

    fn head_many(&self, keys: Vec<String>, progress: &Progress<'_>) -> Result<Vec<ObjectInfo>> {
        let i = self.inner.clone();
        let total = keys.len() as u64;
        let all = self
            .rt
            .counted(|c| async move { i.head_many(keys, &c).await }, progress)?;
        progress(total, total);
        Ok(all)
    }

    fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let (i, key) = (self.inner.clone(), key.to_string());
        self.run(async move { i.head(&key).await })
    }

    fn get(&self, key: &str, range: Option<Range<u64>>, cond: &Cond) -> Result<Vec<u8>> {
        let (i, key, cond) = (self.inner.clone(), key.to_string(), cond.clone());
        self.run(async move { i.get(&key, range, &cond).await })
    }

    fn put(&self, key: &str, body: &[u8], meta: &Metadata, cond: &Cond) -> Result<String> {
        let (i, key, body) = (self.inner.clone(), key.to_string(), body.to_vec());
        let (meta, cond) = (meta.clone(), cond.clone());
        self.run(async move { i.put(&key, body, &meta, &cond).await })
    }

    fn put_parts(&self, key: &str, parts: &[Part], meta: &Metadata, cond: &Cond) -> Result<String> {
        let parts = parts
            .iter()
            .map(|p| match p {
                Part::Keep(r) => Up::Copy(r.clone()),
                Part::Data(d) => Up::Bytes(d.clone()),
            })
            .collect();
        let (i, key) = (self.inner.clone(), key.to_string());
        let (meta, cond) = (meta.clone(), cond.clone());
        self.run(async move { i.put_parts(&key, parts, &meta, &cond).await })
    }

    /// A multipart upload whose new parts are read from `source` as they
    /// go up, four at a time: memory stays at four parts, whatever the size.
    fn put_from(
        &self,
        key: &str,
        pieces: &[Piece],
        source: &Arc<dyn Source>,
        meta: &Metadata,
        cond: &Cond,
    ) -> Result<String> {
        let total = crate::store::pieces_len(pieces);
        if total > MAX_OBJECT {
            return Err(StoreError::at(
                ErrorKind::Permanent,
                key,
                format!("{total} bytes is more than an S3 object holds (5 TiB)"),
            ));
        }
        if total <= MULTIPART_THRESHOLD as u64 && pieces.iter().all(|p| matches!(p, Piece::New(_)))
        {
            let mut body = buffer(key, total)?;
            source.read_at(0, &mut body)?;
            return self.put(key, &body, meta, cond);
        }
        // Parts big enough that S3's 10,000 suffice, in whole MiB.
        let size = (PART_SIZE as u64).max(total.div_ceil(MAX_PARTS).next_multiple_of(1 << 20));
        let mut parts = Vec::new();
        for p in pieces {
            let (Piece::Keep(r) | Piece::New(r)) = p;
            let mut at = r.start;
            while at < r.end {
                let end = (at + size).min(r.end);
                parts.push(match p {
                    Piece::Keep(_) => Up::Copy(at..end),
                    Piece::New(_) => Up::Read(source.clone(), at..end),
                });
                at = end;
            }
        }
        if parts.len() as u64 > MAX_PARTS {
            return Err(StoreError::at(
                ErrorKind::Permanent,
                key,
                format!("{} parts is more than S3 takes in one upload", parts.len()),
            ));
        }
        let (i, key) = (self.inner.clone(), key.to_string());
        let (meta, cond) = (meta.clone(), cond.clone());
        self.run(async move { i.put_parts(&key, parts, &meta, &cond).await })
    }

    fn copy(&self, from: &str, to: &str, meta: &Metadata, cond: &Cond) -> Result<String> {
        let (i, from, to) = (self.inner.clone(), from.to_string(), to.to_string());
        let (meta, cond) = (meta.clone(), cond.clone());
        self.run(async move { i.copy(&from, &to, &meta, &cond).await })
    }

    fn delete(&self, key: &str) -> Result<()> {
        let (i, key) = (self.inner.clone(), key.to_string());
        self.run(async move { i.delete(&key).await })
    }

    /// Natively where the server honours a condition, by a HEAD just
    /// before the write where it does not.
    fn enforces_conditions(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_configs() {
        let c = S3Config::from_url("s3://b").unwrap();
        assert_eq!((c.bucket.as_str(), c.prefix.as_str()), ("b", ""));
        assert!(!c.path_style && c.endpoint.is_none() && c.attempt_timeout.is_none());
        let c = S3Config::from_url(
            "s3://b//some/prefix/?endpoint=http://127.0.0.1:9000&region=eu-west-1&timeout=1.5",
        )
        .unwrap();
        assert_eq!(c.prefix, "some/prefix/");
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.attempt_timeout, Some(Duration::from_millis(1500)));
        assert!(
            c.path_style,
            "an explicit endpoint means path-style by default"
        );
        let c =
            S3Config::from_url("s3://b/p?endpoint=https://s3.example&path-style=false").unwrap();
        assert!(!c.path_style);
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, says) in [
            ("http://b/p", "expected s3://"),
            ("s3:///p", "no bucket"),
            ("s3://b/p?colour=blue", "unknown option \"colour\""),
            ("s3://b/p?path-style=maybe", "path-style is true or false"),
            ("s3://b/p?timeout=-1", "timeout"),
            ("s3://b/p?timeout=inf", "timeout"),
            ("s3://b/p?endpoint=127.0.0.1:9000", "not an http(s) URL"),
            ("s3://b/p?region=", "region is empty"),
        ] {
            let e = S3Config::from_url(url).unwrap_err();
            assert!(e.contains(says), "{url}: {e}");
        }
    }
}
