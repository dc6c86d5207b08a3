//! The remote build's filesystem: the operations of `fs_core::Descriptor`,
//! each sent to a `larder serve` as one 9P2000.L request (Larder's
//! extension for the path operations, so fs-core on the server resolves
//! paths exactly as the local adapter would), over `wasi:sockets` TCP.
//!
//! Consistency is close-to-open: file data read through a descriptor may
//! come from this instance's cache, which is checked against the file's
//! data version each time the file is opened; metadata and directories are
//! always asked of the server; writes reach the server before they return.
//! When the server goes, calls fail with `io`; the next call that starts
//! from a preopen connects again, and descriptors from before stay `io`.

use crate::wasi::cli::environment;
use crate::wasi::clocks::monotonic_clock;
use crate::wasi::io::poll;
use crate::wasi::io::streams::{InputStream, OutputStream, StreamError};
use crate::wasi::sockets::network::{
    IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
};
use crate::wasi::sockets::{instance_network, ip_name_lookup, tcp, tcp_create_socket};
use fs_core::stream::StreamFile;
use fs_core::{
    Advice, DescriptorFlags, DescriptorType, DirEntry, ErrorCode, MetadataHash, NewTimestamp,
    OpenFlags, PathFlags, Stat, Timestamp,
};
use larder_9p::wire::{self, Attr, Data, NewTime, R, T};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;

type Result<T> = std::result::Result<T, ErrorCode>;

/// What the adapter asks for; the server may grant less.
const MSIZE: u32 = 4 << 20;
/// The unit of caching and read-ahead (smaller if the server's msize is).
const BLOCK: u64 = 256 << 10;
/// File data kept across reads, per instance.
const CACHE_LIMIT: usize = 256 << 20;
/// How long one reply may take before the server counts as gone.
const DEFAULT_TIMEOUT_SECS: u64 = 60;
/// The fid every session attaches the root to.
const ROOT_FID: u32 = 0;
/// `Twrite` bytes that are not data.
const WRITE_HEADER: u32 = wire::HEADER as u32 + 4 + 8 + 4;

/// Where the server is, and what to attach with.
struct Target {
    addr: String,
    secret: String,
    timeout_ns: u64,
}

fn target() -> Target {
    let env: HashMap<String, String> = environment::get_environment().into_iter().collect();
    let addr = env
        .get("LARDER_REMOTE")
        .cloned()
        .unwrap_or_else(crate::larder::vfs::bundle::store);
    let secs = env
        .get("LARDER_REMOTE_TIMEOUT")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&s| s > 0)
        .unwrap_or(DEFAULT_TIMEOUT_SECS);
    Target {
        addr,
        secret: env.get("LARDER_REMOTE_SECRET").cloned().unwrap_or_default(),
        timeout_ns: secs.saturating_mul(1_000_000_000),
    }
}

/// One connection: the socket's streams and what is in flight on them.
struct Session {
    input: InputStream,
    output: OutputStream,
    // Dropped last: the streams are its children.
    _socket: tcp::TcpSocket,
    msize: u32,
    next_tag: u16,
    inbuf: Vec<u8>,
    /// Replies that came before the one being waited for.
    early: HashMap<u16, R>,
    /// Tags whose replies nobody waits for (clunks of dropped handles).
    discard: HashSet<u16>,
    timeout_ns: u64,
}

/// Transport failure: the session is over.
struct Gone;

