//! A real C program: SQLite (its amalgamation, built with zig's current
//! wasi-libc and made a component with wasmtime's preview1 adapter) keeping
//! a database in a file. Every route answers as wasmtime's own host
//! filesystem does, and what persists is a database the host's SQLite
//! (Python's sqlite3) opens and checks.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The ledger app as a component.
fn ledger(dir: &Path) -> PathBuf {
    let app = dir.join("ledger.wasm");
    componentize_p1(&prebuilt_guest("ledger"), &app);
    app
}

/// The same runs (each a list of ledger commands on `/db/ledger.db`)
/// under `wasmtime run --dir` on tmpfs: what every route must print.
fn reference(app: &Path, runs: &[&[&str]]) -> Vec<String> {
    let dir = tmpfs_dir();
    runs.iter()
        .map(|cmds| {
            let mut flags = vec![
                "--dir".to_string(),
                format!("{}::/db", dir.path().display()),
            ];
            flags.push(app.to_str().unwrap().to_string());
            flags.push("/db/ledger.db".into());
            flags.extend(cmds.iter().map(|c| c.to_string()));
            ok(Command::new("wasmtime").arg("run").args(&flags))
        })
        .collect()
}

/// The host's own SQLite on the database file a store holds: its integrity
/// check and its entry count.
/// `app` composed with `--persist host` (the store lent by `larder run
/// --store`), beside it.
fn persist_host(app: &Path) -> PathBuf {
    let out = app.with_extension("persist-host.wasm");
    let r = larder(&[
        "compose",
        app.to_str().unwrap(),
        "--persist",
        "host",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    out
}

fn host_sqlite(db: &Path) -> String {
    ok(Command::new("python3").arg("-c").arg(format!(
        "import sqlite3\n\
         c = sqlite3.connect('file:{}?mode=ro', uri=True)\n\
         print(c.execute('pragma integrity_check').fetchone()[0], \
               c.execute('select count(*) from entry').fetchone()[0])",
        db.display()
    )))
}

const RUNS: &[&[&str]] = &[&["add", "1500", "report"], &["add", "400", "report"]];

/// Composed with bundled directories and run under plain `wasmtime run`:
/// one run creates, fills, queries and checks a database in the app's own
/// filesystem, with the same answers as on the host's.
#[test]
fn sqlite_composed_answers_as_on_the_host_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let app = ledger(dir.path());
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let out = dir.path().join("composed.wasm");
    let r = larder(&[
        "compose",
        app.to_str().unwrap(),
        "--mount",
        &format!("/db={}", data.display()),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert_no_host_filesystem(&out);
    let all: Vec<&str> = RUNS.concat();
    let ours = ok(Command::new("wasmtime")
        .arg("run")
        .arg(&out)
        .arg("/db/ledger.db")
        .args(&all));
    let theirs = reference(&app, &[&all]).concat();
    assert_eq!(ours, theirs);
    assert!(ours.contains("integrity: ok"), "{ours}");
    assert!(ours.contains("entries: 1710 "), "{ours}");
}

/// Kept across runs in a store, by the host (`larder run --store`) and by
/// the composed app itself (`--persist host`, the store lent to it): each
/// run carries on from the last, and the store holds a database file the
/// host's SQLite finds intact, with every entry.
#[test]
fn sqlite_database_persists_in_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let app = ledger(dir.path());
    let theirs = reference(&app, RUNS);
    let persistent = persist_host(&app);
    for (route, component) in [
        ("larder run", &app),
        ("composed --persist host", &persistent),
    ] {
        let store = dir.path().join(format!("store-{}", route.len()));
        // The directory the database goes in, as --dir gives the reference.
        std::fs::create_dir_all(store.join("db")).unwrap();
        let ours: Vec<String> = RUNS
            .iter()
            .map(|cmds| {
                ok(Command::new(env!("CARGO_BIN_EXE_larder"))
                    .arg("run")
                    .arg(component)
                    .arg("--store")
                    .arg(&store)
                    .arg("--")
                    .arg("/db/ledger.db")
                    .args(*cmds))
            })
            .collect();
        assert_eq!(ours, theirs, "{route}");
        let count = theirs[1]
            .lines()
            .find_map(|l| l.strip_prefix("entries: "))
            .and_then(|l| l.split(' ').next())
            .unwrap()
            .to_string();
        assert_eq!(
            host_sqlite(&store.join("db/ledger.db")),
            format!("ok {count}\n"),
            "{route}"
        );
        // SQLite's journal and lock directory are gone, here as on Linux.
        let mut left: Vec<String> = std::fs::read_dir(store.join("db"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["ledger.db"], "{route}");
    }
}

/// A database filled in 100 small transactions under `larder run
/// --store`, by the host's engine and by the app composed with `--persist
/// host` (the store lent to it): the same answers as on the host's
/// filesystem, a database the host's SQLite finds intact, and the store
/// wrote about what changed (each commit's pages, twice where they replace
/// old ones, and SQLite's own journal: about 3.4 times the database here),
/// not the whole file at every commit (the sum of its sizes over 100
/// commits).
#[test]
fn sqlite_commits_cost_the_store_what_they_changed() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("bulk.wasm");
    componentize_p1(&prebuilt_guest("bulk"), &app);
    let lent = persist_host(&app);
    let args = ["/db/bulk.db", "20000", "200"];
    let base = tmpfs_dir();
    let theirs = ok(Command::new("wasmtime")
        .arg("run")
        .arg("--dir")
        .arg(format!("{}::/db", base.path().display()))
        .arg(&app)
        .args(args));
    assert!(theirs.contains("integrity: ok"), "{theirs}");
    for (route, component) in [("larder run", &app), ("composed --persist host", &lent)] {
        let store = dir.path().join(format!("store-{}", route.len()));
        std::fs::create_dir_all(store.join("db")).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_larder"))
            .env("RUST_LOG", "larder_sync::local=info")
            .arg("run")
            .arg(component)
            .arg("--store")
            .arg(&store)
            .arg("--")
            .args(args)
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{route}: {stderr}");
        assert_eq!(text(&out.stdout), theirs, "{route}");
        let written = larder_sync::local::written_in_log(&stderr)
            .unwrap_or_else(|| panic!("{route}: no bytes_written in: {stderr}"));
        let db = store.join("db/bulk.db");
        let size = std::fs::metadata(&db).unwrap().len();
        assert!(
            written < 5 * size,
            "{route}: {written} bytes written to the store for a database of {size}"
        );
        let check = ok(Command::new("python3").arg("-c").arg(format!(
            "import sqlite3\n\
             c = sqlite3.connect('file:{}?mode=ro', uri=True)\n\
             print(c.execute('pragma integrity_check').fetchone()[0], \
                   c.execute('select count(*) from item').fetchone()[0])",
            db.display()
        )));
        assert_eq!(check, "ok 20000\n", "{route}");
    }
}
