//! The filesystem, built on first use by larder-volume from the bundle the
//! adapter was composed with: its image (loaded lazily), read-only mounts
//! and preopens, and in the persistent builds the store.

use crate::larder::vfs::bundle;
use fs_core::image::ImageSource;
use fs_core::{Descriptor, Timestamp};
use larder_volume::{Volume, VolumeBuilder};
use std::sync::{Arc, OnceLock};

pub struct State {
    /// Keeps the filesystem alive (the preopens hold its root); the
    /// persistent builds sync it at exit.
    #[cfg_attr(
        not(any(feature = "persist", feature = "persist-s3")),
        allow(dead_code)
    )]
    volume: Arc<Volume>,
    pub preopens: Vec<(Descriptor, String)>,
}

struct WallClock;

impl fs_core::Clock for WallClock {
    fn now(&self) -> Timestamp {
        let t = crate::wasi::clocks0_2_12::wall_clock::now();
        // The host keeps nanoseconds below 10^9; the struct is built
        // directly so a misbehaving host cannot make this fail.
        Timestamp {
            seconds: t.seconds,
            nanoseconds: t.nanoseconds.min(999_999_999),
        }
    }
}

/// The bundled image, read from the bundle component piece by piece.
struct Bundle {
    len: u64,
}

/// Largest piece asked of the bundle at once (it copies through its memory).
const PIECE: usize = 1 << 20;

impl ImageSource for Bundle {
    fn size(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> fs_core::Result<()> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|e| e > self.len)
        {
            return Err(fs_core::ErrorCode::Io);
        }
        for (i, chunk) in buf.chunks_mut(PIECE).enumerate() {
            let at = offset + (i * PIECE) as u64;
            let bytes = bundle::read_image(at, chunk.len() as u32);
            if bytes.len() != chunk.len() {
                return Err(fs_core::ErrorCode::Io);
            }
            chunk.copy_from_slice(&bytes);
        }
        Ok(())
    }
}

static STATE: OnceLock<State> = OnceLock::new();

pub fn get() -> &'static State {
    STATE.get_or_init(|| match build() {
        Ok(s) => s,
        // The bundle is made by `larder compose`, not by the app: a broken
        // one is a broken build, reported as loudly as wasm allows. So is a
        // store that cannot be read: starting empty would hide the files.
        Err(e) => panic!("larder: {e}"),
    })
}

/// The volume if the app has touched a file (the last sync has nothing to
/// do before that).
#[cfg(any(feature = "persist", feature = "persist-s3"))]
pub fn built() -> Option<&'static Volume> {
    STATE.get().map(|s| &*s.volume)
}

/// The bundle's image and preopens, with the store (persistent builds)
/// layered over the image; the limits are a component's
/// (larder_volume::default_config).
fn build() -> Result<State, String> {
    let mut builder = VolumeBuilder::with_clock(Arc::new(WallClock));
    let len = bundle::image_size();
    if len > 0 {
        builder = builder.image(Arc::new(Bundle { len }), bundle::read_only());
    }
    #[cfg(any(feature = "persist", feature = "persist-s3"))]
    {
        let (store, prefix) = crate::persist::store()
            .map_err(|e| format!("cannot restore the app's files from the store: {e}"))?;
        // No thread here for the group commit: closes wait for a burst's
        // end, an fsync, or the app about to wait (io::before_blocking).
        builder = builder
            .store(store, &prefix, larder_volume::SyncMode::OnClose)
            .defer_closes(true);
    }
    for p in bundle::preopens() {
        builder = builder.preopen(p.name, p.path, p.read_only);
    }
    let volume = builder.build().map_err(|e| match e {
        #[cfg(any(feature = "persist", feature = "persist-s3"))]
        larder_volume::BuildError::Restore(e) => {
            format!("cannot restore the app's files from the store: {e}")
        }
        e => e.to_string(),
    })?;
    let preopens = volume
        .open_preopens()
        .map_err(|e| format!("preopens: {e}"))?;
    Ok(State { volume, preopens })
}
