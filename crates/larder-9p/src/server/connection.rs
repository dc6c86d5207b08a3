//! One connection's session: version and attach, and each request
//! dispatched to the standard messages or Larder's extension.

use super::convert::*;
use super::fid::Fid;
use super::{errno, ConnError, Res, Server, EILSEQ, MIN_MSIZE};
use crate::wire::{self, DecodeError, R, T};
use fs_core::{Descriptor, DescriptorFlags, DescriptorType, ErrorCode, PathFlags};
use std::collections::HashMap;
use std::sync::Arc;

pub(super) struct Session<'a> {
    pub server: &'a Server,
    pub msize: u32,
    pub root: Arc<Descriptor>,
    pub fids: HashMap<u32, Fid>,
    pub uid: u32,
}

impl<'a> Session<'a> {
    pub fn new(server: &'a Server) -> Result<Self, ConnError> {
        let root = server
            .fs
            .root(DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY)?;
        Ok(Session {
            server,
            msize: server.config.max_msize,
            root: Arc::new(root),
            fids: HashMap::new(),
            uid: 0,
        })
    }

    /// Decodes and answers one frame; `Err` means close the connection.
    pub fn handle(&mut self, frame: &[u8]) -> Result<(u16, R), DecodeError> {
        let tag = wire::peek(frame).map_or(wire::NOTAG, |(_, tag)| tag);
        match wire::decode_t(frame) {
            Ok((tag, t)) => {
                let reply = self.dispatch(t).unwrap_or_else(|ecode| R::Lerror { ecode });
                Ok((tag, reply))
            }
            Err(DecodeError::NotUtf8) => Ok((tag, R::Lerror { ecode: EILSEQ })),
            Err(DecodeError::UnknownType(_)) => Ok((
                tag,
                R::Lerror {
                    ecode: errno(ErrorCode::Unsupported),
                },
            )),
            Err(e) => Err(e),
        }
    }

    pub fn iounit(&self) -> u32 {
        self.msize - wire::IO_HEADER
    }

