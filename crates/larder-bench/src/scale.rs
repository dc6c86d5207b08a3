//! Persistence at scale, on S3 (moto on loopback): start-up with N files
//! in the store, restored as before the index (the listing, then a HEAD
//! per object for its metadata) and with the index, requests counted by
//! the store; then a sync of one changed 1 KiB file in that tree, and
//! polls with nothing new, listing and checking the version. Single
//! runs (a 100,000-file restore without the index takes minutes).
//! `BENCH_SCALE=1000,10000` picks the sizes (default 1,000, 10,000 and
//! 100,000).

use crate::sync::moto;
use fs_core::{DescriptorFlags as DF, Fs, OpenFlags as OF, PathFlags as PF};
use larder_sync::meta;
use larder_sync::s3::{S3Config, S3Store};
use larder_sync::{Cond, Mirror, ObjectStore};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{format_err, Result};

/// Files per directory of the tree.
const PER_DIR: usize = 1000;

fn open(endpoint: &str) -> Result<Arc<S3Store>> {
    Ok(Arc::new(
        S3Store::open(&S3Config {
            bucket: "bench".into(),
            endpoint: Some(endpoint.into()),
            region: Some("us-east-1".into()),
            path_style: true,
            ..Default::default()
        })
        .map_err(|e| format_err!("{e}"))?,
    ))
}

/// `n` files of 1 KiB in directories of PER_DIR under `prefix`, with
/// s3fs metadata, put by 16 threads as another tool (`aws s3 sync`)
/// would: fast, and with no index.
fn populate(store: &Arc<S3Store>, prefix: &str, n: usize) -> Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let file = meta::encode(meta::S_IFREG | 0o644, 0, 0, now, 0);
    let dir = meta::encode(meta::S_IFDIR | 0o755, 0, 0, now, 0);
    let next = AtomicUsize::new(0);
    let dirs = n.div_ceil(PER_DIR);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..16)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let (key, body, m) = if i < dirs {
                            (format!("{prefix}d{i}/"), Vec::new(), &dir)
                        } else if i < dirs + n {
                            let f = i - dirs;
                            let key = format!("{prefix}d{}/f{f}", f / PER_DIR);
                            (key, vec![(f % 251) as u8; 1024], &file)
                        } else {
                            return Ok(());
                        };
                        store
                            .put(&key, &body, m, &Cond::None)
                            .map_err(|e| format_err!("populate: {e}"))?;
                    }
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .map_err(|_| format_err!("a populating thread panicked"))?
        })
    })
}

/// Seconds and requests to restore `prefix` into a new filesystem.
fn restore(endpoint: &str, prefix: &str) -> Result<(f64, u64, Fs, Mirror, Arc<S3Store>)> {
    let store = open(endpoint)?;
    let before = store.requests();
    let t = Instant::now();
    let fs = Fs::in_memory();
    let mirror = Mirror::restore(store.clone(), prefix, &fs).map_err(|e| format_err!("{e}"))?;
    Ok((
        t.elapsed().as_secs_f64(),
        store.requests() - before,
        fs,
        mirror,
        store,
    ))
}

fn files_in(fs: &Fs) -> Result<usize> {
    let root = fs.root(DF::READ)?;
    let mut n = 0;
    for d in root.read_directory()? {
        let d = d?;
        let sub = root.open_at(PF::empty(), &d.name, OF::DIRECTORY, DF::READ)?;
        n += sub.read_directory()?.count();
    }
    Ok(n)
}

/// Syncs of one changed file timed per size.
const SYNCS: usize = 5;

