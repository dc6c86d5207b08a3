//! Descriptors and the operations on the object a descriptor refers to.
//! Path-taking (`*-at`) operations are in `namespace.rs`.
//!
//! A descriptor points at an inode, never at a path, so it stays valid and
//! keeps referring to the same object across renames and unlinks.

use crate::error::{ErrorCode, Result};
use crate::fs::{AtimePolicy, Shared};
use crate::inode::{Body, Inode, Meta};
use crate::resolve::Walker;
use crate::time::{NewTimestamp, Timestamp};
use crate::types::{Advice, DescriptorFlags, DescriptorType, DirEntry, MetadataHash, Stat};
use alloc::string::String;
use alloc::sync::Arc;
use core::ops::Bound;
use core::sync::atomic::Ordering;

pub struct Descriptor {
    pub(crate) shared: Arc<Shared>,
    pub(crate) inode: Arc<Inode>,
    /// What `get-flags` reports; READ/WRITE are checked on file I/O.
    pub(crate) flags: DescriptorFlags,
    /// The capability to change things, inherited from the preopen (as in
    /// wasmtime, a directory opened read-only through a writable preopen can
    /// still be mutated; read-only mounts refuse through their inodes).
    pub(crate) can_mutate: bool,
    /// The preopen this descriptor descends from: absolute symlinks restart
    /// there when resolution starts at it.
    pub(crate) root: Arc<Inode>,
}

impl core::fmt::Debug for Descriptor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Descriptor")
            .field("ino", &self.inode.ino)
            .field("kind", &self.inode.kind)
            .field("flags", &self.flags)
            .finish()
    }
}

impl Drop for Descriptor {
    fn drop(&mut self) {
        self.shared.close_handle();
        // Only the last writer's close is reported: streams hold clones of
        // their descriptor, and a sync per dropped stream (libc makes one per
        // seek) would send a file to the store once per random write.
        if self.flags.contains(DescriptorFlags::WRITE)
            && self.inode.writers.fetch_sub(1, Ordering::AcqRel) == 1
        {
            if let Some((hook, fs)) = self.shared.sync_hook() {
                hook.closed(&fs, self.inode.ino);
            }
        }
    }
}

impl Descriptor {
    pub(crate) fn new_preopen(
        shared: Arc<Shared>,
        inode: Arc<Inode>,
        flags: DescriptorFlags,
    ) -> Result<Descriptor> {
        shared.open_handle()?;
        let can_mutate = flags.contains(DescriptorFlags::MUTATE_DIRECTORY);
        let flags = (flags & !DescriptorFlags::WRITE) | DescriptorFlags::READ;
        Ok(Descriptor {
            shared,
            root: inode.clone(),
            inode,
            flags,
            can_mutate,
        })
    }

    /// A new descriptor derived from this one (same preopen, same capability).
    pub(crate) fn derive(
        &self,
        inode: Arc<Inode>,
        requested: DescriptorFlags,
    ) -> Result<Descriptor> {
        self.shared.open_handle()?;
        let sync = DescriptorFlags::FILE_INTEGRITY_SYNC
            | DescriptorFlags::DATA_INTEGRITY_SYNC
            | DescriptorFlags::REQUESTED_WRITE_SYNC;
        let mut flags = requested & (DescriptorFlags::READ | DescriptorFlags::WRITE | sync);
        if inode.is_dir() {
            flags |= DescriptorFlags::READ;
            if self.can_mutate {
                flags |= DescriptorFlags::MUTATE_DIRECTORY;
            }
        } else if !flags.contains(DescriptorFlags::WRITE) {
            // Linux has no open mode without read or write (O_RDONLY is 0).
            flags |= DescriptorFlags::READ;
        }
        if flags.contains(DescriptorFlags::WRITE) {
            inode.writers.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Descriptor {
            shared: self.shared.clone(),
            inode,
            flags,
            can_mutate: self.can_mutate,
            root: self.root.clone(),
        })
    }

    /// Another descriptor for the same object with the same flags (what
    /// `dup` gives), counted against the open-handle limit.
    pub fn try_clone(&self) -> Result<Descriptor> {
        self.shared.open_handle()?;
        if self.flags.contains(DescriptorFlags::WRITE) {
            self.inode.writers.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Descriptor {
            shared: self.shared.clone(),
            inode: self.inode.clone(),
            flags: self.flags,
            can_mutate: self.can_mutate,
            root: self.root.clone(),
        })
    }

