//! `larder run`: wasmtime-run-like execution of a component on vfs-host,
//! on the async linker (with `wasi:http` for outgoing requests, as
//! `wasmtime run -S http`).

use crate::host::Host;
use crate::volume::VolumeArgs;
use crate::EXIT_USAGE;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use vfs_host::Vfs;
use wasmtime::Store;
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::p3::bindings as p3;
use wasmtime_wasi::WasiCtx;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The component to run.
    app: PathBuf,
    #[command(flatten)]
    volume: VolumeArgs,
    /// Set an environment variable for the app; a bare KEY passes this
    /// process's value on (as `wasmtime run --env KEY` does).
    #[arg(long = "env", value_name = "KEY[=VALUE]", value_parser = parse_env)]
    env: Vec<EnvVar>,
    /// Run this many instances at once, on one shared filesystem.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    instances: u32,
    /// Arguments passed to the app. Larder's own flags may come after the
    /// app too, so an argument starting with `-` goes after `--`.
    args: Vec<String>,
}

/// `--env KEY=VALUE`, or `--env KEY` for this process's value (read at
/// start; an unset KEY stays unset for the app, as under wasmtime).
#[derive(Clone)]
pub(crate) struct EnvVar(pub String, pub Option<String>);

pub(crate) fn parse_env(s: &str) -> Result<EnvVar, String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok(EnvVar(k.to_string(), Some(v.to_string()))),
        None if !s.is_empty() => Ok(EnvVar(s.to_string(), std::env::var(s).ok())),
        _ => Err(format!("bad --env `{s}`: expected KEY=VALUE or KEY")),
    }
}

fn usage(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("larder run: {msg}");
    ExitCode::from(EXIT_USAGE)
}

pub fn main(args: RunArgs) -> ExitCode {
    let (engine, component) = match crate::host::load(&args.app) {
        Ok(loaded) => loaded,
        Err(e) => return usage(e),
    };
    let exports_run = |version: &str| {
        component
            .component_type()
            .exports(&engine)
            .any(|(name, _)| name.starts_with(&format!("wasi:cli/run@{version}")))
    };
    let p3 = exports_run("0.3");
    if !p3 && !exports_run("0.2") {
        return usage(format_args!(
            "{} exports neither wasi:cli/run@0.2.x nor @0.3.x, so it is not a command component `larder run` can start",
            args.app.display()
        ));
    }
    let vfs = match args.volume.open(&args.app, &component) {
        Ok(vfs) => vfs,
        Err(e) => return usage(e),
    };
    let pre = match crate::host::linker(&engine).and_then(|l| l.instantiate_pre(&component)) {
        Ok(pre) => pre,
        Err(e) => return usage(format_args!("{} cannot be run: {e:#}", args.app.display())),
    };
    let pre = if p3 {
        p3::CommandPre::new(pre).map(Pre::P3)
    } else {
        CommandPre::new(pre).map(Pre::P2)
    };
    let pre = match pre {
        Ok(pre) => pre,
        Err(e) => return usage(format_args!("{} cannot be run: {e:#}", args.app.display())),
    };
    // A worker per instance: a guest runs until it returns (nothing makes
    // it yield), and instances that wait on each other's files must all
    // be running, as they were on threads of their own.
    let runtime = match crate::host::runtime(args.instances as usize) {
        Ok(r) => r,
        Err(e) => return usage(format_args!("cannot start: {e}")),
    };
    let name = args
        .app
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let argv: Arc<Vec<String>> = Arc::new(std::iter::once(name).chain(args.args).collect());
    let env: Arc<Vec<(String, String)>> = Arc::new(
        args.env
            .into_iter()
            .filter_map(|EnvVar(k, v)| Some((k, v?)))
            .collect(),
    );
    let many = args.instances > 1;
    let codes: Vec<u8> = runtime.block_on(async {
        let tasks: Vec<_> = (0..args.instances)
            .map(|i| {
                let (pre, vfs, argv, env) = (pre.clone(), vfs.clone(), argv.clone(), env.clone());
                tokio::spawn(async move { run_instance(i, pre, vfs, &argv, &env, many).await })
            })
            .collect();
        let mut codes = Vec::new();
        for t in tasks {
            codes.push(t.await.unwrap_or(134));
        }
        codes
    });
    drop(runtime);
    let code = codes.into_iter().find(|&c| c != 0).unwrap_or(0);
    // Whatever the app left unsynced goes to the store now; if it cannot,
    // say so and fail, even when the app succeeded.
    if let Err(e) = crate::volume::save(&vfs, "larder run") {
        eprintln!("larder run: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::from(code)
}

/// A command ready to instantiate: WASI 0.2's `run`, or 0.3's (async).
#[derive(Clone)]
enum Pre {
    P2(CommandPre<Host>),
    P3(p3::CommandPre<Host>),
}

impl Pre {
    fn engine(&self) -> &wasmtime::Engine {
        match self {
            Pre::P2(pre) => pre.engine(),
            Pre::P3(pre) => pre.engine(),
        }
    }

    /// Instantiates the command in `store` and runs it to its end.
    async fn run(&self, store: &mut Store<Host>) -> wasmtime::Result<Result<(), ()>> {
        match self {
            Pre::P2(pre) => {
                let command = pre.instantiate_async(&mut *store).await?;
                command.wasi_cli_run().call_run(&mut *store).await
            }
            Pre::P3(pre) => {
                let command = pre.instantiate_async(&mut *store).await?;
                store
                    .run_concurrent(async |s| command.wasi_cli_run().call_run(s).await)
                    .await?
            }
        }
    }
}

/// Runs one instance to completion; returns its exit status.
async fn run_instance(
    index: u32,
    pre: Pre,
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
    let mut store = Store::new(pre.engine(), Host::new(wasi.build(), vfs));
    let result = pre.run(&mut store).await;
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