pub fn section(root: &Path) -> Result<String> {
    let Some(m) = moto(root) else {
        return Ok("\n(Scale rows skipped: moto is not installed; run `just setup`)\n".into());
    };
    std::env::set_var("AWS_ACCESS_KEY_ID", "bench");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "bench");
    let sizes: Vec<usize> = std::env::var("BENCH_SCALE")
        .unwrap_or_else(|_| "1000,10000,100000".into())
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| format_err!("BENCH_SCALE: {e}"))?;
    let mut md = String::from(
        "\nStart-up at scale, S3 (moto on loopback), same run, single runs: restoring N files of 1 KiB as before the index (a listing, then a HEAD per object) and with it (a listing and the index), requests counted by the store (moto's time per request, shown beside the count, is what bounds the restore with the index: its listing pages take longer the more objects the bucket holds); then syncs of one changed 1 KiB file in the restored tree (median of 5, each after rewriting another file; the most requests one sent):\n\n| files | restore without the index | requests | with the index | requests | ratio | sync of one changed file | requests |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut polls = String::from(
        "\nPolls with nothing new in the same trees, same run: one that lists the prefix (as every poll did before the version object; the first poll after a restore still does, and one a minute for other tools' writes), against one that finds `.larder/version` unchanged (median of 5; requests counted by the store):\n\n| files | poll that lists | requests | poll that checks the version | requests | ratio |\n|---|---|---|---|---|---|\n",
    );
    for n in sizes {
        eprintln!("scale: {n} files...");
        let prefix = format!("n{n}/");
        populate(&open(&m.1)?, &prefix, n)?;
        // Listed times are whole seconds: the index comes a second later.
        std::thread::sleep(Duration::from_millis(1100));
        let (without, asked, fs, mirror, _) = restore(&m.1, &prefix)?;
        mirror.settle(&fs).map_err(|e| format_err!("{e}"))?;
        let (with, listed, fs, mirror, store) = restore(&m.1, &prefix)?;
        let got = files_in(&fs)?;
        if got != n {
            return Err(format_err!("restored {got} files of {n}"));
        }
        // A poll that lists, as every poll did before the version object
        // (the first after a restore still does).
        mirror.sync(&fs).map_err(|e| format_err!("{e}"))?;
        let (listing, listing_sent) = timed_poll(&mirror, &fs, &store)?;
        // Each sync after rewriting another file: the median of SYNCS,
        // and the most requests one of them sent.
        let (mut times, mut sent) = (Vec::new(), 0);
        for i in 0..SYNCS {
            let f = fs.root(DF::READ | DF::MUTATE_DIRECTORY)?.open_at(
                PF::empty(),
                &format!("d0/f{i}"),
                OF::empty(),
                DF::READ | DF::WRITE,
            )?;
            f.write(&[7; 1024], 0)?;
            drop(f);
            let before = store.requests();
            let t = Instant::now();
            mirror.sync(&fs).map_err(|e| format_err!("{e}"))?;
            times.push(t.elapsed().as_secs_f64());
            sent = sent.max(store.requests() - before);
        }
        md.push_str(&format!(
            "| {n} | {without:.2} s | {asked} | {with:.3} s | {listed} ({:.0} ms each) | {:.1}× faster | {:.1} ms | {sent} |\n",
            with * 1e3 / listed.max(1) as f64,
            without / with,
            crate::median(times) * 1e3
        ));
        // Then polls with nothing new: the version object alone.
        let (mut quiet, mut quiet_sent) = (Vec::new(), 0);
        for _ in 0..SYNCS {
            let (t, sent) = timed_poll(&mirror, &fs, &store)?;
            quiet.push(t);
            quiet_sent = quiet_sent.max(sent);
        }
        let quiet = crate::median(quiet);
        polls.push_str(&format!(
            "| {n} | {:.1} ms | {listing_sent} | {:.2} ms | {quiet_sent} | {:.0}× faster |\n",
            listing * 1e3,
            quiet * 1e3,
            listing / quiet
        ));
    }
    md.push_str(&polls);
    Ok(md)
}

/// One poll with nothing new to apply: its seconds and requests.
fn timed_poll(mirror: &Mirror, fs: &Fs, store: &S3Store) -> Result<(f64, u64)> {
    let before = store.requests();
    let t = Instant::now();
    let p = mirror.poll(fs).map_err(|e| format_err!("{e}"))?;
    let took = t.elapsed().as_secs_f64();
    if p != larder_sync::Pulled::default() {
        return Err(format_err!("a poll with nothing new did {p:?}"));
    }
    Ok((took, store.requests() - before))
}
