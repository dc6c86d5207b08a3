//! `larder run`: wasmtime-run-like execution of a component on vfs-host.

use crate::EXIT_USAGE;
use larder_volume::{Mount, SyncMode, VolumeBuilder};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use vfs_host::{Vfs, VfsState};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::bindings::sync::Command as WasiCommand;
use wasmtime_wasi::WasiCtx;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The component to run.
    app: PathBuf,
    /// Copy host directory HOST_DIR into the filesystem at GUEST_DIR
    /// (GUEST_DIR=HOST_DIR, or GUEST_DIR=HOST_DIR:ro for read-only).
    #[arg(long = "mount", value_name = "GUEST_DIR=HOST_DIR[:ro]", value_parser = parse_mount)]
    mounts: Vec<Mount>,
    /// Offer guest directory GUEST_DIR (default `/`) as the preopen NAME;
    /// repeatable. Without any, the whole tree is offered as `/`.
    #[arg(long = "preopen", value_name = "NAME[=GUEST_DIR][:ro]")]
    preopens: Vec<String>,
    /// wasmtime's spelling: copy host directory HOST_DIR in and offer it
    /// as preopen GUEST_DIR (default: HOST_DIR's own name, as given);
    /// `:ro` makes it a read-only mount. Only the directories given this
    /// way (and by --preopen) are then preopened, as under wasmtime.
    #[arg(long = "dir", value_name = "HOST_DIR[::GUEST_DIR][:ro]", value_parser = crate::compose::parse_dir)]
    dirs: Vec<(String, String)>,
    /// Set an environment variable for the app; a bare KEY passes this
    /// process's value on (as `wasmtime run --env KEY` does).
    #[arg(long = "env", value_name = "KEY[=VALUE]", value_parser = parse_env)]
    env: Vec<EnvVar>,
    /// Keep the filesystem in a store: a directory (or file:///path), or
    /// s3://bucket/prefix[?endpoint=URL&region=R&path-style=BOOL&timeout=SECS].
    /// Restored at start (each file's contents fetched when first read),
    /// mirrored on fsync, on close (see --sync-mode) and at exit.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// When changes go to the store besides fsync and exit: `close` (a
    /// written file is closed), `fsync` (only then), `periodic=SECS`,
    /// `write-through` (every change, before its call returns).
    #[arg(long, value_name = "MODE", requires = "store", value_parser = parse_sync_mode)]
    sync_mode: Option<SyncMode>,
    /// With --store: fetch all file contents in the background at start
    /// (otherwise each file's bytes are fetched when first read).
    #[arg(long, requires = "store")]
    prefetch: bool,
    /// With --store: every SECS seconds, sync and then apply what other
    /// writers changed in the store (while nothing here awaits a sync).
    #[arg(long, value_name = "SECS", requires = "store", value_parser = parse_secs)]
    poll: Option<Duration>,
    #[command(flatten)]
    limits: crate::limits::LimitArgs,
    /// Run this many instances at once, on one shared filesystem.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    instances: u32,
    /// Arguments passed to the app. Larder's own flags may come after the
    /// app too, so an argument starting with `-` goes after `--`.
    args: Vec<String>,
}

pub(crate) fn parse_mount(s: &str) -> Result<Mount, String> {
    let m = Mount::parse(s).map_err(|e| e.to_string())?;
    if !m.host.is_dir() {
        return Err(format!(
            "mount source {} is not a directory",
            m.host.display()
        ));
    }
    Ok(m)
}

/// What a composed app with a persistent filesystem imports.
const LENT_STORE: &str = "larder:vfs/store@0.1";

/// The longest interval accepted: a year. Longer ones are typos (and
/// `Duration` cannot hold every f64).
const MAX_SECS: f64 = 365.0 * 24.0 * 3600.0;

fn parse_secs(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= MAX_SECS => Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("`{s}` is not a usable number of seconds")),
        Ok(secs) if secs > MAX_SECS => Err(format!(
            "`{s}` seconds is more than a year; give at most {MAX_SECS}"
        )),
        _ => Err(format!("`{s}` is not a positive number of seconds")),
    }
}

