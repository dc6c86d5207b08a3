//! `larder run --store`: files survive restarts in a plain directory other
//! tools read, survive SIGKILL at any moment (old or new, never torn,
//! nothing fsync'd missing), and `larder ls|cat|export` read the store.

mod common;
#[path = "../../larder-sync/tests/common/moto.rs"]
mod moto;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn run_store(store: &Path, extra: &[&str], app: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_larder"));
    cmd.arg("run")
        .arg(guest(app))
        .arg("--store")
        .arg(store)
        .args(extra)
        .arg("--")
        .args(args);
    cmd.output().unwrap()
}

#[test]
fn files_persist_across_runs_in_a_plain_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    // The first run sends every change as it happens (write-through); the
    // second restores its files, fetching them all at start (--prefetch)
    // rather than as they are read.
    for extra in [
        &["--instances", "1", "--sync-mode", "write-through"][..],
        &["--instances", "2", "--prefetch"],
    ] {
        let out = run_store(&store, extra, "append", &["/log", "/files", "50"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    // Three instances' worth of records, whole lines, in the store as a
    // plain file.
    let log = std::fs::read_to_string(store.join("log")).unwrap();
    assert_eq!(log.lines().count(), 150);
    assert!(log
        .lines()
        .all(|l| l.len() == 63 && l.starts_with("instance")));
    let files: BTreeSet<String> = std::fs::read_dir(store.join("files"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 100, "i0-* and i1-*");

    // The store, read without running anything.
    let ls = larder(&["ls", "--store", store.to_str().unwrap()]);
    assert!(ls.status.success(), "{}", text(&ls.stderr));
    let ls = text(&ls.stdout);
    assert!(
        ls.lines()
            .any(|l| l.starts_with("drwxr-xr-x ") && l.ends_with(" /files")),
        "{ls}"
    );
    assert!(
        ls.lines()
            .any(|l| l.ends_with(" /log") && l.contains(" 9600 ")),
        "{ls}"
    );
    assert_eq!(ls.lines().count(), 102);
    let sub = larder(&["ls", "--store", store.to_str().unwrap(), "/files"]);
    assert_eq!(
        text(&sub.stdout).lines().count(),
        101,
        "the directory and its files"
    );
    let cat = larder(&["cat", "--store", store.to_str().unwrap(), "/log"]);
    assert_eq!(text(&cat.stdout), log);
    let export = dir.path().join("export");
    let r = larder(&[
        "export",
        "--store",
        store.to_str().unwrap(),
        export.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert_eq!(std::fs::read_to_string(export.join("log")).unwrap(), log);
    assert_eq!(
        std::fs::read_dir(export.join("files")).unwrap().count(),
        100
    );

    // A file another tool puts in the store is there at the next run.
    std::fs::write(store.join("files/from-outside"), b"x").unwrap();
    let out = run_store(&store, &[], "append", &["/log", "/files", "1"]);
    assert!(out.status.success());
    let cat = larder(&[
        "cat",
        "--store",
        store.to_str().unwrap(),
        "/files/from-outside",
    ]);
    assert_eq!(cat.stdout, b"x");
}

/// A writable mount seeds the filesystem; once the store has a file, its
/// version wins at the next start, so what the app appended to a seeded
/// file is still there (and the mount's unchanged copy does not undo it).
#[test]
fn a_writable_mount_seeds_and_the_store_keeps_the_apps_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, seed) = (dir.path().join("store"), dir.path().join("seed"));
    std::fs::create_dir(&seed).unwrap();
    std::fs::write(seed.join("log"), "seeded\n").unwrap();
    let mount = format!("/data={}", seed.display());
    for _ in 0..2 {
        let out = run_store(
            &store,
            &["--mount", &mount],
            "append",
            &["/data/log", "/data/files", "2"],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let log = std::fs::read_to_string(store.join("data/log")).unwrap();
    assert!(log.starts_with("seeded\n"), "{log}");
    assert_eq!(log.lines().count(), 1 + 2 * 2, "{log}");
    assert_eq!(
        std::fs::read_to_string(seed.join("log")).unwrap(),
        "seeded\n"
    );
}

#[test]
fn bad_store_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let s = |args: &[&str]| {
        let out = larder(args);
        (out.status.code(), text(&out.stderr))
    };
    let app = guest("append");
    let app = app.to_str().unwrap();
    let (code, err) = s(&["run", app, "--store", file.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(err.contains("is not a directory"), "{err}");
    let (code, err) = s(&["run", app, "--store", "s3:///p"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no bucket"), "{err}");
    let (code, err) = s(&["run", app, "--store", "s3://b/p?colour=blue"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("unknown option \"colour\""), "{err}");
    // Nothing listens there: the start-up probe fails, naming the store.
    let (code, err) = s(&[
        "run",
        app,
        "--store",
        "s3://b/p?endpoint=http://127.0.0.1:9",
    ]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("--store s3://b/p?endpoint=http://127.0.0.1:9"),
        "{err}"
    );
    let (code, err) = s(&["run", app, "--store", "ftp://x"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("expected a directory"), "{err}");
    let (code, err) = s(&["run", app, "--store", "d", "--poll", "0"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("positive number of seconds"), "{err}");
    let (code, err) = s(&["run", app, "--sync-mode", "fsync"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--store"), "{err}");
    let (code, err) = s(&["run", app, "--prefetch"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--store"), "{err}");
    let (code, err) = s(&["run", app, "--store", "d", "--sync-mode", "sometimes"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--sync-mode"), "{err}");
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let (code, err) = s(&["cat", "--store", store.to_str().unwrap(), "/missing"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no such file"), "{err}");
}

/// `larder run --store` killed with SIGKILL at random moments, round after
/// round on one store: every file in the store is a whole version the app
/// wrote, and everything the app was told is durable (fsync returned) is
/// there.
#[test]
fn sigkill_at_any_moment_loses_nothing_fsynced() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    crash_rounds(&guest("durable"), store.to_str().unwrap(), 30, dir.path());
    // Torn writes' temporary files are gone once a run opened the store.
    let temps = std::fs::read_dir(store.join("data"))
        .unwrap()
        .filter(|e| {
            let n = e.as_ref().unwrap().file_name();
            n.to_string_lossy().starts_with(".larder-tmp-")
        })
        .count();
    assert_eq!(temps, 0, "temporary files are cleaned up");
}

/// The same against S3 (moto on loopback): kills land mid-request too.
#[test]
fn sigkill_with_an_s3_store_loses_nothing_fsynced() {
    let m = moto::Moto::start();
    let dir = tempfile::tempdir().unwrap();
    crash_rounds(&guest("durable"), &m.url("crash"), 12, dir.path());
}

/// The same for a composed app keeping its files in a store `larder run`
/// lends it (`--persist host`): fsync inside the component returns only
/// once the store has the file.
#[test]
fn sigkill_a_composed_app_loses_nothing_fsynced() {
    let dir = tempfile::tempdir().unwrap();
    let composed = dir.path().join("durable-persist.wasm");
    let out = compose_persist("durable", "host", &composed);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let store = dir.path().join("store");
    crash_rounds(&composed, store.to_str().unwrap(), 15, dir.path());
}

/// A composed app's closes are grouped without a thread: none waits for
/// the store, but before the app waits for input, what it closed is
/// stored, so an app idle after closing a file never leaves it out (the
/// process still running, with nothing more to say).
#[test]
fn a_composed_app_stores_what_it_closed_before_it_waits() {
    let dir = tempfile::tempdir().unwrap();
    let composed = dir.path().join("fsshell-persist.wasm");
    let out = compose_persist("fsshell", "host", &composed);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let store = dir.path().join("store");
    let mut sh = Shell::start(Command::new(env!("CARGO_BIN_EXE_larder")).args([
        "run",
        composed.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ]));
    for i in 0..20 {
        assert_eq!(sh.ask(&format!("write /f{i} closed {i}")).0, "ok");
    }
    // The shell now waits on stdin; the last file reaches the store.
    let t = std::time::Instant::now();
    let last = store.join("f19");
    while std::fs::read(&last).ok().as_deref() != Some(&b"closed 19"[..]) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "a closed file stayed out of the store while the app waited"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(sh.child.try_wait().unwrap().is_none(), "the app is running");
    for i in 0..20 {
        assert_eq!(
            std::fs::read_to_string(store.join(format!("f{i}"))).unwrap(),
            format!("closed {i}")
        );
    }
    drop(sh.stdin);
    assert!(sh.child.wait().unwrap().success());
}

/// A composed `--persist host` app's large files reach the store its host
/// lends a MiB at a time (the store's `upload`), never whole: an 8 GiB
/// sparse file (set-size, then 4 bytes past it) is stored sparse, a
/// 192 MiB file costs `larder run` little beyond the app's own copy of it,
/// and a fresh run's small change to it keeps the rest in the store.
#[test]
fn a_composed_app_streams_large_files_to_a_lent_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let run = streamed_runs(
        dir.path(),
        store.to_str().unwrap(),
        "size /sparse 8589934592\nappend /sparse TAIL\nsync /sparse\n",
        192,
    );
    use std::os::unix::fs::{FileExt, MetadataExt};
    let sparse = std::fs::File::open(store.join("sparse")).unwrap();
    let md = sparse.metadata().unwrap();
    assert_eq!(md.len(), (8 << 30) + 4);
    assert!(md.blocks() * 512 < 1 << 20, "{} blocks stored", md.blocks());
    let mut tail = [1u8; 8];
    sparse.read_exact_at(&mut tail, md.len() - 8).unwrap();
    assert_eq!(&tail, b"\0\0\0\0TAIL");
    let mib = run.peak >> 20;
    assert!(mib < 192 + 160, "larder run peaked at {mib} MiB");
}

/// The same into S3 (moto): the host sends the spooled bytes as a
/// multipart upload, the kept pieces of the rewrite as part copies.
#[test]
fn a_composed_app_streams_large_files_to_a_lent_s3_store() {
    let m = moto::Moto::start();
    let dir = tempfile::tempdir().unwrap();
    streamed_runs(dir.path(), &m.url("streamed"), "", 40);
}

/// Runs fsshell composed with `--persist host` under `larder run --store
/// STORE`: `first` then `MIB` MiB written to /big; then a fresh run writes
/// into the middle of /big and appends to it. Checks /big in the store (by
/// `larder cat`); returns the first run.
fn streamed_runs(scratch: &Path, store: &str, first: &str, mib: usize) -> Measured {
    let composed = scratch.join("fsshell-persist.wasm");
    let out = compose_persist("fsshell", "host", &composed);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let app = composed.to_str().unwrap();
    let script = format!("{first}grow /big {mib}\nsync /big\nexit\n");
    let run = peak_memory(&["run", app, "--store", store], script.as_bytes());
    assert!(run.ok, "{}", run.stdout);
    assert!(
        run.stdout.ends_with(&format!("wrote {mib} MiB\nok\n")),
        "{}",
        run.stdout
    );
    let middle = (mib << 19) + 12_345;
    let script = format!("put /big {middle} MIDDLE\nappend /big END\nexit\n");
    let rewrite = peak_memory(&["run", app, "--store", store], script.as_bytes());
    assert!(
        rewrite.ok && rewrite.stdout == "ok\nok\n",
        "{}",
        rewrite.stdout
    );

    let mut want = vec![0x5a; mib << 20];
    want[middle..middle + 6].copy_from_slice(b"MIDDLE");
    want.extend_from_slice(b"END");
    let cat = larder(&["cat", "--store", store, "/big"]);
    assert!(cat.status.success(), "{}", text(&cat.stderr));
    assert!(
        cat.stdout == want,
        "/big in the store is not what was written"
    );
    run
}

/// A WASI 0.3 app under `larder run --store` keeps its files as a 0.2 app
/// does: fsbench-p3 writes 100 MiB through `write-via-stream` and 1,000
/// small files, and the store holds them, read back through `larder cat`
/// and `larder ls`; a second run reads them back through `read-via-stream`.
#[test]
fn a_wasi_p3_app_keeps_its_files_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let app = guest("fsbench_p3");
    let run = |workloads: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_larder"))
            .args([
                "run",
                app.to_str().unwrap(),
                "--store",
                store.to_str().unwrap(),
            ])
            .arg("--")
            .arg("/bench")
            .args(workloads)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let first = run(&["seq-write", "create"]);
    assert!(
        first.contains("seq-write ") && first.contains("create "),
        "{first}"
    );
    let big = std::fs::read(store.join("bench/big")).unwrap();
    assert_eq!(big.len(), 100 << 20);
    assert!(big.iter().all(|&b| b == 0x5a));
    let ls = text(&larder(&["ls", "--store", store.to_str().unwrap(), "/bench"]).stdout);
    assert_eq!(
        ls.lines().filter(|l| l.contains("small-")).count(),
        1000,
        "{ls}"
    );
    let cat = larder(&[
        "cat",
        "--store",
        store.to_str().unwrap(),
        "/bench/small-0999",
    ]);
    assert_eq!(cat.stdout, vec![1u8; 1024]);
    // fsbench-p3 asserts every size it reads.
    let second = run(&["seq-read", "stat", "read-small"]);
    assert_eq!(second.lines().count(), 3, "{second}");
}

/// The bytes the `durable` guest writes for file `i` in `round`.
fn content(i: u64, round: u64) -> Vec<u8> {
    let len = 1024 + (i * 7919 + round * 104_729) % (300 << 10);
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ round;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Runs the `durable` guest `rounds` times on `store`, killing all but the
/// last at a random moment, and checks the store after each (read through
/// `larder export`, so local and S3 stores are checked alike).
fn crash_rounds(app: &Path, store: &str, rounds: u64, scratch: &Path) {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = seed | 1;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut killed_mid_run = 0;
    for round in 1..=rounds {
        let last = round == rounds;
        // The host-side engine syncs only on fsync here (as the composed
        // app's adapter does, besides close): what is announced is what
        // fsync made durable.
        let composed = app != guest("durable");
        let mut child = Command::new(env!("CARGO_BIN_EXE_larder"))
            .args(["run", app.to_str().unwrap(), "--store", store])
            .args(if composed {
                &[][..]
            } else {
                &["--sync-mode", "fsync"][..]
            })
            .args(["--", "/data", &round.to_string(), "60"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        if !last {
            // Anywhere from start-up to the end of the run.
            let delay = Duration::from_millis(20 + next(500));
            let t = Instant::now();
            while t.elapsed() < delay && child.try_wait().unwrap().is_none() {
                std::thread::sleep(Duration::from_millis(2));
            }
            if child.try_wait().unwrap().is_none() {
                killed_mid_run += 1;
            }
            let _ = child.kill();
        }
        let status = child.wait().unwrap();
        if last {
            assert!(status.success(), "the last round runs to the end");
        }
        let lines = reader.join().unwrap();

        let ctx = format!("seed {seed}, round {round}");
        let export = scratch.join(format!("export-{round}"));
        if !store.starts_with("s3://") && !Path::new(store).exists() {
            // Killed before it made the local store: nothing was made
            // durable (and `export` refuses a missing store).
            assert!(lines.is_empty(), "{ctx}: announced {lines:?} with no store");
            continue;
        }
        let r = larder(&["export", "--store", store, export.to_str().unwrap()]);
        assert!(r.status.success(), "{ctx}: {}", text(&r.stderr));
        let held: BTreeMap<String, Vec<u8>> = match std::fs::read_dir(export.join("data")) {
            Ok(d) => d
                .map(|e| {
                    let e = e.unwrap();
                    let name = e.file_name().to_string_lossy().into_owned();
                    (name, std::fs::read(e.path()).unwrap())
                })
                .collect(),
            Err(_) => BTreeMap::new(),
        };
        for (name, bytes) in &held {
            let i: u64 = name[1..]
                .parse()
                .unwrap_or_else(|_| panic!("{ctx}: stray file {name} in the store"));
            assert!(
                (1..=round).any(|r| *bytes == content(i, r)),
                "{ctx}: {name} is not a whole version ({} bytes)",
                bytes.len()
            );
        }
        for line in &lines {
            let parts: Vec<&str> = line.split(' ').collect();
            let (what, i) = match parts[..] {
                [w, r, i] if r == round.to_string() => (w, i.parse::<u64>().unwrap()),
                _ => panic!("{ctx}: unexpected output {line:?}"),
            };
            let want = content(i, round);
            let (f, g) = (held.get(&format!("f{i}")), held.get(&format!("g{i}")));
            match what {
                "synced" => assert!(
                    f == Some(&want) || g == Some(&want),
                    "{ctx}: f{i} was fsync'd but the store lacks it"
                ),
                "renamed" => assert_eq!(g, Some(&want), "{ctx}: g{i} was fsync'd"),
                _ => panic!("{ctx}: unexpected output {line:?}"),
            }
        }
        if last {
            assert_eq!(lines.len(), 60 + 12, "{ctx}: the last round completes");
        }
    }
    assert!(
        killed_mid_run >= rounds / 4,
        "only {killed_mid_run} of {rounds} kills landed mid-run"
    );
}

/// `larder run --store s3://...` on a real S3-compatible server: state
/// survives runs, `larder ls`/`cat` read the bucket, and another S3 client
/// (boto3) sees the files with their s3fs metadata and adds one that
/// Larder then restores.
#[test]
fn files_persist_in_s3_and_other_clients_share_them() {
    let m = moto::Moto::start();
    let url = m.url("app");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_larder"))
            .args(["run", guest("append").to_str().unwrap(), "--store", &url])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    run(&["--", "/log", "/files", "20"]);
    run(&["--instances", "2", "--", "/log", "/files", "20"]);
    let cat = larder(&["cat", "--store", &url, "/log"]);
    assert!(cat.status.success(), "{}", text(&cat.stderr));
    assert_eq!(text(&cat.stdout).lines().count(), 60);
    let ls = text(&larder(&["ls", "--store", &url]).stdout);
    assert_eq!(ls.lines().count(), 2 + 40, "{ls}");

    let seen = m.boto3(
        "h = S3.head_object(Bucket=B, Key='app/log')\n\
         print(h['ContentLength'], h['Metadata']['mode'])\n\
         print(len(S3.list_objects_v2(Bucket=B, Prefix='app/files/')['Contents']))\n\
         S3.put_object(Bucket=B, Key='app/files/from-boto', Body=b'hi')\n",
    );
    // 40 files and the directory marker.
    assert_eq!(seen, format!("{} {}\n41\n", 60 * 64, 0o100644));
    run(&["--", "/log", "/files", "1"]);
    let cat = larder(&["cat", "--store", &url, "/files/from-boto"]);
    assert_eq!(cat.stdout, b"hi");
    let log = larder(&["cat", "--store", &url, "/log"]);
    assert_eq!(text(&log.stdout).lines().count(), 61);
}

/// `larder ls`, `cat` and `export` only read: on a versioned bucket
/// (where even a deleted object leaves a version behind) they leave no
/// version of anything, probe objects included, while a run (which writes,
/// and so probes the server's conditional writes first) does.
#[test]
fn read_only_commands_write_nothing_to_s3() {
    let m = moto::Moto::start();
    m.boto3(
        "S3.put_bucket_versioning(Bucket=B, VersioningConfiguration={'Status': 'Enabled'})\n\
         S3.put_object(Bucket=B, Key='app/note', Body=b'hello')",
    );
    let versions = || {
        m.boto3(
            "v = S3.list_object_versions(Bucket=B)\n\
             print(len(v.get('Versions', [])) + len(v.get('DeleteMarkers', [])))",
        )
        .trim()
        .parse::<u32>()
        .unwrap()
    };
    assert_eq!(versions(), 1);
    let url = m.url("app");
    let dest = tempfile::tempdir().unwrap();
    let dest = dest.path().join("copy");
    for args in [
        vec!["ls", "--store", &url],
        vec!["cat", "--store", &url, "/note"],
        vec!["export", "--store", &url, dest.to_str().unwrap()],
    ] {
        let out = larder(&args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert_eq!(versions(), 1, "{args:?} wrote to the bucket");
    }
    assert_eq!(std::fs::read(dest.join("note")).unwrap(), b"hello");
    let out = Command::new(env!("CARGO_BIN_EXE_larder"))
        .args(["run", guest("append").to_str().unwrap(), "--store", &url])
        .args(["--", "/log", "/files", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(versions() > 1, "a run writes (this test can see writes)");
}

/// `larder compose --persist host`: the composed app keeps its files in
/// its own memory and mirrors them to a store `larder run --store` lends
/// it. Runs accumulate; the store is the same plain tree the host-side
/// engine writes, so the uncomposed app run with `--store` carries on from
/// it and `larder ls|cat` read it.
fn composed_app_keeps_its_files_in(store: &str, scratch: &Path) {
    let composed = scratch.join("append-persist.wasm");
    let out = compose_persist("append", "host", &composed);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        imports(&composed)
            .iter()
            .any(|i| i.starts_with("larder:vfs/store@")),
        "the composed app imports the lent store"
    );
    assert!(
        !imports(&composed)
            .iter()
            .any(|i| i.starts_with("wasi:filesystem")),
        "and no host filesystem"
    );
    let run = |app: &Path, count: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_larder"))
            .args(["run", app.to_str().unwrap(), "--store", store])
            .args(["--", "/log", "/files", count])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    run(&composed, "20");
    run(&composed, "5");
    let cat = larder(&["cat", "--store", store, "/log"]);
    assert!(cat.status.success(), "{}", text(&cat.stderr));
    assert_eq!(text(&cat.stdout).lines().count(), 25, "both runs' records");
    let ls = text(&larder(&["ls", "--store", store, "/files"]).stdout);
    assert_eq!(
        ls.lines().count(),
        1 + 20,
        "the directory and its files: {ls}"
    );
    // The host-side engine reads and continues the same tree.
    run(&guest("append"), "3");
    run(&composed, "2");
    let log = text(&larder(&["cat", "--store", store, "/log"]).stdout);
    assert_eq!(log.lines().count(), 30);
    assert!(log
        .lines()
        .all(|l| l.len() == 63 && l.starts_with("instance")));
}

#[test]
fn a_composed_app_keeps_its_files_in_a_lent_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    composed_app_keeps_its_files_in(store.to_str().unwrap(), dir.path());
    // A plain tree with the files' own modes.
    assert_eq!(
        std::fs::read_to_string(store.join("log"))
            .unwrap()
            .lines()
            .count(),
        30
    );
    // Without a store the composed app cannot start, and says why.
    let composed = dir.path().join("append-persist.wasm");
    let out = larder(&["run", composed.to_str().unwrap(), "--", "/l", "/f", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--store"),
        "{}",
        text(&out.stderr)
    );
    // Options for the host's own filesystem are refused, not ignored.
    let out = larder(&[
        "run",
        composed.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--sync-mode",
        "fsync",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("keeps its own"));
    let out = compose_persist("append", "elsewhere", &composed);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("expected `host`"));
    // Socket and HTTP apps have no persistent build yet: said, not guessed.
    let out = compose_persist("netcopy", "host", &composed);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("command apps only"),
        "{}",
        text(&out.stderr)
    );
    // For wac users: the persistent adapter on its own.
    let adapter = dir.path().join("vfs-persist.wasm");
    let out = larder(&["adapter", "--persist", "-o", adapter.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(imports(&adapter)
        .iter()
        .any(|i| i.starts_with("larder:vfs/store@")));
    assert!(exports(&adapter)
        .iter()
        .any(|e| e.starts_with("wasi:filesystem/types@")));
}

#[test]
fn a_composed_app_keeps_its_files_in_a_lent_s3_store() {
    let m = moto::Moto::start();
    let dir = tempfile::tempdir().unwrap();
    composed_app_keeps_its_files_in(&m.url("composed"), dir.path());
    // Another S3 client sees the records with s3fs metadata.
    let seen = m.boto3(
        "h = S3.head_object(Bucket=B, Key='composed/log')\n\
         print(h['ContentLength'], h['Metadata']['mode'])\n",
    );
    assert_eq!(seen, format!("{} {}\n", 30 * 64, 0o100644));
}

/// `larder ls` against GNU `ls -ld` on the same tree (a local store is a
/// plain directory): the same type and permission letters (set-id and
/// sticky bits included), sizes, times in each style, and `-> target`;
/// `--json` for scripts; a path with nothing there is an error.
#[test]
fn ls_shows_a_store_as_ls_l_does() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let s = tmp.path().join("store");
    let at = |secs: u64| std::time::UNIX_EPOCH + Duration::from_secs(secs);
    let now = std::time::SystemTime::now();
    std::fs::create_dir_all(s.join("cfg")).unwrap();
    std::fs::create_dir_all(s.join("tmp")).unwrap();
    for (path, mode, when, body) in [
        ("cfg/app.conf", 0o640, at(1_000_000_000), "a = 1\n"),
        ("bin", 0o4755, now - Duration::from_secs(3600), "#!"),
        (
            "recent",
            0o2600,
            now - Duration::from_secs(86_400 * 30),
            "r",
        ),
        (
            "old",
            0o444,
            at(1_600_000_000) + Duration::from_nanos(123_456_789),
            "",
        ),
    ] {
        let p = s.join(path);
        std::fs::write(&p, body).unwrap();
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(when).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::fs::set_permissions(s.join("cfg"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::fs::set_permissions(s.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::os::unix::fs::symlink("cfg/app.conf", s.join("link")).unwrap();
    let store = s.to_str().unwrap();
    let ls = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_larder"))
            .args(["ls", "--store", store])
            .args(extra)
            .env("TZ", "UTC")
            .output()
            .unwrap();
        assert!(out.status.success(), "{extra:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let gnu = |style: &str, path: &str| {
        let out = Command::new("ls")
            .arg("-ld")
            .arg(format!("--time-style={style}"))
            .arg(s.join(path))
            .env("TZ", "UTC")
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        text(&out.stdout)
    };
    let paths = ["bin", "cfg", "cfg/app.conf", "link", "old", "recent", "tmp"];
    for (style, ours) in [
        ("locale", ls(&[])),
        ("full-iso", ls(&["--time-style", "full-iso"])),
        ("long-iso", ls(&["--time-style", "long-iso"])),
    ] {
        let lines: Vec<&str> = ours.lines().collect();
        assert_eq!(lines.len(), paths.len(), "{ours}");
        for (line, path) in lines.iter().zip(paths) {
            let theirs = gnu(style, path);
            let ours: Vec<&str> = line.split_whitespace().collect();
            let theirs: Vec<&str> = theirs.split_whitespace().collect();
            // ls: mode links owner group size time... name [-> target];
            // larder: mode size time... /path [-> target].
            assert_eq!(ours[0], theirs[0], "{style} {path}: {line}");
            if !ours[0].starts_with('d') {
                assert_eq!(ours[1], theirs[4], "{style} {path} size: {line}");
            }
            let time = theirs.len() - 6 - usize::from(path == "link") * 2;
            assert_eq!(
                ours[2..2 + time],
                theirs[5..5 + time],
                "{style} {path}: {line}"
            );
            assert_eq!(ours[2 + time], format!("/{path}"), "{style}: {line}");
            if path == "link" {
                assert_eq!(ours[3 + time..], ["->", "cfg/app.conf"], "{line}");
            }
        }
    }

    let json: Vec<serde_json::Value> = ls(&["--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let old = json.iter().find(|v| v["path"] == "/old").unwrap();
    assert_eq!(old["type"], "file");
    assert_eq!(old["mode"], "0444");
    assert_eq!(old["size"], 0);
    assert_eq!(old["mtime"], "2020-09-13T12:26:40.123456789Z");
    let link = json.iter().find(|v| v["path"] == "/link").unwrap();
    assert_eq!(
        (&link["type"], &link["target"]),
        (&"symlink".into(), &"cfg/app.conf".into())
    );
    assert_eq!(
        json.iter().find(|v| v["path"] == "/tmp").unwrap()["mode"],
        "1777"
    );

    assert_eq!(ls(&["/cfg"]).lines().count(), 2);
    let missing = larder(&["ls", "--store", store, "/nope"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("/nope: no such file or directory"));
}

/// Objects other tools put in a bucket: without Larder's metadata they
/// take their Last-Modified (as under s3fs), not 1970; directories their
/// keys imply are listed; a key that cannot be a path (`a//b`) is skipped
/// by `ls`, `export` and `run` alike, each saying so in one plain line
/// (no colours, no RUST_LOG needed), and none of them fails for it.
#[test]
fn foreign_objects_in_s3_keep_their_time_and_unusable_keys_are_skipped_alike() {
    let m = moto::Moto::start();
    m.boto3(
        "S3.put_object(Bucket=B, Key='app/a//b', Body=b'x')\n\
         S3.put_object(Bucket=B, Key='app/foreign.txt', Body=b'hello')\n\
         S3.put_object(Bucket=B, Key='app/z/deep/file', Body=b'deep')",
    );
    let url = m.url("app");
    let warned = |stderr: &[u8]| {
        let err = text(stderr);
        assert!(!err.contains('\x1b'), "colours on a pipe: {err:?}");
        assert!(
            err.lines()
                .any(|l| l.starts_with("larder: warning: skipped app/a//b: ")),
            "{err}"
        );
    };
    // No region given (the SDK then asks the EC2 metadata service, and
    // says so at length): nothing but Larder's own warning.
    let out = Command::new(env!("CARGO_BIN_EXE_larder"))
        .args(["ls", "--store", &url, "--json"])
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    warned(&out.stderr);
    assert_eq!(
        text(&out.stderr).lines().count(),
        1,
        "{}",
        text(&out.stderr)
    );
    let listed: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let paths: Vec<&str> = listed.iter().map(|v| v["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/foreign.txt", "/z", "/z/deep", "/z/deep/file"]);
    let now = jiff::Timestamp::now();
    for v in &listed {
        let t: jiff::Timestamp = v["mtime"].as_str().unwrap().parse().unwrap();
        assert!(
            (now - t).get_seconds().abs() < 600,
            "{v}: not the upload time"
        );
    }

    let dest = tempfile::tempdir().unwrap();
    let out = larder(&["export", "--store", &url, dest.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    warned(&out.stderr);
    let mtime = std::fs::metadata(dest.path().join("foreign.txt"))
        .unwrap()
        .modified()
        .unwrap();
    let age = std::time::SystemTime::now().duration_since(mtime).unwrap();
    assert!(age < Duration::from_secs(600), "exported as {mtime:?}");

    let out = Command::new(env!("CARGO_BIN_EXE_larder"))
        .args(["run", guest("append").to_str().unwrap(), "--store", &url])
        .args(["--", "/log", "/files", "1"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    warned(&out.stderr);
}

/// The two S3 mistakes everyone makes first get what the AWS CLI says,
/// in a line, not the SDK's kilobytes (those are under RUST_LOG=debug).
#[test]
fn missing_credentials_and_a_missing_bucket_are_one_clear_line() {
    let m = moto::Moto::start();
    let home = tempfile::tempdir().unwrap();
    let url = m.url("app");
    let missing_bucket = url.replacen(&format!("s3://{}/", m.bucket), "s3://no-such-bkt/", 1);
    let app = guest("append");
    let app = app.to_str().unwrap();
    for (args, creds, says) in [
        (
            vec!["ls", "--store", &url],
            false,
            "Unable to locate credentials",
        ),
        (
            vec!["run", app, "--store", &url],
            false,
            "Unable to locate credentials",
        ),
        (
            vec!["ls", "--store", &missing_bucket],
            true,
            "NoSuchBucket: the bucket no-such-bkt does not exist",
        ),
        (
            vec!["run", app, "--store", &missing_bucket],
            true,
            "NoSuchBucket: the bucket no-such-bkt does not exist",
        ),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_larder"));
        cmd.args(&args).env_remove("RUST_LOG");
        if !creds {
            cmd.env_remove("AWS_ACCESS_KEY_ID")
                .env_remove("AWS_SECRET_ACCESS_KEY")
                .env_remove("AWS_PROFILE")
                .env("HOME", home.path())
                .env_remove("AWS_CONFIG_FILE")
                .env_remove("AWS_SHARED_CREDENTIALS_FILE")
                .env("AWS_EC2_METADATA_DISABLED", "true");
        }
        let out = cmd.output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.len() < 300, "{args:?}: {} bytes: {err}", err.len());
    }
}

/// On a terminal, a restore shows its count as it goes (not `0/0` for the
/// whole wait, as when the first tick came before the listing knew its
/// length), and the last sync at exit says it is saving. Run under
/// `script`, which gives `larder` a pseudo-terminal.
#[test]
fn a_restore_on_a_terminal_shows_its_progress() {
    let m = moto::Moto::start();
    m.boto3(
        "for i in range(300):\n\
         \x20   S3.put_object(Bucket=B, Key=f'app/f/{i:04}', Body=b'x')",
    );
    let url = m.url("app");
    let command = format!(
        "{} run {} --store '{}' -- /log /f 1",
        env!("CARGO_BIN_EXE_larder"),
        guest("append").display(),
        url
    );
    let out = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env("TERM", "xterm")
        .output()
        .unwrap();
    let screen = text(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(screen.contains("instance 0: 1 records"), "{screen}");
    assert!(
        screen.contains("restoring from the store") && screen.contains("/300 objects"),
        "no restore count on the terminal: {screen:?}"
    );
    assert!(!screen.contains(" 0/0 objects"), "{screen:?}");
}
