//! Peak resident memory of this process.
//!
//! The high-water mark is what decides whether a model fits a machine, and the operating system
//! already keeps it: on Linux `VmHWM` in `/proc/self/status`, elsewhere on Unix `getrusage`.
//! It only ever grows, so rows measured one after another in one process would each see the
//! largest earlier row; on Linux [`reset_peak`] sets it back to the current size before a row
//! (writing `5` to `/proc/self/clear_refs`, Linux 4.0+). Where that is not possible the figure is
//! the process's peak so far, which [`reset_peak`] reports by returning `false`.

/// Peak resident set size of this process in bytes, if the platform tells.
pub fn peak_rss_bytes() -> Option<u64> {
    imp::peak_rss_bytes()
}

/// Resets the peak to the current resident size; `false` where the platform cannot.
pub fn reset_peak() -> bool {
    imp::reset_peak()
}

#[cfg(target_os = "linux")]
mod imp {
    pub fn peak_rss_bytes() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        parse_vm_hwm(&status)
    }

    pub fn reset_peak() -> bool {
        std::fs::write("/proc/self/clear_refs", "5").is_ok()
    }

    /// `VmHWM:    123456 kB` → bytes.
    pub fn parse_vm_hwm(status: &str) -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line
            .trim_start_matches("VmHWM:")
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    }
}

#[cfg(all(unix, not(target_os = "linux")))]
mod imp {
    pub fn peak_rss_bytes() -> Option<u64> {
        // SAFETY: getrusage only writes the zero-initialised struct we pass.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
                return None;
            }
            usage
        };
        let max = u64::try_from(usage.ru_maxrss).ok()?;
        // macOS reports bytes, the BSDs kilobytes.
        Some(if cfg!(target_vendor = "apple") {
            max
        } else {
            max * 1024
        })
    }

    pub fn reset_peak() -> bool {
        false
    }
}

#[cfg(not(unix))]
mod imp {
    pub fn peak_rss_bytes() -> Option<u64> {
        None
    }

    pub fn reset_peak() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn reads_and_parses_vm_hwm() {
        let status = "Name:\tx\nVmPeak:\t  9 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(imp::parse_vm_hwm(status), Some(2048 * 1024));
        assert_eq!(imp::parse_vm_hwm("Name: x\n"), None);
        let before = peak_rss_bytes().expect("VmHWM on Linux");
        assert!(before > 0);
        // Touch 64 MiB: the peak must cover it, and a reset brings it back down.
        let big = std::hint::black_box(vec![1u8; 64 << 20]);
        let after = peak_rss_bytes().unwrap();
        assert!(after >= big.len() as u64, "{after}");
        drop(big);
        if reset_peak() {
            assert!(peak_rss_bytes().unwrap() < after, "peak not reset");
        }
    }
}
