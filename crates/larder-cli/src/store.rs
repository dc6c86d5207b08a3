//! `--store URL` and the commands that look into a store without running
//! an app: `larder ls`, `larder cat`, `larder export`.

use crate::report;
use anyhow::{bail, Context, Result};
use larder_sync::meta::{self, Kind};
use larder_sync::{Cond, ErrorKind, LocalDir, Mirror, ObjectStore};
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
    /// Only what is under this guest path (an error if there is nothing).
    path: Option<String>,
    /// How times are shown: `locale` (as `ls -l`: the month, day and time
    /// for the last six months, else the year; in the local time zone),
    /// `long-iso` (2026-12-01 21:50) or `full-iso` (to the nanosecond,
    /// with the zone offset).
    #[arg(long, value_enum, default_value_t = TimeStyle::Locale)]
    time_style: TimeStyle,
    /// One JSON object per line, for scripts: path, type, mode, size,
    /// mtime (RFC 3339, UTC, to the nanosecond) and a symlink's target.
    #[arg(long, conflicts_with = "time_style")]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TimeStyle {
    Locale,
    LongIso,
    FullIso,
}

#[derive(clap::Args)]
pub struct CatArgs {
    /// The store: a directory, file:///path or s3://bucket/prefix.
    #[arg(long)]
    store: String,
    /// The file's guest path.
    path: String,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// The store: a directory, file:///path or s3://bucket/prefix.
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

/// One line of `larder ls`.
struct Entry {
    kind: Kind,
    /// Permission bits (no type bits).
    perm: u32,
    size: u64,
    mtime: jiff::Timestamp,
    /// A symlink's target.
    target: Option<String>,
}

/// The objects under `prefix` (the store's own, or `under` below it) with
/// their metadata, and symlink targets already known, by key. The whole
/// tree goes through the mirror, which uses the store's index (S3: a
/// listing and one GET instead of a HEAD per object); a subtree is listed
/// on its own (its HEADs then cost less than the whole listing).
fn listing(
    s: &Opened,
    under: &str,
    prefix: &str,
) -> Result<(
    Vec<larder_sync::ObjectInfo>,
    std::collections::HashMap<String, String>,
)> {
    if under.is_empty() {
        return Ok(Mirror::new(s.store.clone(), &s.prefix).objects(&|_, _| {})?);
    }
    Ok((s.store.list(prefix)?, Default::default()))
}

/// What `larder run --store` would restore, as `ls -l` shows a tree: type
/// and permissions, size, mtime, path (`-> target` for a symlink).
/// Directories that exist only because keys below them do are listed too
/// (with the newest time below them), as a restore creates them.
pub fn ls(args: LsArgs) -> ExitCode {
    report((|| {
        let s = open_existing(&args.store)?;
        let under = rel(&args.path);
        let prefix = if under.is_empty() {
            s.prefix.clone()
        } else {
            format!("{}{under}", s.prefix)
        };
        let mut entries = std::collections::BTreeMap::new();
        let (objects, targets) = listing(&s, &under, &prefix)?;
        for o in objects {
            let Some((path, kind)) = meta::object_path(&s.prefix, &o) else {
                continue;
            };
            if !within(path, &under) {
                continue;
            }
            let a = meta::decode(&o.meta);
            let target = match (kind, targets.get(&o.key)) {
                (Kind::Symlink, Some(t)) => Some(t.clone()),
                (Kind::Symlink, None) => {
                    let body = s.store.get(&o.key, None, &Cond::IfMatch(o.etag.clone()))?;
                    Some(String::from_utf8_lossy(&body).into_owned())
                }
                _ => None,
            };
            let mtime = jiff::Timestamp::new(
                i64::try_from(a.mtime_secs).unwrap_or(i64::MAX),
                a.mtime_nanos as i32,
            )
            .unwrap_or(jiff::Timestamp::MAX);
            entries.insert(
                path.to_string(),
                Entry {
                    kind,
                    perm: a.mode & 0o7777,
                    size: if kind == Kind::Dir { 4096 } else { o.size },
                    mtime,
                    target,
                },
            );
        }
        if entries.is_empty() && !under.is_empty() {
            bail!("/{under}: no such file or directory in the store");
        }
        add_implied_directories(&mut entries, &under);
        let now = jiff::Timestamp::now();
        let tz = jiff::tz::TimeZone::system();
        let mut out = std::io::stdout().lock();
        for (path, e) in &entries {
            if args.json {
                let line = serde_json::json!({
                    "path": format!("/{path}"),
                    "type": match e.kind {
                        Kind::File => "file",
                        Kind::Dir => "directory",
                        Kind::Symlink => "symlink",
                    },
                    "mode": format!("{:04o}", e.perm),
                    "size": e.size,
                    "mtime": e.mtime.to_string(),
                    "target": e.target,
                });
                writeln!(out, "{line}")?;
                continue;
            }
            write!(
                out,
                "{} {:>12} {} /{path}",
                mode_string(e.kind, e.perm),
                e.size,
                show_time(e.mtime, now, &tz, args.time_style)
            )?;
            match &e.target {
                Some(t) => writeln!(out, " -> {t}")?,
                None => writeln!(out)?,
            }
        }
        Ok(())
    })())
}

/// The directories keys imply (`a/b/c` implies `a` and `a/b`) that have no
/// object of their own, each dated by the newest entry below it.
fn add_implied_directories(entries: &mut std::collections::BTreeMap<String, Entry>, under: &str) {
    let mut implied: std::collections::BTreeMap<String, jiff::Timestamp> = Default::default();
    for (path, e) in entries.iter() {
        let mut p = path.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            if !entries.contains_key(parent) && within(parent, under) {
                let t = implied.entry(parent.to_string()).or_insert(e.mtime);
                *t = (*t).max(e.mtime);
            }
            p = parent;
        }
    }
    for (path, mtime) in implied {
        entries.insert(
            path,
            Entry {
                kind: Kind::Dir,
                perm: 0o755,
                size: 4096,
                mtime,
                target: None,
            },
        );
    }
}

