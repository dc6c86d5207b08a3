//! `wasi:filesystem/types`: each function looks its resources up and calls
//! the fs-core method of the same name.

use crate::bindings::wasi::filesystem0_2_12::types::{
    self as wit, Advice, DescriptorFlags, DescriptorStat, DescriptorType, DirectoryEntry, Filesize,
    MetadataHashValue, NewTimestamp, OpenFlags, PathFlags,
};
use crate::calls::LARGE;
use crate::convert::{self as c, FsError, FsResult};
use crate::streams::{Reader, Writer};
use crate::Ctx;
use fs_core::{Descriptor, DirStream};
use wasmtime::component::Resource;
use wasmtime_wasi::p2::bindings::io::streams::{
    Error as StreamErrorResource, InputStream, OutputStream,
};

/// Largest buffer `read` allocates in one call (a short read; the caller
/// asks again): the streams' cap.
const MAX_READ: u64 = fs_core::stream::MAX_STREAM_READ as u64;

impl wit::Host for Ctx<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<wit::ErrorCode> {
        match err {
            FsError::Code(e) => Ok(c::code(e)),
            FsError::Trap(e) => Err(e),
        }
    }

    fn filesystem_error_code(
        &mut self,
        err: Resource<StreamErrorResource>,
    ) -> wasmtime::Result<Option<wit::ErrorCode>> {
        let err = self.table.get(&err)?;
        if let Some(code) = err.downcast_ref::<fs_core::ErrorCode>() {
            return Ok(Some(c::code(*code)));
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Ok(io
                .raw_os_error()
                .and_then(fs_core::ErrorCode::from_errno)
                .map(c::code));
        }
        Ok(None)
    }
}

impl Ctx<'_> {
    pub(crate) fn fd(&self, fd: &Resource<Descriptor>) -> FsResult<&Descriptor> {
        Ok(self.table.get(fd)?)
    }

    /// Whether a call that changes the tree may wait on a store (see
    /// `Volume::changes_may_wait`).
    pub(crate) fn changes_wait(&self) -> bool {
        self.vfs.volume().changes_may_wait()
    }

    /// Runs `f`, a change, where [`crate::calls`] says when it may wait on
    /// the store. Only such calls leave the async thread: each move costs
    /// a thread hand-off, which would otherwise be most of a small call.
    pub(crate) fn waits<R>(&self, f: impl FnOnce() -> R) -> R {
        self.calls.maybe_long(self.changes_wait(), f)
    }

    /// [`Ctx::waits`] for a call on `d`'s data, which may also fetch its
    /// unfetched bytes.
    pub(crate) fn waits_on<R>(&self, d: &Descriptor, f: impl FnOnce() -> R) -> R {
        self.calls
            .maybe_long(self.changes_wait() || d.may_fetch(), f)
    }

    /// Runs `f`, an fsync: with a store it waits for it.
    pub(crate) fn syncs<R>(&self, f: impl FnOnce() -> R) -> R {
        self.calls.maybe_long(self.vfs.volume().may_wait(), f)
    }

    /// Drops the guest's descriptor `fd` (0.2's or 0.3's).
    pub(crate) fn close(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        let d = self.table.delete(fd)?;
        // The last close of a written file may send it to the store.
        self.waits(|| drop(d));
        Ok(())
    }

    /// Runs `f`, which copies `bytes` of `d` (`write`: into it), or may
    /// fetch or wait on the store.
    fn copies<R>(&self, d: &Descriptor, bytes: u64, write: bool, f: impl FnOnce() -> R) -> R {
        let long = bytes >= LARGE as u64 || d.may_fetch() || (write && self.changes_wait());
        self.calls.maybe_long(long, f)
    }
}

