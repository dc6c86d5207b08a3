//! larder-volume: the one place a Larder filesystem is assembled, on the
//! host (vfs-host, `larder run`, `larder serve`, `larder compose`) and
//! inside the guest adapter alike.
//!
//! A [`Volume`] is built in layers, each over the one before:
//!
//! 1. a bundled image (the adapter's bundle), loaded lazily, with its
//!    read-only subtrees marked;
//! 2. with feature `host`, host directories copied in ([`Mount`]);
//! 3. with feature `store`, whatever a store holds, mirrored back per
//!    [`SyncMode`]. The store's version of a file wins: the image and
//!    writable mounts are what an app starts with the first time, and the
//!    store holds what it made of them since. Read-only subtrees (of the
//!    image or mounted) are neither restored nor mirrored: they are always
//!    what was bundled or mounted.
//!
//! It then offers named preopens. The bindings (vfs-host, the adapter, the
//! 9P server) only translate calls to the [`Fs`] it holds.

#[cfg(feature = "store")]
mod group;
mod memory;
#[cfg(feature = "host")]
mod mount;

#[cfg(feature = "store")]
pub use larder_sync::SyncMode;
pub use memory::default_config;
#[cfg(feature = "host")]
pub use memory::host_memory;
#[cfg(feature = "host")]
pub use mount::Mount;

use fs_core::image::{self, ImageError, ImageSource};
use fs_core::{Clock, Descriptor, DescriptorFlags as DF, ErrorCode, Fs, FsConfig, PathFlags as PF};
use std::sync::Arc;

#[cfg(feature = "store")]
use larder_sync::{Mirror, MirrorHook, ObjectStore, Report, SyncError};

/// Why a volume could not be built.
#[derive(Debug)]
pub enum BuildError {
    /// A host mount is not `GUEST=HOST[:ro]`.
    #[cfg(feature = "host")]
    Spec(String),
    /// The bundled image is damaged.
    Image(ImageError),
    /// A host directory could not be copied in.
    #[cfg(feature = "host")]
    Import(fs_core::host::ImportError),
    /// A guest path (a mount point, a read-only subtree, a preopen) could
    /// not be made or reached.
    Fs { guest: String, code: ErrorCode },
    /// Restoring from the store failed.
    #[cfg(feature = "store")]
    Restore(SyncError),
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            #[cfg(feature = "host")]
            BuildError::Spec(s) => write!(f, "bad mount `{s}`: expected GUEST_DIR=HOST_DIR or GUEST_DIR=HOST_DIR:ro, with an absolute GUEST_DIR"),
            BuildError::Image(e) => write!(f, "cannot load the bundled filesystem: {e}"),
            #[cfg(feature = "host")]
            BuildError::Import(e) => write!(f, "mounting {e}"),
            BuildError::Fs { guest, code } => write!(f, "cannot set up {guest}: {code}"),
            #[cfg(feature = "store")]
            BuildError::Restore(e) => write!(f, "cannot restore the files from the store: {e}"),
        }
    }
}

impl std::error::Error for BuildError {}

/// A directory offered to apps under a name (`wasi:filesystem/preopens`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preopen {
    pub name: String,
    /// Absolute guest path.
    pub path: String,
    /// Offered without `mutate-directory`, so nothing under it changes
    /// through it.
    pub read_only: bool,
}

#[cfg(feature = "store")]
struct StoreSpec {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    mode: SyncMode,
    prefetch: bool,
    poll: Option<std::time::Duration>,
    progress: Option<Box<larder_sync::Progress<'static>>>,
    defer_closes: bool,
}

/// The bundled image and its read-only subtrees.
struct Bundled {
    source: Arc<dyn ImageSource>,
    read_only: Vec<String>,
}

/// Builds a [`Volume`].
pub struct VolumeBuilder {
    config: FsConfig,
    clock: Arc<dyn Clock>,
    image: Option<Bundled>,
    #[cfg(feature = "host")]
    mounts: Vec<Mount>,
    #[cfg(feature = "host")]
    progress: Option<mount::Progress>,
    #[cfg(feature = "host")]
    by_reference: bool,
    preopens: Vec<Preopen>,
    #[cfg(feature = "store")]
    store: Option<StoreSpec>,
}

#[cfg(feature = "host")]
impl Default for VolumeBuilder {
    fn default() -> Self {
        Self::with_clock(Arc::new(fs_core::SystemClock))
    }
}

