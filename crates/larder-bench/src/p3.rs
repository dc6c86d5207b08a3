//! The WASI 0.3 rows: fsbench's workloads through `wasi:filesystem@0.3`
//! (`examples/guests/fsbench-p3`: file data as `stream<u8>`), under the
//! real `wasmtime run --dir` on tmpfs (wasmtime's own 0.3 host) and under
//! `larder run` (vfs-host's 0.3 filesystem), both CLI processes timing
//! each workload inside the guest, interleaved, in the same run.

use crate::{cell, median, results, scratch, WORKLOADS};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use wasmtime::{format_err, Result};

fn run(mut cmd: Command, what: &str) -> Result<BTreeMap<String, (f64, f64)>> {
    let out = cmd.output().map_err(|e| format_err!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format_err!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    results(&String::from_utf8(out.stdout)?)
}

pub fn section(root: &Path, repeats: usize) -> Result<String> {
    let wasm = root.join("examples/guests/target/wasm32-wasip2/release/fsbench_p3.wasm");
    let larder = root.join("target/release/larder");
    let mut samples: BTreeMap<(usize, String), Vec<f64>> = BTreeMap::new();
    let mut units: BTreeMap<String, f64> = BTreeMap::new();
    for r in 0..repeats {
        for c in 0..2 {
            let got = if c == 0 {
                let tmp = scratch()?;
                let mut cmd = Command::new("wasmtime");
                cmd.arg("run")
                    .arg("--dir")
                    .arg(format!("{}::/", tmp.path().display()))
                    .arg(&wasm)
                    .arg("/bench");
                run(cmd, "wasmtime run fsbench-p3")?
            } else {
                let mut cmd = Command::new(&larder);
                cmd.arg("run").arg(&wasm).arg("/bench");
                run(cmd, "larder run fsbench-p3")?
            };
            for (name, (secs, u)) in got {
                samples.entry((c, name.clone())).or_default().push(secs);
                units.insert(name, u);
            }
        }
        eprintln!("WASI 0.3 round {}/{repeats} done", r + 1);
    }
    let mut md = format!(
        "\nWASI 0.3 (`fsbench-p3`: the same workloads through `wasi:filesystem@0.3`, file data as `stream<u8>`), medians of {repeats} interleaved rounds, each a CLI process timing its workloads inside the guest; ratio = baseline time / `larder run` time:\n\n| workload | `wasmtime run --dir` (tmpfs, its 0.3 host) | `larder run` (vfs-host 0.3) | ratio |\n|---|---|---|---|\n"
    );
    for w in WORKLOADS {
        let time = |c: usize| median(samples[&(c, w.to_string())].clone());
        let fmt = |s: f64| cell(s, units[w]);
        md.push_str(&format!(
            "| {w} | {} | {} | **{:.2}×** |\n",
            fmt(time(0)),
            fmt(time(1)),
            time(0) / time(1)
        ));
    }
    Ok(md)
}
