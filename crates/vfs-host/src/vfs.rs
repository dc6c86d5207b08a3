//! The shared filesystem and how it is assembled: host directories copied in
//! at start (optionally read-only), named preopens, quotas.

use fs_core::{DescriptorFlags as DF, Fs, FsConfig, OpenFlags as OF, PathFlags as PF};
use larder_sync::{Mirror, MirrorHook, ObjectStore, Report, SyncError};
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// A host directory copied into the filesystem at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Absolute guest path, e.g. `/etc/app`.
    pub guest: String,
    pub host: PathBuf,
    pub read_only: bool,
}

/// Why a mount could not be set up.
#[derive(Debug)]
pub enum MountError {
    /// The spec is not `GUEST=HOST[:ro]`.
    Spec(String),
    Import(fs_core::host::ImportError),
    Fs {
        guest: String,
        code: fs_core::ErrorCode,
    },
    /// Restoring from the store failed.
    Restore(SyncError),
}

impl std::fmt::Display for MountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MountError::Spec(s) => write!(f, "bad mount `{s}`: expected GUEST_DIR=HOST_DIR or GUEST_DIR=HOST_DIR:ro, with an absolute GUEST_DIR"),
            MountError::Import(e) => write!(f, "mounting {e}"),
            MountError::Fs { guest, code } => write!(f, "cannot mount at {guest}: {code}"),
            MountError::Restore(e) => write!(f, "restoring from the store: {e}"),
        }
    }
}

impl std::error::Error for MountError {}

impl Mount {
    /// Parses `GUEST=HOST[:ro]` (`--mount /etc/app=./config:ro`).
    pub fn parse(spec: &str) -> Result<Mount, MountError> {
        let bad = || MountError::Spec(spec.to_string());
        let (guest, host) = spec.split_once('=').ok_or_else(bad)?;
        let (host, read_only) = match host.strip_suffix(":ro") {
            Some(h) => (h, true),
            None => (host.strip_suffix(":rw").unwrap_or(host), false),
        };
        if !guest.starts_with('/') || host.is_empty() || guest.split('/').any(|c| c == "..") {
            return Err(bad());
        }
        Ok(Mount {
            guest: normalise(guest),
            host: PathBuf::from(host),
            read_only,
        })
    }
}

fn normalise(guest: &str) -> String {
    let parts: Vec<&str> = guest
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// Told the size of each piece of file content copied in from a mount.
type Progress = Box<dyn FnMut(&Mount, u64)>;

/// When a store-backed filesystem sends its changes to the store (always
/// on fsync, which returns only once they are there, and at
/// [`Vfs::sync`], which `larder run` calls at exit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// Also when a file written through a descriptor is closed.
    OnClose,
    /// Only on fsync (and `Vfs::sync`).
    OnFsync,
    /// Also every interval, from a background thread.
    Periodic(Duration),
    /// After every change (write, truncate, create, rename, delete, chmod,
    /// set-times), before the call returns: a store request per change.
    WriteThrough,
}

struct StoreSpec {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    mode: SyncMode,
    prefetch: bool,
    poll: Option<Duration>,
    progress: Option<Box<larder_sync::Progress<'static>>>,
}

/// Builds a [`Vfs`].
pub struct VfsBuilder {
    config: FsConfig,
    mounts: Vec<Mount>,
    preopens: Vec<(String, String, bool)>,
    progress: Option<Progress>,
    store: Option<StoreSpec>,
    lent: Option<crate::LentStore>,
}

impl Default for VfsBuilder {
    fn default() -> Self {
        VfsBuilder {
            config: crate::default_config(),
            mounts: Vec::new(),
            preopens: Vec::new(),
            progress: None,
            store: None,
            lent: None,
        }
    }
}

impl VfsBuilder {
    /// Limits from [`crate::default_config`] (tmpfs's, on this host's
    /// memory) until [`VfsBuilder::config`] says otherwise.
    pub fn new() -> Self {
        Self::default()
    }

    /// Block size, quotas and limits.
    pub fn config(mut self, config: FsConfig) -> Self {
        self.config = config;
        self
    }

    pub fn mount(mut self, mount: Mount) -> Self {
        self.mounts.push(mount);
        self
    }

