//! `mlbench`: the command-line front of the mlbench crates. Parse, dispatch, print errors once,
//! choose the exit code; all work happens in the library crates.

mod bench;
mod cli;
mod diffuse;
mod models;
mod progress;
mod stt;
mod text;
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

/// mimalloc's `mi_option_purge_delay` (position 15 of `mi_option_t` in the mimalloc 3 headers
/// that libmimalloc-sys 0.1.49 builds; `purge_delay_index_is_right` checks it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never hand freed memory back to the OS. By default mimalloc purges pages unused for a second
/// (arenas: ten), so buffers freed between sentences or windows are faulted in again, zeroed by
/// the kernel: with the HiFi-GAN decoder that was a third of its time. A command-line run keeps its peak memory until exit
/// either way.
fn keep_freed_memory() {
    // SAFETY: mi_option_set only stores the value in mimalloc's option table.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

fn main() -> ExitCode {
    keep_freed_memory();
    let args = cli::Cli::parse();
    let result = match args.command {
        cli::Command::Stt(a) => stt::run(*a),
        cli::Command::Models(a) => models::run(a),
        cli::Command::Bench(a) => bench::run(*a),
        cli::Command::ClassifyImage(a) => vision::run(*a),
        cli::Command::Tts(a) => tts::run(*a),
        cli::Command::ClassifyText(a) => text::classify(*a),
        cli::Command::Embed(a) => text::embed(*a),
        cli::Command::Diffuse(a) => diffuse::run(*a),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_delay_index_is_right() {
        // mimalloc 3's default purge delay is 1000 ms; no other option defaults to 1000.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: mi_option_get only reads mimalloc's option table.
            assert_eq!(
                unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) },
                1000
            );
        }
        keep_freed_memory();
        // SAFETY: as above.
        assert_eq!(
            unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) },
            -1
        );
    }
}
