//! Operations that take a path relative to a directory descriptor.
//!
//! Each resolves everything but the last component with the walker, then
//! treats the last component the way Linux does for that operation: the
//! order of the checks below follows fs/namei.c, because which error wins
//! when several apply is observable (for example `mkdir` of an existing name
//! on a read-only mount is `exist`, but `unlink` there is `read-only`).
//! Capability checks come first, as wasmtime makes them.

use crate::descriptor::{self, Descriptor};
use crate::error::{ErrorCode, Result};
use crate::inode::{Body, Dir, Inode};
use crate::resolve::{own, Last, OwnedLast, Walker};
use crate::time::NewTimestamp;
use crate::types::{DescriptorFlags, DescriptorType, MetadataHash, OpenFlags, PathFlags, Stat};
use alloc::string::String;
use alloc::sync::Arc;

const FILE_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o755;
const SYMLINK_MODE: u32 = 0o777;

impl Descriptor {
    fn same_fs(&self, other: &Descriptor) -> Result<()> {
        if Arc::ptr_eq(&self.shared, &other.shared) {
            Ok(())
        } else {
            Err(ErrorCode::CrossDevice)
        }
    }

    /// Resolves `path` to an inode (for `stat-at` and friends).
    pub(crate) fn resolve_inode(&self, flags: PathFlags, path: &str) -> Result<Arc<Inode>> {
        let mut w = self.walker()?;
        let (last, trailing) = w.parent(path)?;
        w.finish(last, flags.contains(PathFlags::SYMLINK_FOLLOW), trailing)
    }

    pub fn open_at(
        &self,
        path_flags: PathFlags,
        path: &str,
        open: OpenFlags,
        flags: DescriptorFlags,
    ) -> Result<Descriptor> {
        // Write-through: a create or truncate is a change.
        let _notice = open
            .intersects(OpenFlags::CREATE | OpenFlags::TRUNCATE)
            .then(|| self.shared.change_notice());
        let mut w = self.walker()?;
        if !self.flags.contains(DescriptorFlags::READ) {
            return Err(ErrorCode::NotPermitted);
        }
        if !self.can_mutate
            && (open.intersects(OpenFlags::CREATE | OpenFlags::TRUNCATE)
                || flags.contains(DescriptorFlags::WRITE))
        {
            return Err(ErrorCode::NotPermitted);
        }
        if open.contains(OpenFlags::DIRECTORY)
            && open.intersects(OpenFlags::CREATE | OpenFlags::EXCLUSIVE | OpenFlags::TRUNCATE)
        {
            return Err(ErrorCode::Invalid);
        }
        let follow = path_flags.contains(PathFlags::SYMLINK_FOLLOW);
        let (last, trailing) = w.parent(path)?;
        let (inode, created) = if open.contains(OpenFlags::CREATE) {
            self.open_create(
                &mut w,
                own(last),
                trailing,
                open.contains(OpenFlags::EXCLUSIVE),
                follow,
            )?
        } else {
            (w.finish(last, follow, trailing)?, false)
        };
        let write = flags.contains(DescriptorFlags::WRITE);
        let truncate = open.contains(OpenFlags::TRUNCATE);
        if open.contains(OpenFlags::DIRECTORY) && !inode.is_dir() {
            return Err(ErrorCode::NotDirectory);
        }
        if inode.is_symlink() {
            // O_NOFOLLOW on a symlink; Linux checks O_DIRECTORY first.
            return Err(ErrorCode::Loop);
        }
        if inode.is_dir() {
            if write || truncate {
                return Err(ErrorCode::IsDirectory);
            }
        } else if (write || truncate) && !created {
            inode.check_writable()?;
        }
        let fd = self.derive(inode, flags)?;
        if truncate && !created {
            descriptor::set_size(&self.shared, &fd.inode, 0)?;
        }
        Ok(fd)
    }

