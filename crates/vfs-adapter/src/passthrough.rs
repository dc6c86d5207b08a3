//! Interfaces re-exported only because they hand out `wasi:io` resources:
//! stdio, terminals and the monotonic clock. Each forwards to the host
//! unchanged, so output is exactly as buffered as in a plain run.

use crate::exports::wasi::cli::{
    stderr, stdin, stdout, terminal_input, terminal_output, terminal_stderr, terminal_stdin,
    terminal_stdout,
};
use crate::exports::wasi::clocks0_2_12::monotonic_clock;
use crate::exports::wasi::io::{poll, streams};
use crate::io::{wrap_pollable, Input, Output};
use crate::wasi::cli as host_cli;
use crate::wasi::clocks0_2_12::monotonic_clock as host_clock;
use crate::Adapter;

pub struct TerminalInput(#[allow(dead_code)] host_cli::terminal_input::TerminalInput);
pub struct TerminalOutput(#[allow(dead_code)] host_cli::terminal_output::TerminalOutput);

impl stdin::Guest for Adapter {
    fn get_stdin() -> streams::InputStream {
        streams::InputStream::new(Input::Host(host_cli::stdin::get_stdin()))
    }
}

impl stdout::Guest for Adapter {
    fn get_stdout() -> streams::OutputStream {
        streams::OutputStream::new(Output::Host(host_cli::stdout::get_stdout()))
    }
}

impl stderr::Guest for Adapter {
    fn get_stderr() -> streams::OutputStream {
        streams::OutputStream::new(Output::Host(host_cli::stderr::get_stderr()))
    }
}

impl terminal_input::Guest for Adapter {
    type TerminalInput = TerminalInput;
}
impl terminal_input::GuestTerminalInput for TerminalInput {}

impl terminal_output::Guest for Adapter {
    type TerminalOutput = TerminalOutput;
}
impl terminal_output::GuestTerminalOutput for TerminalOutput {}

impl terminal_stdin::Guest for Adapter {
    fn get_terminal_stdin() -> Option<terminal_input::TerminalInput> {
        host_cli::terminal_stdin::get_terminal_stdin()
            .map(|t| terminal_input::TerminalInput::new(TerminalInput(t)))
    }
}

impl terminal_stdout::Guest for Adapter {
    fn get_terminal_stdout() -> Option<terminal_output::TerminalOutput> {
        host_cli::terminal_stdout::get_terminal_stdout()
            .map(|t| terminal_output::TerminalOutput::new(TerminalOutput(t)))
    }
}

impl terminal_stderr::Guest for Adapter {
    fn get_terminal_stderr() -> Option<terminal_output::TerminalOutput> {
        host_cli::terminal_stderr::get_terminal_stderr()
            .map(|t| terminal_output::TerminalOutput::new(TerminalOutput(t)))
    }
}

impl monotonic_clock::Guest for Adapter {
    fn now() -> u64 {
        host_clock::now()
    }
    fn resolution() -> u64 {
        host_clock::resolution()
    }
    fn subscribe_instant(when: u64) -> poll::Pollable {
        wrap_pollable(host_clock::subscribe_instant(when))
    }
    fn subscribe_duration(when: u64) -> poll::Pollable {
        wrap_pollable(host_clock::subscribe_duration(when))
    }
}
