//! An object that arrives a piece at a time: `larder:vfs/store`'s
//! `upload`, through which a component's sync engine sends a large file
//! to the store its host lends it. Pieces come in offset order: ranges
//! kept from the object's current version, and new bytes, which go to an
//! unlinked temporary file at their own offsets (what neither covers is a
//! hole there, and stays one in stores that keep holes). `finish` hands the
//! whole to [`ObjectStore::put_from`], which reads the new bytes back a
//! piece at a time, so neither the sender nor the host holds it whole.

use crate::store::{Cond, ErrorKind, Metadata, ObjectStore, Piece, Result, Source, StoreError};
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

pub struct Spool {
    size: u64,
    /// Contiguous from 0 to `at`; no two `New` pieces in a row.
    pieces: Vec<Piece>,
    at: u64,
    /// Created at the first new byte.
    file: Option<File>,
    /// Ranges of `file` written, in order.
    written: Vec<Range<u64>>,
}

fn misuse(message: String) -> StoreError {
    StoreError::new(ErrorKind::Permanent, format!("upload: {message}"))
}

fn spool_io(e: std::io::Error) -> StoreError {
    StoreError::new(
        ErrorKind::Transient,
        format!("upload: the host's spool file: {e}"),
    )
}

/// Appends `r` to `ranges`, merging it with the last when they touch.
fn extend(ranges: &mut Vec<Range<u64>>, r: Range<u64>) {
    match ranges.last_mut() {
        Some(last) if last.end == r.start => last.end = r.end,
        _ => ranges.push(r),
    }
}

impl Spool {
    /// An upload of an object `size` bytes long. Nothing is written yet.
    pub fn new(size: u64) -> Spool {
        Spool {
            size,
            pieces: Vec::new(),
            at: 0,
            file: None,
            written: Vec::new(),
        }
    }

    /// Checks that `start..end` comes after every piece so far and inside
    /// the object, and covers the gap before it as new bytes (a hole).
    fn advance(&mut self, start: u64, end: u64) -> Result<()> {
        if start < self.at {
            return Err(misuse(format!(
                "a piece at {start} overlaps or precedes the one ending at {}",
                self.at
            )));
        }
        if end < start || end > self.size {
            return Err(misuse(format!(
                "a piece {start}..{end} is not within the object's {} bytes",
                self.size
            )));
        }
        if start > self.at {
            self.push(Piece::New(self.at..start));
        }
        Ok(())
    }

    fn push(&mut self, piece: Piece) {
        let (Piece::Keep(r) | Piece::New(r)) = &piece;
        self.at = r.end;
        match (self.pieces.last_mut(), &piece) {
            (Some(Piece::New(last)), Piece::New(r)) | (Some(Piece::Keep(last)), Piece::Keep(r))
                if last.end == r.start =>
            {
                last.end = r.end
            }
            _ => self.pieces.push(piece),
        }
    }

    /// Bytes `range` stay as they are in the object's current version.
    pub fn keep(&mut self, range: Range<u64>) -> Result<()> {
        self.advance(range.start, range.end)?;
        if !range.is_empty() {
            self.push(Piece::Keep(range));
        }
        Ok(())
    }

    /// New bytes at `offset`.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| misuse(format!("{} bytes at {offset} overflow", data.len())))?;
        self.advance(offset, end)?;
        if data.is_empty() {
            return Ok(());
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(tempfile::tempfile().map_err(spool_io)?),
        };
        file.write_all_at(data, offset).map_err(spool_io)?;
        extend(&mut self.written, offset..end);
        self.push(Piece::New(offset..end));
        Ok(())
    }

    /// Writes the object to `key` in `store` (what was not given is
    /// zeros), as `put` does: atomically, durably, if `cond` holds.
    pub fn finish(
        mut self,
        store: &dyn ObjectStore,
        key: &str,
        meta: &Metadata,
        cond: &Cond,
    ) -> Result<String> {
        if self.at < self.size {
            self.push(Piece::New(self.at..self.size));
        }
        let source: Arc<dyn Source> = Arc::new(Spooled {
            file: self.file,
            written: self.written,
        });
        store.put_from(key, &self.pieces, &source, meta, cond)
    }
}

/// The spool file as the store reads it.
struct Spooled {
    file: Option<File>,
    written: Vec<Range<u64>>,
}

