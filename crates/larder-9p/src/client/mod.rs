//! A 9P2000.L client for a `larder serve`: the operations of
//! `fs_core::Descriptor`, each sent as one request (Larder's extension for
//! the path operations, so fs-core on the server resolves paths exactly as
//! a local filesystem would), over a [`Transport`] the embedder supplies
//! (the remote adapter's is a `wasi:sockets` TCP connection).
//!
//! Consistency is close-to-open: file data read through a descriptor may
//! come from this client's cache, which is checked against the file's data
//! version each time the file is opened; metadata and directories are
//! always asked of the server; writes reach the server before they return.
//! When the server goes, calls fail with `io`; the next call that starts
//! from the root connects again, and descriptors from before stay `io`.
//!
//! A client is single-threaded (`Rc`), as a component instance is.

mod cache;
mod session;

use crate::convert;
use crate::wire::{self, Data, R, T};
use cache::Cache;
use fs_core::stream::StreamFile;
use fs_core::{
    Advice, DescriptorFlags, DescriptorOps, DescriptorType, DirEntries, DirEntry, ErrorCode,
    MetadataHash, NewTimestamp, OpenFlags, PathFlags, Stat,
};
use session::{Session, MSIZE, ROOT_FID};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

type Result<T> = std::result::Result<T, ErrorCode>;

/// The unit of caching and read-ahead (smaller if the server's msize is).
const BLOCK: u64 = 256 << 10;
/// `Twrite` bytes that are not data.
const WRITE_HEADER: u32 = wire::HEADER as u32 + 4 + 8 + 4;

/// The connection is over (closed, failed, or a reply took longer than
/// the transport's timeout).
#[derive(Debug)]
pub struct Gone;

/// A byte stream to the server. Each call may wait up to the transport's
/// own timeout, after which it fails: an app gets `io`, never a hang.
pub trait Transport {
    /// Writes (and flushes) all of `bytes`.
    fn write_all(&mut self, bytes: &[u8]) -> std::result::Result<(), Gone>;
    /// Appends at least one byte and at most `max` to `buf`.
    fn read_into(&mut self, buf: &mut Vec<u8>, max: usize) -> std::result::Result<(), Gone>;
}

/// Where the server is, and how to reach it.
pub trait Connect {
    /// A new connection, or why there is none (said to the user once).
    fn connect(&self) -> std::result::Result<Box<dyn Transport>, String>;
    /// The server's address, for messages.
    fn addr(&self) -> &str;
    /// What to attach with: the server's secret, if it has one.
    fn secret(&self) -> &str;
}

struct State {
    connect: Box<dyn Connect>,
    session: Option<Session>,
    /// Bumped at every reconnect; handles from an older epoch are stale.
    epoch: u64,
    next_fid: u32,
    free_fids: Vec<u32>,
    cache: Cache,
    /// Whether the last connect failed (said once, not at every call).
    warned: bool,
}

fn errno(e: u32) -> ErrorCode {
    ErrorCode::from_errno(e as i32).unwrap_or(ErrorCode::Io)
}

impl State {
    /// The live session, connecting first if there is none.
    fn session(&mut self) -> Result<&mut Session> {
        if self.session.is_none() {
            let started = self
                .connect
                .connect()
                .and_then(|t| Session::start(t, self.connect.secret()));
            match started {
                Ok(s) => {
                    if self.warned {
                        let addr = self.connect.addr();
                        eprintln!("larder: remote filesystem {addr}: connected again");
                    }
                    self.session = Some(s);
                    self.epoch += 1;
                    self.next_fid = ROOT_FID + 1;
                    self.free_fids.clear();
                    self.cache = Cache::default();
                    self.warned = false;
                }
                Err(e) => {
                    // Said once until a connect succeeds; the app sees `io`.
                    if !self.warned {
                        eprintln!("larder: remote filesystem {}: {e}", self.connect.addr());
                        self.warned = true;
                    }
                    return Err(ErrorCode::Io);
                }
            }
        }
        Ok(self.session.as_mut().expect("connected above"))
    }

