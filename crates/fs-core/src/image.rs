//! A versioned, checksummed serialisation of a directory tree, used for
//! bundled directories and snapshots.
//!
//! Layout (little-endian):
//!
//! ```text
//! header    magic "LARDRIMG" | version u16 | flags u16 (0) | node count u32
//!           | metadata length u64 | metadata crc32 u32 | header crc32 u32
//! metadata  node*; node 0 is the root directory
//!   node    kind u8 (1 file, 2 dir, 3 symlink) | mode u32 | uid u32 | gid u32
//!           | atime, mtime, ctime: (seconds u64, nanoseconds u32)
//!   file    size u64 | extent count u32 | (offset u64, data offset u64, len u64)*
//!           | crc32 of the extents' bytes
//!   dir     entry count u32 | (name length u16, name, node u32)*, names sorted
//!   symlink target length u16 | target
//! data      file bytes, addressed by the extents
//! ```
//!
//! Hard links are several entries naming one file node. Holes are simply not
//! covered by an extent. The metadata has its own checksum and each file its
//! own, so a loader can check the tree up front and a file's bytes when it
//! reads them. The decoder validates everything (bounds, names, tree shape,
//! checksums) and reports the first problem as an [`ImageError`]; no input
//! makes it panic.

use crate::data::{FileData, Pending};
use crate::descriptor::Descriptor;
use crate::error::ErrorCode;
use crate::fs::Shared;
use crate::inode::{Body, Dir, Inode, Meta};
use crate::time::Timestamp;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

pub const MAGIC: &[u8; 8] = b"LARDRIMG";
pub const VERSION: u16 = 1;
const HEADER_LEN: usize = 32;
const KIND_FILE: u8 = 1;
const KIND_DIR: u8 = 2;
const KIND_SYMLINK: u8 = 3;
/// The smallest encoded node, bounding how many a metadata section can hold.
const MIN_NODE_LEN: usize = 1 + 12 + 36 + 2;

