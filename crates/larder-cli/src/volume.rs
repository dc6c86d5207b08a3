//! The filesystem flags `larder run` and `larder serve-http` share, and the
//! shared filesystem they build: mounts, preopens, a store it persists to,
//! or a store lent to a composed app that keeps its own files.

use larder_volume::{Mount, SyncMode, VolumeBuilder};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use vfs_host::Vfs;
use wasmtime::component::Component;

#[derive(clap::Args)]
pub struct VolumeArgs {
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
}

/// What a composed app with a persistent filesystem imports.
const LENT_STORE: &str = "larder:vfs/store@0.1";

impl VolumeArgs {
    /// Whether a served request's changes reach the store before its
    /// response does: with a store, unless `--sync-mode fsync` or
    /// `periodic` asked for fewer syncs.
    pub fn stores_each_request(&self) -> bool {
        self.store.is_some()
            && matches!(
                self.sync_mode.unwrap_or(SyncMode::OnClose),
                SyncMode::OnClose | SyncMode::WriteThrough
            )
    }

    /// The filesystem `app` (compiled as `component`) runs on; the error is
    /// a usage message.
    pub fn open(self, app: &Path, component: &Component) -> Result<Arc<Vfs>, String> {
        // A composed app whose adapter keeps its files persistent imports
        // the store interface: --store is lent to it, and this host's own
        // filesystem (which such an app does not use) is not mirrored.
        let keeps_own_files = component
            .component_type()
            .imports(component.engine())
            .any(|(name, _)| name.starts_with(LENT_STORE));
        let mut builder = self.limits.apply(VolumeBuilder::new());
        let mut lent = None;
        if keeps_own_files {
            let Some(url) = &self.store else {
                return Err(format!(
                    "{} keeps its files in a store the host lends it (composed with \
                     --persist host): run it with --store DIR or --store s3://BUCKET/PREFIX",
                    app.display()
                ));
            };
            if self.prefetch || self.poll.is_some() || self.sync_mode.is_some() {
                return Err(format!(
                    "--sync-mode, --prefetch and --poll apply to the host's filesystem; {} \
                     keeps its own (restored when it starts, saved on fsync, when a written \
                     file is closed and at exit)",
                    app.display()
                ));
            }
            lent = Some(crate::store::open(url).map_err(|e| format!("{e:#}"))?);
        } else if let Some(url) = &self.store {
            let s = crate::store::open(url).map_err(|e| format!("{e:#}"))?;
            let mode = self.sync_mode.unwrap_or(SyncMode::OnClose);
            builder = builder
                .store(s.store, &s.prefix, mode)
                .prefetch(self.prefetch);
            if let Some(every) = self.poll {
                builder = builder.poll(every);
            }
        }
        let mut mounts = self.mounts;
        let mut preopens = self.preopens;
        for (mount, preopen) in self.dirs {
            mounts.push(parse_mount(&mount).map_err(|e| format!("--dir: {e}"))?);
            preopens.push(preopen);
        }
        for p in &preopens {
            let p = larder_compose::Preopen::parse(p)?;
            builder = builder.preopen(p.name, p.path, p.read_only);
        }
        let vfs = Vfs::new(crate::progress::build(builder, mounts).map_err(|e| e.to_string())?);
        Ok(Arc::new(match lent {
            Some(s) => vfs.lend_store(s.store, &s.prefix),
            None => vfs,
        }))
    }
}

/// Sends what the apps left unsynced to the store, then reports conflicts
/// (as `who`); the error says the changes are not saved.
pub fn save(vfs: &Vfs, who: &str) -> Result<(), String> {
    crate::progress::waiting("saving to the store", || vfs.volume().sync())
        .map_err(|e| format!("changes not saved to the store: {e}"))?;
    if let Some(m) = vfs.volume().mirror() {
        for c in m.status().conflicts {
            eprintln!("{who}: conflict: {c}");
        }
    }
    Ok(())
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

/// The longest interval accepted: a year. Longer ones are typos (and
/// `Duration` cannot hold every f64).
const MAX_SECS: f64 = 365.0 * 24.0 * 3600.0;

pub(crate) fn parse_secs(s: &str) -> Result<Duration, String> {
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