    fn lost(&mut self) -> ErrorCode {
        if self.session.take().is_some() {
            let addr = self.connect.addr();
            eprintln!("larder: remote filesystem {addr}: connection lost");
            self.warned = true;
        }
        ErrorCode::Io
    }

    fn msize(&self) -> u32 {
        self.session.as_ref().map_or(MSIZE, |s| s.msize)
    }

    /// Cache block size for this session: whole pages that fit in a reply.
    fn block(&self) -> u64 {
        BLOCK.min(u64::from(self.msize() - wire::IO_HEADER) / 4096 * 4096)
    }

    /// The fid `h` names in the current session.
    fn fid(&mut self, h: &Handle) -> Result<u32> {
        if h.fid == ROOT_FID {
            self.session()?;
            return Ok(ROOT_FID);
        }
        if h.epoch != self.epoch || self.session.is_none() {
            return Err(ErrorCode::Io);
        }
        Ok(h.fid)
    }

    fn call(&mut self, t: T) -> Result<R> {
        let s = self.session()?;
        match s.call(t) {
            Ok(R::Lerror { ecode }) => Err(errno(ecode)),
            Ok(r) => Ok(r),
            Err(Gone) => Err(self.lost()),
        }
    }

    /// Sends every request, then collects every reply (errors included):
    /// one round trip.
    fn send_all(&mut self, ts: &[T]) -> Result<Vec<R>> {
        let s = self.session()?;
        let tags: std::result::Result<Vec<u16>, Gone> = ts.iter().map(|t| s.send(t)).collect();
        let Ok(tags) = tags else {
            return Err(self.lost());
        };
        let mut out = Vec::with_capacity(tags.len());
        for tag in tags {
            match self.session.as_mut().map(|s| s.wait(tag)) {
                Some(Ok(r)) => out.push(r),
                _ => return Err(self.lost()),
            }
        }
        Ok(out)
    }

    /// [`State::send_all`], failing with the first error any reply carries.
    fn call_all(&mut self, ts: &[T]) -> Result<Vec<R>> {
        let replies = self.send_all(ts)?;
        match replies.iter().find_map(|r| match r {
            R::Lerror { ecode } => Some(errno(*ecode)),
            _ => None,
        }) {
            Some(e) => Err(e),
            None => Ok(replies),
        }
    }

    fn new_fid(&mut self) -> u32 {
        self.free_fids.pop().unwrap_or_else(|| {
            self.next_fid += 1;
            self.next_fid - 1
        })
    }

    fn release(&mut self, fid: u32, epoch: u64) {
        if epoch != self.epoch {
            return;
        }
        if let Some(s) = self.session.as_mut() {
            match s.send(&T::Clunk { fid }) {
                Ok(tag) => {
                    s.discard.insert(tag);
                    self.free_fids.push(fid);
                }
                Err(Gone) => self.session = None,
            }
        }
    }
}

/// A fid of the current session; clunked when the last user drops it.
struct Handle {
    client: Rc<RefCell<State>>,
    fid: u32,
    epoch: u64,
    kind: DescriptorType,
    flags: DescriptorFlags,
    ino: u64,
}

impl Drop for Handle {
    fn drop(&mut self) {
        if self.fid != ROOT_FID {
            let (fid, epoch) = (self.fid, self.epoch);
            // A handle dropped while the client is busy keeps its fid; the
            // server frees it with the connection.
            if let Ok(mut c) = self.client.try_borrow_mut() {
                c.release(fid, epoch)
            }
        }
    }
}

#[derive(Clone)]
pub struct Descriptor(Rc<Handle>);

/// A reply of the wrong type: the server is not one this adapter knows.
fn unexpected(_: R) -> ErrorCode {
    ErrorCode::Io
}

/// A client of one server; it connects when first used.
#[derive(Clone)]
pub struct Client(Rc<RefCell<State>>);