    /// The O_CREAT half of `open_at`: find or create the file, following a
    /// symlink in the last position (even a dangling one) when allowed.
    fn open_create(
        &self,
        w: &mut Walker<'_>,
        mut last: OwnedLast,
        mut trailing: bool,
        exclusive: bool,
        follow: bool,
    ) -> Result<(Arc<Inode>, bool)> {
        loop {
            let name = match &last {
                OwnedLast::Name(n) => n.as_str(),
                dots => {
                    w.finish(dots.as_last(), true, false)?;
                    return Err(if exclusive {
                        ErrorCode::Exist
                    } else {
                        ErrorCode::IsDirectory
                    });
                }
            };
            if trailing {
                return Err(ErrorCode::IsDirectory);
            }
            let dir = w.cur().clone();
            let mut state = dir.state.write();
            let entries = &state.dir().ok_or(ErrorCode::NotDirectory)?.entries;
            if let Some(existing) = entries.get(name).cloned() {
                drop(state);
                if exclusive {
                    return Err(ErrorCode::Exist);
                }
                if existing.is_symlink() {
                    if !follow {
                        return Err(ErrorCode::Loop);
                    }
                    let target = w.link_target(&existing)?;
                    let (l, t) = w.walk_target(&target)?;
                    last = own(l);
                    trailing = t;
                    continue;
                }
                if existing.is_dir() {
                    return Err(ErrorCode::IsDirectory);
                }
                return Ok((existing, false));
            }
            dir.check_writable()?;
            if state.meta.nlink == 0 {
                return Err(ErrorCode::NoEntry);
            }
            let inode = Inode::new(&self.shared, Body::new_file(), FILE_MODE)?;
            state
                .dir_mut()
                .expect("checked above")
                .entries
                .insert(String::from(name), inode.clone());
            state.meta.modified(self.shared.now(), &self.shared);
            return Ok((inode, true));
        }
    }

    pub fn create_directory_at(&self, path: &str) -> Result<()> {
        let _notice = self.shared.change_notice();
        self.require_mutate()?;
        let mut w = self.walker()?;
        let (last, _) = w.parent(path)?;
        let Last::Name(name) = last else {
            return Err(ErrorCode::Exist);
        };
        let dir = w.cur();
        let mut state = dir.state.write();
        let d = state.dir().ok_or(ErrorCode::NotDirectory)?;
        if d.entries.contains_key(name) {
            return Err(ErrorCode::Exist);
        }
        dir.check_writable()?;
        if state.meta.nlink == 0 {
            return Err(ErrorCode::NoEntry);
        }
        if state.meta.nlink >= self.shared.config.max_links {
            return Err(ErrorCode::TooManyLinks);
        }
        let child = Inode::new(&self.shared, Body::Dir(Dir::default()), DIR_MODE)?;
        child.set_parent(dir);
        state
            .dir_mut()
            .expect("checked above")
            .entries
            .insert(String::from(name), child);
        state.meta.nlink += 1;
        state.meta.modified(self.shared.now(), &self.shared);
        Ok(())
    }

    /// `path` and every missing directory above it, as `mkdir -p` and
    /// `std::fs::create_dir_all` do: directories that exist (or symlinks
    /// to them) are passed through; a file in the way is `not-directory`
    /// above the last name and `exist` at it.
    pub fn create_directory_all(&self, path: &str) -> Result<()> {
        let (mut end, mut existed) = (0, false);
        for part in path.split('/') {
            end += part.len();
            if !part.is_empty() {
                existed = match self.create_directory_at(&path[..end]) {
                    Ok(()) => false,
                    Err(ErrorCode::Exist) => true,
                    Err(e) => return Err(e),
                };
            }
            end += 1;
        }
        if existed
            && self.stat_at(PathFlags::SYMLINK_FOLLOW, path)?.kind != DescriptorType::Directory
        {
            return Err(ErrorCode::Exist);
        }
        Ok(())
    }

    pub fn unlink_file_at(&self, path: &str) -> Result<()> {
        let _notice = self.shared.change_notice();
        self.require_mutate()?;
        let mut w = self.walker()?;
        let (last, trailing) = w.parent(path)?;
        let Last::Name(name) = last else {
            return Err(ErrorCode::IsDirectory);
        };
        let dir = w.cur();
        dir.check_writable()?;
        let mut state = dir.state.write();
        let d = state.dir_mut().ok_or(ErrorCode::NotDirectory)?;
        let child = d.entries.get(name).ok_or(ErrorCode::NoEntry)?;
        if child.is_dir() {
            return Err(ErrorCode::IsDirectory);
        }
        if trailing {
            return Err(ErrorCode::NotDirectory);
        }
        if child.readonly() {
            // A file mounted read-only (see remove_directory_at).
            return Err(ErrorCode::Busy);
        }
        let child = d.entries.remove(name).expect("looked up above");
        let now = self.shared.now();
        {
            let mut c = child.state.write();
            c.meta.nlink -= 1;
            c.meta.changed(now, &self.shared);
        }
        state.meta.modified(now, &self.shared);
        Ok(())
    }