impl VolumeBuilder {
    /// Limits from [`default_config`] (tmpfs's, on this host's memory)
    /// until [`VolumeBuilder::config`] says otherwise; the system clock.
    #[cfg(feature = "host")]
    pub fn new() -> Self {
        Self::default()
    }

    /// Limits from [`default_config`]; times from `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        VolumeBuilder {
            config: default_config(),
            clock,
            image: None,
            #[cfg(feature = "host")]
            mounts: Vec::new(),
            #[cfg(feature = "host")]
            progress: None,
            #[cfg(feature = "host")]
            by_reference: false,
            preopens: Vec::new(),
            #[cfg(feature = "store")]
            store: None,
        }
    }

    /// Block size, quotas and limits.
    pub fn config(mut self, config: FsConfig) -> Self {
        self.config = config;
        self
    }

    /// Starts from the image `source` (read lazily), with the subtrees at
    /// guest paths `read_only` made read-only and left out of the mirror.
    pub fn image(mut self, source: Arc<dyn ImageSource>, read_only: Vec<String>) -> Self {
        self.image = Some(Bundled { source, read_only });
        self
    }

    /// Copies a host directory in at build (over the image; a store's
    /// files go over it, unless it is read-only).
    #[cfg(feature = "host")]
    pub fn mount(mut self, mount: Mount) -> Self {
        self.mounts.push(mount);
        self
    }

    /// Leaves the mounts' file contents on the host: each file is read once
    /// at build (for its holes and checksum) and again when its bytes are
    /// used, checked against that checksum. For staging a bundle that is
    /// written out straight away, holding none of its contents in memory;
    /// not for a volume an app uses, since a host file changed meanwhile
    /// then reads as an I/O error.
    #[cfg(feature = "host")]
    pub fn mount_by_reference(mut self) -> Self {
        self.by_reference = true;
        self
    }

    /// Called with each piece of file content copied in from a mount (its
    /// size in bytes), for progress bars.
    #[cfg(feature = "host")]
    pub fn on_progress(mut self, f: impl FnMut(&Mount, u64) + 'static) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// Offers the guest directory `path` as the preopen `name`. Without
    /// any, the whole tree is offered as `/`.
    pub fn preopen(
        mut self,
        name: impl Into<String>,
        path: impl Into<String>,
        read_only: bool,
    ) -> Self {
        self.preopens.push(Preopen {
            name: name.into(),
            path: path.into(),
            read_only,
        });
        self
    }

    /// Keeps the filesystem in `store` under `prefix`: restored from it at
    /// build (over the image and the writable mounts), mirrored to it per
    /// `mode`. Read-only subtrees are neither restored nor mirrored.
    #[cfg(feature = "store")]
    pub fn store(mut self, store: Arc<dyn ObjectStore>, prefix: &str, mode: SyncMode) -> Self {
        self.store = Some(StoreSpec {
            store,
            prefix: prefix.to_string(),
            mode,
            prefetch: false,
            poll: None,
            progress: None,
            defer_closes: false,
        });
        self
    }

    /// With a store under `SyncMode::OnClose`, for hosts that cannot run
    /// the group commit's thread (a component): closes are grouped all the
    /// same, with no thread. A burst's sync comes at the first close
    /// 50 ms after its start, at an fsync, at the end of the
    /// run, or at [`Volume::commit_pending`], which the host must call
    /// before it waits (on input, a timer, a poll), so a closed file never
    /// waits on an idle app.
    #[cfg(feature = "store")]
    pub fn defer_closes(mut self, on: bool) -> Self {
        if let Some(s) = &mut self.store {
            s.defer_closes = on;
        }
        self
    }

    /// With a store: every `every`, sync and then pick up what other
    /// writers changed in the store (applied while nothing here is
    /// waiting to be synced; see [`Mirror::poll`]). Needs threads.
    #[cfg(feature = "store")]
    pub fn poll(mut self, every: std::time::Duration) -> Self {
        if let Some(s) = &mut self.store {
            s.poll = Some(every);
        }
        self
    }

    /// With a store: called with (objects done, objects in all) while the
    /// store is listed at start-up, for progress bars.
    #[cfg(feature = "store")]
    pub fn on_restore_progress(mut self, f: impl Fn(u64, u64) + Send + Sync + 'static) -> Self {
        if let Some(s) = &mut self.store {
            s.progress = Some(Box::new(f));
        }
        self
    }

    /// With a store: fetch every restored file's contents in the
    /// background right after start-up, so later reads do not wait on
    /// the store (without it, a read fetches what it reaches). Needs
    /// threads.
    #[cfg(feature = "store")]
    pub fn prefetch(mut self, on: bool) -> Self {
        if let Some(s) = &mut self.store {
            s.prefetch = on;
        }
        self
    }

    pub fn build(self) -> Result<Arc<Volume>, BuildError> {
        let fs = Fs::new(self.config, self.clock).map_err(fs_err("/"))?;
        let root = fs
            .root(DF::READ | DF::MUTATE_DIRECTORY)
            .map_err(fs_err("/"))?;
        // Subtrees left out of the mirror.
        let mut excluded = Vec::new();
        let lazy_image = self.image.is_some();
        if let Some(b) = &self.image {
            image::load_lazy(&root, b.source.clone(), false).map_err(BuildError::Image)?;
            for path in &b.read_only {
                root.open_at(PF::empty(), rel(path), Default::default(), DF::READ)
                    .map_err(fs_err(path))?
                    .set_read_only_recursive();
                excluded.push(path.clone());
            }
        }
        #[cfg(feature = "host")]
        {
            let mut progress = self.progress;
            for m in &self.mounts {
                mount::copy_in(&root, m, self.by_reference, &mut progress)?;
                if m.read_only {
                    excluded.push(m.guest.clone());
                }
            }
        }
        #[cfg(feature = "store")]
        let mirror = match &self.store {
            Some(s) => {
                let mirror = excluded
                    .iter()
                    .fold(Mirror::new(s.store.clone(), &s.prefix), |m, path| {
                        m.exclude(path)
                    });
                mirror
                    .restore_into(&fs, s.progress.as_deref().unwrap_or(&|_, _| {}))
                    .map_err(BuildError::Restore)?;
                Some(Arc::new(mirror))
            }
            None => None,
        };
        #[cfg(not(feature = "store"))]
        let _ = excluded;
        let mut preopens = self.preopens;
        if preopens.is_empty() {
            preopens.push(Preopen {
                name: "/".into(),
                path: "/".into(),
                read_only: false,
            });
        }
        for p in &preopens {
            root.stat_at(PF::SYMLINK_FOLLOW, rel(&p.path))
                .map_err(fs_err(&p.path))?;
        }
        #[cfg(feature = "store")]
        let committer = Arc::new(group::Committer::default());
        #[cfg(feature = "store")]
        if let (Some(m), Some(spec)) = (&mirror, &self.store) {
            fs.set_sync_hook(Arc::new(group::GroupCommit {
                inner: MirrorHook::new(m.clone(), spec.mode),
                committer: committer.clone(),
                grouped: spec.mode == SyncMode::OnClose,
                deferred: spec.defer_closes,
            }));
        }
        let volume = Arc::new(Volume {
            fs,
            preopens,
            lazy_image,
            #[cfg(feature = "store")]
            mirror,
            #[cfg(feature = "store")]
            committer,
            #[cfg(feature = "store")]
            mode: self.store.as_ref().map(|s| s.mode),
        });
        #[cfg(feature = "store")]
        if let Some(spec) = self.store {
            background::start(&volume, &spec);
        }
        Ok(volume)
    }
}