impl Client {
    pub fn new(connect: Box<dyn Connect>) -> Client {
        Client(Rc::new(RefCell::new(State {
            connect,
            session: None,
            epoch: 0,
            next_fid: ROOT_FID + 1,
            free_fids: Vec::new(),
            cache: Cache::default(),
            warned: false,
        })))
    }

    /// The server's root directory. Any number of these may be handed
    /// out; a call through one reconnects when the connection was lost.
    pub fn root(&self) -> Descriptor {
        Descriptor(Rc::new(Handle {
            client: self.0.clone(),
            fid: ROOT_FID,
            epoch: 0,
            kind: DescriptorType::Directory,
            flags: DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY,
            ino: 0,
        }))
    }
}

impl Descriptor {
    fn with<X>(&self, f: impl FnOnce(&mut State) -> X) -> X {
        f(&mut self.0.client.borrow_mut())
    }

    fn fid(&self) -> Result<u32> {
        self.with(|c| c.fid(&self.0))
    }

    fn call(&self, make: impl FnOnce(u32) -> T) -> Result<R> {
        self.with(|c| {
            let fid = c.fid(&self.0)?;
            c.call(make(fid))
        })
    }

    fn done(&self, make: impl FnOnce(u32) -> T) -> Result<()> {
        self.call(make).map(|_| ())
    }

    /// The inode: known from the open, except for the preopen.
    fn ino(&self) -> Option<u64> {
        if self.0.fid == ROOT_FID {
            self.stat().ok().map(|s| s.ino)
        } else {
            Some(self.0.ino)
        }
    }

    /// Up to `len` bytes at `offset` appended to `out`; 0 at end of file.
    /// Whole blocks are fetched (those missing, in one round trip) and kept.
    pub fn read_append(&self, out: &mut Vec<u8>, len: usize, offset: u64) -> Result<usize> {
        // fs-core's checks, so a read answered from the cache answers as
        // the server would.
        fs_core::check_read(self.0.kind, self.0.flags)?;
        if len == 0 {
            return Ok(0);
        }
        let ino = self.0.ino;
        self.with(|c| {
            let fid = c.fid(&self.0)?;
            let block = c.block();
            let first = offset / block;
            let last = (offset + len as u64 - 1) / block;
            let mut blocks: Vec<Option<Rc<Vec<u8>>>> =
                (first..=last).map(|b| c.cache.get(ino, b)).collect();
            let missing: Vec<u64> = (first..=last)
                .filter(|b| blocks[(b - first) as usize].is_none())
                .collect();
            if !missing.is_empty() {
                let reads: Vec<T> = missing
                    .iter()
                    .map(|&b| T::Read {
                        fid,
                        offset: b * block,
                        count: block as u32,
                    })
                    .collect();
                for (&b, r) in missing.iter().zip(c.call_all(&reads)?) {
                    let R::Read { data } = r else {
                        return Err(ErrorCode::Io);
                    };
                    blocks[(b - first) as usize] = Some(c.cache.put(ino, b, data.0));
                }
            }
            let start = out.len();
            let end = offset + len as u64;
            let mut at = offset;
            for (b, data) in (first..).zip(blocks.iter().flatten()) {
                let from = (at - b * block) as usize;
                if from >= data.len() {
                    break;
                }
                let to = data.len().min(from + (end - at) as usize);
                out.extend_from_slice(&data[from..to]);
                at += (to - from) as u64;
                // A short block is where the file ended.
                if (data.len() as u64) < block {
                    break;
                }
            }
            Ok(out.len() - start)
        })
    }

