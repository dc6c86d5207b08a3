//! Real C apps in a local store: SQLite (the amalgamation,
//! `examples/c-sqlite/bulk.c`) inserting 100,000 rows in transactions of
//! 1,000 (each commit syncing its journal and the database), then building
//! an index, querying and checking the file; and a burst of small files
//! written, copied and closed (`examples/c-files/copytree.c`). Under
//! `larder run --store DIR` (the host's engine), composed with `--persist
//! host` under the same (the app's own engine, the store lent to it), and,
//! as the baseline, `wasmtime run --dir` on tmpfs, interleaved in one run. Reported: the time inside the app (its
//! own clock, start-up left out), the process's wall time, and the bytes
//! the store wrote (its own count, journals included), for the database
//! against its final size.

use crate::{median, scratch};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use wasmtime::{format_err, Result};

const ROWS: &str = "100000";
const BATCH: &str = "1000";

/// What one run printed and measured.
struct Run {
    stdout: String,
    /// The app's own `elapsed:` line.
    inside: f64,
    wall: f64,
    /// The store's `bytes_written` (none for the baseline).
    written: Option<u64>,
    /// The measured file's final size (0 when there is none).
    size: u64,
}

fn run(mut cmd: Command, measured: Option<PathBuf>) -> Result<Run> {
    let t = Instant::now();
    let out = cmd.output()?;
    let wall = t.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format_err!("{cmd:?}: {stderr}"));
    }
    let inside = stderr
        .lines()
        .find_map(|l| l.strip_prefix("elapsed: "))
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format_err!("{cmd:?} printed no elapsed time: {stderr}"))?;
    let written = larder_sync::local::written_in_log(&stderr);
    Ok(Run {
        stdout: String::from_utf8(out.stdout)?,
        inside,
        wall,
        written,
        size: match measured {
            Some(f) => std::fs::metadata(f)?.len(),
            None => 0,
        },
    })
}

/// The wasip1 module as a component, through wasmtime's preview1 adapter
/// (`larder run` runs components; the baseline runs the same bytes).
fn componentize(module: &Path, out: &Path) -> Result<()> {
    let bytes = std::fs::read(module)
        .map_err(|e| format_err!("{} (run `just guests`): {e}", module.display()))?;
    let component = wit_component::ComponentEncoder::default()
        .module(&bytes)
        .and_then(|e| {
            e.adapter(
                wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
                wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER,
            )
        })
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| format_err!("componentize {}: {e:#}", module.display()))?;
    std::fs::write(out, component)?;
    Ok(())
}

/// One workload: the app (a wasip1 module in target/guests), its
/// arguments (the directory it works in is `/w`), and the file whose size
/// the store's bytes are compared with, if any.
struct Workload {
    title: String,
    module: &'static str,
    args: Vec<&'static str>,
    measured: Option<&'static str>,
}

pub fn section(root: &Path, repeats: usize) -> Result<String> {
    let workloads = [
        Workload {
            title: format!(
                "SQLite: {ROWS} inserts in transactions of {BATCH}, an index, queries, integrity check"
            ),
            module: "bulk",
            args: vec!["/w/bulk.db", ROWS, BATCH],
            measured: Some("bulk.db"),
        },
        Workload {
            title: "100 files of 1 KiB written and closed, then copied and closed (no fsync)".into(),
            module: "copytree",
            args: vec!["/w", "100", "1024"],
            measured: None,
        },
    ];
    let mut md = String::from(
        "\n### Apps in a local store (`larder run --store DIR`), against `wasmtime run --dir`\n\n\
         Both on tmpfs, medians of interleaved runs; ratio = baseline time / ours (above 1: \
         faster). Time inside the app: its own clock, process start-up left out. Bytes written: \
         what the store wrote (journals included), as it counts them.\n",
    );
    for w in &workloads {
        md.push_str(&workload(root, w, repeats)?);
    }
    Ok(md)
}

