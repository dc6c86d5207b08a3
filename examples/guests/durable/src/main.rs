//! Writes files and fsyncs them, announcing each durable step on stdout
//! only after fsync returned: the crash tests kill the host at random
//! moments and check the store against what was announced.
//!
//! Usage: durable DIR ROUND COUNT
//! For i in 0..COUNT: write DIR/f{i} with `content(i, ROUND)`, fsync it,
//! print `synced ROUND i`; every fifth file is then renamed to DIR/g{i},
//! the directory fsync'd, and `renamed ROUND i` printed.

use std::io::Write;

/// The bytes of version `round` of file `i` (also computed by the tests):
/// 1 KiB to about 300 KiB, so kills land inside uploads too.
fn content(i: u64, round: u64) -> Vec<u8> {
    let len = 1024 + (i * 7919 + round * 104_729) % (300 << 10);
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ round;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, round, count] = args.as_slice() else {
        eprintln!("usage: durable DIR ROUND COUNT");
        std::process::exit(2);
    };
    let round: u64 = round.parse().expect("ROUND is a number");
    let count: u64 = count.parse().expect("COUNT is a number");
    std::fs::create_dir_all(dir).expect("create DIR");
    let mut out = std::io::stdout().lock();
    for i in 0..count {
        let path = format!("{dir}/f{i}");
        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all(&content(i, round)).expect("write");
        f.sync_all().expect("fsync");
        writeln!(out, "synced {round} {i}").unwrap();
        out.flush().unwrap();
        if i % 5 == 0 {
            std::fs::rename(&path, format!("{dir}/g{i}")).expect("rename");
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .expect("fsync the directory");
            writeln!(out, "renamed {round} {i}").unwrap();
            out.flush().unwrap();
        }
    }
}
