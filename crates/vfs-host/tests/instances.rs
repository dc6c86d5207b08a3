//! Many wasmtime instances on many threads sharing one Vfs, through both
//! linkers: every test runs under `add_to_linker_sync` and again under
//! `add_to_linker_async` (on tokio's multi-thread runtime, as an HTTP host
//! runs it).

use fs_core::{DescriptorFlags as DF, OpenFlags as OF, PathFlags as PF};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use vfs_host::{Vfs, VfsState, VolumeBuilder};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};
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

#[derive(Clone, Copy, Debug)]
enum Linking {
    Sync,
    Async,
}

const BOTH: [Linking; 2] = [Linking::Sync, Linking::Async];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// What one run printed.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `component` once on `vfs` through `linking`.
fn run_with(
    linking: Linking,
    engine: &Engine,
    component: &Component,
    vfs: Arc<Vfs>,
    args: &[&str],
    env: &[(&str, &str)],
) -> Ran {
    let (out, err) = (
        MemoryOutputPipe::new(1 << 20),
        MemoryOutputPipe::new(1 << 16),
    );
    let mut b = WasiCtx::builder();
    b.args(args)
        .envs(env)
        .stdout(out.clone())
        .stderr(err.clone());
    let mut store = Store::new(engine, VfsState::new(b.build(), vfs));
    let mut linker = Linker::<VfsState>::new(engine);
    let ok = match linking {
        Linking::Sync => {
            use wasmtime_wasi::p2::bindings::sync::Command;
            vfs_host::add_to_linker_sync(&mut linker).unwrap();
            let cmd = Command::instantiate(&mut store, component, &linker).unwrap();
            matches!(cmd.wasi_cli_run().call_run(&mut store), Ok(Ok(())))
        }
        Linking::Async => {
            use wasmtime_wasi::p2::bindings::Command;
            vfs_host::add_to_linker_async(&mut linker).unwrap();
            let component = component.clone();
            // On a worker thread, as a server's request task runs.
            let task = runtime().spawn(async move {
                let cmd = Command::instantiate_async(&mut store, &component, &linker)
                    .await
                    .unwrap();
                matches!(cmd.wasi_cli_run().call_run(&mut store).await, Ok(Ok(())))
            });
            runtime().block_on(task).unwrap()
        }
    };
    let text = |p: MemoryOutputPipe| String::from_utf8_lossy(&p.contents()).into_owned();
    Ran {
        ok,
        stdout: text(out),
        stderr: text(err),
    }
}

