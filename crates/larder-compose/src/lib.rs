//! Plugs Larder's guest adapter into WASI apps with wac-graph. The adapter
//! component is built by build.rs and embedded, so this works anywhere.
//!
//! The adapter imports `larder:vfs/bundle`; every composition instantiates
//! it with a generated bundle component (see [`bundle`]) holding the
//! directories to ship and the preopens to offer.

pub mod bundle;

use anyhow::{bail, Context, Result};
pub use bundle::Bundle;
use wac_graph::types::{are_semver_compatible, Package};
use wac_graph::{CompositionGraph, EncodeOptions, NodeId, PackageId};

/// The adapter component; it imports `larder:vfs/bundle`.
pub const ADAPTER: &[u8] = include_bytes!(env!("LARDER_ADAPTER_WASM"));
/// The same adapter passing `wasi:sockets` through too, for apps that use
/// sockets (their streams and pollables must be the adapter's).
pub const ADAPTER_NET: &[u8] = include_bytes!(env!("LARDER_ADAPTER_NET_WASM"));

/// The preopens an app gets when none are named: the whole tree as `/`.
pub fn default_preopens() -> Vec<(String, String)> {
    vec![("/".into(), "/".into())]
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
) -> Result<NodeId> {
    let b = register(graph, "larder:bundle", bundle::component(bundle)?)?;
    let a = register(graph, "larder:adapter", adapter.to_vec())?;
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
/// imports, ready for `wac plug`. With `sockets`, the build that passes
/// `wasi:sockets` through, for apps that use sockets.
pub fn adapter(bundle: &Bundle, sockets: bool) -> Result<Vec<u8>> {
    let mut graph = CompositionGraph::new();
    let build = if sockets { ADAPTER_NET } else { ADAPTER };
    let a = instantiate_adapter(&mut graph, build, bundle)?;
    for name in exports_of(&graph, a) {
        let e = graph.alias_instance_export(a, &name)?;
        graph.export(e, &name)?;
    }
    Ok(graph.encode(EncodeOptions::default())?)
}

/// Interfaces whose resources the adapter would have to share with the host
/// but cannot yet (they hand out host `wasi:io` streams).
const UNROUTABLE: &[&str] = &["wasi:http/"];

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
             compose apps that use the filesystem without HTTP"
        );
    }
    let uses_sockets = imports.iter().any(|i| i.starts_with("wasi:sockets/"));
    let build = if uses_sockets { ADAPTER_NET } else { ADAPTER };
    let adapter = instantiate_adapter(&mut graph, build, bundle)?;
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
