//! Rewriting a few ranges of a large object in place, with the same crash
//! guarantee as a whole replacement: after a crash the file is all old or
//! all new, never a mix. What makes a database's commit cost the pages it
//! changed rather than the whole file.
//!
//! The protocol, with a journal file beside the object:
//!
//! 1. The journal's header (which file, its old length and mtime, the new
//!    length and metadata) is written and made durable, with its entry in
//!    the directory.
//! 2. Bytes past the old end are written straight into the file; bytes
//!    that replace old ones go to the journal. Both made durable, then a
//!    commit record (a hash of everything before it) ends the journal.
//! 3. The journal's bytes are copied into place, the file takes its new
//!    length and metadata, and is made durable.
//! 4. The journal is deleted, durably.
//!
//! Recovery ([`recover`], when a store opens and finds the journal of a
//! process that is gone): a journal without a valid header is dropped (the
//! file was not touched yet); one without a valid commit is rolled back
//! (the file cut to its old length, its old mtime back: nothing before
//! the old end was touched); a committed one is applied again, which is
//! idempotent. Readers in Larder take a shared `flock` on the object while
//! they read, the writer an exclusive one from step 2 to 3, so they never
//! see a half-applied patch either.

use super::{errno, io, page_runs, write_nonzero, LocalDir};
use crate::meta;
use crate::store::{pieces_len, ErrorKind, Metadata, Piece, Result, Source, StoreError};
use rustix::fs::{self as rfs, AtFlags, FlockOperation, Mode, OFlags};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"LARDERJ1";
/// The offset of a record that is the commit.
const COMMIT: u64 = u64::MAX;
/// Replaced bytes are journaled this many at a time.
const CHUNK: u64 = 1 << 20;
/// In a record's length: the range becomes a hole, no bytes follow.
const ZEROS: u64 = 1 << 63;

/// What a journal says about the file it patches.
#[derive(Debug, PartialEq)]
struct Header {
    name: String,
    ino: u64,
    old_len: u64,
    old_mtime: (i64, u32),
    new_len: u64,
    /// The new version's metadata (mode, owner, mtime).
    new_meta: meta::Attrs,
}

impl Header {
    fn encode(&self) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&(self.name.len() as u32).to_le_bytes());
        h.extend_from_slice(self.name.as_bytes());
        h.extend_from_slice(&self.ino.to_le_bytes());
        h.extend_from_slice(&self.old_len.to_le_bytes());
        h.extend_from_slice(&self.old_mtime.0.to_le_bytes());
        h.extend_from_slice(&self.old_mtime.1.to_le_bytes());
        h.extend_from_slice(&self.new_len.to_le_bytes());
        let m = &self.new_meta;
        for n in [m.mode, m.uid, m.gid] {
            h.extend_from_slice(&n.to_le_bytes());
        }
        h.extend_from_slice(&m.mtime_secs.to_le_bytes());
        h.extend_from_slice(&m.mtime_nanos.to_le_bytes());
        h
    }

    fn decode(r: &mut impl Read) -> Option<Header> {
        let name_len = u32::from_le_bytes(take(r)?) as usize;
        if name_len > 4096 {
            return None;
        }
        let mut name = vec![0; name_len];
        r.read_exact(&mut name).ok()?;
        Some(Header {
            name: String::from_utf8(name).ok()?,
            ino: u64::from_le_bytes(take(r)?),
            old_len: u64::from_le_bytes(take(r)?),
            old_mtime: (i64::from_le_bytes(take(r)?), u32::from_le_bytes(take(r)?)),
            new_len: u64::from_le_bytes(take(r)?),
            new_meta: meta::Attrs {
                mode: u32::from_le_bytes(take(r)?),
                uid: u32::from_le_bytes(take(r)?),
                gid: u32::from_le_bytes(take(r)?),
                mtime_secs: u64::from_le_bytes(take(r)?),
                mtime_nanos: u32::from_le_bytes(take(r)?),
            },
        })
    }
}

fn take<const N: usize>(r: &mut impl Read) -> Option<[u8; N]> {
    let mut b = [0; N];
    r.read_exact(&mut b).ok()?;
    Some(b)
}

