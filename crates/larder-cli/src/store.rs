//! `--store URL` and the commands that look into a store without running
//! an app: `larder ls`, `larder cat`, `larder export`.

use crate::report;
use anyhow::{bail, Context, Result};
use larder_sync::meta::{self, S_IFDIR, S_IFLNK, S_IFMT};
use larder_sync::{Cond, ErrorKind, LocalDir, ObjectStore};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// A store and the key prefix the filesystem lives under.
pub struct Opened {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: String,
}

/// `./dir`, `/abs/dir` or `file:///abs/dir`: a local directory (created if
/// missing). `s3://bucket/prefix[?endpoint=URL&region=R&path-style=BOOL&timeout=SECS]`:
/// S3 or an S3-compatible server; credentials, region and endpoint also
/// come from the standard `AWS_*` environment and profiles.
pub fn open(url: &str) -> Result<Opened> {
    open_with(url, true)
}

/// [`open`] for commands that only read a store (`ls`, `cat`, `export`):
/// a local directory must exist already (a typo must not create one).
pub fn open_existing(url: &str) -> Result<Opened> {
    open_with(url, false)
}

fn open_with(url: &str, create: bool) -> Result<Opened> {
    if url.is_empty() {
        bail!("--store: empty");
    }
    if url.starts_with("s3://") {
        return open_s3(url, create);
    }
    if url.contains("://") && !url.starts_with("file://") {
        bail!("--store {url}: expected a directory, file:///path or s3://bucket/prefix");
    }
    // `s3:/b/p`, `file:x`: a URL mistyped, not a directory to create.
    if let Some((scheme, _)) = url.split_once(':') {
        let schemeish = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c));
        if schemeish && !url.starts_with("file://") {
            bail!(
                "--store {url}: looks like a URL but is not one (s3://bucket/prefix or \
                 file:///path); for a directory of that name write ./{url}"
            );
        }
    }
    let dir = PathBuf::from(url.strip_prefix("file://").unwrap_or(url));
    if dir.exists() && !dir.is_dir() {
        bail!("--store {url}: {} is not a directory", dir.display());
    }
    let opened = if create {
        LocalDir::open(&dir)
    } else {
        LocalDir::open_existing(&dir)
    };
    let store = match opened {
        Err(e) if e.kind == ErrorKind::NotFound => bail!("--store {url}: no such directory"),
        r => r.with_context(|| format!("--store {url}"))?,
    };
    Ok(Opened {
        store: Arc::new(store),
        prefix: String::new(),
    })
}

/// An S3 store; `writing` probes its conditional writes (which writes),
/// otherwise nothing is written, for read-only commands and credentials.
fn open_s3(url: &str, writing: bool) -> Result<Opened> {
    let config = larder_sync::s3::S3Config::from_url(url)
        .map_err(|e| anyhow::anyhow!("--store {url}: {e}"))?;
    let store = if writing {
        larder_sync::s3::S3Store::open(&config)
    } else {
        larder_sync::s3::S3Store::open_for_reading(&config)
    }
    .with_context(|| format!("--store {url}"))?;
    Ok(Opened {
        store: Arc::new(store),
        prefix: config.prefix,
    })
}

#[derive(clap::Args)]
pub struct LsArgs {
    /// The store: a directory, file:///path or s3://bucket/prefix.
    #[arg(long)]
    store: String,
    /// Only what is under this guest path.
    path: Option<String>,
}

#[derive(clap::Args)]
pub struct CatArgs {
    #[arg(long)]
    store: String,
    /// The file's guest path.
    path: String,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    #[arg(long)]
    store: String,
    /// Where to write the tree (a directory, created if missing).
    dest: PathBuf,
    /// Only what is under this guest path.
    #[arg(long)]
    path: Option<String>,
}

fn rel(p: &Option<String>) -> String {
    p.as_deref().unwrap_or("").trim_matches('/').to_string()
}

