//! The composition routes end to end: `larder compose` and `wac plug`,
//! run with the real `wasmtime` CLI and no host directories.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn wac_plug(dir: &Path, app: &Path) -> PathBuf {
    wac_plug_with(dir, app, &[])
}

/// `larder adapter` with `extra` flags, plugged into `app` by `wac plug`.
fn wac_plug_with(dir: &Path, app: &Path, extra: &[&str]) -> PathBuf {
    let adapter = dir.join("vfs_adapter.wasm");
    let mut args = vec!["adapter", "-o", adapter.to_str().unwrap()];
    args.extend_from_slice(extra);
    let r = larder(&args);
    assert!(r.status.success(), "larder adapter: {}", text(&r.stderr));
    let out = dir.join("plugged.wasm");
    ok(Command::new("wac")
        .arg("plug")
        .arg("--plug")
        .arg(&adapter)
        .arg(app)
        .arg("-o")
        .arg(&out));
    assert_no_host_filesystem(&out);
    out
}

#[test]
fn conformance_composed_by_larder_compose_matches_wasmtime() {
    let dir = tempfile::tempdir().unwrap();
    let app = guest("conformance");
    let out = compose(dir.path(), &app, &[]);
    let composed = wasmtime(&[], &out);
    assert_conformant("larder compose", &composed, &reference_run(&app));
    // The guest adapter and vfs-host are the same engine: same answers.
    let hosted = larder(&["run", app.to_str().unwrap()]);
    assert_eq!(composed, text(&hosted.stdout));
}

#[test]
fn conformance_plugged_by_wac_matches_wasmtime() {
    let dir = tempfile::tempdir().unwrap();
    let app = guest("conformance");
    let out = wac_plug(dir.path(), &app);
    assert_conformant("wac plug", &wasmtime(&[], &out), &reference_run(&app));
}

/// `--preopen NAME:ro` gives a composed app wasmtime's read-only preopen
/// (every change through it `not-permitted`, reads working), by both
/// routes, where a read-only mount would answer `read-only`.
#[test]
fn read_only_preopen_composed_matches_wasmtime() {
    let dir = tempfile::tempdir().unwrap();
    let app = guest("conformance");
    let flags = ["--preopen", "/", "--preopen", "/ro=/:ro"];
    let reference = reference_run_read_only(&app);
    let composed = wasmtime(&[], &compose(dir.path(), &app, &flags));
    assert!(
        composed.contains("ro-unlink: err ErrorCode { code: 31"),
        "{composed}"
    );
    assert_conformant("larder compose :ro", &composed, &reference);
    let plugged = wasmtime(&[], &wac_plug_with(dir.path(), &app, &flags));
    assert_conformant("larder adapter :ro", &plugged, &reference);
}

