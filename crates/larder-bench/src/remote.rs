//! Cross-process sharing: fsbench composed with `--remote` against a
//! `larder serve` on loopback, next to the same app composed with the local
//! adapter and to `wasmtime run --dir` on tmpfs, every row through the
//! commands users run, in one run. A cold row reads at random from a file
//! written by an earlier process, so nothing of it is cached.

use crate::{median, results, scratch, WORKLOADS};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use wasmtime::{format_err, Result};

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(larder: &Path) -> Result<(Serve, String)> {
    let mut child = Command::new(larder)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stderr.take().expect("piped")).read_line(&mut line)?;
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .ok_or_else(|| format_err!("larder serve said: {line}"))?
        .to_string();
    Ok((Serve(child), addr))
}

fn run(mut c: Command, args: &[&str]) -> Result<String> {
    let out = c.args(args).output()?;
    if !out.status.success() {
        return Err(format_err!(
            "{c:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8(out.stdout)?)
}

pub fn section(root: &Path, fsbench: &Path, repeats: usize) -> Result<String> {
    let larder = root.join("target/release/larder");
    let (_server, addr) = serve(&larder)?;
    let dir = scratch()?;
    let compose = |extra: &[&str], out: &str| -> Result<PathBuf> {
        let out = dir.path().join(out);
        let st = Command::new(&larder)
            .arg("compose")
            .arg(fsbench)
            .args(extra)
            .arg("-o")
            .arg(&out)
            .status()?;
        if !st.success() {
            return Err(format_err!("larder compose {extra:?} failed"));
        }
        Ok(out)
    };
    let local = compose(&[], "fsbench-local.wasm")?;
    let remote = compose(&["--remote", &addr], "fsbench-remote.wasm")?;
    let base = dir.path().join("base");
    let command = |i: usize| -> Command {
        let mut c = Command::new("wasmtime");
        c.arg("run");
        match i {
            0 => c
                .arg("--dir")
                .arg(format!("{}::/", base.display()))
                .arg(fsbench),
            1 => c.arg(&local),
            _ => c.args(["-S", "inherit-network"]).arg(&remote),
        };
        c
    };
    let mut samples = vec![std::collections::BTreeMap::<String, Vec<f64>>::new(); 3];
    let mut units = std::collections::BTreeMap::new();
    let mut cold = vec![Vec::new(); 3];
    for _ in 0..3 {
        run(command(2), &["/warm", "noop"])?;
    }
    for r in 0..repeats {
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base)?;
        let d = format!("/b{r}");
        for (i, s) in samples.iter_mut().enumerate() {
            for (w, (secs, u)) in results(&run(command(i), &[&d])?)? {
                s.entry(w.clone()).or_default().push(secs);
                units.insert(w, u);
            }
            // A new process: only the server (or the host's page cache)
            // holds the file. The local adapter's files do not outlive it.
            if i != 1 {
                let (secs, u) = results(&run(command(i), &[&d, "rand-read"])?)?["rand-read"];
                cold[i].push(u / secs);
            }
        }
    }
    let mib = |bytes_per_s: f64| bytes_per_s / (1 << 20) as f64;
    let mut md = format!(
        "\nShared over 9P2000.L: fsbench composed with `--remote` against `larder serve` on loopback (`wasmtime run -S inherit-network`), next to the local adapter and `wasmtime run --dir` on tmpfs; one process per row and round, medians of {repeats}; ratio = baseline time / configuration time.\n\n| workload | wasmtime host fs (tmpfs) | local adapter | ratio | remote adapter | ratio |\n|---|---|---|---|---|---|\n"
    );
    for w in WORKLOADS {
        let t = |i: usize| median(samples[i][w].clone());
        let u = units[w];
        let fmt = |s: f64| {
            if u > 100_000.0 {
                format!("{:.0} MiB/s", mib(u / s))
            } else {
                format!("{:.1} µs", s / u * 1e6)
            }
        };
        md.push_str(&format!(
            "| {w} | {} | {} | {:.2}× | {} | {:.2}× |\n",
            fmt(t(0)),
            fmt(t(1)),
            t(0) / t(1),
            fmt(t(2)),
            t(0) / t(2)
        ));
    }
    let c0 = median(cold[0].clone());
    let c2 = median(cold[2].clone());
    md.push_str(&format!(
        "| rand-read, new process | {:.0} MiB/s | — | — | {:.0} MiB/s | {:.2}× |\n",
        mib(c0),
        mib(c2),
        c2 / c0
    ));
    md.push_str(
        "\nIn the full runs, rand-read follows seq-read in the same process: the remote adapter's close-to-open cache holds the file (it has not changed since it was opened), as an NFS client's would. The last row is a process that reads at random from the start, so every block it touches is fetched (256 KiB each).\n",
    );
    Ok(md)
}
