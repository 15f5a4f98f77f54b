//! A process's memory as `/proc` reports it: its resident set size now, its peak, and resetting
//! that peak so that each scenario gets its own.

use anyhow::Context as _;

use super::output::round;

/// Resets the peak resident set size the kernel keeps for `pid` (VmHWM) to its current size,
/// so that the peak read after a scenario belongs to that scenario alone.
pub(super) fn reset_peak_rss(pid: u32) -> anyhow::Result<()> {
    let path = format!("/proc/{pid}/clear_refs");
    std::fs::write(&path, "5").with_context(|| format!("resetting the peak RSS through {path}"))
}

/// The peak resident set size of `pid` since its start or the last [`reset_peak_rss`], in KiB.
pub(super) fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    proc_status_kib(pid, "VmHWM")
}

/// The current resident set size of `pid`, in KiB.
pub(super) fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    proc_status_kib(pid, "VmRSS")
}

fn proc_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status_field_kib(&status, field).with_context(|| format!("{path} has no {field} line"))
}

/// A `Name:   1234 kB` field of `/proc/<pid>/status`, in KiB.
fn status_field_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if name != field {
            return None;
        }
        value.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// KiB as MiB with one decimal: the unit of the memory figures (and of the "40 MB" target).
pub(super) fn kib_to_mib(kib: u64) -> f64 {
    round(kib as f64 / 1024.0, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_fields_are_read_from_proc_status() {
        let status = "Name:\tapi\nVmPeak:\t  712340 kB\nVmHWM:\t   23456 kB\nVmRSS:\t   20480 kB\n\
                      Threads:\t4\n";
        assert_eq!(status_field_kib(status, "VmHWM"), Some(23_456));
        assert_eq!(status_field_kib(status, "VmRSS"), Some(20_480));
        assert_eq!(status_field_kib(status, "Threads"), None, "not in kB");
        assert_eq!(status_field_kib(status, "VmSwap"), None);
        assert!((kib_to_mib(20_480) - 20.0).abs() < f64::EPSILON);
        assert!((kib_to_mib(23_456) - 22.9).abs() < f64::EPSILON);
    }

    #[test]
    fn our_own_memory_can_be_read_and_its_peak_reset() {
        let pid = std::process::id();
        reset_peak_rss(pid).unwrap();
        let peak = peak_rss_kib(pid).unwrap();
        let rss = rss_kib(pid).unwrap();
        assert!(peak > 0 && rss > 0);
    }
}
