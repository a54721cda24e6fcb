//! NFS targets, through the directory where the host has mounted the export.
//!
//! The kernel's NFS client does the protocol (and its mount options say how: version,
//! Kerberos, timeouts); Custos writes files below `<mount root>/<server>/<export path>`.
//! Files are written under a temporary name, flushed (one `syncfs` per batch), renamed and their
//! directory flushed, so a name on the target always holds a complete file. Reading back drops the file's cached pages
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

    /// Copies every item under a temporary name, flushes the file system once for the whole
    /// batch (`syncfs`: one round of commits, not one per file), then renames the copies into
    /// place and flushes their directories. Nothing is renamed unless every copy is durable;
    /// on error the temporary copies are removed.
    pub fn put(&self, items: &[Item]) -> Result<Vec<String>, TargetError> {
        let mut partials: Vec<(PathBuf, PathBuf)> = Vec::with_capacity(items.len());
        let copied = self.copy_all(items, &mut partials).and_then(|()| {
            let root = File::open(&self.root)
                .map_err(|e| TargetError::io("cannot open", &self.root, &e))?;
            // SAFETY: syncfs only reads the descriptor, which `root` keeps open.
            if unsafe { libc::syncfs(root.as_raw_fd()) } != 0 {
                let e = std::io::Error::last_os_error();
                return Err(TargetError::io("cannot flush", &self.root, &e));
            }
            Ok(())
        });
        if let Err(e) = copied {
            for (partial, _) in &partials {
                let _ = std::fs::remove_file(partial);
            }
            return Err(e);
        }
        let mut dirs = BTreeSet::new();
        for (partial, dest) in &partials {
            std::fs::rename(partial, dest)
                .map_err(|e| TargetError::io("cannot rename", dest, &e))?;
            dirs.insert(dest.parent().unwrap_or(&self.root).to_path_buf());
        }
        for dir in dirs {
            File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| TargetError::io("cannot flush", &dir, &e))?;
        }
        Ok(Vec::new())
    }

    /// Copies each item to `<destination>.partial`, noting each in `partials` as it is made.
    fn copy_all(
        &self,
        items: &[Item],
        partials: &mut Vec<(PathBuf, PathBuf)>,
    ) -> Result<(), TargetError> {
        let mut made = BTreeSet::new();
        for item in items {
            let dest = self.path(&item.remote);
            let dir = dest.parent().unwrap_or(&self.root).to_path_buf();
            if !made.contains(&dir) {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| TargetError::io("cannot create", &dir, &e))?;
                made.insert(dir);
            }
            let mut partial = dest.clone().into_os_string();
            partial.push(".partial");
            let partial = PathBuf::from(partial);
            partials.push((partial.clone(), dest.clone()));
            std::fs::copy(&item.local, &partial)
                .map_err(|e| TargetError::io("cannot write", &dest, &e))?;
        }
        Ok(())
    }

    pub fn read_back(
        &self,
        wanted: &[(String, u64)],
    ) -> Result<HashMap<String, Digest>, TargetError> {
        let mut out = HashMap::new();
        for (remote, _) in wanted {
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
