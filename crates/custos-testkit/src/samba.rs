//! A real Samba `smbd` for tests, on a loopback address of its own (SMB has no port in
//! archive policies, so each server takes port 445 on its own `127.x.y.z`, added to `lo`).
//!
//! Two shares: `archive`, for the user [`SMB_USER`] with [`SMB_PASSWORD`] (mapped to root), and
//! `anon`, for anonymous (guest) logins. Needs root and Debian's `samba` (`./test.sh` installs
//! it).

use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::run;

pub const SMB_USER: &str = "archiver";
pub const SMB_PASSWORD: &str = "Arch1ve-pw";
pub const SMB_DOMAIN: &str = "CUSTOSTEST";

/// A running smbd, stopped (and its address removed) when dropped.
pub struct Smbd {
    child: Child,
    pub ip: Ipv4Addr,
    /// The directories behind the `archive` and `anon` shares.
    pub archive_dir: PathBuf,
    pub anon_dir: PathBuf,
}

impl Drop for Smbd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("ip")
            .args(["addr", "del", &format!("{}/32", self.ip), "dev", "lo"])
            .stderr(Stdio::null())
            .status();
    }
}

/// A loopback address no other test in this machine is using (its port 445 is free).
fn free_loopback() -> Ipv4Addr {
    for _ in 0..200 {
        let [a, b]: [u8; 2] = rand_pair();
        let ip = Ipv4Addr::new(127, 77, a, b.max(2));
        let added = Command::new("ip")
            .args(["addr", "add", &format!("{ip}/32"), "dev", "lo"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        // "exists" means another test holds it: try another.
        if added {
            return ip;
        }
    }
    panic!("no free loopback address for smbd (is `ip` installed, and are we root?)");
}

fn rand_pair() -> [u8; 2] {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let v = h.finish();
    [(v >> 8) as u8, v as u8]
}

impl Smbd {
    /// Starts smbd with its configuration, state and shares below `dir`.
    pub fn start(dir: &Path) -> Smbd {
        Smbd::start_with_shares(dir, &dir.join("smb-archive"), &dir.join("smb-anon"))
    }

    /// Like [`Smbd::start`], with the shares' directories given (e.g. on a small tmpfs).
    pub fn start_with_shares(dir: &Path, archive_dir: &Path, anon_dir: &Path) -> Smbd {
        assert!(
            Path::new("/usr/sbin/smbd").exists(),
            "these tests need samba (./test.sh installs it) and root"
        );
        let base = dir.join("samba");
        for sub in ["priv", "lock", "state", "cache", "pid", "log"] {
            std::fs::create_dir_all(base.join(sub)).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::create_dir_all(archive_dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(anon_dir).unwrap_or_else(|e| panic!("{e}"));
        let ip = free_loopback();
        let b = base.display();
        let conf = base.join("smb.conf");
        std::fs::write(base.join("usermap"), format!("root = {SMB_USER}\n"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            &conf,
            format!(
                "[global]
  workgroup = {SMB_DOMAIN}
  server role = standalone server
  interfaces = {ip}
  bind interfaces only = yes
  smb ports = 445
  private dir = {b}/priv
  lock directory = {b}/lock
  state directory = {b}/state
  cache directory = {b}/cache
  pid directory = {b}/pid
  log file = {b}/log/smbd.log
  passdb backend = tdbsam:{b}/priv/passdb.tdb
  username map = {b}/usermap
  map to guest = Bad User
  guest account = nobody
  disable spoolss = yes
  load printers = no
  printing = bsd
  printcap name = /dev/null
  server min protocol = SMB2_02
[archive]
  path = {}
  read only = no
  valid users = root
[anon]
  path = {}
  read only = no
  guest ok = yes
  guest only = yes
  force user = root
",
                archive_dir.display(),
                anon_dir.display()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut smbpasswd = Command::new("smbpasswd")
            .arg("-c")
            .arg(&conf)
            .args(["-s", "-a", "root"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("smbpasswd: {e}"));
        {
            use std::io::Write as _;
            let mut stdin = smbpasswd.stdin.take().expect("stdin");
            stdin
                .write_all(format!("{SMB_PASSWORD}\n{SMB_PASSWORD}\n").as_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(
            smbpasswd.wait().is_ok_and(|s| s.success()),
            "smbpasswd failed"
        );
        let child = Command::new("/usr/sbin/smbd")
            .args(["-F", "--no-process-group", "-s"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("smbd: {e}"));
        let smbd = Smbd {
            child,
            ip,
            archive_dir: archive_dir.to_path_buf(),
            anon_dir: anon_dir.to_path_buf(),
        };
        for _ in 0..400 {
            if TcpStream::connect_timeout(&(ip, 445).into(), Duration::from_millis(200)).is_ok() {
                return smbd;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "smbd did not listen on {ip}:445; see {}",
            base.join("log/smbd.log").display()
        );
    }

    /// Files below a share directory, relative to it, sorted.
    pub fn files(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(root) {
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        out
    }
}

/// Mounts a tmpfs of `size` (e.g. `"1m"`) at `path` for a "target full" test; unmounted when
/// dropped.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap_or_else(|e| panic!("{e}"));
        let out = run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path));
        assert!(
            out.status.success(),
            "mount tmpfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
