//! The reference: the same files copied by the tools directly, timed from the first process
//! started to the last one finished. Every copy is checked afterwards (file count and bytes).

use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// What a reference needs of the SMB server.
pub struct SmbServer {
    pub smbclient: PathBuf,
    pub ip: String,
    /// smbclient's `-A` file (user name and password).
    pub auth: PathBuf,
}

impl SmbServer {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.smbclient);
        cmd.arg(format!("//{}/archive", self.ip))
            .arg("-A")
            .arg(&self.auth)
            .env("LC_ALL", "C");
        cmd
    }
}

/// Where the processes of a reference write their output (`<logs>/<name>.log`).
pub struct Logs(pub PathBuf);

impl Logs {
    fn file(&self, name: &str) -> anyhow::Result<(PathBuf, File)> {
        std::fs::create_dir_all(&self.0)?;
        let path = self.0.join(format!("{name}.log"));
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok((path, file))
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join("; ")
}

/// Waits for every child; `None` if `limit` passed first (they are killed).
fn wait_all(children: &mut [Child], limit: Option<Duration>) -> anyhow::Result<Option<()>> {
    let start = Instant::now();
    let mut failed = Vec::new();
    for child in children.iter_mut() {
        let status = match limit {
            None => child.wait()?,
            Some(limit) => loop {
                if let Some(status) = child.try_wait()? {
                    break status;
                }
                if start.elapsed() > limit {
                    for c in children.iter_mut() {
                        let _ = c.kill();
                        let _ = c.wait();
                    }
                    return Ok(None);
                }
                std::thread::sleep(Duration::from_millis(5));
            },
        };
        if !status.success() {
            failed.push(status.to_string());
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join(", "));
    }
    Ok(Some(()))
}

/// `tar cf - -C <src> . | smbclient //ip/archive -A auth -D <dest> -Tx -`: smbclient's bulk
/// mode, the one Custos uses. With `blocks` (512-byte units), smbclient reads its input in
/// blocks of that many (`-Txb n`; the default is 20, 10 KiB), and writes each file to the
/// server one such block at a time. (tar keeps its 10 KiB records: smbclient stops reading at
/// the end-of-archive marker, and a larger final record would be left unread in the pipe.)
/// `dest` (below the share) must exist.
pub fn smb_tar_put(
    smb: &SmbServer,
    src: &Path,
    dest: &str,
    blocks: Option<u32>,
    logs: &Logs,
) -> anyhow::Result<Duration> {
    let (log, out) = logs.file(&format!("smb-tar-put-{dest}"))?;
    let start = Instant::now();
    let mut tar = Command::new("tar")
        .args(["cf", "-", "-C"])
        .arg(src)
        .arg(".")
        .stdout(Stdio::piped())
        .stderr(out.try_clone()?)
        .spawn()
        .context("running tar")?;
    let stdin = tar.stdout.take().context("tar has no output pipe")?;
    // The command is dropped once spawned: it holds the pipe's read end until then.
    let client = {
        let mut client = smb.command();
        client.args(["-D", dest]);
        match blocks {
            Some(n) => client.arg("-Txb").arg(n.to_string()),
            None => client.arg("-Tx"),
        };
        client
            .arg("-")
            .stdin(stdin)
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("running smbclient")?
    };
    wait_all(&mut [tar, client], None)
        .with_context(|| format!("tar | smbclient -Tx failed: {}", tail(&log)))?;
    Ok(start.elapsed())
}

/// `smbclient //ip/archive -A auth -Tc - <dest>`: reads a directory back as a tar stream (as
/// Custos verifies); returns the time and the bytes of the stream.
pub fn smb_tar_get(smb: &SmbServer, dest: &str, logs: &Logs) -> anyhow::Result<(Duration, u64)> {
    let (log, err) = logs.file(&format!("smb-tar-get-{dest}"))?;
    let start = Instant::now();
    let mut client = smb
        .command()
        .args(["-Tc", "-", dest])
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .context("running smbclient")?;
    let mut stdout = client
        .stdout
        .take()
        .context("smbclient has no output pipe")?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    loop {
        match stdout.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    wait_all(&mut [client], None)
        .with_context(|| format!("smbclient -Tc failed: {}", tail(&log)))?;
    Ok((start.elapsed(), bytes))
}

/// `smbclient //ip/archive -A auth -D <dest> -c "prompt OFF; recurse ON; lcd <src>; mput *"`:
/// one SMB create/write/close per file. `None` if it took longer than `limit`.
pub fn smb_mput(
    smb: &SmbServer,
    src: &Path,
    dest: &str,
    limit: Duration,
    logs: &Logs,
) -> anyhow::Result<Option<Duration>> {
    smb_mput_parallel(smb, &[src.to_path_buf()], dest, limit, logs)
}

/// One `smbclient … mput *` per source directory, all at once, into the same `dest`: what the
/// target does with as many sessions as the job uses.
pub fn smb_mput_parallel(
    smb: &SmbServer,
    srcs: &[PathBuf],
    dest: &str,
    limit: Duration,
    logs: &Logs,
) -> anyhow::Result<Option<Duration>> {
    let (log, out) = logs.file(&format!("smb-mput-{}-{dest}", srcs.len()))?;
    let start = Instant::now();
    let mut children = Vec::new();
    for src in srcs {
        children.push(
            smb.command()
                .args(["-D", dest, "-c"])
                .arg(format!(
                    "prompt OFF; recurse ON; lcd {}; mput *",
                    src.display()
                ))
                .stdout(out.try_clone()?)
                .stderr(out.try_clone()?)
                .spawn()
                .context("running smbclient")?,
        );
    }
    let done = wait_all(&mut children, Some(limit))
        .with_context(|| format!("smbclient mput failed: {}", tail(&log)))?;
    Ok(done.map(|()| start.elapsed()))
}

/// Runs one command (`rsync`, `cp`) to the end.
pub fn run(mut cmd: Command, name: &str, logs: &Logs) -> anyhow::Result<Duration> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let (log, out) = logs.file(name)?;
    let start = Instant::now();
    let child = cmd
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("running {program}"))?;
    wait_all(&mut [child], None).with_context(|| format!("{program} failed: {}", tail(&log)))?;
    Ok(start.elapsed())
}
