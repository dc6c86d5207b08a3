//! Helpers shared by the end-to-end tests: the real `larder` binary, the
//! real `wasmtime` and `wac` CLIs, and the guest programs `just guests`
//! builds.
#![allow(dead_code)]

pub mod http;

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

/// A guest `just guests` builds outside cargo, into target/guests: the C
/// examples (zig cc on its wasi-libc; core modules) and the Python app
/// (componentize-py; a component).
pub fn prebuilt_guest(name: &str) -> PathBuf {
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

/// How a run measured by [`peak_memory`] ended.
pub struct Measured {
    pub ok: bool,
    pub stdout: String,
    /// Peak resident memory in bytes (the kernel's count for that child).
    pub peak: u64,
}

/// Runs `larder ARGS` to its end with `stdin` as its input; reaped by
/// wait4, which also reports its peak memory.
#[allow(
    clippy::zombie_processes,
    reason = "reaped by wait4, which also reports its peak memory"
)]
pub fn peak_memory(args: &[&str], stdin: &[u8]) -> Measured {
    let mut out = tempfile::tempfile().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_larder"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(out.try_clone().unwrap())
        .spawn()
        .expect("run larder");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for (and reaps) our own child; the pointers are ours.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4");
    let mut stdout = String::new();
    use std::io::{Read, Seek};
    out.rewind().unwrap();
    out.read_to_string(&mut stdout).unwrap();
    Measured {
        ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        stdout,
        peak: usage.ru_maxrss as u64 * 1024,
    }
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
    wasmtime_with(Path::new("wasmtime"), flags, component)
}

/// `CLI run FLAGS COMPONENT` with a given wasmtime CLI.
pub fn wasmtime_with(cli: &Path, flags: &[&str], component: &Path) -> String {
    ok(Command::new(cli).arg("run").args(flags).arg(component))
}

/// The wasmtime CLI of the 48 line that `just setup` installs beside the
/// current one (`LARDER_WASMTIME_48` overrides where).
pub fn wasmtime_48() -> PathBuf {
    let cli = match std::env::var_os("LARDER_WASMTIME_48") {
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"))
            .join("larder/wasmtime-48.0.8/bin/wasmtime"),
    };
    assert!(
        cli.is_file(),
        "{} is missing: run `just setup`",
        cli.display()
    );
    cli
}

/// The conformance program under the real `wasmtime run --dir DIR::/` on a
/// tmpfs directory: the reference every Larder route is compared with.
pub fn reference_run(component: &Path) -> String {
    reference_run_with(Path::new("wasmtime"), component)
}

/// [`reference_run`] under a given wasmtime CLI.
pub fn reference_run_with(cli: &Path, component: &Path) -> String {
    let dir = tmpfs_dir();
    wasmtime_with(
        cli,
        &["--dir", &format!("{}::/", dir.path().display())],
        component,
    )
}

/// The conformance program with a read-only preopen as well: wasmtime's
/// own host (in process, as its CLI has no flag for one) offering a tmpfs
/// directory as `/` and again, with `FsPerms::ReadOnly`, as `/ro`.
pub fn reference_run_read_only(component: &Path) -> String {
    use wasmtime::component::{Component, Linker, ResourceTable};
    use wasmtime_wasi::p2::bindings::sync::Command as WasiCommand;
    use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
    use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

    struct Host(WasiCtx, ResourceTable);
    impl WasiView for Host {
        fn ctx(&mut self) -> WasiCtxView<'_> {
            WasiCtxView {
                ctx: &mut self.0,
                table: &mut self.1,
            }
        }
    }
    let dir = tmpfs_dir();
    let out = MemoryOutputPipe::new(1 << 20);
    let mut b = WasiCtx::builder();
    b.stdout(out.clone()).inherit_stderr();
    b.preopened_dir(dir.path(), "/", FsPerms::ReadWrite)
        .unwrap();
    b.preopened_dir(dir.path(), "/ro", FsPerms::ReadOnly)
        .unwrap();
    let engine = wasmtime::Engine::default();
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    let component = Component::from_file(&engine, component).unwrap();
    let mut store = wasmtime::Store::new(&engine, Host(b.build(), ResourceTable::new()));
    let cmd = WasiCommand::instantiate(&mut store, &component, &linker).unwrap();
    let ran = cmd.wasi_cli_run().call_run(&mut store).unwrap();
    let text = String::from_utf8(out.contents().to_vec()).unwrap();
    assert!(
        ran.is_ok(),
        "conformance failed on wasmtime's host:\n{text}"
    );
    text
}