/// Whether rewriting `pieces` in place over a file of `old_len` bytes
/// costs clearly less than writing the file anew (replaced bytes are
/// written twice, to the journal and into place).
pub(super) fn worth_it(pieces: &[Piece], old_len: u64) -> bool {
    let new_len = pieces_len(pieces);
    let mut cost = 0;
    for p in pieces {
        if let Piece::New(r) = p {
            let replaced = r.end.min(old_len).saturating_sub(r.start);
            cost += 2 * replaced + (r.end - r.start - replaced);
        }
    }
    new_len >= 64 << 10 && cost < new_len / 2
}

/// Where a put stops for a crash test (see [`LocalDir::crash_after_step`]).
fn step(store: &LocalDir, n: u8) {
    if store.crash_after.load(std::sync::atomic::Ordering::Relaxed) == n {
        std::process::abort();
    }
}

impl LocalDir {
    /// Rewrites the regular file `name` in `dir` (open for writing as
    /// `target`) as `pieces` in place, journaled (see the module).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn patch(
        &self,
        key: &str,
        dir: &File,
        name: &str,
        target: &File,
        pieces: &[Piece],
        source: &Arc<dyn Source>,
        meta: &Metadata,
    ) -> Result<()> {
        let st = rfs::fstat(target).map_err(errno(key))?;
        let old_len = st.st_size as u64;
        let header = Header {
            name: name.to_string(),
            ino: st.st_ino,
            old_len,
            old_mtime: (st.st_mtime, st.st_mtime_nsec as u32),
            new_len: pieces_len(pieces),
            new_meta: meta::decode(meta),
        };
        let jname = format!("{}.journal", self.temp());
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let journal: File = rfs::openat(dir, jname.as_str(), flags, Mode::from_raw_mode(0o600))
            .map_err(errno(key))?
            .into();
        let old_etag = super::etag(&st, old_len);
        let mut committed = false;
        let r = self.patch_with(
            key,
            dir,
            target,
            &journal,
            &header,
            old_etag,
            pieces,
            source,
            &mut committed,
        );
        let undone = match (&r, committed) {
            (Ok(()), _) => Ok(()),
            (Err(_), false) => roll_back(key, target, &header),
            // Committed but not applied: the journal stays for the next
            // open of the store to finish.
            (Err(_), true) => Err(StoreError::at(
                ErrorKind::Permanent,
                key,
                "a committed patch could not be applied; reopening the store finishes it",
            )),
        };
        if r.is_err() {
            self.forget_patches(header.ino);
        }
        // Done (or undone): the journal would only repeat it.
        if undone.is_ok() {
            rfs::unlinkat(dir, jname.as_str(), AtFlags::empty()).map_err(errno(key))?;
            dir.sync_all().map_err(io(key))?;
        }
        r.and(undone)
    }

    #[allow(clippy::too_many_arguments)]
    fn patch_with(
        &self,
        key: &str,
        dir: &File,
        target: &File,
        journal: &File,
        header: &Header,
        old_etag: String,
        pieces: &[Piece],
        source: &Arc<dyn Source>,
        committed: &mut bool,
    ) -> Result<()> {
        // 1. The header, durable with its directory entry.
        let mut j = JournalWriter::new(self, key, journal, header)?;
        j.flush()?;
        journal.sync_all().map_err(io(key))?;
        dir.sync_all().map_err(io(key))?;
        step(self, 1);

        // 2. Bytes that replace old ones to the journal (the file is not
        // touched, so reading the source may still fetch from it) ...
        let mut buf = vec![0u8; CHUNK as usize];
        let mut replaced = Vec::new();
        for piece in pieces {
            let r = match piece {
                Piece::Keep(r) if r.end > header.old_len => {
                    return Err(StoreError::at(
                        ErrorKind::Conflict,
                        key,
                        "the current version lacks the kept bytes",
                    ))
                }
                Piece::Keep(_) => continue,
                Piece::New(r) => r,
            };
            let end = r.end.min(header.old_len);
            if r.start < end {
                replaced.push(r.start..end);
            }
            let mut at = r.start;
            while at < end {
                let n = (end - at).min(CHUNK);
                let chunk = &mut buf[..n as usize];
                source.read_at(at, chunk)?;
                // Runs of zero pages become holes, the rest is journaled.
                for (run, zeros) in page_runs(chunk) {
                    let off = at + run.start as u64;
                    j.record(off, (!zeros).then(|| &chunk[run.clone()]), run.len() as u64)?;
                }
                at += n;
            }
        }
        // ... then bytes past the old end into the file. From here on the
        // old version's ETag is gone, but its bytes before the old end are
        // all still there: readers pinned to it are served (see
        // `LocalDir::patched`).
        self.note_patch(header.ino, old_etag, replaced, header.new_len);
        for piece in pieces {
            let Piece::New(r) = piece else { continue };
            for d in source.data_in(r.start.max(header.old_len)..r.end.max(header.old_len))? {
                let mut at = d.start;
                while at < d.end {
                    let n = (d.end - at).min(CHUNK) as usize;
                    let chunk = &mut buf[..n];
                    source.read_at(at, chunk)?;
                    let written = write_nonzero(target, chunk, at).map_err(io(key))?;
                    self.count(written);
                    at += n as u64;
                }
            }
        }
        step(self, 2);
        target.sync_data().map_err(io(key))?;
        let records = j.commit()?;
        journal.sync_data().map_err(io(key))?;
        *committed = true;
        step(self, 3);

        // 3. Into place, as recovery would, with readers kept out.
        let _locked = Flock::exclusive(key, target)?;
        apply(key, target, header, &records, journal, self)?;
        target.sync_all().map_err(io(key))?;
        let now = rfs::fstat(target).map_err(errno(key))?;
        self.finish_patch(header.ino, &super::etag(&now, now.st_size as u64));
        step(self, 4);
        Ok(())
    }
}

