//! SMB targets, through Samba's `smbclient` (the SMB protocol itself: nothing is mounted).
//!
//! A batch of trails is one `smbclient` run in tar mode: Custos writes a tar stream of the
//! files to its standard input (`-Tx -`), and reads them back as a tar stream from its standard
//! output (`-Tc - <paths>`), so a batch costs one SMB session each way however many files it
//! holds. The password goes to `smbclient` in an authentication file readable only by this
//! process's user, never on a command line.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use custos_config::objects::retention::Target as TargetConfig;

use super::{Digest, Item, TargetError, digest};

enum Login {
    Anonymous,
    Password { username: String, password: String },
}

pub struct Smb {
    pub(crate) server: String,
    /// The share's name (the first element of the policy's `share`).
    service: String,
    /// Directories inside the share: the rest of `share`, then `path`.
    prefix: String,
    domain: Option<String>,
    /// smbclient's name of the protocol version to use.
    protocol: Option<&'static str>,
    login: Login,
    scratch: PathBuf,
}

/// SPS's protocol versions as smbclient names them.
fn protocol_name(version: &str) -> Option<&'static str> {
    Some(match version {
        "1.0" => "NT1",
        "2.0" => "SMB2_02",
        "2.1" => "SMB2_10",
        "3.0" => "SMB3_00",
        "3.1.1" => "SMB3_11",
        _ => return None,
    })
}

/// Deletes the authentication file when the run is over.
struct AuthFile(Option<PathBuf>);

impl Drop for AuthFile {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The last lines smbclient printed, for an error message.
fn tail(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(3);
    lines[start..].join("; ")
}

/// Collects a pipe on a thread (so that a child blocked writing it cannot deadlock us).
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = pipe.read_to_end(&mut out);
        out
    })
}

impl Smb {
    pub fn from_config(
        config: &TargetConfig,
        server: String,
        scratch: &Path,
    ) -> Result<Smb, TargetError> {
        let share = config
            .share
            .as_deref()
            .unwrap_or_default()
            .replace('\\', "/");
        let mut parts = share.split('/').filter(|p| !p.is_empty());
        let service = parts
            .next()
            .ok_or_else(|| TargetError("the target names no share".into()))?
            .to_string();
        let mut prefix: Vec<&str> = parts.collect();
        if let Some(path) = &config.path {
            prefix.extend(path.split(['/', '\\']).filter(|p| !p.is_empty()));
        }
        let login = match &config.authentication {
            Some(auth) if auth.selection == "password" => Login::Password {
                username: auth.username.clone().unwrap_or_default(),
                password: auth
                    .password
                    .as_ref()
                    .map(|p| p.expose().to_string())
                    .unwrap_or_default(),
            },
            _ => Login::Anonymous,
        };
        Ok(Smb {
            server,
            service,
            prefix: prefix.join("/"),
            domain: config.domain.clone().filter(|d| !d.is_empty()),
            protocol: config.protocol_version.as_deref().and_then(protocol_name),
            login,
            scratch: scratch.to_path_buf(),
        })
    }

    /// The policy's share with its directory path, as recorded with archived trails.
    pub fn share_and_path(&self) -> String {
        if self.prefix.is_empty() {
            self.service.clone()
        } else {
            format!("{}/{}", self.service, self.prefix)
        }
    }

    fn full(&self, remote: &str) -> String {
        if self.prefix.is_empty() {
            remote.to_string()
        } else {
            format!("{}/{remote}", self.prefix)
        }
    }

