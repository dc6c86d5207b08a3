//! examples/edge-http, uncomposed, under `larder serve-http` (files in the
//! shared Larder filesystem, mounted from tmpfs) against the same .wasm
//! under the real `wasmtime serve --dir` on tmpfs. Both make an instance
//! per request (wasmtime's default for WASIp2 handlers), so these rows time
//! whole requests as a client sees them: small GETs and PUTs at 1 and 16
//! concurrent clients, and 32 MiB transfers.

use crate::edge::{check, request, spawn, Row};
use crate::{median, scratch};
use std::path::Path;
use std::time::Instant;
use wasmtime::{format_err, Result};

const BIG: usize = 32 << 20;
/// Small requests per client per round.
const PER_CLIENT: usize = 40;

/// Seconds per small request, `clients` at once, each sending PER_CLIENT
/// requests made by `one(agent, client, k)`.
fn throughput(
    clients: usize,
    one: &(dyn Fn(&ureq::Agent, usize, usize) -> Result<()> + Sync),
) -> Result<f64> {
    let start = Instant::now();
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..clients)
            .map(|c| {
                s.spawn(move || {
                    let agent = agent();
                    (0..PER_CLIENT).try_for_each(|k| one(&agent, c, k))
                })
            })
            .collect();
        threads
            .into_iter()
            .try_for_each(|t| t.join().map_err(|_| format_err!("a client panicked"))?)
    })?;
    Ok(start.elapsed().as_secs_f64() / (clients * PER_CLIENT) as f64)
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(300))
        .build()
}

/// `None` when the wasmtime CLI or the release `larder` is missing.
pub fn run(root: &Path, repeats: usize) -> Result<Option<Vec<Row>>> {
    let larder = root.join("target/release/larder");
    let wasmtime_ok = std::process::Command::new("wasmtime")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !wasmtime_ok || !larder.exists() {
        return Ok(None);
    }
    let app = root.join("examples/guests/target/wasm32-wasip2/release/edge_http.wasm");
    let app = app.to_str().ok_or(format_err!("non-UTF-8 path"))?;
    let big: Vec<u8> = (0..BIG).map(|i| (i * 13 % 251) as u8).collect();
    let small = vec![b'x'; 1024];
    let tmp = scratch()?;
    let files = tmp.path().join("files");
    std::fs::create_dir(&files)?;
    std::fs::write(files.join("big.bin"), &big)?;
    std::fs::write(files.join("small.txt"), &small)?;
    let files = files.to_str().ok_or(format_err!("non-UTF-8 path"))?;

    let dir = format!("{files}::/srv/files");
    let (_s0, base_url) = spawn(
        Path::new("wasmtime"),
        "serve",
        &["-S", "cli", "--dir", &dir, app],
    )?;
    let mount = format!("/srv/files={files}");
    let (_s1, larder_url) = spawn(&larder, "serve-http", &["--mount", &mount, app])?;

    // Per configuration: GET 1, GET 16, PUT 1, PUT 16, download, upload.
    let mut t: [[Vec<f64>; 6]; 2] = Default::default();
    // One round per repeat, configurations interleaved; round 0 warms up.
    for round in 0..=repeats {
        for (c, url) in [&base_url, &larder_url].into_iter().enumerate() {
            let get = |a: &ureq::Agent, _: usize, _: usize| {
                let n = request(a, "GET", &format!("{url}/files/small.txt"), None)?;
                check(n == small.len(), "small file length")
            };
            let put = |a: &ureq::Agent, client: usize, _: usize| {
                let u = format!("{url}/files/put-{client}");
                request(a, "PUT", &u, Some(&small)).map(|_| ())
            };
            let mut times = vec![
                throughput(1, &get)?,
                throughput(16, &get)?,
                throughput(1, &put)?,
                throughput(16, &put)?,
            ];
            let a = agent();
            let s = Instant::now();
            let n = request(&a, "GET", &format!("{url}/files/big.bin"), None)?;
            check(n == BIG, "download length")?;
            times.push(s.elapsed().as_secs_f64());
            let s = Instant::now();
            request(&a, "PUT", &format!("{url}/files/up.bin"), Some(&big))?;
            times.push(s.elapsed().as_secs_f64());
            if round > 0 {
                for (w, time) in times.into_iter().enumerate() {
                    t[c][w].push(time);
                }
            }
        }
    }
    let names = [
        "small GET, 1 client",
        "small GET, 16 clients",
        "small PUT (1 KiB), 1 client",
        "small PUT (1 KiB), 16 clients",
        "download 32 MiB (GET)",
        "upload 32 MiB (PUT)",
    ];
    Ok(Some(
        names
            .into_iter()
            .enumerate()
            .map(|(w, workload)| Row {
                workload,
                base: median(t[0][w].clone()),
                larder: median(t[1][w].clone()),
                bytes: if w >= 4 { BIG } else { 0 },
            })
            .collect(),
    ))
}

