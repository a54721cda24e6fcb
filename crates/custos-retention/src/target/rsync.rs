//! Backup targets reached with the real `rsync` over the real `ssh`: the policy's private key
//! (written to a `0600` file for the run), its pinned host key (the only entry of a private
//! known-hosts file, with strict checking, so an unknown or changed server key fails the
//! backup), its user name and port. rsync sends only what changed since the last backup.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{PrivateFile, TargetError};

pub struct Rsync {
    pub(crate) server: String,
    port: u16,
    username: String,
    /// The backup directory on the server.
    pub(crate) path: String,
    private_key: String,
    /// `<algorithm> <base64>` of the server's key.
    host_key: String,
    scratch: PathBuf,
}

/// Quotes a word for rsync's `-e` (split like a shell command line).
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

impl Rsync {
    pub fn new(
        server: String,
        port: u16,
        username: String,
        path: String,
        private_key: String,
        host_key: String,
        scratch: &Path,
    ) -> Rsync {
        Rsync {
            server,
            port,
            username,
            path,
            private_key,
            host_key,
            scratch: scratch.to_path_buf(),
        }
    }

    /// Copies `files` (relative to `base`) to `<path>/<prefix>/` on the server, keeping their
    /// relative paths.
    pub fn send(&self, base: &Path, files: &[String], prefix: &str) -> Result<(), TargetError> {
        if files.is_empty() {
            return Ok(());
        }
        let key = PrivateFile::create(
            &self.scratch,
            "rsync-key",
            &format!("{}\n", self.private_key.trim_end()),
        )?;
        let host = if self.port == 22 {
            self.server.clone()
        } else {
            format!("[{}]:{}", self.server, self.port)
        };
        let known = PrivateFile::create(
            &self.scratch,
            "rsync-known-hosts",
            &format!("{host} {}\n", self.host_key),
        )?;
        let list = PrivateFile::create(&self.scratch, "rsync-files", &(files.join("\n") + "\n"))?;
        let ssh = [
            "ssh".to_string(),
            "-i".into(),
            quote(&key.path().display().to_string()),
            "-p".into(),
            self.port.to_string(),
            "-o".into(),
            quote(&format!("UserKnownHostsFile={}", known.path().display())),
            "-o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes"
                .into(),
            "-o IdentitiesOnly=yes -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no"
                .into(),
            "-o ConnectTimeout=20 -F /dev/null".into(),
        ]
        .join(" ");
        let mut dest = self.path.trim_end_matches('/').to_string();
        if !prefix.is_empty() {
            dest.push('/');
            dest.push_str(prefix);
        }
        let out = Command::new("rsync")
            .args(["-a", "--mkpath", "--files-from"])
            .arg(list.path())
            .arg("-e")
            .arg(ssh)
            .arg(format!("{}/", base.display()))
            .arg(format!("{}@{}:{dest}/", self.username, self.server))
            .env("LC_ALL", "C")
            .output()
            .map_err(|e| TargetError(format!("cannot run rsync: {e}")))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why: Vec<&str> = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        Err(TargetError(format!(
            "rsync to {}@{}:{} failed ({}): {}",
            self.username,
            self.server,
            self.port,
            out.status,
            why[why.len().saturating_sub(3)..].join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_the_remote_shell_option() {
        assert_eq!(quote("/a b/c"), "'/a b/c'");
        assert_eq!(quote("it's"), "'it'\\''s'");
    }
}