    /// `smbclient //server/share` with the login and protocol options, and the file that holds
    /// the credentials (deleted when dropped).
    fn command(&self) -> Result<(Command, AuthFile), TargetError> {
        let mut cmd = Command::new("smbclient");
        cmd.arg(format!("//{}/{}", self.server, self.service));
        let auth = match &self.login {
            Login::Anonymous => {
                cmd.arg("-N");
                AuthFile(None)
            }
            Login::Password { username, password } => {
                std::fs::create_dir_all(&self.scratch)
                    .map_err(|e| TargetError::io("cannot create", &self.scratch, &e))?;
                let path =
                    self.scratch
                        .join(format!("smb-auth-{}-{}", std::process::id(), rand_suffix()));
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| TargetError::io("cannot create", &path, &e))?;
                let guard = AuthFile(Some(path.clone()));
                let mut text = format!("username={username}\npassword={password}\n");
                if let Some(domain) = &self.domain {
                    text.push_str(&format!("domain={domain}\n"));
                }
                file.write_all(text.as_bytes())
                    .map_err(|e| TargetError::io("cannot write", &path, &e))?;
                cmd.arg("-A").arg(&path);
                guard
            }
        };
        if let Some(domain) = &self.domain {
            cmd.arg("-W").arg(domain);
        }
        if let Some(protocol) = self.protocol {
            cmd.arg(format!("--option=client min protocol={protocol}"));
            cmd.arg(format!("--option=client max protocol={protocol}"));
        }
        // smbclient reads no configuration of the host that could redirect it elsewhere.
        cmd.env("LC_ALL", "C");
        Ok((cmd, auth))
    }

    fn failed(&self, what: &str, stderr: &[u8], stdout: &[u8]) -> TargetError {
        let mut why = tail(stderr);
        if why.is_empty() {
            why = tail(stdout);
        }
        TargetError(format!(
            "{what} //{}/{} failed: {why}",
            self.server, self.service
        ))
    }

    /// Logs in and lists the target directory's parent (the share root): reachable, and the
    /// credentials are accepted.
    pub fn check(&self) -> Result<(), TargetError> {
        let (mut cmd, _auth) = self.command()?;
        let out = cmd
            .args(["-c", "ls"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| TargetError(format!("cannot run smbclient: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(self.failed("connecting to", &out.stderr, &out.stdout))
        }
    }

    pub fn put(&self, items: &[Item]) -> Result<(), TargetError> {
        let (mut cmd, _auth) = self.command()?;
        let mut child = cmd
            .args(["-Tx", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| TargetError(format!("cannot run smbclient: {e}")))?;
        let (stdout, stderr) = match (child.stdout.take(), child.stderr.take()) {
            (Some(o), Some(e)) => (drain(o), drain(e)),
            _ => return Err(TargetError("smbclient has no output pipes".into())),
        };
        let written = match child.stdin.take() {
            Some(stdin) => write_tar(stdin, items, |r| self.full(r)),
            None => Err(TargetError("smbclient has no input pipe".into())),
        };
        let status = child
            .wait()
            .map_err(|e| TargetError(format!("smbclient: {e}")))?;
        let (stdout, stderr) = (
            stdout.join().unwrap_or_default(),
            stderr.join().unwrap_or_default(),
        );
        if !status.success() {
            return Err(self.failed("writing to", &stderr, &stdout));
        }
        written
    }

    pub fn read_back(&self, remotes: &[String]) -> Result<HashMap<String, Digest>, TargetError> {
        let (mut cmd, _auth) = self.command()?;
        cmd.args(["-Tc", "-"]);
        for remote in remotes {
            cmd.arg(self.full(remote));
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| TargetError(format!("cannot run smbclient: {e}")))?;
        let stderr = match child.stderr.take() {
            Some(e) => drain(e),
            None => return Err(TargetError("smbclient has no error pipe".into())),
        };
        let wanted: HashMap<String, &String> = remotes.iter().map(|r| (self.full(r), r)).collect();
        let mut out = HashMap::new();
        let parsed = match child.stdout.take() {
            Some(stdout) => read_tar(stdout, |path, entry| {
                if let Some(remote) = wanted.get(path) {
                    out.insert((*remote).clone(), digest(entry)?);
                }
                Ok(())
            }),
            None => Err(std::io::Error::other("smbclient has no output pipe")),
        };
        let status = child
            .wait()
            .map_err(|e| TargetError(format!("smbclient: {e}")))?;
        let stderr = stderr.join().unwrap_or_default();
        if let Err(e) = parsed {
            return Err(TargetError(format!(
                "reading back from //{}/{}: {e} ({})",
                self.server,
                self.service,
                tail(&stderr)
            )));
        }
        // Files that are missing make smbclient fail, but what it did read is still reported:
        // the caller compares every file it asked for.
        if !status.success() && out.is_empty() && !remotes.is_empty() {
            return Err(self.failed("reading from", &stderr, &[]));
        }
        Ok(out)
    }

    pub fn open(&self, remote: &str) -> Result<Box<dyn Read + Send>, TargetError> {
        let (mut cmd, auth) = self.command()?;
        let mut child = cmd
            .args(["-Tc", "-"])
            .arg(self.full(remote))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| TargetError(format!("cannot run smbclient: {e}")))?;
        let stderr = match child.stderr.take() {
            Some(e) => drain(e),
            None => return Err(TargetError("smbclient has no error pipe".into())),
        };
        let Some(mut stdout) = child.stdout.take() else {
            return Err(TargetError("smbclient has no output pipe".into()));
        };
        match first_file(&mut stdout) {
            Ok(Some(size)) => Ok(Box::new(Download {
                data: stdout.take(size),
                child,
                _auth: auth,
            })),
            Ok(None) => {
                let _ = child.wait();
                Err(self.failed(
                    &format!("reading {remote} from"),
                    &stderr.join().unwrap_or_default(),
                    &[],
                ))
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(TargetError(format!("reading {remote}: {e}")))
            }
        }
    }
}

/// One archived file as smbclient sends it; the child is reaped when dropped.
struct Download {
    data: std::io::Take<ChildStdout>,
    child: Child,
    _auth: AuthFile,
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.data.read(buf)
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn rand_suffix() -> u64 {
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

/// Writes the items as a tar stream (paths through `name`).
fn write_tar(
    sink: impl std::io::Write,
    items: &[Item],
    name: impl Fn(&str) -> String,
) -> Result<(), TargetError> {
    let mut builder = tar::Builder::new(sink);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    for item in items {
        let file =
            File::open(&item.local).map_err(|e| TargetError::io("cannot read", &item.local, &e))?;
        let size = file
            .metadata()
            .map_err(|e| TargetError::io("cannot read", &item.local, &e))?
            .len();
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(0o640);
        header.set_mtime(now);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, name(&item.remote), file)
            .map_err(|e| TargetError(format!("sending {}: {e}", item.remote)))?;
    }
    builder
        .into_inner()
        .and_then(|mut s| s.flush())
        .map_err(|e| TargetError(format!("sending the batch: {e}")))
}

/// Calls `each` with the path (without a leading `./`) and contents of every file in a tar
/// stream.
fn read_tar(
    source: impl Read,
    mut each: impl FnMut(&str, &mut dyn Read) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut archive = tar::Archive::new(source);
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry.path()?.to_string_lossy().into_owned();
        let path = path.trim_start_matches("./").to_string();
        each(&path, &mut entry)?;
    }
    Ok(())
}

/// Reads tar headers up to the first regular file; returns its size (`None` at the end of
/// the stream). What follows in `source` is then that file's contents.
fn first_file(source: &mut impl Read) -> std::io::Result<Option<u64>> {
    let mut header = [0u8; 512];
    loop {
        if let Err(e) = source.read_exact(&mut header) {
            return if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Ok(None)
            } else {
                Err(e)
            };
        }
        if header.iter().all(|&b| b == 0) {
            return Ok(None);
        }
        let size = octal(&header[124..136])?;
        match header[156] {
            b'0' | 0 => return Ok(Some(size)),
            _ => {
                // Long names, extended headers, directories: skip their data (padded to 512).
                let padded = size.div_ceil(512) * 512;
                std::io::copy(&mut source.take(padded), &mut std::io::sink())?;
            }
        }
    }
}

fn octal(field: &[u8]) -> std::io::Result<u64> {
    let text = std::str::from_utf8(field)
        .map_err(|_| std::io::Error::other("a tar header with a bad size"))?
        .trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 8).map_err(|_| std::io::Error::other("a tar header with a bad size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tar_stream_round_trips_long_names_and_the_first_file_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let long = format!("{}/{}.trail", "d".repeat(120), "k".repeat(40));
        let mut items = Vec::new();
        for (i, name) in ["a/one.trail", long.as_str()].iter().enumerate() {
            let local = dir.path().join(format!("f{i}"));
            std::fs::write(&local, vec![i as u8 + 1; 1000 * (i + 1)]).unwrap();
            items.push(Item {
                local,
                remote: (*name).to_string(),
            });
        }
        let mut stream = Vec::new();
        write_tar(&mut stream, &items, |r| format!("pre/{r}")).unwrap();

        let mut seen = HashMap::new();
        read_tar(&stream[..], |path, data| {
            seen.insert(path.to_string(), digest(data)?);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[&format!("pre/{long}")].size, 2000);
        assert_eq!(
            seen["pre/a/one.trail"],
            digest(&vec![1u8; 1000][..]).unwrap()
        );

        let mut source = &stream[..];
        assert_eq!(first_file(&mut source).unwrap(), Some(1000));
        assert_eq!(first_file(&mut &[0u8; 1024][..]).unwrap(), None);
        assert_eq!(first_file(&mut &b""[..]).unwrap(), None);
    }

    #[test]
    fn shares_with_directories_and_versions_map_to_smbclient() {
        let config: TargetConfig = serde_json::from_value(serde_json::json!({
            "type": "smb",
            "server": {"selection": "ip", "value": "127.0.0.9"},
            "share": "archive/custos",
            "path": "trails",
            "protocol_version": "3.1.1",
            "authentication": {"selection": "anonymous"}
        }))
        .unwrap();
        let smb = Smb::from_config(&config, "127.0.0.9".into(), Path::new("/tmp")).unwrap();
        assert_eq!(smb.service, "archive");
        assert_eq!(smb.share_and_path(), "archive/custos/trails");
        assert_eq!(smb.full("x.trail"), "custos/trails/x.trail");
        assert_eq!(smb.protocol, Some("SMB3_11"));
        assert_eq!(protocol_name("9"), None);
    }
}
