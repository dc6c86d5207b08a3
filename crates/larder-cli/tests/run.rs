//! `larder run` end to end: the real binary, real components.

mod common;

use common::{
    assert_conformant, assert_conformant_p3, assert_usage_error, guest, larder, reference_run,
    reference_run_read_only, text, with_input,
};
use std::process::Command;

#[test]
fn conformance_matches_wasmtime_host_filesystem() {
    let wasm = guest("conformance");
    let ours = larder(&["run", wasm.to_str().unwrap()]);
    assert!(ours.status.success(), "{}", text(&ours.stderr));
    let ours = text(&ours.stdout);
    assert_conformant("larder run", &ours, &reference_run(&wasm));
}

/// A WASI 0.3 app (every `wasi:filesystem@0.3` function, file data as
/// streams, and std's 0.2 calls on the same files) under `larder run`
/// answers as under wasmtime's own 0.3 host on tmpfs.
#[test]
fn conformance_p3_matches_wasmtime_host_filesystem() {
    let wasm = guest("conformance_p3");
    let ours = larder(&["run", wasm.to_str().unwrap()]);
    assert!(ours.status.success(), "{}", text(&ours.stderr));
    let ours = text(&ours.stdout);
    assert!(ours.contains("p2-read: ok \"from 0.3\""), "{ours}");
    assert_conformant_p3("larder run (WASI 0.3)", &ours, &reference_run(&wasm));
}

/// `--preopen NAME:ro` is wasmtime's read-only preopen: reads work and
/// every mutating call through it is `not-permitted`, as on wasmtime's host.
#[test]
fn read_only_preopen_matches_wasmtime() {
    let wasm = guest("conformance");
    let ours = larder(&[
        "run",
        "--preopen",
        "/",
        "--preopen",
        "/ro=/:ro",
        wasm.to_str().unwrap(),
    ]);
    assert!(ours.status.success(), "{}", text(&ours.stderr));
    let ours = text(&ours.stdout);
    assert!(
        ours.contains("ro-write: err ErrorCode { code: 31"),
        "{ours}"
    );
    assert_conformant("larder run :ro", &ours, &reference_run_read_only(&wasm));
}

