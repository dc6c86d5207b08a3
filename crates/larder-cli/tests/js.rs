//! A JavaScript app (examples/js, built by ComponentizeJS: SpiderMonkey
//! for WASI, calling wasi:filesystem itself) walking a bundled config
//! directory, replacing a file by rename and copying a tree: composed, and
//! under `larder run --store`, each printing what wasmtime's own host
//! filesystem makes it print, and kept across runs where a store holds it.
//! ComponentizeJS components import wasi:http, so wasmtime needs `-S http`
//! and `larder run` provides it.

mod common;

use common::*;
use std::path::PathBuf;

fn app() -> PathBuf {
    prebuilt_guest("js-app")
}

#[test]
fn a_js_app_runs_composed_and_keeps_its_files_in_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = app_config(dir.path());
    let theirs = reference_runs(&app(), &cfg, &["-S", "http"]);
    assert!(theirs[0].contains("runs 1\n"), "{}", theirs[0]);
    assert!(theirs[1].contains("runs 2\n"), "{}", theirs[1]);
    assert!(
        theirs[1].contains("backup [\"app.conf\",\"conf.d/extra\"]\n"),
        "{}",
        theirs[1]
    );

    // Composed, its config and an empty state directory bundled: the
    // first run's answers, every run (each starts from the bundle).
    let composed = compose_with_config(&app(), &cfg, dir.path());
    for _ in 0..2 {
        assert_eq!(
            wasmtime_cached(&["-S", "http", composed.to_str().unwrap()]),
            theirs[0]
        );
    }

    // Kept in a store by the host, run after run.
    let store = dir.path().join("store");
    assert_eq!(store_runs(&app(), &cfg, &store), theirs);
    // The store is plain files: the count, and the backed-up tree.
    assert_eq!(
        std::fs::read_to_string(store.join("state/runs")).unwrap(),
        "2"
    );
    assert_eq!(
        std::fs::read(store.join("state/backup/conf.d/extra")).unwrap(),
        b"x\n"
    );
}
