//! A 9P2000.L server on one fs-core filesystem (tokio).
//!
//! Each connection is one task that reads a request, answers it and reads
//! the next; replies are written in batches while requests are waiting in
//! the socket, so a pipelining client pays one round trip per batch. A
//! request that cannot be decoded (bad size, truncated, trailing bytes,
//! too many walk names) closes that connection only, with a log line.
//!
//! Standard fids are paths from the root, resolved by fs-core on each use
//! (as in diod or QEMU's local backend): fs-core follows symlinks inside
//! a path and never the last component, as Linux's `*at(..., NOFOLLOW)`
//! does. Opened fids hold an fs-core descriptor, so I/O follows the inode
//! across renames and unlinks.

use crate::wire::{self, oflags, setattr, Attr, DecodeError, DirEntry, NewTime, Qid, R, T};
use fs_core::{
    Descriptor, DescriptorFlags, DescriptorType, ErrorCode, Fs, NewTimestamp, OpenFlags, PathFlags,
    Stat, Timestamp,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

/// Limits and access rules for every connection.
#[derive(Clone, Debug)]
pub struct Config {
    /// The largest msize a client may negotiate.
    pub max_msize: u32,
    /// Fids one connection may hold at once.
    pub max_fids: usize,
    /// If set, `Tattach` must carry it as `aname`.
    pub secret: Option<String>,
    /// Handle requests where blocking is allowed (the filesystem has a
    /// store, so fsync and close may wait for the network).
    pub may_block: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_msize: 4 << 20,
            max_fids: 4096,
            secret: None,
            may_block: false,
        }
    }
}

/// The smallest msize accepted: room for a header and a useful payload.
const MIN_MSIZE: u32 = 4096;
/// `f_type` Linux reports for v9fs.
const V9FS_MAGIC: u32 = 0x0102_1997;
const EILSEQ: u32 = 84;

pub struct Server {
    fs: Fs,
    config: Config,
}

impl Server {
    pub fn new(fs: Fs, config: Config) -> Arc<Server> {
        Arc::new(Server { fs, config })
    }

    /// Accepts connections until the listener fails.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let (sock, peer) = listener.accept().await?;
            let me = self.clone();
            tokio::spawn(async move { me.connection(sock, peer).await });
        }
    }

    async fn connection(&self, sock: TcpStream, peer: SocketAddr) {
        let _ = sock.set_nodelay(true);
        tracing::debug!(%peer, "connected");
        match self.converse(sock).await {
            Ok(()) => tracing::debug!(%peer, "disconnected"),
            Err(ConnError::Io(e)) => tracing::debug!(%peer, "connection ended: {e}"),
            Err(ConnError::Protocol(e)) => {
                tracing::warn!(%peer, "closing the connection: malformed message: {e}")
            }
        }
    }

    async fn converse(&self, sock: TcpStream) -> Result<(), ConnError> {
        let (rd, wr) = sock.into_split();
        let mut rd = BufReader::with_capacity(256 << 10, rd);
        let mut wr = BufWriter::with_capacity(256 << 10, wr);
        let mut session = Session::new(self)?;
        let mut frame = Vec::new();
        let mut out = Vec::new();
        loop {
            let mut head = [0u8; 4];
            match rd.read_exact(&mut head).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    wr.flush().await?;
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
            let size = wire::frame_size(head, session.msize)?;
            frame.clear();
            frame.extend_from_slice(&head);
            frame.resize(size, 0);
            rd.read_exact(&mut frame[4..]).await?;
            let (tag, reply) = if self.config.may_block {
                tokio::task::block_in_place(|| session.handle(&frame))?
            } else {
                session.handle(&frame)?
            };
            out.clear();
            reply.encode(tag, &mut out);
            wr.write_all(&out).await?;
            // Flush once nothing more is waiting: a pipelined batch gets
            // its replies in one write.
            if rd.buffer().is_empty() {
                wr.flush().await?;
            }
        }
    }
}

enum ConnError {
    Io(std::io::Error),
    Protocol(DecodeError),
}

impl From<std::io::Error> for ConnError {
    fn from(e: std::io::Error) -> Self {
        ConnError::Io(e)
    }
}

impl From<DecodeError> for ConnError {
    fn from(e: DecodeError) -> Self {
        ConnError::Protocol(e)
    }
}

impl From<fs_core::ErrorCode> for ConnError {
    fn from(e: fs_core::ErrorCode) -> Self {
        ConnError::Io(e.into())
    }
}

type Errno = u32;
type Res<T> = Result<T, Errno>;

fn errno(e: ErrorCode) -> Errno {
    e.errno() as u32
}

/// One fid: a place in the tree, and what was opened there.
struct Fid {
    /// The directory `path` is resolved from: the root, or a directory the
    /// extension opened (whose sandbox rules then apply).
    base: Arc<Descriptor>,
    /// Relative to `base`; `.` for `base` itself.
    path: String,
    /// The open descriptor (`Tlopen`, `Tlcreate`, `OpenAt`).
    desc: Option<Arc<Descriptor>>,
    append: bool,
    /// The directory as `Treaddir` lists it, taken at offset 0.
    listing: Option<Vec<DirEntry>>,
}

impl Fid {
    fn at(base: Arc<Descriptor>, path: String) -> Fid {
        Fid {
            base,
            path,
            desc: None,
            append: false,
            listing: None,
        }
    }

