//! Helpers shared by the end-to-end tests: the real `larder` binary, the
//! real `wasmtime` and `wac` CLIs, and the guest programs `just guests`
//! builds.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn built(p: PathBuf) -> PathBuf {
    assert!(
        p.exists(),
        "{} missing: run `just guests` (part of `just test`)",
        p.display()
    );
    p
}

/// A Rust guest built for wasm32-wasip2.
pub fn guest(name: &str) -> PathBuf {
    built(repo().join(format!(
        "examples/guests/target/wasm32-wasip2/release/{name}.wasm"
    )))
}

/// A Rust guest built for wasm32-wasip1 (a core module).
pub fn guest_p1(name: &str) -> PathBuf {
    built(repo().join(format!(
        "examples/guests/target/wasm32-wasip1/release/{name}.wasm"
    )))
}

/// The C example, built with clang and wasi-libc (a core module).
pub fn c_guest(name: &str) -> PathBuf {
    built(repo().join(format!("target/guests/{name}.wasm")))
}

/// A wasip1 core module made a component with wasmtime's preview1 adapter,
/// as `wasm-tools component new --adapt` does.
pub fn componentize_p1(module: &Path, out: &Path) {
    let bytes = std::fs::read(module).unwrap();
    let component = wit_component::ComponentEncoder::default()
        .module(&bytes)
        .unwrap()
        .adapter(
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER,
        )
        .unwrap()
        .validate(true)
        .encode()
        .unwrap();
    std::fs::write(out, component).unwrap();
}

/// Runs `larder ARGS` and asserts it refused them: exit 2, and stderr
/// naming the problem (`needle`).
pub fn assert_usage_error(args: &[&str], needle: &str) {
    let out = larder(args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: stderr lacks {needle:?}: {err}"
    );
}

pub fn larder(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_larder"))
        .args(args)
        .output()
        .expect("run larder")
}

/// `larder compose APP --persist WHERE -o OUT` (APP a guest of examples/guests).
pub fn compose_persist(app: &str, persist: &str, out: &Path) -> Output {
    larder(&[
        "compose",
        guest(app).to_str().unwrap(),
        "--persist",
        persist,
        "-o",
        out.to_str().unwrap(),
    ])
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs a command; its stdout, after asserting it succeeded.
pub fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A scratch directory on tmpfs when the machine has one.
pub fn tmpfs_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .unwrap()
}

/// `wasmtime run` with the given flags, then the component.
pub fn wasmtime(flags: &[&str], component: &Path) -> String {
    ok(Command::new("wasmtime")
        .arg("run")
        .args(flags)
        .arg(component))
}

/// The conformance program under the real `wasmtime run --dir DIR::/` on a
/// tmpfs directory: the reference every Larder route is compared with.
pub fn reference_run(component: &Path) -> String {
    let dir = tmpfs_dir();
    wasmtime(
        &["--dir", &format!("{}::/", dir.path().display())],
        component,
    )
}

/// Conformance lines where wasmtime's host filesystem departs from Linux
/// and Larder follows Linux (fs-core's differential tests hold it to
/// Linux): the line, the WASI error Linux gives, and why.
pub const LINUX_NOT_WASMTIME: &[(&str, &str, &str)] = &[
    (
        "read-stream-needs-read",
        "bad-descriptor",
        "a stream on a descriptor without the mode fails at once, as write(2) on \
         an O_RDONLY fd is EBADF; wasmtime hands out the stream and fails on use",
    ),
    (
        "write-stream-needs-write",
        "bad-descriptor",
        "as above, for read(2) on an O_WRONLY fd",
    ),
    (
        "set-times-bad-nanos",
        "invalid",
        "utimensat rejects tv_nsec >= 1e9 with EINVAL; wasmtime normalises it",
    ),
    (
        "set-size-on-dir",
        "invalid",
        "ftruncate on a descriptor not open for writing is EINVAL; wasmtime says EBADF",
    ),
    (
        "read-dir-fd",
        "is-directory",
        "pread on a directory is EISDIR; wasmtime says EBADF",
    ),
];

/// Asserts `ours` (a Larder route's conformance output) equals wasmtime's,
/// line for line, except the documented Linux departures, which must give
/// Linux's answer.
pub fn assert_conformant(route: &str, ours: &str, theirs: &str) {
    assert!(
        ours.lines().count() >= 100,
        "{route}: conformance printed too little:\n{ours}"
    );
    let mut diffs = Vec::new();
    for (a, b) in ours.lines().zip(theirs.lines()) {
        let key = a.split(':').next().unwrap_or("");
        match LINUX_NOT_WASMTIME.iter().find(|(k, _, _)| *k == key) {
            Some((_, code, why)) if !a.contains(&format!("name: \"{code}\"")) => {
                diffs.push(format!("  {route}: {a}\n  expected {code}: {why}"));
            }
            Some(_) => {}
            None if a != b => diffs.push(format!("  {route}:  {a}\n  wasmtime: {b}")),
            None => {}
        }
    }
    assert!(
        diffs.is_empty() && ours.lines().count() == theirs.lines().count(),
        "{route} differs from wasmtime's host filesystem:\n{}",
        diffs.join("\n")
    );
}

/// The top-level import names of a component.
pub fn imports(component: &Path) -> Vec<String> {
    top_level(component).imports
}

/// The top-level export names of a component.
pub fn exports(component: &Path) -> Vec<String> {
    top_level(component).exports
}

fn top_level(component: &Path) -> larder_compose::TopLevel {
    larder_compose::top_level(&std::fs::read(component).unwrap()).unwrap()
}

pub fn assert_no_host_filesystem(component: &Path) {
    let fs: Vec<String> = imports(component)
        .into_iter()
        .filter(|i| i.starts_with("wasi:filesystem/"))
        .collect();
    assert!(fs.is_empty(), "composed app still imports {fs:?}");
}

/// The fsshell guest (or anything line-driven) under test, one command
/// and one reply line at a time.
pub struct Shell {
    pub child: Child,
    pub stdin: ChildStdin,
    pub stdout: BufReader<ChildStdout>,
}

impl Shell {
    pub fn start(cmd: &mut Command) -> Shell {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Shell {
            stdin: child.stdin.take().unwrap(),
            stdout: BufReader::new(child.stdout.take().unwrap()),
            child,
        }
    }

    /// Sends one command; its reply and how long it took.
    pub fn ask(&mut self, line: &str) -> (String, Duration) {
        let t = Instant::now();
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let mut reply = String::new();
        self.stdout.read_line(&mut reply).unwrap();
        (reply.trim_end().to_string(), t.elapsed())
    }
}

/// Stops the server's process (SIGSTOP: connections hang, the worst case)
/// and lets it go again on drop.
pub struct Paused(u32);

impl Paused {
    fn signal(pid: u32, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    }
    pub fn new(pid: u32) -> Paused {
        Paused::signal(pid, "-STOP");
        Paused(pid)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        Paused::signal(self.0, "-CONT");
    }
}

/// Runs `cmd` with `input` on stdin; its output.
pub fn with_input(cmd: &mut Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
