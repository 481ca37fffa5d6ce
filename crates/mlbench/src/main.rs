//! `mlbench`: the command-line front of the mlbench crates. Parse, dispatch, print errors once,
//! choose the exit code; all work happens in the library crates.

mod bench;
mod cli;
mod models;
mod progress;
mod stt;
mod tts;
mod vision;
mod write;

use std::process::ExitCode;

use clap::Parser;

// Model inference allocates and frees tensors of many megabytes per layer; glibc's malloc
// returns those to the kernel each time (mmap/munmap), so every layer pays page faults.
// mimalloc keeps freed pages for reuse.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let result = match args.command {
        cli::Command::Stt(a) => stt::run(*a),
        cli::Command::Models(a) => models::run(a),
        cli::Command::Bench(a) => bench::run(*a),
        cli::Command::ClassifyImage(a) => vision::run(*a),
        cli::Command::Tts(a) => tts::run(*a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e:#}");
            eprintln!("error: {}", msg.trim());
            ExitCode::FAILURE
        }
    }
}