pub(crate) fn parse_sync_mode(s: &str) -> Result<SyncMode, String> {
    match s {
        "close" => Ok(SyncMode::OnClose),
        "fsync" => Ok(SyncMode::OnFsync),
        "write-through" => Ok(SyncMode::WriteThrough),
        _ => match s.strip_prefix("periodic=").map(parse_secs) {
            Some(Ok(every)) => Ok(SyncMode::Periodic(every)),
            Some(Err(e)) => Err(format!("bad --sync-mode `{s}`: {e}")),
            None => Err(format!(
                "bad --sync-mode `{s}`: expected close, fsync, write-through or periodic=SECS"
            )),
        },
    }
}

/// `--env KEY=VALUE`, or `--env KEY` for this process's value (read at
/// start; an unset KEY stays unset for the app, as under wasmtime).
#[derive(Clone)]
struct EnvVar(String, Option<String>);

fn parse_env(s: &str) -> Result<EnvVar, String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok(EnvVar(k.to_string(), Some(v.to_string()))),
        None if !s.is_empty() => Ok(EnvVar(s.to_string(), std::env::var(s).ok())),
        _ => Err(format!("bad --env `{s}`: expected KEY=VALUE or KEY")),
    }
}

/// An engine that caches compiled code where the wasmtime CLI does (its
/// config file, else `~/.cache/wasmtime`), so an app run again starts
/// without being compiled again; without a usable cache, it compiles.
fn engine() -> Engine {
    let mut config = wasmtime::Config::new();
    match wasmtime::Cache::from_file(None) {
        Ok(cache) => {
            config.cache(Some(cache));
        }
        Err(e) => tracing::debug!(error = %e, "no compilation cache"),
    }
    Engine::new(&config).unwrap_or_default()
}

fn usage(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("larder run: {msg}");
    ExitCode::from(EXIT_USAGE)
}

