//! `wasi:filesystem/{types,preopens}`: each method calls the operation of
//! the same name (`fs_core::DescriptorOps`) and translates types; no
//! semantics live here. The backend is fs-core in this component, or in the
//! remote build larder-9p's client of a `larder serve`.

use crate::exports::wasi::filesystem0_2_12::preopens;
use crate::exports::wasi::filesystem0_2_12::types::{
    self as wit, Advice, DescriptorBorrow, DescriptorFlags, DescriptorStat, DescriptorType,
    DirectoryEntry, ErrorBorrow, ErrorCode, Filesize, MetadataHashValue, NewTimestamp, OpenFlags,
    PathFlags,
};
use crate::exports::wasi::io::streams::{InputStream, OutputStream};
use crate::io::{Input, IoError, Output};
use crate::wasi::clocks0_2_12::wall_clock::Datetime;
use crate::Adapter;
use fs_core::DescriptorOps;
use std::cell::RefCell;

type Result<T> = std::result::Result<T, ErrorCode>;

/// fs-core in this component.
#[cfg(not(feature = "remote"))]
mod backend {
    pub use fs_core::{Descriptor, DirStream};

    pub fn preopens() -> Vec<(Descriptor, String)> {
        crate::state::get()
            .preopens
            .iter()
            // Only the open-handle quota can refuse a clone; a preopen that
            // cannot be handed out is left out rather than trapping.
            .filter_map(|(d, name)| Some((d.try_clone().ok()?, name.clone())))
            .collect()
    }
}

/// A `larder serve` in another process.
#[cfg(feature = "remote")]
mod backend {
    pub use crate::remote::{preopens, Descriptor, DirStream};
}

// The remote client's listings are the trait's.
#[cfg(feature = "remote")]
use fs_core::DirEntries;

/// Both backends have every operation, with the same signatures.
const _: fn() = || {
    fn ops<D: DescriptorOps<Entries = backend::DirStream>>() {}
    ops::<backend::Descriptor>();
};

pub struct Descriptor(backend::Descriptor);
pub struct DirStream(RefCell<backend::DirStream>);

/// fs-core's error codes are WASI's, case for case and in the same order.
pub fn code(e: fs_core::ErrorCode) -> ErrorCode {
    // SAFETY: both enums list the 37 WASI cases in WIT order (checked by
    // the `error_codes_line_up` test), so every discriminant is valid.
    unsafe { ErrorCode::_lift(e as u8) }
}

fn kind(t: fs_core::DescriptorType) -> DescriptorType {
    match t {
        fs_core::DescriptorType::Directory => DescriptorType::Directory,
        fs_core::DescriptorType::RegularFile => DescriptorType::RegularFile,
        fs_core::DescriptorType::SymbolicLink => DescriptorType::SymbolicLink,
    }
}

fn datetime(t: fs_core::Timestamp) -> Datetime {
    Datetime {
        seconds: t.seconds,
        nanoseconds: t.nanoseconds,
    }
}

fn stat(s: fs_core::Stat) -> DescriptorStat {
    DescriptorStat {
        type_: kind(s.kind),
        link_count: s.nlink,
        size: s.size,
        data_access_timestamp: Some(datetime(s.atime)),
        data_modification_timestamp: Some(datetime(s.mtime)),
        status_change_timestamp: Some(datetime(s.ctime)),
    }
}

fn new_timestamp(t: NewTimestamp) -> fs_core::NewTimestamp {
    match t {
        NewTimestamp::NoChange => fs_core::NewTimestamp::NoChange,
        NewTimestamp::Now => fs_core::NewTimestamp::Now,
        NewTimestamp::Timestamp(d) => fs_core::NewTimestamp::Timestamp(fs_core::Timestamp {
            seconds: d.seconds,
            nanoseconds: d.nanoseconds,
        }),
    }
}

