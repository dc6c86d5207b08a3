//! Composed apps that keep their files: `larder compose --persist s3://...`
//! under the real `wasmtime run -S http` against a real S3-compatible
//! server (moto on loopback), with no help from the runtime; the last sync
//! at exit (both routes); and an S3 outage in the middle of a run.

mod common;
#[path = "../../larder-sync/tests/common/moto.rs"]
mod moto;

use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// `larder compose APP --persist WHERE`, checked; DIR/APP-host.wasm or
/// DIR/APP-s3.wasm.
fn compose_into(app: &str, persist: &str, dir: &Path) -> PathBuf {
    let tag = if persist == "host" { "host" } else { "s3" };
    let out = dir.join(format!("{app}-{tag}.wasm"));
    let r = compose_persist(app, persist, &out);
    assert!(r.status.success(), "{}", text(&r.stderr));
    out
}

/// Plain `wasmtime run -S http`, credentials passed from this process's
/// environment (moto::Moto::start sets them) by name only.
fn wasmtime_s3(component: &Path) -> Command {
    let mut cmd = Command::new("wasmtime");
    cmd.args(["run", "-S", "http"])
        .args([
            "--env",
            "AWS_ACCESS_KEY_ID",
            "--env",
            "AWS_SECRET_ACCESS_KEY",
        ])
        .arg(component);
    cmd
}

/// `larder run` with a store, stdin from `input`.
fn larder_run_with_input(app: &Path, store: &str, input: &str) -> Output {
    with_input(
        Command::new(env!("CARGO_BIN_EXE_larder")).args([
            "run",
            app.to_str().unwrap(),
            "--store",
            store,
        ]),
        input,
    )
}

