//! Edge apps end to end: an HTTP handler composed by `larder compose` and
//! served by the real `wasmtime serve`, and an HTTP client run by the real
//! `wasmtime run -S http`, both keeping their files in Larder.

mod common;

use common::http::*;
use common::*;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

fn compose_service(dir: &Path, files: &Path) -> PathBuf {
    let out = dir.join("edge.wasm");
    let mount = format!("/srv/files={}", files.display());
    let app = guest("edge_http");
    let r = larder(&[
        "compose",
        app.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--mount",
        &mount,
    ]);
    assert!(r.status.success(), "larder compose: {}", text(&r.stderr));
    assert_no_host_filesystem(&out);
    // The host calls the bridge's handler, the only export.
    assert_eq!(exports(&out), ["wasi:http/incoming-handler@0.2.12"]);
    out
}

/// wasmtime's instance model for WASIp2 handlers, as the service sees it:
/// each instance has its own files, starting from the bundle; which
/// instance serves a request is wasmtime's choice (a request arriving
/// while the last one's instance is still being released gets another).
/// Every reply names its instance, so each is checked against the files
/// that instance should hold.
struct InstanceModel {
    bundle: BTreeMap<String, Vec<u8>>,
    instances: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// Replies from an instance that had already served a request.
    reused: usize,
}

impl InstanceModel {
    fn new(dir: &Path) -> InstanceModel {
        let bundle = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                (name, std::fs::read(e.path()).unwrap())
            })
            .collect();
        InstanceModel {
            bundle,
            instances: BTreeMap::new(),
            reused: 0,
        }
    }

    fn files(&mut self, reply: &Reply) -> &mut BTreeMap<String, Vec<u8>> {
        assert_eq!(reply.instance.len(), 16, "reply without x-instance");
        if self.instances.contains_key(&reply.instance) {
            self.reused += 1;
        }
        let bundle = &self.bundle;
        self.instances
            .entry(reply.instance.clone())
            .or_insert_with(|| bundle.clone())
    }

    /// Sends one request and checks the reply against the model.
    fn request(
        &mut self,
        agent: &ureq::Agent,
        base: &str,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> u16 {
        let reply = send(agent, method, &format!("{base}{path}"), body);
        let what = format!("{method} {path} on instance {}", reply.instance);
        let files = self.files(&reply);
        let name = path.strip_prefix("/files/");
        match (method, name) {
            ("GET", None) if path == "/files" => {
                let listing: String = files
                    .iter()
                    .map(|(n, d)| format!("{n} {}\n", d.len()))
                    .collect();
                assert_eq!((reply.status, text(&reply.body)), (200, listing), "{what}");
            }
            ("GET", Some(n)) => match files.get(n) {
                Some(d) => assert!(
                    reply.status == 200 && reply.body == *d,
                    "{what}: {} wrong",
                    reply.status
                ),
                None => assert_eq!(reply.status, 404, "{what}"),
            },
            ("PUT", Some(n)) => {
                let b = body.unwrap().to_vec();
                let expect = format!("stored {n} {}\n", b.len());
                assert_eq!((reply.status, text(&reply.body)), (201, expect), "{what}");
                files.insert(n.to_string(), b);
            }
            ("DELETE", Some(n)) => {
                let expect = if files.remove(n).is_some() { 204 } else { 404 };
                assert_eq!(reply.status, expect, "{what}");
            }
            _ => panic!("no model for {what}"),
        }
        reply.status
    }
}

/// The composed service under `wasmtime serve` with instances reused:
/// listings, downloads (a 4 MiB bundled file), 16 MiB uploads streamed in
/// and out, overwrites and deletes, each reply checked against the files
/// the instance that served it should hold.
#[test]
fn http_handler_serves_and_stores_files_under_wasmtime_serve() {
    let dir = tempfile::tempdir().unwrap();
    let files = files_dir(dir.path(), 4 << 20);
    let bundled = listing(&files);
    let app = compose_service(dir.path(), &files);
    let s = wasmtime_serve(
        &app,
        &dir.path().join("serve.log"),
        &[
            "--max-instance-reuse-count",
            "1000",
            "--idle-instance-timeout",
            "600s",
        ],
    );
    let a = agent();
    let mut model = InstanceModel::new(&files);
    let upload = pattern(16 << 20, 9);
    let steps: &[(&str, &str, Option<&[u8]>)] = &[
        ("GET", "/files", None),
        ("GET", "/files/big.bin", None),
        ("PUT", "/files/upload.bin", Some(&upload)),
        ("GET", "/files/upload.bin", None),
        ("GET", "/files", None),
        ("PUT", "/files/upload.bin", Some(b"short")),
        ("GET", "/files/upload.bin", None),
        ("DELETE", "/files/welcome.txt", None),
        ("GET", "/files/welcome.txt", None),
        ("DELETE", "/files/welcome.txt", None),
        ("GET", "/files", None),
    ];
    for _ in 0..2 {
        for (method, path, body) in steps {
            model.request(&a, &s.base, method, path, *body);
            // Time for wasmtime to take the instance back, so the next
            // request usually finds it idle.
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert!(
        model.reused >= steps.len(),
        "instances were reused for only {} of {} requests",
        model.reused,
        2 * steps.len()
    );

    // What a client can get wrong.
    let url = |p: &str| format!("{}{p}", s.base);
    assert_eq!(call(&a, "GET", &url("/files/.hidden"), None).0, 400);
    assert_eq!(call(&a, "GET", &url("/etc/passwd"), None).0, 400);
    assert_eq!(call(&a, "POST", &url("/files/x"), Some(b"x")).0, 405);

    // Concurrent downloads (on more instances), all complete and correct.
    let big = Arc::new(pattern(4 << 20, 3));
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (a, u, big) = (a.clone(), url("/files/big.bin"), big.clone());
            std::thread::spawn(move || {
                let (status, got) = call(&a, "GET", &u, None);
                status == 200 && got == *big
            })
        })
        .collect();
    for t in threads {
        assert!(t.join().unwrap(), "a concurrent download failed");
    }

    // The host directory was only read, at compose time.
    assert_eq!(listing(&files), bundled);
}

