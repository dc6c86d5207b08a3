//! `just bench`: runs the fsbench guest under each filesystem configuration
//! in one process, several times each (interleaved, so machine noise hits
//! every configuration alike), and reports medians with ratios against the
//! baseline: wasmtime's own host filesystem on a tmpfs directory, run as
//! the wasmtime 50 CLI runs `wasmtime run --dir` (a multi-thread tokio
//! runtime, the async p2 linker, `allow_blocking_current_thread`), and
//! checked against the real CLI on the stat line. Configurations:
//! vfs-host on its async linker (what `larder run` does), and fsbench
//! composed with the guest adapter (`larder compose`). Then start-up cost
//! against bundle size. Writes target/bench/results.md and results.png.

mod apps;
mod edge;
mod p3;
mod persist;
mod remote;
mod scale;
mod serve_http;
mod sync;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use vfs_host::{Vfs, VfsCtxView, VfsView, VolumeBuilder};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{format_err, Result};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::bindings::Command;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub const WORKLOADS: [&str; 8] = [
    "seq-write",
    "seq-read",
    "rand-read",
    "rand-write",
    "create",
    "stat",
    "read-small",
    "unlink",
];

/// The main table's rows: fsbench's default workloads, plus sequential
/// reads into a 16 MiB buffer (a read larger than any one the host hands
/// out, which then comes back in pieces) after the 1 MiB ones.
fn table() -> Vec<&'static str> {
    WORKLOADS
        .iter()
        .flat_map(|&w| {
            let extra = (w == "seq-read").then_some("seq-read-16m");
            std::iter::once(w).chain(extra)
        })
        .collect()
}

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
    /// The app composed with the guest adapter: its filesystem is inside it;
    /// the host grants no directories.
    Composed(Arc<Component>),
    /// Composed with the persistent adapter, the Vfs lending it a store.
    ComposedLent(Arc<Component>, Arc<Vfs>),
}

struct Bench {
    engine: Engine,
    component: Component,
    host_linker: Linker<State>,
    vfs_linker: Linker<State>,
    /// What the wasmtime CLI runs components on.
    rt: tokio::runtime::Runtime,
}

impl Bench {
    /// Runs fsbench once; returns workload -> (seconds, units).
    fn run(&self, host: &Host, args: &[&str]) -> Result<BTreeMap<String, (f64, f64)>> {
        let out = MemoryOutputPipe::new(1 << 16);
        let mut b = WasiCtx::builder();
        // As the CLI configures WASI (without --wasm timeout): blocking
        // filesystem calls run on the calling thread, no hop to tokio's
        // blocking pool.
        b.allow_blocking_current_thread(true);
        let argv: Vec<&str> = std::iter::once("fsbench")
            .chain(args.iter().copied())
            .collect();
        b.args(&argv).stdout(out.clone()).inherit_stderr();
        let (linker, vfs, component) = match host {
            Host::Tmpfs(dir) => {
                b.preopened_dir(dir, "/", wasmtime_wasi::FsPerms::ReadWrite)?;
                (&self.host_linker, None, &self.component)
            }
            Host::Vfs(v) => (&self.vfs_linker, Some(v.clone()), &self.component),
            Host::Composed(c) => (&self.host_linker, None, &**c),
            Host::ComposedLent(c, v) => (&self.vfs_linker, Some(v.clone()), &**c),
        };
        let mut store = Store::new(
            &self.engine,
            State {
                wasi: b.build(),
                table: ResourceTable::new(),
                vfs,
            },
        );
        self.rt.block_on(async {
            let cmd = Command::instantiate_async(&mut store, component, linker).await?;
            match cmd.wasi_cli_run().call_run(&mut store).await? {
                Ok(()) => Ok(()),
                Err(()) => Err(format_err!("fsbench failed")),
            }
        })?;
        results(&String::from_utf8(out.contents().to_vec())?)
    }
}