// fs-core's flag types use WASI's bit positions.
fn path_flags(f: PathFlags) -> fs_core::PathFlags {
    fs_core::PathFlags::from_bits_retain(f.bits())
}
fn open_flags(f: OpenFlags) -> fs_core::OpenFlags {
    fs_core::OpenFlags::from_bits_retain(f.bits())
}
fn descriptor_flags(f: DescriptorFlags) -> fs_core::DescriptorFlags {
    fs_core::DescriptorFlags::from_bits_retain(f.bits())
}

fn hash(h: fs_core::MetadataHash) -> MetadataHashValue {
    MetadataHashValue {
        lower: h.lower,
        upper: h.upper,
    }
}

fn advice(a: Advice) -> fs_core::Advice {
    match a {
        Advice::Normal => fs_core::Advice::Normal,
        Advice::Sequential => fs_core::Advice::Sequential,
        Advice::Random => fs_core::Advice::Random,
        Advice::WillNeed => fs_core::Advice::WillNeed,
        Advice::DontNeed => fs_core::Advice::DontNeed,
        Advice::NoReuse => fs_core::Advice::NoReuse,
    }
}

/// Largest buffer `read` allocates in one call (a short read; the caller
/// asks again): the streams' cap.
const MAX_READ: u64 = fs_core::stream::MAX_STREAM_READ as u64;

impl wit::Guest for Adapter {
    type Descriptor = Descriptor;
    type DirectoryEntryStream = DirStream;

    fn filesystem_error_code(err: ErrorBorrow<'_>) -> Option<ErrorCode> {
        match err.get::<IoError>() {
            IoError::Fs(e) => Some(code(*e)),
            IoError::Host(_) => None,
        }
    }
}

impl wit::GuestDescriptor for Descriptor {
    fn read_via_stream(&self, offset: Filesize) -> Result<InputStream> {
        let r = self.0.read_via_stream(offset).map_err(code)?;
        Ok(InputStream::new(Input::File(RefCell::new(r))))
    }

    fn write_via_stream(&self, offset: Filesize) -> Result<OutputStream> {
        let w = self.0.write_via_stream(offset).map_err(code)?;
        Ok(OutputStream::new(Output::File(RefCell::new(w))))
    }

    fn append_via_stream(&self) -> Result<OutputStream> {
        let w = self.0.append_via_stream().map_err(code)?;
        Ok(OutputStream::new(Output::File(RefCell::new(w))))
    }

    fn advise(&self, offset: Filesize, length: Filesize, a: Advice) -> Result<()> {
        self.0.advise(offset, length, advice(a)).map_err(code)
    }

    fn sync_data(&self) -> Result<()> {
        self.0.sync_data().map_err(code)
    }

    fn get_flags(&self) -> Result<DescriptorFlags> {
        Ok(DescriptorFlags::from_bits_retain(self.0.get_flags().bits()))
    }

    fn get_type(&self) -> Result<DescriptorType> {
        Ok(kind(self.0.get_type()))
    }

    fn set_size(&self, size: Filesize) -> Result<()> {
        self.0.set_size(size).map_err(code)
    }

    fn set_times(&self, atime: NewTimestamp, mtime: NewTimestamp) -> Result<()> {
        self.0
            .set_times(new_timestamp(atime), new_timestamp(mtime))
            .map_err(code)
    }

    fn read(&self, length: Filesize, offset: Filesize) -> Result<(Vec<u8>, bool)> {
        let mut buf = Vec::new();
        let n = self
            .0
            .read_append(&mut buf, length.min(MAX_READ) as usize, offset)
            .map_err(code)?;
        Ok((buf, n == 0))
    }

    fn write(&self, buffer: Vec<u8>, offset: Filesize) -> Result<Filesize> {
        Ok(self.0.write(&buffer, offset).map_err(code)? as Filesize)
    }

    fn read_directory(&self) -> Result<wit::DirectoryEntryStream> {
        let s = self.0.read_directory().map_err(code)?;
        Ok(wit::DirectoryEntryStream::new(DirStream(RefCell::new(s))))
    }

    fn sync(&self) -> Result<()> {
        self.0.sync().map_err(code)
    }

