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

/// Way `i` of the three to run (see LABELS), fresh: the host-side
/// engine restores while it is built, the composed app when it starts.
fn host(i: usize, persistent: &Arc<Component>, tmp: &std::path::Path, store: &str) -> Result<Host> {
    Ok(match i {
        0 => {
            std::fs::create_dir_all(tmp.join("base"))?;
            Host::Tmpfs(tmp.join("base"))
        }
        1 => Host::Vfs(
            VfsBuilder::new()
                .store(local(tmp.join(store))?, "host/", SyncMode::OnFsync)
                .build()
                .map_err(|e| format_err!("{e}"))?,
        ),
        _ => Host::ComposedLent(
            persistent.clone(),
            VfsBuilder::new()
                .lend_store(local(tmp.join(store))?, "composed/")
                .build()
                .map_err(|e| format_err!("{e}"))?,
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
