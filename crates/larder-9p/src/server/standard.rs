//! The standard 9P2000.L messages: walk, open, create, attributes,
//! directory reads, I/O and the rest Linux's v9fs sends.

use super::connection::Session;
use super::convert::*;
use super::fid::Fid;
use super::{errno, Res, V9FS_MAGIC};
use crate::wire::{self, oflags, setattr, DirEntry, Qid, R};
use fs_core::{
    Descriptor, DescriptorFlags, DescriptorType, ErrorCode, NewTimestamp, OpenFlags, PathFlags,
    Timestamp,
};
use std::sync::Arc;

impl Session<'_> {
    pub(super) fn walk(&mut self, fid: u32, newfid: u32, names: Vec<String>) -> Res<R> {
        if newfid != fid {
            self.check_new(newfid)?;
        }
        let f = self.fid(fid)?;
        if names.is_empty() && newfid == fid {
            return Ok(R::Walk {
                qids: wire::Walked(Vec::new()),
            });
        }
        if names.is_empty() {
            let clone = Fid {
                desc: f.desc.clone().filter(|_| f.path == "."),
                ..Fid::at(f.base.clone(), f.path.clone())
            };
            self.fids.insert(newfid, clone);
            return Ok(R::Walk {
                qids: wire::Walked(Vec::new()),
            });
        }
        let mut qids = Vec::new();
        let mut at = Fid::at(f.base.clone(), f.path.clone());
        for (i, name) in names.iter().enumerate() {
            let stat = at.walk(name).and_then(|path| {
                at.path = path;
                at.base.stat_at(PathFlags::empty(), &at.path).map_err(errno)
            });
            match stat {
                Ok(s) => qids.push(qid(&s)),
                Err(e) if i == 0 => return Err(e),
                Err(_) => break,
            }
        }
        if qids.len() == names.len() {
            self.fids.insert(newfid, at);
        }
        Ok(R::Walk {
            qids: wire::Walked(qids),
        })
    }

    pub(super) fn lopen(&mut self, fid: u32, flags: u32) -> Res<R> {
        let iounit = self.iounit();
        let f = self.fid_mut(fid)?;
        if let Some(d) = &f.desc {
            // Already a descriptor (the root, or opened by the extension).
            return Ok(R::Lopen {
                qid: qid(&d.stat()),
                iounit,
            });
        }
        let s = f.stat()?;
        let d = if s.kind == DescriptorType::Directory {
            if flags & oflags::ACCMODE != oflags::RDONLY {
                return Err(errno(ErrorCode::IsDirectory));
            }
            f.base.open_at(
                PathFlags::empty(),
                &f.path,
                OpenFlags::DIRECTORY,
                DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY,
            )
        } else {
            let mut open = OpenFlags::empty();
            if flags & oflags::TRUNC != 0 {
                open |= OpenFlags::TRUNCATE;
            }
            f.base
                .open_at(PathFlags::empty(), &f.path, open, access(flags))
        }
        .map_err(errno)?;
        let q = qid(&d.stat());
        f.desc = Some(Arc::new(d));
        f.append = flags & oflags::APPEND != 0;
        Ok(R::Lopen { qid: q, iounit })
    }

    pub(super) fn lcreate(
        &mut self,
        fid: u32,
        name: &str,
        flags: u32,
        mode: u32,
        gid: u32,
    ) -> Res<R> {
        let (iounit, uid) = (self.iounit(), self.uid);
        let f = self.fid_mut(fid)?;
        if f.desc.is_some() && f.path != "." {
            return Err(errno(ErrorCode::BadDescriptor));
        }
        let path = f.child(name)?;
        let mut open = OpenFlags::CREATE;
        if flags & oflags::EXCL != 0 {
            open |= OpenFlags::EXCLUSIVE;
        }
        if flags & oflags::TRUNC != 0 {
            open |= OpenFlags::TRUNCATE;
        }
        let existed = f.base.stat_at(PathFlags::empty(), &path).is_ok();
        let d = f
            .base
            .open_at(PathFlags::empty(), &path, open, access(flags))
            .map_err(errno)?;
        if !existed {
            f.base
                .set_mode_at(PathFlags::empty(), &path, mode, uid, gid)
                .map_err(errno)?;
        }
        let q = qid(&d.stat());
        f.path = path;
        f.desc = Some(Arc::new(d));
        f.append = flags & oflags::APPEND != 0;
        f.listing = None;
        Ok(R::Lcreate { qid: q, iounit })
    }

    pub(super) fn setattr(&mut self, fid: u32, a: wire::SetAttr) -> Res<R> {
        let f = self.fid(fid)?;
        if a.valid & (setattr::MODE | setattr::UID | setattr::GID) != 0 {
            let s = f.stat()?;
            let pick = |bit: u32, new: u32, old: u32| if a.valid & bit != 0 { new } else { old };
            f.base
                .set_mode_at(
                    PathFlags::empty(),
                    &f.path,
                    pick(setattr::MODE, a.mode, s.mode),
                    pick(setattr::UID, a.uid, s.uid),
                    pick(setattr::GID, a.gid, s.gid),
                )
                .map_err(errno)?;
        }
        if a.valid & setattr::SIZE != 0 {
            // An open fid answers as its descriptor does (fs-core checks
            // the mode); a path is opened for writing, as truncate(2) does.
            match &f.desc {
                Some(d) => d.set_size(a.size),
                None => f
                    .base
                    .open_at(
                        PathFlags::empty(),
                        &f.path,
                        OpenFlags::empty(),
                        DescriptorFlags::WRITE,
                    )
                    .and_then(|d| d.set_size(a.size)),
            }
            .map_err(errno)?;
        }
        let time = |bit: u32, set: u32, sec: u64, nsec: u64| -> Res<NewTimestamp> {
            Ok(if a.valid & set != 0 {
                NewTimestamp::Timestamp(Timestamp::new(sec, nsec as u32).map_err(errno)?)
            } else if a.valid & bit != 0 {
                NewTimestamp::Now
            } else {
                NewTimestamp::NoChange
            })
        };
        let atime = time(
            setattr::ATIME,
            setattr::ATIME_SET,
            a.atime_sec,
            a.atime_nsec,
        )?;
        let mtime = time(
            setattr::MTIME,
            setattr::MTIME_SET,
            a.mtime_sec,
            a.mtime_nsec,
        )?;
        if atime != NewTimestamp::NoChange || mtime != NewTimestamp::NoChange {
            match &f.desc {
                Some(d) => d.set_times(atime, mtime),
                None => f
                    .base
                    .set_times_at(PathFlags::empty(), &f.path, atime, mtime),
            }
            .map_err(errno)?;
        }
        Ok(R::Setattr {})
    }

    pub(super) fn readdir(&mut self, fid: u32, offset: u64, count: u32) -> Res<R> {
        let room = count.min(self.iounit()) as usize;
        let f = self.fid_mut(fid)?;
        let d = f.opened()?.clone();
        if d.get_type() != DescriptorType::Directory {
            return Err(errno(ErrorCode::NotDirectory));
        }
        if offset == 0 || f.listing.is_none() {
            f.listing = Some(listing(&d)?);
        }
        let entries = f.listing.as_ref().expect("filled above");
        let mut data = Vec::new();
        for e in entries.iter().skip(offset.min(usize::MAX as u64) as usize) {
            if data.len() + e.encoded_len() > room {
                break;
            }
            e.put(&mut data);
        }
        Ok(R::Readdir {
            data: wire::Data(data),
        })
    }

    pub(super) fn statfs(&self) -> R {
        let c = self.server.fs.config();
        let u = self.server.fs.usage();
        let bsize = c.block_size.max(512) as u64;
        let blocks = c.max_bytes / bsize;
        let free = c.max_bytes.saturating_sub(u.bytes) / bsize;
        R::Statfs {
            stat: wire::StatFs {
                kind: V9FS_MAGIC,
                bsize: bsize as u32,
                blocks,
                bfree: free,
                bavail: free,
                files: c.max_inodes,
                ffree: c.max_inodes.saturating_sub(u.inodes),
                fsid: self.server.fs.dev(),
                namelen: c.max_name_len as u32,
            },
        }
    }
}

/// What `Treaddir` hands out: `.` and `..` first, as Linux expects, then
/// the entries; each entry's offset is where the next read resumes.
pub(super) fn listing(d: &Descriptor) -> Res<Vec<DirEntry>> {
    let me = d.stat();
    let parent = d
        .stat_at(PathFlags::empty(), "..")
        .map(|s| s.ino)
        .unwrap_or(me.ino);
    let dir_qid = |ino| Qid {
        kind: wire::QT_DIR,
        version: 0,
        path: ino,
    };
    let mut out = vec![
        DirEntry {
            qid: dir_qid(me.ino),
            offset: 1,
            kind: wire::DT_DIR,
            name: ".".into(),
        },
        DirEntry {
            qid: dir_qid(parent),
            offset: 2,
            kind: wire::DT_DIR,
            name: "..".into(),
        },
    ];
    let mut stream = d.read_directory().map_err(errno)?;
    while let Some(e) = stream.next_entry().map_err(errno)? {
        let kind = dirent_kind(e.kind);
        out.push(DirEntry {
            qid: Qid {
                kind: qid_kind(e.kind),
                version: 0,
                path: e.ino,
            },
            offset: out.len() as u64 + 1,
            kind,
            name: e.name,
        });
    }
    Ok(out)
}