/// Writes a journal: the header and its hash, records, then the commit;
/// remembers where each record's bytes went, for applying them.
struct JournalWriter<'a> {
    store: &'a LocalDir,
    key: &'a str,
    out: BufWriter<&'a File>,
    hasher: blake3::Hasher,
    /// Bytes written so far: where the next ones go.
    pos: u64,
    records: Records,
}

impl<'a> JournalWriter<'a> {
    fn new(
        store: &'a LocalDir,
        key: &'a str,
        journal: &'a File,
        header: &Header,
    ) -> Result<JournalWriter<'a>> {
        let head = header.encode();
        let mut hasher = blake3::Hasher::new();
        hasher.update(&head);
        let mut j = JournalWriter {
            store,
            key,
            out: BufWriter::new(journal),
            hasher: hasher.clone(),
            pos: 0,
            records: Vec::new(),
        };
        j.write(MAGIC)?;
        j.write(&head)?;
        j.write(hasher.finalize().as_bytes())?;
        Ok(j)
    }

    fn write(&mut self, b: &[u8]) -> Result<()> {
        self.out.write_all(b).map_err(io(self.key))?;
        self.store.count(b.len());
        self.pos += b.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(io(self.key))
    }

    /// `len` bytes at file offset `at`: `data`, or a hole when `None`.
    fn record(&mut self, at: u64, data: Option<&[u8]>, len: u64) -> Result<()> {
        let mut rec = [0u8; 16];
        rec[..8].copy_from_slice(&at.to_le_bytes());
        let tagged = if data.is_some() { len } else { len | ZEROS };
        rec[8..].copy_from_slice(&tagged.to_le_bytes());
        self.hasher.update(&rec);
        self.write(&rec)?;
        let pos = data.map(|_| self.pos);
        if let Some(d) = data {
            self.hasher.update(d);
            self.write(d)?;
        }
        self.records.push((at, pos, len));
        Ok(())
    }

    /// Ends the journal with the commit record (its hash of all before
    /// it), flushed but not yet synced; returns the records.
    fn commit(mut self) -> Result<Records> {
        let mut rec = [0u8; 16];
        rec[..8].copy_from_slice(&COMMIT.to_le_bytes());
        self.hasher.update(&rec);
        self.write(&rec)?;
        let hash = *self.hasher.finalize().as_bytes();
        self.write(&hash)?;
        self.flush()?;
        Ok(self.records)
    }
}

