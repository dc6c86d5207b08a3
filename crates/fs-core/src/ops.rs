//! The descriptor operations a `wasi:filesystem` binding calls, as a trait:
//! fs-core's [`Descriptor`] answers them in memory, a remote client (the
//! 9P client in larder-9p) over the wire. A binding written against the
//! trait serves either, and the compiler checks that both have every
//! operation with the same signature.

use crate::stream::{FileReader, FileWriter, StreamFile};
use crate::{
    Advice, Descriptor, DescriptorFlags, DescriptorType, DirEntry, DirStream, MetadataHash,
    NewTimestamp, OpenFlags, PathFlags, Result, Stat,
};
use alloc::string::String;

/// A directory listing in progress.
pub trait DirEntries {
    fn next_entry(&mut self) -> Result<Option<DirEntry>>;
}

/// What `wasi:filesystem/types`' `descriptor` does, in fs-core's types
/// (reads and writes at an offset are [`StreamFile`]'s). Every call may
/// fail (a remote one with `io`), `stat` included.
pub trait DescriptorOps: StreamFile + Sized {
    type Entries: DirEntries;

    fn get_flags(&self) -> DescriptorFlags;
    fn get_type(&self) -> DescriptorType;
    fn is_same_object(&self, other: &Self) -> bool;
    fn stat(&self) -> Result<Stat>;
    fn metadata_hash(&self) -> Result<MetadataHash>;
    fn open_at(
        &self,
        path_flags: PathFlags,
        path: &str,
        open: OpenFlags,
        flags: DescriptorFlags,
    ) -> Result<Self>;
    fn stat_at(&self, flags: PathFlags, path: &str) -> Result<Stat>;
    fn metadata_hash_at(&self, flags: PathFlags, path: &str) -> Result<MetadataHash>;
    fn create_directory_at(&self, path: &str) -> Result<()>;
    fn unlink_file_at(&self, path: &str) -> Result<()>;
    fn remove_directory_at(&self, path: &str) -> Result<()>;
    fn symlink_at(&self, target: &str, path: &str) -> Result<()>;
    fn readlink_at(&self, path: &str) -> Result<String>;
    fn rename_at(&self, old_path: &str, new_dir: &Self, new_path: &str) -> Result<()>;
    fn link_at(
        &self,
        flags: PathFlags,
        old_path: &str,
        new_dir: &Self,
        new_path: &str,
    ) -> Result<()>;
    fn set_times_at(
        &self,
        flags: PathFlags,
        path: &str,
        atime: NewTimestamp,
        mtime: NewTimestamp,
    ) -> Result<()>;
    fn set_times(&self, atime: NewTimestamp, mtime: NewTimestamp) -> Result<()>;
    fn set_size(&self, size: u64) -> Result<()>;
    fn advise(&self, offset: u64, len: u64, advice: Advice) -> Result<()>;
    fn sync_data(&self) -> Result<()>;
    fn sync(&self) -> Result<()>;
    fn read_via_stream(&self, offset: u64) -> Result<FileReader<Self>>;
    fn write_via_stream(&self, offset: u64) -> Result<FileWriter<Self>>;
    fn append_via_stream(&self) -> Result<FileWriter<Self>>;
    fn read_directory(&self) -> Result<Self::Entries>;
}

impl DirEntries for DirStream {
    fn next_entry(&mut self) -> Result<Option<DirEntry>> {
        DirStream::next_entry(self)
    }
}

/// fs-core's own descriptor: each operation is its method of that name.
impl DescriptorOps for Descriptor {
    type Entries = DirStream;

    fn get_flags(&self) -> DescriptorFlags {
        Descriptor::get_flags(self)
    }
    fn get_type(&self) -> DescriptorType {
        Descriptor::get_type(self)
    }
    fn is_same_object(&self, other: &Self) -> bool {
        Descriptor::is_same_object(self, other)
    }
    fn stat(&self) -> Result<Stat> {
        Ok(Descriptor::stat(self))
    }
    fn metadata_hash(&self) -> Result<MetadataHash> {
        Ok(Descriptor::metadata_hash(self))
    }
    fn open_at(
        &self,
        path_flags: PathFlags,
        path: &str,
        open: OpenFlags,
        flags: DescriptorFlags,
    ) -> Result<Self> {
        Descriptor::open_at(self, path_flags, path, open, flags)
    }
    fn stat_at(&self, flags: PathFlags, path: &str) -> Result<Stat> {
        Descriptor::stat_at(self, flags, path)
    }
    fn metadata_hash_at(&self, flags: PathFlags, path: &str) -> Result<MetadataHash> {
        Descriptor::metadata_hash_at(self, flags, path)
    }
    fn create_directory_at(&self, path: &str) -> Result<()> {
        Descriptor::create_directory_at(self, path)
    }
    fn unlink_file_at(&self, path: &str) -> Result<()> {
        Descriptor::unlink_file_at(self, path)
    }
    fn remove_directory_at(&self, path: &str) -> Result<()> {
        Descriptor::remove_directory_at(self, path)
    }
    fn symlink_at(&self, target: &str, path: &str) -> Result<()> {
        Descriptor::symlink_at(self, target, path)
    }
    fn readlink_at(&self, path: &str) -> Result<String> {
        Descriptor::readlink_at(self, path)
    }
    fn rename_at(&self, old_path: &str, new_dir: &Self, new_path: &str) -> Result<()> {
        Descriptor::rename_at(self, old_path, new_dir, new_path)
    }
    fn link_at(
        &self,
        flags: PathFlags,
        old_path: &str,
        new_dir: &Self,
        new_path: &str,
    ) -> Result<()> {
        Descriptor::link_at(self, flags, old_path, new_dir, new_path)
    }
    fn set_times_at(
        &self,
        flags: PathFlags,
        path: &str,
        atime: NewTimestamp,
        mtime: NewTimestamp,
    ) -> Result<()> {
        Descriptor::set_times_at(self, flags, path, atime, mtime)
    }
    fn set_times(&self, atime: NewTimestamp, mtime: NewTimestamp) -> Result<()> {
        Descriptor::set_times(self, atime, mtime)
    }
    fn set_size(&self, size: u64) -> Result<()> {
        Descriptor::set_size(self, size)
    }
    fn advise(&self, offset: u64, len: u64, advice: Advice) -> Result<()> {
        Descriptor::advise(self, offset, len, advice)
    }
    fn sync_data(&self) -> Result<()> {
        Descriptor::sync_data(self)
    }
    fn sync(&self) -> Result<()> {
        Descriptor::sync(self)
    }
    fn read_via_stream(&self, offset: u64) -> Result<FileReader<Self>> {
        Descriptor::read_via_stream(self, offset)
    }
    fn write_via_stream(&self, offset: u64) -> Result<FileWriter<Self>> {
        Descriptor::write_via_stream(self, offset)
    }
    fn append_via_stream(&self) -> Result<FileWriter<Self>> {
        Descriptor::append_via_stream(self)
    }
    fn read_directory(&self) -> Result<DirStream> {
        Descriptor::read_directory(self)
    }
}