fn workload(root: &Path, w: &Workload, repeats: usize) -> Result<String> {
    let larder = root.join("target/release/larder");
    let apps = scratch()?;
    let app = apps.path().join(format!("{}.wasm", w.module));
    componentize(&root.join(format!("target/guests/{}.wasm", w.module)), &app)?;
    // The same app composed with `--persist host`: its own sync engine,
    // the store lent to it by `larder run`.
    let lent_app = apps.path().join(format!("{}-persist-host.wasm", w.module));
    let out = Command::new(&larder)
        .arg("compose")
        .arg(&app)
        .args(["--persist", "host", "-o"])
        .arg(&lent_app)
        .output()?;
    if !out.status.success() {
        return Err(format_err!(
            "larder compose --persist host: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut base: Vec<Run> = Vec::new();
    let mut ours: Vec<Run> = Vec::new();
    let mut lent: Vec<Run> = Vec::new();
    for r in 0..repeats {
        let tmp = scratch()?;
        let dir = tmp.path().join("base");
        std::fs::create_dir_all(&dir)?;
        let mut c = Command::new("wasmtime");
        c.arg("run")
            .arg("--dir")
            .arg(format!("{}::/w", dir.display()))
            .arg(&app)
            .args(&w.args);
        base.push(run(c, w.measured.map(|m| dir.join(m)))?);

        for (component, runs, name) in [(&app, &mut ours, "store"), (&lent_app, &mut lent, "lent")]
        {
            let store = tmp.path().join(name);
            // The directory the app works in, as --dir gives the baseline.
            std::fs::create_dir_all(store.join("w"))?;
            let mut c = Command::new(&larder);
            c.env("RUST_LOG", "larder_sync::local=info")
                .arg("run")
                .arg(component)
                .arg("--store")
                .arg(&store)
                .arg("--")
                .args(&w.args);
            runs.push(run(c, w.measured.map(|m| store.join("w").join(m)))?);
            let (b, o) = (base.last().unwrap(), runs.last().unwrap());
            if b.stdout != o.stdout {
                return Err(format_err!(
                    "{} ({name}): the answers differ:\n{}\n---\n{}",
                    w.module,
                    b.stdout,
                    o.stdout
                ));
            }
        }
        eprintln!("{} round {}/{repeats} done", w.module, r + 1);
    }
    if ours.iter().chain(&lent).any(|r| r.written.is_none()) {
        return Err(format_err!(
            "larder run did not report the store's bytes written"
        ));
    }
    let m = |runs: &[Run], f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
    let inside = |runs: &[Run]| m(runs, |r| r.inside);
    let wall = |runs: &[Run]| m(runs, |r| r.wall);
    let written = |runs: &[Run]| m(runs, |r| r.written.unwrap_or(0) as f64);
    let mib = |b: f64| b / (1 << 20) as f64;
    let secs = |s: f64| {
        if s < 1.0 {
            format!("{:.1} ms", s * 1e3)
        } else {
            format!("{s:.2} s")
        }
    };
    // A row: the baseline's figure, then each route's with its ratio.
    let row = |what: &str, f: &dyn Fn(&[Run]) -> f64| {
        let b = f(&base);
        format!(
            "| {what} | {} | {} | {:.2}× | {} | {:.2}× |\n",
            secs(b),
            secs(f(&ours)),
            b / f(&ours),
            secs(f(&lent)),
            b / f(&lent)
        )
    };
    let mut md = format!(
        "\n{} (medians of {repeats}):\n\n\
         | | `wasmtime run --dir` | `larder run --store DIR` | ratio | composed `--persist host` under `larder run --store DIR` | ratio |\n\
         |---|---|---|---|---|---|\n{}{}",
        w.title,
        row("time inside the app", &inside),
        row("process wall time", &wall),
    );
    let cell = |runs: &[Run]| match w.measured {
        Some(file) => {
            let size = m(runs, |r| r.size as f64);
            format!(
                "{:.1} MiB for a {:.1} MiB `{file}` | {:.2}× its size",
                mib(written(runs)),
                mib(size),
                written(runs) / size
            )
        }
        None => format!("{:.1} KiB |", written(runs) / 1024.0),
    };
    md.push_str(&format!(
        "| bytes written to the store | | {} | {} |\n",
        cell(&ours),
        cell(&lent)
    ));
    Ok(md)
}
