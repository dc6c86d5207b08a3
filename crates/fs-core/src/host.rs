//! Copying a host directory into the filesystem (std only): what bundling
//! and host mounts are built on. Keeps permission bits, owners, access and
//! modification times, symlinks (targets verbatim), hard links (as links)
//! and holes (all-zero chunks are not stored).

use crate::error::ErrorCode;
use crate::image::ImageSource;
use crate::time::{NewTimestamp, Timestamp};
use crate::{Descriptor, DescriptorFlags as DF, OpenFlags as OF, PathFlags as PF};
use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What an import brought in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hard_links: u64,
    pub bytes: u64,
    /// Sockets, FIFOs and devices, which a WASI filesystem cannot hold.
    pub skipped: u64,
}

/// An import failure, naming the host path.
#[derive(Debug)]
pub struct ImportError {
    pub path: PathBuf,
    pub cause: ImportCause,
}

#[derive(Debug)]
pub enum ImportCause {
    Io(std::io::Error),
    Fs(ErrorCode),
    /// WASI paths are strings; this name or target is not UTF-8.
    NotUtf8,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.path.display();
        match &self.cause {
            ImportCause::Io(e) => write!(f, "{p}: {e}"),
            ImportCause::Fs(e) => write!(f, "{p}: cannot store it: {e}"),
            ImportCause::NotUtf8 => write!(f, "{p}: name or symlink target is not UTF-8"),
        }
    }
}

impl std::error::Error for ImportError {}

/// A host file's bytes where they are, for a file imported by reference.
/// Reopened for each read, so a large tree holds no descriptors open.
struct HostFile {
    path: PathBuf,
    size: u64,
}

impl ImageSource for HostFile {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> crate::Result<()> {
        let f = std::fs::File::open(&self.path).map_err(|_| ErrorCode::Io)?;
        f.read_exact_at(buf, offset).map_err(|_| ErrorCode::Io)
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ImportError + '_ {
    move |e| ImportError {
        path: path.to_owned(),
        cause: ImportCause::Io(e),
    }
}

fn fs_err(path: &Path) -> impl FnOnce(ErrorCode) -> ImportError + '_ {
    move |e| ImportError {
        path: path.to_owned(),
        cause: ImportCause::Fs(e),
    }
}

fn host_time(secs: i64, nsecs: i64) -> NewTimestamp {
    // WASI timestamps cannot be before 1970; clamp rather than fail.
    NewTimestamp::Timestamp(Timestamp {
        seconds: secs.max(0) as u64,
        nanoseconds: nsecs.clamp(0, 999_999_999) as u32,
    })
}

struct Importer<'a> {
    dir: &'a Descriptor,
    /// Leave file contents on the host (see [`reference_dir_with_progress`]).
    by_reference: bool,
    stats: ImportStats,
    /// Told the byte count of each piece of file content copied.
    progress: &'a mut dyn FnMut(u64),
    /// (device, inode) of multiply-linked host files -> first guest path.
    links: HashMap<(u64, u64), String>,
}

/// Copies the contents of host directory `from` into the directory `dir`
/// (which keeps its own identity but takes `from`'s mode and times).
pub fn import_dir(dir: &Descriptor, from: &Path) -> Result<ImportStats, ImportError> {
    import_dir_with_progress(dir, from, &mut |_| {})
}

