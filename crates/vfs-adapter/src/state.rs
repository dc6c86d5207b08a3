//! The filesystem, built on first use from the bundle the adapter was
//! composed with: its image (loaded lazily), read-only mounts and preopens.

use crate::larder::vfs::bundle;
use fs_core::image::{self, ImageSource};
use fs_core::{Descriptor, DescriptorFlags, Fs, FsConfig, PathFlags, Timestamp};
use std::sync::{Arc, OnceLock};

pub struct State {
    /// Keeps the filesystem alive; preopens hold its root.
    _fs: Fs,
    pub preopens: Vec<(Descriptor, String)>,
}

struct WallClock;

impl fs_core::Clock for WallClock {
    fn now(&self) -> Timestamp {
        let t = crate::wasi::clocks::wall_clock::now();
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

fn build() -> Result<State, String> {
    let read_only = bundle::read_only();
    let fs = bundled(&read_only).map_err(|e| format!("cannot load the bundled filesystem: {e}"))?;
    #[cfg(any(feature = "persist", feature = "persist-s3"))]
    crate::persist::attach(&fs, &read_only)
        .map_err(|e| format!("cannot restore the app's files from the store: {e}"))?;
    let mut preopens = Vec::new();
    for p in bundle::preopens() {
        let flags = match p.read_only {
            true => DescriptorFlags::READ,
            false => DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY,
        };
        let d = fs
            .preopen(rel(&p.path), flags)
            .map_err(|e| format!("preopen {} ({}): {e}", p.name, p.path))?;
        preopens.push((d, p.name));
    }
    Ok(State { _fs: fs, preopens })
}

/// What the adapter's own memory can reach: a 32-bit address space. Its
/// limits are tmpfs's on that (2 GiB of file data, 524,288 inodes), so the
/// files leave room for everything else; a runtime that caps memory lower
/// gets `insufficient-memory` where the cap is hit, never a trap.
const INSTANCE_MEMORY: u64 = 4 << 30;

/// The filesystem as bundled: the image, its read-only mounts marked.
fn bundled(read_only: &[String]) -> Result<Fs, String> {
    let fs = Fs::new(FsConfig::for_memory(INSTANCE_MEMORY), Arc::new(WallClock))
        .map_err(|e| e.to_string())?;
    let rw = DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY;
    let len = bundle::image_size();
    if len > 0 {
        let root = fs.root(rw).map_err(|e| e.to_string())?;
        image::load_lazy(&root, Arc::new(Bundle { len }), false).map_err(|e| e.to_string())?;
        for path in read_only {
            root.open_at(
                PathFlags::empty(),
                rel(path),
                Default::default(),
                DescriptorFlags::READ,
            )
            .map_err(|e| format!("read-only mount {path}: {e}"))?
            .set_read_only_recursive();
        }
    }
    Ok(fs)
}

/// Guest paths in the bundle are absolute; fs-core resolves from the root.
fn rel(path: &str) -> &str {
    match path.trim_start_matches('/') {
        "" => ".",
        p => p,
    }
}
