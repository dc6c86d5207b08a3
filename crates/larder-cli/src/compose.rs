//! `larder compose` and `larder adapter`: plug the embedded guest adapter
//! (with a bundle of host directories) into an app, using wac-graph.

use crate::report;
use anyhow::{bail, Context, Result};
use clap::Args;
use larder_compose::{
    adapter, compose_with, default_preopens, Build, Bundle, Persist, Preopen, StreamedImage,
};
use larder_volume::Mount;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args)]
pub struct ComposeArgs {
    /// The app component (it imports wasi:filesystem).
    app: PathBuf,
    /// Where to write the composed component.
    #[arg(short, long)]
    output: PathBuf,
    /// Bundle host directory HOST as guest directory GUEST (absolute), as
    /// `GUEST=HOST`, or `GUEST=HOST:ro` for a read-only mount. Repeatable.
    #[arg(long, value_name = "GUEST=HOST[:ro]")]
    mount: Vec<String>,
    /// Offer guest directory PATH (default `/`) to the app under preopen
    /// name NAME, for example `.` or `/data=/srv/data`; with `:ro`, as
    /// wasmtime's read-only preopen (every change through it is
    /// not-permitted). Repeatable; without any, the whole tree is offered
    /// as `/`.
    #[arg(long, value_name = "NAME[=PATH][:ro]")]
    preopen: Vec<String>,
    /// wasmtime's spelling: bundle host directory HOST_DIR and offer it as
    /// preopen GUEST_DIR (default: HOST_DIR's own name, as given); `:ro`
    /// makes it a read-only mount. Repeatable.
    #[arg(long, value_name = "HOST_DIR[::GUEST_DIR][:ro]", value_parser = parse_dir)]
    dir: Vec<(String, String)>,
    /// Keep the app's files across runs, restored at start, saved on fsync
    /// and when a written file is closed: `host` keeps them in a store the
    /// runtime lends the component (`larder run out.wasm --store DIR|s3://`);
    /// s3://BUCKET/PREFIX[?endpoint=URL&region=R&path-style=BOOL&timeout=SECS]
    /// in S3, reached over wasi:http from inside the component (`wasmtime run
    /// -S http`; credentials from the AWS_* environment at run time).
    #[arg(long, value_name = "host|s3://BUCKET/PREFIX")]
    persist: Option<String>,
    /// Use the filesystem of the `larder serve` at HOST:PORT instead of one
    /// of the app's own, shared with whatever else uses that server
    /// (`wasmtime run -S inherit-network out.wasm`; LARDER_REMOTE in the
    /// app's environment overrides the address at run time).
    #[arg(long, value_name = "HOST:PORT", conflicts_with_all = ["persist", "mount", "preopen", "dir"])]
    remote: Option<String>,
    /// Also write the output compiled ahead of time for this machine, as
    /// OUTPUT with the extension .cwasm: `wasmtime run --allow-precompiled
    /// OUT.cwasm` (wasmtime 50.x only) starts it without compiling it and
    /// without reading the whole bundle again.
    #[arg(long)]
    precompile: bool,
}

/// The wasmtime line whose CLI runs what `--precompile` writes: a .cwasm
/// carries the major version of the wasmtime that compiled it, and other
/// majors refuse it.
const WASMTIME_LINE: &str = "50";

/// Writes the component at `output` compiled for this machine next to it
/// (holding the component in memory, as compiling needs).
fn precompile(output: &Path) -> Result<()> {
    let component =
        std::fs::read(output).with_context(|| format!("cannot read {}", output.display()))?;
    let cwasm = output.with_extension("cwasm");
    let engine = wasmtime::Engine::new(&wasmtime::Config::new())
        .map_err(|e| anyhow::anyhow!("cannot compile for this machine: {e}"))?;
    let compiled = crate::progress::waiting("compiling ahead of time", || {
        engine.precompile_component(&component)
    })
    .map_err(|e| anyhow::anyhow!("cannot precompile {}: {e}", output.display()))?;
    write_atomically(&cwasm, &compiled)?;
    eprintln!(
        "larder: wrote {} for wasmtime {WASMTIME_LINE}.x on this CPU; run it with \
         `wasmtime run --allow-precompiled {}`",
        cwasm.display(),
        cwasm.display()
    );
    Ok(())
}

