//! `larder serve` and apps composed with `--remote`: separate `wasmtime`
//! processes sharing one filesystem over 9P2000.L, an independent 9P
//! client (Debian's diod tools) reading what an app wrote, the conformance
//! program through the remote adapter, and the server going away mid-run.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A `larder serve` on loopback, stopped on drop.
struct Served {
    child: Child,
    port: u16,
    /// What it has logged so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl Served {
    fn start(extra: &[&str]) -> Served {
        Served::on("127.0.0.1:0", extra)
    }

    fn on(listen: &str, extra: &[&str]) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_larder"))
            .args(["serve", "--listen", listen])
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        let port = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("larder serve said: {line}"));
        // Keep draining its log so it never blocks on a full pipe.
        let log = Arc::new(Mutex::new(Vec::new()));
        let kept = log.clone();
        std::thread::spawn(move || {
            for l in err.lines().map_while(Result::ok) {
                eprintln!("[serve] {l}");
                kept.lock().unwrap().push(l);
            }
        });
        Served { child, port, log }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `larder compose GUEST --remote ADDR`, checked.
fn compose_remote(dir: &Path, guest_name: &str, addr: &str) -> PathBuf {
    let out = dir.join(format!("{guest_name}-remote.wasm"));
    let r = larder(&[
        "compose",
        guest(guest_name).to_str().unwrap(),
        "--remote",
        addr,
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    out
}

/// `wasmtime run -S inherit-network APP`, more flags first.
fn wasmtime_net(app: &Path, flags: &[&str]) -> Command {
    let mut c = Command::new("wasmtime");
    c.args(["run", "-S", "inherit-network"])
        .args(flags)
        .arg(app);
    c
}

fn shell(app: &Path, flags: &[&str]) -> Shell {
    Shell::start(&mut wasmtime_net(app, flags))
}

/// `larder serve --max-bytes/--max-inodes` bounds what all clients
/// together may store.
#[test]
fn serve_takes_a_quota() {
    let served = Served::start(&["--max-bytes", "4M", "--max-inodes", "20"]);
    let dir = tempfile::tempdir().unwrap();
    let app = compose_remote(dir.path(), "fsshell", &served.addr());
    let mut a = shell(&app, &[]);
    let reply = a.ask("grow /big 10").0;
    assert!(reply.starts_with("wrote 4 MiB, then error: "), "{reply}");
    assert_eq!(a.ask("mkdir /d").0, "ok");
    // 20, less the root, /big and /d.
    assert!(
        a.ask("fill /d 100")
            .0
            .starts_with("created 17, then error: No space left"),
        "inodes"
    );
    let mut b = shell(&app, &[]);
    assert!(b
        .ask("write /other x")
        .0
        .starts_with("error: No space left"));
    assert_eq!(b.ask("rm /d/0").0, "ok");
    // An inode is free, but no data: /big holds every byte.
    assert!(b.ask("write /other x").0.starts_with("error: "));
    assert_eq!(b.ask("rm /big").0, "ok");
    assert_eq!(b.ask("write /other x").0, "ok");
    assert_eq!(a.ask("cat /other").0, "x");
}

#[test]
fn two_wasmtime_processes_share_files_through_one_server() {
    let served = Served::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let app = compose_remote(dir.path(), "fsshell", &served.addr());
    let mut a = shell(&app, &[]);
    let mut b = shell(&app, &[]);
    assert_eq!(a.ask("mkdir /shared").0, "ok");
    assert_eq!(a.ask("write /shared/note from a").0, "ok");
    assert_eq!(b.ask("cat /shared/note").0, "from a");
    assert_eq!(b.ask("append /shared/note , and b").0, "ok");
    // Close-to-open: a's next open sees b's append.
    assert_eq!(a.ask("cat /shared/note").0, "from a, and b");
    assert_eq!(a.ask("write /shared/note rewritten").0, "ok");
    assert_eq!(b.ask("cat /shared/note").0, "rewritten");
    assert_eq!(b.ask("rm /shared/note").0, "ok");
    assert!(a.ask("cat /shared/note").0.starts_with("error:"));
    assert_eq!(a.ask("ls /shared").0, "");

    // Concurrent appends from two processes: every record lands whole.
    let append = compose_remote(dir.path(), "append", &served.addr());
    let runs: Vec<Child> = (1..=2)
        .map(|i| {
            wasmtime_net(&append, &["--env", &format!("LARDER_INSTANCE={i}")])
                .args(["/log", "/files", "300"])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut r in runs {
        assert!(r.wait().unwrap().success());
    }
    // Read by another client (the shell answers in single lines).
    let log = ok(Command::new("diodcat").args(["-s", &served.addr(), "-a", "/", "/log"]));
    let mut per = [0usize; 3];
    for rec in log.split_terminator('\n') {
        let fields: Vec<&str> = rec.split_whitespace().collect();
        assert!(
            matches!(fields.as_slice(), ["instance", "1" | "2", "record", _, ..]),
            "torn record: {rec:?}"
        );
        per[fields[1].parse::<usize>().unwrap()] += 1;
    }
    assert_eq!(per, [0, 300, 300], "records lost or doubled");
    assert_eq!(a.ask("ls /files").0.split(' ').count(), 600);
}

#[test]
fn an_independent_9p_client_reads_what_an_app_wrote() {
    let served = Served::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let app = compose_remote(dir.path(), "fsshell", &served.addr());
    let mut sh = shell(&app, &[]);
    assert_eq!(sh.ask("mkdir /docs/deep").0, "ok");
    assert_eq!(
        sh.ask("write /docs/readme.txt written by a wasm app").0,
        "ok"
    );
    assert_eq!(sh.ask("write /docs/deep/ünïcode.txt second").0, "ok");
    let diod = |tool: &str, args: &[&str]| {
        ok(Command::new(tool)
            .args(["-s", &served.addr(), "-a", "/"])
            .args(args))
    };
    let listing = diod("diodls", &["-l", "/docs"]);
    let lines: Vec<&str> = listing.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with('d') && l.ends_with(" deep")),
        "{listing}"
    );
    // Size 21: the app's bytes, counted by the other client.
    assert!(
        lines.iter().any(|l| l.starts_with("-rw-r--r--")
            && l.contains(" 21 ")
            && l.ends_with(" readme.txt")),
        "{listing}"
    );
    assert_eq!(
        diod("diodcat", &["/docs/readme.txt"]),
        "written by a wasm app"
    );
    assert_eq!(diod("diodls", &["/docs/deep"]).trim(), "ünïcode.txt");
    assert_eq!(diod("diodcat", &["/docs/deep/ünïcode.txt"]), "second");
}

#[test]
fn wac_plug_users_get_the_remote_adapter_too() {
    let served = Served::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let adapter = dir.path().join("vfs_adapter_remote.wasm");
    let r = larder(&[
        "adapter",
        "--remote",
        &served.addr(),
        "-o",
        adapter.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let app = dir.path().join("plugged.wasm");
    ok(Command::new("wac")
        .arg("plug")
        .arg("--plug")
        .arg(&adapter)
        .arg(guest("fsshell"))
        .arg("-o")
        .arg(&app));
    assert_no_host_filesystem(&app);
    let mut sh = shell(&app, &[]);
    assert_eq!(sh.ask("write /plugged yes").0, "ok");
    let seen = ok(Command::new("diodcat").args(["-s", &served.addr(), "-a", "/", "/plugged"]));
    assert_eq!(seen, "yes");
}

#[test]
fn conformance_through_the_remote_adapter_matches_wasmtime() {
    let served = Served::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let app = guest("conformance");
    let remote = compose_remote(dir.path(), "conformance", &served.addr());
    let ours = ok(&mut wasmtime_net(&remote, &[]));
    assert_conformant("remote adapter", &ours, &reference_run(&app));
    // The server's fs-core is the local adapter's: the same answers.
    assert_eq!(ours, text(&larder(&["run", app.to_str().unwrap()]).stdout));
}

#[test]
fn the_server_going_away_gives_io_errors_and_a_return_reconnects() {
    let store = tempfile::tempdir().unwrap();
    let store_arg = store.path().to_str().unwrap();
    let mut served = Served::start(&["--store", store_arg]);
    let addr = served.addr();
    let dir = tempfile::tempdir().unwrap();
    let app = compose_remote(dir.path(), "fsshell", &addr);
    let mut sh = shell(&app, &["--env", "LARDER_REMOTE_TIMEOUT=2"]);
    assert_eq!(sh.ask("write /kept before").0, "ok");
    // fsync is what makes it survive the server's crash.
    assert_eq!(sh.ask("sync /kept").0, "ok");

    // Gone: killed outright.
    served.kill();
    let (reply, took) = sh.ask("cat /kept");
    assert!(reply.starts_with("error:"), "{reply}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let (reply, _) = sh.ask("write /lost during");
    assert!(reply.starts_with("error:"), "{reply}");

    // Back on the same address, from the same store: the app reconnects.
    let served = Served::on(&addr, &["--store", store_arg]);
    assert_eq!(sh.ask("cat /kept").0, "before");
    assert_eq!(sh.ask("write /after back").0, "ok");
    assert_eq!(sh.ask("cat /after").0, "back");

    // Hung rather than gone (SIGSTOP): the call fails at the timeout
    // instead of hanging, and the next one after it resumes works.
    {
        let _paused = Paused::new(served.child.id());
        let t = Instant::now();
        let (reply, _) = sh.ask("cat /after");
        assert!(reply.starts_with("error:"), "{reply}");
        let took = t.elapsed();
        assert!(
            (Duration::from_millis(1900)..Duration::from_secs(10)).contains(&took),
            "took {took:?}"
        );
    }
    assert_eq!(sh.ask("cat /after").0, "back");
}

#[test]
fn secrets_addresses_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    // A server needing a secret; the address bundled is wrong on purpose
    // and LARDER_REMOTE puts it right at run time.
    let served = Served::start(&["--secret", "s3cr3t"]);
    let app = compose_remote(dir.path(), "fsshell", "127.0.0.1:9");
    let right = format!("LARDER_REMOTE={}", served.addr());
    let out = with_input(&mut wasmtime_net(&app, &["--env", &right]), "write /x 1\n");
    assert!(
        text(&out.stdout).starts_with("error:"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("attach refused: access"),
        "{}",
        text(&out.stderr)
    );
    let mut with = shell(
        &app,
        &["--env", &right, "--env", "LARDER_REMOTE_SECRET=s3cr3t"],
    );
    assert_eq!(with.ask("write /x 1").0, "ok");
    assert_eq!(with.ask("cat /x").0, "1");

    // A malformed frame: that connection is closed, with a log line naming
    // the problem, and the server carries on.
    let mut bad = std::net::TcpStream::connect(served.addr()).unwrap();
    std::io::Write::write_all(&mut bad, &3u32.to_le_bytes()).unwrap();
    bad.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(std::io::Read::read(&mut bad, &mut [0u8; 16]).unwrap(), 0);
    let t = Instant::now();
    while !served.log.lock().unwrap().iter().any(|l| {
        l.contains("closing the connection: malformed message: frame size 3 out of bounds")
    }) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no log line: {:?}",
            served.log
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(with.ask("cat /x").0, "1");

    // Nothing listening: errors and one clear line, never a hang or trap.
    let out = with_input(&mut wasmtime_net(&app, &[]), "write /x 1\ncat /x\n");
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("error:"))
            .count(),
        2
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("larder: remote filesystem 127.0.0.1:9: connect"),
        "{err}"
    );

    // Compose and serve refuse what cannot work, naming the problem.
    let bad = larder(&[
        "compose",
        guest("fsshell").to_str().unwrap(),
        "--remote",
        "localhost",
        "-o",
        dir.path().join("x.wasm").to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("--remote localhost: expected HOST:PORT"));
    assert!(!dir.path().join("x.wasm").exists());
    let open = larder(&["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(open.status.code(), Some(2));
    assert!(
        text(&open.stderr).contains("is not a loopback address"),
        "{}",
        text(&open.stderr)
    );
}