/// fsbench's report: one `workload seconds units` line each.
fn results(text: &str) -> Result<BTreeMap<String, (f64, f64)>> {
    let mut res = BTreeMap::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [name, secs, units] = parts[..] {
            res.insert(name.to_string(), (secs.parse()?, units.parse()?));
        }
    }
    Ok(res)
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
/// filesystem on `tmp`, 1 a fresh Vfs (each
/// instantiation starts from its own empty filesystem).
fn fresh_host(c: usize, tmp: &tempfile::TempDir) -> Result<Host> {
    Ok(match c {
        0 => Host::Tmpfs(tmp.path().to_path_buf()),
        _ => Host::Vfs(Arc::new(Vfs::new(VolumeBuilder::new().build()?))),
    })
}

/// An image holding /data/blob of `size` bytes, as `larder compose
/// --mount /data=...` would bundle it.
fn bundle_image(size: usize) -> Result<Vec<u8>> {
    use fs_core::{DescriptorFlags as DF, OpenFlags as OF, PathFlags as PF};
    let fs = fs_core::Fs::in_memory();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY)?;
    root.create_directory_at("data")?;
    let f = root.open_at(PF::empty(), "data/blob", OF::CREATE, DF::WRITE)?;
    let bytes: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    f.write(&bytes, 0)?;
    Ok(fs_core::image::encode(&root)?)
}

/// Start-up of fsbench composed with a bundle of each size: compile time,
/// then instantiate + first filesystem use (in process, median), then the
/// wall time of `wasmtime run` on the composed file (median).
struct Startup {
    label: &'static str,
    wasm_bytes: usize,
    compile: f64,
    instantiate: f64,
    /// `wasmtime run` on the .wasm, and on the output of `wasmtime compile`.
    cli: Option<(f64, f64)>,
}

fn startup(
    bench: &Bench,
    fsbench: &[u8],
    out_dir: &Path,
    repeats: usize,
) -> Result<(Vec<Startup>, Option<f64>)> {
    let wasmtime_cli = std::process::Command::new("wasmtime")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let time_cli = |args: &[&str]| -> Result<f64> {
        let mut v = Vec::new();
        for _ in 0..repeats {
            let t = Instant::now();
            let st = std::process::Command::new("wasmtime")
                .arg("run")
                .args(args)
                .stdout(std::process::Stdio::null())
                .status()?;
            if !st.success() {
                return Err(format_err!("wasmtime run {args:?} failed"));
            }
            v.push(t.elapsed().as_secs_f64());
        }
        Ok(median(v))
    };
    let mut rows = Vec::new();
    for (label, size) in [("1 KiB", 1usize << 10), ("100 MiB", 100 << 20)] {
        let bundle = larder_compose::Bundle {
            image: bundle_image(size)?,
            preopens: larder_compose::default_preopens(),
            read_only: Vec::new(),
            store: String::new(),
        };
        let bytes = larder_compose::compose(fsbench, "fsbench", &bundle)
            .map_err(|e| format_err!("compose: {e:#}"))?;
        let path = out_dir.join(format!("startup-{}.wasm", label.replace(' ', "")));
        std::fs::write(&path, &bytes)?;
        let t = Instant::now();
        let component = Arc::new(Component::new(&bench.engine, &bytes)?);
        let compile = t.elapsed().as_secs_f64();
        let host = Host::Composed(component);
        let mut inst = Vec::new();
        for _ in 0..repeats {
            let t = Instant::now();
            bench.run(&host, &["/data", "noop"])?;
            inst.push(t.elapsed().as_secs_f64());
        }
        let cli = if wasmtime_cli {
            let cwasm = path.with_extension("cwasm");
            let st = std::process::Command::new("wasmtime")
                .arg("compile")
                .arg(&path)
                .arg("-o")
                .arg(&cwasm)
                .status()?;
            if !st.success() {
                return Err(format_err!("wasmtime compile {} failed", path.display()));
            }
            Some((
                time_cli(&[path.to_str().unwrap(), "/data", "noop"])?,
                time_cli(&[
                    "--allow-precompiled",
                    cwasm.to_str().unwrap(),
                    "/data",
                    "noop",
                ])?,
            ))
        } else {
            None
        };
        rows.push(Startup {
            label,
            wasm_bytes: bytes.len(),
            compile,
            instantiate: median(inst),
            cli,
        });
    }
    // The same program under `wasmtime run --dir` on tmpfs, for scale.
    let base = if wasmtime_cli {
        let tmp = scratch()?;
        let dir = format!("{}::/", tmp.path().display());
        let wasm = out_dir.join("../../examples/guests/target/wasm32-wasip2/release/fsbench.wasm");
        Some(time_cli(&[
            "--dir",
            &dir,
            wasm.to_str().unwrap(),
            "/data",
            "noop",
        ])?)
    } else {
        None
    };
    Ok((rows, base))
}

