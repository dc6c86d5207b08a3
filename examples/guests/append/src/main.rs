//! Appends COUNT fixed-size records to FILE and creates COUNT files in DIR,
//! tagged with this instance's number: run many at once on one filesystem
//! (`larder run --instances N`) and count what landed.

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, file, dir, count] = args.as_slice() else {
        eprintln!("usage: append FILE DIR COUNT");
        std::process::exit(2);
    };
    let count: usize = count.parse().expect("COUNT is a number");
    let me = std::env::var("LARDER_INSTANCE").unwrap_or_else(|_| "0".into());
    std::fs::create_dir_all(dir).expect("create DIR");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .expect("open FILE");
    // For tests: trap part way (a Rust panic aborts the instance).
    let trap_at: Option<usize> = std::env::var("APPEND_TRAP_AT")
        .ok()
        .and_then(|v| v.parse().ok());
    for i in 0..count {
        if trap_at == Some(i) {
            panic!("instance {me} trapping at record {i} as asked");
        }
        // One write per record: appends must never interleave inside it.
        let mut rec = format!("instance {me:>4} record {i:>6} ");
        rec.push_str(&".".repeat(63 - rec.len()));
        rec.push('\n');
        log.write_all(rec.as_bytes()).expect("append");
        std::fs::write(format!("{dir}/i{me}-{i}"), me.as_bytes()).expect("create file");
    }
    println!("instance {me}: {count} records, {count} files");
}