    fn dispatch(&mut self, t: T) -> Res<R> {
        match t {
            T::Version { msize, version } => Ok(self.version(msize, &version)),
            // ENOENT is how 9P2000.L servers say "attach without auth".
            T::Auth { .. } => Err(errno(ErrorCode::NoEntry)),
            T::Attach {
                fid,
                aname,
                n_uname,
                ..
            } => self.attach(fid, &aname, n_uname),
            T::Flush { .. } => Ok(R::Flush {}),
            T::Walk { fid, newfid, names } => self.walk(fid, newfid, names.0),
            T::Lopen { fid, flags } => self.lopen(fid, flags),
            T::Lcreate {
                fid,
                name,
                flags,
                mode,
                gid,
            } => self.lcreate(fid, &name, flags, mode, gid),
            T::Read { fid, offset, count } => {
                let f = self.fid(fid)?;
                let d = f.opened()?;
                let count = count.min(self.iounit()) as usize;
                let mut data = Vec::with_capacity(count);
                d.read_append(&mut data, count, offset).map_err(errno)?;
                Ok(R::Read {
                    data: wire::Data(data),
                })
            }
            T::Write { fid, offset, data } => {
                let f = self.fid(fid)?;
                let d = f.opened()?;
                let n = if f.append {
                    d.append(&data.0).map_err(errno)?.1
                } else {
                    d.write(&data.0, offset).map_err(errno)?
                };
                Ok(R::Write { count: n as u32 })
            }
            T::Clunk { fid } => {
                self.fids
                    .remove(&fid)
                    .ok_or(errno(ErrorCode::BadDescriptor))?;
                Ok(R::Clunk {})
            }
            T::Remove { fid } => {
                // The fid goes whether or not the remove succeeds.
                let f = self
                    .fids
                    .remove(&fid)
                    .ok_or(errno(ErrorCode::BadDescriptor))?;
                let s = f.stat()?;
                if s.kind == DescriptorType::Directory {
                    f.base.remove_directory_at(&f.path)
                } else {
                    f.base.unlink_file_at(&f.path)
                }
                .map_err(errno)?;
                Ok(R::Remove {})
            }
            T::Getattr { fid, .. } => Ok(R::Getattr {
                attr: attr(&self.fid(fid)?.stat()?),
            }),
            T::Setattr { fid, attr } => self.setattr(fid, attr),
            T::Readdir { fid, offset, count } => self.readdir(fid, offset, count),
            T::Fsync { fid, datasync } => {
                let d = self.fid(fid)?.opened()?;
                if datasync.0 != 0 {
                    d.sync_data()
                } else {
                    d.sync()
                }
                .map_err(errno)?;
                Ok(R::Fsync {})
            }
            T::Statfs { fid } => {
                self.fid(fid)?;
                Ok(self.statfs())
            }
            T::Readlink { fid } => {
                let f = self.fid(fid)?;
                let target = f.base.readlink_at(&f.path).map_err(errno)?;
                Ok(R::Readlink { target })
            }
            T::Symlink {
                fid, name, target, ..
            } => {
                let f = self.fid(fid)?;
                let path = f.child(&name)?;
                // A Linux client's link: any target, as on Linux.
                f.base.symlink_any_at(&target, &path).map_err(errno)?;
                let s = f.base.stat_at(PathFlags::empty(), &path).map_err(errno)?;
                Ok(R::Symlink { qid: qid(&s) })
            }
            T::Mkdir {
                dfid,
                name,
                mode,
                gid,
            } => {
                let f = self.fid(dfid)?;
                let path = f.child(&name)?;
                f.base.create_directory_at(&path).map_err(errno)?;
                f.base
                    .set_mode_at(PathFlags::empty(), &path, mode, self.uid, gid)
                    .map_err(errno)?;
                let s = f.base.stat_at(PathFlags::empty(), &path).map_err(errno)?;
                Ok(R::Mkdir { qid: qid(&s) })
            }
            T::Mknod { .. } => Err(errno(ErrorCode::Unsupported)),
            T::Rename { fid, dfid, name } => {
                let (d_base, new_path) = {
                    let d = self.fid(dfid)?;
                    (d.base.clone(), d.child(&name)?)
                };
                let f = self.fid_mut(fid)?;
                f.base
                    .rename_at(&f.path, &d_base, &new_path)
                    .map_err(errno)?;
                f.base = d_base;
                f.path = new_path;
                Ok(R::Rename {})
            }
            T::Renameat {
                olddfid,
                oldname,
                newdfid,
                newname,
            } => {
                let old = self.fid(olddfid)?;
                let new = self.fid(newdfid)?;
                old.base
                    .rename_at(&old.child(&oldname)?, &new.base, &new.child(&newname)?)
                    .map_err(errno)?;
                Ok(R::Renameat {})
            }
            T::Unlinkat { dfid, name, flags } => {
                let d = self.fid(dfid)?;
                let path = d.child(&name)?;
                if flags & wire::AT_REMOVEDIR != 0 {
                    d.base.remove_directory_at(&path)
                } else {
                    d.base.unlink_file_at(&path)
                }
                .map_err(errno)?;
                Ok(R::Unlinkat {})
            }
            T::Link { dfid, fid, name } => {
                let d = self.fid(dfid)?;
                let f = self.fid(fid)?;
                f.base
                    .link_at(PathFlags::empty(), &f.path, &d.base, &d.child(&name)?)
                    .map_err(errno)?;
                Ok(R::Link {})
            }
            // No extended attributes or byte-range locks in fs-core.
            T::Xattrwalk { .. } | T::Xattrcreate { .. } | T::Lock { .. } | T::Getlock { .. } => {
                Err(errno(ErrorCode::Unsupported))
            }
            t => self.extension(t),
        }
    }

    fn version(&mut self, msize: u32, version: &str) -> R {
        // A new version starts a new session: every fid goes.
        self.fids.clear();
        if version != wire::VERSION || msize < MIN_MSIZE {
            return R::Version {
                msize: self.server.config.max_msize.min(msize),
                version: "unknown".into(),
            };
        }
        self.msize = msize.min(self.server.config.max_msize);
        R::Version {
            msize: self.msize,
            version: wire::VERSION.into(),
        }
    }

    fn attach(&mut self, fid: u32, aname: &str, n_uname: u32) -> Res<R> {
        if let Some(secret) = &self.server.config.secret {
            if !same_secret(secret.as_bytes(), aname.as_bytes()) {
                return Err(errno(ErrorCode::Access));
            }
        }
        self.check_new(fid)?;
        if n_uname != wire::NOFID {
            self.uid = n_uname;
        }
        let f = Fid {
            desc: Some(self.root.clone()),
            ..Fid::at(self.root.clone(), ".".into())
        };
        let q = qid(&self.root.stat());
        self.fids.insert(fid, f);
        Ok(R::Attach { qid: q })
    }
}

/// Compares without stopping at the first difference, so the time taken
/// says nothing about how much of a guess was right.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() != b.len()) as u8;
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}