/// A WASI 0.3 app "composed" would still take its filesystem from the
/// runtime (the host's real files under `--dir`): `larder compose` refuses
/// it, naming the import and `larder run`, which serves 0.3.
#[test]
fn a_wasi_p3_app_is_refused_not_left_on_the_host_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("p3.wasm");
    wasi_p3_command(&app);
    let out = dir.path().join("out.wasm");
    let r = larder(&[
        "compose",
        app.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let err = text(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(
        err.contains("WASI 0.3 components cannot be composed yet")
            && err.contains("wasi:filesystem/types@0.3.0")
            && err.contains("`larder run` runs it"),
        "{err}"
    );
    assert!(!out.exists());
}

/// Any `wasi:filesystem` import the adapter has no export for is refused,
/// not left for the runtime to fill.
#[test]
fn compose_refuses_a_filesystem_import_it_cannot_serve() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.wasm");
    component_from_wit(
        r#"
        package larder:unserved-test;
        package wasi:filesystem@0.2.12 {
            interface quota {
                used: func() -> u64;
            }
        }
        world app {
            import wasi:filesystem/quota@0.2.12;
            export run: func();
        }
        "#,
        &app,
    );
    let out = dir.path().join("out.wasm");
    let r = larder(&[
        "compose",
        app.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let err = text(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(
        err.contains("imports wasi:filesystem/quota@0.2.12, which Larder's adapter cannot serve"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn bundled_dirs_keep_contents_times_and_symlinks_and_stay_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, state) = config_dirs(dir.path());
    let m = settings_mounts(&cfg, &state);
    let args: Vec<&str> = m.iter().map(String::as_str).collect();
    let out = compose(dir.path(), &guest("settings"), &args);
    // The host directories are no longer needed.
    std::fs::remove_dir_all(&cfg).unwrap();
    std::fs::remove_dir_all(&state).unwrap();
    let first = wasmtime(&[], &out);
    assert_settings_run(&first);
    // stdin and stderr pass through the adapter to the host.
    let mut child = Command::new("wasmtime")
        .arg("run")
        .arg(&out)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"one\ntwo\nthree\n").unwrap();
    drop(child.stdin.take());
    let piped = child.wait_with_output().unwrap();
    assert!(
        text(&piped.stdout).contains("stdin: ok (14, 3)"),
        "{}",
        text(&piped.stdout)
    );
    assert_eq!(text(&piped.stderr), "settings: stderr works\n");
    assert!(first.contains("cfg-preopen: err NotFound"), "{first}");
    // The bundle is part of the .wasm: every run starts from it again.
    assert_eq!(wasmtime(&[], &out), first);
}

#[test]
fn preopens_can_be_named_and_several() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, state) = config_dirs(dir.path());
    let mut args = settings_mounts(&cfg, &state);
    args.extend(["--preopen", ".", "--preopen", "/cfg=/etc/app"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = wasmtime(&[], &compose(dir.path(), &guest("settings"), &args));
    // Relative paths resolve against `.`, `/cfg/...` against the `/cfg`
    // preopen, which is the config dir (without it, /cfg does not exist:
    // see the test above).
    assert!(out.contains("relative: ok 27"), "{out}");
    assert!(out.contains("cfg-preopen: ok 27"), "{out}");
}

#[test]
fn preview1_rust_app_composes_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("settings-p1.wasm");
    componentize_p1(&guest_p1("settings"), &app);
    let (cfg, state) = config_dirs(dir.path());
    let m = settings_mounts(&cfg, &state);
    let args: Vec<&str> = m.iter().map(String::as_str).collect();
    let out = wasmtime(&[], &compose(dir.path(), &app, &args));
    assert_settings_run(&out);
    // Through `wac plug`: an empty filesystem, so neither dir exists.
    let plugged = wasmtime(&[], &wac_plug(dir.path(), &app));
    assert!(plugged.contains("settings: err NotFound"), "{plugged}");
    assert!(plugged.contains("count-write: err NotFound"), "{plugged}");
}

#[test]
fn c_app_on_wasi_libc_matches_wasmtime_and_reads_its_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("c-notes.wasm");
    componentize_p1(&prebuilt_guest("c-notes"), &app);
    let reference = reference_run(&app);
    assert!(reference.contains("note: first note"), "{reference}");
    assert_eq!(wasmtime(&[], &compose(dir.path(), &app, &[])), reference);
    assert_eq!(wasmtime(&[], &wac_plug(dir.path(), &app)), reference);
    let greet = dir.path().join("greet");
    std::fs::create_dir(&greet).unwrap();
    std::fs::write(greet.join("greeting"), "hello from the bundle\n").unwrap();
    let mount = format!("/etc/notes={}:ro", greet.display());
    let out = wasmtime(&[], &compose(dir.path(), &app, &["--mount", &mount]));
    assert!(out.contains("greeting: hello from the bundle"), "{out}");
    assert!(
        out.contains("write-greeting: err Read-only file system"),
        "{out}"
    );
    assert!(out.contains("escape: err Operation not permitted"), "{out}");
}

#[test]
fn large_bundled_file_reads_back_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let big: Vec<u8> = (0..20u32 << 20).map(|i| (i % 251) as u8).collect();
    let sum: u64 = big.iter().map(|&b| b as u64).sum();
    std::fs::write(data.join("big"), &big).unwrap();
    let mount = format!("/data={}", data.display());
    let out = wasmtime(
        &[],
        &compose(dir.path(), &guest("settings"), &["--mount", &mount]),
    );
    assert!(
        out.contains(&format!("big: {} bytes, sum {sum}", big.len())),
        "{out}"
    );
}

/// Composing streams the bundled files from the host into the output: the
/// memory it needs does not grow with the bundle (80 MiB here, in 2 MiB
/// files), and the app reads every byte back.
#[test]
fn composing_a_large_bundle_holds_a_chunk_of_it_not_all() {
    let dir = tempfile::tempdir().unwrap();
    let (small, large) = (dir.path().join("small"), dir.path().join("large"));
    std::fs::create_dir(&small).unwrap();
    std::fs::create_dir(&large).unwrap();
    std::fs::write(small.join("big"), b"tiny").unwrap();
    let file = |seed: u32| -> Vec<u8> {
        (0..2u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13 ^ seed) as u8 | 1)
            .collect()
    };
    for n in 0..39 {
        std::fs::write(large.join(format!("f{n:02}")), file(n)).unwrap();
    }
    let big = file(99);
    let sum: u64 = big.iter().map(|&b| u64::from(b)).sum();
    std::fs::write(large.join("big"), &big).unwrap();

    let app = guest("settings");
    let peak = |data: &Path, out: &Path| {
        let mount = format!("/data={}", data.display());
        let args = [
            "compose",
            app.to_str().unwrap(),
            "--mount",
            &mount,
            "-o",
            out.to_str().unwrap(),
        ];
        let run = peak_memory(&args, b"");
        assert!(run.ok, "larder compose --mount {mount} failed");
        run.peak
    };
    let (small_out, large_out) = (dir.path().join("small.wasm"), dir.path().join("large.wasm"));
    let baseline = peak(&small, &small_out);
    let streamed = peak(&large, &large_out);
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    assert!(
        streamed < baseline + (24 << 20),
        "composing an 80 MiB bundle peaked at {:.0} MiB, a 4-byte one at {:.0} MiB",
        mib(streamed),
        mib(baseline)
    );
    assert!(std::fs::metadata(&large_out).unwrap().len() > 80 << 20);
    let out = wasmtime(&[], &large_out);
    assert!(
        out.contains(&format!("big: {} bytes, sum {sum}", big.len())),
        "{out}"
    );
}

