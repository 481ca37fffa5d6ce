//! The machine and build a result came from.
//!
//! A number without its environment cannot be compared: the same code is several times slower
//! without AVX2/FMA, with fewer threads, or on another Candle. Everything here is read without
//! privileges and without network; what cannot be found is `None` or `"unknown"`, never an error.
//! Build-time facts (rustc, git commit, Candle version) come from this crate's `build.rs`.

use serde::{Deserialize, Serialize};

/// Where and with what a report was produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// CPU model name (`/proc/cpuinfo` on Linux).
    pub cpu_model: Option<String>,
    /// Logical cores available to this process.
    pub logical_cores: usize,
    /// SIMD features the CPU reports (`avx2`, `fma`, `avx512f`, `neon`, ...).
    pub simd: Vec<String>,
    /// Operating system and architecture (`linux x86_64`), with the distribution or kernel.
    pub os: String,
    /// `rustc --version` of the compiler that built mlbench.
    pub rustc: String,
    /// Candle (`candle-core`) version from the workspace's Cargo.lock.
    pub candle: String,
    /// Git commit of the source tree at build time.
    pub git_commit: String,
    /// mlbench's version.
    pub mlbench_version: String,
    /// Backend cargo features compiled in (`cuda`, `metal`); empty for a CPU build.
    pub features: Vec<String>,
    /// Threads of Candle's CPU thread pool (rayon).
    pub threads: usize,
    /// GPU name and driver where a GPU backend is compiled in and a GPU answers.
    pub gpu: Option<String>,
}

impl Environment {
    /// Reads the environment of this process.
    pub fn capture() -> Self {
        Self {
            cpu_model: cpu_model(),
            logical_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            simd: simd_features(),
            os: os_description(),
            rustc: env!("MLBENCH_RUSTC_VERSION").to_string(),
            candle: env!("MLBENCH_CANDLE_VERSION").to_string(),
            git_commit: env!("MLBENCH_GIT_COMMIT").to_string(),
            mlbench_version: env!("CARGO_PKG_VERSION").to_string(),
            features: features(),
            threads: rayon::current_num_threads(),
            gpu: gpu_name(),
        }
    }

    /// One line for the head of a table: CPU, cores, threads, SIMD, OS.
    pub fn summary(&self) -> String {
        let mut parts = vec![
            self.cpu_model
                .clone()
                .unwrap_or_else(|| "unknown CPU".into()),
            format!(
                "{} logical cores, {} threads",
                self.logical_cores, self.threads
            ),
        ];
        if !self.simd.is_empty() {
            parts.push(self.simd.join(" "));
        }
        if let Some(gpu) = &self.gpu {
            parts.push(gpu.clone());
        }
        parts.push(self.os.clone());
        parts.join(", ")
    }
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    parse_cpu_model(&info)
}

/// The first `model name` (x86), `Model` or `Hardware` (ARM) line of `/proc/cpuinfo`.
fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    ["model name", "Model", "Hardware"].iter().find_map(|key| {
        cpuinfo.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == *key && !v.trim().is_empty()).then(|| v.trim().to_string())
        })
    })
}

/// SIMD features relevant to Candle's kernels, as detected at run time.
pub fn simd_features() -> Vec<String> {
    let mut found: Vec<&str> = Vec::new();
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        let checks = [
            ("sse4.2", std::arch::is_x86_feature_detected!("sse4.2")),
            ("avx", std::arch::is_x86_feature_detected!("avx")),
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("f16c", std::arch::is_x86_feature_detected!("f16c")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            ("avx512bw", std::arch::is_x86_feature_detected!("avx512bw")),
            (
                "avx512vnni",
                std::arch::is_x86_feature_detected!("avx512vnni"),
            ),
        ];
        found.extend(checks.iter().filter(|(_, on)| *on).map(|(name, _)| *name));
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            found.push("neon");
        }
        if std::arch::is_aarch64_feature_detected!("fp16") {
            found.push("fp16");
        }
    }
    found.into_iter().map(String::from).collect()
}

fn os_description() -> String {
    let base = format!("{} {}", std::env::consts::OS, std::env::consts::ARCH);
    let detail = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|k| format!("kernel {}", k.trim()));
    match [detail, kernel].into_iter().flatten().collect::<Vec<_>>() {
        extra if extra.is_empty() => base,
        extra => format!("{base} ({})", extra.join(", ")),
    }
}

fn features() -> Vec<String> {
    let mut f = Vec::new();
    if mlbench_core::device::cuda_compiled() {
        f.push("cuda".to_string());
    }
    if mlbench_core::device::metal_compiled() {
        f.push("metal".to_string());
    }
    f
}

/// The first GPU's name and driver from `nvidia-smi`, in CUDA builds only (a CPU build never
/// looks, so a CPU report says `None` even on a machine with a GPU it does not use).
fn gpu_name() -> Option<String> {
    if !mlbench_core::device::cuda_compiled() {
        return None;
    }
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name,driver_version", "--format=csv,noheader"])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let first = text.lines().next()?.trim();
    let (name, driver) = first.split_once(',').unwrap_or((first, ""));
    let name = name.trim();
    match driver.trim() {
        "" => (!name.is_empty()).then(|| name.to_string()),
        d => Some(format!("{name} (driver {d})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_models() {
        let x86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(parse_cpu_model(x86).as_deref(), Some("AMD EPYC 7B13"));
        let arm = "processor\t: 0\nBogoMIPS\t: 108\nModel\t\t: Raspberry Pi 4 Model B\n";
        assert_eq!(
            parse_cpu_model(arm).as_deref(),
            Some("Raspberry Pi 4 Model B")
        );
        assert_eq!(parse_cpu_model("processor: 0\n"), None);
    }

    #[test]
    fn capture_fills_the_basics() {
        let env = Environment::capture();
        assert!(env.logical_cores >= 1 && env.threads >= 1);
        assert!(env.os.starts_with(std::env::consts::OS));
        assert!(!env.rustc.is_empty() && !env.candle.is_empty());
        if !mlbench_core::device::cuda_compiled() {
            assert_eq!(env.gpu, None);
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            assert!(env.simd.iter().any(|s| s == "avx2"));
        }
    }
}
