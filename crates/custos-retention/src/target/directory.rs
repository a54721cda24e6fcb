//! NFS targets, through the directory where the host has mounted the export.
//!
//! The kernel's NFS client does the protocol (and its mount options say how: version,
//! Kerberos, timeouts); Custos writes files below `<mount root>/<server>/<export path>`.
//! Files are written under a temporary name, flushed, renamed and their directory flushed, so a
//! name on the target always holds a complete file. Reading back drops the file's cached pages
//! first, so the digest is of what the server returns, not of what this host just wrote.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::io::AsRawFd as _;
use std::path::{Path, PathBuf};

use super::{Digest, Item, NfsMounts, TargetError, digest};

pub struct Directory {
    pub(crate) server: String,
    pub(crate) export: String,
    root: PathBuf,
    require_mount: bool,
}

impl Directory {
    pub fn nfs(mounts: &NfsMounts, server: &str, export: &str) -> Directory {
        Directory {
            server: server.to_string(),
            export: export.to_string(),
            root: mounts
                .root
                .join(server)
                .join(export.trim_start_matches('/')),
            require_mount: mounts.require_mount,
        }
    }

    /// The directory exists and, unless told otherwise, is a mount point.
    pub fn check(&self) -> Result<(), TargetError> {
        let meta = std::fs::metadata(&self.root).map_err(|e| {
            TargetError(format!(
                "the export {}:{} is not mounted at {}: {e}",
                self.server,
                self.export,
                self.root.display()
            ))
        })?;
        if !meta.is_dir() {
            return Err(TargetError(format!(
                "{} is not a directory",
                self.root.display()
            )));
        }
        if self.require_mount {
            let parent = self.root.parent().unwrap_or(Path::new("/"));
            let parent_dev = std::fs::metadata(parent)
                .map_err(|e| TargetError::io("cannot read", parent, &e))?
                .dev();
            if parent_dev == meta.dev() {
                return Err(TargetError(format!(
                    "the export {}:{} is not mounted at {} (the directory is on the local file system)",
                    self.server,
                    self.export,
                    self.root.display()
                )));
            }
        }
        Ok(())
    }

    fn path(&self, remote: &str) -> PathBuf {
        self.root.join(remote)
    }

    pub fn put(&self, items: &[Item]) -> Result<(), TargetError> {
        let mut dirs = BTreeSet::new();
        for item in items {
            let dest = self.path(&item.remote);
            let dir = dest.parent().unwrap_or(&self.root).to_path_buf();
            std::fs::create_dir_all(&dir)
                .map_err(|e| TargetError::io("cannot create", &dir, &e))?;
            let mut partial = dest.clone().into_os_string();
            partial.push(".partial");
            let partial = PathBuf::from(partial);
            let copied = std::fs::copy(&item.local, &partial)
                .and_then(|_| File::open(&partial)?.sync_all())
                .and_then(|()| std::fs::rename(&partial, &dest));
            if let Err(e) = copied {
                let _ = std::fs::remove_file(&partial);
                return Err(TargetError::io("cannot write", &dest, &e));
            }
            dirs.insert(dir);
        }
        for dir in dirs {
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| TargetError::io("cannot flush", &dir, &e))?;
        }
        Ok(())
    }

    pub fn read_back(&self, remotes: &[String]) -> Result<HashMap<String, Digest>, TargetError> {
        let mut out = HashMap::new();
        for remote in remotes {
            let path = self.path(remote);
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(TargetError::io("cannot read", &path, &e)),
            };
            // SAFETY: posix_fadvise only reads the descriptor, which `file` keeps open.
            unsafe {
                libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
            }
            let d = digest(file).map_err(|e| TargetError::io("cannot read", &path, &e))?;
            out.insert(remote.clone(), d);
        }
        Ok(out)
    }

    pub fn open(&self, remote: &str) -> Result<Box<dyn Read + Send>, TargetError> {
        self.check()?;
        let path = self.path(remote);
        File::open(&path)
            .map(|f| Box::new(f) as Box<dyn Read + Send>)
            .map_err(|e| TargetError::io("cannot open", &path, &e))
    }
}