/// `larder compose` with bad input: exit 2, a message naming the problem,
/// and nothing at `-o`.
#[test]
fn bad_input_is_named_exits_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let garbage = d.join("garbage.wasm");
    std::fs::write(&garbage, b"not wasm at all").unwrap();
    let module = d.join("module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    let no_fs = d.join("adapter.wasm");
    assert!(larder(&["adapter", "-o", no_fs.to_str().unwrap()])
        .status
        .success());
    let app = guest("settings");
    let app = app.to_str().unwrap();
    let out = d.join("out.wasm");
    let o = out.to_str().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![d.join("missing.wasm").display().to_string()],
            "missing.wasm",
        ),
        (vec![d.display().to_string()], "cannot read"),
        // Opens, but reading fails (even for root).
        (vec!["/proc/self/mem".into()], "cannot read /proc/self/mem"),
        (
            vec![garbage.display().to_string()],
            "garbage.wasm is not a WebAssembly component",
        ),
        (
            vec![module.display().to_string()],
            "module.wasm is a core WebAssembly module",
        ),
        (
            vec![no_fs.display().to_string()],
            "adapter.wasm does not import wasi:filesystem",
        ),
        (
            vec![
                app.into(),
                "--mount".into(),
                format!("/etc={}", d.join("nope").display()),
            ],
            "nope",
        ),
        (
            vec![app.into(), "--mount".into(), "etc=/tmp".into()],
            "etc=/tmp",
        ),
        (
            vec![app.into(), "--preopen".into(), "x=/no/such".into()],
            "/no/such",
        ),
    ];
    for (args, needle) in cases {
        let mut all = vec!["compose".to_string()];
        all.extend(args.iter().cloned());
        all.extend(["-o".to_string(), o.to_string()]);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let r = larder(&all);
        let err = text(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{all:?}: {err}");
        assert!(
            err.contains(needle),
            "{all:?}: error does not name {needle:?}: {err}"
        );
        assert!(!out.exists(), "{all:?} left {o} behind");
        // The input is the problem, not the output.
        assert!(!err.contains("cannot write"), "{all:?}: {err}");
    }
}

