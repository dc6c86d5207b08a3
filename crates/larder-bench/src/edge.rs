//! HTTP handlers under the real `wasmtime serve`: examples/edge-http with
//! its files on wasmtime's host filesystem (a tmpfs directory via `--dir`)
//! against the same app composed by Larder with the files bundled. Both
//! reuse one instance for sequential requests, so this times requests, not
//! instantiation.

use crate::{median, scratch};
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use wasmtime::{format_err, Result};

const BIG: usize = 32 << 20;
const SMALL_REQUESTS: usize = 50;

pub struct Row {
    pub workload: &'static str,
    /// Seconds per operation: baseline, Larder.
    pub base: f64,
    pub larder: f64,
    /// Bytes per operation (0 for latency rows).
    pub bytes: usize,
}

pub(crate) struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `program subcommand --addr A args` on a free loopback port A;
/// returns once it listens, with its base URL.
pub(crate) fn spawn(program: &Path, subcommand: &str, args: &[&str]) -> Result<(Server, String)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(program)
        .args([subcommand, "--addr", &addr])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(120);
    while TcpStream::connect(&addr).is_err() {
        if Instant::now() > deadline {
            return Err(format_err!(
                "{} never listened on {addr}",
                program.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((server, format!("http://{addr}")))
}

/// `wasmtime serve`, one instance reused for every request.
fn serve(args: &[&str], component: &Path) -> Result<(Server, String)> {
    let component = component.to_str().ok_or(format_err!("non-UTF-8 path"))?;
    let mut all = vec!["-S", "cli", "--max-instance-reuse-count", "1000000"];
    all.extend(["--idle-instance-timeout", "3600s"]);
    all.extend(args);
    all.push(component);
    spawn(Path::new("wasmtime"), "serve", &all)
}

/// Status and body length of one request.
pub(crate) fn request(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&[u8]>,
) -> Result<usize> {
    let r = agent.request(method, url);
    let response = match body {
        Some(b) => r.send_bytes(b),
        None => r.call(),
    }
    .map_err(|e| format_err!("{method} {url}: {e}"))?;
    let mut n = 0;
    let mut reader = response.into_reader();
    let mut buf = vec![0; 1 << 20];
    loop {
        match reader.read(&mut buf)? {
            0 => return Ok(n),
            k => n += k,
        }
    }
}

/// `None` when the wasmtime CLI is missing.
pub fn run(root: &Path, repeats: usize) -> Result<Option<Vec<Row>>> {
    if !Command::new("wasmtime")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Ok(None);
    }
    let app_path = root.join("examples/guests/target/wasm32-wasip2/release/edge_http.wasm");
    let app = std::fs::read(&app_path)
        .map_err(|e| format_err!("{} (run `just guests`): {e}", app_path.display()))?;
    let big: Vec<u8> = (0..BIG).map(|i| (i * 13 % 251) as u8).collect();

    let tmp = scratch()?;
    let files = tmp.path().join("files");
    std::fs::create_dir(&files)?;
    std::fs::write(files.join("big.bin"), &big)?;
    let composed = tmp.path().join("edge.wasm");
    let bundle = larder_compose::Bundle {
        image: image_of(&big)?,
        preopens: larder_compose::default_preopens(),
        read_only: Vec::new(),
        store: String::new(),
    };
    let bytes = larder_compose::compose(&app, "edge_http", &bundle)
        .map_err(|e| format_err!("compose edge_http: {e:#}"))?;
    std::fs::write(&composed, bytes)?;

    let dir = format!("{}::/srv/files", files.display());
    let (_s0, base_url) = serve(&["--dir", &dir], &app_path)?;
    let (_s1, larder_url) = serve(&[], &composed)?;
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(300))
        .build();

    // One round per repeat, configurations interleaved; round 0 warms up
    // (instantiation, and the bundle's first fetch of big.bin).
    let mut t: [[Vec<f64>; 3]; 2] = Default::default();
    for round in 0..=repeats {
        for (c, url) in [&base_url, &larder_url].into_iter().enumerate() {
            let time = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
                let s = Instant::now();
                f()?;
                Ok(s.elapsed().as_secs_f64())
            };
            let get = time(&mut || {
                let n = request(&agent, "GET", &format!("{url}/files/big.bin"), None)?;
                check(n == BIG, "download length")
            })?;
            let put = time(&mut || {
                request(&agent, "PUT", &format!("{url}/files/up.bin"), Some(&big)).map(|_| ())
            })?;
            let small = time(&mut || {
                for _ in 0..SMALL_REQUESTS {
                    request(&agent, "GET", &format!("{url}/files"), None)?;
                }
                Ok(())
            })? / SMALL_REQUESTS as f64;
            if round > 0 {
                t[c][0].push(get);
                t[c][1].push(put);
                t[c][2].push(small);
            }
        }
    }
    let m = |c: usize, w: usize| median(t[c][w].clone());
    Ok(Some(vec![
        Row {
            workload: "download 32 MiB (GET)",
            base: m(0, 0),
            larder: m(1, 0),
            bytes: BIG,
        },
        Row {
            workload: "upload 32 MiB (PUT)",
            base: m(0, 1),
            larder: m(1, 1),
            bytes: BIG,
        },
        Row {
            workload: "list directory (GET, per request)",
            base: m(0, 2),
            larder: m(1, 2),
            bytes: 0,
        },
    ]))
}

pub(crate) fn check(ok: bool, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(format_err!("edge bench: wrong {what}"))
    }
}

/// The bundle `larder compose --mount /srv/files=...` makes of big.bin.
fn image_of(big: &[u8]) -> Result<Vec<u8>> {
    use fs_core::{DescriptorFlags as DF, OpenFlags as OF, PathFlags as PF};
    let fs = fs_core::Fs::in_memory();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY)?;
    root.create_directory_at("srv")?;
    root.create_directory_at("srv/files")?;
    let f = root.open_at(PF::empty(), "srv/files/big.bin", OF::CREATE, DF::WRITE)?;
    f.write(big, 0)?;
    Ok(fs_core::image::encode(&root)?)
}