/// [`run_with`]: (exited ok, stdout).
fn run(
    linking: Linking,
    engine: &Engine,
    component: &Component,
    vfs: Arc<Vfs>,
    args: &[&str],
    env: &[(&str, &str)],
) -> (bool, String) {
    let r = run_with(linking, engine, component, vfs, args, env);
    (r.ok, r.stdout)
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
    for linking in BOTH {
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
                        linking,
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
}

#[test]
fn a_trapping_instance_leaves_the_others_intact() {
    for linking in BOTH {
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
                            linking,
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
            linking,
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
}

#[test]
fn pipeline_stages_share_files() {
    for linking in BOTH {
        let engine = Engine::default();
        let vfs = shared(VolumeBuilder::new());
        let ingest = Component::from_file(&engine, guest("ingest")).unwrap();
        let process = Component::from_file(&engine, guest("process")).unwrap();
        assert!(
            run(
                linking,
                &engine,
                &ingest,
                vfs.clone(),
                &["ingest", "25"],
                &[]
            )
            .0
        );
        let (ok, out) = run(linking, &engine, &process, vfs.clone(), &["process"], &[]);
        assert!(ok);
        let sum: u64 = (0..25u64)
            .flat_map(|b| (0..100u64).map(move |r| b * 1000 + r))
            .sum();
        let expect = format!("batches=25 rows=2500 sum={sum}\n");
        assert_eq!(out, format!("process: {expect}"));
        assert_eq!(read(&vfs, "data/summary.txt"), expect.as_bytes());
    }
}

#[test]
fn a_full_quota_fails_the_write_and_holds() {
    for linking in BOTH {
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
        let r = run_with(
            linking,
            &engine,
            &component,
            vfs.clone(),
            &["append", "/log", "/files", "1000"],
            &[],
        );
        assert!(!r.ok);
        let stderr = r.stderr;
        assert!(
            stderr.contains("append: Os"),
            "the failed write should be reported: {stderr}"
        );
        assert!(vfs.fs().usage().bytes <= 20 << 10);
    }
}

/// The conformance program answers alike through both linkers (`larder
/// run`, on the async one, is compared with wasmtime's own host in the
/// CLI's tests).
#[test]
fn conformance_is_the_same_through_both_linkers() {
    let engine = Engine::default();
    let component = Component::from_file(&engine, guest("conformance")).unwrap();
    let [sync, async_] = BOTH.map(|linking| {
        let vfs = shared(VolumeBuilder::new());
        let r = run_with(linking, &engine, &component, vfs, &["conformance"], &[]);
        assert!(r.ok, "{linking:?}: {}\n{}", r.stdout, r.stderr);
        r.stdout
    });
    assert!(sync.lines().count() > 50, "too little output:\n{sync}");
    assert_eq!(sync, async_);
}

/// Through both linkers, a volume persisted to a store (every change sent
/// before its call returns) keeps what the instances wrote: a fresh volume
/// on the same store restores the same log.
#[test]
fn a_persisted_volume_keeps_the_writes_of_both_linkers() {
    let engine = Engine::default();
    let component = Component::from_file(&engine, guest("append")).unwrap();
    for linking in BOTH {
        let dir = tempfile::tempdir().unwrap();
        let store = || -> Arc<dyn larder_sync::ObjectStore> {
            Arc::new(larder_sync::LocalDir::open(dir.path()).unwrap())
        };
        let volume =
            || VolumeBuilder::new().store(store(), "vol", vfs_host::SyncMode::WriteThrough);
        let vfs = shared(volume());
        let (ok, out) = run(
            linking,
            &engine,
            &component,
            vfs.clone(),
            &["append", "/log", "/files", "40"],
            &[("LARDER_INSTANCE", "0")],
        );
        assert!(ok, "{linking:?}: {out}");
        let written = read(&vfs, "log");
        assert_eq!(written.len(), 40 * 64);
        drop(vfs);
        let again = shared(volume());
        assert_eq!(read(&again, "log"), written, "{linking:?}");
    }
}

/// Under the async linker a long call (here 1 MiB writes and reads of a
/// 100 MiB file) leaves the worker thread: on a runtime with a single
/// worker, another task keeps running while the instance works. Run
/// inline, the instance would hold that worker for its whole run.
#[test]
fn long_calls_leave_the_async_worker_free() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let engine = Engine::default();
    let component = Component::from_file(&engine, guest("fsbench")).unwrap();
    let vfs = shared(VolumeBuilder::new());
    let mut linker = Linker::<VfsState>::new(&engine);
    vfs_host::add_to_linker_async(&mut linker).unwrap();
    let pre = linker.instantiate_pre(&component).unwrap();
    let (gap, ran) = rt.block_on(async move {
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ticker = tokio::spawn({
            let done = done.clone();
            async move {
                let mut last = std::time::Instant::now();
                let mut gap = std::time::Duration::ZERO;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    gap = gap.max(last.elapsed());
                    last = std::time::Instant::now();
                }
                gap
            }
        });
        let app = tokio::spawn(async move {
            let mut b = WasiCtx::builder();
            b.args(&["fsbench", "/bench", "seq-write", "seq-read"]);
            let mut store = Store::new(&engine, VfsState::new(b.build(), vfs));
            let cmd = wasmtime_wasi::p2::bindings::CommandPre::new(pre)
                .unwrap()
                .instantiate_async(&mut store)
                .await
                .unwrap();
            let start = std::time::Instant::now();
            let ok = cmd.wasi_cli_run().call_run(&mut store).await;
            assert!(matches!(ok, Ok(Ok(()))), "fsbench failed: {ok:?}");
            start.elapsed()
        });
        let ran = app.await.unwrap();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (ticker.await.unwrap(), ran)
    });
    assert!(
        gap * 4 < ran,
        "the other task waited {gap:?} while the instance ran {ran:?}"
    );
}
