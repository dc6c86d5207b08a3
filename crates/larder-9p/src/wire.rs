//! 9P2000.L messages and their encoding (little-endian, `size[4] type[1]
//! tag[2] body`), both directions, plus Larder's extension messages.
//!
//! Each message is declared once, as a list of typed fields; encoding and
//! decoding are generated from that list so they cannot drift apart.

use std::fmt;

pub const VERSION: &str = "9P2000.L";
/// Tag of `Tversion`, which is answered before any other.
pub const NOTAG: u16 = 0xffff;
/// "No fid" (an `afid` when there is no authentication).
pub const NOFID: u32 = 0xffff_ffff;
/// `size[4] type[1] tag[2]`.
pub const HEADER: usize = 7;
/// Bytes of an `Rread`/`Rreaddir` that are not data: header plus `count[4]`.
pub const IO_HEADER: u32 = HEADER as u32 + 4;
/// The most names one `Twalk` may carry.
pub const MAX_WALK: usize = 16;

pub const QT_DIR: u8 = 0x80;
pub const QT_SYMLINK: u8 = 0x02;
pub const QT_FILE: u8 = 0x00;

/// `Tgetattr` request/`Rgetattr` valid mask: the basic fields.
pub const GETATTR_BASIC: u64 = 0x0000_07ff;

/// `Tsetattr` valid bits.
pub mod setattr {
    pub const MODE: u32 = 0x01;
    pub const UID: u32 = 0x02;
    pub const GID: u32 = 0x04;
    pub const SIZE: u32 = 0x08;
    pub const ATIME: u32 = 0x10;
    pub const MTIME: u32 = 0x20;
    pub const CTIME: u32 = 0x40;
    pub const ATIME_SET: u32 = 0x80;
    pub const MTIME_SET: u32 = 0x100;
}

/// Linux open flags as they travel in `Tlopen`/`Tlcreate`.
pub mod oflags {
    pub const ACCMODE: u32 = 0o3;
    pub const RDONLY: u32 = 0o0;
    pub const WRONLY: u32 = 0o1;
    pub const RDWR: u32 = 0o2;
    pub const CREAT: u32 = 0o100;
    pub const EXCL: u32 = 0o200;
    pub const TRUNC: u32 = 0o1000;
    pub const APPEND: u32 = 0o2000;
    pub const DIRECTORY: u32 = 0o200000;
}

/// `Tunlinkat` flag: remove a directory.
pub const AT_REMOVEDIR: u32 = 0x200;

/// Why a frame could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The size field is below the header or above the negotiated msize.
    BadSize(u32),
    /// The body ends inside a field.
    Truncated,
    /// Bytes left over after the last field.
    Trailing,
    /// A `Twalk` with more than [`MAX_WALK`] names.
    TooManyNames,
    /// A name that is not UTF-8: fs-core names are strings. The frame is
    /// otherwise sound, so this is answered (`EILSEQ`), not fatal.
    NotUtf8,
    /// A message type this side does not know (answered `EOPNOTSUPP`).
    UnknownType(u8),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::BadSize(n) => write!(f, "frame size {n} out of bounds"),
            DecodeError::Truncated => f.write_str("message ends inside a field"),
            DecodeError::Trailing => f.write_str("bytes after the last field"),
            DecodeError::TooManyNames => write!(f, "walk of more than {MAX_WALK} names"),
            DecodeError::NotUtf8 => f.write_str("name is not UTF-8"),
            DecodeError::UnknownType(t) => write!(f, "unknown message type {t}"),
        }
    }
}

impl std::error::Error for DecodeError {}

type Result<T> = std::result::Result<T, DecodeError>;

/// A cursor over a message body.
pub struct Reader<'a> {
    buf: &'a [u8],
    /// Set when a string was not UTF-8; decoding goes on so the rest of
    /// the frame is still checked, and the caller learns at the end.
    bad_utf8: bool,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
}