    /// Writes all of `data` at `offset` (pieces pipelined); the count.
    pub fn write(&self, data: &[u8], offset: u64) -> Result<usize> {
        let ino = self.0.ino;
        self.with(|c| {
            let fid = c.fid(&self.0)?;
            c.cache.invalidate(ino);
            let piece = (c.msize() - WRITE_HEADER) as usize;
            if data.is_empty() {
                let R::Write { count } = c.call(T::Write {
                    fid,
                    offset,
                    data: Data(Vec::new()),
                })?
                else {
                    return Err(ErrorCode::Io);
                };
                return Ok(count as usize);
            }
            let writes: Vec<T> = data
                .chunks(piece)
                .enumerate()
                .map(|(i, chunk)| T::Write {
                    fid,
                    offset: offset + (i * piece) as u64,
                    data: Data(chunk.to_vec()),
                })
                .collect();
            let mut total = 0;
            for r in c.call_all(&writes)? {
                let R::Write { count } = r else {
                    return Err(ErrorCode::Io);
                };
                total += count as usize;
            }
            Ok(total)
        })
    }

    /// Appends `data` (up to what one message carries) at the end of the
    /// file, atomically; where it landed and the count.
    pub fn append(&self, data: &[u8]) -> Result<(u64, usize)> {
        let ino = self.0.ino;
        let piece = self.with(|c| {
            c.cache.invalidate(ino);
            (c.msize() - WRITE_HEADER) as usize
        });
        let data = &data[..data.len().min(piece)];
        match self.call(|fid| T::Append {
            fid,
            data: Data(data.to_vec()),
        })? {
            R::Append { offset, count } => Ok((offset, count as usize)),
            r => Err(unexpected(r)),
        }
    }

    /// fs-core's checks for a stream (the server checks the mount's
    /// write permission when the bytes arrive).
    fn stream_handle(&self, need: DescriptorFlags) -> Result<()> {
        fs_core::check_stream(self.0.kind, self.0.flags, need)
    }
}

impl DescriptorOps for Descriptor {
    type Entries = DirStream;

    fn get_flags(&self) -> DescriptorFlags {
        self.0.flags
    }

    fn get_type(&self) -> DescriptorType {
        self.0.kind
    }

    fn is_same_object(&self, other: &Descriptor) -> bool {
        let (a, b) = (self.ino(), other.ino());
        a.is_some() && a == b
    }

    fn stat(&self) -> Result<Stat> {
        match self.call(|fid| T::Getattr {
            fid,
            mask: wire::GETATTR_BASIC,
        })? {
            R::Getattr { attr } => Ok(convert::stat(&attr)),
            r => Err(unexpected(r)),
        }
    }

    fn metadata_hash(&self) -> Result<MetadataHash> {
        match self.call(|fid| T::HashFid { fid })? {
            R::HashFid { hash: h } => Ok(convert::metadata_hash(h)),
            r => Err(unexpected(r)),
        }
    }

    fn open_at(
        &self,
        path_flags: PathFlags,
        path: &str,
        open: OpenFlags,
        flags: DescriptorFlags,
    ) -> Result<Descriptor> {
        self.with(|c| {
            let dfid = c.fid(&self.0)?;
            let newfid = c.new_fid();
            let block = c.block();
            let mut batch = vec![T::OpenAt {
                dfid,
                newfid,
                path_flags: path_flags.bits(),
                path: path.to_owned(),
                open_flags: open.bits(),
                flags: flags.bits(),
            }];
            // Read-ahead at open: a file opened for reading is usually read
            // from the start, so its first block comes in the same round
            // trip (a directory or a failed open just fails this read).
            let ahead =
                flags.contains(DescriptorFlags::READ) && !open.contains(OpenFlags::DIRECTORY);
            if ahead {
                batch.push(T::Read {
                    fid: newfid,
                    offset: 0,
                    count: block as u32,
                });
            }
            let mut replies = c.send_all(&batch)?.into_iter();
            let attr = match replies.next() {
                Some(R::OpenAt { attr }) => attr,
                Some(R::Lerror { ecode }) => {
                    c.free_fids.push(newfid);
                    return Err(errno(ecode));
                }
                _ => return Err(ErrorCode::Io),
            };
            let kind = DescriptorType::from_mode(attr.mode);
            if kind == DescriptorType::RegularFile {
                c.cache.validate(attr.qid.path, attr.data_version);
                if let Some(R::Read { data }) = replies.next() {
                    c.cache.put(attr.qid.path, 0, data.0);
                }
            }
            Ok(Descriptor(Rc::new(Handle {
                client: self.0.client.clone(),
                fid: newfid,
                epoch: c.epoch,
                kind,
                flags,
                ino: attr.qid.path,
            })))
        })
    }

