//! `just bench`: runs the fsbench guest under each filesystem host in one
//! process, several times each (interleaved, so machine noise hits every
//! configuration alike), and reports medians with ratios against the
//! baseline: wasmtime's own host filesystem on a tmpfs directory (what
//! `wasmtime run --dir` does). Writes target/bench/results.md and
//! target/bench/results.png.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use vfs_host::{Vfs, VfsBuilder, VfsCtxView, VfsView};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{format_err, Result};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

const WORKLOADS: [&str; 8] = [
    "seq-write",
    "seq-read",
    "rand-read",
    "rand-write",
    "create",
    "stat",
    "read-small",
    "unlink",
];

struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    vfs: Option<Arc<Vfs>>,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl VfsView for State {
    fn vfs(&mut self) -> VfsCtxView<'_> {
        VfsCtxView {
            vfs: self.vfs.as_ref().expect("vfs configuration"),
            table: &mut self.table,
        }
    }
}

/// Where the guest's files live for one run.
#[derive(Clone)]
enum Host {
    /// wasmtime-wasi's host filesystem, preopening this tmpfs directory as `/`.
    Tmpfs(PathBuf),
    Vfs(Arc<Vfs>),
}

struct Bench {
    engine: Engine,
    component: Component,
    host_linker: Linker<State>,
    vfs_linker: Linker<State>,
}

impl Bench {
    /// Runs fsbench once; returns workload -> (seconds, units).
    fn run(&self, host: &Host, args: &[&str]) -> Result<BTreeMap<String, (f64, f64)>> {
        let out = MemoryOutputPipe::new(1 << 16);
        let mut b = WasiCtx::builder();
        let argv: Vec<&str> = std::iter::once("fsbench")
            .chain(args.iter().copied())
            .collect();
        b.args(&argv).stdout(out.clone()).inherit_stderr();
        let (linker, vfs) = match host {
            Host::Tmpfs(dir) => {
                b.preopened_dir(dir, "/", wasmtime_wasi::FsPerms::ReadWrite)?;
                (&self.host_linker, None)
            }
            Host::Vfs(v) => (&self.vfs_linker, Some(v.clone())),
        };
        let mut store = Store::new(
            &self.engine,
            State {
                wasi: b.build(),
                table: ResourceTable::new(),
                vfs,
            },
        );
        let cmd = Command::instantiate(&mut store, &self.component, linker)?;
        if cmd.wasi_cli_run().call_run(&mut store)?.is_err() {
            return Err(format_err!("fsbench failed"));
        }
        let text = String::from_utf8(out.contents().to_vec())?;
        let mut res = BTreeMap::new();
        for line in text.lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if let [name, secs, units] = parts[..] {
                res.insert(name.to_string(), (secs.parse()?, units.parse()?));
            }
        }
        Ok(res)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn scratch() -> Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    Ok(if shm.is_dir() {
        tempfile::tempdir_in(shm)?
    } else {
        tempfile::tempdir()?
    })
}

/// An empty filesystem for configuration `c`: 0 is wasmtime's host
/// filesystem on `tmp`, 1 a fresh Vfs.
fn fresh_host(c: usize, tmp: &tempfile::TempDir) -> Result<Host> {
    Ok(if c == 0 {
        Host::Tmpfs(tmp.path().to_path_buf())
    } else {
        Host::Vfs(VfsBuilder::new().build()?)
    })
}

/// The reference point for sequential reads: the same 100 MiB copied from
/// memory into a 1 MiB buffer, as the guest reads it.
fn memcpy_seconds() -> f64 {
    let src = vec![0x5au8; 100 << 20];
    let mut dst = vec![0u8; 1 << 20];
    let t = Instant::now();
    for chunk in src.chunks(1 << 20) {
        dst.copy_from_slice(chunk);
        std::hint::black_box(&dst);
    }
    t.elapsed().as_secs_f64()
}