#[derive(Args)]
pub struct AdapterArgs {
    /// Where to write vfs_adapter.wasm, the component to `wac plug` into
    /// apps (an empty filesystem preopened as `/`, unless --mount and
    /// --preopen say otherwise).
    #[arg(short, long)]
    output: PathBuf,
    /// The build that also passes wasi:sockets through, for apps that use
    /// sockets (`larder compose` picks builds by itself).
    #[arg(long, conflicts_with = "http")]
    sockets: bool,
    /// The build that also passes wasi:sockets and wasi:http through, for
    /// HTTP clients, and for handlers with compose/edge-http.wac.
    #[arg(long)]
    http: bool,
    /// Write the HTTP bridge instead, the component compose/edge-http.wac
    /// puts after an app exporting wasi:http/incoming-handler.
    #[arg(long, conflicts_with_all = ["sockets", "http", "mount", "preopen"])]
    http_bridge: bool,
    /// The build that keeps its files in a store the host lends it
    /// (`--persist` or `--persist host`: `larder:vfs/store`, which `larder
    /// run --store` provides), or in S3 over wasi:http (`--persist
    /// s3://BUCKET/PREFIX[?...]`, as with `larder compose`).
    #[arg(
        long,
        value_name = "host|s3://BUCKET/PREFIX",
        num_args = 0..=1,
        default_missing_value = "host",
        conflicts_with_all = ["sockets", "http", "http_bridge"]
    )]
    persist: Option<String>,
    /// The build whose files are those of the `larder serve` at HOST:PORT,
    /// as with `larder compose --remote`.
    #[arg(long, value_name = "HOST:PORT", conflicts_with_all = ["sockets", "http", "http_bridge", "persist", "mount", "preopen"])]
    remote: Option<String>,
    /// Bundle host directory HOST as guest directory GUEST, as with
    /// `larder compose`. Repeatable.
    #[arg(long, value_name = "GUEST=HOST[:ro]")]
    mount: Vec<String>,
    /// Offer guest directory PATH to apps as preopen NAME (`:ro` for a
    /// read-only preopen), as with `larder compose`. Repeatable.
    #[arg(long, value_name = "NAME[=PATH][:ro]")]
    preopen: Vec<String>,
}

pub fn main(args: ComposeArgs) -> ExitCode {
    report(compose_cmd(&args))
}

pub fn adapter_main(args: AdapterArgs) -> ExitCode {
    report(adapter_cmd(&args))
}

fn adapter_cmd(args: &AdapterArgs) -> Result<()> {
    if args.http_bridge {
        return write_atomically(&args.output, larder_compose::HTTP_BRIDGE);
    }
    if let Some(addr) = &args.remote {
        let bundle = Bundle {
            store: remote_arg(addr)?,
            ..bundle_from_args(&[], &[])?.bundle
        };
        return write_atomically(&args.output, &adapter(&bundle, Build::Remote)?);
    }
    let persist = args.persist.as_deref().map(persist_arg).transpose()?;
    let build = match (&persist, args.http, args.sockets) {
        (Some((Persist::Host, _)), ..) => Build::Persist,
        (Some((Persist::S3, _)), ..) => Build::PersistS3,
        (Some((Persist::Remote, _)), ..) => Build::Remote,
        (None, true, _) => Build::Edge,
        (None, false, true) => Build::Sockets,
        (None, false, false) => Build::Files,
    };
    let mut staged = bundle_from_args(&args.mount, &args.preopen)?;
    staged.bundle.store = persist.map(|(_, url)| url).unwrap_or_default();
    write_staged(&args.output, &staged, |bundle, image, out| match image {
        Some(image) => larder_compose::adapter_to(bundle, build, image, out),
        None => Ok(out.write_all(&adapter(bundle, build)?)?),
    })
}

/// `--persist host` or `--persist s3://...` (checked here, so a bad URL is
/// reported now rather than when the app starts); the URL for the bundle.
fn persist_arg(s: &str) -> Result<(Persist, String)> {
    if s == "host" {
        return Ok((Persist::Host, String::new()));
    }
    if s.starts_with("s3://") {
        larder_sync::s3::S3Config::from_url(s)
            .map_err(|e| anyhow::anyhow!("--persist {s}: {e}"))?;
        return Ok((Persist::S3, s.to_string()));
    }
    bail!("--persist {s}: expected `host` or s3://BUCKET/PREFIX")
}