/// fsbench's report from a `wasmtime run` process: with `dir`, the tmpfs
/// directory it preopens as `/` (`--dir DIR::/`).
fn cli_fsbench(
    component: &Path,
    dir: Option<&Path>,
    args: &[&str],
) -> Result<BTreeMap<String, (f64, f64)>> {
    let mut cmd = std::process::Command::new("wasmtime");
    cmd.arg("run");
    if let Some(dir) = dir {
        cmd.arg("--dir").arg(format!("{}::/", dir.display()));
    }
    let out = cmd
        .arg(component)
        .args(args)
        .output()
        .map_err(|e| format_err!("wasmtime run (the baseline is the CLI): {e}"))?;
    if !out.status.success() {
        return Err(format_err!(
            "wasmtime run {} failed: {}",
            component.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    results(&String::from_utf8(out.stdout)?)
}

/// The stat workload's seconds on the in-process host filesystem
/// (median of `repeats` runs).
fn inproc_stat_seconds(bench: &Bench, repeats: usize) -> Result<f64> {
    let mut v = Vec::new();
    for _ in 0..repeats {
        let tmp = scratch()?;
        let host = Host::Tmpfs(tmp.path().to_path_buf());
        let r = bench.run(&host, &["/bench", "create", "stat"])?;
        v.push(r.get("stat").ok_or_else(|| format_err!("no stat line"))?.0);
    }
    Ok(median(v))
}

/// `wasmtime --version`'s number.
fn wasmtime_version() -> String {
    std::process::Command::new("wasmtime")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "?".into())
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
    // `BENCH_ONLY=http just bench`: only the larder serve-http rows.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("http") {
        print!("{}", serve_http_section(&root, repeats)?);
        return Ok(());
    }
    // `BENCH_ONLY=scale just bench`: only the start-up-at-scale rows
    // (`BENCH_SCALE=1000,10000` for fewer sizes).
    if std::env::var("BENCH_ONLY").as_deref() == Ok("scale") {
        print!("{}", scale::section(&root)?);
        return Ok(());
    }
    // `BENCH_ONLY=apps just bench`: only the C apps in a local store.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("apps") {
        print!("{}", apps::section(&root, repeats)?);
        return Ok(());
    }
    // `BENCH_ONLY=sync just bench`: only the sync engine's rows.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("sync") {
        print!("{}", sync_section(&root, repeats)?);
        return Ok(());
    }

    let engine = Engine::default();
    let fsbench = std::fs::read(&wasm)
        .map_err(|e| format_err!("{} (run `just guests`): {e}", wasm.display()))?;
    let component = Component::new(&engine, &fsbench)?;
    // fsbench with Larder's adapter plugged in and nothing bundled.
    let composed = larder_compose::compose(
        &fsbench,
        "fsbench",
        &larder_compose::Bundle {
            preopens: larder_compose::default_preopens(),
            ..Default::default()
        },
    )
    .map_err(|e| format_err!("compose fsbench: {e:#}"))?;
    let composed_path = out_dir.join("fsbench-composed.wasm");
    std::fs::write(&composed_path, &composed)?;
    let mut host_linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut host_linker)?;
    let mut vfs_linker = Linker::new(&engine);
    vfs_host::add_to_linker_async(&mut vfs_linker)?;
    let bench = Bench {
        engine,
        component,
        host_linker,
        vfs_linker,
        rt: tokio::runtime::Builder::new_multi_thread()
            .enable_time()
            .enable_io()
            .build()?,
    };
    // `BENCH_ONLY=remote just bench`: only the cross-process sharing rows.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("remote") {
        print!("{}", remote::section(&root, &wasm, repeats)?);
        return Ok(());
    }
    // `BENCH_ONLY=p3 just bench`: only the WASI 0.3 rows.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("p3") {
        print!("{}", p3::section(&root, repeats)?);
        return Ok(());
    }
    // `BENCH_ONLY=persist just bench`: only the composed-app persistence rows.
    if std::env::var("BENCH_ONLY").as_deref() == Ok("persist") {
        print!("{}", persist::section(&bench, &fsbench, repeats)?);
        print!("{}", persist::s3_section(&root, &wasm, repeats)?);
        return Ok(());
    }

    // Single-instance workloads: what users run. The baseline and the
    // composed app under the wasmtime CLI itself (fsbench times each
    // workload inside the guest, so process start-up is not counted);
    // vfs-host in process, on its async linker as `larder run` uses it.
    let configs = [
        "`wasmtime run --dir` (tmpfs)",
        "vfs-host",
        "composed, `wasmtime run`",
    ];
    let mut samples: BTreeMap<(usize, String), Vec<f64>> = BTreeMap::new();
    let mut units: BTreeMap<String, f64> = BTreeMap::new();
    let table = table();
    let args: Vec<&str> = std::iter::once("/bench")
        .chain(table.iter().copied())
        .collect();
    for r in 0..repeats {
        for (c, _) in configs.iter().enumerate() {
            let tmp = scratch()?;
            let got = match c {
                0 => cli_fsbench(&wasm, Some(tmp.path()), &args)?,
                1 => bench.run(&fresh_host(c, &tmp)?, &args)?,
                _ => cli_fsbench(&composed_path, None, &args)?,
            };
            for (name, (secs, u)) in got {
                samples.entry((c, name.clone())).or_default().push(secs);
                units.insert(name, u);
            }
        }
        eprintln!("round {}/{repeats} done", r + 1);
    }
    let memcpy = median((0..repeats).map(|_| memcpy_seconds()).collect());

    // Throughput of sequential reads with 1 and 2 instances at once, each
    // reading its own 100 MiB file from the one shared filesystem (composed
    // apps each have their own, so they are not in this table).
    let mut scaling: Vec<(String, f64, f64)> = Vec::new();
    let in_process = ["wasmtime host fs (tmpfs, in process)", "vfs-host"];
    for (c, label) in in_process.iter().enumerate() {
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
    let mut md = String::new();
    md.push_str(&format!(
        "fsbench, medians of {repeats} interleaved rounds; fsbench times each workload inside the guest (process start-up not counted); ratio = baseline time / configuration time (above 1: faster than the baseline).\n\n"
    ));
    md.push_str(&format!(
        "| workload | {} | {} | ratio | {} | ratio |\n|---|---|---|---|---|---|\n",
        configs[0], configs[1], configs[2]
    ));
    let mut ratios: Vec<(String, Vec<f64>)> = Vec::new();
    for &w in &table {
        let time = |c: usize| median(samples[&(c, w.to_string())].clone());
        let base = time(0);
        let fmt = |s: f64| cell(s, units[w]);
        md.push_str(&format!(
            "| {w} | {} | {} | **{:.2}×** | {} | **{:.2}×** |\n",
            fmt(base),
            fmt(time(1)),
            base / time(1),
            fmt(time(2)),
            base / time(2)
        ));
        ratios.push((w.to_string(), vec![base / time(1), base / time(2)]));
    }
    // The in-process host the tables below use as their baseline must be
    // what users get from the CLI: the stat line both ways.
    let stat_cli = median(samples[&(0, "stat".to_string())].clone()) / units["stat"];
    let stat_inproc = inproc_stat_seconds(&bench, repeats)? / units["stat"];
    md.push_str(&format!(
        "\nThe in-process host the tables below compare against, configured as the CLI configures itself (multi-thread tokio, async p2 linker, `allow_blocking_current_thread`), on the stat line: {:.2} µs/op, against {:.2} µs/op under `wasmtime run --dir` (CLI {}): **{:.2}×**.\n",
        stat_inproc * 1e6,
        stat_cli * 1e6,
        wasmtime_version(),
        stat_cli / stat_inproc
    ));
    if !(0.5..=2.0).contains(&(stat_cli / stat_inproc)) {
        return Err(format_err!(
            "the in-process baseline is not the CLI's: stat {:.2} µs/op in process, {:.2} µs/op under wasmtime run --dir",
            stat_inproc * 1e6,
            stat_cli * 1e6
        ));
    }
    let seq_read = |c: usize| median(samples[&(c, "seq-read".to_string())].clone());
    md.push_str(&format!(
        "\nmemcpy of the same 100 MiB into a 1 MiB buffer: {:.1} ms ({:.0} MiB/s). Sequential read runs at **{:.2}×** memcpy speed under vfs-host, **{:.2}×** composed.\n",
        memcpy * 1e3,
        mib((100 << 20) as f64 / memcpy),
        memcpy / seq_read(1),
        memcpy / seq_read(2)
    ));
    md.push_str("\nSequential-read throughput, instances at once on one filesystem (each reads its own 100 MiB file):\n\n| host | 1 instance | 2 instances |\n|---|---|---|\n");
    for (label, one, two) in &scaling {
        md.push_str(&format!(
            "| {label} | {:.0} MiB/s | {:.0} MiB/s |\n",
            mib(*one),
            mib(*two)
        ));
    }

    eprintln!("WASI 0.3...");
    md.push_str(&p3::section(&root, repeats)?);

    eprintln!("start-up against bundle size...");
    let (rows, base) = startup(&bench, &fsbench, &out_dir, repeats)?;
    md.push_str("\nStart-up of fsbench composed with a bundle holding one file of each size (`fsbench /data noop`: start, bring the filesystem up, exit):\n\n| bundle | composed .wasm | compile (in process, once) | instantiate + run (in process) | `wasmtime run app.wasm` | `wasmtime run --allow-precompiled app.cwasm` |\n|---|---|---|---|---|---|\n");
    for r in &rows {
        md.push_str(&format!(
            "| {} | {:.1} MiB | {:.0} ms | {:.2} ms | {} |\n",
            r.label,
            r.wasm_bytes as f64 / (1 << 20) as f64,
            r.compile * 1e3,
            r.instantiate * 1e3,
            r.cli
                .map_or("n/a (no wasmtime CLI) | n/a".into(), |(a, b)| format!(
                    "{:.0} ms | {:.0} ms",
                    a * 1e3,
                    b * 1e3
                ))
        ));
    }
    if let [small, large] = &rows[..] {
        md.push_str(&format!(
            "\nInstantiation with 100 MiB bundled / with 1 KiB: **{:.2}×**.",
            large.instantiate / small.instantiate
        ));
        if let (Some(a), Some(b), Some(base)) = (small.cli, large.cli, base) {
            md.push_str(&format!(
                " Precompiled (`wasmtime compile`, then `run --allow-precompiled`): **{:.2}×**, the bundle is mapped, not read. `wasmtime run` on the .wasm: {:.2}×, as the CLI reads the whole file on every run (to hash it for its compilation cache, or to compile it). For scale, the plain app under `wasmtime run --dir` takes {:.0} ms.",
                b.1 / a.1,
                b.0 / a.0,
                base * 1e3
            ));
        }
        md.push('\n');
    }
    eprintln!("HTTP handler under wasmtime serve...");
    match edge::run(&root, repeats)? {
        Some(rows) => {
            md.push_str(&format!("\nexamples/edge-http under `wasmtime serve` (one reused instance, requests over loopback with ureq): files on wasmtime's host filesystem (`--dir` on tmpfs) vs composed with Larder, files bundled; medians of {repeats} rounds after a warm-up round:\n\n| workload | wasmtime host fs (tmpfs) | composed adapter | ratio |\n|---|---|---|---|\n"));
            md.push_str(&http_rows(&rows, |s| format!("{:.3} ms", s * 1e3)));
        }
        None => md.push_str(
            "\n(HTTP handler rows skipped: no wasmtime CLI; `just setup` installs it.)\n",
        ),
    }
    eprintln!("HTTP handler under larder serve-http...");
    md.push_str(&serve_http_section(&root, repeats)?);
    eprintln!("sync engine...");
    md.push_str(&sync_section(&root, repeats)?);
    eprintln!("start-up at scale (S3)...");
    md.push_str(&scale::section(&root)?);
    eprintln!("C apps in a local store...");
    md.push_str(&apps::section(&root, repeats)?);
    eprintln!("persistence of composed apps...");
    md.push_str(&persist::section(&bench, &fsbench, repeats)?);
    eprintln!("persistence of composed apps in S3, through the CLIs...");
    md.push_str(&persist::s3_section(&root, &wasm, repeats)?);
    eprintln!("sharing over 9P2000.L (larder serve), through the CLIs...");
    md.push_str(&remote::section(&root, &wasm, repeats)?);
    print!("{md}");
    std::fs::write(out_dir.join("results.md"), &md)?;
    plot(
        &out_dir.join("results.png"),
        &["vfs-host", "composed adapter"],
        &ratios,
    )?;
    eprintln!("wrote {}", out_dir.join("results.md").display());
    eprintln!("wrote {}", out_dir.join("results.png").display());
    Ok(())
}

