//! The fid table: what each fid of a connection names, and the limits on
//! how many one connection may hold.

use super::connection::Session;
use super::{errno, Res};
use crate::wire::{self, DirEntry};
use fs_core::{Descriptor, DescriptorFlags, DescriptorType, ErrorCode, OpenFlags, PathFlags, Stat};
use std::sync::Arc;

/// One fid: a place in the tree, and what was opened there.
pub(super) struct Fid {
    /// The directory `path` is resolved from: the root, or a directory the
    /// extension opened (whose sandbox rules then apply).
    pub base: Arc<Descriptor>,
    /// Relative to `base`; `.` for `base` itself.
    pub path: String,
    /// The open descriptor (`Tlopen`, `Tlcreate`, `OpenAt`).
    pub desc: Option<Arc<Descriptor>>,
    pub append: bool,
    /// The directory as `Treaddir` lists it, taken at offset 0.
    pub listing: Option<Vec<DirEntry>>,
}

impl Fid {
    pub fn at(base: Arc<Descriptor>, path: String) -> Fid {
        Fid {
            base,
            path,
            desc: None,
            append: false,
            listing: None,
        }
    }

    pub fn stat(&self) -> Res<Stat> {
        match &self.desc {
            Some(d) => Ok(d.stat()),
            None => self
                .base
                .stat_at(PathFlags::empty(), &self.path)
                .map_err(errno),
        }
    }

    pub fn opened(&self) -> Res<&Arc<Descriptor>> {
        self.desc.as_ref().ok_or(errno(ErrorCode::BadDescriptor))
    }

    /// `name` below this fid's path: one component, never empty or a path.
    pub fn child(&self, name: &str) -> Res<String> {
        if name.is_empty() || name.contains('/') || name.contains('\0') {
            return Err(errno(ErrorCode::Invalid));
        }
        Ok(if self.path == "." {
            name.to_owned()
        } else {
            format!("{}/{name}", self.path)
        })
    }

    /// Where walking `name` leads. `..` is taken off the path (the client
    /// resolved any symlinks on the way, as Linux's VFS does), and never
    /// leads above the attach point.
    pub fn walk(&self, name: &str) -> Res<String> {
        match name {
            "." => Ok(self.path.clone()),
            ".." => Ok(match self.path.rsplit_once('/') {
                Some((parent, _)) => parent.to_owned(),
                None => ".".to_owned(),
            }),
            _ => self.child(name),
        }
    }

    /// A directory descriptor for this fid, for the extension's `*-at`.
    pub fn dir(&self) -> Res<Arc<Descriptor>> {
        if let Some(d) = &self.desc {
            if d.get_type() == DescriptorType::Directory {
                return Ok(d.clone());
            }
            return Err(errno(ErrorCode::NotDirectory));
        }
        if self.path == "." {
            return Ok(self.base.clone());
        }
        self.base
            .open_at(
                PathFlags::empty(),
                &self.path,
                OpenFlags::DIRECTORY,
                DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY,
            )
            .map(Arc::new)
            .map_err(errno)
    }
}

impl Session<'_> {
    pub fn fid(&self, fid: u32) -> Res<&Fid> {
        self.fids.get(&fid).ok_or(errno(ErrorCode::BadDescriptor))
    }

    pub fn fid_mut(&mut self, fid: u32) -> Res<&mut Fid> {
        self.fids
            .get_mut(&fid)
            .ok_or(errno(ErrorCode::BadDescriptor))
    }

    /// Room for `newfid`: unused, and within the per-connection limit.
    pub fn check_new(&self, newfid: u32) -> Res<()> {
        if newfid == wire::NOFID || self.fids.contains_key(&newfid) {
            return Err(errno(ErrorCode::BadDescriptor));
        }
        if self.fids.len() >= self.server.config.max_fids {
            // EMFILE: this connection holds too many.
            return Err(24);
        }
        Ok(())
    }
}