impl wit::HostDescriptor for Ctx<'_> {
    fn read_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: Filesize,
    ) -> FsResult<Resource<InputStream>> {
        let d = self.fd(&fd)?;
        let reader = Reader::new(d.read_via_stream(offset)?, self, d);
        let reader: InputStream = Box::new(reader);
        Ok(self.table.push(reader)?)
    }

    fn write_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: Filesize,
    ) -> FsResult<Resource<OutputStream>> {
        let d = self.fd(&fd)?;
        let writer = Writer::new(d.write_via_stream(offset)?, self, d);
        let writer: OutputStream = Box::new(writer);
        Ok(self.table.push(writer)?)
    }

    fn append_via_stream(&mut self, fd: Resource<Descriptor>) -> FsResult<Resource<OutputStream>> {
        let d = self.fd(&fd)?;
        let writer = Writer::new(d.append_via_stream()?, self, d);
        let writer: OutputStream = Box::new(writer);
        Ok(self.table.push(writer)?)
    }

    fn advise(
        &mut self,
        fd: Resource<Descriptor>,
        offset: Filesize,
        len: Filesize,
        advice: Advice,
    ) -> FsResult<()> {
        Ok(self.fd(&fd)?.advise(offset, len, c::advice(advice))?)
    }

    fn sync_data(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        let d = self.fd(&fd)?;
        Ok(self.syncs(|| d.sync_data())?)
    }

    fn get_flags(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorFlags> {
        Ok(c::wit_descriptor_flags(self.fd(&fd)?.get_flags()))
    }

    fn get_type(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorType> {
        Ok(c::descriptor_type(self.fd(&fd)?.get_type()))
    }

    fn set_size(&mut self, fd: Resource<Descriptor>, size: Filesize) -> FsResult<()> {
        let d = self.fd(&fd)?;
        Ok(self.waits_on(d, || d.set_size(size))?)
    }

    fn set_times(
        &mut self,
        fd: Resource<Descriptor>,
        atim: NewTimestamp,
        mtim: NewTimestamp,
    ) -> FsResult<()> {
        let d = self.fd(&fd)?;
        let (atim, mtim) = (c::new_timestamp(atim), c::new_timestamp(mtim));
        Ok(self.waits(|| d.set_times(atim, mtim))?)
    }

    fn read(
        &mut self,
        fd: Resource<Descriptor>,
        len: Filesize,
        offset: Filesize,
    ) -> FsResult<(Vec<u8>, bool)> {
        let d = self.fd(&fd)?;
        let len = len.min(MAX_READ);
        let mut buf = Vec::new();
        let n = self.copies(d, len, false, || {
            d.read_append(&mut buf, len as usize, offset)
        })?;
        Ok((buf, n == 0))
    }

    fn write(
        &mut self,
        fd: Resource<Descriptor>,
        buf: Vec<u8>,
        offset: Filesize,
    ) -> FsResult<Filesize> {
        let d = self.fd(&fd)?;
        Ok(self.copies(d, buf.len() as u64, true, || d.write(&buf, offset))? as Filesize)
    }

    fn read_directory(&mut self, fd: Resource<Descriptor>) -> FsResult<Resource<DirStream>> {
        let stream = self.fd(&fd)?.read_directory()?;
        Ok(self.table.push(stream)?)
    }

    fn sync(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        let d = self.fd(&fd)?;
        Ok(self.syncs(|| d.sync())?)
    }

    fn create_directory_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        let d = self.fd(&fd)?;
        Ok(self.waits(|| d.create_directory_at(&path))?)
    }

    fn stat(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorStat> {
        Ok(c::stat(self.fd(&fd)?.stat()))
    }

    fn stat_at(
        &mut self,
        fd: Resource<Descriptor>,
        flags: PathFlags,
        path: String,
    ) -> FsResult<DescriptorStat> {
        Ok(c::stat(self.fd(&fd)?.stat_at(c::path_flags(flags), &path)?))
    }

    fn set_times_at(
        &mut self,
        fd: Resource<Descriptor>,
        flags: PathFlags,
        path: String,
        atim: NewTimestamp,
        mtim: NewTimestamp,
    ) -> FsResult<()> {
        let d = self.fd(&fd)?;
        let (atim, mtim) = (c::new_timestamp(atim), c::new_timestamp(mtim));
        Ok(self.waits(|| d.set_times_at(c::path_flags(flags), &path, atim, mtim))?)
    }

    fn link_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_flags: PathFlags,
        old_path: String,
        new_fd: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let (old, new) = (self.fd(&fd)?, self.fd(&new_fd)?);
        let flags = c::path_flags(old_flags);
        Ok(self.waits(|| old.link_at(flags, &old_path, new, &new_path))?)
    }

    fn open_at(
        &mut self,
        fd: Resource<Descriptor>,
        flags: PathFlags,
        path: String,
        oflags: OpenFlags,
        dflags: DescriptorFlags,
    ) -> FsResult<Resource<Descriptor>> {
        let d = self.fd(&fd)?;
        let (flags, oflags) = (c::path_flags(flags), c::open_flags(oflags));
        let dflags = c::descriptor_flags(dflags);
        let opened = self.waits(|| d.open_at(flags, &path, oflags, dflags))?;
        Ok(self.table.push(opened)?)
    }

    fn drop(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        self.close(fd)
    }

    fn readlink_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<String> {
        Ok(self.fd(&fd)?.readlink_at(&path)?)
    }

    fn remove_directory_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        let d = self.fd(&fd)?;
        Ok(self.waits(|| d.remove_directory_at(&path))?)
    }

    fn rename_at(
        &mut self,
        fd: Resource<Descriptor>,
        old: String,
        new_fd: Resource<Descriptor>,
        new: String,
    ) -> FsResult<()> {
        let (a, b) = (self.fd(&fd)?, self.fd(&new_fd)?);
        Ok(self.waits(|| a.rename_at(&old, b, &new))?)
    }

    fn symlink_at(
        &mut self,
        fd: Resource<Descriptor>,
        target: String,
        path: String,
    ) -> FsResult<()> {
        let d = self.fd(&fd)?;
        Ok(self.waits(|| d.symlink_at(&target, &path))?)
    }

    fn unlink_file_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        let d = self.fd(&fd)?;
        Ok(self.waits(|| d.unlink_file_at(&path))?)
    }

    fn is_same_object(
        &mut self,
        a: Resource<Descriptor>,
        b: Resource<Descriptor>,
    ) -> wasmtime::Result<bool> {
        Ok(self.table.get(&a)?.is_same_object(self.table.get(&b)?))
    }

    fn metadata_hash(&mut self, fd: Resource<Descriptor>) -> FsResult<MetadataHashValue> {
        Ok(c::metadata_hash(self.fd(&fd)?.metadata_hash()))
    }

    fn metadata_hash_at(
        &mut self,
        fd: Resource<Descriptor>,
        flags: PathFlags,
        path: String,
    ) -> FsResult<MetadataHashValue> {
        Ok(c::metadata_hash(
            self.fd(&fd)?
                .metadata_hash_at(c::path_flags(flags), &path)?,
        ))
    }
}

