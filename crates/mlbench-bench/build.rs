//! Captures what the binary cannot know at run time: the rustc that compiled it, the git commit
//! of the source tree, and the Candle version in the workspace's Cargo.lock. Each is passed to the
//! crate as an environment variable; anything missing (no git, a crate built outside the
//! repository) becomes "unknown" rather than a build failure.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    emit("MLBENCH_RUSTC_VERSION", rustc_version());
    emit("MLBENCH_GIT_COMMIT", git_commit(&manifest_dir));
    emit("MLBENCH_CANDLE_VERSION", candle_version(&manifest_dir));
    println!("cargo:rerun-if-changed=build.rs");
}

fn emit(key: &str, value: Option<String>) {
    let value = value.unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env={key}={}", value.trim());
}

fn run(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

fn rustc_version() -> Option<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    run(Command::new(rustc).arg("--version"))
}

/// `git rev-parse HEAD`, and rerun triggers on HEAD and the branch ref so that a new commit
/// rebuilds this crate. Read-only: optional locks are disabled so a concurrent git is unaffected.
fn git_commit(dir: &Path) -> Option<String> {
    let git = |args: &[&str]| {
        run(Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_OPTIONAL_LOCKS", "0"))
    };
    let commit = git(&["rev-parse", "HEAD"])?;
    let mut watched = Vec::new();
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        watched.push(Path::new(&git_dir).join("HEAD"));
        if let Some(common) = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]) {
            watched.push(Path::new(&common).join("packed-refs"));
            if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
                watched.push(Path::new(&common).join(reference));
            }
        }
    }
    // A missing path would make cargo rerun this script on every build.
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    Some(commit)
}

/// The `candle-core` version recorded in the nearest Cargo.lock above this crate.
fn candle_version(dir: &Path) -> Option<String> {
    let lock = dir
        .ancestors()
        .map(|d| d.join("Cargo.lock"))
        .find(|p| p.exists())?;
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(lock).ok()?;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"candle-core\"" {
            let version = lines.next()?.trim().strip_prefix("version = ")?;
            return Some(version.trim_matches('"').to_string());
        }
    }
    None
}