/// Puts the file back as it was before step 2 (only its tail past the old
/// end and its mtime were touched).
fn roll_back(key: &str, target: &File, header: &Header) -> Result<()> {
    target.set_len(header.old_len).map_err(io(key))?;
    let (s, ns) = header.old_mtime;
    let t = rfs::Timestamps {
        last_access: rfs::Timespec {
            tv_sec: 0,
            tv_nsec: rfs::UTIME_OMIT,
        },
        last_modification: rfs::Timespec {
            tv_sec: s,
            tv_nsec: ns.into(),
        },
    };
    rfs::futimens(target, &t).map_err(errno(key))?;
    target.sync_all().map_err(io(key))
}

/// A journal's records: (offset, position of its bytes in the journal or
/// none for a hole, length).
type Records = Vec<(u64, Option<u64>, u64)>;

/// The journal's header, and its records if a valid commit ends them.
fn read_journal(journal: &File) -> Option<(Header, Option<Records>)> {
    let mut file = journal;
    // A journal just written has its offset at the end.
    std::io::Seek::rewind(&mut file).ok()?;
    let mut r = Counted(BufReader::with_capacity(1 << 16, file), 0);
    if take::<8>(&mut r)? != *MAGIC {
        return None;
    }
    let header = Header::decode(&mut r)?;
    let mut hasher = blake3::Hasher::new();
    hasher.update(&header.encode());
    if take::<32>(&mut r)? != *hasher.finalize().as_bytes() {
        return None;
    }
    let mut records = Vec::new();
    let mut buf = vec![0u8; CHUNK as usize];
    loop {
        let Some(rec) = take::<16>(&mut r) else {
            return Some((header, None));
        };
        hasher.update(&rec);
        let at = u64::from_le_bytes(rec[..8].try_into().expect("8 bytes"));
        let len = u64::from_le_bytes(rec[8..].try_into().expect("8 bytes"));
        if at == COMMIT {
            let committed = take::<32>(&mut r).is_some_and(|h| h == *hasher.finalize().as_bytes());
            return Some((header, committed.then_some(records)));
        }
        if len & ZEROS != 0 {
            records.push((at, None, len & !ZEROS));
            continue;
        }
        if len > CHUNK {
            return Some((header, None));
        }
        let start = r.1;
        let chunk = &mut buf[..len as usize];
        if r.read_exact(chunk).is_err() {
            return Some((header, None));
        }
        hasher.update(chunk);
        records.push((at, Some(start), len));
    }
}

/// A reader that counts the bytes it read.
struct Counted<R>(R, u64);

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1 += n as u64;
        Ok(n)
    }
}

/// Step 3: the journal's bytes into place and the new length.
fn apply(
    key: &str,
    target: &File,
    header: &Header,
    records: &Records,
    journal: &File,
    store: &LocalDir,
) -> Result<()> {
    let mut buf = vec![0u8; CHUNK as usize];
    for &(at, pos, len) in records {
        let Some(pos) = pos else {
            hole(key, target, at, len)?;
            continue;
        };
        let chunk = &mut buf[..len as usize];
        journal.read_exact_at(chunk, pos).map_err(io(key))?;
        target.write_all_at(chunk, at).map_err(io(key))?;
        store.count(chunk.len());
    }
    target.set_len(header.new_len).map_err(io(key))?;
    LocalDir::apply(key, target, &meta::encode_attrs(&header.new_meta))
}

/// Makes `at..at+len` of `target` zeros, as a hole where the filesystem
/// can (a sparse file stays sparse).
fn hole(key: &str, target: &File, at: u64, len: u64) -> Result<()> {
    let flags = rfs::FallocateFlags::PUNCH_HOLE | rfs::FallocateFlags::KEEP_SIZE;
    match rfs::fallocate(target, flags, at, len) {
        Ok(()) => Ok(()),
        Err(_) => {
            let zeros = vec![0u8; len.min(CHUNK) as usize];
            let mut done = 0;
            while done < len {
                let n = (len - done).min(CHUNK) as usize;
                target
                    .write_all_at(&zeros[..n], at + done)
                    .map_err(io(key))?;
                done += n as u64;
            }
            Ok(())
        }
    }
}