    fn create_directory_at(&self, path: String) -> Result<()> {
        self.0.create_directory_at(&path).map_err(code)
    }

    fn stat(&self) -> Result<DescriptorStat> {
        DescriptorOps::stat(&self.0).map(stat).map_err(code)
    }

    fn stat_at(&self, flags: PathFlags, path: String) -> Result<DescriptorStat> {
        self.0
            .stat_at(path_flags(flags), &path)
            .map(stat)
            .map_err(code)
    }

    fn set_times_at(
        &self,
        flags: PathFlags,
        path: String,
        atime: NewTimestamp,
        mtime: NewTimestamp,
    ) -> Result<()> {
        self.0
            .set_times_at(
                path_flags(flags),
                &path,
                new_timestamp(atime),
                new_timestamp(mtime),
            )
            .map_err(code)
    }

    fn link_at(
        &self,
        old_flags: PathFlags,
        old_path: String,
        new_dir: DescriptorBorrow<'_>,
        new_path: String,
    ) -> Result<()> {
        let new_dir = &new_dir.get::<Descriptor>().0;
        self.0
            .link_at(path_flags(old_flags), &old_path, new_dir, &new_path)
            .map_err(code)
    }

    fn open_at(
        &self,
        flags: PathFlags,
        path: String,
        oflags: OpenFlags,
        dflags: DescriptorFlags,
    ) -> Result<wit::Descriptor> {
        let d = self
            .0
            .open_at(
                path_flags(flags),
                &path,
                open_flags(oflags),
                descriptor_flags(dflags),
            )
            .map_err(code)?;
        Ok(wit::Descriptor::new(Descriptor(d)))
    }

    fn readlink_at(&self, path: String) -> Result<String> {
        self.0.readlink_at(&path).map_err(code)
    }

    fn remove_directory_at(&self, path: String) -> Result<()> {
        self.0.remove_directory_at(&path).map_err(code)
    }

    fn rename_at(
        &self,
        old_path: String,
        new_dir: DescriptorBorrow<'_>,
        new_path: String,
    ) -> Result<()> {
        let new_dir = &new_dir.get::<Descriptor>().0;
        self.0
            .rename_at(&old_path, new_dir, &new_path)
            .map_err(code)
    }

    fn symlink_at(&self, old_path: String, new_path: String) -> Result<()> {
        self.0.symlink_at(&old_path, &new_path).map_err(code)
    }

    fn unlink_file_at(&self, path: String) -> Result<()> {
        self.0.unlink_file_at(&path).map_err(code)
    }

    fn is_same_object(&self, other: DescriptorBorrow<'_>) -> bool {
        self.0.is_same_object(&other.get::<Descriptor>().0)
    }

    fn metadata_hash(&self) -> Result<MetadataHashValue> {
        DescriptorOps::metadata_hash(&self.0)
            .map(hash)
            .map_err(code)
    }

    fn metadata_hash_at(&self, flags: PathFlags, path: String) -> Result<MetadataHashValue> {
        self.0
            .metadata_hash_at(path_flags(flags), &path)
            .map(hash)
            .map_err(code)
    }
}

impl wit::GuestDirectoryEntryStream for DirStream {
    fn read_directory_entry(&self) -> Result<Option<DirectoryEntry>> {
        let e = self.0.borrow_mut().next_entry().map_err(code)?;
        Ok(e.map(|e| DirectoryEntry {
            type_: kind(e.kind),
            name: e.name,
        }))
    }
}

impl preopens::Guest for Adapter {
    fn get_directories() -> Vec<(wit::Descriptor, String)> {
        backend::preopens()
            .into_iter()
            .map(|(d, name)| (wit::Descriptor::new(Descriptor(d)), name))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_codes_line_up() {
        for (i, e) in fs_core::ErrorCode::ALL.into_iter().enumerate() {
            assert_eq!(e as usize, i);
            assert_eq!(super::code(e).name(), e.name());
        }
    }
}
