//! A tiny file service, an HTTP handler (`wasi:http/proxy`) whose files
//! live in the filesystem Larder bundles into the component:
//!
//! - `GET /files`: one line per file, `NAME SIZE`
//! - `GET /files/NAME`: the file, streamed
//! - `PUT /files/NAME`: stores the request body (streamed to a temporary
//!   file, then renamed, so a half-received upload is never seen)
//! - `DELETE /files/NAME`
//!
//! The files are plain std::fs calls on `/srv/files`; the handler never
//! knows whether that is a host directory or Larder.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

const DIR: &str = "/srv/files";
/// Body chunks, both ways.
const CHUNK: usize = 64 << 10;

struct Service;

wasip2::http::proxy::export!(Service);

impl Guest for Service {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let name = match path.strip_prefix("/files") {
            Some("" | "/") => "",
            Some(rest) => match rest.strip_prefix('/') {
                Some(name) if valid_name(name) => name,
                _ => return text(out, 400, &format!("bad file name in {path}\n")),
            },
            None => return text(out, 400, &format!("no such route: {path}\n")),
        };
        match (request.method(), name) {
            (Method::Get, "") => list(out),
            (Method::Get, name) => download(out, name),
            (Method::Put, name) if !name.is_empty() => upload(request, out, name),
            (Method::Delete, name) if !name.is_empty() => match fs::remove_file(file(name)) {
                Ok(()) => text(out, 204, ""),
                Err(e) => io_error(out, name, e),
            },
            _ => text(out, 405, "method not allowed\n"),
        }
    }
}

/// One path component, no dot files (so no `..`), no query.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '?']) && name.len() <= 255
}

fn file(name: &str) -> String {
    format!("{DIR}/{name}")
}

fn list(out: ResponseOutparam) {
    let mut lines = Vec::new();
    let entries = match fs::read_dir(DIR) {
        Ok(e) => e,
        Err(e) => return io_error(out, DIR, e),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        lines.push(format!("{name} {size}\n"));
    }
    lines.sort();
    text(out, 200, &lines.concat());
}

fn download(out: ResponseOutparam, name: &str) {
    let (mut f, len) = match File::open(file(name)).and_then(|f| {
        let len = f.metadata()?.len();
        Ok((f, len))
    }) {
        Ok(v) => v,
        Err(e) => return io_error(out, name, e),
    };
    let headers = Fields::new();
    let _ = headers.set("content-length", &[len.to_string().into_bytes()]);
    respond(out, 200, headers, |body| {
        let mut buf = vec![0; CHUNK];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            body.write_all(&buf[..n])?;
        }
    });
}

fn upload(request: IncomingRequest, out: ResponseOutparam, name: &str) {
    // A name of this upload's own: other instances may be receiving the
    // same file at the same time, into the same shared directory.
    static UPLOADS: AtomicU64 = AtomicU64::new(0);
    let n = UPLOADS.fetch_add(1, Ordering::Relaxed);
    let tmp = file(&format!(".upload-{}-{n}", instance_id()));
    let stored = (|| -> io::Result<u64> {
        let body = request
            .consume()
            .map_err(|()| io::Error::other("no body"))?;
        let mut stream = body.stream().map_err(|()| io::Error::other("no body"))?;
        let mut f = File::create(&tmp)?;
        let mut buf = vec![0; CHUNK];
        let mut total = 0;
        loop {
            match Read::read(&mut stream, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    f.write_all(&buf[..n])?;
                    total += n as u64;
                }
                Err(e) => return Err(e),
            }
        }
        f.sync_all()?;
        fs::rename(&tmp, file(name))?;
        Ok(total)
    })();
    match stored {
        Ok(n) => text(out, 201, &format!("stored {name} {n}\n")),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            io_error(out, name, e)
        }
    }
}

fn io_error(out: ResponseOutparam, what: &str, e: io::Error) {
    let status = match e.kind() {
        io::ErrorKind::NotFound => 404,
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => 403,
        _ => 500,
    };
    text(out, status, &format!("{what}: {e}\n"));
}

fn text(out: ResponseOutparam, status: u16, body: &str) {
    let headers = Fields::new();
    let _ = headers.set("content-type", &[b"text/plain; charset=utf-8".to_vec()]);
    respond(out, status, headers, |w| w.write_all(body.as_bytes()));
}

/// Names this instance in every response (`x-instance`), so clients can
/// see wasmtime's instance model: requests served by one instance share
/// its files, other instances start from the bundle.
fn instance_id() -> String {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| format!("{:016x}", wasip2::random::random::get_random_u64()))
        .clone()
}

/// Sends the status and headers, then the body `write` produces.
fn respond(
    out: ResponseOutparam,
    status: u16,
    headers: Fields,
    write: impl FnOnce(&mut wasip2::io::streams::OutputStream) -> io::Result<()>,
) {
    let _ = headers.set("x-instance", &[instance_id().into_bytes()]);
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let body = response.body().expect("a new response has a body");
    ResponseOutparam::set(out, Ok(response));
    let mut stream = body.write().expect("a new body has a stream");
    let written = write(&mut stream).and_then(|()| Write::flush(&mut stream));
    drop(stream);
    if written.is_ok() {
        let _ = OutgoingBody::finish(body, None);
    }
    // On failure the body is dropped unfinished: the client sees the
    // response cut short rather than a complete-looking wrong one.
}