    fn stat_at(&self, flags: PathFlags, path: &str) -> Result<Stat> {
        match self.call(|dfid| T::StatAt {
            dfid,
            path_flags: flags.bits(),
            path: path.to_owned(),
        })? {
            R::StatAt { attr } => Ok(convert::stat(&attr)),
            r => Err(unexpected(r)),
        }
    }

    fn metadata_hash_at(&self, flags: PathFlags, path: &str) -> Result<MetadataHash> {
        match self.call(|dfid| T::HashAt {
            dfid,
            path_flags: flags.bits(),
            path: path.to_owned(),
        })? {
            R::HashAt { hash: h } => Ok(convert::metadata_hash(h)),
            r => Err(unexpected(r)),
        }
    }

    fn create_directory_at(&self, path: &str) -> Result<()> {
        self.done(|dfid| T::MkdirAt {
            dfid,
            path: path.to_owned(),
        })
    }

    fn unlink_file_at(&self, path: &str) -> Result<()> {
        self.done(|dfid| T::UnlinkAt {
            dfid,
            path: path.to_owned(),
        })
    }

    fn remove_directory_at(&self, path: &str) -> Result<()> {
        self.done(|dfid| T::RmdirAt {
            dfid,
            path: path.to_owned(),
        })
    }

    fn symlink_at(&self, target: &str, path: &str) -> Result<()> {
        self.done(|dfid| T::SymlinkAt {
            dfid,
            target: target.to_owned(),
            path: path.to_owned(),
        })
    }

    fn readlink_at(&self, path: &str) -> Result<String> {
        match self.call(|dfid| T::ReadlinkAt {
            dfid,
            path: path.to_owned(),
        })? {
            R::ReadlinkAt { target } => Ok(target),
            r => Err(unexpected(r)),
        }
    }

    fn rename_at(&self, old_path: &str, new_dir: &Descriptor, new_path: &str) -> Result<()> {
        let newdfid = new_dir.fid()?;
        self.done(|olddfid| T::RenameAt {
            olddfid,
            oldpath: old_path.to_owned(),
            newdfid,
            newpath: new_path.to_owned(),
        })
    }

    fn link_at(
        &self,
        flags: PathFlags,
        old_path: &str,
        new_dir: &Descriptor,
        new_path: &str,
    ) -> Result<()> {
        let newdfid = new_dir.fid()?;
        self.done(|olddfid| T::LinkAt {
            olddfid,
            path_flags: flags.bits(),
            oldpath: old_path.to_owned(),
            newdfid,
            newpath: new_path.to_owned(),
        })
    }

    fn set_times_at(
        &self,
        flags: PathFlags,
        path: &str,
        atime: NewTimestamp,
        mtime: NewTimestamp,
    ) -> Result<()> {
        self.done(|dfid| T::SetTimesAt {
            dfid,
            path_flags: flags.bits(),
            path: path.to_owned(),
            atime: convert::new_time(atime),
            mtime: convert::new_time(mtime),
        })
    }

    fn set_times(&self, atime: NewTimestamp, mtime: NewTimestamp) -> Result<()> {
        self.done(|fid| T::SetTimes {
            fid,
            atime: convert::new_time(atime),
            mtime: convert::new_time(mtime),
        })
    }

    fn set_size(&self, size: u64) -> Result<()> {
        let ino = self.0.ino;
        self.with(|c| c.cache.invalidate(ino));
        self.done(|fid| T::Setattr {
            fid,
            attr: wire::SetAttr {
                valid: wire::setattr::SIZE,
                size,
                ..Default::default()
            },
        })
    }

