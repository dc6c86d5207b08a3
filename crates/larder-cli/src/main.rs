//! `larder`: run WebAssembly components on Larder's in-sandbox filesystem.

mod compose;
mod host;
mod limits;
mod progress;
mod run;
mod serve;
mod serve_http;
mod store;
mod volume;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exit code for bad input (missing file, not a component, bad flag value).
pub const EXIT_USAGE: u8 = 2;

/// The bytes of the app (or other input file) at `path`, which must be a
/// regular file: reading a FIFO or a device would wait forever or never end.
pub fn read_input(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let m = std::fs::metadata(path)?;
    if !m.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            if m.is_dir() {
                "a directory, not a file"
            } else {
                "not a regular file (a FIFO, socket or device)"
            },
        ));
    }
    std::fs::read(path)
}

/// Success, or the error (with its causes) on stderr and exit code 2.
pub fn report(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`larder ls | head`): done, quietly, as
        // Unix tools are.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("larder: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

#[derive(Parser)]
#[command(
    name = "larder",
    version,
    about = "A persistent virtual filesystem for WebAssembly components"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a component (also a composed one) with its filesystem held by
    /// Larder; with --instances N, N instances share it.
    Run(run::RunArgs),
    /// Plug Larder's filesystem into an app, bundling host directories, so
    /// `wasmtime run out.wasm` needs no host directories.
    Compose(compose::ComposeArgs),
    /// Write the guest adapter for use with `wac plug`.
    Adapter(compose::AdapterArgs),
    /// List what a store holds (`--store DIR`), as `larder run --store`
    /// would see it.
    Ls(store::LsArgs),
    /// Share one filesystem over 9P2000.L with apps in other processes
    /// (composed with --remote) and any 9P2000.L client.
    Serve(serve::ServeArgs),
    /// Serve an HTTP handler (wasi:http/proxy) as `wasmtime serve` does,
    /// an instance per request, all sharing one Larder filesystem that
    /// outlives the requests (and, with --store, the process).
    ServeHttp(serve_http::ServeHttpArgs),
    /// Print a file from a store.
    Cat(store::CatArgs),
    /// Copy a store's tree (or part) to a host directory.
    Export(store::ExportArgs),
}

/// Messages as a command-line tool writes them (`larder: warning: ...`),
/// with tracing's full lines (time, level, module) when `RUST_LOG` asks for
/// more; colours only on a terminal.
fn init_logging() {
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal();
    match tracing_subscriber::EnvFilter::try_from_default_env() {
        Ok(filter) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .init(),
        // Every crate's warnings, except the AWS SDK's search for a region
        // (it asks the EC2 metadata service, and dumps the refusal), which
        // ends in us-east-1 anyway.
        Err(_) => tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn,aws_config=error"))
            .with_ansi(ansi)
            .event_format(Plain)
            .with_writer(std::io::stderr)
            .init(),
    }
}

/// `larder: warning: skipped app/a//b: ...`: the level as a word, then the
/// message and its fields.
struct Plain;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Plain
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            tracing::Level::INFO => "info",
            _ => "debug",
        };
        write!(w, "larder: {level}: ")?;
        tracing_subscriber::fmt::FormatFields::format_fields(ctx, w.by_ref(), event)?;
        writeln!(w)
    }
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::main(args),
        Command::Compose(args) => compose::main(args),
        Command::Adapter(args) => compose::adapter_main(args),
        Command::Serve(args) => serve::main(args),
        Command::ServeHttp(args) => serve_http::main(args),
        Command::Ls(args) => store::ls(args),
        Command::Cat(args) => store::cat(args),
        Command::Export(args) => store::export(args),
    }
}