impl Source for Spooled {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        buf.fill(0);
        let Some(file) = &self.file else {
            return Ok(()); // nothing was written: all hole
        };
        let end = offset + buf.len() as u64;
        for r in self.data_in(offset..end)? {
            let at = (r.start - offset) as usize..(r.end - offset) as usize;
            file.read_exact_at(&mut buf[at], r.start)
                .map_err(spool_io)?;
        }
        Ok(())
    }

    fn data_in(&self, range: Range<u64>) -> Result<Vec<Range<u64>>> {
        let first = self.written.partition_point(|w| w.end <= range.start);
        Ok(self.written[first..]
            .iter()
            .take_while(|w| w.start < range.end)
            .map(|w| w.start.max(range.start)..w.end.min(range.end))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemStore;

    fn meta() -> Metadata {
        [("mode".to_string(), "33188".to_string())].into()
    }

    #[test]
    fn pieces_in_order_make_the_object_with_zeros_between() {
        let store = MemStore::new();
        let etag = store.put("f", &[7u8; 100], &meta(), &Cond::None).unwrap();
        let mut s = Spool::new(120);
        s.keep(0..10).unwrap();
        s.write(10, b"abc").unwrap();
        s.write(13, b"de").unwrap();
        s.keep(20..30).unwrap();
        s.write(50, b"z").unwrap();
        s.finish(&store, "f", &meta(), &Cond::IfMatch(etag))
            .unwrap();
        let mut want = vec![0u8; 120];
        want[..10].fill(7);
        want[10..15].copy_from_slice(b"abcde");
        want[20..30].fill(7);
        want[50] = b'z';
        assert_eq!(store.contents()["f"].0, want);
    }

    #[test]
    fn out_of_order_or_out_of_bounds_pieces_are_refused() {
        let mut s = Spool::new(10);
        s.write(4, b"ab").unwrap();
        for e in [
            s.write(5, b"x").unwrap_err(),
            s.keep(0..1).unwrap_err(),
            s.keep(8..11).unwrap_err(),
            s.write(9, b"xy").unwrap_err(),
            s.write(u64::MAX, b"x").unwrap_err(),
        ] {
            assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
        }
        // The refused calls changed nothing.
        s.write(6, b"cd").unwrap();
        assert_eq!(s.pieces, vec![Piece::New(0..8)]);
    }

    #[test]
    fn a_failed_condition_writes_nothing() {
        let store = MemStore::new();
        store.put("f", b"old", &meta(), &Cond::None).unwrap();
        let mut s = Spool::new(3);
        s.write(0, b"new").unwrap();
        let e = s
            .finish(&store, "f", &meta(), &Cond::IfNoneMatch)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Conflict);
        assert_eq!(store.contents()["f"].0, b"old");
    }

    #[test]
    fn holes_stay_holes_in_a_local_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::LocalDir::open(dir.path()).unwrap();
        let size = 1u64 << 40;
        let mut s = Spool::new(size);
        s.write(1 << 30, b"middle").unwrap();
        s.write(size - 3, b"end").unwrap();
        s.finish(&store, "sparse", &meta(), &Cond::IfNoneMatch)
            .unwrap();
        let path = dir.path().join("sparse");
        let md = std::fs::metadata(&path).unwrap();
        assert_eq!(md.len(), size);
        use std::os::unix::fs::MetadataExt;
        assert!(md.blocks() < 1024, "{} blocks stored", md.blocks());
        let got = store
            .get("sparse", Some((1 << 30) - 1..(1 << 30) + 7), &Cond::None)
            .unwrap();
        assert_eq!(got, b"\0middle\0");
        let tail = store.get("sparse", Some(size - 4..size), &Cond::None);
        assert_eq!(tail.unwrap(), b"\0end");

        // A rewrite keeping all but the tail copies the kept data, not the
        // terabyte of hole around it, and the file stays sparse.
        let etag = store.head("sparse").unwrap().unwrap().etag;
        let mut s = Spool::new(size);
        s.keep(0..size - 3).unwrap();
        s.write(size - 3, b"END").unwrap();
        s.finish(&store, "sparse", &meta(), &Cond::IfMatch(etag))
            .unwrap();
        let md = std::fs::metadata(&path).unwrap();
        assert_eq!(md.len(), size);
        assert!(md.blocks() < 1024, "{} blocks stored", md.blocks());
        let got = store.get("sparse", Some((1 << 30)..(1 << 30) + 6), &Cond::None);
        assert_eq!(got.unwrap(), b"middle");
        let tail = store.get("sparse", Some(size - 4..size), &Cond::None);
        assert_eq!(tail.unwrap(), b"\0END");

        // Keeping bytes past the current version's end is a conflict (it
        // changed), not zeros.
        let etag = store.head("sparse").unwrap().unwrap().etag;
        let mut s = Spool::new(size + 10);
        s.keep(0..size + 10).unwrap();
        let e = s.finish(&store, "sparse", &meta(), &Cond::IfMatch(etag));
        assert_eq!(e.unwrap_err().kind, ErrorKind::Conflict);
    }
}