    fn stat(&self) -> Res<Stat> {
        match &self.desc {
            Some(d) => Ok(d.stat()),
            None => self
                .base
                .stat_at(PathFlags::empty(), &self.path)
                .map_err(errno),
        }
    }

    fn opened(&self) -> Res<&Arc<Descriptor>> {
        self.desc.as_ref().ok_or(errno(ErrorCode::BadDescriptor))
    }

    /// `name` below this fid's path: one component, never empty or a path.
    fn child(&self, name: &str) -> Res<String> {
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
    fn walk(&self, name: &str) -> Res<String> {
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
    fn dir(&self) -> Res<Arc<Descriptor>> {
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

struct Session<'a> {
    server: &'a Server,
    msize: u32,
    root: Arc<Descriptor>,
    fids: HashMap<u32, Fid>,
    uid: u32,
}

fn qid_kind(k: DescriptorType) -> u8 {
    match k {
        DescriptorType::Directory => wire::QT_DIR,
        DescriptorType::SymbolicLink => wire::QT_SYMLINK,
        DescriptorType::RegularFile => wire::QT_FILE,
    }
}

pub fn qid(s: &Stat) -> Qid {
    Qid {
        kind: qid_kind(s.kind),
        version: s.data_change as u32,
        path: s.ino,
    }
}

pub fn attr(s: &Stat) -> Attr {
    Attr {
        valid: wire::GETATTR_BASIC,
        qid: qid(s),
        mode: s.kind.mode_bits() | (s.mode & 0o7777),
        uid: s.uid,
        gid: s.gid,
        nlink: s.nlink,
        rdev: 0,
        size: s.size,
        blksize: 4096,
        blocks: s.allocated.div_ceil(512),
        atime_sec: s.atime.seconds,
        atime_nsec: s.atime.nanoseconds as u64,
        mtime_sec: s.mtime.seconds,
        mtime_nsec: s.mtime.nanoseconds as u64,
        ctime_sec: s.ctime.seconds,
        ctime_nsec: s.ctime.nanoseconds as u64,
        btime_sec: 0,
        btime_nsec: 0,
        gen: 0,
        data_version: s.data_change,
    }
}

fn new_time(t: NewTime) -> Res<NewTimestamp> {
    Ok(match t.how {
        0 => NewTimestamp::NoChange,
        1 => NewTimestamp::Now,
        2 => NewTimestamp::Timestamp(Timestamp::new(t.sec, t.nsec).map_err(errno)?),
        _ => return Err(errno(ErrorCode::Invalid)),
    })
}

fn dirent_kind(k: DescriptorType) -> u8 {
    match k {
        DescriptorType::Directory => wire::DT_DIR,
        DescriptorType::SymbolicLink => wire::DT_LNK,
        DescriptorType::RegularFile => wire::DT_REG,
    }
}

fn hash(h: fs_core::MetadataHash) -> wire::Hash {
    wire::Hash {
        lower: h.lower,
        upper: h.upper,
    }
}

fn path_flags(bits: u8) -> PathFlags {
    PathFlags::from_bits_truncate(bits)
}

impl<'a> Session<'a> {
    fn new(server: &'a Server) -> Result<Self, ConnError> {
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
    fn handle(&mut self, frame: &[u8]) -> Result<(u16, R), DecodeError> {
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

    fn fid(&self, fid: u32) -> Res<&Fid> {
        self.fids.get(&fid).ok_or(errno(ErrorCode::BadDescriptor))
    }

    fn fid_mut(&mut self, fid: u32) -> Res<&mut Fid> {
        self.fids
            .get_mut(&fid)
            .ok_or(errno(ErrorCode::BadDescriptor))
    }

    /// Room for `newfid`: unused, and within the per-connection limit.
    fn check_new(&self, newfid: u32) -> Res<()> {
        if newfid == wire::NOFID || self.fids.contains_key(&newfid) {
            return Err(errno(ErrorCode::BadDescriptor));
        }
        if self.fids.len() >= self.server.config.max_fids {
            // EMFILE: this connection holds too many.
            return Err(24);
        }
        Ok(())
    }

    fn iounit(&self) -> u32 {
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

    fn walk(&mut self, fid: u32, newfid: u32, names: Vec<String>) -> Res<R> {
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

    fn lopen(&mut self, fid: u32, flags: u32) -> Res<R> {
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

    fn lcreate(&mut self, fid: u32, name: &str, flags: u32, mode: u32, gid: u32) -> Res<R> {
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

    fn setattr(&mut self, fid: u32, a: wire::SetAttr) -> Res<R> {
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

    fn readdir(&mut self, fid: u32, offset: u64, count: u32) -> Res<R> {
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

    fn statfs(&self) -> R {
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

    /// Larder's extension messages: WASI's operations, one fs-core call each.
    fn extension(&mut self, t: T) -> Res<R> {
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

/// `Tlopen`/`Tlcreate` access mode as descriptor flags.
fn access(flags: u32) -> DescriptorFlags {
    match flags & oflags::ACCMODE {
        oflags::WRONLY => DescriptorFlags::WRITE,
        oflags::RDWR => DescriptorFlags::READ | DescriptorFlags::WRITE,
        _ => DescriptorFlags::READ,
    }
}

/// What `Treaddir` hands out: `.` and `..` first, as Linux expects, then
/// the entries; each entry's offset is where the next read resumes.
fn listing(d: &Descriptor) -> Res<Vec<DirEntry>> {
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

/// Compares without stopping at the first difference, so the time taken
/// says nothing about how much of a guess was right.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() != b.len()) as u8;
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}
