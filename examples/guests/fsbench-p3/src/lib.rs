//! fsbench's workloads through WASI 0.3's filesystem, timed inside the
//! guest with 0.3's monotonic clock: `fsbench-p3 DIR [WORKLOAD...]` prints
//! `name seconds units` per workload, as fsbench does (same sizes, same
//! offsets), so the two compare line for line.

use wasip3::clocks::monotonic_clock;
use wasip3::filesystem::preopens;
use wasip3::filesystem::types::{
    Descriptor, DescriptorFlags as DF, OpenFlags as OF, PathFlags as PF,
};
use wasip3::wit_bindgen::StreamResult;

wasip3::cli::command::export!(Bench);

struct Bench;

const BIG: usize = 100 << 20;
const CHUNK: usize = 1 << 20;
const RANDOM_OPS: usize = 4096;
const SMALL: usize = 1000;

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

async fn print(text: String) {
    let (mut tx, rx) = wasip3::wit_stream::new();
    futures::join!(
        async {
            wasip3::cli::stdout::write_via_stream(rx)
                .await
                .expect("stdout")
        },
        async {
            tx.write_all(text.into_bytes()).await;
            drop(tx);
        }
    );
}

async fn open(d: &Descriptor, path: &str, o: OF, f: DF) -> Descriptor {
    d.open_at(PF::empty(), path.to_string(), o, f)
        .await
        .unwrap_or_else(|e| panic!("open {path}: {e:?}"))
}

/// Writes `chunks` one after another through one stream at `offset`.
async fn write(fd: &Descriptor, offset: u64, chunks: impl IntoIterator<Item = Vec<u8>>) {
    let (mut tx, rx) = wasip3::wit_stream::new();
    let (r, ()) = futures::join!(async { fd.write_via_stream(rx, offset).await }, async {
        for c in chunks {
            assert!(tx.write_all(c).await.is_empty(), "short write");
        }
        drop(tx);
    });
    r.expect("write");
}

/// Reads `len` bytes from `offset` (all, for `None`) in reads of `buf`
/// bytes; returns how many came.
async fn read(fd: &Descriptor, offset: u64, len: Option<usize>, buf: usize) -> usize {
    let (mut rx, result) = fd.read_via_stream(offset);
    let mut got = 0;
    let mut spare = Vec::with_capacity(buf);
    while len.is_none_or(|l| got < l) {
        let (status, mut b) = rx.read(spare).await;
        got += b.len();
        b.clear();
        spare = b;
        if !matches!(status, StreamResult::Complete(_)) {
            break;
        }
    }
    drop(rx);
    result.await.expect("read");
    got
}

impl wasip3::exports::cli::run::Guest for Bench {
    async fn run() -> Result<(), ()> {
        let args = wasip3::cli::environment::get_arguments();
        let dir = args.get(1).cloned().unwrap_or_else(|| "/bench".into());
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
        let wanted: Vec<&str> = if args.len() > 2 {
            args[2..].iter().map(String::as_str).collect()
        } else {
            all.to_vec()
        };
        let (root, _) = preopens::get_directories()
            .into_iter()
            .find(|(_, n)| n == "/")
            .expect("a preopen named /");
        let rel = dir.trim_start_matches('/').to_string();
        let _ = root.create_directory_at(rel.clone()).await;
        let d = open(&root, &rel, OF::DIRECTORY, DF::READ | DF::MUTATE_DIRECTORY).await;
        let rw = DF::READ | DF::WRITE;
        let names: Vec<String> = (0..SMALL).map(|i| format!("small-{i:04}")).collect();
        let mut out = String::new();
        for w in wanted {
            let start = monotonic_clock::now();
            let units = match w {
                "seq-write" => {
                    let f = open(&d, "big", OF::CREATE | OF::TRUNCATE, rw).await;
                    write(&f, 0, (0..BIG / CHUNK).map(|_| vec![0x5a; CHUNK])).await;
                    f.sync().await.expect("fsync");
                    BIG
                }
                "seq-read" => {
                    let f = open(&d, "big", OF::empty(), DF::READ).await;
                    assert_eq!(read(&f, 0, None, CHUNK).await, BIG);
                    BIG
                }
                "rand-read" => {
                    let f = open(&d, "big", OF::empty(), DF::READ).await;
                    for o in offsets() {
                        assert_eq!(read(&f, o, Some(4096), 4096).await, 4096);
                    }
                    RANDOM_OPS * 4096
                }
                "rand-write" => {
                    let f = open(&d, "big", OF::empty(), rw).await;
                    for o in offsets() {
                        write(&f, o, [vec![7u8; 4096]]).await;
                    }
                    RANDOM_OPS * 4096
                }
                "create" => {
                    for n in &names {
                        let f = open(&d, n, OF::CREATE | OF::TRUNCATE, rw).await;
                        write(&f, 0, [vec![1u8; 1024]]).await;
                    }
                    SMALL
                }
                "stat" => {
                    for n in &names {
                        let s = d.stat_at(PF::empty(), n.clone()).await.expect("stat");
                        assert_eq!(s.size, 1024);
                    }
                    SMALL
                }
                "read-small" => {
                    for n in &names {
                        let f = open(&d, n, OF::empty(), DF::READ).await;
                        assert_eq!(read(&f, 0, None, 4096).await, 1024);
                    }
                    SMALL
                }
                "unlink" => {
                    for n in &names {
                        d.unlink_file_at(n.clone()).await.expect("unlink");
                    }
                    SMALL
                }
                "noop" => 0,
                other => {
                    print(format!("unknown workload {other}\n")).await;
                    return Err(());
                }
            };
            let secs = (monotonic_clock::now() - start) as f64 / 1e9;
            out.push_str(&format!("{w} {secs:.9} {units}\n"));
        }
        print(out).await;
        Ok(())
    }
}