fn fs_err(guest: &str) -> impl Fn(ErrorCode) -> BuildError + '_ {
    move |code| BuildError::Fs {
        guest: guest.to_string(),
        code,
    }
}

/// Guest paths are absolute; fs-core resolves from the root.
fn rel(path: &str) -> &str {
    match path.trim_start_matches('/') {
        "" => ".",
        p => p,
    }
}

/// A filesystem as assembled, shared by everything that serves it.
pub struct Volume {
    fs: Fs,
    preopens: Vec<Preopen>,
    /// Files' bytes still come from the image source when first read.
    lazy_image: bool,
    #[cfg(feature = "store")]
    mirror: Option<Arc<Mirror>>,
    /// The closes waiting for a sync (see `group`).
    #[cfg(feature = "store")]
    committer: Arc<group::Committer>,
    /// When changes go to the store, with one.
    #[cfg(feature = "store")]
    mode: Option<SyncMode>,
}

impl Volume {
    pub fn fs(&self) -> &Fs {
        &self.fs
    }

    pub fn preopens(&self) -> &[Preopen] {
        &self.preopens
    }

    /// Whether a call on the filesystem may wait on something slower than
    /// memory: a store it mirrors to or restores from, or a lazily read
    /// image. Async hosts run such calls off their executor.
    pub fn may_wait(&self) -> bool {
        #[cfg(feature = "store")]
        if self.mirror.is_some() {
            return true;
        }
        self.lazy_image
    }