    pub fn remove_directory_at(&self, path: &str) -> Result<()> {
        let _notice = self.shared.change_notice();
        self.require_mutate()?;
        let mut w = self.walker()?;
        let (last, _) = w.parent(path)?;
        let name = match last {
            Last::Name(n) => n,
            Last::Dot => return Err(ErrorCode::Invalid),
            Last::DotDot => return Err(ErrorCode::NotEmpty),
        };
        let dir = w.cur();
        dir.check_writable()?;
        let mut state = dir.state.write();
        let d = state.dir_mut().ok_or(ErrorCode::NotDirectory)?;
        let child = d.entries.get(name).ok_or(ErrorCode::NoEntry)?.clone();
        if !child.is_dir() {
            return Err(ErrorCode::NotDirectory);
        }
        if child.readonly() {
            // A read-only inode under a writable directory is a mount's
            // root, which Linux keeps where it is (EBUSY), empty or not.
            return Err(ErrorCode::Busy);
        }
        let mut c = child.state.write();
        if !c.dir().expect("is a directory").entries.is_empty() {
            return Err(ErrorCode::NotEmpty);
        }
        d.entries.remove(name);
        let now = self.shared.now();
        c.meta.nlink = 0;
        c.meta.changed(now, &self.shared);
        state.meta.nlink -= 1;
        state.meta.modified(now, &self.shared);
        Ok(())
    }

    /// `symlink-at` as WASI 0.2 specifies it: a target starting with `/`
    /// is `not-permitted` (an absolute link would point somewhere else on
    /// every host), and nothing is made.
    pub fn symlink_at(&self, target: &str, path: &str) -> Result<()> {
        if target.starts_with('/') {
            // After the descriptor's own check, as for every other call.
            self.require_mutate()?;
            return Err(ErrorCode::NotPermitted);
        }
        self.symlink_any_at(target, path)
    }

    /// A symlink to any target, absolute ones included (they resolve
    /// inside the root, as under a chroot): for links that exist already
    /// and are being brought in (a host directory, a store, a 9P client's
    /// Tsymlink), not made by a WASI app.
    pub fn symlink_any_at(&self, target: &str, path: &str) -> Result<()> {
        let _notice = self.shared.change_notice();
        self.require_mutate()?;
        let mut w = self.walker()?;
        if target.is_empty() {
            return Err(ErrorCode::NoEntry);
        }
        if target.len() >= self.shared.config.max_path_len {
            return Err(ErrorCode::NameTooLong);
        }
        if target.as_bytes().contains(&0) {
            return Err(ErrorCode::Invalid);
        }
        let (last, trailing) = w.parent(path)?;
        let Last::Name(name) = last else {
            return Err(ErrorCode::Exist);
        };
        let dir = w.cur();
        let mut state = dir.state.write();
        self.check_creatable(dir, &state, name, trailing)?;
        let link = Inode::new(
            &self.shared,
            Body::Symlink(String::from(target)),
            SYMLINK_MODE,
        )?;
        state
            .dir_mut()
            .expect("checked")
            .entries
            .insert(String::from(name), link);
        state.meta.modified(self.shared.now(), &self.shared);
        Ok(())
    }

    /// The checks Linux's filename_create makes for a new non-directory name.
    fn check_creatable(
        &self,
        dir: &Inode,
        state: &crate::inode::State,
        name: &str,
        trailing: bool,
    ) -> Result<()> {
        let d = state.dir().ok_or(ErrorCode::NotDirectory)?;
        if d.entries.contains_key(name) {
            return Err(ErrorCode::Exist);
        }
        if trailing {
            return Err(ErrorCode::NoEntry);
        }
        dir.check_writable()?;
        if state.meta.nlink == 0 {
            return Err(ErrorCode::NoEntry);
        }
        Ok(())
    }