/// Finishes or undoes the patch the journal `jname` in `dir` describes,
/// then deletes it (for a store opening after its writer died).
pub(super) fn recover(store: &LocalDir, dir: &File, jname: &str) {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let Ok(journal) = rfs::openat(dir, jname, flags, Mode::empty()).map(File::from) else {
        return;
    };
    let result = match read_journal(&journal) {
        // Never got its header: the file was not touched.
        None => Ok(()),
        Some((header, records)) => {
            let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
            match rfs::openat(dir, header.name.as_str(), flags, Mode::empty()).map(File::from) {
                Ok(target) if rfs::fstat(&target).is_ok_and(|st| st.st_ino == header.ino) => {
                    let key = header.name.as_str();
                    match records {
                        Some(records) => {
                            tracing::info!(file = key, "finishing a patch its writer committed");
                            apply(key, &target, &header, &records, &journal, store)
                                .and_then(|()| target.sync_all().map_err(io(key)))
                        }
                        None => {
                            tracing::info!(file = key, "undoing a patch its writer did not commit");
                            roll_back(key, &target, &header)
                        }
                    }
                }
                // Replaced or deleted since: nothing of ours to mend.
                _ => Ok(()),
            }
        }
    };
    match result {
        Ok(()) => {
            let _ = rfs::unlinkat(dir, jname, AtFlags::empty());
            let _ = dir.sync_all();
        }
        // Kept for the next open to try again, rather than lose the only
        // record of the new bytes.
        Err(e) => tracing::error!(journal = jname, error = %e, "could not recover a patch"),
    }
}

/// An advisory lock on an object file, released when dropped.
pub(super) struct Flock<'a>(&'a File);

impl<'a> Flock<'a> {
    pub(super) fn exclusive(key: &str, f: &'a File) -> Result<Flock<'a>> {
        rfs::flock(f, FlockOperation::LockExclusive).map_err(errno(key))?;
        Ok(Flock(f))
    }

    pub(super) fn shared(key: &str, f: &'a File) -> Result<Flock<'a>> {
        rfs::flock(f, FlockOperation::LockShared).map_err(errno(key))?;
        Ok(Flock(f))
    }
}

impl Drop for Flock<'_> {
    fn drop(&mut self) {
        let _ = rfs::flock(self.0, FlockOperation::Unlock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_reads_back_and_damage_is_noticed() {
        let h = Header {
            name: "data.db".into(),
            ino: 42,
            old_len: 1 << 30,
            old_mtime: (1_700_000_000, 5),
            new_len: 3,
            new_meta: meta::Attrs {
                mode: 0o100640,
                uid: 7,
                gid: 8,
                mtime_secs: 1_800_000_000,
                mtime_nanos: 9,
            },
        };
        let bytes = h.encode();
        assert_eq!(Header::decode(&mut &bytes[..]), Some(h));
        assert_eq!(Header::decode(&mut &bytes[..bytes.len() - 1]), None);
        let mut long = bytes.clone();
        long[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Header::decode(&mut &long[..]), None);
    }

    #[test]
    fn in_place_only_when_clearly_cheaper() {
        let k = |a: u64, b: u64| Piece::Keep(a..b);
        let n = |a: u64, b: u64| Piece::New(a..b);
        const M: u64 = 1 << 20;
        // One page changed in 16 MiB, and 1 MiB appended.
        assert!(worth_it(
            &[
                k(0, 4096),
                n(4096, 8192),
                k(8192, 16 * M),
                n(16 * M, 17 * M)
            ],
            16 * M
        ));
        // Half the file replaced: written twice, not worth it.
        assert!(!worth_it(&[n(0, 8 * M), k(8 * M, 16 * M)], 16 * M));
        // Small files are replaced whole (atomic for every reader).
        assert!(!worth_it(&[k(0, 4096), n(4096, 8192)], 8192));
    }
}