/// Damage inside a composed .wasm's bundle is caught by the image's
/// checksums: a file whose bytes changed reads as an I/O error (never as
/// wrong data), and damaged metadata stops the app with a message naming
/// the bundle.
#[test]
fn damaged_bundle_is_detected_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let content: Vec<u8> = (0..4096u32).map(|i| (i * 13 % 256) as u8).collect();
    std::fs::write(data.join("big"), &content).unwrap();
    let mount = format!("/data={}", data.display());
    let out = compose(dir.path(), &guest("settings"), &["--mount", &mount]);
    let good = std::fs::read(&out).unwrap();
    let find = |needle: &[u8]| {
        good.windows(needle.len())
            .position(|w| w == needle)
            .expect("bundle bytes in the composed .wasm")
    };

    let mut bad = good.clone();
    bad[find(&content[1000..1032]) + 7] ^= 0x40;
    std::fs::write(&out, &bad).unwrap();
    let run = wasmtime(&[], &out);
    assert!(run.contains("big: err"), "{run}");
    assert!(!run.contains("big: 4096 bytes"), "{run}");

    let mut bad = good.clone();
    // The metadata section starts right after the 32-byte header.
    bad[find(b"LARDRIMG") + 40] ^= 0x01;
    std::fs::write(&out, &bad).unwrap();
    let r = Command::new("wasmtime")
        .arg("run")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!r.status.success());
    let err = text(&r.stderr);
    assert!(
        err.contains("cannot load the bundled filesystem") && err.contains("checksum"),
        "{err}"
    );
}

/// Serves `payload` to one connection on a loopback port; returns the
/// address and the thread.
fn serve_once(payload: Vec<u8>) -> (String, std::thread::JoinHandle<Vec<u8>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let t = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        let mut request = [0u8; 5];
        std::io::Read::read_exact(&mut c, &mut request).unwrap();
        std::io::Write::write_all(&mut c, &payload).unwrap();
        request.to_vec()
    });
    (addr, t)
}

/// An app using wasi:sockets TCP and files composes (larder compose picks
/// the adapter build that passes sockets through; `larder adapter
/// --sockets` is the one for `wac plug`), streams a few MiB in and keeps
/// them in its in-sandbox filesystem.
#[test]
fn sockets_and_files_compose_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let app = guest("netcopy");
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let sum: u64 = payload.iter().map(|&b| b as u64).sum();
    let expect = format!("received 3000000 bytes, stored 3000000 bytes, sum {sum}");

    let run = |component: &Path, payload: Vec<u8>| {
        let (addr, server) = serve_once(payload);
        let out = ok(Command::new("wasmtime")
            .args(["run", "-S", "inherit-network"])
            .arg(component)
            .arg(&addr));
        assert_eq!(server.join().unwrap(), b"send\n");
        out
    };
    let out = run(&compose(dir.path(), &app, &[]), payload.clone());
    assert!(out.contains(&expect), "{out}");

    let adapter = dir.path().join("vfs_adapter_net.wasm");
    let r = larder(&["adapter", "--sockets", "-o", adapter.to_str().unwrap()]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let plugged = dir.path().join("netcopy-plugged.wasm");
    ok(Command::new("wac")
        .args(["plug", "--plug"])
        .arg(&adapter)
        .arg(&app)
        .arg("-o")
        .arg(&plugged));
    assert_no_host_filesystem(&plugged);
    let out = run(&plugged, payload);
    assert!(out.contains(&expect), "{out}");
}