/// [`import_dir`], calling `progress` with the size of each piece of file
/// content as it is copied (for progress bars on large trees).
pub fn import_dir_with_progress(
    dir: &Descriptor,
    from: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<ImportStats, ImportError> {
    import(dir, from, progress, false)
}

/// [`import_dir_with_progress`], except that file contents stay on the
/// host: each file is read once now (for its holes and checksum) and again
/// whenever its bytes are used, checked against that checksum, so a host
/// file changed since reads as an `io` error, never as other bytes. For
/// staging a tree that is written out straight away ([`crate::image::plan`]
/// copies such files a chunk at a time), not for a filesystem an app uses.
pub fn reference_dir_with_progress(
    dir: &Descriptor,
    from: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<ImportStats, ImportError> {
    import(dir, from, progress, true)
}

fn import(
    dir: &Descriptor,
    from: &Path,
    progress: &mut dyn FnMut(u64),
    by_reference: bool,
) -> Result<ImportStats, ImportError> {
    let meta = std::fs::metadata(from).map_err(io_err(from))?;
    if !meta.is_dir() {
        return Err(ImportError {
            path: from.to_owned(),
            cause: ImportCause::Fs(ErrorCode::NotDirectory),
        });
    }
    let mut imp = Importer {
        dir,
        by_reference,
        stats: ImportStats::default(),
        progress,
        links: HashMap::new(),
    };
    imp.walk(from, "")?;
    imp.finish_node(from, ".", &meta)?;
    Ok(imp.stats)
}

impl Importer<'_> {
    fn walk(&mut self, host: &Path, guest: &str) -> Result<(), ImportError> {
        let mut entries: Vec<_> = std::fs::read_dir(host)
            .map_err(io_err(host))?
            .collect::<Result<_, _>>()
            .map_err(io_err(host))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let hpath = entry.path();
            let name = entry.file_name().into_string().map_err(|_| ImportError {
                path: hpath.clone(),
                cause: ImportCause::NotUtf8,
            })?;
            let gpath = if guest.is_empty() {
                name
            } else {
                format!("{guest}/{name}")
            };
            let meta = std::fs::symlink_metadata(&hpath).map_err(io_err(&hpath))?;
            let ft = meta.file_type();
            if ft.is_dir() {
                self.dir
                    .create_directory_at(&gpath)
                    .map_err(fs_err(&hpath))?;
                self.walk(&hpath, &gpath)?;
                self.stats.dirs += 1;
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&hpath).map_err(io_err(&hpath))?;
                let target = target.to_str().ok_or(ImportError {
                    path: hpath.clone(),
                    cause: ImportCause::NotUtf8,
                })?;
                self.dir
                    .symlink_any_at(target, &gpath)
                    .map_err(fs_err(&hpath))?;
                self.stats.symlinks += 1;
            } else if ft.is_file() {
                if meta.nlink() > 1 {
                    if let Some(first) = self.links.get(&(meta.dev(), meta.ino())) {
                        self.dir
                            .link_at(PF::empty(), first, self.dir, &gpath)
                            .map_err(fs_err(&hpath))?;
                        self.stats.hard_links += 1;
                        continue;
                    }
                    self.links.insert((meta.dev(), meta.ino()), gpath.clone());
                }
                self.copy_file(&hpath, &gpath)?;
                self.stats.files += 1;
            } else {
                self.stats.skipped += 1;
                continue;
            }
            self.finish_node(&hpath, &gpath, &meta)?;
        }
        Ok(())
    }

    fn copy_file(&mut self, host: &Path, guest: &str) -> Result<(), ImportError> {
        let src = std::fs::File::open(host).map_err(io_err(host))?;
        let dst = self
            .dir
            .open_at(PF::empty(), guest, OF::CREATE | OF::EXCLUSIVE, DF::WRITE)
            .map_err(fs_err(host))?;
        let size = if self.by_reference {
            let mut extents: Vec<(u64, u64, u64)> = Vec::new();
            let mut crc = crc32fast::Hasher::new();
            let size = self.read_runs(src, host, |off, run| {
                crc.update(run);
                let len = run.len() as u64;
                match extents.last_mut() {
                    Some(last) if last.0 + last.2 == off => last.2 += len,
                    _ => extents.push((off, off, len)),
                }
                Ok(())
            })?;
            let source = Arc::new(HostFile {
                path: host.to_owned(),
                size,
            });
            dst.set_checked_source(source, size, extents, crc.finalize())
                .map_err(fs_err(host))?;
            size
        } else {
            let size = self.read_runs(src, host, |off, run| {
                let mut done = 0;
                while done < run.len() {
                    done += dst
                        .write(&run[done..], off + done as u64)
                        .map_err(fs_err(host))?;
                }
                Ok(())
            })?;
            dst.set_size(size).map_err(fs_err(host))?;
            size
        };
        self.stats.bytes += size;
        Ok(())
    }

    /// Reads `src` to its end, giving `run(offset, bytes)` each run of it
    /// that is not all-zero 4 KiB pieces (those stay holes); returns the
    /// size read.
    fn read_runs(
        &mut self,
        mut src: std::fs::File,
        host: &Path,
        mut run: impl FnMut(u64, &[u8]) -> Result<(), ImportError>,
    ) -> Result<u64, ImportError> {
        let mut buf = vec![0u8; 1 << 20];
        let mut off = 0u64;
        loop {
            let n = src.read(&mut buf).map_err(io_err(host))?;
            if n == 0 {
                return Ok(off);
            }
            let data = &buf[..n];
            let mut piece = 0;
            while piece < n {
                let end = (piece + 4096).min(n);
                if data[piece..end].iter().all(|&b| b == 0) {
                    piece = end;
                    continue;
                }
                let mut run_end = end;
                while run_end < n
                    && data[run_end..(run_end + 4096).min(n)]
                        .iter()
                        .any(|&b| b != 0)
                {
                    run_end = (run_end + 4096).min(n);
                }
                run(off + piece as u64, &data[piece..run_end])?;
                piece = run_end;
            }
            off += n as u64;
            (self.progress)(n as u64);
        }
    }

    /// Mode, owner and times, set last so adding children does not move a
    /// directory's mtime afterwards.
    fn finish_node(
        &self,
        host: &Path,
        guest: &str,
        meta: &std::fs::Metadata,
    ) -> Result<(), ImportError> {
        let inode = self
            .dir
            .resolve_inode(PF::empty(), guest)
            .map_err(fs_err(host))?;
        {
            let mut state = inode.state.write();
            state.meta.mode = meta.mode() & 0o7777;
            state.meta.uid = meta.uid();
            state.meta.gid = meta.gid();
        }
        crate::descriptor::set_times(
            &self.dir.shared,
            &inode,
            host_time(meta.atime(), meta.atime_nsec()),
            host_time(meta.mtime(), meta.mtime_nsec()),
        )
        .map_err(fs_err(host))
    }
}
