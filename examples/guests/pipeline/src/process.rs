//! Stage two: reads every batch stage one left in /data/incoming, sums the
//! values and writes /data/summary.txt.

fn main() {
    let expected: usize = std::fs::read_to_string("/data/incoming/READY")
        .expect("stage one has not run")
        .trim()
        .parse()
        .expect("READY holds a count");
    let mut names: Vec<String> = std::fs::read_dir("/data/incoming")
        .expect("list")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .filter(|n| n.ends_with(".csv"))
        .collect();
    names.sort();
    assert_eq!(names.len(), expected, "batches missing");
    let (mut rows, mut sum) = (0u64, 0u64);
    for n in &names {
        for line in std::fs::read_to_string(format!("/data/incoming/{n}"))
            .expect("read")
            .lines()
        {
            sum += line
                .rsplit(',')
                .next()
                .unwrap()
                .parse::<u64>()
                .expect("value");
            rows += 1;
        }
    }
    let summary = format!("batches={} rows={rows} sum={sum}\n", names.len());
    std::fs::write("/data/summary.txt", &summary).expect("write summary");
    print!("process: {summary}");
}