    /// Whether a call that changes the tree (a write, a create, the last
    /// close of a written file) may wait on the store before it returns:
    /// under write-through each change is a sync, and a close syncs in
    /// its call where no group commit runs. Reads that may fetch are the
    /// descriptor's to say (`Descriptor::may_fetch`); fsync always may.
    pub fn changes_may_wait(&self) -> bool {
        #[cfg(feature = "store")]
        if self.mirror.is_some() {
            return match self.mode {
                Some(SyncMode::WriteThrough) => true,
                Some(SyncMode::OnClose) => !self.committer.working(),
                _ => false,
            };
        }
        false
    }

    /// Fresh descriptors for the preopens, named (read-only ones without
    /// `mutate-directory`).
    pub fn open_preopens(&self) -> Result<Vec<(Descriptor, String)>, ErrorCode> {
        self.preopens
            .iter()
            .map(|p| {
                let flags = match p.read_only {
                    true => DF::READ,
                    false => DF::READ | DF::MUTATE_DIRECTORY,
                };
                let d = match p.path.trim_start_matches('/') {
                    "" => self.fs.root(flags)?,
                    rel => self.fs.preopen(rel, flags)?,
                };
                Ok((d, p.name.clone()))
            })
            .collect()
    }

    /// Sends every change to the store (if there is one) and brings its
    /// index up to date (see [`Mirror::settle`]); returns once it is
    /// durable there. `larder run`, `larder serve` and the adapter call
    /// this at exit.
    #[cfg(feature = "store")]
    pub fn sync(&self) -> Result<Report, SyncError> {
        match &self.mirror {
            Some(m) => m.settle(&self.fs),
            None => Ok(Report::default()),
        }
    }

    /// Syncs the closes grouped and waiting (see
    /// [`VolumeBuilder::defer_closes`]); errors are logged and the changes
    /// stay queued, as at a close.
    #[cfg(feature = "store")]
    pub fn commit_pending(&self) {
        if let (true, Some(m)) = (self.committer.take(), &self.mirror) {
            m.sync_in_background(&self.fs);
        }
    }

    /// The mirror, for its status (conflicts, the last error).
    #[cfg(feature = "store")]
    pub fn mirror(&self) -> Option<&Arc<Mirror>> {
        self.mirror.as_ref()
    }
}

/// The store's background work: periodic syncs, polls, the prefetch. Each
/// runs on a thread of its own while the volume lives; where threads
/// cannot be made (a component today) it is logged and left out.
#[cfg(feature = "store")]
mod background {
    use super::{StoreSpec, SyncMode, Volume};
    use std::sync::{Arc, Weak};
    use std::time::Duration;

    pub(super) fn start(volume: &Arc<Volume>, spec: &StoreSpec) {
        if spec.mode == SyncMode::OnClose && !spec.defer_closes {
            super::group::start(volume, &volume.committer);
        }
        if let SyncMode::Periodic(every) = spec.mode {
            every_while_alive(volume, every, "periodic sync", |v| {
                let _ = v.sync();
            });
        }
        if let Some(every) = spec.poll {
            every_while_alive(volume, every, "poll", |v| {
                if v.sync().is_ok() {
                    if let Some(m) = &v.mirror {
                        let _ = m
                            .poll(&v.fs)
                            .map_err(|e| tracing::warn!(error = %e, "poll failed"));
                    }
                }
            });
        }
        if spec.prefetch {
            let weak = Arc::downgrade(volume);
            spawn("prefetch", move || {
                if let Some(v) = weak.upgrade() {
                    if let Some(Err(e)) = v.mirror.as_ref().map(|m| m.prefetch(&v.fs)) {
                        tracing::warn!(error = %e, "prefetch stopped; reads fetch what they need");
                    }
                }
            });
        }
    }

    /// Runs `round` every `every` while the volume lives (the mirror logs
    /// errors; the next round retries).
    fn every_while_alive(
        volume: &Arc<Volume>,
        every: Duration,
        what: &str,
        round: impl Fn(&Volume) + Send + 'static,
    ) {
        let volume: Weak<Volume> = Arc::downgrade(volume);
        spawn(what, move || loop {
            std::thread::sleep(every);
            match volume.upgrade() {
                Some(v) => round(&v),
                None => return,
            }
        });
    }

    fn spawn(what: &str, f: impl FnOnce() + Send + 'static) {
        if let Err(e) = std::thread::Builder::new().name(what.into()).spawn(f) {
            tracing::warn!(error = %e, "no {what}: cannot start a thread");
        }
    }
}
