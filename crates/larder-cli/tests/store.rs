//! `larder run --store`: files survive restarts in a plain directory other
//! tools read, survive SIGKILL at any moment (old or new, never torn,
//! nothing fsync'd missing), and `larder ls|cat|export` read the store.

mod common;

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
    for instances in ["1", "2"] {
        let out = run_store(
            &store,
            &["--instances", instances],
            "append",
            &["/log", "/files", "50"],
        );
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
            .any(|l| l.starts_with("d0755") && l.ends_with(" /files")),
        "{ls}"
    );
    assert!(
        ls.lines()
            .any(|l| l.ends_with(" /log") && l.contains(" 9600 ")),
        "{ls}"
    );
    assert_eq!(ls.lines().count(), 102);
    let sub = larder(&["ls", "--store", store.to_str().unwrap(), "/files"]);
    assert_eq!(text(&sub.stdout).lines().count(), 101, "the directory and its files");
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
    let (code, err) = s(&["run", app, "--store", "s3://bucket/p"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("S3 stores are not in this build yet"), "{err}");
    let (code, err) = s(&["run", app, "--store", "ftp://x"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("expected a directory"), "{err}");
    let (code, err) = s(&["run", app, "--store", "d", "--sync-mode", "sometimes"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--sync-mode"), "{err}");
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let (code, err) = s(&["cat", "--store", store.to_str().unwrap(), "/missing"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no such file"), "{err}");
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

/// `larder run --store` killed with SIGKILL at random moments, round after
/// round on one store: every file in the store is a whole version the app
/// wrote, and everything the app was told is durable (fsync returned) is
/// there.
#[test]
fn sigkill_at_any_moment_loses_nothing_fsynced() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
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
    let rounds = 30u64;
    let mut killed_mid_run = 0;
    for round in 1..=rounds {
        let last = round == rounds;
        let mut child = Command::new(env!("CARGO_BIN_EXE_larder"))
            .arg("run")
            .arg(guest("durable"))
            .arg("--store")
            .arg(&store)
            .args([
                "--sync-mode",
                "fsync",
                "--",
                "/data",
                &round.to_string(),
                "60",
            ])
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
            let delay = Duration::from_millis(50 + next(900));
            let t = Instant::now();
            while t.elapsed() < delay {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
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

        // What the store holds now, read as plain files.
        let data = store.join("data");
        let held: BTreeMap<String, Vec<u8>> = match std::fs::read_dir(&data) {
            // A put cut short leaves its temporary file (never listed; the
            // next run's store removes it, checked at the end).
            Ok(d) => d
                .map(|e| e.unwrap())
                .filter(|e| !e.file_name().to_string_lossy().starts_with(".larder-tmp-"))
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    (name, std::fs::read(e.path()).unwrap())
                })
                .collect(),
            Err(_) => BTreeMap::new(),
        };
        let ctx = format!("seed {seed}, round {round}");
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
        // The store stays readable by `larder ls` (no temporary files show).
        let ls = larder(&["ls", "--store", store.to_str().unwrap()]);
        assert!(ls.status.success(), "{ctx}");
        assert!(!text(&ls.stdout).contains(".larder-tmp"), "{ctx}");
        if last {
            assert_eq!(lines.len(), 60 + 12, "{ctx}: the last round completes");
            let temps = std::fs::read_dir(&data)
                .unwrap()
                .filter(|e| {
                    let n = e.as_ref().unwrap().file_name();
                    n.to_string_lossy().starts_with(".larder-tmp-")
                })
                .count();
            assert_eq!(
                temps, 0,
                "{ctx}: torn writes' temporary files are cleaned up"
            );
        }
    }
    assert!(
        killed_mid_run >= 10,
        "only {killed_mid_run} kills landed mid-run"
    );
}