impl Session {
    fn connect(t: &Target) -> std::result::Result<Session, String> {
        let addr = resolve(&t.addr)?;
        let family = match addr {
            IpSocketAddress::Ipv4(_) => IpAddressFamily::Ipv4,
            IpSocketAddress::Ipv6(_) => IpAddressFamily::Ipv6,
        };
        let net = instance_network::instance_network();
        let socket = tcp_create_socket::create_tcp_socket(family).map_err(|e| format!("{e:?}"))?;
        socket
            .start_connect(&net, addr)
            .map_err(|e| format!("connect: {e:?}"))?;
        let ready = socket.subscribe();
        let (input, output) = loop {
            match socket.finish_connect() {
                Ok(streams) => break streams,
                Err(tcp::ErrorCode::WouldBlock) => {
                    if !wait_for(&ready, t.timeout_ns) {
                        return Err("connect: timed out".into());
                    }
                }
                Err(e) => return Err(format!("connect: {e:?}")),
            }
        };
        drop(ready);
        let mut s = Session {
            input,
            output,
            _socket: socket,
            msize: MSIZE,
            next_tag: 0,
            inbuf: Vec::new(),
            early: HashMap::new(),
            discard: HashSet::new(),
            timeout_ns: t.timeout_ns,
        };
        let gone = |_| "the server closed the connection".to_string();
        let reply = s
            .call(T::Version {
                msize: MSIZE,
                version: wire::VERSION.into(),
            })
            .map_err(gone)?;
        match reply {
            R::Version { msize, version } if version == wire::VERSION && msize >= 8192 => {
                s.msize = msize.min(MSIZE)
            }
            other => return Err(format!("the server does not speak 9P2000.L: {other:?}")),
        }
        match s
            .call(T::Attach {
                fid: ROOT_FID,
                afid: wire::NOFID,
                uname: String::new(),
                aname: t.secret.clone(),
                n_uname: wire::NOFID,
            })
            .map_err(gone)?
        {
            R::Attach { .. } => Ok(s),
            R::Lerror { ecode } => Err(format!("attach refused: {}", errno(ecode).name())),
            other => Err(format!("unexpected answer to attach: {other:?}")),
        }
    }

    /// Sends `t` without waiting; the reply is collected by `wait`.
    fn send(&mut self, t: &T) -> std::result::Result<u16, Gone> {
        let tag = loop {
            let tag = self.next_tag;
            self.next_tag = self.next_tag.wrapping_add(1);
            if tag != wire::NOTAG && !self.early.contains_key(&tag) && !self.discard.contains(&tag)
            {
                break tag;
            }
        };
        let mut frame = Vec::new();
        t.encode(tag, &mut frame);
        self.write_all(&frame)?;
        Ok(tag)
    }

    fn write_all(&mut self, mut bytes: &[u8]) -> std::result::Result<(), Gone> {
        while !bytes.is_empty() {
            let room = match self.output.check_write() {
                Ok(0) => {
                    self.wait_ready(&self.output.subscribe())?;
                    continue;
                }
                Ok(n) => n.min(bytes.len() as u64) as usize,
                Err(_) => return Err(Gone),
            };
            self.output.write(&bytes[..room]).map_err(|_| Gone)?;
            bytes = &bytes[room..];
        }
        self.output.flush().map_err(|_| Gone)?;
        Ok(())
    }

    /// Blocks until `p` is ready, or the timeout passes (then the server
    /// counts as gone: an app gets `io`, never a hang).
    fn wait_ready(&self, p: &poll::Pollable) -> std::result::Result<(), Gone> {
        wait_for(p, self.timeout_ns).then_some(()).ok_or(Gone)
    }

    /// The reply to `tag`.
    fn wait(&mut self, tag: u16) -> std::result::Result<R, Gone> {
        if let Some(r) = self.early.remove(&tag) {
            return Ok(r);
        }
        loop {
            let (got, r) = self.next_reply()?;
            if got == tag {
                return Ok(r);
            }
            if !self.discard.remove(&got) {
                self.early.insert(got, r);
            }
        }
    }

    fn next_reply(&mut self) -> std::result::Result<(u16, R), Gone> {
        self.fill(4)?;
        let size = wire::frame_size(self.inbuf[..4].try_into().expect("4 bytes"), self.msize)
            .map_err(|_| Gone)?;
        self.fill(size)?;
        let decoded = wire::decode_r(&self.inbuf[..size]).map_err(|_| Gone);
        self.inbuf.drain(..size);
        decoded
    }

    fn fill(&mut self, want: usize) -> std::result::Result<(), Gone> {
        while self.inbuf.len() < want {
            let need = (want - self.inbuf.len()).max(64 << 10) as u64;
            match self.input.read(need) {
                Ok(bytes) if bytes.is_empty() => self.wait_ready(&self.input.subscribe())?,
                Ok(bytes) => self.inbuf.extend_from_slice(&bytes),
                Err(StreamError::Closed) | Err(StreamError::LastOperationFailed(_)) => {
                    return Err(Gone)
                }
            }
        }
        Ok(())
    }

