//! Users pinned to the wasmtime 48 line keep working: the composed adapter
//! under the 48.0.8 CLI (`just setup` installs it beside the current one).
//! Each run is compared with that CLI's own host filesystem, or with the
//! current CLI running the same component.

mod common;
#[path = "../../larder-sync/tests/common/moto.rs"]
mod moto;

use common::*;
use std::path::Path;
use std::process::Command;

#[test]
fn the_old_cli_is_the_48_line() {
    let v = ok(Command::new(wasmtime_48()).arg("--version"));
    assert!(v.starts_with("wasmtime 48.0.8"), "{v}");
    let current = ok(Command::new("wasmtime").arg("--version"));
    assert!(current.starts_with("wasmtime 50."), "{current}");
}

/// The conformance program, composed both ways, answers under 48 as
/// wasmtime 48's own host filesystem does, and as it does under the
/// current CLI.
#[test]
fn conformance_under_wasmtime_48_matches_its_host_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let composed = compose(dir.path(), &guest("conformance"), &[]);
    let reference = reference_run_with(&wasmtime_48(), &guest("conformance"));
    let ours = wasmtime_with(&wasmtime_48(), &[], &composed);
    assert_conformant("larder compose, wasmtime 48", &ours, &reference);
    assert_eq!(ours, wasmtime(&[], &composed), "48 and the current CLI");

    let adapter = dir.path().join("vfs_adapter.wasm");
    ok(Command::new(env!("CARGO_BIN_EXE_larder"))
        .args(["adapter", "-o"])
        .arg(&adapter));
    let plugged = dir.path().join("plugged.wasm");
    ok(Command::new("wac")
        .arg("plug")
        .arg("--plug")
        .arg(&adapter)
        .arg(guest("conformance"))
        .arg("-o")
        .arg(&plugged));
    let ours = wasmtime_with(&wasmtime_48(), &[], &plugged);
    assert_conformant("wac plug, wasmtime 48", &ours, &reference);
}

/// Bundled directories: contents, times, symlinks, a read-only config and
/// writable state, under 48.
#[test]
fn bundled_dirs_under_wasmtime_48() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, state) = config_dirs(dir.path());
    let m = settings_mounts(&cfg, &state);
    let args: Vec<&str> = m.iter().map(String::as_str).collect();
    let out = compose(dir.path(), &guest("settings"), &args);
    let run = wasmtime_with(&wasmtime_48(), &[], &out);
    assert_settings_run(&run);
    assert_eq!(run, wasmtime(&[], &out), "48 and the current CLI");
}

/// A composed app that keeps its files in S3 (moto on loopback), run by
/// the 48 CLI and then the current one on the same prefix: each carries on
/// from what the other left.
#[test]
fn a_persistent_app_under_wasmtime_48() {
    let m = moto::Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let url = m.url("pinned");
    let out = compose(dir.path(), &guest("append"), &["--persist", &url]);
    let run = |cli: &Path, n: &str| {
        ok(Command::new(cli)
            .args(["run", "-S", "http"])
            .args([
                "--env",
                "AWS_ACCESS_KEY_ID",
                "--env",
                "AWS_SECRET_ACCESS_KEY",
            ])
            .arg(&out)
            .args(["/log", "/files", n]))
    };
    run(&wasmtime_48(), "7");
    run(Path::new("wasmtime"), "3");
    run(&wasmtime_48(), "2");
    let log = larder(&["cat", "--store", &url, "/log"]);
    assert!(log.status.success(), "{}", text(&log.stderr));
    assert_eq!(text(&log.stdout).lines().count(), 12);
    let ls = larder(&["ls", "--store", &url, "/files"]);
    // The directory and 7 files: every run is instance 0, so later runs
    // rewrite i0-0.. rather than adding.
    assert_eq!(
        text(&ls.stdout).lines().count(),
        1 + 7,
        "{}",
        text(&ls.stdout)
    );
}