    pub(crate) fn walker(&self) -> Result<Walker<'_>> {
        if !self.inode.is_dir() {
            return Err(ErrorCode::NotDirectory);
        }
        Ok(Walker::new(
            &self.shared,
            &self.inode,
            Arc::ptr_eq(&self.inode, &self.root),
        ))
    }

    pub(crate) fn require_mutate(&self) -> Result<()> {
        if self.can_mutate {
            Ok(())
        } else {
            Err(ErrorCode::NotPermitted)
        }
    }

    /// A file reached through a read-only preopen is never writable: every
    /// write to it is `not-permitted` before its open mode is looked at, as
    /// on wasmtime's host (whose file permissions come from the preopen).
    /// Directories fall through to the mode check, as there.
    pub(crate) fn require_write_permission(&self) -> Result<()> {
        if self.can_mutate || self.inode.is_dir() {
            Ok(())
        } else {
            Err(ErrorCode::NotPermitted)
        }
    }

    pub(crate) fn require_file(&self) -> Result<()> {
        require_file(self.inode.kind)
    }

    /// Reads up to `buf.len()` bytes at `offset`; 0 means end of file.
    pub fn read(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let len = buf.len();
        self.reading(offset, len, |file, shift| file.read(shift, offset, buf))
    }

    /// Reads up to `len` bytes at `offset`, appending them to `out` (no
    /// zero-filled buffer first: hosts hand the vector on without another
    /// pass). Returns how many; 0 means end of file.
    pub fn read_append(
        &self,
        out: &mut alloc::vec::Vec<u8>,
        len: usize,
        offset: u64,
    ) -> Result<usize> {
        self.reading(offset, len, |file, shift| {
            file.read_append(shift, offset, len, out)
        })
    }

    /// The checks and bookkeeping every read of `len` bytes at `offset`
    /// shares.
    fn reading(
        &self,
        offset: u64,
        len: usize,
        read: impl FnOnce(&crate::data::FileData, u32) -> usize,
    ) -> Result<usize> {
        check_read(self.inode.kind, self.flags)?;
        self.inode.load_range(offset, len as u64)?;
        let n = {
            let state = self.inode.state.read();
            let file = state.file().ok_or(ErrorCode::BadDescriptor)?;
            read(file, self.shared.block_shift)
        };
        touch_atime(&self.shared, &self.inode);
        Ok(n)
    }

    /// Writes `data` at `offset`; returns the bytes written (short only when
    /// space ran out part way).
    pub fn write(&self, data: &[u8], offset: u64) -> Result<usize> {
        self.write_with(data, |_| offset)
    }

    /// Writes `data` at the current end of the file, atomically with respect
    /// to other appenders. Returns the offset it landed at and the count.
    pub fn append(&self, data: &[u8]) -> Result<(u64, usize)> {
        let mut at = 0;
        let n = self.write_with(data, |size| {
            at = size;
            size
        })?;
        Ok((at, n))
    }

    fn write_with(&self, data: &[u8], offset: impl FnOnce(u64) -> u64) -> Result<usize> {
        let _notice = self.shared.change_notice();
        self.require_write_permission()?;
        // Linux checks the open mode first; directories are never writable.
        if !self.flags.contains(DescriptorFlags::WRITE) {
            return Err(ErrorCode::BadDescriptor);
        }
        self.require_file()?;
        self.inode.check_writable()?;
        let mut state = self.inode.state.write();
        let file = state.file_mut().ok_or(ErrorCode::BadDescriptor)?;
        let at = offset(file.size());
        let n = file.write(&self.shared, at, data)?;
        if n > 0 {
            state.meta.modified(self.shared.now(), &self.shared);
        }
        Ok(n)
    }

    /// Gives this empty file `size` bytes that live in `source` (its bytes
    /// `0..size`) and are fetched a chunk at a time as reads reach them;
    /// writes replace them without fetching. How a store restores a large
    /// file without downloading it. Not a change to the file: times and
    /// change counters stay as they are.
    pub fn set_source(
        &self,
        source: alloc::sync::Arc<dyn crate::image::ImageSource>,
        size: u64,
    ) -> Result<()> {
        self.set_contents(size, || crate::data::FileData::from_source(source, size))
    }

    /// Gives this empty file `size` bytes that live in `source` at
    /// `extents` (file offset, source offset, length; the rest are holes)
    /// and hash to `crc`: fetched whole and checked the first time they
    /// are used, as a lazily loaded image's files are.
    #[cfg(all(feature = "std", unix))]
    pub(crate) fn set_checked_source(
        &self,
        source: Arc<dyn crate::image::ImageSource>,
        size: u64,
        extents: alloc::vec::Vec<(u64, u64, u64)>,
        crc: u32,
    ) -> Result<()> {
        let pending = crate::data::Pending {
            source,
            extents,
            crc: Some(crc),
        };
        self.set_contents(size, || crate::data::FileData::lazy(size, pending))
    }

    /// Makes `contents()` this empty, writable file's `size` bytes.
    fn set_contents(
        &self,
        size: u64,
        contents: impl FnOnce() -> crate::data::FileData,
    ) -> Result<()> {
        if !self.flags.contains(DescriptorFlags::WRITE) {
            return Err(ErrorCode::BadDescriptor);
        }
        self.require_file()?;
        self.inode.check_writable()?;
        if size > self.shared.config.max_file_size {
            return Err(ErrorCode::FileTooLarge);
        }
        let mut state = self.inode.state.write();
        let file = state.file_mut().ok_or(ErrorCode::BadDescriptor)?;
        if file.size() != 0 || file.is_pending() {
            return Err(ErrorCode::Invalid);
        }
        if size > 0 {
            *file = contents();
        }
        Ok(())
    }

    /// How many descriptors are open for writing on this object (a mirror
    /// leaves files being written alone when it applies remote changes).
    pub fn writers(&self) -> u32 {
        self.inode.writers.load(Ordering::Relaxed)
    }

    /// The byte ranges of this file changed since the last call, and the
    /// stamp this call gave it, for a mirror that sends only what changed
    /// (see [`Written`](crate::Written) for when the ranges apply).
    pub fn take_written(&self) -> Result<crate::Written> {
        self.require_file()?;
        let mut state = self.inode.state.write();
        let file = state.file_mut().ok_or(ErrorCode::BadDescriptor)?;
        Ok(file.take_written())
    }

    /// Byte ranges `(start, end)` of this file that still hold the bytes
    /// of the source [`set_source`](Self::set_source) gave it, fetched or
    /// not: nothing has written or truncated them since.
    pub fn from_source(&self) -> Result<alloc::vec::Vec<(u64, u64)>> {
        self.require_file()?;
        let state = self.inode.state.read();
        Ok(state.file().map(|f| f.clean()).unwrap_or_default())
    }

    /// Byte ranges `(start, end)` of `start..end` in this file that may
    /// hold data (as SEEK_DATA finds); the rest are holes and read as
    /// zeros. For copying a sparse file without reading its holes.
    pub fn data_in(&self, start: u64, end: u64) -> Result<alloc::vec::Vec<(u64, u64)>> {
        self.require_file()?;
        let state = self.inode.state.read();
        Ok(state
            .file()
            .map(|f| f.data_in(self.shared.block_shift, start, end))
            .unwrap_or_default())
    }

    /// Byte ranges `(start, end)` of this file whose contents have not been
    /// fetched from its source yet (empty for a file held in memory).
    pub fn unfetched(&self) -> Result<alloc::vec::Vec<(u64, u64)>> {
        self.require_file()?;
        let state = self.inode.state.read();
        Ok(state.file().map(|f| f.unfetched()).unwrap_or_default())
    }

    /// Whether a read or write of this descriptor may fetch bytes from a
    /// source (a store, a lazily read image), so a host may run it off
    /// its async threads; cheap: no list of ranges is made.
    pub fn may_fetch(&self) -> bool {
        let state = self.inode.state.read();
        state.file().is_some_and(|f| f.is_pending())
    }

    /// Fetches everything of this file still in its source (a prefetch:
    /// no access time moves).
    pub fn fetch(&self) -> Result<()> {
        self.require_file()?;
        self.inode.load_file()
    }

    /// Truncates or extends (with a hole) the file.
    pub fn set_size(&self, size: u64) -> Result<()> {
        let _notice = self.shared.change_notice();
        self.require_write_permission()?;
        if !self.flags.contains(DescriptorFlags::WRITE) {
            // What ftruncate says for a descriptor not open for writing
            // (directories included).
            return Err(ErrorCode::Invalid);
        }
        self.require_file()?;
        self.inode.check_writable()?;
        set_size(&self.shared, &self.inode, size)
    }

    pub fn set_times(&self, atime: NewTimestamp, mtime: NewTimestamp) -> Result<()> {
        let _notice = self.shared.change_notice();
        let allowed = if self.inode.is_dir() {
            self.flags.contains(DescriptorFlags::MUTATE_DIRECTORY)
        } else {
            self.can_mutate || self.flags.contains(DescriptorFlags::WRITE)
        };
        if !allowed {
            return Err(ErrorCode::NotPermitted);
        }
        set_times(&self.shared, &self.inode, atime, mtime)
    }

    /// Accepted and validated; memory needs no read-ahead or eviction hints.
    pub fn advise(&self, _offset: u64, _len: u64, _advice: Advice) -> Result<()> {
        match self.inode.kind {
            DescriptorType::RegularFile => Ok(()),
            _ => Err(ErrorCode::BadDescriptor),
        }
    }

    /// Data is in memory and visible to every reader as soon as a write
    /// returns; a persistence layer hooks durability in here.
    pub fn sync_data(&self) -> Result<()> {
        self.sync_inner(true)
    }

    pub fn sync(&self) -> Result<()> {
        self.sync_inner(false)
    }

    fn sync_inner(&self, data_only: bool) -> Result<()> {
        match self.shared.sync_hook() {
            Some((hook, fs)) => hook.sync(&fs, self.inode.ino, data_only),
            None => Ok(()),
        }
    }

    pub fn get_flags(&self) -> DescriptorFlags {
        self.flags
    }

    pub fn get_type(&self) -> DescriptorType {
        self.inode.kind
    }

    pub fn stat(&self) -> Stat {
        stat(&self.shared, &self.inode)
    }

    pub fn is_same_object(&self, other: &Descriptor) -> bool {
        Arc::ptr_eq(&self.inode, &other.inode)
    }

    pub fn metadata_hash(&self) -> MetadataHash {
        metadata_hash(&self.stat())
    }

    /// Entries of a directory, without `.` and `..`, in name order. The
    /// stream remembers the last name it returned, so it stays valid while
    /// the directory changes: no entry is returned twice, entries present
    /// throughout are returned exactly once.
    pub fn read_directory(&self) -> Result<DirStream> {
        if !self.inode.is_dir() {
            return Err(ErrorCode::NotDirectory);
        }
        touch_atime(&self.shared, &self.inode);
        Ok(DirStream {
            dir: self.inode.clone(),
            after: None,
        })
    }

    /// Marks everything reachable from this directory (or this file) as a
    /// read-only mount: later changes answer `read-only`.
    pub fn set_read_only_recursive(&self) {
        let mut pending = alloc::vec![self.inode.clone()];
        while let Some(inode) = pending.pop() {
            inode.set_readonly();
            if let Some(d) = inode.state.read().dir() {
                pending.extend(d.entries.values().cloned());
            }
        }
    }

    /// The inode number (`stat().ino`), cheaply.
    pub fn ino(&self) -> u64 {
        self.inode.ino
    }
}

