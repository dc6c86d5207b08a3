//! Builds the guest adapter (crates/vfs-adapter) for wasm32-wasip2 so the
//! `larder` binary can embed it: an installed `larder` composes anywhere.
//!
//! The adapter is built by a nested cargo in a target directory of its own
//! (sharing the outer one would deadlock on cargo's lock).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.join("../..");
    for p in [
        "crates/vfs-adapter/src",
        "crates/vfs-adapter/Cargo.toml",
        "crates/fs-core/src",
        "crates/fs-core/Cargo.toml",
        "wit",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    // Two builds: the adapter, and the one that also passes wasi:sockets
    // through (for apps that use sockets; others should not import them).
    for (features, dir, var) in [
        ("", "target/adapter", "LARDER_ADAPTER_WASM"),
        ("net", "target/adapter-net", "LARDER_ADAPTER_NET_WASM"),
    ] {
        let wasm = build_adapter(&root, features, &root.join(dir));
        println!("cargo:rustc-env={var}={}", wasm.display());
    }
}

fn build_adapter(root: &Path, features: &str, target_dir: &Path) -> PathBuf {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--locked", "-p", "vfs-adapter"])
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
    let status = cmd.status().expect("run cargo for the guest adapter");
    if !status.success() {
        panic!(
            "building the guest adapter for wasm32-wasip2 failed; is the target \
             installed? (`rustup target add wasm32-wasip2`)"
        );
    }
    target_dir.join("wasm32-wasip2/release/vfs_adapter_unbundled.wasm")
}
