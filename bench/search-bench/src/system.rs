//! What the benchmark reads of the machine and the process (Linux `/proc`), and the index's
//! directory: its size, the free space around it, and when background merges have finished.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

pub use custos_bench_support::machine;

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Bytes of all files under `dir`.
pub fn dir_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// Bytes available to us on the file system holding `path`.
pub fn free_space(path: &Path) -> anyhow::Result<u64> {
    let stat =
        nix::sys::statvfs::statvfs(path).with_context(|| format!("statvfs {}", path.display()))?;
    Ok(stat.blocks_available() as u64 * stat.fragment_size() as u64)
}

/// The process's peak resident memory (`VmHWM`), in MiB.
pub fn peak_rss_mib() -> f64 {
    read("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// CPU time of this process so far, in clock ticks (user + system).
fn cpu_ticks() -> Option<u64> {
    let stat = read("/proc/self/stat");
    // Fields after the command name (which may contain spaces): state is the first, utime the
    // 12th, stime the 13th.
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Waits until the process has been nearly idle (under 5 % of a core, at the usual 100 ticks/s)
/// for two seconds running: tantivy merges segments in background threads after commits, and
/// measuring size or latency while a merge of gigabytes runs would measure the merge. Returns the
/// time waited. Gives up after `limit`.
pub fn wait_until_idle(limit: Duration) -> Duration {
    let start = Instant::now();
    let Some(mut last) = cpu_ticks() else {
        return Duration::ZERO;
    };
    let mut quiet = 0;
    while quiet < 2 && start.elapsed() < limit {
        std::thread::sleep(Duration::from_secs(1));
        let now = cpu_ticks().unwrap_or(last);
        quiet = if now.saturating_sub(last) <= 5 {
            quiet + 1
        } else {
            0
        };
        last = now;
    }
    start.elapsed()
}