/// A value with a 9P encoding.
pub trait Wire: Sized {
    fn put(&self, out: &mut Vec<u8>);
    fn get(r: &mut Reader<'_>) -> Result<Self>;
}

macro_rules! int_wire {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            fn put(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn get(r: &mut Reader<'_>) -> Result<Self> {
                let b = r.take(std::mem::size_of::<$t>())?;
                Ok(<$t>::from_le_bytes(b.try_into().expect("sized above")))
            }
        }
    )*};
}
int_wire!(u8, u16, u32, u64);

impl Wire for String {
    fn put(&self, out: &mut Vec<u8>) {
        // Callers keep names short; a longer one is cut rather than
        // making a frame the peer would misread.
        let len = self.len().min(u16::MAX as usize);
        (len as u16).put(out);
        out.extend_from_slice(&self.as_bytes()[..len]);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        let len = u16::get(r)? as usize;
        let bytes = r.take(len)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => {
                r.bad_utf8 = true;
                Ok(String::new())
            }
        }
    }
}

/// `count[4]` bytes: the payload of `Twrite`, `Rread` and `Rreaddir`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Data(pub Vec<u8>);

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Data({} bytes)", self.0.len())
    }
}

impl Wire for Data {
    fn put(&self, out: &mut Vec<u8>) {
        (self.0.len() as u32).put(out);
        out.extend_from_slice(&self.0);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        let len = u32::get(r)? as usize;
        Ok(Data(r.take(len)?.to_vec()))
    }
}

/// What a walk carries: `n[2]` then up to [`MAX_WALK`] items (names in
/// `Twalk`, qids in `Rwalk`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Walked<T>(pub Vec<T>);

pub type Names = Walked<String>;
pub type Qids = Walked<Qid>;

impl<T: Wire> Wire for Walked<T> {
    fn put(&self, out: &mut Vec<u8>) {
        (self.0.len() as u16).put(out);
        self.0.iter().for_each(|x| x.put(out));
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        let n = u16::get(r)? as usize;
        if n > MAX_WALK {
            return Err(DecodeError::TooManyNames);
        }
        (0..n).map(|_| T::get(r)).collect::<Result<_>>().map(Walked)
    }
}

/// A `u32` that older clients leave off the end (`Tfsync`'s `datasync`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct OptU32(pub u32);