/// A conformance line where Larder deliberately answers otherwise than
/// wasmtime's host filesystem: where the spec (wit/deps) leaves the answer
/// open or points at a POSIX call, Larder gives Linux's answer (fs-core's
/// differential tests hold it to Linux); where the spec is explicit, there
/// is no departure.
pub struct Departure {
    /// The conformance line.
    pub line: &'static str,
    /// The error Larder gives.
    pub code: &'static str,
    /// The spec sentence it rests on.
    pub spec: &'static str,
    /// What Linux does, and what wasmtime does instead.
    pub linux: &'static str,
}

pub const DEPARTURES: &[Departure] = &[
    Departure {
        line: "write-stream-on-read-only-fd",
        code: "bad-descriptor",
        spec: "write-via-stream: \"May fail with an error-code describing why the file \
               cannot be written.\"",
        linux: "write(2) on an O_RDONLY descriptor is EBADF; wasmtime hands out the \
                stream and fails on first use",
    },
    Departure {
        line: "read-stream-on-write-only-fd",
        code: "bad-descriptor",
        spec: "read-via-stream: \"May fail with an error-code describing why the file \
               cannot be read.\"",
        linux: "read(2) on an O_WRONLY descriptor is EBADF; wasmtime hands out the \
                stream and fails on first use",
    },
    Departure {
        line: "set-times-bad-nanos",
        code: "invalid",
        spec: "set-times: \"Note: This is similar to `futimens` in POSIX.\"",
        linux: "futimens rejects tv_nsec >= 1e9 with EINVAL; wasmtime carries the \
                excess into the seconds",
    },
    Departure {
        line: "set-size-on-dir",
        code: "invalid",
        spec: "set-size: \"Adjust the size of an open file.\" (no error named)",
        linux: "ftruncate on a descriptor not open for writing (a directory's never \
                is) is EINVAL; wasmtime says bad-descriptor",
    },
    Departure {
        line: "read-dir-fd",
        code: "is-directory",
        spec: "read: \"Note: This is similar to `pread` in POSIX.\"",
        linux: "pread on a directory is EISDIR; wasmtime says bad-descriptor",
    },
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
        match DEPARTURES.iter().find(|d| d.line == key) {
            Some(d) if !a.contains(&format!("name: \"{}\"", d.code)) => {
                diffs.push(format!(
                    "  {route}: {a}\n  expected {}: {}; {}",
                    d.code, d.spec, d.linux
                ));
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

/// Where Larder's WASI 0.3 answer departs from wasmtime's host filesystem,
/// by choice (see [`DEPARTURES`] for 0.2's): the line and Larder's answer.
pub struct DepartureP3 {
    pub line: &'static str,
    /// What follows `LINE: ` in Larder's output.
    pub ours: &'static str,
    /// Why, and what wasmtime does instead.
    pub why: &'static str,
}

pub const DEPARTURES_P3: &[DepartureP3] = &[
    DepartureP3 {
        line: "set-size-on-dir",
        ours: "err ErrorCode::Invalid",
        why: "as in 0.2: ftruncate on a descriptor not open for writing (a directory's \
              never is) is EINVAL; wasmtime says bad-descriptor",
    },
    DepartureP3 {
        line: "dir-flags",
        ours: "ok DescriptorFlags(READ | MUTATE_DIRECTORY)",
        why: "get-flags returns the flags the descriptor was opened with, and this one \
              was opened with mutate-directory (and mutates, on both hosts); wasmtime \
              derives a directory's flags from its read-only OS handle and leaves \
              mutate-directory out",
    },
];

/// [`assert_conformant`] for the WASI 0.3 conformance program.
pub fn assert_conformant_p3(route: &str, ours: &str, theirs: &str) {
    assert!(
        ours.lines().count() >= 100,
        "{route}: conformance printed too little:\n{ours}"
    );
    let mut diffs = Vec::new();
    for (a, b) in ours.lines().zip(theirs.lines()) {
        let (key, answer) = a.split_once(": ").unwrap_or((a, ""));
        match DEPARTURES_P3.iter().find(|d| d.line == key) {
            Some(d) if answer != d.ours => {
                diffs.push(format!("  {route}: {a}\n  expected {}: {}", d.ours, d.why))
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

/// A WASI 0.3 command (written to `out`): a component made from WIT, with
/// 0.3's shapes (async functions, file data as a `stream<u8>`), importing
/// `wasi:filesystem/{types,preopens}@0.3.0` and exporting
/// `wasi:cli/run@0.3.0`. Enough to be recognised, not to run.
pub fn wasi_p3_command(out: &Path) {
    const WIT: &str = r#"
        package larder:p3-test;
        package wasi:filesystem@0.3.0 {
            interface types {
                enum error-code { access, is-directory, not-permitted }
                resource descriptor {
                    read-via-stream: func(offset: u64)
                        -> tuple<stream<u8>, future<result<_, error-code>>>;
                    stat-size: async func() -> result<u64, error-code>;
                }
            }
            interface preopens {
                use types.{descriptor};
                get-directories: func() -> list<tuple<descriptor, string>>;
            }
        }
        package wasi:cli@0.3.0 {
            interface run {
                run: async func() -> result;
            }
        }
        world app {
            import wasi:filesystem/types@0.3.0;
            import wasi:filesystem/preopens@0.3.0;
            export wasi:cli/run@0.3.0;
        }
    "#;
    component_from_wit(WIT, out);
}

/// A component made from `wit` (its world `app`), with a module that only
/// has the right imports and exports, written to `out`.
pub fn component_from_wit(wit: &str, out: &Path) {
    let mut resolve = wit_parser::Resolve::default();
    let pkg = resolve.push_str("app.wit", wit).unwrap();
    let world = resolve.select_world(&[pkg], Some("app")).unwrap();
    let mangling = wit_parser::ManglingAndAbi::Legacy(wit_parser::LiftLowerAbi::AsyncCallback);
    let mut module = wit_component::dummy_module(&resolve, world, mangling);
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
        false,
    )
    .unwrap();
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap();
    std::fs::write(out, component).unwrap();
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

/// A config dir (read-only mount) and a state dir, as on a host.
pub fn config_dirs(root: &Path) -> (PathBuf, PathBuf) {
    let cfg = root.join("cfg");
    let state = root.join("state");
    std::fs::create_dir_all(cfg.join("conf.d")).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(cfg.join("settings.conf"), "greeting = hello\nlevel = 3\n").unwrap();
    std::fs::write(cfg.join("conf.d/extra.conf"), "extra\n").unwrap();
    std::os::unix::fs::symlink("settings.conf", cfg.join("current")).unwrap();
    std::os::unix::fs::symlink("../../../../../etc/hostname", cfg.join("escape")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", cfg.join("abs")).unwrap();
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    std::fs::File::options()
        .write(true)
        .open(cfg.join("settings.conf"))
        .unwrap()
        .set_modified(when)
        .unwrap();
    std::fs::write(state.join("count"), "41\n").unwrap();
    (cfg, state)
}

/// `--mount` flags bundling the settings app's config (read-only) and state.
pub fn settings_mounts(cfg: &Path, state: &Path) -> Vec<String> {
    vec![
        "--mount".into(),
        format!("/etc/app={}:ro", cfg.display()),
        "--mount".into(),
        format!("/var/lib/app={}", state.display()),
    ]
}

/// What the settings app must see of the bundle: contents, mtimes,
/// symlinks, a read-only config, no way out, copy-on-write state.
pub fn assert_settings_run(out: &str) {
    for line in [
        "tree: /etc/app/abs symlink -> /etc/hostname",
        "tree: /etc/app/conf.d/extra.conf file size=6",
        "tree: /etc/app/current symlink -> settings.conf",
        "tree: /etc/app/settings.conf file size=27 mtime=1600000000",
        "setting: greeting = hello",
        "setting: level = 3",
        "via-symlink: ok \"greeting = hello\\nlevel = 3\\n\"",
        "write-config: err ReadOnlyFilesystem",
        "create-in-config: err ReadOnlyFilesystem",
        "remove-config: err ReadOnlyFilesystem",
        "dotdot-escape: err PermissionDenied",
        "symlink-escape: err PermissionDenied",
        "absolute-symlink: err NotFound",
        "count-write: ok ()",
        "count: ok \"42\"",
        "log-append: ok ()",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
}

/// `larder compose APP -o DIR/out.wasm EXTRA...`, checked: it succeeded
/// and the output reaches no host filesystem.
pub fn compose(dir: &Path, app: &Path, extra: &[&str]) -> PathBuf {
    let out = dir.join("out.wasm");
    let mut args = vec![
        "compose",
        app.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let r = larder(&args);
    assert!(r.status.success(), "larder compose: {}", text(&r.stderr));
    assert_no_host_filesystem(&out);
    out
}

/// The config directory the Python and JS examples read, as an app ships
/// one: `root`/cfg.
pub fn app_config(root: &Path) -> PathBuf {
    let cfg = root.join("cfg");
    std::fs::create_dir_all(cfg.join("conf.d")).unwrap();
    std::fs::write(cfg.join("app.conf"), "greeting=hello\nlevel=3\n").unwrap();
    std::fs::write(cfg.join("conf.d/extra"), "x\n").unwrap();
    cfg
}

/// `wasmtime run` with its compile cache on (a large app compiles once);
/// its stdout.
pub fn wasmtime_cached(args: &[&str]) -> String {
    ok(Command::new("wasmtime")
        .args(["run", "-C", "cache=y"])
        .args(args))
}

/// Two runs of `app` under `wasmtime run FLAGS --dir` (the config at
/// /etc/app, and a tmpfs state directory at /state they share): what every
/// Larder route must print, run by run.
pub fn reference_runs(app: &Path, cfg: &Path, flags: &[&str]) -> [String; 2] {
    let state = tmpfs_dir();
    let cfg = format!("{}::/etc/app", cfg.display());
    let state = format!("{}::/state", state.path().display());
    let run = || {
        let mut args = flags.to_vec();
        args.extend(["--dir", &cfg, "--dir", &state, app.to_str().unwrap()]);
        wasmtime_cached(&args)
    };
    [run(), run()]
}

/// `app` composed with `cfg` bundled read-only at /etc/app and an empty
/// /state, into `dir`/composed.wasm; checked to reach no host directory.
pub fn compose_with_config(app: &Path, cfg: &Path, dir: &Path) -> PathBuf {
    let empty = dir.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let composed = dir.join("composed.wasm");
    let r = larder(&[
        "compose",
        app.to_str().unwrap(),
        "--mount",
        &format!("/etc/app={}:ro", cfg.display()),
        "--mount",
        &format!("/state={}", empty.display()),
        "-o",
        composed.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert_no_host_filesystem(&composed);
    composed
}

/// Two runs of `app` under `larder run --store STORE` with `cfg` mounted
/// read-only at /etc/app (and /state made in the store): their stdout.
pub fn store_runs(app: &Path, cfg: &Path, store: &Path) -> [String; 2] {
    std::fs::create_dir_all(store.join("state")).unwrap();
    let mount = format!("/etc/app={}:ro", cfg.display());
    let run = || {
        ok(Command::new(env!("CARGO_BIN_EXE_larder"))
            .arg("run")
            .arg(app)
            .arg("--store")
            .arg(store)
            .args(["--mount", &mount]))
    };
    [run(), run()]
}