/// The acceptance run of the issue: a composed app writes, exits; a second
/// run reads it back; `larder run --store` (the host-side engine) and
/// `larder ls` see the same tree, and the composed app carries on from what
/// the host side wrote. Also through `wac plug` with `larder adapter`.
#[test]
fn a_composed_app_keeps_its_files_in_s3_under_plain_wasmtime() {
    let m = moto::Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let url = m.url("direct");
    let composed = compose_into("append", &url, dir.path());
    let imports = imports(&composed);
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("wasi:http/outgoing-handler@")),
        "it reaches S3 over wasi:http: {imports:?}"
    );
    assert!(
        !imports.iter().any(|i| i.starts_with("larder:")),
        "and needs nothing from the runtime but WASI: {imports:?}"
    );
    assert_no_host_filesystem(&composed);
    // No credentials in the .wasm, even when composing where they are
    // set: the URL is what is bundled.
    let secret = "never-in-the-wasm-7f3a9c";
    let with_creds = dir.path().join("with-creds.wasm");
    ok(Command::new(env!("CARGO_BIN_EXE_larder"))
        .args([
            "compose",
            guest("append").to_str().unwrap(),
            "--persist",
            &url,
            "-o",
        ])
        .arg(&with_creds)
        .env("AWS_ACCESS_KEY_ID", secret)
        .env("AWS_SECRET_ACCESS_KEY", secret));
    let bytes = std::fs::read(&with_creds).unwrap();
    let holds = |s: &str| bytes.windows(s.len()).any(|w| w == s.as_bytes());
    assert!(
        holds(&m.endpoint),
        "the bundled URL is found (the search works)"
    );
    assert!(!holds(secret), "no credential is bundled");

    ok(wasmtime_s3(&composed).args(["/log", "/files", "20"]));
    ok(wasmtime_s3(&composed).args(["/log", "/files", "5"]));
    let cat = larder(&["cat", "--store", &url, "/log"]);
    assert!(cat.status.success(), "{}", text(&cat.stderr));
    assert_eq!(text(&cat.stdout).lines().count(), 25, "both runs' records");

    // The host-side engine continues the same tree, and the composed app
    // continues from what it wrote.
    let out = Command::new(env!("CARGO_BIN_EXE_larder"))
        .args(["run", guest("append").to_str().unwrap(), "--store", &url])
        .args(["--", "/log", "/files", "3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    ok(wasmtime_s3(&composed).args(["/log", "/files", "2"]));
    // `larder run` gives the composed app wasi:http as `wasmtime run -S
    // http` does: it too carries on from the same tree.
    ok(Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("run")
        .args([
            "--env",
            "AWS_ACCESS_KEY_ID",
            "--env",
            "AWS_SECRET_ACCESS_KEY",
        ])
        .arg(&composed)
        .args(["--", "/log", "/files", "1"]));
    let log = text(&larder(&["cat", "--store", &url, "/log"]).stdout);
    assert_eq!(log.lines().count(), 31);
    assert!(log
        .lines()
        .all(|l| l.len() == 63 && l.starts_with("instance")));

    // One tree, three views: `larder ls`, the host-side engine, the
    // composed app (fsshell composed for the same prefix).
    let shell = compose_into("fsshell", &url, dir.path());
    let ls = text(&larder(&["ls", "--store", &url, "/files"]).stdout);
    let mut from_ls: Vec<String> = ls
        .lines()
        .filter_map(|l| l.rsplit('/').next().map(String::from))
        .filter(|n| n != "files")
        .collect();
    from_ls.sort();
    assert_eq!(from_ls.len(), 20, "{ls}");
    let composed_ls = with_input(&mut wasmtime_s3(&shell), "ls /files\n");
    assert!(
        composed_ls.status.success(),
        "{}",
        text(&composed_ls.stderr)
    );
    let host_ls = larder_run_with_input(&guest("fsshell"), &url, "ls /files\n");
    assert!(host_ls.status.success(), "{}", text(&host_ls.stderr));
    assert_eq!(text(&composed_ls.stdout).trim(), from_ls.join(" "));
    assert_eq!(text(&host_ls.stdout).trim(), from_ls.join(" "));

    // Another S3 client sees plain objects with s3fs-style metadata.
    let seen = m.boto3(
        "h = S3.head_object(Bucket=B, Key='direct/log')\n\
         print(h['ContentLength'], h['Metadata']['mode'])\n",
    );
    assert_eq!(seen, format!("{} {}\n", 31 * 64, 0o100644));

    // wac users: the S3 adapter on its own, plugged with `wac plug`.
    let adapter = dir.path().join("vfs-s3.wasm");
    let out = larder(&[
        "adapter",
        "--persist",
        &url,
        "-o",
        adapter.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plugged = dir.path().join("plugged.wasm");
    ok(Command::new("wac").args([
        "plug",
        "--plug",
        adapter.to_str().unwrap(),
        guest("fsshell").to_str().unwrap(),
        "-o",
        plugged.to_str().unwrap(),
    ]));
    assert_no_host_filesystem(&plugged);
    let out = with_input(&mut wasmtime_s3(&plugged), "cat /files/i0-19\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    // append writes its instance number (0 outside `larder run`) in each.
    assert_eq!(text(&out.stdout), "0\n", "a file the first run wrote");
}

/// Changes an app neither fsyncs nor closes (a directory made, a file
/// removed, a rename) reach the store when it returns from `main` or calls
/// `exit`: the run bridge and the adapter's `wasi:cli/exit` sync last.
/// Both routes: S3 under wasmtime, and a lent directory under `larder run`.
#[test]
fn the_last_changes_reach_the_store_at_exit() {
    let m = moto::Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let url = m.url("exit");
    let lent = dir.path().join("lent");
    let lent = lent.to_str().unwrap();
    let lent_app = compose_into("fsshell", "host", dir.path());
    let s3_app = compose_into("fsshell", &url, dir.path());
    type Run<'a> = Box<dyn Fn(&str) -> Output + 'a>;
    let routes: [(&str, Run); 2] = [
        (
            "s3",
            Box::new(|input: &str| with_input(&mut wasmtime_s3(&s3_app), input)),
        ),
        (
            "lent",
            Box::new(|input: &str| larder_run_with_input(&lent_app, lent, input)),
        ),
    ];
    for (route, run) in routes {
        let out = run("mkdir /d\nwrite /d/a one\nwrite /d/b two\nsync /d/a\n");
        assert!(out.status.success(), "{route}: {}", text(&out.stderr));
        // Returning from main: a removal and a new directory.
        let out = run("rm /d/a\nmkdir /d/e\n");
        assert!(out.status.success(), "{route}: {}", text(&out.stderr));
        assert_eq!(text(&run("ls /d\n").stdout), "b e\n", "{route}");
        // std::process::exit(3): the status is a failure, the change kept.
        let out = run("rm /d/b\nquit 3\n");
        assert_eq!(out.status.code(), Some(1), "{route}: {}", text(&out.stderr));
        assert_eq!(text(&run("ls /d\n").stdout), "e\n", "{route}");
        let out = run("write /d/c three\nquit 0\n");
        assert!(out.status.success(), "{route}: {}", text(&out.stderr));
        assert_eq!(text(&run("cat /d/c\n").stdout), "three\n", "{route}");
    }
    let ls = text(&larder(&["ls", "--store", &url, "/d"]).stdout);
    assert!(
        ls.contains("/d/c") && ls.contains("/d/e") && !ls.contains("/d/a"),
        "{ls}"
    );
}

/// A store lent by `larder run --store s3://` to a composed app
/// (`--persist host`) costs what the host's own engine costs: the app's
/// restore is the listing and the index (the host answers `list-keys` for
/// it), not a HEAD per object.
#[test]
fn a_lent_s3_store_restores_through_its_index() {
    let m = moto::Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let url = m.url("lent-index");
    let app = compose_into("fsshell", "host", dir.path());
    let files = 150;
    let mut script = String::from("mkdir /d\n");
    for i in 0..files {
        script.push_str(&format!("write /d/f{i} v{i}\n"));
    }
    let out = larder_run_with_input(&app, &url, &script);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let index =
        m.boto3("print(S3.head_object(Bucket=B, Key='lent-index/.larder/index')['ContentLength'])");
    assert!(index.trim().parse::<u64>().unwrap() > 0, "{index}");

    // The index vouches only for objects written in an earlier second
    // than itself: the next run finds the last second's files unvouched
    // and, a second later, rewrites the index at its exit.
    std::thread::sleep(Duration::from_millis(1100));
    let out = larder_run_with_input(&app, &url, "cat /d/f1\n");
    assert_eq!(text(&out.stdout), "v1\n", "{}", text(&out.stderr));

    let before = m.requests().len();
    let out = larder_run_with_input(&app, &url, "cat /d/f7\nls /d\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("v7\n"), "{stdout}");
    assert_eq!(stdout.lines().nth(1).unwrap().split(' ').count(), files);
    let sent = &m.requests()[before..];
    let heads = sent.iter().filter(|(method, _)| method == "HEAD").count();
    assert_eq!(heads, 0, "for a restore of {files} files: {sent:?}");
    let lists = sent
        .iter()
        .filter(|(_, path)| path.contains("list-type=2"))
        .count();
    assert_eq!(lists, 1, "{sent:?}");
}

/// A live composed app, driven line by line.
/// The S3 server stops answering mid-run: the app's fsync fails (EIO)
/// within the attempt timeout and retries, closes meanwhile cost one
/// attempt, the app goes on working in memory, and once the server is
/// back a later sync sends everything. Nothing is lost: the store and a
/// fresh run hold every change. `run` starts the app (a fresh process).
fn rides_out_an_outage(m: &moto::Moto, url: &str, run: impl Fn() -> Command) {
    let mut sh = Shell::start(&mut run());
    assert_eq!(sh.ask("write /a one").0, "ok");
    assert_eq!(sh.ask("sync /a").0, "ok");
    {
        let _paused = Paused::new(m.pid());
        // Closing a written file tries to sync and, failing, keeps the
        // change queued: the write itself succeeds.
        assert_eq!(sh.ask("write /b two").0, "ok");
        let (reply, took) = sh.ask("sync /b");
        assert!(reply.starts_with("error:"), "fsync must fail: {reply}");
        assert!(took < Duration::from_secs(60), "gave up in {took:?}");
        assert_eq!(sh.ask("cat /b").0, "two", "the app's files still work");
        let (reply, took) = sh.ask("append /a +");
        assert_eq!(reply, "ok");
        // Six one-second attempts would be 7 s and more.
        assert!(took < Duration::from_secs(5), "a close took {took:?}");
        assert_eq!(sh.ask("rm /b").0, "ok");
        assert_eq!(sh.ask("write /c three").0, "ok");
    }
    // Back: the next sync sends everything that waited.
    assert_eq!(sh.ask("sync /c").0, "ok");
    assert_eq!(sh.ask("ls /").0, "a c");
    writeln!(sh.stdin, "exit").unwrap();
    assert!(sh.child.wait().unwrap().success());
    let cat = |p: &str| text(&larder(&["cat", "--store", url, p]).stdout);
    assert_eq!(cat("/a"), "one+");
    assert_eq!(cat("/c"), "three");
    let ls = text(&larder(&["ls", "--store", url]).stdout);
    assert!(!ls.contains("/b"), "the removal reached the store: {ls}");
    let again = with_input(&mut run(), "cat /a\nls /\n");
    assert_eq!(text(&again.stdout), "one+\na c\n");
}

#[test]
fn a_composed_app_rides_out_an_s3_outage() {
    let m = moto::Moto::start();
    let dir = tempfile::tempdir().unwrap();
    // One-second attempts, so the outage costs seconds, not minutes.
    let url = format!("{}&timeout=1", m.url("outage"));
    let app = compose_into("fsshell", &url, dir.path());
    rides_out_an_outage(&m, &url, || wasmtime_s3(&app));
}

/// The same with the store lent by `larder run` (`--persist host`).
#[test]
fn a_composed_app_rides_out_an_s3_outage_in_a_lent_store() {
    let m = moto::Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{}&timeout=1", m.url("lent-outage"));
    let app = compose_into("fsshell", "host", dir.path());
    rides_out_an_outage(&m, &url, || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_larder"));
        c.args(["run", app.to_str().unwrap(), "--store", &url]);
        c
    });
}

/// What can go wrong before the app runs is said plainly: bad URLs at
/// compose time, missing credentials or an unreachable store at start.
#[test]
fn bad_s3_persistence_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.wasm");
    let compose = |url: &str| compose_persist("fsshell", url, &out_path);
    for (url, says) in [
        ("s3:///p", "no bucket"),
        ("s3://b/p?secret=x", "unknown option \"secret\""),
        ("s3://b/p?timeout=0", "timeout"),
        ("s3://b/p?endpoint=ftp://x", "not an http(s) URL"),
        ("gs://b/p", "expected `host` or s3://"),
    ] {
        let out = compose(url);
        assert_eq!(out.status.code(), Some(2), "{url}");
        assert!(
            text(&out.stderr).contains(says),
            "{url}: {}",
            text(&out.stderr)
        );
        assert!(!out_path.exists(), "nothing written for {url}");
    }
    let out = compose_persist("netcopy", "s3://b/p", &out_path);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("command apps only"));

    // Nothing listens on port 9: the app stops at start, naming the store,
    // rather than running on an empty filesystem.
    let app = compose_into(
        "fsshell",
        "s3://b/p?endpoint=http://127.0.0.1:9",
        dir.path(),
    );
    let out = with_input(
        Command::new("wasmtime")
            .args(["run", "-S", "http"])
            .args([
                "--env",
                "AWS_ACCESS_KEY_ID=k",
                "--env",
                "AWS_SECRET_ACCESS_KEY=s",
            ])
            .arg(&app),
        "ls /\n",
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot restore the app's files from the store")
            && err.contains("127.0.0.1:9"),
        "{err}"
    );
    // Under `larder run` (which gives it wasi:http) it stops the same way.
    let out = with_input(
        Command::new(env!("CARGO_BIN_EXE_larder"))
            .args(["run", "--env", "AWS_ACCESS_KEY_ID=k"])
            .args(["--env", "AWS_SECRET_ACCESS_KEY=s"])
            .arg(&app),
        "ls /\n",
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot restore the app's files from the store")
            && err.contains("127.0.0.1:9"),
        "{err}"
    );
    // No credentials in its environment: said, with the way to give them.
    let out = with_input(
        Command::new("wasmtime")
            .args(["run", "-S", "http"])
            .arg(&app),
        "ls /\n",
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no credentials"),
        "{}",
        text(&out.stderr)
    );
}