impl Wire for OptU32 {
    fn put(&self, out: &mut Vec<u8>) {
        self.0.put(out);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self> {
        if r.buf.is_empty() {
            Ok(OptU32(0))
        } else {
            u32::get(r).map(OptU32)
        }
    }
}

macro_rules! wire_struct {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $field:ident: $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
        pub struct $name { $($(#[$fm])* pub $field: $t),* }
        impl Wire for $name {
            fn put(&self, out: &mut Vec<u8>) { $(self.$field.put(out);)* }
            fn get(r: &mut Reader<'_>) -> Result<Self> {
                Ok($name { $($field: <$t>::get(r)?),* })
            }
        }
    };
}

wire_struct! {
    /// The server's identity for a file: type bits, version, unique path.
    pub struct Qid { pub kind: u8, pub version: u32, pub path: u64 }
}

wire_struct! {
    /// `Rgetattr`'s body (and the Larder extension's stat answers).
    pub struct Attr {
        pub valid: u64,
        pub qid: Qid,
        pub mode: u32,
        pub uid: u32,
        pub gid: u32,
        pub nlink: u64,
        pub rdev: u64,
        pub size: u64,
        pub blksize: u64,
        pub blocks: u64,
        pub atime_sec: u64,
        pub atime_nsec: u64,
        pub mtime_sec: u64,
        pub mtime_nsec: u64,
        pub ctime_sec: u64,
        pub ctime_nsec: u64,
        pub btime_sec: u64,
        pub btime_nsec: u64,
        pub gen: u64,
        pub data_version: u64,
    }
}

wire_struct! {
    /// `Tsetattr`'s body after the fid.
    pub struct SetAttr {
        pub valid: u32,
        pub mode: u32,
        pub uid: u32,
        pub gid: u32,
        pub size: u64,
        pub atime_sec: u64,
        pub atime_nsec: u64,
        pub mtime_sec: u64,
        pub mtime_nsec: u64,
    }
}

wire_struct! {
    /// `Rstatfs`.
    pub struct StatFs {
        pub kind: u32,
        pub bsize: u32,
        pub blocks: u64,
        pub bfree: u64,
        pub bavail: u64,
        pub files: u64,
        pub ffree: u64,
        pub fsid: u64,
        pub namelen: u32,
    }
}

wire_struct! {
    /// A timestamp to set (extension): `how` is 0 keep, 1 now, 2 the value.
    pub struct NewTime { pub how: u8, pub sec: u64, pub nsec: u32 }
}

wire_struct! {
    /// `metadata-hash` (extension).
    pub struct Hash { pub lower: u64, pub upper: u64 }
}

macro_rules! messages {
    ($(#[$m:meta])* $name:ident { $( $(#[$vm:meta])* $variant:ident = $ty:literal { $($field:ident : $fty:ty),* $(,)? } ),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq)]
        pub enum $name { $( $(#[$vm])* $variant { $($field: $fty),* } ),* }

        impl $name {
            /// The message type byte.
            pub fn kind(&self) -> u8 {
                match self { $( $name::$variant { .. } => $ty ),* }
            }

            fn put_body(&self, out: &mut Vec<u8>) {
                match self {
                    $( $name::$variant { $($field),* } => { $( Wire::put($field, out); )* } ),*
                }
            }

            fn get_body(kind: u8, r: &mut Reader<'_>) -> Result<Self> {
                Ok(match kind {
                    $( $ty => $name::$variant { $($field: <$fty as Wire>::get(r)?),* }, )*
                    other => return Err(DecodeError::UnknownType(other)),
                })
            }
        }
    };
}

messages! {
    /// Requests, client to server.
    T {
        Statfs = 8 { fid: u32 },
        Lopen = 12 { fid: u32, flags: u32 },
        Lcreate = 14 { fid: u32, name: String, flags: u32, mode: u32, gid: u32 },
        Symlink = 16 { fid: u32, name: String, target: String, gid: u32 },
        Mknod = 18 { dfid: u32, name: String, mode: u32, major: u32, minor: u32, gid: u32 },
        Rename = 20 { fid: u32, dfid: u32, name: String },
        Readlink = 22 { fid: u32 },
        Getattr = 24 { fid: u32, mask: u64 },
        Setattr = 26 { fid: u32, attr: SetAttr },
        Xattrwalk = 30 { fid: u32, newfid: u32, name: String },
        Xattrcreate = 32 { fid: u32, name: String, size: u64, flags: u32 },
        Readdir = 40 { fid: u32, offset: u64, count: u32 },
        Fsync = 50 { fid: u32, datasync: OptU32 },
        Lock = 52 { fid: u32, kind: u8, flags: u32, start: u64, length: u64, proc_id: u32, client_id: String },
        Getlock = 54 { fid: u32, kind: u8, start: u64, length: u64, proc_id: u32, client_id: String },
        Link = 70 { dfid: u32, fid: u32, name: String },
        Mkdir = 72 { dfid: u32, name: String, mode: u32, gid: u32 },
        Renameat = 74 { olddfid: u32, oldname: String, newdfid: u32, newname: String },
        Unlinkat = 76 { dfid: u32, name: String, flags: u32 },
        Version = 100 { msize: u32, version: String },
        Auth = 102 { afid: u32, uname: String, aname: String, n_uname: u32 },
        Attach = 104 { fid: u32, afid: u32, uname: String, aname: String, n_uname: u32 },
        Flush = 108 { oldtag: u16 },
        Walk = 110 { fid: u32, newfid: u32, names: Names },
        Read = 116 { fid: u32, offset: u64, count: u32 },
        Write = 118 { fid: u32, offset: u64, data: Data },
        Clunk = 120 { fid: u32 },
        Remove = 122 { fid: u32 },
        // Larder's extension: WASI's path operations, resolved by fs-core
        // relative to a directory fid exactly as `wasi:filesystem` defines
        // them (symlinks, `..`, sandboxing, which error wins). Flags are
        // WASI's bit sets; errors are `Rlerror` with Linux errnos.
        /// `open-at`: `newfid` becomes the opened descriptor.
        OpenAt = 200 { dfid: u32, newfid: u32, path_flags: u8, path: String, open_flags: u8, flags: u8 },
        StatAt = 202 { dfid: u32, path_flags: u8, path: String },
        MkdirAt = 204 { dfid: u32, path: String },
        UnlinkAt = 206 { dfid: u32, path: String },
        RmdirAt = 208 { dfid: u32, path: String },
        RenameAt = 210 { olddfid: u32, oldpath: String, newdfid: u32, newpath: String },
        LinkAt = 212 { olddfid: u32, path_flags: u8, oldpath: String, newdfid: u32, newpath: String },
        SymlinkAt = 214 { dfid: u32, target: String, path: String },
        ReadlinkAt = 216 { dfid: u32, path: String },
        SetTimesAt = 218 { dfid: u32, path_flags: u8, path: String, atime: NewTime, mtime: NewTime },
        HashAt = 220 { dfid: u32, path_flags: u8, path: String },
        /// `metadata-hash` of an open fid.
        HashFid = 222 { fid: u32 },
        /// Appends atomically at the end of file, whatever other writers did.
        Append = 224 { fid: u32, data: Data },
        /// `set-times` of an open fid.
        SetTimes = 226 { fid: u32, atime: NewTime, mtime: NewTime },
    }
}

messages! {
    /// Replies, server to client: the request's type plus one.
    R {
        Lerror = 7 { ecode: u32 },
        Statfs = 9 { stat: StatFs },
        Lopen = 13 { qid: Qid, iounit: u32 },
        Lcreate = 15 { qid: Qid, iounit: u32 },
        Symlink = 17 { qid: Qid },
        Mknod = 19 { qid: Qid },
        Rename = 21 {},
        Readlink = 23 { target: String },
        Getattr = 25 { attr: Attr },
        Setattr = 27 {},
        Xattrwalk = 31 { size: u64 },
        Xattrcreate = 33 {},
        Readdir = 41 { data: Data },
        Fsync = 51 {},
        Lock = 53 { status: u8 },
        Getlock = 55 { kind: u8, start: u64, length: u64, proc_id: u32, client_id: String },
        Link = 71 {},
        Mkdir = 73 { qid: Qid },
        Renameat = 75 {},
        Unlinkat = 77 {},
        Version = 101 { msize: u32, version: String },
        Auth = 103 { aqid: Qid },
        Attach = 105 { qid: Qid },
        Flush = 109 {},
        Walk = 111 { qids: Qids },
        Read = 117 { data: Data },
        Write = 119 { count: u32 },
        Clunk = 121 {},
        Remove = 123 {},
        OpenAt = 201 { attr: Attr },
        StatAt = 203 { attr: Attr },
        MkdirAt = 205 {},
        UnlinkAt = 207 {},
        RmdirAt = 209 {},
        RenameAt = 211 {},
        LinkAt = 213 {},
        SymlinkAt = 215 {},
        ReadlinkAt = 217 { target: String },
        SetTimesAt = 219 {},
        HashAt = 221 { hash: Hash },
        HashFid = 223 { hash: Hash },
        Append = 225 { offset: u64, count: u32 },
        SetTimes = 227 {},
    }
}

/// A whole frame for `msg` with `tag`, appended to `out`.
fn frame(kind: u8, tag: u16, out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
    out.extend_from_slice(&tag.to_le_bytes());
    body(out);
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_le_bytes());
}

impl T {
    pub fn encode(&self, tag: u16, out: &mut Vec<u8>) {
        frame(self.kind(), tag, out, |o| self.put_body(o));
    }
}

impl R {
    pub fn encode(&self, tag: u16, out: &mut Vec<u8>) {
        frame(self.kind(), tag, out, |o| self.put_body(o));
    }
}

/// The size field of a frame whose first four bytes are `head`, checked
/// against `msize` before anything that large is read.
pub fn frame_size(head: [u8; 4], msize: u32) -> Result<usize> {
    let size = u32::from_le_bytes(head);
    if size < HEADER as u32 || size > msize {
        return Err(DecodeError::BadSize(size));
    }
    Ok(size as usize)
}

/// The type and tag of a whole frame, when it has a header.
pub fn peek(frame: &[u8]) -> Option<(u8, u16)> {
    (frame.len() >= HEADER).then(|| (frame[4], u16::from_le_bytes([frame[5], frame[6]])))
}

fn decode<M>(frame: &[u8], get: impl FnOnce(u8, &mut Reader<'_>) -> Result<M>) -> Result<(u16, M)> {
    let (kind, tag) = peek(frame).ok_or(DecodeError::Truncated)?;
    let size = u32::from_le_bytes(frame[..4].try_into().expect("header checked"));
    if size as usize != frame.len() {
        return Err(DecodeError::BadSize(size));
    }
    let mut r = Reader {
        buf: &frame[HEADER..],
        bad_utf8: false,
    };
    let msg = get(kind, &mut r)?;
    if !r.buf.is_empty() {
        return Err(DecodeError::Trailing);
    }
    if r.bad_utf8 {
        return Err(DecodeError::NotUtf8);
    }
    Ok((tag, msg))
}

/// Decodes one whole request frame (size field included).
pub fn decode_t(frame: &[u8]) -> Result<(u16, T)> {
    decode(frame, T::get_body)
}

/// Decodes one whole reply frame (size field included).
pub fn decode_r(frame: &[u8]) -> Result<(u16, R)> {
    decode(frame, R::get_body)
}

/// One `Rreaddir` entry: `qid[13] offset[8] type[1] name[s]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub qid: Qid,
    /// Where the next `Treaddir` starts after this entry.
    pub offset: u64,
    /// `DT_*`.
    pub kind: u8,
    pub name: String,
}

pub const DT_DIR: u8 = 4;
pub const DT_REG: u8 = 8;
pub const DT_LNK: u8 = 10;

impl DirEntry {
    pub fn encoded_len(&self) -> usize {
        13 + 8 + 1 + 2 + self.name.len()
    }

    pub fn put(&self, out: &mut Vec<u8>) {
        self.qid.put(out);
        self.offset.put(out);
        self.kind.put(out);
        self.name.put(out);
    }

    /// The entries of an `Rreaddir` payload.
    pub fn parse_all(data: &[u8]) -> Result<Vec<DirEntry>> {
        let mut r = Reader {
            buf: data,
            bad_utf8: false,
        };
        let mut out = Vec::new();
        while !r.buf.is_empty() {
            out.push(DirEntry {
                qid: Qid::get(&mut r)?,
                offset: u64::get(&mut r)?,
                kind: u8::get(&mut r)?,
                name: String::get(&mut r)?,
            });
        }
        if r.bad_utf8 {
            return Err(DecodeError::NotUtf8);
        }
        Ok(out)
    }
}

/// The decoder's contract, for the fuzz target and its regression test:
/// any bytes decode or fail without panicking, and a frame that decodes
/// re-encodes to exactly its own bytes (the encoding is canonical), except
/// a `Tfsync` from an older client, which gains its `datasync` field.
pub fn check_decoder(frame: &[u8]) {
    if let Ok((tag, t)) = decode_t(frame) {
        let mut again = Vec::new();
        t.encode(tag, &mut again);
        if !matches!(t, T::Fsync { .. }) || again.len() == frame.len() {
            assert_eq!(again, frame, "{t:?} re-encodes differently");
        }
    }
    if let Ok((tag, r)) = decode_r(frame) {
        let mut again = Vec::new();
        r.encode(tag, &mut again);
        assert_eq!(again, frame, "{r:?} re-encodes differently");
    }
    if frame.len() >= 4 {
        let _ = frame_size(frame[..4].try_into().expect("4 bytes"), u32::MAX);
    }
    let _ = DirEntry::parse_all(frame);
}