    fn advise(&self, _offset: u64, _len: u64, _advice: Advice) -> Result<()> {
        match self.0.kind {
            DescriptorType::RegularFile => Ok(()),
            _ => Err(ErrorCode::BadDescriptor),
        }
    }

    fn sync_data(&self) -> Result<()> {
        self.done(|fid| T::Fsync {
            fid,
            datasync: wire::OptU32(1),
        })
    }

    fn sync(&self) -> Result<()> {
        self.done(|fid| T::Fsync {
            fid,
            datasync: wire::OptU32(0),
        })
    }

    fn read_via_stream(&self, offset: u64) -> Result<FileReader> {
        self.stream_handle(DescriptorFlags::READ)?;
        Ok(FileReader::new(self.clone(), offset))
    }

    fn write_via_stream(&self, offset: u64) -> Result<FileWriter> {
        self.stream_handle(DescriptorFlags::WRITE)?;
        Ok(FileWriter::new(self.clone(), Some(offset)))
    }

    fn append_via_stream(&self) -> Result<FileWriter> {
        self.stream_handle(DescriptorFlags::WRITE)?;
        Ok(FileWriter::new(self.clone(), None))
    }

    /// Entries through a fid of their own (a clone), so two listings of
    /// one directory do not share a position.
    fn read_directory(&self) -> Result<DirStream> {
        let handle = self.with(|c| {
            let fid = c.fid(&self.0)?;
            let newfid = c.new_fid();
            match c.call(T::Walk {
                fid,
                newfid,
                names: wire::Walked(Vec::new()),
            }) {
                Ok(_) => Ok(Handle {
                    client: self.0.client.clone(),
                    fid: newfid,
                    epoch: c.epoch,
                    kind: self.0.kind,
                    flags: self.0.flags,
                    ino: self.0.ino,
                }),
                Err(e) => {
                    c.free_fids.push(newfid);
                    Err(e)
                }
            }
        })?;
        Ok(DirStream {
            fd: Descriptor(Rc::new(handle)),
            offset: 0,
            pending: VecDeque::new(),
            done: false,
        })
    }
}

pub struct DirStream {
    fd: Descriptor,
    offset: u64,
    pending: VecDeque<DirEntry>,
    done: bool,
}

impl DirEntries for DirStream {
    fn next_entry(&mut self) -> Result<Option<DirEntry>> {
        while self.pending.is_empty() && !self.done {
            let offset = self.offset;
            let count = self.fd.with(|c| c.msize()) - wire::IO_HEADER;
            let R::Readdir { data } = self.fd.call(|fid| T::Readdir { fid, offset, count })? else {
                return Err(ErrorCode::Io);
            };
            let entries = wire::DirEntry::parse_all(&data.0).map_err(|_| ErrorCode::Io)?;
            if entries.is_empty() {
                self.done = true;
            }
            for e in entries {
                self.offset = e.offset;
                if e.name == "." || e.name == ".." {
                    continue;
                }
                self.pending.push_back(DirEntry {
                    kind: convert::dirent_type(e.kind),
                    name: e.name,
                    ino: e.qid.path,
                });
            }
        }
        Ok(self.pending.pop_front())
    }
}

/// Streams are fs-core's cursors over the remote file.
pub type FileReader = fs_core::stream::FileReader<Descriptor>;
pub type FileWriter = fs_core::stream::FileWriter<Descriptor>;

impl StreamFile for Descriptor {
    fn read_append(&self, out: &mut Vec<u8>, len: usize, offset: u64) -> Result<usize> {
        Descriptor::read_append(self, out, len, offset)
    }
    fn size(&self) -> Result<u64> {
        DescriptorOps::stat(self).map(|s| s.size)
    }
    fn write(&self, data: &[u8], offset: u64) -> Result<usize> {
        Descriptor::write(self, data, offset)
    }
    fn append(&self, data: &[u8]) -> Result<(u64, usize)> {
        Descriptor::append(self, data)
    }
}