/// An open directory listing; see [`Descriptor::read_directory`].
pub struct DirStream {
    dir: Arc<Inode>,
    after: Option<String>,
}

impl DirStream {
    pub fn next_entry(&mut self) -> Result<Option<DirEntry>> {
        let state = self.dir.state.read();
        let d = state.dir().ok_or(ErrorCode::NotDirectory)?;
        let next = match &self.after {
            None => d.entries.iter().next(),
            Some(a) => d
                .entries
                .range::<str, _>((Bound::Excluded(a.as_str()), Bound::Unbounded))
                .next(),
        };
        Ok(next.map(|(name, inode)| {
            self.after = Some(name.clone());
            DirEntry {
                kind: inode.kind,
                name: name.clone(),
                ino: inode.ino,
            }
        }))
    }
}

impl Iterator for DirStream {
    type Item = Result<DirEntry>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry().transpose()
    }
}

pub(crate) fn stat(shared: &Shared, inode: &Inode) -> Stat {
    let state = inode.state.read();
    let m: &Meta = &state.meta;
    Stat {
        dev: shared.dev,
        ino: inode.ino,
        kind: inode.kind,
        nlink: m.nlink,
        size: state.size(),
        allocated: state.file().map_or(0, |f| f.allocated()),
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
        atime: m.atime,
        mtime: m.mtime,
        ctime: m.ctime,
        change: m.change,
        data_change: m.data_change,
    }
}

