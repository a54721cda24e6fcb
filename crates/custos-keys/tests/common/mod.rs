//! Fixture generation with the real tools (`ssh-keygen`, `openssl`), so the tests check the
//! parsers against what administrators' tools actually write and print.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// A scratch directory for one test's fixtures.
pub struct Dir {
    tmp: TempDir,
}

impl Dir {
    pub fn new() -> Self {
        Self {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn read(&self, name: &str) -> String {
        fs::read_to_string(self.path(name)).unwrap()
    }

    /// Writes `text` with mode 0600 (ssh-keygen refuses private keys readable by others).
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    /// `ssh-keygen -q -N <passphrase> -C test@custos -f <name> <args>`; returns the private
    /// key text.
    pub fn ssh_keygen(&self, name: &str, passphrase: &str, args: &[&str]) -> String {
        let path = self.path(name);
        let mut cmd = Command::new("ssh-keygen");
        cmd.args(["-q", "-N", passphrase, "-C", "test@custos", "-f"])
            .arg(&path)
            .args(args);
        run(&mut cmd);
        self.read(name)
    }

    /// Runs `openssl <args>` in this directory and returns stdout.
    pub fn openssl(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("openssl");
        cmd.current_dir(self.tmp.path()).args(args);
        run(&mut cmd)
    }
}

/// Runs a command, panicking with its stderr when it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The public key line (`type base64`, no comment) that `ssh-keygen -y` derives from a key
/// file.
pub fn ssh_keygen_public(path: &Path) -> String {
    let out = run(Command::new("ssh-keygen").arg("-y").arg("-f").arg(path));
    first_two_fields(&out)
}

/// The fingerprint `ssh-keygen -lf` prints for a public or private key file.
pub fn ssh_keygen_fingerprint(path: &Path) -> String {
    let out = run(Command::new("ssh-keygen").arg("-lf").arg(path));
    out.split_whitespace().nth(1).unwrap().to_owned()
}

/// The key size `ssh-keygen -lf` prints for a key file.
pub fn ssh_keygen_bits(path: &Path) -> u32 {
    let out = run(Command::new("ssh-keygen").arg("-lf").arg(path));
    out.split_whitespace().next().unwrap().parse().unwrap()
}

pub fn first_two_fields(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The value after `prefix=` in one line of `openssl x509 -noout …` output.
pub fn openssl_field(output: &str, prefix: &str) -> String {
    output
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {output}"))
        .trim()
        .to_owned()
}
