//! Figures of the machine the process runs on, as far as the platform can measure them: CPU,
//! memory and load from `/proc` (Linux, including Lambda), and the file system holding a
//! directory (the embedded object storage). Anything that cannot be read is `None`, never a
//! made-up number.

use serde::Serialize;
use std::path::Path;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

const GB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Rounds to two decimals, as the figures are shown.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The machine: platform and whatever of CPU, memory and load `/proc` tells.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HostFigures {
    #[schema(value_type = String)]
    pub platform: &'static str,
    #[schema(value_type = String)]
    pub architecture: &'static str,
    pub cpu_count: usize,
    /// Busy share of all CPUs since the previous reading (since boot on the first).
    #[schema(required = true)]
    pub cpu_usage_percent: Option<f64>,
    #[schema(required = true)]
    pub memory_usage_percent: Option<f64>,
    #[schema(required = true)]
    pub memory_available_gb: Option<f64>,
    #[schema(required = true)]
    pub memory_total_gb: Option<f64>,
    /// 1, 5 and 15 minutes.
    #[schema(required = true, value_type = Option<Vec<f64>>, min_items = 3, max_items = 3)]
    pub load_average: Option<[f64; 3]>,
}

/// A file system's size and use.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DiskFigures {
    pub disk_total_gb: f64,
    pub disk_used_gb: f64,
    pub disk_free_gb: f64,
    pub disk_usage_percent: f64,
}

static STARTED: LazyLock<Instant> = LazyLock::new(Instant::now);

/// How long this process has served (from its first call, which the context makes at start).
pub fn uptime() -> Duration {
    STARTED.elapsed()
}

/// The previous CPU reading: (busy, total) jiffies.
static LAST_CPU: Mutex<Option<(u64, u64)>> = Mutex::new(None);

fn cpu_usage_percent() -> Option<f64> {
    use procfs::CurrentSI;
    let stat = procfs::KernelStats::current().ok()?;
    let t = stat.total;
    let idle = t.idle + t.iowait.unwrap_or(0);
    let busy = t.user
        + t.nice
        + t.system
        + t.irq.unwrap_or(0)
        + t.softirq.unwrap_or(0)
        + t.steal.unwrap_or(0);
    let now = (busy, busy + idle);
    let mut last = LAST_CPU.lock().unwrap_or_else(|p| p.into_inner());
    let (busy_before, total_before) = last.replace(now).unwrap_or((0, 0));
    let (d_busy, d_total) = (
        now.0.saturating_sub(busy_before),
        now.1.saturating_sub(total_before),
    );
    (d_total > 0).then(|| round2(d_busy as f64 * 100.0 / d_total as f64))
}

/// Reads the machine's figures now.
pub fn host_figures() -> HostFigures {
    use procfs::Current;
    let memory = procfs::Meminfo::current().ok();
    let available = memory
        .as_ref()
        .and_then(|m| m.mem_available.or(Some(m.mem_free)));
    let total = memory.as_ref().map(|m| m.mem_total).filter(|t| *t > 0);
    HostFigures {
        platform: std::env::consts::OS,
        architecture: std::env::consts::ARCH,
        cpu_count: std::thread::available_parallelism().map_or(1, usize::from),
        cpu_usage_percent: cpu_usage_percent(),
        memory_usage_percent: total
            .zip(available)
            .map(|(t, a)| round2(t.saturating_sub(a) as f64 * 100.0 / t as f64)),
        memory_available_gb: available.map(|a| round2(a as f64 / GB)),
        memory_total_gb: total.map(|t| round2(t as f64 / GB)),
        load_average: procfs::LoadAverage::current()
            .ok()
            .map(|l| [l.one, l.five, l.fifteen].map(|x| round2(f64::from(x)))),
    }
}

/// The file system holding `path`, or `None` when it cannot be read.
pub fn disk_figures(path: &Path) -> Option<DiskFigures> {
    let fs = rustix::fs::statvfs(path).ok()?;
    let block = fs.f_frsize.max(1);
    let total = fs.f_blocks.saturating_mul(block);
    if total == 0 {
        return None;
    }
    let free = fs.f_bavail.saturating_mul(block);
    let used = total.saturating_sub(fs.f_bfree.saturating_mul(block));
    Some(DiskFigures {
        disk_total_gb: round2(total as f64 / GB),
        disk_used_gb: round2(used as f64 / GB),
        disk_free_gb: round2(free as f64 / GB),
        // As `df` counts it: used over what non-root users can have.
        disk_usage_percent: round2(used as f64 * 100.0 / (used + free).max(1) as f64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_figures_of_this_machine_are_plausible() {
        let host = host_figures();
        assert!(host.cpu_count >= 1);
        if cfg!(target_os = "linux") {
            let memory = host.memory_usage_percent.expect("/proc/meminfo");
            assert!((0.0..=100.0).contains(&memory), "{memory}");
            assert!(host.memory_total_gb.unwrap() > 0.0);
            assert!(host.load_average.is_some());
            let cpu = host.cpu_usage_percent.expect("/proc/stat");
            assert!((0.0..=100.0).contains(&cpu), "{cpu}");
        }
        let dir = tempfile::tempdir().unwrap();
        let disk = disk_figures(dir.path()).expect("statvfs");
        assert!(disk.disk_total_gb > 0.0);
        assert!((0.0..=100.0).contains(&disk.disk_usage_percent));
        assert!(disk.disk_free_gb <= disk.disk_total_gb);
        assert!(disk_figures(&dir.path().join("missing")).is_none());
    }
}