/// A table cell for `secs` spent on `units` (bytes, or operations).
fn cell(secs: f64, units: f64) -> String {
    if units > 100_000.0 {
        format!("{:.1} ms ({:.0} MiB/s)", secs * 1e3, mib(units / secs))
    } else {
        format!("{:.2} ms ({:.1} µs/op)", secs * 1e3, secs * 1e6 / units)
    }
}

fn mib(bytes_per_s: f64) -> f64 {
    bytes_per_s / (1 << 20) as f64
}

/// Table rows of HTTP workloads: transfers as time and MiB/s, the others
/// as `small` formats their seconds per request.
fn http_rows(rows: &[edge::Row], small: fn(f64) -> String) -> String {
    let mut md = String::new();
    for r in rows {
        let fmt = |s: f64| match r.bytes {
            0 => small(s),
            bytes => format!("{:.1} ms ({:.0} MiB/s)", s * 1e3, mib(bytes as f64 / s)),
        };
        md.push_str(&format!(
            "| {} | {} | {} | **{:.2}×** |\n",
            r.workload,
            fmt(r.base),
            fmt(r.larder),
            r.base / r.larder
        ));
    }
    md
}

/// `larder serve-http` against `wasmtime serve --dir`, as markdown.
fn serve_http_section(root: &Path, repeats: usize) -> Result<String> {
    let mut md = String::new();
    match serve_http::run(root, repeats)? {
        Some(rows) => {
            md.push_str(&format!("\nexamples/edge-http, the same .wasm, an instance per request (requests over loopback with ureq): under `wasmtime serve --dir` on tmpfs vs `larder serve-http --mount` (one shared Larder filesystem); medians of {repeats} rounds after a warm-up round. Small requests as requests per second across all clients; ratio > 1 means Larder is faster:\n\n| workload | wasmtime serve, host fs (tmpfs) | larder serve-http | ratio |\n|---|---|---|---|\n"));
            md.push_str(&http_rows(&rows, |s| format!("{:.0} req/s", 1.0 / s)));
        }
        None => md.push_str(
            "\n(larder serve-http rows skipped: no wasmtime CLI or release larder; `just bench` builds both.)\n",
        ),
    }
    if let Some(rows) = serve_http::persistence(root, repeats)? {
        md.push_str(&rows);
    }
    Ok(md)
}

