//! Plugs Larder's guest adapter into WASI apps with wac-graph. The adapter
//! component is built by build.rs and embedded, so this works anywhere.
//!
//! The adapter imports `larder:vfs/bundle`; every composition instantiates
//! it with a generated bundle component (see [`bundle`]) holding the
//! directories to ship and the preopens to offer.

pub mod bundle;
mod nofs;
mod runbridge;
mod splice;
pub use nofs::component as no_filesystem;
pub use splice::StreamedImage;

use anyhow::{bail, Context, Result};
use bundle::Segment;
pub use bundle::{Bundle, Preopen};
use wac_graph::types::{are_semver_compatible, Package};
use wac_graph::{CompositionGraph, EncodeOptions, NodeId, PackageId};

/// The adapter component; it imports `larder:vfs/bundle`.
pub const ADAPTER: &[u8] = include_bytes!(env!("LARDER_ADAPTER_WASM"));
/// The same adapter passing `wasi:sockets` through too, for apps that use
/// sockets (their streams and pollables must be the adapter's).
pub const ADAPTER_NET: &[u8] = include_bytes!(env!("LARDER_ADAPTER_NET_WASM"));
/// The build for edge apps: sockets and `wasi:http` (client types and
/// outgoing-handler) pass through, and incoming requests are bridged.
pub const ADAPTER_EDGE: &[u8] = include_bytes!(env!("LARDER_ADAPTER_EDGE_WASM"));
/// The build whose filesystem persists in a store the host lends it
/// (`larder:vfs/store`, which the composed app then imports).
pub const ADAPTER_PERSIST: &[u8] = include_bytes!(env!("LARDER_ADAPTER_PERSIST_WASM"));
/// The build whose filesystem persists in S3, reached over `wasi:http`
/// from inside the component; the bundle names the bucket.
pub const ADAPTER_PERSIST_S3: &[u8] = include_bytes!(env!("LARDER_ADAPTER_PERSIST_S3_WASM"));
/// The build whose filesystem is a `larder serve` in another process,
/// reached over `wasi:sockets` (9P2000.L); the bundle's `store` is its
/// address.
pub const ADAPTER_REMOTE: &[u8] = include_bytes!(env!("LARDER_ADAPTER_REMOTE_WASM"));
/// The component placed after an app exporting `wasi:http/incoming-handler`
/// (crates/http-bridge): it hands the host's request to the adapter and
/// calls the app's handler with the adapter's wrappers.
pub const HTTP_BRIDGE: &[u8] = include_bytes!(env!("LARDER_HTTP_BRIDGE_WASM"));

/// Which build of the adapter: each passes through only what its apps use,
/// so an app does not import interfaces its runtime may not offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Build {
    /// Files, stdio and clocks.
    Files,
    /// Also `wasi:sockets`.
    Sockets,
    /// Also `wasi:sockets` and `wasi:http`.
    Edge,
    /// Files, stdio and clocks, kept in the host's `larder:vfs/store`.
    Persist,
    /// Files, stdio and clocks, kept in S3 over `wasi:http`; the bucket is
    /// the bundle's `store`.
    PersistS3,
    /// Stdio and clocks; files in the `larder serve` at the bundle's `store`.
    Remote,
}

/// Where a composed app's files persist (see [`compose_with`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persist {
    /// In a store the host lends (`larder run --store`).
    Host,
    /// In S3, from inside the component: the bundle's `store` names it.
    S3,
    /// In a `larder serve` shared with other apps: the bundle's `store` is
    /// its `host:port`.
    Remote,
}

impl Build {
    fn bytes(self) -> &'static [u8] {
        match self {
            Build::Files => ADAPTER,
            Build::Sockets => ADAPTER_NET,
            Build::Edge => ADAPTER_EDGE,
            Build::Persist => ADAPTER_PERSIST,
            Build::PersistS3 => ADAPTER_PERSIST_S3,
            Build::Remote => ADAPTER_REMOTE,
        }
    }

    /// The build an app with these imports and exports needs.
    fn for_app(imports: &[String], exports: &[String]) -> Build {
        let http = imports.iter().any(|i| i.starts_with("wasi:http/"))
            || exports.iter().any(|e| e.starts_with(HANDLER));
        if http {
            Build::Edge
        } else if imports.iter().any(|i| i.starts_with("wasi:sockets/")) {
            Build::Sockets
        } else {
            Build::Files
        }
    }
}

