//! Persistence for composed apps, next to the host-side engine, in one
//! run: write + fsync of 1 MiB files (fsbench `fsync-1m`, timed inside the
//! guest) and start-up with 1,000 files of 1 KiB to restore (`noop`, timed
//! from the host: build the filesystem, instantiate, bring it up, exit).
//! Both keep their files in a local-directory store on tmpfs; the baseline
//! is wasmtime's host filesystem on tmpfs, with nothing to restore.

use crate::{median, scratch, Bench, Host};
use larder_sync::{LocalDir, ObjectStore};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;
use vfs_host::{SyncMode, Vfs, VolumeBuilder};
use wasmtime::component::Component;
use wasmtime::{format_err, Result};

fn local(path: std::path::PathBuf) -> Result<Arc<dyn ObjectStore>> {
    Ok(Arc::new(
        LocalDir::open(path).map_err(|e| format_err!("{e}"))?,
    ))
}

/// Way `i` of the three to run (see LABELS), fresh: the host-side
/// engine restores while it is built, the composed app when it starts.
fn host(i: usize, persistent: &Arc<Component>, tmp: &std::path::Path, store: &str) -> Result<Host> {
    Ok(match i {
        0 => {
            std::fs::create_dir_all(tmp.join("base"))?;
            Host::Tmpfs(tmp.join("base"))
        }
        1 => Host::Vfs(Arc::new(Vfs::new(
            VolumeBuilder::new()
                .store(local(tmp.join(store))?, "host/", SyncMode::OnFsync)
                .build()
                .map_err(|e| format_err!("{e}"))?,
        ))),
        _ => Host::ComposedLent(
            persistent.clone(),
            Arc::new(
                Vfs::new(
                    VolumeBuilder::new()
                        .build()
                        .map_err(|e| format_err!("{e}"))?,
                )
                .lend_store(local(tmp.join(store))?, "composed/"),
            ),
        ),
    })
}

const LABELS: [&str; 3] = [
    "wasmtime host fs on tmpfs (baseline)",
    "host-side engine (`larder run --store`)",
    "composed app, store lent by the host (`--persist host`)",
];

pub fn section(bench: &Bench, fsbench: &[u8], repeats: usize) -> Result<String> {
    let persistent = larder_compose::compose_with(
        fsbench,
        "fsbench",
        &larder_compose::Bundle {
            preopens: larder_compose::default_preopens(),
            ..Default::default()
        },
        Some(larder_compose::Persist::Host),
    )
    .map_err(|e| format_err!("compose fsbench --persist host: {e:#}"))?;
    let persistent = Arc::new(Component::new(&bench.engine, &persistent)?);
    let mut fsync = vec![Vec::new(); 3];
    let mut startup = vec![Vec::new(); 3];
    for _ in 0..repeats {
        let tmp = scratch()?;
        for (i, times) in fsync.iter_mut().enumerate() {
            let h = host(i, &persistent, tmp.path(), "fsync")?;
            let (secs, ops) = bench.run(&h, &["/bench", "fsync-1m"])?["fsync-1m"];
            times.push(secs / ops);
        }
        // Start-up with a store holding 1,000 small files under both
        // prefixes (the baseline has nothing to restore).
        for prefix in ["host/", "composed/"] {
            crate::sync::populate(local(tmp.path().join("startup"))?, prefix)?;
        }
        for (i, times) in startup.iter_mut().enumerate() {
            let t = Instant::now();
            let h = host(i, &persistent, tmp.path(), "startup")?;
            bench.run(&h, &["/bench", "noop"])?;
            times.push(t.elapsed().as_secs_f64());
        }
    }
    let fsync: Vec<f64> = fsync.into_iter().map(median).collect();
    let startup: Vec<f64> = startup.into_iter().map(median).collect();
    let mut md = String::from(
        "\nPersistence of composed apps, same run (medians; local-directory store on tmpfs):\n\n| where the files live | write + fsync 1 MiB | ratio | start-up with 1,000 files to restore | ratio |\n|---|---|---|---|---|\n",
    );
    for (label, (f, s)) in LABELS.iter().zip(fsync.iter().zip(&startup)) {
        md.push_str(&format!(
            "| {label} | {:.2} ms | **{:.2}×** | {:.1} ms | **{:.2}×** |\n",
            f * 1e3,
            fsync[0] / f,
            s * 1e3,
            startup[0] / s
        ));
    }
    Ok(md)
}

