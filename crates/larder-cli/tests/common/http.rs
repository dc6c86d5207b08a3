//! HTTP servers under test (`wasmtime serve`, `larder serve-http`) and a
//! client for them.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Bytes that differ with `seed` and along the data.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
        .collect()
}

/// The edge-http service's files in `dir`/files: the example's
/// welcome.txt and big.bin, `big` bytes of [`pattern`].
pub fn files_dir(dir: &Path, big: usize) -> std::path::PathBuf {
    let files = dir.join("files");
    std::fs::create_dir(&files).unwrap();
    std::fs::copy(
        super::repo().join("examples/edge-http/files/welcome.txt"),
        files.join("welcome.txt"),
    )
    .unwrap();
    std::fs::write(files.join("big.bin"), pattern(big, 3)).unwrap();
    files
}

/// `NAME SIZE` lines, sorted: what `GET /files` answers for `dir`.
pub fn listing(dir: &Path) -> String {
    let mut lines: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            format!("{name} {}\n", e.metadata().unwrap().len())
        })
        .collect();
    lines.sort();
    lines.concat()
}

/// A free loopback address (the port is released for the server to take).
pub fn free_addr() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

/// A server child listening on `base`, killed on drop.
pub struct Served {
    pub child: Child,
    pub base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` (told to listen on `addr`), its stderr to `log`; returns
/// once `addr` accepts connections.
pub fn served(mut cmd: Command, addr: &str, log: &Path) -> Served {
    let what = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    while TcpStream::connect(addr).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} exited ({status}):\n{log}");
        }
        assert!(Instant::now() < deadline, "{what} never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    Served {
        child,
        base: format!("http://{addr}"),
    }
}

/// A `wasmtime serve` child on a free loopback port.
pub fn wasmtime_serve(component: &Path, log: &Path, flags: &[&str]) -> Served {
    let addr = free_addr();
    let mut cmd = Command::new("wasmtime");
    cmd.args(["serve", "-S", "cli", "--addr", &addr])
        .args(flags)
        .arg(component);
    served(cmd, &addr, log)
}

pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(120))
        .build()
}

/// One response: status, the `x-instance` that served it, body.
pub struct Reply {
    pub status: u16,
    pub instance: String,
    pub body: Vec<u8>,
}

/// One request (error statuses are replies too).
pub fn send(agent: &ureq::Agent, method: &str, url: &str, body: Option<&[u8]>) -> Reply {
    let request = agent.request(method, url);
    let result = match body {
        Some(b) => request.send_bytes(b),
        None => request.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = response.status();
    let instance = response.header("x-instance").unwrap_or("").to_string();
    let mut body = Vec::new();
    response.into_reader().read_to_end(&mut body).unwrap();
    Reply {
        status,
        instance,
        body,
    }
}

pub fn call(agent: &ureq::Agent, method: &str, url: &str, body: Option<&[u8]>) -> (u16, Vec<u8>) {
    let r = send(agent, method, url, body);
    (r.status, r.body)
}

impl Served {
    /// SIGTERM, as a service manager stops it; its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM {}", self.child.id());
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A `larder serve-http` child on a free loopback port.
pub fn larder_serve_http(app: &Path, log: &Path, flags: &[&str]) -> Served {
    let addr = free_addr();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_larder"));
    cmd.args(["serve-http", "--addr", &addr])
        .args(flags)
        .arg(app);
    served(cmd, &addr, log)
}
