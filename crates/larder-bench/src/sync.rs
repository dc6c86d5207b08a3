//! The sync engine (larder-sync): write + fsync latency of a 1 MiB file,
//! restore time of 1,000 small files, and what a 4 KiB overwrite in a
//! 100 MiB file sends at fsync; local-directory store on tmpfs and S3
//! (moto on loopback, when `just setup` installed it). Baseline for the
//! latency: the same write + fsync through std::fs on tmpfs.

use crate::{median, scratch};
use fs_core::{DescriptorFlags as DF, Fs, OpenFlags as OF, PathFlags as PF};
use larder_sync::s3::{S3Config, S3Store};
use larder_sync::{LocalDir, MemStore, Mirror, ObjectStore};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{format_err, Result};

pub struct Rows {
    /// (store, median seconds) for write + fsync of 1 MiB; first is std::fs.
    pub fsync: Vec<(String, f64)>,
    /// (store, seconds to restore 1,000 files of 1 KiB, seconds until
    /// their contents are fetched too).
    pub restore: Vec<(String, f64, f64)>,
    /// Bytes sent for a 4 KiB overwrite in a 100 MiB file, then fsync.
    pub overwrite_bytes: u64,
}

/// moto's S3 server on a free loopback port, with a bucket `bench`;
/// killed on drop. `.1` is its endpoint URL.
pub struct Moto(Child, pub String);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn moto(root: &Path) -> Option<Moto> {
    let bin: PathBuf = root.join("target/s3server/bin");
    if !bin.join("moto_server").exists() {
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new(bin.join("moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let m = Moto(child, format!("http://127.0.0.1:{port}"));
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if t.elapsed() > Duration::from_secs(60) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let ok = Command::new(bin.join("python"))
        .arg("-c")
        .arg(format!(
            "import boto3; boto3.client('s3', endpoint_url='{}', aws_access_key_id='t', aws_secret_access_key='t', region_name='us-east-1').create_bucket(Bucket='bench')",
            m.1
        ))
        .status()
        .ok()?
        .success();
    ok.then_some(m)
}

fn write_file(fs: &Fs, path: &str, data: &[u8], at: u64) -> Result<fs_core::Descriptor> {
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY)?;
    let f = root.open_at(PF::empty(), path, OF::CREATE, DF::READ | DF::WRITE)?;
    let mut n = 0;
    while n < data.len() {
        n += f.write(&data[n..], at + n as u64)?;
    }
    Ok(f)
}

fn fsync_latency(store: Arc<dyn ObjectStore>, prefix: &str, repeats: usize) -> Result<f64> {
    let fs = Fs::in_memory();
    let mirror = Mirror::new(store, prefix);
    let data = vec![0x5a; 1 << 20];
    let mut v = Vec::new();
    for i in 0..repeats {
        let t = Instant::now();
        write_file(&fs, &format!("f{i}"), &data, 0)?;
        mirror.sync(&fs).map_err(|e| format_err!("sync: {e}"))?;
        v.push(t.elapsed().as_secs_f64());
    }
    Ok(median(v))
}

/// Seconds until the tree is restored (contents lazy), and until every
/// file's contents are in memory too (a prefetch right after).
/// Fills `store` under `prefix` with 1,000 files of 1 KiB in 10
/// directories (what the restore rows restore).
pub fn populate(store: Arc<dyn ObjectStore>, prefix: &str) -> Result<()> {
    let fs = Fs::in_memory();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY)?;
    for d in 0..10 {
        root.create_directory_at(&format!("d{d}"))?;
        for i in 0..100 {
            write_file(&fs, &format!("d{d}/f{i}"), &[i as u8; 1024], 0)?;
        }
    }
    Mirror::new(store, prefix)
        .sync(&fs)
        .map_err(|e| format_err!("sync: {e}"))?;
    Ok(())
}

fn restore_time(store: Arc<dyn ObjectStore>, prefix: &str) -> Result<(f64, f64)> {
    populate(store.clone(), prefix)?;
    let t = Instant::now();
    let back = Fs::in_memory();
    let mirror = Mirror::restore(store, prefix, &back).map_err(|e| format_err!("restore: {e}"))?;
    let tree = t.elapsed().as_secs_f64();
    mirror
        .prefetch(&back)
        .map_err(|e| format_err!("prefetch: {e}"))?;
    let all = t.elapsed().as_secs_f64();
    // Spot check: what was fetched is what was written.
    let mut buf = [0u8; 1024];
    back.root(DF::READ)?
        .open_at(PF::empty(), "d9/f99", OF::empty(), DF::READ)?
        .read(&mut buf, 0)?;
    if buf != [99; 1024] {
        return Err(format_err!("restored d9/f99 differs"));
    }
    Ok((tree, all))
}

pub fn run(root: &Path, repeats: usize) -> Result<Rows> {
    let repeats = repeats.max(5) * 2;
    let tmp = scratch()?;
    // The baseline: std::fs on tmpfs, write + fsync of 1 MiB.
    let data = vec![0x5a; 1 << 20];
    let mut v = Vec::new();
    for i in 0..repeats {
        let t = Instant::now();
        let mut f = std::fs::File::create(tmp.path().join(format!("base{i}")))?;
        f.write_all(&data)?;
        f.sync_all()?;
        v.push(t.elapsed().as_secs_f64());
    }
    let mut fsync = vec![("std::fs on tmpfs (baseline)".to_string(), median(v))];
    let local: Arc<dyn ObjectStore> =
        Arc::new(LocalDir::open(tmp.path().join("store")).map_err(|e| format_err!("{e}"))?);
    fsync.push((
        "local directory (tmpfs)".into(),
        fsync_latency(local.clone(), "lat/", repeats)?,
    ));
    let (tree, all) = restore_time(local, "restore/")?;
    let mut restore = vec![("local directory (tmpfs)".to_string(), tree, all)];

    let server = moto(root);
    if let Some(m) = &server {
        std::env::set_var("AWS_ACCESS_KEY_ID", "bench");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "bench");
        let s3: Arc<dyn ObjectStore> = Arc::new(
            S3Store::open(&S3Config {
                bucket: "bench".into(),
                endpoint: Some(m.1.clone()),
                region: Some("us-east-1".into()),
                path_style: true,
                ..Default::default()
            })
            .map_err(|e| format_err!("{e}"))?,
        );
        fsync.push((
            "S3 (moto on loopback)".into(),
            fsync_latency(s3.clone(), "lat/", repeats)?,
        ));
        let (tree, all) = restore_time(s3, "restore/")?;
        restore.push(("S3 (moto on loopback)".into(), tree, all));
    }

    // What a 4 KiB overwrite in a 100 MiB file sends (counted by a store
    // in memory; the engine decides what to send, not the store).
    let mem = Arc::new(MemStore::new());
    let fs = Fs::in_memory();
    let mirror = Mirror::new(mem.clone(), "");
    let big: Vec<u8> = (0..100u32 << 20).map(|i| (i % 251) as u8).collect();
    write_file(&fs, "big", &big, 0)?;
    mirror.sync(&fs).map_err(|e| format_err!("sync: {e}"))?;
    let before = mem.traffic().put_bytes;
    let f = write_file(&fs, "big", &[7; 4096], 50 << 20)?;
    f.sync().map_err(|e| format_err!("fsync: {e}"))?;
    mirror.sync(&fs).map_err(|e| format_err!("sync: {e}"))?;
    Ok(Rows {
        fsync,
        restore,
        overwrite_bytes: mem.traffic().put_bytes - before,
    })
}