/// The sync engine's rows, as markdown.
fn sync_section(root: &Path, repeats: usize) -> Result<String> {
    let mut md = String::new();
    let rows = sync::run(root, repeats)?;
    md.push_str("\nSync engine (larder-sync), same run: write + fsync of a 1 MiB file until it is durable in the store (median):\n\n| store | write + fsync 1 MiB | ratio to baseline |\n|---|---|---|\n");
    let base = rows.fsync[0].1;
    for (name, secs) in &rows.fsync {
        md.push_str(&format!(
            "| {name} | {:.2} ms | **{:.2}×** |\n",
            secs * 1e3,
            base / secs
        ));
    }
    md.push_str("\nRestore of 1,000 files of 1 KiB in 10 directories: the tree (listing and metadata; contents stay in the store until read), then a prefetch of every file's contents:\n\n| store | tree restored | + all contents fetched |\n|---|---|---|\n");
    for (name, tree, all) in &rows.restore {
        md.push_str(&format!(
            "| {name} | {:.0} ms | {:.0} ms |\n",
            tree * 1e3,
            all * 1e3
        ));
    }
    md.push_str(&format!(
        "\nA 4 KiB overwrite in the middle of a 100 MiB file, then fsync, sends {:.1} MiB to the store.\n",
        rows.overwrite_bytes as f64 / (1 << 20) as f64
    ));
    if rows.fsync.len() < 3 {
        md.push_str("\n(S3 rows skipped: moto is not installed; `just setup` installs it.)\n");
    }
    Ok(md)
}

