//! What the benchmark reads of the machine and the process (Linux `/proc`), and the index's
//! directory: its size, the free space around it, and when background merges have finished.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

/// One line describing the machine, for the README.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory_kib: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "unknown OS".into());
    let kernel = read("/proc/sys/kernel/osrelease");
    format!(
        "{cores} vCPU ({cpu}), {:.0} GiB, {os}, kernel {}",
        memory_kib as f64 / 1_048_576.0,
        kernel.trim()
    )
}

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

/// The directory the index is built in, removed at the end (also after a failure) unless kept.
pub struct IndexDir {
    pub path: PathBuf,
    pub keep: bool,
}

impl IndexDir {
    /// `given`, which must not exist or be empty (it is deleted afterwards); otherwise a new
    /// directory under /work (the large disk of the project's machines, not a small /tmp), or
    /// under the current directory where there is no /work.
    pub fn prepare(given: Option<&Path>, keep: bool) -> anyhow::Result<IndexDir> {
        let path = match given {
            Some(path) => {
                if path.exists() && std::fs::read_dir(path)?.next().is_some() {
                    anyhow::bail!(
                        "--dir {} is not empty; give a new or empty directory (it is deleted at the end unless --keep)",
                        path.display()
                    );
                }
                std::fs::create_dir_all(path)?;
                path.to_path_buf()
            }
            None => {
                let parent = if Path::new("/work").is_dir() {
                    PathBuf::from("/work")
                } else {
                    std::env::current_dir()?
                };
                tempfile::Builder::new()
                    .prefix("custos-search-bench-")
                    .tempdir_in(&parent)
                    .with_context(|| format!("creating a directory in {}", parent.display()))?
                    .keep()
            }
        };
        Ok(IndexDir { path, keep })
    }
}

impl Drop for IndexDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("index kept in {}", self.path.display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("could not remove {}: {e}", self.path.display());
        }
    }
}