/// What a store costs each request on the host route: `larder serve-http`
/// without a store against the same with `--store DIR` (tmpfs), where
/// each answer waits until the request's changes are stored. One client,
/// small requests, configurations interleaved; markdown, `None` when the
/// release `larder` is missing.
pub fn persistence(root: &Path, repeats: usize) -> Result<Option<String>> {
    let larder = root.join("target/release/larder");
    if !larder.exists() {
        return Ok(None);
    }
    let app = root.join("examples/guests/target/wasm32-wasip2/release/edge_http.wasm");
    let app = app.to_str().ok_or(format_err!("non-UTF-8 path"))?;
    let small = vec![b'x'; 1024];
    let tmp = scratch()?;
    let files = tmp.path().join("files");
    std::fs::create_dir(&files)?;
    std::fs::write(files.join("small.txt"), &small)?;
    let mount = format!(
        "/srv/files={}",
        files.to_str().ok_or(format_err!("non-UTF-8 path"))?
    );
    let store = tmp.path().join("store");
    let store = store.to_str().ok_or(format_err!("non-UTF-8 path"))?;
    let (_plain, plain_url) = spawn(&larder, "serve-http", &["--mount", &mount, app])?;
    let (_stored, stored_url) = spawn(
        &larder,
        "serve-http",
        &["--mount", &mount, "--store", store, app],
    )?;
    // Per configuration: GET, PUT.
    let mut t: [[Vec<f64>; 2]; 2] = Default::default();
    for round in 0..=repeats {
        for (c, url) in [&plain_url, &stored_url].into_iter().enumerate() {
            let get = |a: &ureq::Agent, _: usize, _: usize| {
                let n = request(a, "GET", &format!("{url}/files/small.txt"), None)?;
                check(n == small.len(), "small file length")
            };
            let put = |a: &ureq::Agent, _: usize, k: usize| {
                let u = format!("{url}/files/put-{k}");
                request(a, "PUT", &u, Some(&small)).map(|_| ())
            };
            let times = [throughput(1, &get)?, throughput(1, &put)?];
            if round > 0 {
                for (w, time) in times.into_iter().enumerate() {
                    t[c][w].push(time);
                }
            }
        }
    }
    let mut md = format!(
        "\nWhat a store costs a request on the host route: `larder serve-http --mount` without a store against the same with `--store DIR` (tmpfs), where each answer waits until what its request changed is in the store; one client, medians of {repeats} rounds of {PER_CLIENT} requests:\n\n| request | without a store | with `--store DIR` | added per request |\n|---|---|---|---|\n"
    );
    for (w, name) in [
        "small GET (changes nothing)",
        "small PUT (1 KiB, a new file)",
    ]
    .into_iter()
    .enumerate()
    {
        let (plain, stored) = (median(t[0][w].clone()), median(t[1][w].clone()));
        md.push_str(&format!(
            "| {name} | {:.2} ms | {:.2} ms | {:.2} ms |\n",
            plain * 1e3,
            stored * 1e3,
            (stored - plain) * 1e3
        ));
    }
    Ok(Some(md))
}