/// `drwxr-xr-x`, as `ls -l` writes a mode.
fn mode_string(kind: Kind, perm: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(match kind {
        Kind::File => '-',
        Kind::Dir => 'd',
        Kind::Symlink => 'l',
    });
    // (who, set-id or sticky bit, the letter for it with and without x)
    for (shift, special, letters) in [
        (6, 0o4000, ['s', 'S']),
        (3, 0o2000, ['s', 'S']),
        (0, 0o1000, ['t', 'T']),
    ] {
        let bits = (perm >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (perm & special != 0, bits & 1 != 0) {
            (true, true) => letters[0],
            (true, false) => letters[1],
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// A time as `ls -l --time-style=STYLE` shows it, in the local zone.
fn show_time(
    t: jiff::Timestamp,
    now: jiff::Timestamp,
    tz: &jiff::tz::TimeZone,
    style: TimeStyle,
) -> String {
    let z = t.to_zoned(tz.clone());
    match style {
        TimeStyle::FullIso => z.strftime("%Y-%m-%d %H:%M:%S.%N %z").to_string(),
        TimeStyle::LongIso => z.strftime("%Y-%m-%d %H:%M").to_string(),
        TimeStyle::Locale => {
            // ls's rule: within six months (half of 365.2425 days) before
            // now, and not in the future, shows the time; else the year.
            let age = now.as_second().saturating_sub(t.as_second());
            if (0..=31_556_952 / 2).contains(&age) {
                z.strftime("%b %e %H:%M").to_string()
            } else {
                z.strftime("%b %e  %Y").to_string()
            }
        }
    }
}

pub fn cat(args: CatArgs) -> ExitCode {
    report((|| {
        let s = open_existing(&args.store)?;
        let path = args.path.trim_start_matches('/');
        let key = meta::object_key(&s.prefix, path, Kind::File);
        let info = match s.store.head(&key)? {
            Some(info) => info,
            None if s
                .store
                .head(&meta::object_key(&s.prefix, path, Kind::Dir))?
                .is_some() =>
            {
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
        let (objects, _) =
            crate::progress::waiting("listing the store", || listing(&s, "", &s.prefix))?;
        let bar = crate::progress::items(objects.len() as u64, "exporting", "objects");
        for o in objects {
            bar.inc(1);
            // Keys that cannot be paths are skipped with the warning a
            // restore gives; the rest keep their own key layout.
            if meta::object_path(&s.prefix, &o).is_none() {
                continue;
            }
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
                    bar.suspend(|| {
                        eprintln!("larder: warning: not exporting {path}: {}", e.message)
                    });
                    refused += 1;
                }
                Err(e) => return Err(e).with_context(|| format!("writing {path}")),
            }
        }
        bar.finish_and_clear();
        eprintln!("larder: exported {n} objects to {}", args.dest.display());
        if refused > 0 {
            bail!("{refused} objects were not exported (named above)");
        }
        Ok(())
    })())
}
