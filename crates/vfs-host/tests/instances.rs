//! Many wasmtime instances on many threads sharing one Vfs.

use fs_core::{DescriptorFlags as DF, OpenFlags as OF, PathFlags as PF};
use std::path::PathBuf;
use std::sync::Arc;
use vfs_host::{Vfs, VfsState, VolumeBuilder};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::WasiCtx;

pub fn guest(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/guests/target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} missing: run `just guests` (part of `just test`)",
        p.display()
    );
    p
}

/// Runs `component` once on `vfs`; returns (exited ok, stdout).
fn run(
    engine: &Engine,
    component: &Component,
    vfs: Arc<Vfs>,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String) {
    let mut linker = Linker::<VfsState>::new(engine);
    vfs_host::add_to_linker_sync(&mut linker).unwrap();
    let out = MemoryOutputPipe::new(1 << 20);
    let mut b = WasiCtx::builder();
    b.args(args).envs(env).stdout(out.clone()).inherit_stderr();
    let mut store = Store::new(engine, VfsState::new(b.build(), vfs));
    let cmd = Command::instantiate(&mut store, component, &linker).unwrap();
    let ok = matches!(cmd.wasi_cli_run().call_run(&mut store), Ok(Ok(())));
    (ok, String::from_utf8(out.contents().to_vec()).unwrap())
}

/// One filesystem for the instances of a test.
fn shared(volume: VolumeBuilder) -> Arc<Vfs> {
    Arc::new(Vfs::new(volume.build().unwrap()))
}

fn read(vfs: &Vfs, path: &str) -> Vec<u8> {
    let root = vfs.fs().root(DF::READ).unwrap();
    let f = root
        .open_at(PF::SYMLINK_FOLLOW, path, OF::empty(), DF::READ)
        .unwrap();
    let mut buf = vec![0; f.stat().size as usize];
    assert_eq!(f.read(&mut buf, 0).unwrap(), buf.len());
    buf
}

#[test]
fn concurrent_instances_lose_nothing() {
    const N: usize = 6;
    const COUNT: usize = 300;
    let engine = Engine::default();
    let component = Component::from_file(&engine, guest("append")).unwrap();
    let vfs = shared(VolumeBuilder::new());
    std::thread::scope(|s| {
        for i in 0..N {
            let (engine, component, vfs) = (&engine, &component, vfs.clone());
            s.spawn(move || {
                let me = i.to_string();
                let (ok, out) = run(
                    engine,
                    component,
                    vfs,
                    &["append", "/shared/log", "/shared/files", &COUNT.to_string()],
                    &[("LARDER_INSTANCE", &me)],
                );
                assert!(ok, "instance {i} failed");
                assert!(
                    out.contains(&format!("instance {i}: {COUNT} records")),
                    "{out}"
                );
            });
        }
    });
    let log = read(&vfs, "shared/log");
    assert_eq!(log.len(), N * COUNT * 64, "records lost");
    let mut next = [0usize; N];
    for rec in log.chunks(64) {
        let text = std::str::from_utf8(rec).unwrap();
        assert!(
            text.ends_with('\n') && text[..63].ends_with('.'),
            "torn record {text:?}"
        );
        let words: Vec<&str> = text.split_whitespace().collect();
        let (inst, n): (usize, usize) = (words[1].parse().unwrap(), words[3].parse().unwrap());
        assert_eq!(n, next[inst], "instance {inst} out of order");
        next[inst] += 1;
    }
    let root = vfs.fs().root(DF::READ).unwrap();
    let dir = root
        .open_at(PF::empty(), "shared/files", OF::DIRECTORY, DF::READ)
        .unwrap();
    let names: std::collections::BTreeSet<String> = dir
        .read_directory()
        .unwrap()
        .map(|e| e.unwrap().name)
        .collect();
    assert_eq!(names.len(), N * COUNT);
    for i in 0..N {
        for j in [0, COUNT - 1] {
            assert_eq!(
                read(&vfs, &format!("shared/files/i{i}-{j}")),
                i.to_string().as_bytes()
            );
        }
    }
}

