//! A Python app (examples/python, built by componentize-py: CPython for
//! WASI and its standard library) walking a bundled config directory,
//! replacing a file by rename, `shutil.copytree` and `sqlite3`: composed,
//! and under `larder run --store`, each printing what wasmtime's own host
//! filesystem makes it print, and kept across runs where a store holds it.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn app() -> PathBuf {
    prebuilt_guest("python-app")
}

/// A config directory like an app ships with.
fn config(root: &Path) -> PathBuf {
    let cfg = root.join("cfg");
    std::fs::create_dir_all(cfg.join("conf.d")).unwrap();
    std::fs::write(cfg.join("app.conf"), "greeting=hello\nlevel=3\n").unwrap();
    std::fs::write(cfg.join("conf.d/extra"), "x\n").unwrap();
    cfg
}

/// wasmtime with its compile cache on: a 19 MB app compiles once.
fn wasmtime_run(args: &[&str]) -> String {
    ok(Command::new("wasmtime")
        .args(["run", "-C", "cache=y"])
        .args(args))
}

/// Two runs under `wasmtime run --dir` (the config, and a tmpfs state
/// directory they share): what every route must print, run by run.
fn reference(cfg: &Path) -> [String; 2] {
    let state = tmpfs_dir();
    let cfg = format!("{}::/etc/app", cfg.display());
    let state = format!("{}::/state", state.path().display());
    let app = app();
    let run = || wasmtime_run(&["--dir", &cfg, "--dir", &state, app.to_str().unwrap()]);
    [run(), run()]
}

#[test]
fn a_python_app_runs_composed_and_keeps_its_files_in_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let theirs = reference(&cfg);
    assert!(theirs[1].contains("runs 2\n"), "{}", theirs[1]);
    assert!(theirs[1].contains("logged (2, 2) ok\n"), "{}", theirs[1]);
    let mount = format!("/etc/app={}:ro", cfg.display());

    // Composed, its config and an empty state directory bundled: the
    // first run's answers (each run starts from the bundle).
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let composed = dir.path().join("composed.wasm");
    let r = larder(&[
        "compose",
        app().to_str().unwrap(),
        "--mount",
        &mount,
        "--mount",
        &format!("/state={}", empty.display()),
        "-o",
        composed.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert_no_host_filesystem(&composed);
    assert_eq!(wasmtime_run(&[composed.to_str().unwrap()]), theirs[0]);

    // Kept in a store by the host. (componentize-py's apps import
    // wasi:sockets, which `--persist` does not take yet: the edge issue.)
    let store = dir.path().join("store");
    std::fs::create_dir_all(store.join("state")).unwrap();
    for (i, expected) in theirs.iter().enumerate() {
        let ours = ok(Command::new(env!("CARGO_BIN_EXE_larder"))
            .arg("run")
            .arg(app())
            .arg("--store")
            .arg(&store)
            .args(["--mount", &mount]));
        assert_eq!(&ours, expected, "run {}", i + 1);
    }
    // The store is plain files: the count, and a database the host's
    // SQLite reads.
    assert_eq!(
        std::fs::read_to_string(store.join("state/runs")).unwrap(),
        "2"
    );
    let rows = ok(Command::new("python3").arg("-c").arg(format!(
        "import sqlite3\n\
         print(sqlite3.connect('{}').execute('select count(*) from run').fetchone()[0])",
        store.join("state/log.db").display()
    )));
    assert_eq!(rows, "2\n");
}
