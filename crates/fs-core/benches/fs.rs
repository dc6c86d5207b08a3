//! Hot paths of fs-core: sequential and random I/O on a 100 MiB file for
//! several block sizes (to choose the default), small-file metadata
//! operations, and path resolution by depth. A plain memcpy of the same
//! bytes runs in the same group as the reference point.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fs_core::{Descriptor, DescriptorFlags as DF, Fs, FsConfig, OpenFlags as OF, PathFlags as PF};
use std::time::Duration;

const FILE: usize = 100 << 20;
const CHUNK: usize = 256 << 10;
const RANDOM_OPS: usize = 4096;
const RW: DF = DF::READ.union(DF::WRITE);

fn fs_with(block_size: usize) -> (Fs, Descriptor) {
    let fs = Fs::new(
        FsConfig {
            block_size,
            ..FsConfig::default()
        },
        std::sync::Arc::new(fs_core::SystemClock),
    )
    .unwrap();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    (fs, root)
}

fn filled(root: &Descriptor) -> Descriptor {
    let f = root
        .open_at(PF::empty(), "big", OF::CREATE | OF::TRUNCATE, RW)
        .unwrap();
    let chunk = vec![0x5au8; CHUNK];
    for off in (0..FILE).step_by(CHUNK) {
        f.write(&chunk, off as u64).unwrap();
    }
    f
}

/// Deterministic 4 KiB-aligned offsets (xorshift), the same every run.
fn offsets() -> Vec<u64> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..RANDOM_OPS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % (FILE as u64 / 4096)) * 4096
        })
        .collect()
}

fn sequential(c: &mut Criterion) {
    let mut g = c.benchmark_group("sequential-100MiB");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Bytes(FILE as u64));
    // The reference: the same bytes copied the way a read copies them,
    // from a 100 MiB source into one 256 KiB buffer.
    let src = vec![0x5au8; FILE];
    let mut dst = vec![0u8; CHUNK];
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            for off in (0..FILE).step_by(CHUNK) {
                dst.copy_from_slice(&src[off..off + CHUNK]);
                black_box(&dst);
            }
        })
    });
    drop((src, dst));
    for bs in [4 << 10, 16 << 10, 64 << 10, 256 << 10] {
        g.bench_with_input(BenchmarkId::new("write", bs / 1024), &bs, |b, &bs| {
            let (_fs, root) = fs_with(bs);
            let chunk = vec![0x5au8; CHUNK];
            b.iter(|| {
                let f = root
                    .open_at(PF::empty(), "big", OF::CREATE | OF::TRUNCATE, RW)
                    .unwrap();
                for off in (0..FILE).step_by(CHUNK) {
                    f.write(&chunk, off as u64).unwrap();
                }
            })
        });
        g.bench_with_input(BenchmarkId::new("read", bs / 1024), &bs, |b, &bs| {
            let (_fs, root) = fs_with(bs);
            let f = filled(&root);
            let mut buf = vec![0u8; CHUNK];
            b.iter(|| {
                for off in (0..FILE).step_by(CHUNK) {
                    f.read(&mut buf, off as u64).unwrap();
                }
                black_box(&buf);
            })
        });
    }
    g.finish();
}

fn random(c: &mut Criterion) {
    let mut g = c.benchmark_group("random-4KiB");
    g.sample_size(20)
        .throughput(Throughput::Bytes((RANDOM_OPS * 4096) as u64));
    let offs = offsets();
    for bs in [4 << 10, 16 << 10, 64 << 10, 256 << 10] {
        let (_fs, root) = fs_with(bs);
        let f = filled(&root);
        let mut buf = vec![0u8; 4096];
        g.bench_with_input(BenchmarkId::new("read", bs / 1024), &bs, |b, _| {
            b.iter(|| {
                for &o in &offs {
                    f.read(&mut buf, o).unwrap();
                }
            })
        });
        g.bench_with_input(BenchmarkId::new("write", bs / 1024), &bs, |b, _| {
            b.iter(|| {
                for &o in &offs {
                    f.write(&buf, o).unwrap();
                }
            })
        });
    }
    g.finish();
}

fn small_files(c: &mut Criterion) {
    const N: usize = 1000;
    let mut g = c.benchmark_group("small-files-1000");
    g.sample_size(20).throughput(Throughput::Elements(N as u64));
    let names: Vec<String> = (0..N).map(|i| format!("dir/file-{i:05}")).collect();
    let body = vec![7u8; 1024];
    let (_fs, root) = fs_with(64 << 10);
    root.create_directory_at("dir").unwrap();
    let create_all = |root: &Descriptor| {
        for n in &names {
            let f = root
                .open_at(PF::empty(), n, OF::CREATE | OF::TRUNCATE, RW)
                .unwrap();
            f.write(&body, 0).unwrap();
        }
    };
    g.bench_function("create+write-1KiB", |b| b.iter(|| create_all(&root)));
    create_all(&root);
    g.bench_function("stat", |b| {
        b.iter(|| {
            for n in &names {
                black_box(root.stat_at(PF::empty(), n).unwrap());
            }
        })
    });
    let mut buf = vec![0u8; 1024];
    g.bench_function("open+read", |b| {
        b.iter(|| {
            for n in &names {
                let f = root.open_at(PF::empty(), n, OF::empty(), DF::READ).unwrap();
                f.read(&mut buf, 0).unwrap();
            }
        })
    });
    g.bench_function("create+unlink", |b| {
        b.iter(|| {
            for n in &names {
                drop(
                    root.open_at(PF::empty(), &format!("{n}.tmp"), OF::CREATE, RW)
                        .unwrap(),
                );
            }
            for n in &names {
                root.unlink_file_at(&format!("{n}.tmp")).unwrap();
            }
        })
    });
    g.finish();
}

fn resolution(c: &mut Criterion) {
    let mut g = c.benchmark_group("resolve-depth");
    let (_fs, root) = fs_with(64 << 10);
    let mut path = String::new();
    for depth in 1..=32 {
        if depth > 1 {
            path.push('/');
        }
        path.push_str("level");
        root.create_directory_at(&path).unwrap();
        if [1, 8, 32].contains(&depth) {
            let p = path.clone();
            g.bench_with_input(BenchmarkId::from_parameter(depth), &p, |b, p| {
                b.iter(|| black_box(root.stat_at(PF::empty(), p).unwrap()))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, sequential, random, small_files, resolution);
criterion_main!(benches);
