//! `larder compose` and `larder adapter`: plug the embedded guest adapter
//! (with a bundle of host directories) into an app, using wac-graph.

use crate::bundle::{self, Bundle};
use crate::EXIT_USAGE;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use vfs_host::Mount;
use wac_graph::types::{are_semver_compatible, Package};
use wac_graph::{CompositionGraph, EncodeOptions, NodeId, PackageId};

/// The adapter component, built by build.rs; it imports `larder:vfs/bundle`.
pub const ADAPTER: &[u8] = include_bytes!(env!("LARDER_ADAPTER_WASM"));

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
    /// name NAME, for example `.` or `/data=/srv/data`. Repeatable; without
    /// any, the whole tree is offered as `/`.
    #[arg(long, value_name = "NAME[=PATH]")]
    preopen: Vec<String>,
}

#[derive(Args)]
pub struct AdapterArgs {
    /// Where to write vfs_adapter.wasm, the component to `wac plug` into
    /// apps (an empty filesystem, preopened as `/`).
    #[arg(short, long)]
    output: PathBuf,
}

pub fn main(args: ComposeArgs) -> ExitCode {
    report(compose_cmd(&args))
}

pub fn adapter_main(args: AdapterArgs) -> ExitCode {
    report(
        adapter(&Bundle {
            preopens: default_preopens(),
            ..Bundle::default()
        })
        .and_then(|bytes| write_atomically(&args.output, &bytes)),
    )
}

