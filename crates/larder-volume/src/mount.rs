//! Host directories copied into the volume at build.

use crate::{fs_err, BuildError};
use fs_core::{Descriptor, DescriptorFlags as DF, OpenFlags as OF, PathFlags as PF};
use std::path::PathBuf;

/// Told the size of each piece of file content copied in from a mount.
pub(crate) type Progress = Box<dyn FnMut(&Mount, u64)>;

/// A host directory copied into the filesystem at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Absolute guest path, e.g. `/etc/app`.
    pub guest: String,
    pub host: PathBuf,
    pub read_only: bool,
}

impl Mount {
    /// Parses `GUEST=HOST[:ro]` (`--mount /etc/app=./config:ro`).
    pub fn parse(spec: &str) -> Result<Mount, BuildError> {
        let bad = || BuildError::Spec(spec.to_string());
        let (guest, host) = spec.split_once('=').ok_or_else(bad)?;
        let (host, read_only) = match host.strip_suffix(":ro") {
            Some(h) => (h, true),
            None => (host.strip_suffix(":rw").unwrap_or(host), false),
        };
        if !guest.starts_with('/') || host.is_empty() || guest.split('/').any(|c| c == "..") {
            return Err(bad());
        }
        Ok(Mount {
            guest: normalise(guest),
            host: PathBuf::from(host),
            read_only,
        })
    }
}

fn normalise(guest: &str) -> String {
    let parts: Vec<&str> = guest
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// Makes the mount point (and its parents) and copies the host directory
/// in (its files' contents by reference, if asked), reporting each piece of content to `progress`; marks it read-only
/// if the mount says so.
pub(crate) fn copy_in(
    root: &Descriptor,
    m: &Mount,
    by_reference: bool,
    progress: &mut Option<Progress>,
) -> Result<(), BuildError> {
    let rel = m.guest.trim_start_matches('/');
    root.create_directory_all(rel).map_err(fs_err(&m.guest))?;
    let target = if rel.is_empty() { "." } else { rel };
    let dir = root
        .open_at(PF::SYMLINK_FOLLOW, target, OF::DIRECTORY, DF::READ)
        .map_err(fs_err(&m.guest))?;
    let mut report = |n| {
        if let Some(p) = progress {
            p(m, n)
        }
    };
    let import = match by_reference {
        true => fs_core::host::reference_dir_with_progress,
        false => fs_core::host::import_dir_with_progress,
    };
    import(&dir, &m.host, &mut report).map_err(BuildError::Import)?;
    if m.read_only {
        dir.set_read_only_recursive();
    }
    tracing::debug!(guest = %m.guest, host = %m.host.display(), read_only = m.read_only, "mounted");
    Ok(())
}
