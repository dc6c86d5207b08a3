//! Larder's extension: the `*-at` path operations of wasi:filesystem,
//! resolved by fs-core on the server exactly as a local adapter would.

use super::connection::Session;
use super::convert::*;
use super::fid::Fid;
use super::{errno, Res};
use crate::wire::{R, T};
use fs_core::{DescriptorFlags, DescriptorType, ErrorCode, OpenFlags};
use std::sync::Arc;

impl Session<'_> {
    /// Larder's extension messages: WASI's operations, one fs-core call each.
    pub(super) fn extension(&mut self, t: T) -> Res<R> {
        let e = errno;
        Ok(match t {
            T::OpenAt {
                dfid,
                newfid,
                path_flags: pf,
                path,
                open_flags,
                flags,
            } => {
                self.check_new(newfid)?;
                let dir = self.fid(dfid)?.dir()?;
                let d = dir
                    .open_at(
                        path_flags(pf),
                        &path,
                        OpenFlags::from_bits_truncate(open_flags),
                        DescriptorFlags::from_bits_truncate(flags),
                    )
                    .map_err(e)?;
                let a = attr(&d.stat());
                let d = Arc::new(d);
                // Where standard messages on this fid act: a directory is
                // its own base; a file is `path` in the directory it was
                // opened from (not `.`, which is that directory).
                let (base, at) = if d.get_type() == DescriptorType::Directory {
                    (d.clone(), ".".to_owned())
                } else {
                    (dir, path)
                };
                let fid = Fid {
                    desc: Some(d),
                    ..Fid::at(base, at)
                };
                self.fids.insert(newfid, fid);
                R::OpenAt { attr: a }
            }
            T::StatAt {
                dfid,
                path_flags: pf,
                path,
            } => R::StatAt {
                attr: attr(
                    &self
                        .fid(dfid)?
                        .dir()?
                        .stat_at(path_flags(pf), &path)
                        .map_err(e)?,
                ),
            },
            T::MkdirAt { dfid, path } => {
                self.fid(dfid)?
                    .dir()?
                    .create_directory_at(&path)
                    .map_err(e)?;
                R::MkdirAt {}
            }
            T::UnlinkAt { dfid, path } => {
                self.fid(dfid)?.dir()?.unlink_file_at(&path).map_err(e)?;
                R::UnlinkAt {}
            }
            T::RmdirAt { dfid, path } => {
                self.fid(dfid)?
                    .dir()?
                    .remove_directory_at(&path)
                    .map_err(e)?;
                R::RmdirAt {}
            }
            T::RenameAt {
                olddfid,
                oldpath,
                newdfid,
                newpath,
            } => {
                let new = self.fid(newdfid)?.dir()?;
                self.fid(olddfid)?
                    .dir()?
                    .rename_at(&oldpath, &new, &newpath)
                    .map_err(e)?;
                R::RenameAt {}
            }
            T::LinkAt {
                olddfid,
                path_flags: pf,
                oldpath,
                newdfid,
                newpath,
            } => {
                let new = self.fid(newdfid)?.dir()?;
                self.fid(olddfid)?
                    .dir()?
                    .link_at(path_flags(pf), &oldpath, &new, &newpath)
                    .map_err(e)?;
                R::LinkAt {}
            }
            T::SymlinkAt { dfid, target, path } => {
                self.fid(dfid)?
                    .dir()?
                    .symlink_at(&target, &path)
                    .map_err(e)?;
                R::SymlinkAt {}
            }
            T::ReadlinkAt { dfid, path } => R::ReadlinkAt {
                target: self.fid(dfid)?.dir()?.readlink_at(&path).map_err(e)?,
            },
            T::SetTimesAt {
                dfid,
                path_flags: pf,
                path,
                atime,
                mtime,
            } => {
                self.fid(dfid)?
                    .dir()?
                    .set_times_at(path_flags(pf), &path, new_time(atime)?, new_time(mtime)?)
                    .map_err(e)?;
                R::SetTimesAt {}
            }
            T::HashAt {
                dfid,
                path_flags: pf,
                path,
            } => {
                let h = self
                    .fid(dfid)?
                    .dir()?
                    .metadata_hash_at(path_flags(pf), &path)
                    .map_err(e)?;
                R::HashAt { hash: hash(h) }
            }
            T::HashFid { fid } => {
                let h = self.fid(fid)?.opened()?.metadata_hash();
                R::HashFid { hash: hash(h) }
            }
            T::Append { fid, data } => {
                let (offset, n) = self.fid(fid)?.opened()?.append(&data.0).map_err(e)?;
                R::Append {
                    offset,
                    count: n as u32,
                }
            }
            T::SetTimes { fid, atime, mtime } => {
                self.fid(fid)?
                    .opened()?
                    .set_times(new_time(atime)?, new_time(mtime)?)
                    .map_err(e)?;
                R::SetTimes {}
            }
            // Every standard request is handled in `dispatch`.
            _ => return Err(errno(ErrorCode::Unsupported)),
        })
    }
}
