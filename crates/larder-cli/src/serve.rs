//! `larder serve`: one filesystem shared over 9P2000.L by apps in other
//! processes (the remote adapter) and by any 9P2000.L client.

use crate::volume::{parse_mount, parse_sync_mode};
use crate::EXIT_USAGE;
use larder_9p::server::{Config, Server};
use larder_volume::{Mount, SyncMode, VolumeBuilder};
use std::net::SocketAddr;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on. Loopback unless told otherwise; any other
    /// address needs --secret (or --insecure).
    #[arg(long, default_value = "127.0.0.1:5640", value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// Keep the filesystem in a store (as `larder run --store`): a
    /// directory, file:///path or s3://bucket/prefix[?...].
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// When changes go to the store besides fsync and shutdown (as
    /// `larder run --sync-mode`).
    #[arg(long, value_name = "MODE", requires = "store", value_parser = parse_sync_mode)]
    sync_mode: Option<SyncMode>,
    /// Copy host directory HOST_DIR into the filesystem at GUEST_DIR.
    #[arg(long = "mount", value_name = "GUEST_DIR=HOST_DIR[:ro]", value_parser = parse_mount)]
    mounts: Vec<Mount>,
    #[command(flatten)]
    limits: crate::limits::LimitArgs,
    /// Clients must attach with this as the aname (the remote adapter
    /// sends LARDER_REMOTE_SECRET). Also read from LARDER_SERVE_SECRET.
    #[arg(long, env = "LARDER_SERVE_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Listen on a non-loopback address without a secret.
    #[arg(long)]
    insecure: bool,
    /// Largest message a client may negotiate, in bytes.
    #[arg(long, default_value_t = 4 << 20, value_parser = clap::value_parser!(u32).range(8192..=(64 << 20)))]
    max_msize: u32,
    /// Fids one connection may hold at once.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(16..=1_000_000))]
    max_fids: u64,
}

fn usage(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("larder serve: {msg}");
    ExitCode::from(EXIT_USAGE)
}

pub fn main(args: ServeArgs) -> ExitCode {
    if !args.listen.ip().is_loopback() && args.secret.is_none() && !args.insecure {
        return usage(format_args!(
            "--listen {} is not a loopback address: anyone who can reach it could read and \
             change every file; give --secret TOKEN (or LARDER_SERVE_SECRET), or --insecure",
            args.listen
        ));
    }
    let mut builder = args.limits.apply(VolumeBuilder::new());
    if let Some(url) = &args.store {
        match crate::store::open(url) {
            Ok(s) => {
                builder = builder.store(
                    s.store,
                    &s.prefix,
                    args.sync_mode.unwrap_or(SyncMode::OnClose),
                )
            }
            Err(e) => return usage(format_args!("{e:#}")),
        }
    }
    let volume = match crate::progress::build(builder, args.mounts) {
        Ok(v) => v,
        Err(e) => return usage(e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return usage(format_args!("cannot start: {e}")),
    };
    let config = Config {
        max_msize: args.max_msize,
        max_fids: args.max_fids as usize,
        secret: args.secret.clone(),
        may_block: volume.may_wait(),
    };
    let server = Server::new(volume.fs().clone(), config);
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        // Tests and scripts read the port from this line (for :0).
        eprintln!("larder serve: listening on {local} (9P2000.L)");
        tokio::select! {
            r = server.serve(listener) => r.map_err(|e| format!("accepting connections: {e}")),
            _ = shutdown() => Ok(()),
        }
    });
    if let Err(e) = result {
        return usage(e);
    }
    // Clients still connected lose nothing already answered: it is in
    // fs-core, and now goes to the store.
    drop(runtime);
    if let Err(e) = volume.sync() {
        eprintln!("larder serve: changes not saved to the store: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!("larder serve: stopped");
    ExitCode::SUCCESS
}

/// SIGINT or SIGTERM.
pub(crate) async fn shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
