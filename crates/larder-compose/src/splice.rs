//! Writing a composition whose bundle image is not held in memory.
//!
//! The composition is built with a short random placeholder as the bundle
//! component's passive data segment (and the image's real length in its
//! `image-size`); as the result is written out, the image is streamed in
//! where the placeholder was, and each size field enclosing it (the
//! segment's length, the data section's, the module's, every enclosing
//! component's) is rewritten for the longer contents. Nothing else in a
//! component binary records a byte position, so the rest is copied as is.

use anyhow::{bail, ensure, Context, Result};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use wasm_encoder::Encode;

/// The image a streamed composition writes where its placeholder was:
/// exactly `len` bytes, written by `write`.
pub struct StreamedImage<'a> {
    pub len: u64,
    pub write: &'a mut dyn FnMut(&mut dyn Write) -> Result<()>,
}

/// Placeholder length: long enough that it occurs nowhere else by chance
/// (checked all the same).
const MARKER_LEN: usize = 32;

/// A fresh random placeholder (std's per-process random hash keys).
pub(crate) fn marker() -> Vec<u8> {
    let state = std::collections::hash_map::RandomState::new();
    (0..MARKER_LEN / 8)
        .flat_map(|i| {
            let mut h = state.build_hasher();
            h.write_usize(i);
            h.finish().to_le_bytes()
        })
        .collect()
}

/// A LEB128 size field: where it starts, its encoded length and value.
#[derive(Debug, PartialEq, Eq)]
struct Field {
    at: usize,
    len: usize,
    value: u32,
}

/// Writes `bytes` (a component containing `marker` exactly once, as a whole
/// passive data segment) to `out` with `image` in place of the marker.
pub(crate) fn write(
    bytes: &[u8],
    marker: &[u8],
    image: StreamedImage<'_>,
    out: &mut dyn Write,
) -> Result<()> {
    let at = find_once(bytes, marker)?;
    let fields = enclosing(bytes, at, marker.len())?;
    // Innermost first: each field grows by what its contents grew.
    let mut grown = image.len as i128 - marker.len() as i128;
    let mut values = vec![0u32; fields.len()];
    for (i, f) in fields.iter().enumerate().rev() {
        let value = u32::try_from(i128::from(f.value) + grown)
            .ok()
            .context("the bundled directories make the component larger than 4 GiB")?;
        grown += leb_len(value) as i128 - f.len as i128;
        values[i] = value;
    }
    let mut from = 0;
    for (f, value) in fields.iter().zip(values) {
        out.write_all(&bytes[from..f.at])?;
        let mut leb = Vec::new();
        value.encode(&mut leb);
        out.write_all(&leb)?;
        from = f.at + f.len;
    }
    out.write_all(&bytes[from..at])?;
    let mut counted = Counted { out, n: 0 };
    (image.write)(&mut counted)?;
    ensure!(
        counted.n == image.len,
        "the bundle image was {} bytes, not the {} planned",
        counted.n,
        image.len
    );
    out.write_all(&bytes[at + marker.len()..])?;
    Ok(())
}

struct Counted<'a> {
    out: &'a mut dyn Write,
    n: u64,
}

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

fn leb_len(v: u32) -> usize {
    let mut leb = Vec::new();
    v.encode(&mut leb);
    leb.len()
}

/// Where `marker` starts in `bytes`; an error unless it occurs exactly once.
fn find_once(bytes: &[u8], marker: &[u8]) -> Result<usize> {
    let mut found = bytes
        .windows(marker.len())
        .enumerate()
        .filter(|(_, w)| *w == marker)
        .map(|(i, _)| i);
    match (found.next(), found.next()) {
        (Some(at), None) => Ok(at),
        (None, _) => bail!("the bundle placeholder is missing from the composition"),
        (Some(_), Some(_)) => bail!("the bundle placeholder occurs twice in the composition"),
    }
}

/// The size fields enclosing `bytes[at..at + n]`, outermost first: every
/// section containing it, down to a core module's data section, then the
/// length of the data segment that is exactly those bytes.
fn enclosing(bytes: &[u8], at: usize, n: usize) -> Result<Vec<Field>> {
    let mut fields = Vec::new();
    let (mut start, mut end) = (0, bytes.len());
    'binary: loop {
        ensure!(
            end - start >= 8 && bytes[start..start + 4] == *b"\0asm",
            "not a WebAssembly binary at byte {start}"
        );
        // Components have layer 1 in the header's last two bytes.
        let component = bytes[start + 6..start + 8] == [1, 0];
        let mut p = start + 8;
        while p < end {
            let id = bytes[p];
            let (size, len) = read_u32(bytes, p + 1)?;
            let content = p + 1 + len;
            let content_end = content + size as usize;
            ensure!(
                content_end <= end,
                "a section overruns its binary at byte {p}"
            );
            if content <= at && at + n <= content_end {
                fields.push(Field {
                    at: p + 1,
                    len,
                    value: size,
                });
                match (component, id) {
                    // A core module or a nested component: look inside.
                    (true, 1 | 4) => {
                        (start, end) = (content, content_end);
                        continue 'binary;
                    }
                    // A core module's data section: the segment's length
                    // comes right before its bytes.
                    (false, 11) => {
                        let field = (1..=5)
                            .filter(|&l| l <= at - content)
                            .find_map(|l| match read_u32(bytes, at - l) {
                                Ok((v, used)) if used == l && v as usize == n => Some(Field {
                                    at: at - l,
                                    len: l,
                                    value: v,
                                }),
                                _ => None,
                            })
                            .context("the bundle placeholder is not a whole data segment")?;
                        fields.push(field);
                        return Ok(fields);
                    }
                    _ => bail!("the bundle placeholder is in an unexpected section (id {id})"),
                }
            }
            p = content_end;
        }
        bail!("the bundle placeholder is not inside any section");
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Result<(u32, usize)> {
    let mut r = wasmparser::BinaryReader::new(&bytes[at..], at as u64);
    let v = r.read_var_u32()?;
    Ok((v, r.current_position()))
}
