//! Rebuilding a fresh data directory from a backup (`custos restore`): every file the manifest
//! names is checked (length and BLAKE3) before anything is written, then copied, and the
//! separately kept `secrets.key` is put beside them. The search index is not in a backup: the
//! server rebuilds it from the database and the trails when it starts.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Component, Path};

use crate::backup::{MANIFEST, MANIFEST_FORMAT, Manifest};
use crate::target::digest;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{0}")]
    Invalid(String),
    #[error("the backup is damaged: {}", .0.join("; "))]
    Damaged(Vec<String>),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RestoreError {
    let path = path.display().to_string();
    move |source| RestoreError::Io { what, path, source }
}

/// Reads the backup's manifest and checks every file it names.
pub fn verify(backup: &Path) -> Result<Manifest, RestoreError> {
    let path = backup.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(io("cannot read", &path))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
        RestoreError::Invalid(format!(
            "{} is not a Custos backup manifest: {e}",
            path.display()
        ))
    })?;
    if manifest.format != MANIFEST_FORMAT {
        return Err(RestoreError::Invalid(format!(
            "backup format {} is not supported (this version reads {MANIFEST_FORMAT})",
            manifest.format
        )));
    }
    let mut problems = Vec::new();
    if !manifest.files.iter().any(|f| f.path == "custos.db") {
        problems.push("the manifest names no custos.db".to_string());
    }
    for f in &manifest.files {
        let safe = Path::new(&f.path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        if !safe {
            problems.push(format!("{}: not a path inside the backup", f.path));
            continue;
        }
        match std::fs::File::open(backup.join(&f.path)).and_then(digest) {
            Ok(d) if d.size == f.size && d.blake3 == f.blake3 => {}
            Ok(d) => problems.push(format!(
                "{}: {} bytes with digest {}, the manifest says {} bytes with digest {}",
                f.path, d.size, d.blake3, f.size, f.blake3
            )),
            Err(e) => problems.push(format!("{}: {e}", f.path)),
        }
    }
    if problems.is_empty() {
        Ok(manifest)
    } else {
        Err(RestoreError::Damaged(problems))
    }
}

/// Checks the backup, then makes `data_dir` (which must not exist, or be empty) from it with
/// `secrets_key`. On failure after copying began, the partial directory is removed.
pub fn restore(
    backup: &Path,
    data_dir: &Path,
    secrets_key: &[u8],
) -> Result<Manifest, RestoreError> {
    if std::fs::read_dir(data_dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(RestoreError::Invalid(format!(
            "{} is not empty; restore makes a fresh data directory",
            data_dir.display()
        )));
    }
    let manifest = verify(backup)?;
    let result = copy_in(backup, data_dir, secrets_key, &manifest);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(data_dir);
    }
    result.map(|()| manifest)
}

fn copy_in(
    backup: &Path,
    data_dir: &Path,
    key: &[u8],
    manifest: &Manifest,
) -> Result<(), RestoreError> {
    std::fs::create_dir_all(data_dir).map_err(io("cannot create", data_dir))?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io("cannot protect", data_dir))?;
    for f in &manifest.files {
        let to = data_dir.join(&f.path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io("cannot create", parent))?;
        }
        std::fs::copy(backup.join(&f.path), &to).map_err(io("cannot copy to", &to))?;
        std::fs::File::open(&to)
            .and_then(|file| file.sync_all())
            .map_err(io("cannot flush", &to))?;
    }
    let key_path = data_dir.join("secrets.key");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_path)
        .map_err(io("cannot create", &key_path))?;
    file.write_all(key)
        .and_then(|()| file.sync_all())
        .map_err(io("cannot write", &key_path))?;
    Ok(())
}