/// `HOST:PORT` as the remote adapter will read it.
fn remote_arg(s: &str) -> Result<String> {
    let ok = s.parse::<std::net::SocketAddr>().is_ok()
        || s.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && !host.contains(':') && port.parse::<u16>().is_ok()
        });
    if !ok {
        bail!("--remote {s}: expected HOST:PORT, such as 127.0.0.1:5640");
    }
    Ok(s.to_string())
}

fn compose_cmd(args: &ComposeArgs) -> Result<()> {
    let app = crate::read_input(&args.app)
        .with_context(|| format!("cannot read {}", args.app.display()))?;
    if let Some(addr) = &args.remote {
        let bundle = Bundle {
            store: remote_arg(addr)?,
            ..bundle_from_args(&[], &[])?.bundle
        };
        let name = args.app.display().to_string();
        let out = compose_with(&app, &name, &bundle, Some(Persist::Remote))?;
        write_atomically(&args.output, &out)?;
        return match args.precompile {
            true => precompile(&args.output),
            false => Ok(()),
        };
    }
    let persist = args.persist.as_deref().map(persist_arg).transpose()?;
    let (mut mounts, mut preopens) = (args.mount.clone(), args.preopen.clone());
    for (mount, preopen) in &args.dir {
        mounts.push(mount.clone());
        preopens.push(preopen.clone());
    }
    let mut staged = bundle_from_args(&mounts, &preopens)?;
    let how = persist.map(|(how, url)| {
        staged.bundle.store = url;
        how
    });
    let name = args.app.display().to_string();
    write_staged(&args.output, &staged, |bundle, image, out| match image {
        Some(image) => larder_compose::compose_to(&app, &name, bundle, how, image, out),
        None => Ok(out.write_all(&compose_with(&app, &name, bundle, how)?)?),
    })?;
    match args.precompile {
        true => precompile(&args.output),
        false => Ok(()),
    }
}

/// Writes what `make` makes of the staged bundle to `path` (atomically),
/// the bundled files' bytes streamed from the host into the output, with
/// a bar over them: never more than a chunk of them in memory.
fn write_staged(
    path: &Path,
    staged: &Staged,
    make: impl FnOnce(&Bundle, Option<StreamedImage<'_>>, &mut dyn Write) -> Result<()>,
) -> Result<()> {
    let Some((_, image)) = &staged.image else {
        return crate::progress::waiting("composing", || {
            write_atomically_with(path, |out| make(&staged.bundle, None, out))
        });
    };
    let bar = crate::progress::bytes(image.len(), "composing");
    let mut write = |out: &mut dyn Write| -> Result<()> {
        bar.set_message("writing the bundled files");
        let mut out = bar.wrap_write(out);
        image
            .write_to(|bytes| out.write_all(bytes).map_err(anyhow::Error::from))
            .context("writing the bundled files (did one change on the host meanwhile?)")
    };
    let streamed = StreamedImage {
        len: image.len(),
        write: &mut write,
    };
    let written = write_atomically_with(path, |out| make(&staged.bundle, Some(streamed), out));
    bar.finish_and_clear();
    written
}

/// A writer whose I/O errors name the file being written.
struct Writing<'a, W> {
    out: W,
    path: &'a Path,
}

impl<W: Write> Writing<'_, W> {
    fn named(&self, e: std::io::Error) -> std::io::Error {
        std::io::Error::new(
            e.kind(),
            format!("cannot write {}: {e}", self.path.display()),
        )
    }
}

impl<W: Write> Write for Writing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf).map_err(|e| self.named(e))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush().map_err(|e| self.named(e))
    }
}