#[test]
fn a_trapping_instance_leaves_the_others_intact() {
    let engine = Engine::default();
    let component = Component::from_file(&engine, guest("append")).unwrap();
    let vfs = shared(VolumeBuilder::new());
    let results: Vec<bool> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let (engine, component, vfs) = (&engine, &component, vfs.clone());
                s.spawn(move || {
                    let me = i.to_string();
                    let mut env = vec![("LARDER_INSTANCE", me.as_str())];
                    if i == 2 {
                        env.push(("APPEND_TRAP_AT", "50"));
                    }
                    run(
                        engine,
                        component,
                        vfs,
                        &["append", "/log", "/files", "200"],
                        &env,
                    )
                    .0
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results, [true, true, false, true]);
    let log = read(&vfs, "log");
    assert_eq!(log.len(), (3 * 200 + 50) * 64);
    assert!(log.chunks(64).all(|r| r.ends_with(b".\n")), "torn record");
    // The filesystem is still fully usable afterwards.
    let (ok, _) = run(
        &engine,
        &component,
        vfs.clone(),
        &["append", "/log", "/files", "1"],
        &[("LARDER_INSTANCE", "9")],
    );
    assert!(ok);
    assert_eq!(
        vfs.fs().usage().open_handles,
        0,
        "descriptors leaked by finished instances"
    );
}

#[test]
fn pipeline_stages_share_files() {
    let engine = Engine::default();
    let vfs = shared(VolumeBuilder::new());
    let ingest = Component::from_file(&engine, guest("ingest")).unwrap();
    let process = Component::from_file(&engine, guest("process")).unwrap();
    assert!(run(&engine, &ingest, vfs.clone(), &["ingest", "25"], &[]).0);
    let (ok, out) = run(&engine, &process, vfs.clone(), &["process"], &[]);
    assert!(ok);
    let sum: u64 = (0..25u64)
        .flat_map(|b| (0..100u64).map(move |r| b * 1000 + r))
        .sum();
    let expect = format!("batches=25 rows=2500 sum={sum}\n");
    assert_eq!(out, format!("process: {expect}"));
    assert_eq!(read(&vfs, "data/summary.txt"), expect.as_bytes());
}

#[test]
fn a_full_quota_fails_the_write_and_holds() {
    // A 20 KiB quota: the append app's writes (through output streams) run
    // out of space. wasi-libc turns every failed stream write into EIO
    // without asking filesystem-error-code (so no host can report ENOSPC
    // through a std write); what matters is that the write fails and the
    // quota holds. The code mapping itself is unit-tested in types.rs.
    let engine = Engine::default();
    let component = Component::from_file(&engine, guest("append")).unwrap();
    let vfs = shared(VolumeBuilder::new().config(fs_core::FsConfig {
        max_bytes: 20 << 10,
        ..fs_core::FsConfig::default()
    }));
    let mut linker = Linker::<VfsState>::new(&engine);
    vfs_host::add_to_linker_sync(&mut linker).unwrap();
    let err = MemoryOutputPipe::new(1 << 16);
    let mut b = WasiCtx::builder();
    b.args(&["append", "/log", "/files", "1000"])
        .stderr(err.clone());
    let mut store = Store::new(&engine, VfsState::new(b.build(), vfs.clone()));
    let cmd = Command::instantiate(&mut store, &component, &linker).unwrap();
    assert!(!matches!(
        cmd.wasi_cli_run().call_run(&mut store),
        Ok(Ok(()))
    ));
    let stderr = String::from_utf8_lossy(&err.contents()).into_owned();
    assert!(
        stderr.contains("append: Os"),
        "the failed write should be reported: {stderr}"
    );
    assert!(vfs.fs().usage().bytes <= 20 << 10);
}