#[test]
fn instances_share_one_filesystem() {
    let wasm = guest("append");
    let out = larder(&[
        "run",
        wasm.to_str().unwrap(),
        "--instances",
        "4",
        "--",
        "/log",
        "/files",
        "50",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for i in 0..4 {
        assert!(
            stdout.contains(&format!("instance {i}: 50 records")),
            "{stdout}"
        );
    }
}

/// wasmtime's spellings work as under wasmtime: `--dir HOST::GUEST` (and
/// a bare `--dir HOST`), `--env KEY` passing this process's value on (and
/// an unset one staying unset), arguments after the app without `--`.
/// The same command line gives the same answers under both.
#[test]
fn wasmtime_flags_mean_what_they_mean_under_wasmtime() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, cwd) = (tmp.path().join("data"), tmp.path().join("cwd"));
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::write(data.join("x.txt"), "from data").unwrap();
    std::fs::write(cwd.join("y.txt"), "from cwd").unwrap();
    let dir_data = format!("{}::/data", data.display());
    let app = guest("fsshell");
    let script = "args\nenv FROM_HOST\nenv GIVEN\nenv NOT_SET_ANYWHERE\n\
                  cat /data/x.txt\nls /data\ncat y.txt\nwrite /data/new hi\n\
                  cat /data/new\n";
    let run = |program: &str, sub: &[&str]| {
        let out = with_input(
            Command::new(program)
                .args(sub)
                .args(["--dir", &dir_data, "--dir", "."])
                .args([
                    "--env",
                    "FROM_HOST",
                    "--env",
                    "GIVEN=2",
                    "--env",
                    "NOT_SET_ANYWHERE",
                ])
                .arg(&app)
                .args(["one", "two"])
                .current_dir(&cwd)
                .env("FROM_HOST", "inherited")
                .env_remove("NOT_SET_ANYWHERE"),
            script,
        );
        assert!(out.status.success(), "{program}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let ours = run(env!("CARGO_BIN_EXE_larder"), &["run"]);
    // The copy is Larder's: the host directory is untouched.
    assert!(!data.join("new").exists());
    let theirs = run("wasmtime", &["run"]);
    assert_eq!(ours, theirs);
    assert!(
        ours.starts_with("one two\ninherited\n2\nunset\nfrom data\n"),
        "{ours}"
    );
    // One difference, documented: the directories live in one tree whose
    // root is `.`, so `.` also holds `data` (wasmtime's are separate).
    let ls = with_input(
        Command::new(env!("CARGO_BIN_EXE_larder"))
            .args(["run", "--dir", &dir_data, "--dir", "."])
            .arg(&app)
            .current_dir(&cwd),
        "ls .\n",
    );
    assert_eq!(text(&ls.stdout), "data y.txt\n");

    // `:ro` (Larder's addition) makes the copy a read-only mount.
    let ro = format!("{}::/data:ro", data.display());
    let out = with_input(
        Command::new(env!("CARGO_BIN_EXE_larder"))
            .args(["run", "--dir", &ro])
            .arg(&app),
        "cat /data/x.txt\nwrite /data/new hi\n",
    );
    assert_eq!(
        text(&out.stdout),
        "from data\nerror: Read-only file system (os error 69)\n"
    );
}

#[test]
fn args_env_and_exit_codes_pass_through() {
    let wasm = guest("append");
    let out = larder(&[
        "run",
        wasm.to_str().unwrap(),
        "--env",
        "LARDER_INSTANCE=7",
        "--",
        "/l",
        "/d",
        "3",
    ]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "instance 7: 3 records, 3 files\n");
    // The app's failure comes back (WASI 0.2's exit carries only
    // success or failure, so its exit(2) is 1 under any host).
    let out = larder(&["run", wasm.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("usage: append"),
        "{}",
        text(&out.stderr)
    );
    // A trap is reported and exits 134, as `wasmtime run` does; the other
    // instances still finish.
    let out = larder(&[
        "run",
        wasm.to_str().unwrap(),
        "--instances",
        "3",
        "--env",
        "APPEND_TRAP_AT=1",
        "--",
        "/l",
        "/d",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(134));
    assert!(
        text(&out.stderr).contains("trapping at record 1"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_input_is_a_clear_error_with_exit_code_2() {
    let tmp = tempfile::tempdir().unwrap();
    let module = tmp.path().join("module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    // The smallest valid component: a header and nothing else.
    let empty = tmp.path().join("empty-component.wasm");
    std::fs::write(&empty, b"\0asm\x0d\0\x01\0").unwrap();
    let garbage = tmp.path().join("garbage.wasm");
    std::fs::write(&garbage, b"this is not wasm").unwrap();
    let app = guest("append");
    let app = app.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["run", "/no/such/app.wasm"], "/no/such/app.wasm"),
        (
            vec!["run", module.to_str().unwrap()],
            "core WebAssembly module",
        ),
        (
            vec!["run", garbage.to_str().unwrap()],
            "not a valid component",
        ),
        (vec!["run", app, "--mount", "etc=/tmp"], "bad mount"),
        (
            vec!["run", app, "--mount", "/etc=/no/such/dir"],
            "/no/such/dir",
        ),
        (vec!["run", app, "--preopen", "x=relative"], "bad --preopen"),
        (vec!["run", app, "--env", "=VALUE"], "KEY=VALUE or KEY"),
        (vec!["run", app, "--dir", "::/guest"], "bad --dir"),
        (vec!["run", app, "--instances", "0"], "instances"),
    ];
    for (args, needle) in cases {
        assert_usage_error(&args, needle);
    }
}

#[test]
fn mounts_are_copies_and_read_only_mounts_refuse_writes() {
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("seed.txt"), b"from the host").unwrap();
    let ingest = guest("ingest");
    let ro = format!("/data={}:ro", host.path().display());
    let out = larder(&["run", ingest.to_str().unwrap(), "--mount", &ro, "--", "1"]);
    // The guest's `expect` panics on the refused mkdir: a trap, exit 134.
    assert_eq!(out.status.code(), Some(134), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Read-only file system"),
        "{}",
        text(&out.stderr)
    );
    // Writable: the app writes into its copy; the host directory is untouched.
    let rw = format!("/data={}", host.path().display());
    let out = larder(&["run", ingest.to_str().unwrap(), "--mount", &rw, "--", "3"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "ingest: wrote 3 batches\n");
    let names: Vec<_> = std::fs::read_dir(host.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["seed.txt"]);
}