fn main() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let wasm = root.join("examples/guests/target/wasm32-wasip2/release/fsbench.wasm");
    let repeats: usize = std::env::var("BENCH_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let out_dir = root.join("target/bench");
    std::fs::create_dir_all(&out_dir)?;

    let engine = Engine::default();
    let component = Component::from_file(&engine, &wasm)
        .map_err(|e| format_err!("{} (run `just guests`): {e}", wasm.display()))?;
    let mut host_linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut host_linker)?;
    let mut vfs_linker = Linker::new(&engine);
    vfs_host::add_to_linker_sync(&mut vfs_linker)?;
    let bench = Bench {
        engine,
        component,
        host_linker,
        vfs_linker,
    };

    // Single-instance workloads.
    let configs = ["wasmtime host fs (tmpfs)", "vfs-host"];
    let mut samples: BTreeMap<(usize, String), Vec<f64>> = BTreeMap::new();
    let mut units: BTreeMap<String, f64> = BTreeMap::new();
    for r in 0..repeats {
        for (c, _) in configs.iter().enumerate() {
            let tmp = scratch()?;
            let host = fresh_host(c, &tmp)?;
            for (name, (secs, u)) in bench.run(&host, &["/bench"])? {
                samples.entry((c, name.clone())).or_default().push(secs);
                units.insert(name, u);
            }
        }
        eprintln!("round {}/{repeats} done", r + 1);
    }
    let memcpy = median((0..repeats).map(|_| memcpy_seconds()).collect());

    // Throughput of sequential reads with 1 and 2 instances at once, each
    // reading its own 100 MiB file from the one shared filesystem.
    let mut scaling: Vec<(String, f64, f64)> = Vec::new();
    for (c, label) in configs.iter().enumerate() {
        let tmp = scratch()?;
        let host = fresh_host(c, &tmp)?;
        for d in ["/i0", "/i1"] {
            bench.run(&host, &[d, "seq-write"])?;
        }
        let mut per_n = Vec::new();
        for n in [1usize, 2] {
            let mut rounds = Vec::new();
            for _ in 0..repeats {
                let t = Instant::now();
                std::thread::scope(|s| {
                    let hs: Vec<_> = (0..n)
                        .map(|i| {
                            let (bench, host) = (&bench, host.clone());
                            s.spawn(move || bench.run(&host, &[&format!("/i{i}"), "seq-read"]))
                        })
                        .collect();
                    hs.into_iter()
                        .try_for_each(|h| h.join().expect("bench thread").map(|_| ()))
                })?;
                rounds.push((n * (100 << 20)) as f64 / t.elapsed().as_secs_f64());
            }
            per_n.push(median(rounds));
        }
        scaling.push((label.to_string(), per_n[0], per_n[1]));
    }

    // Report.
    let mib = |bytes_per_s: f64| bytes_per_s / (1 << 20) as f64;
    let mut md = String::new();
    md.push_str(&format!(
        "fsbench, medians of {repeats} interleaved runs in one process; ratio = baseline time / vfs-host time (above 1: vfs-host is faster).\n\n"
    ));
    md.push_str("| workload | wasmtime host fs (tmpfs) | vfs-host | ratio |\n|---|---|---|---|\n");
    let mut ratios = Vec::new();
    for w in WORKLOADS {
        let base = median(samples[&(0, w.to_string())].clone());
        let ours = median(samples[&(1, w.to_string())].clone());
        let u = units[w];
        let fmt = |s: f64| {
            if u > 100_000.0 {
                format!("{:.1} ms ({:.0} MiB/s)", s * 1e3, mib(u / s))
            } else {
                format!("{:.2} ms ({:.1} µs/op)", s * 1e3, s * 1e6 / u)
            }
        };
        md.push_str(&format!(
            "| {w} | {} | {} | **{:.2}×** |\n",
            fmt(base),
            fmt(ours),
            base / ours
        ));
        ratios.push((w.to_string(), base / ours));
    }
    let seq_read = median(samples[&(1, "seq-read".to_string())].clone());
    md.push_str(&format!(
        "\nmemcpy of the same 100 MiB into a 1 MiB buffer: {:.1} ms ({:.0} MiB/s); vfs-host sequential read runs at **{:.2}×** memcpy speed.\n",
        memcpy * 1e3,
        mib((100 << 20) as f64 / memcpy),
        memcpy / seq_read
    ));
    md.push_str("\nSequential-read throughput, instances at once on one filesystem (each reads its own 100 MiB file):\n\n| host | 1 instance | 2 instances |\n|---|---|---|\n");
    for (label, one, two) in &scaling {
        md.push_str(&format!(
            "| {label} | {:.0} MiB/s | {:.0} MiB/s |\n",
            mib(*one),
            mib(*two)
        ));
    }
    print!("{md}");
    std::fs::write(out_dir.join("results.md"), &md)?;
    plot(&out_dir.join("results.png"), &ratios)?;
    eprintln!("wrote {}", out_dir.join("results.md").display());
    eprintln!("wrote {}", out_dir.join("results.png").display());
    Ok(())
}

/// A bar per workload: how many times faster than the baseline.
fn plot(path: &Path, ratios: &[(String, f64)]) -> Result<()> {
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let font = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .ok_or_else(|| {
            format_err!("no DejaVu font for the plot: apt-get install fonts-dejavu-core")
        })?;
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(font.into_boxed_slice()),
    )
    .map_err(|_| format_err!("the DejaVu font did not load"))?;
    let root = BitMapBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = ratios.iter().map(|r| r.1).fold(1.0f64, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "vfs-host vs wasmtime host filesystem on tmpfs (× faster, higher is better)",
            ("sans-serif", 20),
        )
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(50)
        .build_cartesian_2d((0..ratios.len() - 1).into_segmented(), 0.0..max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(ratios.len())
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => ratios.get(*i).map(|r| r.0.clone()).unwrap_or_default(),
            _ => String::new(),
        })
        .y_desc("speed-up")
        .label_style(("sans-serif", 14))
        .draw()?;
    for (i, (_, r)) in ratios.iter().enumerate() {
        let color = if *r >= 1.0 {
            RGBColor(46, 125, 50)
        } else {
            RGBColor(198, 40, 40)
        };
        chart.draw_series(
            Histogram::vertical(&chart)
                .style(color.filled())
                .margin(14)
                .data([(i, *r)]),
        )?;
    }
    let label = ("sans-serif", 15)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    chart.draw_series(ratios.iter().enumerate().map(|(i, (_, r))| {
        Text::new(
            format!("{r:.2}×"),
            (SegmentValue::CenterOf(i), *r + max * 0.01),
            label.clone(),
        )
    }))?;
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(SegmentValue::Exact(0), 1.0), (SegmentValue::Last, 1.0)],
        BLACK.stroke_width(2),
    )))?;
    root.present()?;
    Ok(())
}