    pub fn link_at(
        &self,
        old_flags: PathFlags,
        old_path: &str,
        new_dir: &Descriptor,
        new_path: &str,
    ) -> Result<()> {
        let _notice = self.shared.change_notice();
        self.require_mutate()?;
        new_dir.require_mutate()?;
        crate::fs::room_to_grow()?;
        let src = self.resolve_inode(old_flags, old_path)?;
        let mut w = new_dir.walker()?;
        self.same_fs(new_dir)?;
        let (last, trailing) = w.parent(new_path)?;
        let Last::Name(name) = last else {
            return Err(ErrorCode::Exist);
        };
        let dir = w.cur();
        let mut state = dir.state.write();
        self.check_creatable(dir, &state, name, trailing)?;
        if src.readonly() {
            // On Linux a read-only mount is another mount.
            return Err(ErrorCode::CrossDevice);
        }
        if src.is_dir() {
            return Err(ErrorCode::NotPermitted);
        }
        let now = self.shared.now();
        {
            let mut s = src.state.write();
            if s.meta.nlink == 0 {
                return Err(ErrorCode::NoEntry);
            }
            if s.meta.nlink >= self.shared.config.max_links {
                return Err(ErrorCode::TooManyLinks);
            }
            s.meta.nlink += 1;
            s.meta.changed(now, &self.shared);
        }
        state
            .dir_mut()
            .expect("checked")
            .entries
            .insert(String::from(name), src);
        state.meta.modified(now, &self.shared);
        Ok(())
    }

    pub fn readlink_at(&self, path: &str) -> Result<String> {
        let mut w = self.walker()?;
        let (last, trailing) = w.parent(path)?;
        let inode = w.finish(last, false, trailing)?;
        let target = match &inode.state.read().body {
            Body::Symlink(t) => t.clone(),
            _ => return Err(ErrorCode::Invalid),
        };
        descriptor::touch_atime(&self.shared, &inode);
        Ok(target)
    }

    pub fn stat_at(&self, flags: PathFlags, path: &str) -> Result<Stat> {
        let inode = self.resolve_inode(flags, path)?;
        Ok(descriptor::stat(&self.shared, &inode))
    }

    pub fn metadata_hash_at(&self, flags: PathFlags, path: &str) -> Result<MetadataHash> {
        Ok(descriptor::metadata_hash(&self.stat_at(flags, path)?))
    }

    pub fn set_times_at(
        &self,
        flags: PathFlags,
        path: &str,
        atime: NewTimestamp,
        mtime: NewTimestamp,
    ) -> Result<()> {
        let _notice = self.shared.change_notice();
        self.require_mutate()?;
        let inode = self.resolve_inode(flags, path)?;
        descriptor::set_times(&self.shared, &inode, atime, mtime)
    }

