//! Archive targets: where trails go and how they are read back.
//!
//! Every operation here is blocking (files and child processes) and runs on a blocking thread.
//! A target never decides what may be deleted: it copies, and it reads back what it holds so
//! that the caller can compare.

mod directory;
mod rsync;
mod smb;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use custos_config::objects::retention::Target as TargetConfig;

pub use directory::Directory;
pub use rsync::Rsync;
pub use smb::Smb;

/// Why a target operation failed, for people (never holds a password).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TargetError(pub String);

impl TargetError {
    pub(crate) fn io(what: &str, path: &Path, e: &std::io::Error) -> Self {
        TargetError(format!("{what} {}: {e}", path.display()))
    }
}

/// A file only this process's user can read (credentials, keys and lists handed to a child
/// process), removed when dropped.
pub(crate) struct PrivateFile(PathBuf);

impl PrivateFile {
    /// Creates `<dir>/<name>-<pid>-<random>` with mode `0600` and `contents`.
    pub(crate) fn create(dir: &Path, name: &str, contents: &str) -> Result<Self, TargetError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::create_dir_all(dir).map_err(|e| TargetError::io("cannot create", dir, &e))?;
        let path = dir.join(format!("{name}-{}-{}", std::process::id(), rand_suffix()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| TargetError::io("cannot create", &path, &e))?;
        let made = PrivateFile(path);
        file.write_all(contents.as_bytes())
            .map_err(|e| TargetError::io("cannot write", &made.0, &e))?;
        Ok(made)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PrivateFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

/// One trail to copy.
#[derive(Clone, Debug)]
pub struct Item {
    pub local: PathBuf,
    /// Relative to the target's directory, `/`-separated.
    pub remote: String,
}

/// Length and BLAKE3 digest (hex) of a file's contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest {
    pub size: u64,
    pub blake3: String,
}

/// Reads `reader` to its end, returning its length and digest.
pub fn digest(mut reader: impl Read) -> std::io::Result<Digest> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok(Digest {
        size,
        blake3: hasher.finalize().to_hex().to_string(),
    })
}

/// Where NFS exports are mounted on this host, and whether a missing mount is an error.
#[derive(Clone, Debug)]
pub struct NfsMounts {
    /// The export `server:/path` is expected at `<root>/<server>/<path>`.
    pub root: PathBuf,
    /// Refuse a target directory that is not a mount point (the export is not mounted, so
    /// the files would land on the local disk). Only tests turn this off.
    pub require_mount: bool,
}

/// A target a policy names, ready to use.
pub enum Target {
    Directory(Directory),
    Smb(Smb),
}

impl Target {
    /// The target of a policy's `target` element (`none` has no target: it deletes).
    pub fn from_config(
        config: &TargetConfig,
        nfs: &NfsMounts,
        scratch: &Path,
    ) -> Result<Option<Target>, TargetError> {
        let server = || {
            config
                .server
                .as_ref()
                .map(|s| s.value.clone())
                .ok_or_else(|| TargetError("the target names no server".into()))
        };
        match config.kind.as_str() {
            "none" => Ok(None),
            "nfs" => {
                let export = config.path.clone().unwrap_or_else(|| "/".into());
                Ok(Some(Target::Directory(Directory::nfs(
                    nfs,
                    &server()?,
                    &export,
                ))))
            }
            "smb" => Ok(Some(Target::Smb(Smb::from_config(
                config,
                server()?,
                scratch,
            )?))),
            other => Err(TargetError(format!(
                "{other} is not an archive target type"
            ))),
        }
    }

    /// `(type, server, share or export)` as recorded with an archived trail.
    pub fn describe(&self) -> (&'static str, String, String) {
        match self {
            Target::Directory(d) => ("nfs", d.server.clone(), d.export.clone()),
            Target::Smb(s) => ("smb", s.server.clone(), s.share_and_path()),
        }
    }

    /// Fails if the target cannot be used now (not mounted, not reachable, refused login).
    pub fn check(&self) -> Result<(), TargetError> {
        match self {
            Target::Directory(d) => d.check(),
            Target::Smb(s) => s.check(),
        }
    }

    /// Copies the items. On error, some may have been copied; none is claimed to be. `Ok`
    /// holds what the target refused of single files (the read-back decides what was copied).
    pub fn put(&self, items: &[Item]) -> Result<Vec<String>, TargetError> {
        match self {
            Target::Directory(d) => d.put(items),
            Target::Smb(s) => s.put(items),
        }
    }

    /// Reads back what the target holds at each remote path (given with the size it should
    /// have); a missing file is missing from the map.
    pub fn read_back(
        &self,
        wanted: &[(String, u64)],
    ) -> Result<HashMap<String, Digest>, TargetError> {
        match self {
            Target::Directory(d) => d.read_back(wanted),
            Target::Smb(s) => s.read_back(wanted),
        }
    }

    /// Opens one archived file for reading.
    pub fn open(&self, remote: &str) -> Result<Box<dyn Read + Send>, TargetError> {
        match self {
            Target::Directory(d) => d.open(remote),
            Target::Smb(s) => s.open(remote),
        }
    }
}
