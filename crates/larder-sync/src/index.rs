//! The index: one object under the mirror's prefix, `.larder/index`, that
//! describes every entry the mirror stored (path, kind, size, mode, owner,
//! mtime, symlink target and the ETag it was written with). S3 listings
//! carry no user metadata, so without it a restore needs a HEAD per
//! object; with it, a listing (a request per 1,000 keys) vouches for every
//! object whose ETag and size still match and that was not written after
//! the index. The objects stay 1:1 by path, so other tools read the store
//! as before; the index is only ever a shortcut, checked, never the truth.
//!
//! Encoding: `LARDERIX`, a little-endian u16 format version, the entries
//! (postcard: varints; paths sorted, each stored as the length it shares
//! with the one before plus the rest), then the BLAKE3 hash of all that.

use crate::meta::{self, Attrs, Kind};
use serde::{Deserialize, Serialize};

/// Where the index lives, under the mirror's prefix.
pub const KEY: &str = ".larder/index";
/// A few bytes rewritten after every sync that changed the store, so polls
/// can tell with one request whether to list (see `Mirror::poll`).
pub const VERSION_KEY: &str = ".larder/version";
/// The path the mirror keeps for itself: never mirrored, never restored.
pub const RESERVED: &str = ".larder";

/// Whether `path` (relative) is [`RESERVED`] or beneath it.
pub fn reserved(path: &str) -> bool {
    path.strip_prefix(RESERVED)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

const MAGIC: &[u8; 8] = b"LARDERIX";
const VERSION: u16 = 1;
const HASH: usize = 32;

/// One stored object, as it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    /// The object's size (a symlink's is its target's length).
    pub size: u64,
    pub attrs: Attrs,
    pub etag: String,
    /// A symlink's target (its object's body), so a restore need not GET it.
    pub target: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    entries: Vec<WireEntry<'a>>,
}

#[derive(Serialize, Deserialize)]
struct WireEntry<'a> {
    /// Bytes of the path shared with the entry before.
    shared: u32,
    rest: &'a str,
    kind: u8,
    size: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
    nanos: u32,
    etag: &'a str,
    target: Option<&'a str>,
}

/// Why an index was not used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corrupt(pub String);

impl std::fmt::Display for Corrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn kind_code(k: Kind) -> u8 {
    match k {
        Kind::File => 0,
        Kind::Dir => 1,
        Kind::Symlink => 2,
    }
}

/// The index of `entries` (sorted by path, paths unique).
pub fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut prev = "";
    let wire = Wire {
        entries: entries
            .iter()
            .map(|e| {
                let shared = common_prefix(prev, &e.path);
                prev = &e.path;
                WireEntry {
                    shared: shared as u32,
                    rest: &e.path[shared..],
                    kind: kind_code(e.kind),
                    size: e.size,
                    mode: e.attrs.mode,
                    uid: e.attrs.uid,
                    gid: e.attrs.gid,
                    mtime: e.attrs.mtime_secs,
                    nanos: e.attrs.mtime_nanos,
                    etag: &e.etag,
                    target: e.target.as_deref(),
                }
            })
            .collect(),
    };
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&VERSION.to_le_bytes());
    // Serialising borrowed strings and numbers into a Vec cannot fail.
    out.extend(postcard::to_allocvec(&wire).unwrap_or_default());
    let hash = blake3::hash(&out);
    out.extend_from_slice(hash.as_bytes());
    out
}

/// `body` (the entries' encoding) framed as an index: the header before
/// it, the hash after. For the fuzzer, which varies only the body (a
/// random hash would stop every input at the checksum).
#[cfg(any(test, feature = "fuzzing"))]
pub fn seal(body: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(body);
    let hash = blake3::hash(&out);
    out.extend_from_slice(hash.as_bytes());
    out
}

/// What the fuzzer checks of an index with entries `body`: decoding it
/// never panics, and what decodes is a valid index of the same entries.
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz(body: &[u8]) {
    if let Ok(entries) = decode(&seal(body)) {
        assert_eq!(decode(&encode(&entries)).as_ref(), Ok(&entries));
    }
}

/// The longest common prefix of `a` and `b`, in bytes, on a character
/// boundary.
fn common_prefix(a: &str, b: &str) -> usize {
    let mut n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    while !b.is_char_boundary(n) {
        n -= 1;
    }
    n
}