/// wasmtime's `--dir HOST_DIR[::GUEST_DIR][:ro]` as Larder's own flags:
/// the `--mount` that copies HOST_DIR in, and the `--preopen` offering it
/// under the name GUEST_DIR (HOST_DIR's, as given, without one). A
/// relative name (`.`, `data`) is a directory below `/` in the tree.
pub(crate) fn parse_dir(spec: &str) -> Result<(String, String), String> {
    let (s, ro) = match spec.strip_suffix(":ro") {
        Some(rest) => (rest, ":ro"),
        None => (spec, ""),
    };
    let (host, guest) = s.split_once("::").unwrap_or((s, s));
    if host.is_empty() || guest.is_empty() {
        return Err(format!(
            "bad --dir `{spec}`: expected HOST_DIR[::GUEST_DIR], optionally with :ro"
        ));
    }
    let path = match guest.trim_start_matches("./").trim_start_matches('/') {
        "" | "." => "/".to_string(),
        rest => format!("/{rest}"),
    };
    Ok((format!("{path}={host}{ro}"), format!("{guest}={path}")))
}

/// A bundle to write: its preopens and read-only mounts, and the staging
/// filesystem its mounted directories were imported into (their files'
/// bytes left on the host) with the image planned from it.
struct Staged {
    bundle: Bundle,
    image: Option<(Arc<larder_volume::Volume>, fs_core::image::Encoding)>,
}

/// Imports the mounts into a staging filesystem (by reference) and plans
/// its image.
fn bundle_from_args(mounts: &[String], preopens: &[String]) -> Result<Staged> {
    let mut parsed = Vec::new();
    let mut read_only = Vec::new();
    for spec in mounts {
        let m = Mount::parse(spec).map_err(|e| anyhow::anyhow!("--mount: {e}"))?;
        if !m.host.is_dir() {
            bail!("--mount {spec}: {} is not a directory", m.host.display());
        }
        if m.read_only {
            read_only.push(m.guest.clone());
        }
        parsed.push(m);
    }

    let mut named = Vec::new();
    for spec in preopens {
        named.push(Preopen::parse(spec).map_err(anyhow::Error::msg)?);
    }
    if named.is_empty() {
        named = default_preopens();
    }
    let image = if parsed.is_empty() {
        None
    } else {
        let (mut builder, bar) = crate::progress::attach(
            larder_volume::VolumeBuilder::new().mount_by_reference(),
            &parsed,
            "bundling",
        );
        for m in parsed {
            builder = builder.mount(m);
        }
        let built = builder.build();
        bar.finish_and_clear();
        let volume = built.map_err(|e| anyhow::anyhow!("--mount: {e}"))?;
        let root = volume
            .fs()
            .root(fs_core::DescriptorFlags::READ)
            .context("staging filesystem")?;
        let plan = fs_core::image::plan(&root).context("planning the bundle")?;
        Some((volume, plan))
    };
    let b = Bundle {
        image: Vec::new(),
        preopens: named,
        read_only,
        store: String::new(),
    };
    let empty;
    let fs = match &image {
        Some((volume, _)) => volume.fs(),
        None => {
            empty = fs_core::Fs::in_memory();
            &empty
        }
    };
    check_preopens(&b, fs)?;
    Ok(Staged { bundle: b, image })
}

/// Every preopen must name a directory of the bundle (checked here, where
/// the error can name it, rather than when the app starts).
fn check_preopens(b: &Bundle, fs: &fs_core::Fs) -> Result<()> {
    for Preopen { name, path, .. } in &b.preopens {
        let rel = match path.trim_start_matches('/') {
            "" => ".",
            p => p,
        };
        fs.preopen(rel, fs_core::DescriptorFlags::READ)
            .map_err(|e| anyhow::anyhow!("--preopen {name}={path}: {e}"))?;
    }
    Ok(())
}

/// Writes through a temporary file in the same directory, so a failure
/// never leaves a half-written output behind.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically_with(path, |out| Ok(out.write_all(bytes)?))
}

/// [`write_atomically`], the contents written by `write` (whose own
/// errors, such as an app that cannot be composed, are reported as they
/// are; failures to write say where).
fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let cannot = || format!("cannot write {}", path.display());
    let tmp = tempfile::NamedTempFile::new_in(dir).with_context(cannot)?;
    let mut out = Writing {
        out: std::io::BufWriter::with_capacity(1 << 20, tmp),
        path,
    };
    write(&mut out)?;
    let tmp = out
        .out
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(cannot)?;
    // Temporary files are private; the output is an ordinary file.
    use std::os::unix::fs::PermissionsExt;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .with_context(cannot)?;
    tmp.persist(path).with_context(cannot)?;
    Ok(())
}
