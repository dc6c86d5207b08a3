//! The shared filesystem every linked instance sees: a [`Volume`] (built
//! by larder-volume) and, for composed apps that keep their own files, the
//! store the host lends them.

use larder_volume::Volume;
use std::sync::Arc;

/// One filesystem shared by every instance that links it.
pub struct Vfs {
    volume: Arc<Volume>,
    lent: Option<crate::LentStore>,
}

impl Vfs {
    /// Serves `volume` (its preopens, to every instance).
    pub fn new(volume: Arc<Volume>) -> Vfs {
        Vfs { volume, lent: None }
    }

    /// Lends `store` (keys under `prefix`) to composed apps that keep their
    /// own files persistent (they import `larder:vfs/store`; see
    /// `larder compose --persist host`). Independent of the volume's own
    /// store, which mirrors this filesystem.
    pub fn lend_store(mut self, store: Arc<dyn larder_sync::ObjectStore>, prefix: &str) -> Vfs {
        self.lent = Some(crate::LentStore::new(store, prefix));
        self
    }

    /// The store lent to composed apps, if any.
    pub fn lent(&self) -> Option<&crate::LentStore> {
        self.lent.as_ref()
    }

    pub fn volume(&self) -> &Arc<Volume> {
        &self.volume
    }

    pub fn fs(&self) -> &fs_core::Fs {
        self.volume.fs()
    }
}