fn report(r: Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("larder: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn default_preopens() -> Vec<(String, String)> {
    vec![("/".into(), "/".into())]
}

fn compose_cmd(args: &ComposeArgs) -> Result<()> {
    let app =
        std::fs::read(&args.app).with_context(|| format!("cannot read {}", args.app.display()))?;
    let bundle = bundle_from_args(&args.mount, &args.preopen)?;
    let out = compose(&app, &args.app.display().to_string(), &bundle)?;
    write_atomically(&args.output, &out)
}

/// Imports the mounts into a staging filesystem and serialises it.
fn bundle_from_args(mounts: &[String], preopens: &[String]) -> Result<Bundle> {
    let mut builder = vfs_host::VfsBuilder::new();
    let mut read_only = Vec::new();
    for spec in mounts {
        let m = Mount::parse(spec).map_err(|e| anyhow::anyhow!("--mount: {e}"))?;
        if !m.host.is_dir() {
            bail!("--mount {spec}: {} is not a directory", m.host.display());
        }
        if m.read_only {
            read_only.push(m.guest.clone());
        }
        builder = builder.mount(m);
    }
    let mut named = Vec::new();
    for spec in preopens {
        let (name, path) = spec.split_once('=').unwrap_or((spec, "/"));
        if name.is_empty() || !path.starts_with('/') {
            bail!("--preopen {spec}: expected NAME or NAME=/GUEST/PATH");
        }
        named.push((name.to_string(), path.to_string()));
    }
    if named.is_empty() {
        named = default_preopens();
    }
    let image = if mounts.is_empty() {
        Vec::new()
    } else {
        let vfs = builder
            .build()
            .map_err(|e| anyhow::anyhow!("--mount: {e}"))?;
        let root = vfs
            .fs()
            .root(fs_core::DescriptorFlags::READ)
            .context("staging filesystem")?;
        fs_core::image::encode(&root).context("serialising the bundled directories")?
    };
    let b = Bundle {
        image,
        preopens: named,
        read_only,
    };
    check_preopens(&b)?;
    Ok(b)
}

/// Every preopen must name a directory of the bundle (checked here, where
/// the error can name it, rather than when the app starts).
fn check_preopens(b: &Bundle) -> Result<()> {
    let fs = if b.image.is_empty() {
        fs_core::Fs::in_memory()
    } else {
        fs_core::Fs::from_image(
            fs_core::FsConfig::default(),
            std::sync::Arc::new(fs_core::SystemClock),
            &b.image,
            false,
        )?
    };
    for (name, path) in &b.preopens {
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
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut tmp, bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // Temporary files are private; the output is an ordinary file.
    use std::os::unix::fs::PermissionsExt;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn register(graph: &mut CompositionGraph, name: &str, bytes: Vec<u8>) -> Result<PackageId> {
    let pkg = Package::from_bytes(name, None, bytes, graph.types_mut())?;
    Ok(graph.register_package(pkg)?)
}

/// The adapter instantiated with `bundle`, in `graph`.
fn instantiate_adapter(graph: &mut CompositionGraph, bundle: &Bundle) -> Result<NodeId> {
    let b = register(graph, "larder:bundle", bundle::component(bundle)?)?;
    let a = register(graph, "larder:adapter", ADAPTER.to_vec())?;
    let b = graph.instantiate(b);
    let a = graph.instantiate(a);
    let export = graph.alias_instance_export(b, bundle::INTERFACE)?;
    graph.set_instantiation_argument(a, bundle::INTERFACE, export)?;
    Ok(a)
}

fn exports_of(graph: &CompositionGraph, node: NodeId) -> Vec<String> {
    let pkg = graph[node].package().expect("an instantiation");
    let world = graph[pkg].ty();
    graph.types()[world].exports.keys().cloned().collect()
}

/// The adapter with `bundle` plugged in: a component with no Larder
/// imports, ready for `wac plug`.
pub fn adapter(bundle: &Bundle) -> Result<Vec<u8>> {
    let mut graph = CompositionGraph::new();
    let a = instantiate_adapter(&mut graph, bundle)?;
    for name in exports_of(&graph, a) {
        let e = graph.alias_instance_export(a, &name)?;
        graph.export(e, &name)?;
    }
    Ok(graph.encode(EncodeOptions::default())?)
}

/// Interfaces whose resources the adapter would have to share with the host
/// but cannot yet (they hand out host `wasi:io` streams).
const UNROUTABLE: &[&str] = &["wasi:sockets/tcp@", "wasi:sockets/udp@", "wasi:http/types@"];

/// `app` with its filesystem (and the interfaces sharing its resources)
/// served by the adapter holding `bundle`.
pub fn compose(app: &[u8], app_name: &str, bundle: &Bundle) -> Result<Vec<u8>> {
    if wasmparser::Parser::is_core_wasm(app) {
        bail!(
            "{app_name} is a core WebAssembly module, not a component (build for \
             wasm32-wasip2, or adapt a wasip1 module with `wasm-tools component new \
             --adapt wasi_snapshot_preview1.command.wasm`)"
        );
    }
    if !wasmparser::Parser::is_component(app) {
        bail!("{app_name} is not a WebAssembly component");
    }
    let mut graph = CompositionGraph::new();
    let app_pkg = register(&mut graph, "app", app.to_vec())
        .with_context(|| format!("{app_name} is not a valid component"))?;
    let world = graph[app_pkg].ty();
    let imports: Vec<String> = graph.types()[world].imports.keys().cloned().collect();
    let app_exports: Vec<String> = graph.types()[world].exports.keys().cloned().collect();
    if !imports.iter().any(|i| i.starts_with("wasi:filesystem/")) {
        bail!("{app_name} does not import wasi:filesystem; there is nothing for Larder to serve");
    }
    if let Some(i) = imports
        .iter()
        .find(|i| UNROUTABLE.iter().any(|u| i.starts_with(u)))
    {
        bail!(
            "{app_name} imports {i}, whose streams Larder's adapter cannot route yet; \
             compose apps that use the filesystem without sockets or HTTP"
        );
    }
    let adapter = instantiate_adapter(&mut graph, bundle)?;
    let provided = exports_of(&graph, adapter);
    let app = graph.instantiate(app_pkg);
    // Every version of an interface the app imports (toolchains mix 0.2.x
    // patch releases, even within one app) is served by the same export.
    for import in &imports {
        if let Some(export) = provided.iter().find(|e| are_semver_compatible(e, import)) {
            let e = graph.alias_instance_export(adapter, export)?;
            graph
                .set_instantiation_argument(app, import, e)
                .with_context(|| format!("plugging {export} into {app_name}'s {import}"))?;
            tracing::debug!(%import, %export, "plugged");
        }
    }
    for name in app_exports {
        let e = graph.alias_instance_export(app, &name)?;
        graph.export(e, &name)?;
    }
    Ok(graph.encode(EncodeOptions::default())?)
}