/// Identity (device, inode) plus what changes when the object is modified
/// (size, mtime, ctime), mixed into 128 bits.
pub(crate) fn metadata_hash(s: &Stat) -> MetadataHash {
    fn mix(mut x: u64) -> u64 {
        // splitmix64's finaliser: every input bit affects every output bit.
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    }
    let fields = [
        s.dev,
        s.ino,
        s.size,
        s.mtime.seconds,
        s.mtime.nanoseconds as u64,
        s.ctime.seconds,
        s.ctime.nanoseconds as u64,
    ];
    let (mut lo, mut hi) = (0x6c61_7264_6572_u64, 0x9e37_79b9_7f4a_7c15_u64);
    for f in fields {
        lo = mix(lo ^ f);
        hi = mix(hi.rotate_left(17) ^ f ^ lo);
    }
    MetadataHash {
        lower: lo,
        upper: hi,
    }
}

pub(crate) fn set_size(shared: &Shared, inode: &Inode, size: u64) -> Result<()> {
    let mut state = inode.state.write();
    let file = state.file_mut().ok_or(ErrorCode::IsDirectory)?;
    file.set_size(shared, size)?;
    // Linux moves mtime/ctime on every truncate, even to the same size.
    state.meta.modified(shared.now(), shared);
    Ok(())
}

