//! Builds the guest adapter (crates/vfs-adapter) for wasm32-wasip2 so the
//! `larder` binary can embed it: an installed `larder` composes anywhere.
//!
//! The guest crates are built by a nested cargo in a target directory of
//! their own (sharing the outer one would deadlock on cargo's lock), one
//! build after another so they share the compiled dependencies.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.join("../..");
    for p in [
        "crates/vfs-adapter/src",
        "crates/vfs-adapter/Cargo.toml",
        "crates/http-bridge/src",
        "crates/http-bridge/Cargo.toml",
        "crates/fs-core/src",
        "crates/fs-core/Cargo.toml",
        "crates/larder-sync/src",
        "crates/larder-sync/Cargo.toml",
        "crates/larder-9p/src",
        "crates/larder-9p/Cargo.toml",
        "crates/larder-volume/src",
        "crates/larder-volume/Cargo.toml",
        "wit",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    // The adapter; its build that also passes wasi:sockets through (for
    // apps that use sockets: others should not import them); the one that
    // passes wasi:http too (edge apps); the one that keeps its files in a
    // store the host lends; the one that keeps them in S3 over wasi:http;
    // the one whose files are a `larder serve` elsewhere; and the bridge
    // for HTTP handlers.
    let target_dir = root.join("target/adapter");
    for (package, features, name, var) in [
        (
            "vfs-adapter",
            "",
            "vfs_adapter_unbundled",
            "LARDER_ADAPTER_WASM",
        ),
        (
            "vfs-adapter",
            "net",
            "vfs_adapter_unbundled",
            "LARDER_ADAPTER_NET_WASM",
        ),
        (
            "vfs-adapter",
            "http",
            "vfs_adapter_unbundled",
            "LARDER_ADAPTER_EDGE_WASM",
        ),
        (
            "vfs-adapter",
            "persist",
            "vfs_adapter_unbundled",
            "LARDER_ADAPTER_PERSIST_WASM",
        ),
        (
            "vfs-adapter",
            "persist-s3",
            "vfs_adapter_unbundled",
            "LARDER_ADAPTER_PERSIST_S3_WASM",
        ),
        (
            "vfs-adapter",
            "remote",
            "vfs_adapter_unbundled",
            "LARDER_ADAPTER_REMOTE_WASM",
        ),
        ("http-bridge", "", "http_bridge", "LARDER_HTTP_BRIDGE_WASM"),
    ] {
        let dir = if features == "persist-s3" {
            root.join("target/adapter-s3")
        } else {
            target_dir.clone()
        };
        let built = build_guest(&root, package, features, &dir)
            .join(format!("wasm32-wasip2/release/{name}.wasm"));
        // Each build overwrites the last one's output: keep a copy.
        let kept = target_dir.join(format!("{package}-{}.wasm", features_name(features)));
        std::fs::copy(&built, &kept).expect("copy the guest build");
        println!("cargo:rustc-env={var}={}", kept.display());
    }
}

fn features_name(features: &str) -> &str {
    if features.is_empty() {
        "default"
    } else {
        features
    }
}

/// Builds `package` with `features` for wasm32-wasip2; returns `target_dir`.
fn build_guest(root: &Path, package: &str, features: &str, target_dir: &Path) -> PathBuf {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--locked", "-p", package])
        .args(["--features", features])
        .args(["--target", "wasm32-wasip2", "--target-dir"])
        .arg(target_dir);
    // The outer build's settings are not the guest's.
    for (k, _) in env::vars_os() {
        let k = k.to_string_lossy();
        if (k.starts_with("CARGO_") && k != "CARGO_HOME")
            || k.starts_with("RUSTC_")
            || matches!(
                &*k,
                "RUSTFLAGS" | "RUSTDOCFLAGS" | "TARGET" | "HOST" | "OUT_DIR"
            )
        {
            cmd.env_remove(&*k);
        }
    }
    // It ships inside every composed app: no DWARF (function names stay,
    // for trap backtraces). 3.4 MB becomes about 0.3 MB.
    cmd.env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo");
    // The S3 client is most of that build: optimised for size and linked
    // whole, it is 4 MB instead of 5.6 MB. Its own target dir, so the other
    // builds keep their settings and their cache.
    if features == "persist-s3" {
        cmd.env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "s")
            .env("CARGO_PROFILE_RELEASE_LTO", "true")
            .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1");
    }
    let status = cmd.status().expect("run cargo for the guest components");
    if !status.success() {
        panic!(
            "building {package} for wasm32-wasip2 failed; is the target \
             installed? (`rustup target add wasm32-wasip2`)"
        );
    }
    target_dir.to_path_buf()
}
