//! What the benchmarks under `bench/` share: the one-line description of the machine that
//! their figures are recorded with, and a working directory removed at the end unless kept.

use std::path::{Path, PathBuf};

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

/// A benchmark's working directory, removed when dropped (also after a failure) unless kept.
pub struct WorkDir {
    pub path: PathBuf,
    pub keep: bool,
}

impl WorkDir {
    /// `given`, which must not exist or be empty (it is deleted afterwards); otherwise a new
    /// directory named `<prefix>…` under /work (the large disk of the project's machines, not a
    /// small /tmp), or under the current directory where there is no /work.
    pub fn prepare(given: Option<&Path>, keep: bool, prefix: &str) -> anyhow::Result<WorkDir> {
        let path = match given {
            Some(path) => {
                if path.exists() && std::fs::read_dir(path)?.next().is_some() {
                    anyhow::bail!(
                        "--dir {} is not empty; give a new or empty directory (it is deleted at the end unless --keep)",
                        path.display()
                    );
                }
                std::fs::create_dir_all(path)?;
                path.canonicalize()?
            }
            None => {
                let parent = if Path::new("/work").is_dir() {
                    PathBuf::from("/work")
                } else {
                    std::env::current_dir()?
                };
                tempfile::Builder::new()
                    .prefix(prefix)
                    .tempdir_in(&parent)
                    .with_context(|| format!("creating a directory in {}", parent.display()))?
                    .keep()
            }
        };
        Ok(WorkDir { path, keep })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept {}", self.path.display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("could not remove {}: {e}", self.path.display());
        }
    }
}