    fn call(&mut self, t: T) -> std::result::Result<R, Gone> {
        let tag = self.send(&t)?;
        self.wait(tag)
    }
}

/// Whether `p` became ready within `timeout_ns`.
fn wait_for(p: &poll::Pollable, timeout_ns: u64) -> bool {
    if p.ready() {
        return true;
    }
    let timer = monotonic_clock::subscribe_duration(timeout_ns);
    poll::poll(&[p, &timer]).contains(&0)
}

/// `host:port` (a name or an IP literal, IPv6 in brackets).
fn resolve(addr: &str) -> std::result::Result<IpSocketAddress, String> {
    if addr.is_empty() {
        return Err("no server: compose with --remote HOST:PORT or set LARDER_REMOTE".into());
    }
    if let Ok(a) = addr.parse::<std::net::SocketAddr>() {
        return Ok(socket_address(a.ip(), a.port()));
    }
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("`{addr}` is not HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{addr}`: bad port `{port}`"))?;
    let net = instance_network::instance_network();
    let names = ip_name_lookup::resolve_addresses(&net, host)
        .map_err(|e| format!("cannot look up {host}: {e:?}"))?;
    let ready = names.subscribe();
    loop {
        match names.resolve_next_address() {
            Ok(Some(IpAddress::Ipv4(a))) => {
                return Ok(IpSocketAddress::Ipv4(Ipv4SocketAddress {
                    port,
                    address: a,
                }))
            }
            Ok(Some(IpAddress::Ipv6(_))) => continue,
            Ok(None) => return Err(format!("{host} has no IPv4 address")),
            Err(ip_name_lookup::ErrorCode::WouldBlock) => ready.block(),
            Err(e) => return Err(format!("cannot look up {host}: {e:?}")),
        }
    }
}

fn socket_address(ip: std::net::IpAddr, port: u16) -> IpSocketAddress {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            IpSocketAddress::Ipv4(Ipv4SocketAddress {
                port,
                address: (o[0], o[1], o[2], o[3]),
            })
        }
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            IpSocketAddress::Ipv6(Ipv6SocketAddress {
                port,
                flow_info: 0,
                address: (s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
                scope_id: 0,
            })
        }
    }
}

/// File data this instance has read, by inode, valid while the file's
/// data version is the one it was read at.
#[derive(Default)]
struct Cache {
    files: HashMap<u64, CachedFile>,
    bytes: usize,
}

struct CachedFile {
    version: u64,
    /// Whole blocks, or the last one short (end of file as it was then).
    blocks: HashMap<u64, Rc<Vec<u8>>>,
}

impl Cache {
    /// At open: keep what was cached only if the file has not changed.
    fn validate(&mut self, ino: u64, version: u64) {
        if let Some(f) = self.files.get(&ino) {
            if f.version != version {
                self.invalidate(ino);
            }
        }
        self.files.entry(ino).or_insert_with(|| CachedFile {
            version,
            blocks: HashMap::new(),
        });
    }

    /// Forgets the file: it changed on the server (seen at open), or this
    /// instance changed it (its version there moved on).
    fn invalidate(&mut self, ino: u64) {
        if let Some(f) = self.files.remove(&ino) {
            self.bytes -= f.blocks.values().map(|b| b.len()).sum::<usize>();
        }
    }

    fn get(&self, ino: u64, block: u64) -> Option<Rc<Vec<u8>>> {
        self.files.get(&ino)?.blocks.get(&block).cloned()
    }

    fn put(&mut self, ino: u64, block: u64, data: Vec<u8>) -> Rc<Vec<u8>> {
        let data = Rc::new(data);
        while self.bytes + data.len() > CACHE_LIMIT && self.evict_one() {}
        if let Some(f) = self.files.get_mut(&ino) {
            self.bytes += data.len();
            if let Some(old) = f.blocks.insert(block, data.clone()) {
                self.bytes -= old.len();
            }
        }
        data
    }

    fn evict_one(&mut self) -> bool {
        let Some((&ino, _)) = self.files.iter().find(|(_, f)| !f.blocks.is_empty()) else {
            return false;
        };
        let f = self.files.get_mut(&ino).expect("found above");
        let &block = f.blocks.keys().next().expect("not empty");
        let len = f.blocks.remove(&block).map_or(0, |b| b.len());
        self.bytes -= len;
        true
    }
}

