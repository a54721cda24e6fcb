//! Real OpenSSH peers for tests: an `sshd` on a free loopback port, a local account with a known
//! password, and `ssh`/`scp`/`sftp` commands that log in with it through `SSH_ASKPASS`.
//!
//! Needs root (to run sshd and create the account) and openssh-server/-client; `./test.sh`
//! installs them. Nothing here is a mock: these are the programs administrators use.

pub mod pki;
pub mod samba;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The local account tests log in as.
pub const USER: &str = "custos-e2e";
pub const PASSWORD: &str = "E2e-test-passw0rd";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

pub fn run(cmd: &mut Command) -> std::process::Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// Creates [`USER`] with [`PASSWORD`] once per process: rewriting /etc/shadow while sshd reads
/// it for another test would fail that login.
pub fn ensure_test_user() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        assert!(
            Path::new("/usr/sbin/sshd").exists(),
            "these tests need openssh-server (./test.sh installs it) and root"
        );
        if !run(Command::new("id").arg(USER)).status.success() {
            let out =
                run(Command::new("useradd").args(["--create-home", "--shell", "/bin/sh", USER]));
            assert!(
                out.status.success(),
                "useradd: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // A home left by an earlier account of the same name (another uid) would not be
        // writable, and sshd's xauth writes the X11 cookie there.
        let home = format!("/home/{USER}");
        if Path::new(&home).is_dir() {
            let out = run(Command::new("chown")
                .arg("-R")
                .arg(format!("{USER}:"))
                .arg(&home));
            assert!(
                out.status.success(),
                "chown {home}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut chpasswd = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("chpasswd: {e}"));
        use std::io::Write;
        if let Some(mut stdin) = chpasswd.stdin.take() {
            stdin
                .write_all(format!("{USER}:{PASSWORD}\n").as_bytes())
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(
            chpasswd.wait().is_ok_and(|s| s.success()),
            "chpasswd failed"
        );
    });
}

/// An OpenSSH server on 127.0.0.1, stopped when dropped.
pub struct Sshd {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    /// Where `authorized_keys` lives: a directory the test account can read.
    _keys_dir: Option<tempfile::TempDir>,
}

/// Extras for [`Sshd::start_with_options`].
#[derive(Default)]
pub struct SshdOptions {
    /// The test account's `authorized_keys` (OpenSSH public key lines).
    pub authorized_keys: Option<String>,
    /// `X11Forwarding yes` with `X11UseLocalhost yes` (displays on 127.0.0.1:6010 and up).
    pub x11: bool,
}

/// Where xauth is; sshd runs it to store the X11 cookie of a forwarded display.
pub const XAUTH: &str = "/usr/bin/xauth";

/// A new directory that the test account (not only root) can read: sshd reads authorized
/// keys, and the account runs scripts, with the account's rights.
pub fn readable_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("{e}"));
    dir
}

/// Writes `contents` to `path`, readable by everybody (mode 0644).
pub fn write_readable(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .unwrap_or_else(|e| panic!("{e}"));
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    /// Starts sshd with its own host key and configuration in `dir`, allowing passwords.
    pub fn start(dir: &Path) -> Sshd {
        Sshd::start_with(
            dir,
            "UsePAM no\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\n",
        )
    }

    /// Starts sshd that allows only keyboard-interactive logins (through PAM).
    pub fn start_keyboard_interactive(dir: &Path) -> Sshd {
        Sshd::start_with(
            dir,
            "UsePAM yes\nPasswordAuthentication no\nKbdInteractiveAuthentication yes\n",
        )
    }

    /// Starts sshd that allows passwords, with the extras `options` asks for.
    pub fn start_with_options(dir: &Path, options: &SshdOptions) -> Sshd {
        let mut config = String::from(
            "UsePAM no\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\n",
        );
        let mut keys_dir = None;
        if let Some(keys) = &options.authorized_keys {
            let readable = readable_dir();
            let file = readable.path().join("authorized_keys");
            write_readable(&file, keys);
            config.push_str(&format!("AuthorizedKeysFile {}\n", file.display()));
            keys_dir = Some(readable);
        }
        if options.x11 {
            assert!(
                Path::new(XAUTH).exists(),
                "X11 forwarding tests need xauth (./test.sh installs it)"
            );
            config.push_str(&format!(
                "X11Forwarding yes\nX11UseLocalhost yes\nXAuthLocation {XAUTH}\n"
            ));
        }
        let mut sshd = Sshd::start_with(dir, &config);
        sshd._keys_dir = keys_dir;
        sshd
    }

    fn start_with(dir: &Path, authentication: &str) -> Sshd {
        ensure_test_user();
        let _ = std::fs::create_dir_all("/run/sshd");
        let key = dir.join("ssh_host_ed25519_key");
        if !key.exists() {
            let out = run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&key));
            assert!(out.status.success(), "ssh-keygen failed");
        }
        let port = free_port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\n{authentication}PubkeyAuthentication yes\nStrictModes no\nSubsystem sftp internal-sftp\nLogLevel ERROR\n",
                key.display(),
                dir.join("sshd.pid").display()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("sshd: {e}"));
        wait_for_port(port);
        Sshd {
            child,
            port,
            dir: dir.to_path_buf(),
            _keys_dir: None,
        }
    }
}