/// The first WASI 0.3 interface (`wasi:*@0.3.x`, release candidates
/// included) among `imports`: the adapter serves WASI 0.2 so far (vfs-host
/// and `larder run` serve both).
pub fn wasi_p3_import(imports: &[String]) -> Option<&str> {
    imports
        .iter()
        .find(|i| {
            i.starts_with("wasi:")
                && i.rsplit_once('@')
                    .is_some_and(|(_, v)| v.starts_with("0.3."))
        })
        .map(String::as_str)
}

const HANDLER: &str = "wasi:http/incoming-handler@";
const RUN: &str = "wasi:cli/run@";

/// The names a component imports and exports at its top level.
#[derive(Debug, Default)]
pub struct TopLevel {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

/// [`TopLevel`] of `component`, read without compiling it (nested
/// components' and modules' names are their own).
pub fn top_level(component: &[u8]) -> Result<TopLevel> {
    let mut names = TopLevel::default();
    let mut depth = 0;
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        match payload? {
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth -= 1,
            wasmparser::Payload::ComponentImportSection(s) if depth == 0 => {
                for i in s {
                    names.imports.push(i?.name.name.to_string());
                }
            }
            wasmparser::Payload::ComponentExportSection(s) if depth == 0 => {
                for e in s {
                    names.exports.push(e?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(names)
}

/// The preopens an app gets when none are named: the whole tree as `/`.
pub fn default_preopens() -> Vec<Preopen> {
    vec![Preopen {
        name: "/".into(),
        path: "/".into(),
        read_only: false,
    }]
}

fn register(graph: &mut CompositionGraph, name: &str, bytes: Vec<u8>) -> Result<PackageId> {
    let pkg = Package::from_bytes(name, None, bytes, graph.types_mut())?;
    Ok(graph.register_package(pkg)?)
}

/// The adapter (`adapter`: one of the builds above) instantiated with
/// `bundle`, in `graph`.
fn instantiate_adapter(
    graph: &mut CompositionGraph,
    adapter: &[u8],
    bundle: &Bundle,
    segment: &Segment<'_>,
) -> Result<NodeId> {
    let b = register(
        graph,
        "larder:bundle",
        bundle::component_with(bundle, segment)?,
    )?;
    let a = register(graph, "larder:adapter", adapter.to_vec())?;
    let b = graph.instantiate(b);
    let a = graph.instantiate(a);
    let export = graph.alias_instance_export(b, bundle::INTERFACE)?;
    graph.set_instantiation_argument(a, bundle::INTERFACE, export)?;
    // A build whose own libc imports a filesystem gets an empty one, not
    // the host's: the app's only filesystem is the adapter's.
    let pkg = graph[a].package().expect("an instantiation");
    let world = graph[pkg].ty();
    let own: Vec<String> = graph.types()[world]
        .imports
        .keys()
        .filter(|i| i.starts_with("wasi:filesystem/"))
        .cloned()
        .collect();
    if !own.is_empty() {
        let n = register(graph, "larder:no-filesystem", nofs::component()?)?;
        let n = graph.instantiate(n);
        for import in own {
            let e = graph.alias_instance_export(n, &import)?;
            graph
                .set_instantiation_argument(a, &import, e)
                .with_context(|| format!("plugging an empty {import} into the adapter"))?;
        }
    }
    Ok(a)
}

fn exports_of(graph: &CompositionGraph, node: NodeId) -> Vec<String> {
    let pkg = graph[node].package().expect("an instantiation");
    let world = graph[pkg].ty();
    graph.types()[world].exports.keys().cloned().collect()
}

/// The adapter (`build` of it) with `bundle` plugged in: a component with
/// no Larder imports, ready for `wac plug`.
pub fn adapter(bundle: &Bundle, build: Build) -> Result<Vec<u8>> {
    adapter_with(bundle, build, &Segment::of(&bundle.image))
}

/// [`adapter`] with `image` (not `bundle.image`, which must be empty) as
/// the bundled directories, written to `out` as the component is, so the
/// image is never held in memory whole.
pub fn adapter_to(
    bundle: &Bundle,
    build: Build,
    image: StreamedImage<'_>,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    streamed(bundle, image, out, |segment| {
        adapter_with(bundle, build, segment)
    })
}

fn adapter_with(bundle: &Bundle, build: Build, segment: &Segment<'_>) -> Result<Vec<u8>> {
    check_store(bundle, segment, build)?;
    let mut graph = CompositionGraph::new();
    let a = instantiate_adapter(&mut graph, build.bytes(), bundle, segment)?;
    for name in exports_of(&graph, a) {
        let e = graph.alias_instance_export(a, &name)?;
        graph.export(e, &name)?;
    }
    Ok(graph.encode(EncodeOptions::default())?)
}

/// The adapter's exports the bridge calls (see `http-bridge` in
/// wit/larder.wit), and the bridge's imports they and the app fill.
const BRIDGE_TAKE: &str = "larder:vfs/http-bridge@0.1.0";
const BRIDGE_STASH: &str = "stash-incoming";
const ADAPTER_HTTP_TYPES: &str = "wasi:http/types@0.2.12";
const BRIDGE_IMPORT_TYPES: &str = "larder:vfs/app-http-types@0.1.0";
const BRIDGE_IMPORT_HANDLER: &str = "larder:vfs/app-http-handler@0.1.0";
const BRIDGE_IMPORT_TAKE: &str = "larder:vfs/app-http-bridge@0.1.0";
const BRIDGE_HANDLER: &str = "wasi:http/incoming-handler@0.2.12";

/// `app` with its filesystem (and the interfaces sharing its resources)
/// served by the adapter holding `bundle`.
pub fn compose(app: &[u8], app_name: &str, bundle: &Bundle) -> Result<Vec<u8>> {
    compose_with(app, app_name, bundle, None)
}

/// The S3 build needs a bucket to keep the files in, and the remote build
/// a server; the others must not name one (it would be ignored).
fn check_store(bundle: &Bundle, segment: &Segment<'_>, build: Build) -> Result<()> {
    match (build, bundle.store.is_empty()) {
        (Build::PersistS3, true) => bail!("persisting to S3 needs the bucket (s3://BUCKET/PREFIX)"),
        (Build::Remote, true) => bail!("the remote build needs the server's HOST:PORT"),
        (Build::Remote, false) if segment.len > 0 => {
            bail!("the remote build's files are the server's: it bundles no directories")
        }
        (Build::PersistS3 | Build::Remote, false) | (_, true) => Ok(()),
        (_, false) => bail!("only the S3-persisting build keeps its files in a bundled store URL"),
    }
}

/// [`compose`]; with `persist`, the adapter keeps the app's files in a store
/// the host lends it (`larder:vfs/store`, e.g. `larder run --store`) or in
/// the S3 bucket `bundle.store` names, reached over `wasi:http`.
pub fn compose_with(
    app: &[u8],
    app_name: &str,
    bundle: &Bundle,
    persist: Option<Persist>,
) -> Result<Vec<u8>> {
    compose_segment(app, app_name, bundle, &Segment::of(&bundle.image), persist)
}

/// [`compose_with`] with `image` (not `bundle.image`, which must be empty)
/// as the bundled directories, written to `out` as the composition is, so
/// the image is never held in memory whole: what `larder compose` does
/// for a bundle of any size.
pub fn compose_to(
    app: &[u8],
    app_name: &str,
    bundle: &Bundle,
    persist: Option<Persist>,
    image: StreamedImage<'_>,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    streamed(bundle, image, out, |segment| {
        compose_segment(app, app_name, bundle, segment, persist)
    })
}

/// Builds with a placeholder segment (`build`), then writes the result with
/// `image` spliced in where the placeholder is.
fn streamed(
    bundle: &Bundle,
    image: StreamedImage<'_>,
    out: &mut dyn std::io::Write,
    build: impl FnOnce(&Segment<'_>) -> Result<Vec<u8>>,
) -> Result<()> {
    if !bundle.image.is_empty() {
        bail!("a streamed image replaces the bundle's own; the bundle must hold none");
    }
    let marker = splice::marker();
    let composed = build(&Segment {
        bytes: &marker,
        len: image.len,
    })?;
    splice::write(&composed, &marker, image, out)
}

fn compose_segment(
    app: &[u8],
    app_name: &str,
    bundle: &Bundle,
    segment: &Segment<'_>,
    persist: Option<Persist>,
) -> Result<Vec<u8>> {
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
    if let Some(import) = wasi_p3_import(&imports) {
        bail!(
            "WASI 0.3 components cannot be composed yet: {app_name} imports {import}; \
             `larder run` runs it on Larder's filesystem, or build it for WASI 0.2 \
             (wasm32-wasip2) to compose it"
        );
    }
    if !imports.iter().any(|i| i.starts_with("wasi:filesystem/")) {
        bail!("{app_name} does not import wasi:filesystem; there is nothing for Larder to serve");
    }
    let build = match (Build::for_app(&imports, &app_exports), persist) {
        (Build::Files, Some(Persist::Host)) => Build::Persist,
        (Build::Files, Some(Persist::S3)) => Build::PersistS3,
        (Build::Files, Some(Persist::Remote)) => Build::Remote,
        (_, Some(_)) => bail!(
            "{app_name} uses wasi:sockets or wasi:http; a persistent or remote \
             filesystem is available for command apps only so far"
        ),
        (build, None) => build,
    };
    check_store(bundle, segment, build)?;
    let adapter = instantiate_adapter(&mut graph, build.bytes(), bundle, segment)?;
    let provided = exports_of(&graph, adapter);
    let app = graph.instantiate(app_pkg);
    // Every version of an interface the app imports (toolchains mix 0.2.x
    // patch releases, even within one app) is served by the same export.
    let mut unserved = Vec::new();
    for import in &imports {
        if let Some(export) = provided.iter().find(|e| are_semver_compatible(e, import)) {
            let e = graph.alias_instance_export(adapter, export)?;
            graph
                .set_instantiation_argument(app, import, e)
                .with_context(|| format!("plugging {export} into {app_name}'s {import}"))?;
            tracing::debug!(%import, %export, "plugged");
        } else if import.starts_with("wasi:filesystem/") {
            unserved.push(import.as_str());
        }
    }
    // Left to the runtime, such an import would reach the host's files
    // while the app's author believes they are bundled.
    if !unserved.is_empty() {
        bail!(
            "{app_name} imports {}, which Larder's adapter cannot serve; \
             it serves wasi:filesystem 0.2.x",
            unserved.join(", ")
        );
    }
    for name in app_exports {
        let e = graph.alias_instance_export(app, &name)?;
        if name.starts_with(RUN) && matches!(build, Build::Persist | Build::PersistS3) {
            // The app's run, then the adapter's last sync.
            let bridge = register(&mut graph, "larder:run-bridge", runbridge::component()?)?;
            let bridge = graph.instantiate(bridge);
            graph
                .set_instantiation_argument(bridge, runbridge::APP_RUN, e)
                .with_context(|| format!("plugging {app_name}'s {name} into the run bridge"))?;
            let flush = graph.alias_instance_export(adapter, runbridge::PERSIST)?;
            graph.set_instantiation_argument(bridge, runbridge::PERSIST, flush)?;
            let run = graph.alias_instance_export(bridge, runbridge::RUN)?;
            graph.export(run, &name)?;
        } else if name.starts_with(HANDLER) {
            // The host calls the bridge, which calls the app's handler.
            let bridge = instantiate_bridge(&mut graph, adapter, e)?;
            let h = graph.alias_instance_export(bridge, BRIDGE_HANDLER)?;
            graph.export(h, BRIDGE_HANDLER)?;
        } else {
            graph.export(e, &name)?;
        }
    }
    Ok(graph.encode(EncodeOptions::default())?)
}

/// The HTTP bridge, wired to the adapter (edge build) and to the app's
/// `handler` export; it imports the host's `wasi:http/types` itself.
fn instantiate_bridge(
    graph: &mut CompositionGraph,
    adapter: NodeId,
    handler: NodeId,
) -> Result<NodeId> {
    let pkg = register(graph, "larder:http-bridge", HTTP_BRIDGE.to_vec())?;
    let bridge = graph.instantiate(pkg);
    for (import, export) in [
        (BRIDGE_IMPORT_TYPES, ADAPTER_HTTP_TYPES),
        (BRIDGE_IMPORT_TAKE, BRIDGE_TAKE),
        (BRIDGE_STASH, BRIDGE_STASH),
    ] {
        let e = graph.alias_instance_export(adapter, export)?;
        graph
            .set_instantiation_argument(bridge, import, e)
            .with_context(|| format!("plugging the adapter's {export} into the HTTP bridge"))?;
    }
    graph
        .set_instantiation_argument(bridge, BRIDGE_IMPORT_HANDLER, handler)
        .context("plugging the app's HTTP handler into the bridge")?;
    Ok(bridge)
}