    /// Called with each piece of file content copied in from a mount (its
    /// size in bytes), for progress bars.
    pub fn on_progress(mut self, f: impl FnMut(&Mount, u64) + 'static) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// Keeps the filesystem in `store` under `prefix`: restored from it at
    /// build (before mounts are copied in), mirrored to it per `mode`.
    /// Read-only mounts are not mirrored.
    pub fn store(mut self, store: Arc<dyn ObjectStore>, prefix: &str, mode: SyncMode) -> Self {
        self.store = Some(StoreSpec {
            store,
            prefix: prefix.to_string(),
            mode,
            prefetch: false,
            poll: None,
            progress: None,
        });
        self
    }

    /// With a store: every `every`, sync and then pick up what other
    /// writers changed in the store (applied while nothing here is
    /// waiting to be synced; see [`Mirror::poll`]).
    pub fn poll(mut self, every: Duration) -> Self {
        if let Some(s) = &mut self.store {
            s.poll = Some(every);
        }
        self
    }

    /// With a store: called with (objects done, objects in all) while the
    /// store is listed at start-up, for progress bars.
    pub fn on_restore_progress(mut self, f: impl Fn(u64, u64) + Send + Sync + 'static) -> Self {
        if let Some(s) = &mut self.store {
            s.progress = Some(Box::new(f));
        }
        self
    }

    /// With a store: fetch every restored file's contents in the
    /// background right after start-up, so later reads do not wait on
    /// the store (without it, a read fetches what it reaches).
    pub fn prefetch(mut self, on: bool) -> Self {
        if let Some(s) = &mut self.store {
            s.prefetch = on;
        }
        self
    }

    /// Lends `store` (keys under `prefix`) to composed apps that keep their
    /// own files persistent (they import `larder:vfs/store`; see
    /// `larder compose --persist host`). Independent of [`store`](Self::store),
    /// which mirrors this filesystem.
    pub fn lend_store(mut self, store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        self.lent = Some(crate::LentStore::new(store, prefix));
        self
    }

    /// Offers the guest directory `path` to every instance as the preopen
    /// `name`. Without any, the whole tree is offered as `/`.
    pub fn preopen(
        mut self,
        name: impl Into<String>,
        path: impl Into<String>,
        read_only: bool,
    ) -> Self {
        self.preopens.push((name.into(), path.into(), read_only));
        self
    }

    pub fn build(mut self) -> Result<Arc<Vfs>, MountError> {
        let fs = Fs::new(self.config, Arc::new(fs_core::SystemClock)).map_err(|code| {
            MountError::Fs {
                guest: "/".into(),
                code,
            }
        })?;
        let root = fs
            .root(DF::READ | DF::MUTATE_DIRECTORY)
            .expect("a fresh filesystem has a root");
        let mut mirror = match &self.store {
            Some(s) => Some(
                Mirror::restore_reporting(
                    s.store.clone(),
                    &s.prefix,
                    &fs,
                    s.progress.as_deref().unwrap_or(&|_, _| {}),
                )
                .map_err(MountError::Restore)?,
            ),
            None => None,
        };
        for m in &self.mounts {
            let fs_err = |code| MountError::Fs {
                guest: m.guest.clone(),
                code,
            };
            let rel = m.guest.trim_start_matches('/');
            let mut path = String::new();
            for part in rel.split('/').filter(|p| !p.is_empty()) {
                if !path.is_empty() {
                    path.push('/');
                }
                path.push_str(part);
                match root.create_directory_at(&path) {
                    Ok(()) | Err(fs_core::ErrorCode::Exist) => {}
                    Err(code) => return Err(fs_err(code)),
                }
            }
            let target = if rel.is_empty() { "." } else { rel };
            let dir = root
                .open_at(PF::SYMLINK_FOLLOW, target, OF::DIRECTORY, DF::READ)
                .map_err(fs_err)?;
            let mut progress = |n| {
                if let Some(p) = &mut self.progress {
                    p(m, n)
                }
            };
            fs_core::host::import_dir_with_progress(&dir, &m.host, &mut progress)
                .map_err(MountError::Import)?;
            if m.read_only {
                dir.set_read_only_recursive();
                mirror = mirror.map(|mi| mi.exclude(&m.guest));
            }
            tracing::debug!(guest = %m.guest, host = %m.host.display(), read_only = m.read_only, "mounted");
        }
        let mut preopens = self.preopens;
        if preopens.is_empty() {
            preopens.push(("/".into(), "/".into(), false));
        }
        for (_, path, _) in &preopens {
            let rel = path.trim_start_matches('/');
            if !rel.is_empty() {
                root.stat_at(PF::SYMLINK_FOLLOW, rel)
                    .map_err(|code| MountError::Fs {
                        guest: path.clone(),
                        code,
                    })?;
            }
        }
        let mirror = mirror.map(Arc::new);
        if let (Some(m), Some(spec)) = (&mirror, &self.store) {
            fs.set_sync_hook(Arc::new(MirrorHook {
                mirror: m.clone(),
                on_close: spec.mode == SyncMode::OnClose,
                write_through: spec.mode == SyncMode::WriteThrough,
            }));
        }
        let vfs = Arc::new(Vfs {
            fs,
            preopens,
            mirror,
            lent: self.lent,
        });
        if let Some(StoreSpec {
            mode: SyncMode::Periodic(every),
            ..
        }) = self.store
        {
            every_while_alive(&vfs, every, |v| {
                let _ = v.sync();
            });
        }
        if let Some(every) = self.store.as_ref().and_then(|s| s.poll) {
            every_while_alive(&vfs, every, |v| {
                if v.sync().is_ok() {
                    if let Some(m) = &v.mirror {
                        let _ = m
                            .poll(&v.fs)
                            .map_err(|e| tracing::warn!(error = %e, "poll failed"));
                    }
                }
            });
        }
        if self.store.as_ref().is_some_and(|s| s.prefetch) {
            let weak = Arc::downgrade(&vfs);
            std::thread::spawn(move || {
                if let Some(v) = weak.upgrade() {
                    if let Some(Err(e)) = v.mirror.as_ref().map(|m| m.prefetch(&v.fs)) {
                        tracing::warn!(error = %e, "prefetch stopped; reads fetch what they need");
                    }
                }
            });
        }
        Ok(vfs)
    }
}

/// Runs `round` every `every` on a thread of its own while the filesystem
/// lives (the mirror logs errors; the next round retries).
fn every_while_alive(vfs: &Arc<Vfs>, every: Duration, round: impl Fn(&Vfs) + Send + 'static) {
    let vfs: Weak<Vfs> = Arc::downgrade(vfs);
    std::thread::spawn(move || loop {
        std::thread::sleep(every);
        match vfs.upgrade() {
            Some(v) => round(&v),
            None => return,
        }
    });
}

/// One filesystem shared by every instance that links it.
pub struct Vfs {
    fs: Fs,
    preopens: Vec<(String, String, bool)>,
    mirror: Option<Arc<Mirror>>,
    lent: Option<crate::LentStore>,
}

impl Vfs {
    /// The store lent to composed apps, if any.
    pub fn lent(&self) -> Option<&crate::LentStore> {
        self.lent.as_ref()
    }

    pub fn fs(&self) -> &Fs {
        &self.fs
    }

    /// Sends every change to the store (if there is one); returns once it
    /// is durable there. `larder run` calls this at exit.
    pub fn sync(&self) -> Result<Report, SyncError> {
        match &self.mirror {
            Some(m) => m.sync(&self.fs),
            None => Ok(Report::default()),
        }
    }

    /// The mirror, for its status (conflicts, the last error).
    pub fn mirror(&self) -> Option<&Arc<Mirror>> {
        self.mirror.as_ref()
    }

    /// Fresh descriptors for the configured preopens, named.
    pub(crate) fn open_preopens(
        &self,
    ) -> Result<Vec<(fs_core::Descriptor, String)>, fs_core::ErrorCode> {
        self.preopens
            .iter()
            .map(|(name, path, read_only)| {
                let flags = if *read_only {
                    DF::READ
                } else {
                    DF::READ | DF::MUTATE_DIRECTORY
                };
                let rel = path.trim_start_matches('/');
                let d = if rel.is_empty() {
                    self.fs.root(flags)?
                } else {
                    self.fs.preopen(rel, flags)?
                };
                Ok((d, name.clone()))
            })
            .collect()
    }
}