pub fn main(args: RunArgs) -> ExitCode {
    let bytes = match crate::read_input(&args.app) {
        Ok(b) => b,
        Err(e) => return usage(format_args!("cannot read {}: {e}", args.app.display())),
    };
    if is_core_module(&bytes) {
        return usage(format_args!(
            "{} is a core WebAssembly module, not a component; build for wasm32-wasip2 or adapt it with `wasm-tools component new`",
            args.app.display()
        ));
    }
    // Checked before compiling, which takes a while for a large app.
    let imports = larder_compose::top_level(&bytes)
        .unwrap_or_default()
        .imports;
    if let Some(name) = larder_compose::wasi_p3_import(&imports) {
        return usage(format_args!(
            "WASI 0.3 components are not supported yet: {} imports {name}; build it for \
             WASI 0.2 (wasm32-wasip2) to run it with Larder",
            args.app.display()
        ));
    }
    if let Some(name) = imports.iter().find(|name| name.starts_with("wasi:http/")) {
        return usage(format_args!(
            "{} imports {name}, which `larder run` does not provide (an HTTP client, or an \
             app composed with --persist s3://); run it with `wasmtime run -S http`",
            args.app.display()
        ));
    }
    let engine = engine();
    let component = match Component::new(&engine, &bytes) {
        Ok(c) => c,
        Err(e) => {
            return usage(format_args!(
                "{} is not a valid component: {e:#}",
                args.app.display()
            ))
        }
    };
    let exports_run = component
        .component_type()
        .exports(&engine)
        .any(|(name, _)| name.starts_with("wasi:cli/run@0.2"));
    if !exports_run {
        return usage(format_args!(
            "{} does not export wasi:cli/run@0.2.x, so it is not a command component `larder run` can start",
            args.app.display()
        ));
    }
    // A composed app whose adapter keeps its files persistent imports the
    // store interface: --store is lent to it, and this host's own
    // filesystem (which such an app does not use) is not mirrored.
    let keeps_own_files = component
        .component_type()
        .imports(&engine)
        .any(|(name, _)| name.starts_with(LENT_STORE));
    let mut builder = args.limits.apply(VolumeBuilder::new());
    let mut lent = None;
    if keeps_own_files {
        let Some(url) = &args.store else {
            return usage(format_args!(
                "{} keeps its files in a store the host lends it (composed with \
                 --persist host): run it with --store DIR or --store s3://BUCKET/PREFIX",
                args.app.display()
            ));
        };
        if args.prefetch || args.poll.is_some() || args.sync_mode.is_some() {
            return usage(format_args!(
                "--sync-mode, --prefetch and --poll apply to the host's filesystem; {} keeps \
                 its own (restored when it starts, saved on fsync, when a written file is \
                 closed and at exit)",
                args.app.display()
            ));
        }
        match crate::store::open(url) {
            Ok(s) => lent = Some(s),
            Err(e) => return usage(format_args!("{e:#}")),
        }
    } else if let Some(url) = &args.store {
        match crate::store::open(url) {
            Ok(s) => {
                builder = builder
                    .store(
                        s.store,
                        &s.prefix,
                        args.sync_mode.unwrap_or(SyncMode::OnClose),
                    )
                    .prefetch(args.prefetch);
                if let Some(every) = args.poll {
                    builder = builder.poll(every);
                }
            }
            Err(e) => return usage(format_args!("{e:#}")),
        }
    }
    let mut mounts = args.mounts;
    let mut preopens = args.preopens.clone();
    for (mount, preopen) in &args.dirs {
        match parse_mount(mount) {
            Ok(m) => mounts.push(m),
            Err(e) => return usage(format_args!("--dir: {e}")),
        }
        preopens.push(preopen.clone());
    }
    for p in &preopens {
        match larder_compose::Preopen::parse(p) {
            Ok(p) => builder = builder.preopen(p.name, p.path, p.read_only),
            Err(e) => return usage(e),
        }
    }
    let vfs = match crate::progress::build(builder, mounts) {
        Ok(volume) => Vfs::new(volume),
        Err(e) => return usage(e),
    };
    let vfs = Arc::new(match lent {
        Some(s) => vfs.lend_store(s.store, &s.prefix),
        None => vfs,
    });
    let mut linker = Linker::<VfsState>::new(&engine);
    if let Err(e) = vfs_host::add_to_linker_sync(&mut linker) {
        eprintln!("larder run: setting up WASI: {e:#}");
        return ExitCode::FAILURE;
    }
    let pre = match linker.instantiate_pre(&component) {
        Ok(p) => p,
        Err(e) => return usage(format_args!("{} cannot be run: {e:#}", args.app.display())),
    };
    let name = args
        .app
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let argv: Vec<String> = std::iter::once(name).chain(args.args).collect();
    let env: Vec<(String, String)> = args
        .env
        .into_iter()
        .filter_map(|EnvVar(k, v)| Some((k, v?)))
        .collect();

    let codes: Vec<u8> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..args.instances)
            .map(|i| {
                let (pre, vfs, argv, env) = (&pre, vfs.clone(), &argv, &env);
                s.spawn(move || run_instance(i, pre, vfs, argv, env, args.instances > 1))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(134))
            .collect()
    });
    let code = codes.into_iter().find(|&c| c != 0).unwrap_or(0);
    // Whatever the app left unsynced goes to the store now; if it cannot,
    // say so and fail, even when the app succeeded.
    match crate::progress::waiting("saving to the store", || vfs.volume().sync()) {
        Ok(_) => {}
        Err(e) => {
            eprintln!("larder run: changes not saved to the store: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Some(m) = vfs.volume().mirror() {
        for c in m.status().conflicts {
            eprintln!("larder run: conflict: {c}");
        }
    }
    ExitCode::from(code)
}

/// Runs one instance to completion; returns its exit status.
fn run_instance(
    index: u32,
    pre: &wasmtime::component::InstancePre<VfsState>,
    vfs: Arc<Vfs>,
    argv: &[String],
    env: &[(String, String)],
    tag: bool,
) -> u8 {
    let mut wasi = WasiCtx::builder();
    wasi.inherit_stdio().args(argv).envs(env);
    if tag {
        wasi.env("LARDER_INSTANCE", index.to_string());
    }
    let mut store = Store::new(pre.engine(), VfsState::new(wasi.build(), vfs));
    let result = (|| -> wasmtime::Result<Result<(), ()>> {
        let instance = pre.instantiate(&mut store)?;
        let command = WasiCommand::new(&mut store, &instance)?;
        command.wasi_cli_run().call_run(&mut store)
    })();
    let who = if tag {
        format!("instance {index}: ")
    } else {
        String::new()
    };
    match result {
        Ok(Ok(())) => 0,
        Ok(Err(())) => 1,
        Err(e) => {
            if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                return exit.0.clamp(0, 255) as u8;
            }
            eprintln!("larder run: {who}{e:?}");
            // What `wasmtime run` reports for a trap: 128 + SIGABRT.
            134
        }
    }
}

/// A core module starts with the same magic as a component but a different
/// version/layer field.
fn is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0]
}
