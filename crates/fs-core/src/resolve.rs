//! Path resolution: the only code that walks `.`, `..` and symlinks.
//!
//! Invariant: resolution never leaves the directory it started from (the
//! *base*). The walker keeps the chain of directories it entered below the
//! base; `..` pops that chain, and popping past the base is `not-permitted`,
//! as wasmtime answers for preopens. An absolute symlink target restarts at
//! the base when the base is a preopen root (so `/etc/x -> /usr/y` works in a
//! whole-tree preopen) and is `not-permitted` otherwise. An absolute path
//! argument is always `not-permitted`: WASI paths are relative.
//!
//! Callers get the directory holding the last component plus that component
//! unresolved (`Last`), because what the last component means depends on the
//! operation: mkdir, unlink and rename each treat `.`, `..`, trailing slashes
//! and symlinks there differently, following Linux.

use crate::error::{ErrorCode, Result};
use crate::fs::Shared;
use crate::inode::Inode;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

/// The final component of a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Last<'p> {
    Name(&'p str),
    Dot,
    DotDot,
}

pub(crate) struct Walker<'a> {
    shared: &'a Shared,
    base: &'a Arc<Inode>,
    /// Absolute symlink targets restart at `base` (it is a preopen root).
    base_is_root: bool,
    /// Directories entered below `base`; the last is the current one.
    stack: Vec<Arc<Inode>>,
    links: u32,
}

/// Looks `name` up in `dir`.
pub(crate) fn lookup(dir: &Inode, name: &str) -> Result<Arc<Inode>> {
    let state = dir.state.read();
    let d = state.dir().ok_or(ErrorCode::NotDirectory)?;
    d.entries.get(name).cloned().ok_or(ErrorCode::NoEntry)
}

impl<'a> Walker<'a> {
    pub fn new(shared: &'a Shared, base: &'a Arc<Inode>, base_is_root: bool) -> Self {
        Walker {
            shared,
            base,
            base_is_root,
            stack: Vec::new(),
            links: 0,
        }
    }

    /// The directory the next component is looked up in.
    pub fn cur(&self) -> &Arc<Inode> {
        self.stack.last().unwrap_or(self.base)
    }

    fn up(&mut self) -> Result<()> {
        self.stack.pop().map(|_| ()).ok_or(ErrorCode::NotPermitted)
    }

    /// Checks a path argument and walks all but its last component. Returns
    /// the last component and whether the path ended in `/`; the walker is
    /// left in the directory holding that component.
    pub fn parent<'p>(&mut self, path: &'p str) -> Result<(Last<'p>, bool)> {
        if path.is_empty() {
            return Err(ErrorCode::NoEntry);
        }
        if path.len() >= self.shared.config.max_path_len {
            return Err(ErrorCode::NameTooLong);
        }
        if path.as_bytes().contains(&0) {
            return Err(ErrorCode::Invalid);
        }
        if path.starts_with('/') {
            return Err(ErrorCode::NotPermitted);
        }
        self.walk(path)
    }

    fn walk<'p>(&mut self, path: &'p str) -> Result<(Last<'p>, bool)> {
        let trailing = path.ends_with('/');
        let mut comps = path.split('/').filter(|c| !c.is_empty()).peekable();
        loop {
            // A relative path with no component left is only possible for a
            // target like "x/" handled above; "" never reaches here.
            let c = comps.next().unwrap_or(".");
            let last = self.classify(c)?;
            if comps.peek().is_none() {
                return Ok((last, trailing));
            }
            self.enter(last)?;
        }
    }

    fn classify<'p>(&self, c: &'p str) -> Result<Last<'p>> {
        Ok(match c {
            "." => Last::Dot,
            ".." => Last::DotDot,
            name if name.len() > self.shared.config.max_name_len => {
                return Err(ErrorCode::NameTooLong)
            }
            name => Last::Name(name),
        })
    }

    /// Moves into the directory `last` names (following symlinks).
    pub fn enter(&mut self, last: Last<'_>) -> Result<()> {
        match last {
            Last::Dot => Ok(()),
            Last::DotDot => self.up(),
            Last::Name(name) => {
                let child = lookup(self.cur(), name)?;
                if child.is_dir() {
                    self.stack.push(child);
                    Ok(())
                } else if child.is_symlink() {
                    let target = self.link_target(&child)?;
                    let (l, _) = self.walk_target(&target)?;
                    let l = own(l);
                    self.enter(l.as_last())
                } else {
                    Err(ErrorCode::NotDirectory)
                }
            }
        }
    }

    /// Resolves `last` to an inode. A symlink there is followed when
    /// `follow` is set or the path had a trailing slash; a trailing slash
    /// also demands a directory.
    pub fn finish(&mut self, last: Last<'_>, follow: bool, trailing: bool) -> Result<Arc<Inode>> {
        match last {
            Last::Dot => Ok(self.cur().clone()),
            Last::DotDot => {
                self.up()?;
                Ok(self.cur().clone())
            }
            Last::Name(name) => {
                let child = lookup(self.cur(), name)?;
                if child.is_symlink() && (follow || trailing) {
                    let target = self.link_target(&child)?;
                    let (l, t) = self.walk_target(&target)?;
                    let l = own(l);
                    return self.finish(l.as_last(), true, trailing || t);
                }
                if trailing && !child.is_dir() {
                    return Err(ErrorCode::NotDirectory);
                }
                Ok(child)
            }
        }
    }

    /// Reads a symlink's target, counting it against the follow limit.
    pub fn link_target(&mut self, link: &Inode) -> Result<String> {
        self.links += 1;
        if self.links > self.shared.config.max_symlinks {
            return Err(ErrorCode::Loop);
        }
        let state = link.state.read();
        match &state.body {
            crate::inode::Body::Symlink(t) => Ok(t.clone()),
            _ => Err(ErrorCode::Invalid),
        }
    }

    /// Walks a symlink target from the directory holding the link, leaving
    /// the walker where its last component is to be looked up.
    pub fn walk_target<'p>(&mut self, target: &'p str) -> Result<(Last<'p>, bool)> {
        if target.is_empty() {
            return Err(ErrorCode::NoEntry);
        }
        let rel = target.trim_start_matches('/');
        if rel.len() != target.len() {
            if !self.base_is_root {
                return Err(ErrorCode::NotPermitted);
            }
            self.stack.clear();
            if rel.is_empty() {
                return Ok((Last::Dot, true));
            }
        }
        self.walk(rel)
    }
}

/// `Last` borrowing a symlink target must outlive the target string's
/// borrow; this owned form bridges the recursion.
pub(crate) enum OwnedLast {
    Name(String),
    Dot,
    DotDot,
}

impl OwnedLast {
    pub fn as_last(&self) -> Last<'_> {
        match self {
            OwnedLast::Name(n) => Last::Name(n),
            OwnedLast::Dot => Last::Dot,
            OwnedLast::DotDot => Last::DotDot,
        }
    }
}

pub(crate) fn own(l: Last<'_>) -> OwnedLast {
    match l {
        Last::Name(n) => OwnedLast::Name(String::from(n)),
        Last::Dot => OwnedLast::Dot,
        Last::DotDot => OwnedLast::DotDot,
    }
}