/// The entries of an index, checked: its hash, its version, every path
/// usable and in strictly increasing order, every field in range.
pub fn decode(bytes: &[u8]) -> Result<Vec<Entry>, Corrupt> {
    let bad = |why: &str| Corrupt(why.to_string());
    if bytes.len() < MAGIC.len() + 2 + HASH || !bytes.starts_with(MAGIC) {
        return Err(bad("not a Larder index"));
    }
    let (body, hash) = bytes.split_at(bytes.len() - HASH);
    if blake3::hash(body).as_bytes() != hash {
        return Err(bad("checksum mismatch (truncated or edited)"));
    }
    let version = u16::from_le_bytes([body[8], body[9]]);
    if version != VERSION {
        return Err(Corrupt(format!("format version {version}, not {VERSION}")));
    }
    let (wire, rest): (Wire, &[u8]) =
        postcard::take_from_bytes(&body[10..]).map_err(|e| Corrupt(format!("undecodable: {e}")))?;
    if !rest.is_empty() {
        return Err(bad("bytes after the entries"));
    }
    let mut out: Vec<Entry> = Vec::new();
    for w in wire.entries {
        let prev = out.last().map_or("", |e| e.path.as_str());
        let shared = w.shared as usize;
        if shared > prev.len() || !prev.is_char_boundary(shared) {
            return Err(bad("an entry shares more of the path before than it has"));
        }
        let path = format!("{}{}", &prev[..shared], w.rest);
        if !meta::valid_path(&path) || reserved(&path) {
            return Err(Corrupt(format!("{path:?} is not a usable path")));
        }
        if !out.is_empty() && path.as_str() <= prev {
            return Err(bad("entries out of order"));
        }
        let kind = match w.kind {
            0 => Kind::File,
            1 => Kind::Dir,
            2 => Kind::Symlink,
            k => return Err(Corrupt(format!("{path}: unknown kind {k}"))),
        };
        if w.nanos >= 1_000_000_000 {
            return Err(Corrupt(format!("{path}: nanoseconds out of range")));
        }
        if (kind == Kind::Symlink) != w.target.is_some()
            || w.target.is_some_and(|t| t.len() as u64 != w.size)
        {
            return Err(Corrupt(format!(
                "{path}: target does not match its kind or size"
            )));
        }
        out.push(Entry {
            path,
            kind,
            size: w.size,
            attrs: Attrs {
                mode: w.mode,
                uid: w.uid,
                gid: w.gid,
                mtime_secs: w.mtime,
                mtime_nanos: w.nanos,
            },
            etag: w.etag.to_string(),
            target: w.target.map(str::to_string),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(path: &str, kind: Kind) -> Entry {
        Entry {
            path: path.into(),
            kind,
            size: if kind == Kind::Symlink { 3 } else { 7 },
            attrs: Attrs {
                mode: 0o100644,
                uid: 1,
                gid: 2,
                mtime_secs: 1_700_000_000,
                mtime_nanos: 5,
            },
            etag: "\"abc\"".into(),
            target: (kind == Kind::Symlink).then(|| "a/b".into()),
        }
    }

    fn sample() -> Vec<Entry> {
        vec![
            entry("a", Kind::Dir),
            entry("a/b", Kind::File),
            entry("a/bé", Kind::Symlink),
            entry("a/bé/c", Kind::File),
        ]
    }

    #[test]
    fn entries_come_back_as_written() {
        assert_eq!(decode(&encode(&sample())).unwrap(), sample());
        assert_eq!(decode(&encode(&[])).unwrap(), vec![]);
    }

    #[test]
    fn a_truncated_or_edited_index_is_refused() {
        let good = encode(&sample());
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "truncated at {cut}");
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x20;
            assert!(decode(&bad).is_err(), "byte {i} flipped");
        }
    }

    /// An index whose hash is right but whose entries are not (a writer
    /// with a bug, or a hand-made one): refused, never half-used.
    fn rehashed(entries: &[Entry]) -> Vec<u8> {
        let mut bytes = encode(entries);
        bytes.truncate(bytes.len() - HASH);
        let h = blake3::hash(&bytes);
        bytes.extend_from_slice(h.as_bytes());
        bytes
    }

    #[test]
    fn well_hashed_nonsense_is_refused() {
        let mut unsorted = sample();
        unsorted.swap(0, 1);
        assert!(decode(&rehashed(&unsorted)).is_err());
        for path in ["", "a//b", "../x", ".larder/index", "/abs"] {
            assert!(
                decode(&rehashed(&[entry(path, Kind::File)])).is_err(),
                "{path:?}"
            );
        }
        let mut link = entry("l", Kind::Symlink);
        link.size = 99;
        assert!(decode(&rehashed(&[link])).is_err());
    }

    proptest! {
        /// The decoder never panics or over-allocates on any input, and
        /// whatever it accepts is a valid index of the same entries.
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            fuzz(&body);
        }

        /// The same for a real index with a few bytes changed (random
        /// bytes rarely get past the first entry).
        #[test]
        fn mutated_indexes_never_panic(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let good = encode(&sample());
            let mut body = good[10..good.len() - HASH].to_vec();
            for (i, b) in flips {
                let i = i.index(body.len());
                body[i] = b;
            }
            fuzz(&body);
        }

        #[test]
        fn any_tree_round_trips(paths in proptest::collection::btree_set("[a-cé]{1,3}(/[a-c]{1,2}){0,2}", 0..40)) {
            let entries: Vec<Entry> = paths
                .iter()
                .enumerate()
                .map(|(i, p)| entry(p, [Kind::File, Kind::Dir, Kind::Symlink][i % 3]))
                .collect();
            prop_assert_eq!(decode(&encode(&entries)).unwrap(), entries);
        }
    }
}