struct Client {
    target: Option<Target>,
    session: Option<Session>,
    /// Bumped at every reconnect; handles from an older epoch are stale.
    epoch: u64,
    next_fid: u32,
    free_fids: Vec<u32>,
    cache: Cache,
    /// Whether the last connect failed (said once, not at every call).
    warned: bool,
}

thread_local! {
    static CLIENT: RefCell<Client> = RefCell::new(Client {
        target: None,
        session: None,
        epoch: 0,
        next_fid: ROOT_FID + 1,
        free_fids: Vec::new(),
        cache: Cache::default(),
        warned: false,
    });
}

fn with<X>(f: impl FnOnce(&mut Client) -> X) -> X {
    CLIENT.with(|c| f(&mut c.borrow_mut()))
}

fn errno(e: u32) -> ErrorCode {
    ErrorCode::from_errno(e as i32).unwrap_or(ErrorCode::Io)
}

impl Client {
    /// The live session, connecting first if there is none.
    fn session(&mut self) -> Result<&mut Session> {
        if self.session.is_none() {
            let target = self.target.get_or_insert_with(target);
            match Session::connect(target) {
                Ok(s) => {
                    if self.warned {
                        eprintln!("larder: remote filesystem {}: connected again", target.addr);
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
                        eprintln!("larder: remote filesystem {}: {e}", target.addr);
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
            let addr = self.target.as_ref().map_or("", |t| t.addr.as_str());
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

    /// [`Client::send_all`], failing with the first error any reply carries.
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
            // A handle dropped while the client is busy (or being torn
            // down) keeps its fid; the server frees it with the connection.
            let _ = CLIENT.try_with(|c| {
                if let Ok(mut c) = c.try_borrow_mut() {
                    c.release(fid, epoch)
                }
            });
        }
    }
}

#[derive(Clone)]
pub struct Descriptor(Rc<Handle>);

fn stat_of(a: &Attr) -> Stat {
    let ts = |sec: u64, nsec: u64| Timestamp {
        seconds: sec,
        nanoseconds: (nsec as u32).min(999_999_999),
    };
    Stat {
        dev: 0,
        ino: a.qid.path,
        kind: DescriptorType::from_mode(a.mode),
        nlink: a.nlink,
        size: a.size,
        allocated: a.blocks * 512,
        mode: a.mode & 0o7777,
        uid: a.uid,
        gid: a.gid,
        atime: ts(a.atime_sec, a.atime_nsec),
        mtime: ts(a.mtime_sec, a.mtime_nsec),
        ctime: ts(a.ctime_sec, a.ctime_nsec),
        change: a.data_version,
        data_change: a.data_version,
    }
}

fn new_time(t: NewTimestamp) -> NewTime {
    match t {
        NewTimestamp::NoChange => NewTime::default(),
        NewTimestamp::Now => NewTime {
            how: 1,
            ..NewTime::default()
        },
        NewTimestamp::Timestamp(t) => NewTime {
            how: 2,
            sec: t.seconds,
            nsec: t.nanoseconds,
        },
    }
}

fn hash(h: wire::Hash) -> MetadataHash {
    MetadataHash {
        lower: h.lower,
        upper: h.upper,
    }
}

/// A reply of the wrong type: the server is not one this adapter knows.
fn unexpected(_: R) -> ErrorCode {
    ErrorCode::Io
}

/// The preopen: the server's root, as `/`.
pub fn preopens() -> Vec<(Descriptor, String)> {
    let root = Descriptor(Rc::new(Handle {
        fid: ROOT_FID,
        epoch: 0,
        kind: DescriptorType::Directory,
        flags: DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY,
        ino: 0,
    }));
    vec![(root, "/".to_string())]
}

impl Descriptor {
    fn fid(&self) -> Result<u32> {
        with(|c| c.fid(&self.0))
    }

    fn call(&self, make: impl FnOnce(u32) -> T) -> Result<R> {
        with(|c| {
            let fid = c.fid(&self.0)?;
            c.call(make(fid))
        })
    }

    fn done(&self, make: impl FnOnce(u32) -> T) -> Result<()> {
        self.call(make).map(|_| ())
    }

    pub fn get_flags(&self) -> DescriptorFlags {
        self.0.flags
    }

    pub fn get_type(&self) -> DescriptorType {
        self.0.kind
    }

    /// The inode: known from the open, except for the preopen.
    fn ino(&self) -> Option<u64> {
        if self.0.fid == ROOT_FID {
            self.stat().ok().map(|s| s.ino)
        } else {
            Some(self.0.ino)
        }
    }

    pub fn is_same_object(&self, other: &Descriptor) -> bool {
        let (a, b) = (self.ino(), other.ino());
        a.is_some() && a == b
    }

    pub fn stat(&self) -> Result<Stat> {
        match self.call(|fid| T::Getattr {
            fid,
            mask: wire::GETATTR_BASIC,
        })? {
            R::Getattr { attr } => Ok(stat_of(&attr)),
            r => Err(unexpected(r)),
        }
    }

    pub fn metadata_hash(&self) -> Result<MetadataHash> {
        match self.call(|fid| T::HashFid { fid })? {
            R::HashFid { hash: h } => Ok(hash(h)),
            r => Err(unexpected(r)),
        }
    }

    pub fn open_at(
        &self,
        path_flags: PathFlags,
        path: &str,
        open: OpenFlags,
        flags: DescriptorFlags,
    ) -> Result<Descriptor> {
        with(|c| {
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
                fid: newfid,
                epoch: c.epoch,
                kind,
                flags,
                ino: attr.qid.path,
            })))
        })
    }

    pub fn stat_at(&self, flags: PathFlags, path: &str) -> Result<Stat> {
        match self.call(|dfid| T::StatAt {
            dfid,
            path_flags: flags.bits(),
            path: path.to_owned(),
        })? {
            R::StatAt { attr } => Ok(stat_of(&attr)),
            r => Err(unexpected(r)),
        }
    }

    pub fn metadata_hash_at(&self, flags: PathFlags, path: &str) -> Result<MetadataHash> {
        match self.call(|dfid| T::HashAt {
            dfid,
            path_flags: flags.bits(),
            path: path.to_owned(),
        })? {
            R::HashAt { hash: h } => Ok(hash(h)),
            r => Err(unexpected(r)),
        }
    }

    pub fn create_directory_at(&self, path: &str) -> Result<()> {
        self.done(|dfid| T::MkdirAt {
            dfid,
            path: path.to_owned(),
        })
    }

    pub fn unlink_file_at(&self, path: &str) -> Result<()> {
        self.done(|dfid| T::UnlinkAt {
            dfid,
            path: path.to_owned(),
        })
    }

    pub fn remove_directory_at(&self, path: &str) -> Result<()> {
        self.done(|dfid| T::RmdirAt {
            dfid,
            path: path.to_owned(),
        })
    }

    pub fn symlink_at(&self, target: &str, path: &str) -> Result<()> {
        self.done(|dfid| T::SymlinkAt {
            dfid,
            target: target.to_owned(),
            path: path.to_owned(),
        })
    }

    pub fn readlink_at(&self, path: &str) -> Result<String> {
        match self.call(|dfid| T::ReadlinkAt {
            dfid,
            path: path.to_owned(),
        })? {
            R::ReadlinkAt { target } => Ok(target),
            r => Err(unexpected(r)),
        }
    }

    pub fn rename_at(&self, old_path: &str, new_dir: &Descriptor, new_path: &str) -> Result<()> {
        let newdfid = new_dir.fid()?;
        self.done(|olddfid| T::RenameAt {
            olddfid,
            oldpath: old_path.to_owned(),
            newdfid,
            newpath: new_path.to_owned(),
        })
    }

    pub fn link_at(
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

    pub fn set_times_at(
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
            atime: new_time(atime),
            mtime: new_time(mtime),
        })
    }

    pub fn set_times(&self, atime: NewTimestamp, mtime: NewTimestamp) -> Result<()> {
        self.done(|fid| T::SetTimes {
            fid,
            atime: new_time(atime),
            mtime: new_time(mtime),
        })
    }

    pub fn set_size(&self, size: u64) -> Result<()> {
        let ino = self.0.ino;
        with(|c| c.cache.invalidate(ino));
        self.done(|fid| T::Setattr {
            fid,
            attr: wire::SetAttr {
                valid: wire::setattr::SIZE,
                size,
                ..Default::default()
            },
        })
    }

    pub fn advise(&self, _offset: u64, _len: u64, _advice: Advice) -> Result<()> {
        match self.0.kind {
            DescriptorType::RegularFile => Ok(()),
            _ => Err(ErrorCode::BadDescriptor),
        }
    }

    pub fn sync_data(&self) -> Result<()> {
        self.done(|fid| T::Fsync {
            fid,
            datasync: wire::OptU32(1),
        })
    }

    pub fn sync(&self) -> Result<()> {
        self.done(|fid| T::Fsync {
            fid,
            datasync: wire::OptU32(0),
        })
    }

    /// The checks fs-core makes before touching data, made here so that a
    /// cached read answers exactly as the server would.
    fn require_readable_file(&self) -> Result<()> {
        match self.0.kind {
            DescriptorType::RegularFile => {}
            DescriptorType::Directory => return Err(ErrorCode::IsDirectory),
            DescriptorType::SymbolicLink => return Err(ErrorCode::BadDescriptor),
        }
        if !self.0.flags.contains(DescriptorFlags::READ) {
            return Err(ErrorCode::BadDescriptor);
        }
        Ok(())
    }

    /// Up to `len` bytes at `offset` appended to `out`; 0 at end of file.
    /// Whole blocks are fetched (those missing, in one round trip) and kept.
    pub fn read_append(&self, out: &mut Vec<u8>, len: usize, offset: u64) -> Result<usize> {
        self.require_readable_file()?;
        if len == 0 {
            return Ok(0);
        }
        let ino = self.0.ino;
        with(|c| {
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
        with(|c| {
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
        let piece = with(|c| {
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

    pub fn read_via_stream(&self, offset: u64) -> Result<FileReader> {
        self.stream_handle(DescriptorFlags::READ)?;
        Ok(FileReader::new(self.clone(), offset))
    }

    pub fn write_via_stream(&self, offset: u64) -> Result<FileWriter> {
        self.stream_handle(DescriptorFlags::WRITE)?;
        Ok(FileWriter::new(self.clone(), Some(offset)))
    }

    pub fn append_via_stream(&self) -> Result<FileWriter> {
        self.stream_handle(DescriptorFlags::WRITE)?;
        Ok(FileWriter::new(self.clone(), None))
    }

    /// fs-core's checks for a stream, in its order: the mode, then the
    /// type (only files have bytes).
    fn stream_handle(&self, need: DescriptorFlags) -> Result<()> {
        if !self.0.flags.contains(need) {
            return Err(ErrorCode::BadDescriptor);
        }
        match self.0.kind {
            DescriptorType::RegularFile => Ok(()),
            DescriptorType::Directory => Err(ErrorCode::IsDirectory),
            DescriptorType::SymbolicLink => Err(ErrorCode::BadDescriptor),
        }
    }

    /// Entries through a fid of their own (a clone), so two listings of
    /// one directory do not share a position.
    pub fn read_directory(&self) -> Result<DirStream> {
        let handle = with(|c| {
            let fid = c.fid(&self.0)?;
            let newfid = c.new_fid();
            match c.call(T::Walk {
                fid,
                newfid,
                names: wire::Walked(Vec::new()),
            }) {
                Ok(_) => Ok(Handle {
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

impl DirStream {
    pub fn next_entry(&mut self) -> Result<Option<DirEntry>> {
        while self.pending.is_empty() && !self.done {
            let offset = self.offset;
            let count = with(|c| c.msize()) - wire::IO_HEADER;
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
                    kind: match e.kind {
                        wire::DT_DIR => DescriptorType::Directory,
                        wire::DT_LNK => DescriptorType::SymbolicLink,
                        _ => DescriptorType::RegularFile,
                    },
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
        self.stat().map(|s| s.size)
    }
    fn write(&self, data: &[u8], offset: u64) -> Result<usize> {
        Descriptor::write(self, data, offset)
    }
    fn append(&self, data: &[u8]) -> Result<(u64, usize)> {
        Descriptor::append(self, data)
    }
}