/// The same in S3 (moto on loopback), every row through the command users
/// run, so the route that needs no help from its runtime (`--persist
/// s3://`, under plain `wasmtime run -S http`) is measured as shipped:
/// `wasmtime run --dir` on tmpfs (baseline), `larder run --store`,
/// `larder run` lending a store to `--persist host`, and `wasmtime run`
/// on `--persist s3://`. Start-up is the process's wall time for `noop`,
/// with an empty prefix and with 1,000 files of 1 KiB to restore.
pub fn s3_section(root: &Path, fsbench: &Path, repeats: usize) -> Result<String> {
    let larder = root.join("target/release/larder");
    let Some(moto) = crate::sync::moto(root) else {
        return Ok(
            "\n(S3 persistence rows skipped: moto is not installed; run `just setup`)\n".into(),
        );
    };
    if !larder.exists() {
        return Err(format_err!(
            "{} missing: `just bench` builds it",
            larder.display()
        ));
    }
    let endpoint = &moto.1;
    std::env::set_var("AWS_ACCESS_KEY_ID", "bench");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "bench");
    let url = |prefix: &str| format!("s3://bench/{prefix}?endpoint={endpoint}");
    let dir = scratch()?;
    let compose = |persist: &str, out: &str| -> Result<PathBuf> {
        let out = dir.path().join(out);
        let st = Command::new(&larder)
            .arg("compose")
            .arg(fsbench)
            .args(["--persist", persist, "-o"])
            .arg(&out)
            .status()?;
        if !st.success() {
            return Err(format_err!("larder compose --persist {persist} failed"));
        }
        Ok(out)
    };
    let lent = compose("host", "fsbench-host.wasm")?;
    // The URL is bundled: one build, one prefix per row, emptied between
    // runs (a new build per run would be compiled afresh each time).
    let direct = compose(&url("direct/"), "fsbench-direct.wasm")?;
    let prefixes = ["", "host/", "lent/", "direct/"];
    let base = dir.path().join("base");
    std::fs::create_dir_all(&base)?;
    // Row `i`'s command, before fsbench's arguments.
    let command = |i: usize| -> Command {
        let prefix = prefixes[i];
        match i {
            0 => {
                let mut c = Command::new("wasmtime");
                c.arg("run")
                    .arg("--dir")
                    .arg(format!("{}::/", base.display()))
                    .arg(fsbench);
                c
            }
            1 | 2 => {
                let mut c = Command::new(&larder);
                c.arg("run")
                    .arg(if i == 1 { fsbench } else { &lent })
                    .args(["--store", &url(prefix)]);
                if i == 1 {
                    c.args(["--sync-mode", "fsync"]);
                }
                c.arg("--");
                c
            }
            _ => {
                let mut c = Command::new("wasmtime");
                c.args(["run", "-S", "http"])
                    .args([
                        "--env",
                        "AWS_ACCESS_KEY_ID",
                        "--env",
                        "AWS_SECRET_ACCESS_KEY",
                    ])
                    .arg(&direct);
                c
            }
        }
    };
    let run = |mut c: Command, args: &[&str]| -> Result<(f64, String)> {
        let t = Instant::now();
        let out = c.args(args).output()?;
        if !out.status.success() {
            return Err(format_err!(
                "{c:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok((t.elapsed().as_secs_f64(), String::from_utf8(out.stdout)?))
    };
    let store: Arc<dyn ObjectStore> = Arc::new(
        larder_sync::s3::S3Store::open(&larder_sync::s3::S3Config {
            bucket: "bench".into(),
            endpoint: Some(endpoint.clone()),
            path_style: true,
            ..Default::default()
        })
        .map_err(|e| format_err!("{e}"))?,
    );
    let clear = |i: usize| -> Result<()> {
        if i > 0 {
            for o in store.list(prefixes[i]).map_err(|e| format_err!("{e}"))? {
                store.delete(&o.key).map_err(|e| format_err!("{e}"))?;
            }
        }
        std::fs::remove_dir_all(&base)?;
        std::fs::create_dir_all(&base)?;
        Ok(())
    };
    let mut fsync = vec![Vec::new(); 4];
    let mut empty = vec![Vec::new(); 4];
    let mut full = vec![Vec::new(); 4];
    for i in 0..4 {
        // Compiled (and cached by wasmtime) on the first run: not timed.
        run(command(i), &["/bench", "noop"])?;
    }
    for _ in 0..repeats {
        for i in 0..4 {
            clear(i)?;
            let (_, text) = run(command(i), &["/bench", "fsync-1m"])?;
            let (secs, ops) = crate::results(&text)?["fsync-1m"];
            fsync[i].push(secs / ops);
            clear(i)?;
            let (t, _) = run(command(i), &["/bench", "noop"])?;
            empty[i].push(t);
            clear(i)?;
            if i > 0 {
                crate::sync::populate(store.clone(), prefixes[i])?;
            }
            let (t, _) = run(command(i), &["/bench", "noop"])?;
            full[i].push(t);
        }
    }
    let [fsync, empty, full] =
        [fsync, empty, full].map(|v| v.into_iter().map(median).collect::<Vec<f64>>());
    let labels = [
        "`wasmtime run --dir` on tmpfs (baseline)",
        "`larder run --store s3://`",
        "composed `--persist host`, `larder run --store s3://`",
        "composed `--persist s3://`, plain `wasmtime run -S http`",
    ];
    let mut md = String::from(
        "\nPersistence in S3 (moto on loopback), same run, each row the command users run (medians):\n\n| how | write + fsync 1 MiB | ratio | start-up, empty store | ratio | start-up, 1,000 files to restore | ratio |\n|---|---|---|---|---|---|---|\n",
    );
    // Restores from moto are thousands of times the baseline: keep digits.
    let ratio = |r: f64| {
        if r < 0.01 {
            format!("{r:.4}")
        } else {
            format!("{r:.2}")
        }
    };
    for (i, label) in labels.iter().enumerate() {
        md.push_str(&format!(
            "| {label} | {:.2} ms | **{}×** | {:.0} ms | **{}×** | {:.0} ms | **{}×** |\n",
            fsync[i] * 1e3,
            ratio(fsync[0] / fsync[i]),
            empty[i] * 1e3,
            ratio(empty[0] / empty[i]),
            full[i] * 1e3,
            ratio(full[0] / full[i]),
        ));
    }
    Ok(md)
}
