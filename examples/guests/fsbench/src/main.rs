//! The benchmark workload, timed inside the guest so every host is measured
//! the same way: `fsbench DIR [WORKLOAD...]` prints `name seconds units` per
//! workload, where units are bytes or operations.
//!
//! Workloads: seq-write (100 MiB in 1 MiB writes, then fsync), seq-read,
//! rand-read and rand-write (4096 x 4 KiB at random offsets of that file),
//! create (1000 files of 1 KiB), stat, read-small, unlink; and, run only
//! when named, fsync-1m (20 files of 1 MiB, each written and fsync'd) and
//! seq-read-16m (seq-read with a 16 MiB buffer).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Instant;

const BIG: usize = 100 << 20;
const CHUNK: usize = 1 << 20;
const RANDOM_OPS: usize = 4096;
const SMALL: usize = 1000;
const FSYNCS: usize = 20;

fn offsets() -> Vec<u64> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..RANDOM_OPS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % (BIG as u64 / 4096)) * 4096
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args.first().cloned().unwrap_or_else(|| "/bench".into());
    let all = [
        "seq-write",
        "seq-read",
        "rand-read",
        "rand-write",
        "create",
        "stat",
        "read-small",
        "unlink",
    ];
    let wanted: Vec<&str> = if args.len() > 1 {
        args[1..].iter().map(String::as_str).collect()
    } else {
        all.to_vec()
    };
    fs::create_dir_all(&dir).expect("bench dir");
    let big = format!("{dir}/big");
    let names: Vec<String> = (0..SMALL).map(|i| format!("{dir}/small-{i:04}")).collect();
    for w in wanted {
        let t = Instant::now();
        let units: usize = match w {
            "seq-write" => {
                let chunk = vec![0x5au8; CHUNK];
                let mut f = File::create(&big).expect("create big");
                for _ in 0..BIG / CHUNK {
                    f.write_all(&chunk).expect("write");
                }
                f.sync_all().expect("fsync");
                BIG
            }
            "seq-read" | "seq-read-16m" => {
                let mut f = File::open(&big).expect("open big (run seq-write first)");
                let mut buf = vec![0u8; if w == "seq-read" { CHUNK } else { 16 * CHUNK }];
                let mut total = 0;
                loop {
                    let n = f.read(&mut buf).expect("read");
                    if n == 0 {
                        break;
                    }
                    total += n;
                }
                assert_eq!(total, BIG);
                BIG
            }
            "rand-read" | "rand-write" => {
                let mut f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&big)
                    .expect("open big");
                let mut buf = vec![7u8; 4096];
                for o in offsets() {
                    f.seek(SeekFrom::Start(o)).expect("seek");
                    if w == "rand-read" {
                        f.read_exact(&mut buf).expect("read");
                    } else {
                        f.write_all(&buf).expect("write");
                    }
                }
                RANDOM_OPS * 4096
            }
            "create" => {
                let body = vec![1u8; 1024];
                for n in &names {
                    fs::write(n, &body).expect("create small");
                }
                SMALL
            }
            "stat" => {
                for n in &names {
                    assert_eq!(fs::metadata(n).expect("stat").len(), 1024);
                }
                SMALL
            }
            "read-small" => {
                for n in &names {
                    assert_eq!(fs::read(n).expect("read small").len(), 1024);
                }
                SMALL
            }
            "unlink" => {
                for n in &names {
                    fs::remove_file(n).expect("unlink");
                }
                SMALL
            }
            "fsync-1m" => {
                let body = vec![0x3cu8; CHUNK];
                for i in 0..FSYNCS {
                    let mut f = File::create(format!("{dir}/sync-{i}")).expect("create");
                    f.write_all(&body).expect("write");
                    f.sync_all().expect("fsync");
                }
                FSYNCS
            }
            // Start-up only: the filesystem is up once DIR exists.
            "noop" => 0,
            other => {
                eprintln!("unknown workload {other}");
                std::process::exit(2);
            }
        };
        println!("{w} {:.9} {units}", t.elapsed().as_secs_f64());
    }
}