/// The settings app sees the same thing composed with a bundle as under
/// `wasmtime run --dir` on a copy of the same host tree, for preopens in
/// either order (wasi-libc's resolution depends on the order, and Larder
/// keeps it).
#[test]
fn bundle_and_preopens_match_wasmtime_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    let (cfg, state) = config_dirs(dir.path());
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    std::fs::create_dir_all(tree.join("var/lib")).unwrap();
    ok(Command::new("cp")
        .arg("-a")
        .arg(&cfg)
        .arg(tree.join("etc/app")));
    ok(Command::new("cp")
        .arg("-a")
        .arg(&state)
        .arg(tree.join("var/lib/app")));
    // Absolute symlink targets are a documented difference: wasmtime
    // refuses them, Larder resolves them inside the preopen.
    std::fs::remove_file(tree.join("etc/app/abs")).unwrap();
    let app = guest("settings");
    for order in [["/=/", ".=/var/lib/app"], [".=/var/lib/app", "/=/"]] {
        let copy = tmpfs_dir();
        ok(Command::new("cp")
            .arg("-a")
            .arg(&tree)
            .arg(copy.path().join("t")));
        let t = copy.path().join("t");
        let mut dirs = Vec::new();
        let mut args = vec!["--mount".to_string(), format!("/={}", tree.display())];
        for p in order {
            let (name, path) = p.split_once('=').unwrap();
            dirs.push("--dir".to_string());
            dirs.push(format!("{}{path}::{name}", t.display()));
            args.extend(["--preopen".to_string(), p.to_string()]);
        }
        let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
        let reference = wasmtime(&dirs, &app);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ours = wasmtime(&[], &compose(dir.path(), &app, &args));
        assert_eq!(ours, reference, "preopens {order:?}");
    }
}

/// `--precompile` writes OUT.cwasm beside OUT.wasm: the current wasmtime
/// CLI runs it with `--allow-precompiled` and the app sees what it sees
/// from the .wasm; a wasmtime of another line refuses it, and the message
/// names the line it is for.
#[test]
fn precompiled_output_runs_under_the_wasmtime_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, state) = config_dirs(dir.path());
    let mut args = vec![
        "compose".to_string(),
        guest("settings").display().to_string(),
        "-o".into(),
        dir.path().join("app.wasm").display().to_string(),
        "--precompile".into(),
    ];
    args.extend(settings_mounts(&cfg, &state));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = larder(&args);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let version = ok(Command::new("wasmtime").arg("--version"));
    let line = version
        .strip_prefix("wasmtime ")
        .and_then(|v| v.split('.').next())
        .unwrap();
    assert!(
        text(&r.stderr).contains(&format!("for wasmtime {line}.x")),
        "{}",
        text(&r.stderr)
    );
    let cwasm = dir.path().join("app.cwasm");
    let precompiled = wasmtime(&["--allow-precompiled"], &cwasm);
    assert_settings_run(&precompiled);
    assert_eq!(precompiled, wasmtime(&[], &dir.path().join("app.wasm")));
    let other = Command::new(wasmtime_48())
        .args(["run", "--allow-precompiled"])
        .arg(&cwasm)
        .output()
        .unwrap();
    assert!(
        !other.status.success(),
        "wasmtime 48 ran a .cwasm for {line}"
    );
}
