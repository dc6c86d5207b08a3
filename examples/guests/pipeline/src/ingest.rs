//! Stage one: writes N CSV batches into /data/incoming, then marks them ready.

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    std::fs::create_dir_all("/data/incoming").expect("mkdir");
    for b in 0..n {
        let rows: String = (0..100)
            .map(|r| format!("{b},{r},{}\n", b * 1000 + r))
            .collect();
        // Write under a temporary name, then rename: the next stage never
        // sees half a batch.
        let tmp = format!("/data/incoming/.batch-{b}.tmp");
        std::fs::write(&tmp, rows).expect("write batch");
        std::fs::rename(&tmp, format!("/data/incoming/batch-{b:04}.csv")).expect("publish batch");
    }
    std::fs::write("/data/incoming/READY", n.to_string()).expect("mark ready");
    println!("ingest: wrote {n} batches");
}
