//! SMB targets, through Samba's `smbclient` (the SMB protocol itself: nothing is mounted).
//!
//! A batch of trails is copied by command lists (`put` per file, `get … -` per file to read
//! back), so a batch costs one SMB session each way however many files it holds; one request
//! per file in a session is faster than smbclient's tar mode, which writes 10 KiB per request
//! and queries the directory for every listed path. Tar mode (`-Tc`) remains for reading back
//! what the fast path could not confirm, and for downloads. The password goes to `smbclient`
//! in an authentication file readable only by this process's user, never on a command line.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use custos_config::objects::retention::Target as TargetConfig;

use super::{Digest, Item, PrivateFile, TargetError, digest};

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
    /// Directories made on the share by this target so far (it lives for one job).
    made_dirs: std::sync::Mutex<HashSet<String>>,
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

/// Starts smbclient with no input; returns it, its output, and its error output being
/// collected on a thread.
fn spawn_reading(
    cmd: &mut Command,
) -> Result<(Child, ChildStdout, std::thread::JoinHandle<Vec<u8>>), TargetError> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| TargetError(format!("cannot run smbclient: {e}")))?;
    match (child.stdout.take(), child.stderr.take()) {
        (Some(stdout), Some(stderr)) => Ok((child, stdout, drain(stderr))),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            Err(TargetError("smbclient has no output pipes".into()))
        }
    }
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
            made_dirs: std::sync::Mutex::new(HashSet::new()),
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
    fn command(&self) -> Result<(Command, Option<PrivateFile>), TargetError> {
        let mut cmd = Command::new("smbclient");
        cmd.arg(format!("//{}/{}", self.server, self.service));
        let auth = match &self.login {
            Login::Anonymous => {
                cmd.arg("-N");
                None
            }
            Login::Password { username, password } => {
                let mut text = format!("username={username}\npassword={password}\n");
                if let Some(domain) = &self.domain {
                    text.push_str(&format!("domain={domain}\n"));
                }
                let file = PrivateFile::create(&self.scratch, "smb-auth", &text)?;
                cmd.arg("-A").arg(file.path());
                Some(file)
            }
        };
        if let Some(domain) = &self.domain {
            cmd.arg("-W").arg(domain);
        }
        if let Some(protocol) = self.protocol {
            cmd.arg(format!("--option=client min protocol={protocol}"));
            cmd.arg(format!("--option=client max protocol={protocol}"));
        }
        // Level 1 makes smbclient report each file it reads back (`get`), which `read_back`
        // checks; the host's smb.conf could otherwise silence it.
        cmd.arg("--debuglevel=1");
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

    /// Copies the items, one `put` per file in command lists (one SMB session per list),
    /// creating their directories first. Returns what the server refused (smbclient goes on
    /// after a refused file; the read-back decides what was copied).
    pub fn put(&self, items: &[Item]) -> Result<Vec<String>, TargetError> {
        // Directories this target made earlier in the job are not made again (each `mkdir` is
        // a round trip); if one vanished since, its files fail the read-back and stay local.
        let mut made = self
            .made_dirs
            .lock()
            .map_err(|_| TargetError("the SMB target's state is poisoned".into()))?
            .clone();
        let mut commands: Vec<Vec<String>> = vec![Vec::new()];
        for item in items {
            let full = self.full(&item.remote);
            let mut at = 0;
            while let Some(slash) = full[at..].find('/') {
                let dir = &full[..at + slash];
                if made.insert(dir.to_string()) {
                    commands[0].push(format!("mkdir {}", quoted(dir)?));
                }
                at += slash + 1;
            }
        }
        // Local files are named relative to their directory (the child runs there), so that
        // the data directory's own path never has to pass smbclient's command parser.
        let mut dirs: Vec<PathBuf> = Vec::new();
        for item in items {
            let (Some(dir), Some(name)) = (item.local.parent(), item.local.file_name()) else {
                return Err(TargetError(format!(
                    "{} is not a file path",
                    item.local.display()
                )));
            };
            let command = format!(
                "put {} {}",
                quoted(&name.to_string_lossy())?,
                quoted(&self.full(&item.remote))?
            );
            match dirs.last() {
                Some(d) if d == dir => {}
                None => dirs.push(dir.to_path_buf()),
                Some(_) => {
                    dirs.push(dir.to_path_buf());
                    commands.push(Vec::new());
                }
            }
            if let Some(last) = commands.last_mut() {
                last.push(command);
            }
        }
        let mut problems = Vec::new();
        for (i, list) in commands.iter().enumerate() {
            // Directories first, in the first list (an existing one is reported as a
            // collision: not a problem).
            self.run_commands(list, dirs.get(i).map(PathBuf::as_path), &mut problems)?;
        }
        if let Ok(mut known) = self.made_dirs.lock() {
            *known = made;
        }
        Ok(problems)
    }

    /// Runs `commands` in as few smbclient sessions as the command line allows. Fails if a
    /// session could not be set up; refusals of single commands are added to `problems`.
    fn run_commands(
        &self,
        commands: &[String],
        cwd: Option<&Path>,
        problems: &mut Vec<String>,
    ) -> Result<(), TargetError> {
        for (_, list) in command_lists(commands) {
            let (mut cmd, _auth) = self.command()?;
            if let Some(dir) = cwd {
                cmd.current_dir(dir);
            }
            let out = cmd
                .arg("-c")
                .arg(&list)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| TargetError(format!("cannot run smbclient: {e}")))?;
            if !out.status.success() {
                return Err(self.failed("writing to", &out.stderr, &out.stdout));
            }
            for text in [&out.stdout, &out.stderr] {
                for line in String::from_utf8_lossy(text).lines() {
                    if line.contains("NT_STATUS_")
                        && !line.contains("NT_STATUS_OBJECT_NAME_COLLISION making remote directory")
                        && problems.len() < 20
                    {
                        problems.push(line.trim().to_string());
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads back the files (with the sizes they should have): one `get … -` per file in
    /// command lists, the contents concatenated on smbclient's standard output. smbclient
    /// reports each file it sent, with its size, on its error output; a file's digest counts
    /// only when that report and every report before it in the list match what was asked (so
    /// a missing file cannot shift another's bytes into its place). Files after a mismatch
    /// that smbclient did send are asked again, with the size it reported, a few rounds at
    /// most; a file it could not send is missing from the map.
    pub fn read_back(
        &self,
        wanted: &[(String, u64)],
    ) -> Result<HashMap<String, Digest>, TargetError> {
        const ROUNDS: usize = 4;
        let mut out = HashMap::new();
        let mut pending = wanted.to_vec();
        for _ in 0..ROUNDS {
            let commands = pending
                .iter()
                .map(|(remote, _)| Ok(format!("get {} -", quoted(&self.full(remote))?)))
                .collect::<Result<Vec<_>, TargetError>>()?;
            let mut again = Vec::new();
            let mut done = 0;
            for (count, list) in command_lists(&commands) {
                let part = &pending[done..done + count];
                done += count;
                let (confirmed, reported) = self.get_list(&list, part)?;
                for (i, (remote, _)) in part.iter().enumerate() {
                    if let Some(d) = confirmed.get(i) {
                        out.insert(remote.clone(), d.clone());
                    } else if let Some(size) = reported.get(&self.reported_name(remote)) {
                        again.push((remote.clone(), *size));
                    }
                }
            }
            if again.is_empty() || again == pending {
                break;
            }
            pending = again;
        }
        Ok(out)
    }

    /// How smbclient names a remote file in its reports.
    fn reported_name(&self, remote: &str) -> String {
        format!("\\{}", self.full(remote).replace('/', "\\"))
    }

    /// One `get` list: the digests of the confirmed prefix of `part`, and every file smbclient
    /// reported sending, with its size.
    fn get_list(
        &self,
        list: &str,
        part: &[(String, u64)],
    ) -> Result<(Vec<Digest>, HashMap<String, u64>), TargetError> {
        let (mut cmd, _auth) = self.command()?;
        let (mut child, mut stdout, stderr) = spawn_reading(cmd.arg("-c").arg(list))?;
        let mut digests = Vec::new();
        for (_, size) in part {
            match digest_exact(&mut stdout, *size) {
                Ok(Some(d)) => digests.push(d),
                _ => break,
            }
        }
        // Whatever else comes (messages of files that could not be read) is discarded.
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        let status = child
            .wait()
            .map_err(|e| TargetError(format!("smbclient: {e}")))?;
        let stderr = stderr.join().unwrap_or_default();
        if !status.success() {
            return Err(self.failed("reading from", &stderr, &[]));
        }
        let reports: Vec<(String, u64)> = String::from_utf8_lossy(&stderr)
            .lines()
            .filter_map(sent_report)
            .collect();
        let confirmed = part
            .iter()
            .zip(&digests)
            .zip(&reports)
            .take_while(|(((remote, size), _), (name, sent))| {
                *name == self.reported_name(remote) && sent == size
            })
            .count();
        digests.truncate(confirmed);
        Ok((digests, reports.into_iter().collect()))
    }

    pub fn open(&self, remote: &str) -> Result<Box<dyn Read + Send>, TargetError> {
        let (mut cmd, auth) = self.command()?;
        let (mut child, mut stdout, stderr) =
            spawn_reading(cmd.args(["-Tc", "-"]).arg(self.full(remote)))?;
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
    _auth: Option<PrivateFile>,
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

/// The longest command list given to one smbclient run (a single argument may not exceed
/// 128 KiB on Linux).
const MAX_COMMAND_LIST: usize = 96 * 1024;

/// `commands` joined into lists that fit on a command line: `(how many, list)`.
fn command_lists(commands: &[String]) -> Vec<(usize, String)> {
    let mut lists: Vec<(usize, String)> = Vec::new();
    for command in commands {
        match lists.last_mut() {
            Some((count, list)) if list.len() + 2 + command.len() <= MAX_COMMAND_LIST => {
                list.push_str("; ");
                list.push_str(command);
                *count += 1;
            }
            _ => lists.push((1, command.clone())),
        }
    }
    lists
}

/// An argument of an smbclient command, in double quotes. smbclient's `-c` splits commands at
/// every `;` and has no escape for `"`, so names with those (or control characters) cannot be
/// sent; Custos's own names never have them (see `layout`).
fn quoted(arg: &str) -> Result<String, TargetError> {
    if arg.chars().any(|c| c == '"' || c == ';' || c.is_control()) {
        return Err(TargetError(format!(
            "{arg:?} cannot be named in an smbclient command (it holds '\"', ';' or a control character)"
        )));
    }
    Ok(format!("\"{arg}\""))
}

/// `(name, size)` of an smbclient report `getting file <name> of size <size> as - (…)`.
fn sent_report(line: &str) -> Option<(String, u64)> {
    let rest = line.strip_prefix("getting file ")?;
    let at = rest.rfind(" of size ")?;
    let size = rest[at + 9..].split(' ').next()?.parse().ok()?;
    Some((rest[..at].to_string(), size))
}

/// Reads exactly `size` bytes, returning their digest; `None` if the stream ends first.
fn digest_exact(source: &mut impl Read, size: u64) -> std::io::Result<Option<Digest>> {
    let d = digest(source.take(size))?;
    Ok((d.size == size).then_some(d))
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
    use std::fs::File;

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
            let file = File::open(&item.local)
                .map_err(|e| TargetError::io("cannot read", &item.local, &e))?;
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

    #[test]
    fn the_first_file_of_a_tar_stream_is_found_past_long_names() {
        let dir = tempfile::tempdir().unwrap();
        let long = format!("{}/{}.trail", "d".repeat(120), "k".repeat(40));
        let local = dir.path().join("f");
        std::fs::write(&local, vec![7u8; 1000]).unwrap();
        let items = [Item {
            local,
            remote: long,
        }];
        let mut stream = Vec::new();
        write_tar(&mut stream, &items, |r| format!("pre/{r}")).unwrap();
        let mut source = &stream[..];
        assert_eq!(first_file(&mut source).unwrap(), Some(1000));
        assert_eq!(&source[..1000], &[7u8; 1000][..]);
        assert_eq!(first_file(&mut &[0u8; 1024][..]).unwrap(), None);
        assert_eq!(first_file(&mut &b""[..]).unwrap(), None);
    }

    #[test]
    fn smbclient_reports_and_command_lists_are_read_and_made_exactly() {
        assert_eq!(
            sent_report(r"getting file \a b\of size 3 of size 4823 as - (4709.5 KiloBytes/sec)"),
            Some((r"\a b\of size 3".to_string(), 4823))
        );
        assert_eq!(sent_report("putting file x as \\x (1 kb/s)"), None);
        assert_eq!(sent_report("getting file \\x of size many as -"), None);

        let commands: Vec<String> = (0..5000).map(|i| format!("get \"f{i:040}\" -")).collect();
        let lists = command_lists(&commands);
        assert!(lists.len() > 1);
        assert!(lists.iter().all(|(_, l)| l.len() <= MAX_COMMAND_LIST));
        assert_eq!(lists.iter().map(|(n, _)| n).sum::<usize>(), 5000);
        let rejoined: Vec<String> = lists
            .iter()
            .flat_map(|(_, l)| l.split("; ").map(str::to_string))
            .collect();
        assert_eq!(rejoined, commands);

        assert_eq!(quoted("a b/c.trail").unwrap(), "\"a b/c.trail\"");
        for bad in ["a;b", "a\"b", "a\nb", "a\tb"] {
            assert!(quoted(bad).is_err(), "{bad:?}");
        }
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