    /// Sets permission bits and owner, as `fchmodat` + `fchownat` (WASI has
    /// neither; importers and mirrors restore what they recorded). Modes
    /// are stored and reported, never enforced.
    pub fn set_mode_at(
        &self,
        flags: PathFlags,
        path: &str,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<()> {
        let _notice = self.shared.change_notice();
        self.require_mutate()?;
        let inode = self.resolve_inode(flags, path)?;
        inode.check_writable()?;
        let now = self.shared.now();
        let mut state = inode.state.write();
        state.meta.mode = mode & 0o7777;
        state.meta.uid = uid;
        state.meta.gid = gid;
        state.meta.changed(now, &self.shared);
        Ok(())
    }

    pub fn rename_at(&self, old_path: &str, new_dir: &Descriptor, new_path: &str) -> Result<()> {
        let _notice = self.shared.change_notice();
        self.require_mutate()?;
        new_dir.require_mutate()?;
        crate::fs::headroom()?;
        let mut ow = self.walker()?;
        let mut nw = new_dir.walker()?;
        self.same_fs(new_dir)?;
        let (old_last, old_trailing) = ow.parent(old_path)?;
        let (new_last, new_trailing) = nw.parent(new_path)?;
        let (Last::Name(old_name), Last::Name(new_name)) = (old_last, new_last) else {
            return Err(ErrorCode::Busy);
        };
        let (odir, ndir) = (ow.cur().clone(), nw.cur().clone());
        odir.check_writable()?;
        ndir.check_writable()?;
        if Arc::ptr_eq(&odir, &ndir) {
            let mut state = odir.state.write();
            return self.rename_in(
                &odir,
                &mut state,
                None,
                old_name,
                old_trailing,
                new_name,
                new_trailing,
            );
        }
        let _serial = self.shared.rename_lock.lock();
        // Lock the ancestor first when one contains the other, as everyone
        // else locks parents before children.
        let (mut os, mut ns);
        if is_ancestor_or_self(&ndir, &odir) {
            ns = ndir.state.write();
            os = odir.state.write();
        } else {
            os = odir.state.write();
            ns = ndir.state.write();
        }
        self.rename_in(
            &odir,
            &mut os,
            Some((&ndir, &mut ns)),
            old_name,
            old_trailing,
            new_name,
            new_trailing,
        )
    }

    /// The body of rename with both directories locked; `new` is `None` when
    /// the source and target directory are the same.
    #[allow(clippy::too_many_arguments)]
    fn rename_in(
        &self,
        odir: &Arc<Inode>,
        os: &mut crate::inode::State,
        new: Option<(&Arc<Inode>, &mut crate::inode::State)>,
        old_name: &str,
        old_trailing: bool,
        new_name: &str,
        new_trailing: bool,
    ) -> Result<()> {
        let src = os
            .dir()
            .ok_or(ErrorCode::NotDirectory)?
            .entries
            .get(old_name)
            .cloned()
            .ok_or(ErrorCode::NoEntry)?;
        let (ndir, ns) = match new {
            Some((d, s)) => (d, Some(s)),
            None => (odir, None),
        };
        let dst = match &ns {
            Some(s) => s
                .dir()
                .ok_or(ErrorCode::NotDirectory)?
                .entries
                .get(new_name)
                .cloned(),
            None => os.dir().expect("checked").entries.get(new_name).cloned(),
        };
        if !src.is_dir() && (old_trailing || new_trailing) {
            return Err(ErrorCode::NotDirectory);
        }
        if ns.is_some() {
            if is_ancestor_or_self(&src, ndir) {
                return Err(ErrorCode::Invalid);
            }
            if let Some(dst) = &dst {
                if is_ancestor_or_self(dst, odir) {
                    return Err(ErrorCode::NotEmpty);
                }
            }
        }
        if dst.as_ref().is_some_and(|d| Arc::ptr_eq(d, &src)) {
            return Ok(());
        }
        // Both parents are writable (checked), so a read-only source or
        // target is a read-only mount's root: it neither moves nor is
        // replaced, as a Linux mount point (EBUSY).
        if src.readonly() || dst.as_ref().is_some_and(|d| d.readonly()) {
            return Err(ErrorCode::Busy);
        }
        if let Some(dst) = &dst {
            match (src.is_dir(), dst.is_dir()) {
                (true, false) => return Err(ErrorCode::NotDirectory),
                (false, true) => return Err(ErrorCode::IsDirectory),
                (true, true) => {
                    if !dst.is_empty_dir() {
                        return Err(ErrorCode::NotEmpty);
                    }
                }
                (false, false) => {}
            }
        } else if src.is_dir()
            && ns
                .as_ref()
                .is_some_and(|s| s.meta.nlink >= self.shared.config.max_links)
        {
            return Err(ErrorCode::TooManyLinks);
        }

        let now = self.shared.now();
        let moves_dir = src.is_dir() && ns.is_some();
        os.dir_mut().expect("checked").entries.remove(old_name);
        os.meta.modified(now, &self.shared);
        if moves_dir {
            os.meta.nlink -= 1;
        }
        let nstate: &mut crate::inode::State = match ns {
            Some(s) => s,
            None => os,
        };
        nstate
            .dir_mut()
            .expect("checked")
            .entries
            .insert(String::from(new_name), src.clone());
        nstate.meta.modified(now, &self.shared);
        if let Some(dst) = &dst {
            let mut d = dst.state.write();
            if dst.is_dir() {
                d.meta.nlink = 0;
                nstate.meta.nlink -= 1;
            } else {
                d.meta.nlink -= 1;
            }
            d.meta.changed(now, &self.shared);
        }
        src.state.write().meta.changed(now, &self.shared);
        if moves_dir {
            nstate.meta.nlink += 1;
            src.set_parent(ndir);
        }
        Ok(())
    }
}

/// Whether `a` is `d` or one of its ancestors.
fn is_ancestor_or_self(a: &Arc<Inode>, d: &Arc<Inode>) -> bool {
    let mut cur = Some(d.clone());
    while let Some(c) = cur {
        if Arc::ptr_eq(&c, a) {
            return true;
        }
        cur = c.parent();
    }
    false
}