/// A group of bars per workload, one per configuration: how many times
/// faster than the baseline.
fn plot(path: &Path, series: &[&str], ratios: &[(String, Vec<f64>)]) -> Result<()> {
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
    let colors = [RGBColor(46, 125, 50), RGBColor(21, 101, 192)];
    let root = BitMapBackend::new(path, (1000, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    // Log scale, bars from the baseline (1×): faster grows up, slower down.
    let all = || ratios.iter().flat_map(|r| r.1.iter().copied());
    let max = all().fold(1.0f64, f64::max) * 1.6;
    let min = all().fold(1.0f64, f64::min) / 1.6;
    let n = ratios.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Larder vs wasmtime host filesystem on tmpfs (× faster, log scale; below 1: slower)",
            ("sans-serif", 20),
        )
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..n, (min..max).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(ratios.len() * 2 + 1)
        .x_label_formatter(&|v| {
            let i = v.floor();
            if (v - i - 0.5).abs() < 1e-6 {
                ratios
                    .get(i as usize)
                    .map(|r| r.0.clone())
                    .unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("speed-up")
        .label_style(("sans-serif", 14))
        .draw()?;
    let width = 0.8 / series.len() as f64;
    let label = ("sans-serif", 13)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    for (k, name) in series.iter().enumerate() {
        let color = colors[k % colors.len()];
        chart
            .draw_series(ratios.iter().enumerate().map(|(i, (_, r))| {
                let x0 = i as f64 + 0.1 + k as f64 * width;
                Rectangle::new([(x0, 1.0), (x0 + width * 0.92, r[k])], color.filled())
            }))?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
        chart.draw_series(ratios.iter().enumerate().map(|(i, (_, r))| {
            let x = i as f64 + 0.1 + (k as f64 + 0.5) * width;
            Text::new(
                format!("{:.1}×", r[k]),
                (x, r[k].max(1.0) * 1.03),
                label.clone(),
            )
        }))?;
    }
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(0.0, 1.0), (n, 1.0)],
        BLACK.stroke_width(2),
    )))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}
