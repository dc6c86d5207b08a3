//! `larder`: run WebAssembly components on Larder's in-sandbox filesystem.

mod run;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exit code for bad input (missing file, not a component, bad flag value).
pub const EXIT_USAGE: u8 = 2;

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
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::main(args),
    }
}
