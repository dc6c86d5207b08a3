//! Replays every input kept under `fuzz/regressions/` (crashes the fuzzers
//! found, plus seeds) through the same harnesses the fuzzers run.

use std::path::Path;

fn replay(target: &str, harness: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        eprintln!("replaying {}", path.display());
        harness(&data);
        n += 1;
    }
    n
}

#[test]
fn image_inputs() {
    assert!(
        replay("image", fs_core::fuzzing::image) > 0,
        "no image regression inputs"
    );
}

#[test]
fn ops_inputs() {
    assert!(
        replay("ops", fs_core::fuzzing::ops) > 0,
        "no ops regression inputs"
    );
}