/// Why an image was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// The input ends before `needed` bytes at offset `at`.
    Truncated {
        at: usize,
        needed: usize,
    },
    BadMagic,
    UnsupportedVersion(u16),
    /// A checksum did not match: `"header"`, `"metadata"` or a file node.
    Checksum {
        what: &'static str,
        node: Option<u32>,
    },
    /// A structural problem in node `node`.
    Malformed {
        node: u32,
        reason: &'static str,
    },
    /// The tree is valid but the filesystem refused it (quota, non-empty
    /// target directory, read-only target...).
    Fs(ErrorCode),
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::Truncated { at, needed } => {
                write!(f, "image truncated: {needed} bytes needed at offset {at}")
            }
            ImageError::BadMagic => f.write_str("not a Larder image (bad magic)"),
            ImageError::UnsupportedVersion(v) => write!(f, "unsupported image version {v}"),
            ImageError::Checksum {
                what,
                node: Some(n),
            } => write!(f, "{what} checksum mismatch in node {n}"),
            ImageError::Checksum { what, node: None } => write!(f, "{what} checksum mismatch"),
            ImageError::Malformed { node, reason } => {
                write!(f, "malformed image node {node}: {reason}")
            }
            ImageError::Fs(e) => write!(f, "filesystem refused the image: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ImageError {}

impl From<ErrorCode> for ImageError {
    fn from(e: ErrorCode) -> Self {
        ImageError::Fs(e)
    }
}

struct Writer {
    meta: Vec<u8>,
}

impl Writer {
    fn u8(&mut self, v: u8) {
        self.meta.push(v)
    }
    fn u16(&mut self, v: u16) {
        self.meta.extend_from_slice(&v.to_le_bytes())
    }
    fn u32(&mut self, v: u32) {
        self.meta.extend_from_slice(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) {
        self.meta.extend_from_slice(&v.to_le_bytes())
    }
    fn time(&mut self, t: Timestamp) {
        self.u64(t.seconds);
        self.u32(t.nanoseconds);
    }
    fn bytes16(&mut self, b: &[u8]) {
        self.u16(b.len() as u16);
        self.meta.extend_from_slice(b);
    }
}

/// Serialises the tree under the directory `dir` (its own metadata becomes
/// the root node's).
pub fn encode(dir: &Descriptor) -> crate::Result<Vec<u8>> {
    let plan = plan(dir)?;
    let mut out = Vec::new();
    let len = usize::try_from(plan.len()).map_err(|_| ErrorCode::InsufficientMemory)?;
    out.try_reserve_exact(len)
        .map_err(|_| ErrorCode::InsufficientMemory)?;
    plan.write_to(|bytes| {
        out.extend_from_slice(bytes);
        Ok::<(), ErrorCode>(())
    })?;
    Ok(out)
}

/// A file's part of the data section, as planned: the extents `(file
/// offset, length)` written in order, and the checksum they hash to.
struct PlannedFile {
    inode: Arc<Inode>,
    extents: Vec<(u64, u64)>,
    crc: u32,
}

/// The image of a tree, planned but not yet written: the header and
/// metadata are built, and the files' bytes are read as they are written
/// out ([`Encoding::write_to`]). A file whose bytes still live in a
/// checksummed source (a lazily loaded image, a host file imported by
/// reference) is copied from there a chunk at a time, so an image can be
/// written out holding no more than a chunk of its contents in memory.
pub struct Encoding {
    head: Vec<u8>,
    files: Vec<PlannedFile>,
    data_len: u64,
    shift: u32,
}

/// Plans the image of the tree under the directory `dir` (its own metadata
/// becomes the root node's). The tree must not change until the image is
/// written; a file that does makes [`Encoding::write_to`] fail.
pub fn plan(dir: &Descriptor) -> crate::Result<Encoding> {
    if !dir.inode.is_dir() {
        return Err(ErrorCode::NotDirectory);
    }
    let shift = dir.shared.block_shift;
    // Number nodes breadth-first; a file reached twice (hard link) keeps
    // the number it got first.
    let mut order: Vec<Arc<Inode>> = vec![dir.inode.clone()];
    let mut index: BTreeMap<u64, u32> = BTreeMap::new();
    index.insert(dir.inode.ino, 0);
    let mut w = Writer { meta: Vec::new() };
    let mut files = Vec::new();
    let mut data_len = 0u64;
    let mut next = 0;
    while next < order.len() {
        let inode = order[next].clone();
        next += 1;
        // A source without a checksum (a store's ranged reads) is fetched
        // now; one with a checksum is copied from where it is when written.
        let fetch = inode
            .state
            .read()
            .file()
            .is_some_and(|f| f.is_pending() && f.whole_source().is_none());
        if fetch {
            inode.load_file()?;
        }
        let state = inode.state.read();
        let m = state.meta;
        let kind = match &state.body {
            Body::File(_) => KIND_FILE,
            Body::Dir(_) => KIND_DIR,
            Body::Symlink(_) => KIND_SYMLINK,
        };
        w.u8(kind);
        w.u32(m.mode);
        w.u32(m.uid);
        w.u32(m.gid);
        w.time(m.atime);
        w.time(m.mtime);
        w.time(m.ctime);
        match &state.body {
            Body::File(f) => {
                w.u64(f.size());
                let (extents, crc) = file_extents(f, shift);
                w.u32(extents.len() as u32);
                for &(off, len) in &extents {
                    w.u64(off);
                    w.u64(data_len);
                    w.u64(len);
                    data_len += len;
                }
                w.u32(crc);
                files.push(PlannedFile {
                    inode: inode.clone(),
                    extents,
                    crc,
                });
            }
            Body::Dir(d) => {
                w.u32(d.entries.len() as u32);
                for (name, child) in &d.entries {
                    let n = match index.get(&child.ino) {
                        Some(&n) => n,
                        None => {
                            let n = order.len() as u32;
                            index.insert(child.ino, n);
                            order.push(child.clone());
                            n
                        }
                    };
                    w.bytes16(name.as_bytes());
                    w.u32(n);
                }
            }
            Body::Symlink(t) => w.bytes16(t.as_bytes()),
        }
    }
    let mut head = Vec::with_capacity(HEADER_LEN + w.meta.len());
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&VERSION.to_le_bytes());
    head.extend_from_slice(&0u16.to_le_bytes());
    head.extend_from_slice(&(order.len() as u32).to_le_bytes());
    head.extend_from_slice(&(w.meta.len() as u64).to_le_bytes());
    head.extend_from_slice(&crc32fast::hash(&w.meta).to_le_bytes());
    let hcrc = crc32fast::hash(&head);
    head.extend_from_slice(&hcrc.to_le_bytes());
    head.extend_from_slice(&w.meta);
    Ok(Encoding {
        head,
        files,
        data_len,
        shift,
    })
}

/// A file's data extents `(file offset, length)`, adjacent ones merged, and
/// the checksum of their bytes in order: taken from its source when its
/// bytes are all still there, else hashed from memory.
fn file_extents(f: &FileData, shift: u32) -> (Vec<(u64, u64)>, u32) {
    let mut extents: Vec<(u64, u64)> = Vec::new();
    let mut add = |off: u64, len: u64| match extents.last_mut() {
        Some(last) if last.0 + last.1 == off => last.1 += len,
        _ => extents.push((off, len)),
    };
    if let Some(p) = f.whole_source() {
        p.extents.iter().for_each(|&(off, _, len)| add(off, len));
        return (extents, p.crc.unwrap_or_default());
    }
    let mut crc = crc32fast::Hasher::new();
    for (off, bytes) in f.extents(shift) {
        crc.update(bytes);
        add(off, bytes.len() as u64);
    }
    (extents, crc.finalize())
}

impl Encoding {
    /// The image's length in bytes.
    pub fn len(&self) -> u64 {
        self.head.len() as u64 + self.data_len
    }

    /// Never true: an image has at least a header and a root.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the image to `out` in pieces, in order. A file whose extents
    /// or bytes differ from what was planned (it changed, or its source
    /// did) fails with `io`, since the metadata already written promised
    /// other bytes; so does a source that cannot be read.
    pub fn write_to<E: From<ErrorCode>>(
        &self,
        mut out: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        out(&self.head)?;
        let mut buf = Vec::new();
        for planned in &self.files {
            let state = planned.inode.state.read();
            let f = state.file().ok_or(ErrorCode::Io)?;
            let mut crc = crc32fast::Hasher::new();
            let mut written = Vec::with_capacity(planned.extents.len());
            let mut note = |off: u64, len: u64| match written.last_mut() {
                Some((o, l)) if *o + *l == off => *l += len,
                _ => written.push((off, len)),
            };
            if let Some(p) = f.whole_source() {
                p.read_chunks(&mut buf, |at, bytes| {
                    crc.update(bytes);
                    note(at, bytes.len() as u64);
                    out(bytes)
                })?;
            } else {
                for (off, bytes) in f.extents(self.shift) {
                    crc.update(bytes);
                    out(bytes)?;
                    note(off, bytes.len() as u64);
                }
            }
            if written != planned.extents || crc.finalize() != planned.crc {
                return Err(ErrorCode::Io.into());
            }
        }
        Ok(())
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ImageError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or(ImageError::Truncated {
            at: self.base + self.pos,
            needed: n,
        })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], ImageError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, ImageError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, ImageError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, ImageError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, ImageError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

/// One decoded node, before it becomes an inode.
enum NodeBody<'a> {
    File {
        size: u64,
        /// (file offset, offset in the data section, length)
        extents: Vec<(u64, u64, u64)>,
        crc: u32,
    },
    Dir(Vec<(&'a str, u32)>),
    Symlink(&'a str),
}

struct Node<'a> {
    meta: Meta,
    body: NodeBody<'a>,
}

/// What the parser knows of the data section: its bytes (checksums are
/// verified now) or only its length (checksums wait for first use).
#[derive(Clone, Copy)]
enum Data<'a> {
    Bytes(&'a [u8]),
    Len(u64),
}

/// Where a lazily loaded image's bytes come from (a bundle, a file, an
/// object store). Reads are positional and must fill `buf` exactly.
pub trait ImageSource: Send + Sync {
    /// Total bytes in the source.
    fn size(&self) -> u64;
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> crate::Result<()>;
}

impl ImageSource for Vec<u8> {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> crate::Result<()> {
        let start = usize::try_from(offset).map_err(|_| ErrorCode::Io)?;
        let bytes = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or(ErrorCode::Io)?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
}

/// The validated content of an image, borrowing names and data from it.
pub struct Image<'a> {
    nodes: Vec<Node<'a>>,
    data: &'a [u8],
}

/// Checks the fixed header; returns (node count, metadata length, metadata
/// checksum).
fn parse_header(buf: &[u8]) -> Result<(u32, u64, u32), ImageError> {
    let header = buf.get(..HEADER_LEN).ok_or(ImageError::Truncated {
        at: 0,
        needed: HEADER_LEN,
    })?;
    if &header[..8] != MAGIC {
        return Err(ImageError::BadMagic);
    }
    let mut h = Reader {
        buf: header,
        pos: 8,
        base: 0,
    };
    let version = h.u16()?;
    let flags = h.u16()?;
    let count = h.u32()?;
    let meta_len = h.u64()?;
    let meta_crc = h.u32()?;
    let header_crc = h.u32()?;
    if crc32fast::hash(&header[..HEADER_LEN - 4]) != header_crc {
        return Err(ImageError::Checksum {
            what: "header",
            node: None,
        });
    }
    if version != VERSION {
        return Err(ImageError::UnsupportedVersion(version));
    }
    if flags != 0 {
        return Err(ImageError::Malformed {
            node: 0,
            reason: "unknown header flags",
        });
    }
    Ok((count, meta_len, meta_crc))
}

/// The metadata length as a slice bound, if `available` bytes follow the
/// header.
fn meta_len_within(meta_len: u64, available: u64) -> Result<usize, ImageError> {
    usize::try_from(meta_len)
        .ok()
        .filter(|&l| l as u64 <= available)
        .ok_or(ImageError::Truncated {
            at: HEADER_LEN,
            needed: meta_len.min(usize::MAX as u64) as usize,
        })
}

/// Checks and parses the metadata section into a tree of nodes.
fn parse_meta<'a>(
    meta: &'a [u8],
    count: u32,
    meta_crc: u32,
    data: Data<'a>,
) -> Result<Vec<Node<'a>>, ImageError> {
    if crc32fast::hash(meta) != meta_crc {
        return Err(ImageError::Checksum {
            what: "metadata",
            node: None,
        });
    }
    if count == 0 || count as usize > meta.len() / MIN_NODE_LEN {
        return Err(ImageError::Malformed {
            node: 0,
            reason: "node count does not fit the metadata",
        });
    }
    let mut r = Reader {
        buf: meta,
        pos: 0,
        base: HEADER_LEN,
    };
    let mut nodes = Vec::with_capacity(count as usize);
    for n in 0..count {
        nodes.push(parse_node(&mut r, n, count, data)?);
    }
    if r.pos != meta.len() {
        return Err(ImageError::Malformed {
            node: count - 1,
            reason: "trailing bytes after the last node",
        });
    }
    check_tree(&nodes)?;
    Ok(nodes)
}

impl<'a> Image<'a> {
    /// Checks and parses an image. Every file's checksum is verified.
    pub fn parse(buf: &'a [u8]) -> Result<Image<'a>, ImageError> {
        let (count, meta_len, meta_crc) = parse_header(buf)?;
        let rest = &buf[HEADER_LEN..];
        let meta_len = meta_len_within(meta_len, rest.len() as u64)?;
        let (meta, data) = rest.split_at(meta_len);
        let nodes = parse_meta(meta, count, meta_crc, Data::Bytes(data))?;
        Ok(Image { nodes, data })
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
}

/// The tree must be a tree: the root a directory, every other directory
/// named exactly once, every node reachable.
fn check_tree(nodes: &[Node<'_>]) -> Result<(), ImageError> {
    if !matches!(nodes[0].body, NodeBody::Dir(_)) {
        return Err(ImageError::Malformed {
            node: 0,
            reason: "root is not a directory",
        });
    }
    let mut refs = vec![0u32; nodes.len()];
    refs[0] = 1;
    for (n, node) in nodes.iter().enumerate() {
        if let NodeBody::Dir(entries) = &node.body {
            for &(_, child) in entries {
                if child == 0 {
                    return Err(ImageError::Malformed {
                        node: n as u32,
                        reason: "entry names the root",
                    });
                }
                refs[child as usize] += 1;
                if refs[child as usize] > 1
                    && matches!(nodes[child as usize].body, NodeBody::Dir(_))
                {
                    return Err(ImageError::Malformed {
                        node: child,
                        reason: "directory named twice",
                    });
                }
            }
        }
    }
    if let Some(n) = refs.iter().position(|&r| r == 0) {
        return Err(ImageError::Malformed {
            node: n as u32,
            reason: "unreachable node",
        });
    }
    // With every directory named once, a cycle would leave the nodes on it
    // unreachable from the root; walk to be sure.
    let mut seen = vec![false; nodes.len()];
    let mut stack = vec![0u32];
    seen[0] = true;
    let mut reached = 1;
    while let Some(n) = stack.pop() {
        if let NodeBody::Dir(entries) = &nodes[n as usize].body {
            for &(_, child) in entries {
                if !seen[child as usize] {
                    seen[child as usize] = true;
                    reached += 1;
                    stack.push(child);
                }
            }
        }
    }
    if reached != nodes.len() {
        return Err(ImageError::Malformed {
            node: 0,
            reason: "directory cycle",
        });
    }
    Ok(())
}

fn parse_node<'a>(
    r: &mut Reader<'a>,
    n: u32,
    count: u32,
    data: Data<'a>,
) -> Result<Node<'a>, ImageError> {
    let bad = |reason| ImageError::Malformed { node: n, reason };
    let kind = r.u8()?;
    let mode = r.u32()?;
    if mode > 0o7777 {
        return Err(bad("mode has bits beyond 0o7777"));
    }
    let uid = r.u32()?;
    let gid = r.u32()?;
    let mut time = || -> Result<Timestamp, ImageError> {
        let s = r.u64()?;
        let ns = r.u32()?;
        Timestamp::new(s, ns).map_err(|_| bad("nanoseconds out of range"))
    };
    let (atime, mtime, ctime) = (time()?, time()?, time()?);
    let meta = Meta {
        // The inode's own, when it is made.
        ino: 0,
        mode,
        uid,
        gid,
        nlink: 0,
        atime,
        mtime,
        ctime,
        change: 0,
        data_change: 0,
        noted: 0,
    };
    let body = match kind {
        KIND_FILE => {
            let size = r.u64()?;
            let count_e = r.u32()? as usize;
            if count_e > r.buf.len().saturating_sub(r.pos) / 24 {
                return Err(bad("extent count does not fit the metadata"));
            }
            let mut extents = Vec::with_capacity(count_e);
            let mut end = 0u64;
            let mut crc = crc32fast::Hasher::new();
            for _ in 0..count_e {
                let (off, data_off, len) = (r.u64()?, r.u64()?, r.u64()?);
                if len == 0 {
                    return Err(bad("empty extent"));
                }
                if off < end {
                    return Err(bad("extents overlap or are out of order"));
                }
                end = off
                    .checked_add(len)
                    .filter(|&e| e <= size)
                    .ok_or(bad("extent past the file size"))?;
                let outside = bad("extent outside the data section");
                match data {
                    Data::Bytes(data) => {
                        let bytes = usize::try_from(data_off)
                            .ok()
                            .zip(usize::try_from(len).ok())
                            .and_then(|(o, l)| data.get(o..o.checked_add(l)?))
                            .ok_or(outside)?;
                        crc.update(bytes);
                    }
                    Data::Len(total) => {
                        if data_off.checked_add(len).is_none_or(|e| e > total) {
                            return Err(outside);
                        }
                    }
                }
                extents.push((off, data_off, len));
            }
            let want = r.u32()?;
            if matches!(data, Data::Bytes(_)) && crc.finalize() != want {
                return Err(ImageError::Checksum {
                    what: "file data",
                    node: Some(n),
                });
            }
            NodeBody::File {
                size,
                extents,
                crc: want,
            }
        }
        KIND_DIR => {
            let count_e = r.u32()? as usize;
            if count_e > r.buf.len().saturating_sub(r.pos) / 7 {
                return Err(bad("entry count does not fit the metadata"));
            }
            let mut entries: Vec<(&str, u32)> = Vec::with_capacity(count_e);
            for _ in 0..count_e {
                let len = r.u16()? as usize;
                let name =
                    core::str::from_utf8(r.take(len)?).map_err(|_| bad("name is not UTF-8"))?;
                if name.is_empty()
                    || name.len() > 255
                    || name == "."
                    || name == ".."
                    || name.contains(['/', '\0'])
                {
                    return Err(bad("invalid entry name"));
                }
                if entries.last().is_some_and(|&(prev, _)| prev >= name) {
                    return Err(bad("entry names not sorted and unique"));
                }
                let child = r.u32()?;
                if child >= count {
                    return Err(bad("entry names a node that does not exist"));
                }
                entries.push((name, child));
            }
            NodeBody::Dir(entries)
        }
        KIND_SYMLINK => {
            let len = r.u16()? as usize;
            let target = core::str::from_utf8(r.take(len)?)
                .map_err(|_| bad("symlink target is not UTF-8"))?;
            if target.is_empty() || target.len() >= 4096 || target.contains('\0') {
                return Err(bad("invalid symlink target"));
            }
            NodeBody::Symlink(target)
        }
        _ => return Err(bad("unknown node kind")),
    };
    Ok(Node { meta, body })
}

/// Decodes `image` into the empty directory `dir`, which takes the root
/// node's metadata. With `read_only`, the loaded tree is a read-only mount.
pub fn decode_into(dir: &Descriptor, image: &[u8], read_only: bool) -> Result<(), ImageError> {
    let image = Image::parse(image)?;
    image.load_into(dir, read_only)
}

impl Image<'_> {
    /// Materialises the parsed tree under the empty directory `dir`.
    pub fn load_into(&self, dir: &Descriptor, read_only: bool) -> Result<(), ImageError> {
        build(&self.nodes, dir, read_only, |shared, size, extents, _| {
            let mut f = FileData::default();
            let filled = extents.iter().try_for_each(|&(off, data_off, len)| {
                let bytes = &self.data[data_off as usize..(data_off + len) as usize];
                match f.write(shared, off, bytes)? {
                    n if n == bytes.len() => Ok(()),
                    _ => Err(ErrorCode::InsufficientSpace),
                }
            });
            match filled.and_then(|()| f.set_size(shared, size)) {
                Ok(()) => Ok(f),
                Err(e) => {
                    // Not yet held by an inode: give its bytes back here.
                    f.release(shared);
                    Err(e.into())
                }
            }
        })
    }
}

/// Loads the image in `source` under the empty directory `dir`, reading only
/// the header and metadata now: each file's bytes are fetched (and checked
/// against its checksum) the first time the file's contents are used, so the
/// cost of loading does not grow with the size of the files.
pub fn load_lazy(
    dir: &Descriptor,
    source: Arc<dyn ImageSource>,
    read_only: bool,
) -> Result<(), ImageError> {
    let total = source.size();
    let mut header = [0u8; HEADER_LEN];
    if total < HEADER_LEN as u64 {
        return Err(ImageError::Truncated {
            at: 0,
            needed: HEADER_LEN,
        });
    }
    source.read_at(0, &mut header)?;
    let (count, meta_len, meta_crc) = parse_header(&header)?;
    let available = total - HEADER_LEN as u64;
    let meta_len = meta_len_within(meta_len, available)?;
    let mut meta = Vec::new();
    meta.try_reserve_exact(meta_len)
        .map_err(|_| ImageError::Fs(ErrorCode::InsufficientMemory))?;
    meta.resize(meta_len, 0);
    source.read_at(HEADER_LEN as u64, &mut meta)?;
    let data_len = available - meta_len as u64;
    let nodes = parse_meta(&meta, count, meta_crc, Data::Len(data_len))?;
    let base = (HEADER_LEN + meta_len) as u64;
    build(&nodes, dir, read_only, |shared, size, extents, crc| {
        if size > shared.config.max_file_size {
            return Err(ImageError::Fs(ErrorCode::FileTooLarge));
        }
        let extents = extents.iter().map(|&(o, d, l)| (o, base + d, l)).collect();
        Ok(FileData::lazy(
            size,
            Pending {
                source: source.clone(),
                extents,
                crc: Some(crc),
            },
        ))
    })
}

/// Creates the nodes' inodes under the empty directory `dir` and links them;
/// `file(shared, size, extents, crc)` makes each file's contents.
fn build(
    nodes: &[Node<'_>],
    dir: &Descriptor,
    read_only: bool,
    mut file: impl FnMut(&Shared, u64, &[(u64, u64, u64)], u32) -> Result<FileData, ImageError>,
) -> Result<(), ImageError> {
    dir.require_mutate()?;
    if !dir.inode.is_dir() {
        return Err(ImageError::Fs(ErrorCode::NotDirectory));
    }
    dir.inode.check_writable()?;
    if !dir.inode.is_empty_dir() {
        return Err(ImageError::Fs(ErrorCode::NotEmpty));
    }
    let shared = &dir.shared;
    // Build every inode first (quota checked as we go), then link; a failure
    // part way drops what was built and gives its space back.
    let mut inodes: Vec<Arc<Inode>> = Vec::with_capacity(nodes.len());
    inodes.push(dir.inode.clone());
    for node in &nodes[1..] {
        let body = match &node.body {
            NodeBody::File { .. } => Body::new_file(),
            NodeBody::Dir(_) => Body::Dir(Dir::default()),
            NodeBody::Symlink(t) => Body::Symlink(String::from(*t)),
        };
        let inode = Inode::new(shared, body, node.meta.mode)?;
        if let NodeBody::File { size, extents, crc } = &node.body {
            // Held by the inode from here, so its bytes go back to the quota
            // if a later node fails.
            *inode.state.write().file_mut().expect("file node") =
                file(shared, *size, extents, *crc)?;
        }
        inodes.push(inode);
    }
    let mut nlink = vec![0u64; nodes.len()];
    for (n, node) in nodes.iter().enumerate() {
        if let NodeBody::Dir(entries) = &node.body {
            let mut state = inodes[n].state.write();
            let d = state.dir_mut().expect("directory node");
            for &(name, child) in entries {
                let c = &inodes[child as usize];
                if c.is_dir() {
                    c.set_parent(&inodes[n]);
                    nlink[n] += 1;
                    nlink[child as usize] += 2;
                } else {
                    nlink[child as usize] += 1;
                }
                d.entries.insert(String::from(name), c.clone());
            }
        }
    }
    for (n, node) in nodes.iter().enumerate() {
        let mut state = inodes[n].state.write();
        let keep = if n == 0 { state.meta.nlink } else { 0 };
        state.meta = Meta {
            nlink: keep + nlink[n],
            ino: state.meta.ino,
            noted: state.meta.noted,
            change: state.meta.change,
            data_change: state.meta.data_change,
            ..node.meta
        };
        if read_only {
            inodes[n].set_readonly();
        }
    }
    Ok(())
}

impl crate::fs::Fs {
    /// A filesystem whose root is the image's root.
    pub fn from_image(
        config: crate::fs::FsConfig,
        clock: Arc<dyn crate::time::Clock>,
        image: &[u8],
        read_only: bool,
    ) -> Result<crate::fs::Fs, ImageError> {
        let fs = crate::fs::Fs::new(config, clock)?;
        let root = fs.root(
            crate::types::DescriptorFlags::READ | crate::types::DescriptorFlags::MUTATE_DIRECTORY,
        )?;
        decode_into(&root, image, read_only)?;
        Ok(fs)
    }
}
