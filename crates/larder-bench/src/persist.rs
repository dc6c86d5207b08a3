//! Persistence for composed apps, next to the host-side engine, in one
//! run: write + fsync of 1 MiB files (fsbench `fsync-1m`, timed inside the
//! guest) and start-up with 1,000 files of 1 KiB to restore (`noop`, timed
//! from the host: build the filesystem, instantiate, bring it up, exit).
//! Both keep their files in a local-directory store on tmpfs; the baseline
//! is wasmtime's host filesystem on tmpfs, with nothing to restore.

use crate::{median, scratch, Bench, Host};
use larder_sync::{LocalDir, ObjectStore};
use std::sync::Arc;
use std::time::Instant;
use vfs_host::{SyncMode, VfsBuilder};
use wasmtime::component::Component;
use wasmtime::{format_err, Result};

fn local(path: std::path::PathBuf) -> Result<Arc<dyn ObjectStore>> {
    Ok(Arc::new(
        LocalDir::open(path).map_err(|e| format_err!("{e}"))?,
    ))
}

/// The three ways to run, fresh each time: (label, host).
fn hosts(persistent: &Arc<Component>, tmp: &std::path::Path, store: &str) -> Result<Vec<Host>> {
    let engine = VfsBuilder::new()
        .store(local(tmp.join(store))?, "host/", SyncMode::OnFsync)
        .build()
        .map_err(|e| format_err!("{e}"))?;
    let lent = VfsBuilder::new()
        .lend_store(local(tmp.join(store))?, "composed/")
        .build()
        .map_err(|e| format_err!("{e}"))?;
    std::fs::create_dir_all(tmp.join("base"))?;
    Ok(vec![
        Host::Tmpfs(tmp.join("base")),
        Host::Vfs(engine),
        Host::ComposedLent(persistent.clone(), lent),
    ])
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
        true,
    )
    .map_err(|e| format_err!("compose fsbench --persist host: {e:#}"))?;
    let persistent = Arc::new(Component::new(&bench.engine, &persistent)?);
    let mut fsync = vec![Vec::new(); 3];
    let mut startup = vec![Vec::new(); 3];
    for _ in 0..repeats {
        let tmp = scratch()?;
        for (i, host) in hosts(&persistent, tmp.path(), "fsync")?.iter().enumerate() {
            let r = bench.run(host, &["/bench", "fsync-1m"])?;
            let (secs, ops) = r["fsync-1m"];
            fsync[i].push(secs / ops);
        }
        // Start-up with a store holding 1,000 small files under both
        // prefixes (the baseline has nothing to restore).
        for prefix in ["host/", "composed/"] {
            crate::sync::populate(local(tmp.path().join("startup"))?, prefix)?;
        }
        for i in 0..3 {
            let t = Instant::now();
            let host = hosts(&persistent, tmp.path(), "startup")?.swap_remove(i);
            bench.run(&host, &["/bench", "noop"])?;
            startup[i].push(t.elapsed().as_secs_f64());
        }
    }
    let fsync: Vec<f64> = fsync.into_iter().map(median).collect();
    let startup: Vec<f64> = startup.into_iter().map(median).collect();
    let mut md = String::from(
        "\nPersistence of composed apps, same run (medians; local-directory store on tmpfs):\n\n| where the files live | write + fsync 1 MiB | ratio | start-up with 1,000 files to restore | ratio |\n|---|---|---|---|---|\n",
    );
    for i in 0..3 {
        md.push_str(&format!(
            "| {} | {:.2} ms | **{:.2}×** | {:.1} ms | **{:.2}×** |\n",
            LABELS[i],
            fsync[i] * 1e3,
            fsync[0] / fsync[i],
            startup[i] * 1e3,
            startup[0] / startup[i]
        ));
    }
    Ok(md)
}