/// Whether store path `path` (`dir/` for directories) is `under` or below
/// it; everything is under "".
fn within(path: &str, under: &str) -> bool {
    let path = path.trim_end_matches('/');
    under.is_empty() || path == under || path.starts_with(&format!("{under}/"))
}

/// `ls -l`-like lines: type and mode, size, mtime (UTC), path.
pub fn ls(args: LsArgs) -> ExitCode {
    report((|| {
        let s = open_existing(&args.store)?;
        let under = rel(&args.path);
        let prefix = if under.is_empty() {
            s.prefix.clone()
        } else {
            format!("{}{under}", s.prefix)
        };
        let mut out = std::io::stdout().lock();
        for o in s.store.list(&prefix)? {
            let path = &o.key[s.prefix.len()..];
            if !within(path, &under) {
                continue;
            }
            let a = meta::decode(&o.meta);
            let (t, mode) = if o.key.ends_with('/') {
                ('d', S_IFDIR | (a.mode & 0o7777))
            } else {
                match a.mode & S_IFMT {
                    S_IFLNK => ('l', a.mode),
                    S_IFDIR => ('d', a.mode),
                    _ => ('-', a.mode),
                }
            };
            writeln!(
                out,
                "{t}{:04o} {:>12} {:>10}.{:09} /{}",
                mode & 0o7777,
                o.size,
                a.mtime_secs,
                a.mtime_nanos,
                path.trim_end_matches('/')
            )?;
        }
        Ok(())
    })())
}

pub fn cat(args: CatArgs) -> ExitCode {
    report((|| {
        let s = open_existing(&args.store)?;
        let key = format!("{}{}", s.prefix, args.path.trim_start_matches('/'));
        let info = match s.store.head(&key)? {
            Some(info) => info,
            None if s.store.head(&format!("{key}/"))?.is_some() => {
                bail!("{} is a directory", args.path)
            }
            None => bail!("{}: no such file in the store", args.path),
        };
        // In pieces of one version: a file of any size (a sparse 8 TiB one
        // included) streams in bounded memory.
        const PIECE: u64 = 4 << 20;
        let version = Cond::IfMatch(info.etag.clone());
        let mut out = std::io::stdout().lock();
        let mut at = 0;
        while at < info.size {
            let end = (at + PIECE).min(info.size);
            let bytes = s.store.get(&key, Some(at..end), &version)?;
            if bytes.is_empty() {
                break;
            }
            at += bytes.len() as u64;
            match out.write_all(&bytes) {
                // The reader went away (`| head`): done, as cat is.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                r => r?,
            }
        }
        match out.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => Ok(r?),
        }
    })())
}

/// Copies the tree to a host directory in the same layout, modes and
/// times (the local-directory store's own format).
pub fn export(args: ExportArgs) -> ExitCode {
    report((|| {
        let s = open_existing(&args.store)?;
        let dest = LocalDir::open(&args.dest)
            .with_context(|| format!("cannot create {}", args.dest.display()))?;
        let under = rel(&args.path);
        let (mut n, mut refused) = (0, 0);
        for o in s.store.list(&s.prefix)? {
            let path = &o.key[s.prefix.len()..];
            if !within(path, &under) {
                continue;
            }
            let body = if o.key.ends_with('/') {
                Vec::new()
            } else {
                s.store.get(&o.key, None, &Cond::None)?
            };
            // The destination is a local store: it writes only beneath its
            // root and never through a symlink, so an object below a
            // symlink object (which a bucket can hold) is refused there.
            match dest.put(path, &body, &o.meta, &Cond::None) {
                Ok(_) => n += 1,
                Err(e) if e.kind == ErrorKind::Permanent => {
                    eprintln!("larder: warning: not exporting {path}: {}", e.message);
                    refused += 1;
                }
                Err(e) => return Err(e).with_context(|| format!("writing {path}")),
            }
        }
        eprintln!("larder: exported {n} objects to {}", args.dest.display());
        if refused > 0 {
            bail!("{refused} objects were not exported (named above)");
        }
        Ok(())
    })())
}