impl wit::HostDirectoryEntryStream for Ctx<'_> {
    fn read_directory_entry(
        &mut self,
        stream: Resource<DirStream>,
    ) -> FsResult<Option<DirectoryEntry>> {
        let s = self.table.get_mut(&stream)?;
        Ok(s.next_entry()?.map(c::dir_entry))
    }

    fn drop(&mut self, stream: Resource<DirStream>) -> wasmtime::Result<()> {
        self.table.delete(stream)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::wasi::filesystem0_2_12::types::Host;

    #[test]
    fn stream_errors_map_back_to_error_codes() {
        let vfs = crate::Vfs::new(crate::VolumeBuilder::new().build().unwrap());
        let mut table = wasmtime::component::ResourceTable::new();
        let ours = table
            .push(wasmtime::Error::new(fs_core::ErrorCode::InsufficientSpace))
            .unwrap();
        let host_io = table
            .push(wasmtime::Error::new(std::io::Error::from_raw_os_error(28)))
            .unwrap();
        let other = table.push(wasmtime::format_err!("something else")).unwrap();
        let mut view = Ctx {
            vfs: &vfs,
            table: &mut table,
            calls: crate::calls::Calls::Inline,
        };
        assert_eq!(
            view.filesystem_error_code(ours).unwrap(),
            Some(wit::ErrorCode::InsufficientSpace)
        );
        assert_eq!(
            view.filesystem_error_code(host_io).unwrap(),
            Some(wit::ErrorCode::InsufficientSpace)
        );
        assert_eq!(view.filesystem_error_code(other).unwrap(), None);
    }
}
