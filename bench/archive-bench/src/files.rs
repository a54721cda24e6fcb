//! The trails to archive (files of random, incompressible bytes named as trails are) and what
//! the benchmark reads of directories and the machine.

use std::io::Write as _;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

/// One trail file of the source set: `<dir>/<key>.trail`.
pub struct Trail {
    pub key: String,
}

/// The files every copy in a scenario starts from (never modified: Custos gets hard links).
pub struct Source {
    pub dir: PathBuf,
    pub trails: Vec<Trail>,
    pub bytes: u64,
}

impl Source {
    pub fn path(&self, trail: &Trail) -> PathBuf {
        self.dir.join(format!("{}.trail", trail.key))
    }
}

/// A session key as the gateway makes them: 22 characters of base62 (from the seeded RNG).
fn key(rng: &mut StdRng) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..22)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Writes `count` files of random sizes in `sizes` (bytes) to `dir`.
pub fn generate(
    dir: &Path,
    count: usize,
    sizes: RangeInclusive<u64>,
    seed: u64,
) -> anyhow::Result<Source> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut buf = vec![0u8; 1 << 20];
    let mut trails = Vec::with_capacity(count);
    let mut bytes = 0;
    for _ in 0..count {
        let key = key(&mut rng);
        let size = rng.random_range(sizes.clone());
        let path = dir.join(format!("{key}.trail"));
        let mut file = std::fs::File::create_new(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let mut left = size;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            rng.fill_bytes(&mut buf[..n]);
            file.write_all(&buf[..n])?;
            left -= n as u64;
        }
        bytes += size;
        trails.push(Trail { key });
    }
    Ok(Source {
        dir: dir.to_path_buf(),
        trails,
        bytes,
    })
}

/// Regular files below `dir` and their total size.
pub fn tree(dir: &Path) -> anyhow::Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                files += 1;
                bytes += entry.metadata()?.len();
            }
        }
    }
    Ok((files, bytes))
}

/// Fails unless `dir` holds exactly the source's files and bytes (a copy that lost or
/// truncated something must not produce a number).
pub fn expect_copy(dir: &Path, source: &Source, what: &str) -> anyhow::Result<()> {
    let (files, bytes) = tree(dir)?;
    if files != source.trails.len() as u64 || bytes != source.bytes {
        bail!(
            "{what}: {} holds {files} files, {bytes} bytes; expected {} files, {} bytes",
            dir.display(),
            source.trails.len(),
            source.bytes
        );
    }
    Ok(())
}

/// Hard links of the source files, dealt round-robin into `n` directories under `base`.
pub fn split(source: &Source, base: &Path, n: usize) -> anyhow::Result<Vec<PathBuf>> {
    let parts: Vec<PathBuf> = (0..n).map(|i| base.join(i.to_string())).collect();
    for part in &parts {
        std::fs::create_dir_all(part).with_context(|| format!("creating {}", part.display()))?;
    }
    for (i, trail) in source.trails.iter().enumerate() {
        let to = parts[i % n].join(format!("{}.trail", trail.key));
        std::fs::hard_link(source.path(trail), &to)
            .with_context(|| format!("linking {}", to.display()))?;
    }
    Ok(parts)
}

/// Removes a directory tree if it exists.
pub fn remove(dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", dir.display())),
    }
}

/// Writes dirty pages out, so that a timed run does not pay for what came before it.
pub fn sync() -> anyhow::Result<()> {
    let status = Command::new("sync").status().context("running sync")?;
    if !status.success() {
        bail!("sync failed: {status}");
    }
    Ok(())
}

/// Bytes available on the file system holding `dir` (`df`).
pub fn free_space(dir: &Path) -> anyhow::Result<u64> {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .context("running df")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("reading df's answer for {}", dir.display()))
}

/// The load averages (`/proc/loadavg`: 1, 5 and 15 minutes).
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first line a tool prints for `--version`.
pub fn version(tool: &Path) -> String {
    Command::new(tool)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "unknown version".into())
}

/// Where `tool` is on `PATH` (resolved before the benchmark may put a wrapper in front).
pub fn which(tool: &str) -> anyhow::Result<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .with_context(|| format!("{tool} is not installed"))
}