/// Only files have bytes: what a read, write or stream on a descriptor of
/// `kind` answers otherwise (read(2) on a directory is EISDIR).
pub fn require_file(kind: DescriptorType) -> Result<()> {
    match kind {
        DescriptorType::RegularFile => Ok(()),
        DescriptorType::Directory => Err(ErrorCode::IsDirectory),
        DescriptorType::SymbolicLink => Err(ErrorCode::BadDescriptor),
    }
}

/// The checks before a read through a descriptor of `kind` opened with
/// `flags`, in the order they are made (for clients that answer some
/// reads from a cache, so that they answer exactly as here).
pub fn check_read(kind: DescriptorType, flags: DescriptorFlags) -> Result<()> {
    require_file(kind)?;
    if !flags.contains(DescriptorFlags::READ) {
        return Err(ErrorCode::BadDescriptor);
    }
    Ok(())
}

/// The checks before a stream needing `need` (read or write) on a
/// descriptor of `kind` opened with `flags`, after the write permission
/// of its mount: the mode, then the type.
pub fn check_stream(
    kind: DescriptorType,
    flags: DescriptorFlags,
    need: DescriptorFlags,
) -> Result<()> {
    if !flags.contains(need) {
        return Err(ErrorCode::BadDescriptor);
    }
    require_file(kind)
}

pub(crate) fn set_times(
    shared: &Shared,
    inode: &Inode,
    atime: NewTimestamp,
    mtime: NewTimestamp,
) -> Result<()> {
    fn check(t: NewTimestamp) -> Result<()> {
        match t {
            NewTimestamp::Timestamp(ts) if ts.nanoseconds >= 1_000_000_000 => {
                Err(ErrorCode::Invalid)
            }
            _ => Ok(()),
        }
    }
    check(atime)?;
    check(mtime)?;
    inode.check_writable()?;
    if atime == NewTimestamp::NoChange && mtime == NewTimestamp::NoChange {
        return Ok(());
    }
    let now = shared.now();
    let pick = |t: NewTimestamp, old: Timestamp| match t {
        NewTimestamp::NoChange => old,
        NewTimestamp::Now => now,
        NewTimestamp::Timestamp(ts) => ts,
    };
    let mut state = inode.state.write();
    state.meta.atime = pick(atime, state.meta.atime);
    state.meta.mtime = pick(mtime, state.meta.mtime);
    state.meta.changed(now, shared);
    Ok(())
}

/// Access-time update after a read, per the configured policy. Checked under
/// the read lock first so concurrent readers rarely contend.
pub(crate) fn touch_atime(shared: &Shared, inode: &Inode) {
    let policy = shared.config.atime;
    if policy == AtimePolicy::NoAtime || inode.readonly() {
        return;
    }
    let now = shared.now();
    let needed = |m: &Meta| match policy {
        AtimePolicy::Strict => m.atime != now,
        AtimePolicy::Relatime => {
            m.atime <= m.mtime
                || m.atime <= m.ctime
                || now.seconds.saturating_sub(m.atime.seconds) >= 86_400
        }
        AtimePolicy::NoAtime => false,
    };
    if !needed(&inode.state.read().meta) {
        return;
    }
    let mut state = inode.state.write();
    if needed(&state.meta) {
        state.meta.atime = now;
    }
}

impl Body {
    pub(crate) fn new_file() -> Body {
        Body::File(crate::data::FileData::default())
    }
}