/// wasmtime's default for WASIp2 handlers is one instance per request, so
/// each request sees the bundle as composed: nothing written survives it.
#[test]
fn each_request_starts_from_the_bundle_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let files = files_dir(dir.path(), 4 << 20);
    let app = compose_service(dir.path(), &files);
    let s = wasmtime_serve(&app, &dir.path().join("serve.log"), &[]);
    let a = agent();
    let mut model = InstanceModel::new(&files);
    model.request(&a, &s.base, "PUT", "/files/note.txt", Some(b"hi"));
    model.request(&a, &s.base, "GET", "/files/note.txt", None);
    model.request(&a, &s.base, "DELETE", "/files/welcome.txt", None);
    model.request(&a, &s.base, "GET", "/files", None);
    assert_eq!(model.instances.len(), 4, "one instance per request");
    assert_eq!(model.reused, 0);
}

/// compose/edge-http.wac, run by the real `wac compose` with the pieces
/// `larder adapter` writes, gives a service that works like the one
/// `larder compose` builds.
#[test]
fn wac_compose_file_builds_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let files = files_dir(dir.path(), 4 << 20);
    let (vfs, bridge) = (dir.path().join("vfs.wasm"), dir.path().join("bridge.wasm"));
    let mount = format!("/srv/files={}", files.display());
    let r = larder(&[
        "adapter",
        "--http",
        "--mount",
        &mount,
        "-o",
        vfs.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let r = larder(&["adapter", "--http-bridge", "-o", bridge.to_str().unwrap()]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let out = dir.path().join("service.wasm");
    let dep = |name: &str, p: &Path| format!("{name}={}", p.display());
    ok(Command::new("wac")
        .arg("compose")
        .arg(repo().join("compose/edge-http.wac"))
        .args(["--dep", &dep("larder:adapter", &vfs)])
        .args(["--dep", &dep("larder:http-bridge", &bridge)])
        .args(["--dep", &dep("app:service", &guest("edge_http"))])
        .arg("-o")
        .arg(&out));
    assert_no_host_filesystem(&out);
    let s = wasmtime_serve(
        &out,
        &dir.path().join("serve.log"),
        &[
            "--max-instance-reuse-count",
            "100",
            "--idle-instance-timeout",
            "600s",
        ],
    );
    let a = agent();
    let mut model = InstanceModel::new(&files);
    for (method, path, body) in [
        ("GET", "/files/welcome.txt", None),
        ("PUT", "/files/n", Some(&b"note"[..])),
        ("GET", "/files/n", None),
        ("GET", "/files", None),
    ] {
        model.request(&a, &s.base, method, path, body);
    }
}

/// A local HTTP server answering `GET /blob` with `body`.
fn blob_server(body: Vec<u8>) -> (String, Arc<tiny_http::Server>) {
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
    let addr = server.server_addr().to_ip().unwrap().to_string();
    let s = server.clone();
    std::thread::spawn(move || {
        for request in s.incoming_requests() {
            let response = if request.url() == "/blob" {
                // With a content-length header, not chunked.
                tiny_http::Response::from_data(body.clone()).with_chunked_threshold(usize::MAX)
            } else {
                tiny_http::Response::from_data(Vec::new()).with_status_code(404)
            };
            let _ = request.respond(response);
        }
    });
    (addr, server)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// An app that fetches with `wasi:http/outgoing-handler` and writes the
/// body to a file composes by `larder compose` and by `wac plug` with
/// `larder adapter --http`; HTTP errors reach it as HTTP error codes.
#[test]
fn http_client_app_fetches_into_its_files_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let body = pattern(2_500_000, 5);
    let expect = format!(
        "status 200, content-length 2500000, received 2500000, stored 2500000, fnv {:016x}",
        fnv1a(&body)
    );
    let (addr, server) = blob_server(body);
    let url = format!("http://{addr}/blob");
    let app = guest("fetch");

    let composed = dir.path().join("fetch.wasm");
    let r = larder(&[
        "compose",
        app.to_str().unwrap(),
        "-o",
        composed.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert_no_host_filesystem(&composed);

    let adapter = dir.path().join("vfs_adapter_http.wasm");
    let r = larder(&["adapter", "--http", "-o", adapter.to_str().unwrap()]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let plugged = dir.path().join("fetch-plugged.wasm");
    ok(Command::new("wac")
        .args(["plug", "--plug"])
        .arg(&adapter)
        .arg(&app)
        .arg("-o")
        .arg(&plugged));
    assert_no_host_filesystem(&plugged);

    for component in [&composed, &plugged] {
        let out = ok(Command::new("wasmtime")
            .args(["run", "-S", "http"])
            .arg(component)
            .args([&url, "/got.bin"]));
        assert_eq!(out.trim(), expect, "{}", component.display());
    }

    // A refused connection is the host's HTTP error code, passed through.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = Command::new("wasmtime")
        .args(["run", "-S", "http"])
        .arg(&composed)
        .args([&format!("http://{closed}/blob"), "/got.bin"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("ConnectionRefused"),
        "{}",
        text(&out.stderr)
    );
    server.unblock();
}
