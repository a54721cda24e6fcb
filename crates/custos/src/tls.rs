//! The management server's TLS identity: a self-signed certificate made on first start and kept
//! in the data directory (replace the two files with a CA-issued pair to use your own).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Returns the certificate and key paths, generating them if absent.
pub fn ensure_identity(data_dir: &Path, hostname: &str) -> anyhow::Result<TlsFiles> {
    let dir = data_dir.join("tls");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
    let files = TlsFiles {
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
    };
    if files.cert.exists() && files.key.exists() {
        return Ok(files);
    }
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !hostname.is_empty() && hostname != "localhost" {
        names.push(hostname.to_string());
    }
    let certified =
        rcgen::generate_simple_self_signed(names).context("generating the TLS certificate")?;
    write_atomically(
        &files.key,
        certified.signing_key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write_atomically(&files.cert, certified.cert.pem().as_bytes(), 0o644)?;
    tracing::info!(cert = %files.cert.display(), "generated a self-signed TLS certificate");
    Ok(files)
}

/// Writes via a temporary file and rename, so a crash never leaves half a key.
pub fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(())
}
