//! A Python app (examples/python, built by componentize-py: CPython for
//! WASI and its standard library) walking a bundled config directory,
//! replacing a file by rename, `shutil.copytree` and `sqlite3`: composed,
//! and under `larder run --store`, each printing what wasmtime's own host
//! filesystem makes it print, and kept across runs where a store holds it.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;

fn app() -> PathBuf {
    prebuilt_guest("python-app")
}

#[test]
fn a_python_app_runs_composed_and_keeps_its_files_in_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = app_config(dir.path());
    let theirs = reference_runs(&app(), &cfg, &[]);
    assert!(theirs[1].contains("runs 2\n"), "{}", theirs[1]);
    assert!(theirs[1].contains("logged (2, 2) ok\n"), "{}", theirs[1]);

    // Composed, its config and an empty state directory bundled: the
    // first run's answers (each run starts from the bundle).
    let composed = compose_with_config(&app(), &cfg, dir.path());
    assert_eq!(wasmtime_cached(&[composed.to_str().unwrap()]), theirs[0]);

    // Kept in a store by the host, run after run. (componentize-py's apps
    // import wasi:sockets, which `--persist` does not take yet: the edge
    // issue.)
    let store = dir.path().join("store");
    assert_eq!(store_runs(&app(), &cfg, &store), theirs);
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