pub fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("nothing listens on {port}");
}

/// Builds OpenSSH client commands that log in with a password through `SSH_ASKPASS`.
pub struct Client {
    askpass: PathBuf,
}

impl Client {
    pub fn new(dir: &Path) -> Client {
        let askpass = dir.join("askpass.sh");
        std::fs::write(&askpass, "#!/bin/sh\necho \"$CUSTOS_TEST_PASSWORD\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        Client { askpass }
    }

    /// Options every client needs: no host-key prompts, password only, the askpass helper.
    pub fn options(&self, cmd: &mut Command, password: &str) {
        self.options_for(cmd, password, "password");
    }

    /// Like [`Client::options`], logging in with `method` (`password` or
    /// `keyboard-interactive`; the askpass helper answers the prompt either way).
    pub fn options_for(&self, cmd: &mut Command, password: &str, method: &str) {
        let preferred = format!("PreferredAuthentications={method}");
        cmd.args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args([
            "-o",
            "LogLevel=ERROR",
            "-o",
            &preferred,
            "-o",
            "PubkeyAuthentication=no",
        ])
        .args(["-o", "NumberOfPasswordPrompts=1"])
        .env("SSH_ASKPASS", &self.askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .env("CUSTOS_TEST_PASSWORD", password)
        .stdin(Stdio::null());
    }

    /// `ssh -p <port> <login>@127.0.0.1 <args…>`.
    pub fn ssh(&self, port: u16, login: &str, password: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(["-p", &port.to_string()]);
        self.options(&mut cmd, password);
        cmd.arg(format!("{login}@127.0.0.1")).args(args);
        cmd
    }
}

pub fn sha256(path: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(path));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Makes an Ed25519 key pair without a passphrase: returns the private key's path and the
/// public key line.
pub fn generate_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path));
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public =
        std::fs::read_to_string(path.with_extension("pub")).unwrap_or_else(|e| panic!("{e}"));
    (path, public.trim().to_string())
}

/// The `SHA256:…` fingerprint of a public key file, as `ssh-add -l` shows it.
pub fn fingerprint(public_key: &Path) -> String {
    let out = run(Command::new("ssh-keygen").arg("-lf").arg(public_key));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// A real `ssh-agent` on a socket of its own, stopped when dropped.
pub struct Agent {
    child: Child,
    pub socket: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    /// Starts `ssh-agent -D -a <dir>/agent.sock` (keep `dir` short: socket paths are limited).
    pub fn start(dir: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("ssh-agent: {e}"));
        // Owned from here on: a panic below stops the agent (Drop).
        let agent = Agent { child, socket };
        for _ in 0..200 {
            if agent.socket.exists() {
                return agent;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("ssh-agent did not create {}", agent.socket.display());
    }

    /// `ssh-add <key>`.
    pub fn add(&self, key: &Path) {
        let out = run(Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket));
        assert!(
            out.status.success(),
            "ssh-add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Client {
    /// `ssh -i <key> -p <port> <login>@127.0.0.1 <args…>`, public key only (no prompts);
    /// with `agent`, the client can forward that agent (`-A` among `args` does it).
    pub fn ssh_with_key(
        &self,
        port: u16,
        login: &str,
        key: &Path,
        agent: Option<&Agent>,
        args: &[&str],
    ) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(["-p", &port.to_string()])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "PreferredAuthentications=publickey",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
            ])
            .arg("-i")
            .arg(key)
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null());
        if let Some(agent) = agent {
            cmd.env("SSH_AUTH_SOCK", &agent.socket);
        }
        cmd.arg(format!("{login}@127.0.0.1")).args(args);
        cmd
    }
}
