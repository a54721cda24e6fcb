//! Benchmark of archive jobs (`custos-retention`), not a CI test. Run `bench/archive.sh` (it
//! builds the release binary first); the defaults are the issue's: 100,000 small trails
//! (2–8 KiB, random sizes) and 4 large ones (256 MiB), to an SMB share (a real `smbd` on its
//! own loopback address) and to an NFS-style directory target. Needs root and samba.
//!
//! For each scenario and target, in one run on one machine, the same files (random bytes,
//! incompressible) are copied
//! - by the tools directly, the reference: `tar | smbclient -Tx` (smbclient's bulk mode), the
//!   same followed by `smbclient -Tc` reading the copies back, tar mode with 1 MiB blocks
//!   (`-Txb 2048`; the default is 10 KiB), `smbclient mput` (one session, a create/write/close
//!   per file), and `--parallel-batches` `mput`s side by side (as many sessions as the job);
//!   `rsync -a`, `cp -r`, `rsync -a --fsync`;
//! - by Custos: one job of an archive/cleanup policy (`Retention::run_policy`) over session
//!   records in a fresh store whose trails are those files (hard links, so the source outlives
//!   the job's deletes), from the call to its return.
//!
//! The ratio is reference time / Custos time (the issue's target: >= 0.8; above 1 Custos is
//! faster). Custos reads every copy back from the target and compares its BLAKE3 digest before
//! it deletes anything, so it moves twice the bytes over the target; on the directory target
//! it also flushes every file (and its directory) to disk, which `rsync -a` and `cp` do not.
//! Every copy is checked (file count and bytes) before its time counts.

mod custos;
mod files;
mod reference;

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use custos_bench_support::WorkDir;
use custos_testkit::samba::{SMB_PASSWORD, SMB_USER, Smbd};

use crate::files::Source;
use crate::reference::{Logs, SmbServer};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Small,
    Large,
    All,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TargetKind {
    Smb,
    Nfs,
    All,
}

#[derive(Parser)]
#[command(
    about = "Benchmark of archive jobs: Custos vs smbclient, rsync and cp copying the same trails"
)]
struct Options {
    /// Trails in the small scenario.
    #[arg(long, default_value_t = 100_000)]
    small_count: usize,
    /// Smallest small trail, KiB (sizes are uniformly random in [min, max]).
    #[arg(long, default_value_t = 2)]
    small_min_kib: u64,
    /// Largest small trail, KiB.
    #[arg(long, default_value_t = 8)]
    small_max_kib: u64,
    /// Trails in the large scenario.
    #[arg(long, default_value_t = 4)]
    large_count: usize,
    /// Size of each large trail, MiB.
    #[arg(long, default_value_t = 256)]
    large_mib: u64,
    #[arg(long, value_enum, default_value = "all")]
    scenario: Scenario,
    #[arg(long, value_enum, default_value = "all")]
    target: TargetKind,
    /// Trails per batch of the job (the engine's `Options::batch_files`).
    #[arg(long, default_value_t = 256)]
    batch_files: usize,
    /// Batches of the job under way at once (the engine's `Options::parallel_batches`); also
    /// the number of `smbclient mput` run side by side in the parallel reference.
    #[arg(long, default_value_t = 4)]
    parallel_batches: usize,
    /// Give up `smbclient mput` after this many seconds (0: do not run it).
    #[arg(long, default_value_t = 600)]
    mput_limit_secs: u64,
    /// Leave the share's case handling at Samba's default (`case sensitive = auto`): every file
    /// created then costs a scan of its directory, quadratic in the files per directory. By
    /// default the share is set `case sensitive = yes`, Samba's setting for large directories.
    #[arg(long)]
    smb_default_case: bool,
    /// Time every smbclient the job runs (a wrapper script in front of it on PATH), to split
    /// the job's time into SMB transfer and the rest. Adds two `date` runs per smbclient.
    #[arg(long)]
    trace_smbclient: bool,
    /// Working directory (new or empty; deleted at the end unless --keep). Default: a new
    /// directory under /work.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the working directory.
    #[arg(long)]
    keep: bool,
    /// Seed of the file names, sizes and contents.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// One line of the table: a reference against the Custos job of the same scenario and target.
struct Row {
    scenario: &'static str,
    target: &'static str,
    files: usize,
    bytes: u64,
    reference: String,
    /// `Err(why)` when the reference was not measured.
    reference_time: Result<Duration, String>,
    custos: Option<Duration>,
}

/// Where the time of one job went.
struct JobLine {
    scenario: &'static str,
    target: &'static str,
    measured: custos::Measured,
    smbclient: Option<Phases>,
}

/// Time inside smbclient, per kind of run, from the wrapper's log.
#[derive(Default)]
struct Phases {
    put: (u32, Duration),
    read_back: (u32, Duration),
    other: (u32, Duration),
}

/// Installs `<dir>/bin/smbclient`, which times the real one into `<dir>/smbclient.log`.
fn smbclient_wrapper(dir: &Path, real: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin)?;
    let log = dir.join("smbclient.log");
    let script = bin.join("smbclient");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
start=$(date +%s%N)
{real} "$@"
rc=$?
end=$(date +%s%N)
mode=other
for a in "$@"; do case "$a" in -Tx) mode=put;; -Tc) mode=read_back;; put\ *) mode=put;; get\ *) mode=read_back;; esac; done
echo "$mode $start $end" >> {log}
exit $rc
"#,
            real = real.display(),
            log = log.display()
        ),
    )?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    Ok((bin, log))
}

/// Reads and empties the wrapper's log.
fn phases(log: &Path) -> anyhow::Result<Phases> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    std::fs::write(log, "")?;
    let mut out = Phases::default();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(mode), Some(start), Some(end)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (start, end): (u64, u64) = (start.parse()?, end.parse()?);
        let slot = match mode {
            "put" => &mut out.put,
            "read_back" => &mut out.read_back,
            _ => &mut out.other,
        };
        slot.0 += 1;
        slot.1 += Duration::from_nanos(end.saturating_sub(start));
    }
    Ok(out)
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    if options.small_count == 0
        || options.large_count == 0
        || options.large_mib == 0
        || options.batch_files == 0
        || options.parallel_batches == 0
        || options.small_min_kib == 0
        || options.small_min_kib > options.small_max_kib
    {
        bail!("counts, sizes and --batch-files must be positive, and min <= max");
    }
    let work = WorkDir::prepare(
        options.dir.as_deref(),
        options.keep,
        "custos-archive-bench-",
    )?;
    let smbclient = files::which("smbclient")?;
    files::which("rsync")?;
    let trace = if options.trace_smbclient {
        let (bin, log) = smbclient_wrapper(&work.path, &smbclient)?;
        let path = std::env::var_os("PATH").unwrap_or_default();
        let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&path)))?;
        // SAFETY: no other thread exists yet (the runtime is started below).
        unsafe { std::env::set_var("PATH", path) };
        Some(log)
    } else {
        None
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(&options, &work.path, &smbclient, trace.as_deref()))
}

async fn run(
    options: &Options,
    work: &Path,
    smbclient: &Path,
    trace: Option<&Path>,
) -> anyhow::Result<()> {
    let scenarios: Vec<&'static str> = match options.scenario {
        Scenario::Small => vec!["small"],
        Scenario::Large => vec!["large"],
        Scenario::All => vec!["small", "large"],
    };
    let targets: Vec<&'static str> = match options.target {
        TargetKind::Smb => vec!["smb"],
        TargetKind::Nfs => vec!["nfs"],
        TargetKind::All => vec!["smb", "nfs"],
    };
    // The largest set on disk at once: the source and two copies (block-rounded), plus room.
    let small_bytes = options.small_count as u64 * (options.small_max_kib + 4) * 1024;
    let large_bytes = (options.large_count as u64 * options.large_mib) << 20;
    let need = 3 * small_bytes.max(large_bytes) + (1 << 30);
    let free = files::free_space(work)?;
    if free < need {
        bail!(
            "{:.1} GB free at {}, and the run may need {:.1} GB: give --dir on a larger disk or smaller scenarios",
            free as f64 / 1e9,
            work.display(),
            need as f64 / 1e9
        );
    }

    println!("machine:   {}", custos_bench_support::machine());
    println!(
        "command:   {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!(
        "tools:     {}; {}; {}",
        files::version(smbclient),
        files::version(Path::new("rsync")),
        files::version(Path::new("tar"))
    );
    println!("directory: {}", work.display());
    println!("load:      {} (1, 5, 15 min) at the start", files::load());
    println!(
        "batch:     {} trails per batch, {} batches at once",
        options.batch_files, options.parallel_batches
    );

    let logs = Logs(work.join("logs"));
    let smbd = if targets.contains(&"smb") {
        let smbd = Smbd::start(&work.join("smb"));
        if !options.smb_default_case {
            case_sensitive(&work.join("smb"))?;
        }
        let auth = work.join("smb-auth");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&auth)?;
        file.write_all(format!("username={SMB_USER}\npassword={SMB_PASSWORD}\n").as_bytes())?;
        let server = SmbServer {
            smbclient: smbclient.to_path_buf(),
            ip: smbd.ip.to_string(),
            auth,
        };
        println!(
            "smbd:      //{}/archive -> {} ({})",
            smbd.ip,
            smbd.archive_dir.display(),
            if options.smb_default_case {
                "Samba's default case handling"
            } else {
                "case sensitive = yes"
            }
        );
        Some((smbd, server))
    } else {
        None
    };

    let mut rows = Vec::new();
    let mut jobs = Vec::new();
    for scenario in scenarios {
        eprintln!("{scenario}: writing the source files …");
        let source = if scenario == "small" {
            files::generate(
                &work.join(scenario).join("src"),
                options.small_count,
                options.small_min_kib * 1024..=options.small_max_kib * 1024,
                options.seed,
            )?
        } else {
            let size = options.large_mib << 20;
            files::generate(
                &work.join(scenario).join("src"),
                options.large_count,
                size..=size,
                options.seed,
            )?
        };
        for &target in &targets {
            let first = rows.len();
            let row = |reference: &str, time: Result<Duration, String>| Row {
                scenario,
                target,
                files: source.trails.len(),
                bytes: source.bytes,
                reference: reference.to_string(),
                reference_time: time,
                custos: None,
            };
            let measured = if target == "smb" {
                let (smbd, server) = smbd.as_ref().context("smbd is not running")?;
                for (name, time) in smb_references(options, scenario, &source, smbd, server, &logs)?
                {
                    rows.push(row(&name, time));
                }
                eprintln!("{scenario}/{target}: Custos …");
                custos::run(
                    &work.join(scenario).join("custos-smb"),
                    &source,
                    &custos::Target::Smb {
                        ip: &server.ip,
                        share_dir: &smbd.archive_dir,
                        dest: &format!("custos-{scenario}"),
                    },
                    options.batch_files,
                    options.parallel_batches,
                )
                .await?
            } else {
                for (name, time) in nfs_references(work, scenario, &source, &logs)? {
                    rows.push(row(&name, time));
                }
                eprintln!("{scenario}/{target}: Custos …");
                custos::run(
                    &work.join(scenario).join("custos-nfs"),
                    &source,
                    &custos::Target::Nfs {
                        root: &work.join("nfs"),
                        dest: &format!("custos-{scenario}"),
                    },
                    options.batch_files,
                    options.parallel_batches,
                )
                .await?
            };
            eprintln!(
                "{scenario}/{target}: Custos {:.2} s (setup {:.1} s)",
                measured.elapsed.as_secs_f64(),
                measured.setup.as_secs_f64()
            );
            for r in &mut rows[first..] {
                r.custos = Some(measured.elapsed);
            }
            let smbclient = match trace {
                Some(log) if target == "smb" => Some(phases(log)?),
                _ => None,
            };
            jobs.push(JobLine {
                scenario,
                target,
                measured,
                smbclient,
            });
        }
        files::remove(&work.join(scenario))?;
    }
    print_table(&rows);
    print_jobs(&jobs, options.batch_files);
    println!();
    println!(
        "load:      {} (1, 5, 15 min) at the end; other work on this machine shares its cores",
        files::load()
    );
    Ok(())
}

/// The blocking factor of the second tar reference (512-byte units: 1 MiB).
const TAR_BLOCKS: u32 = 2048;

/// Sets the `archive` share of the smbd in `dir` (`Smbd::start`) `case sensitive = yes` and has
/// smbd reload its configuration. With Samba's default, creating a file whose name is not
/// found as given makes smbd read the whole directory for a name that differs only in case,
/// so writing n files into one directory costs O(n²): in a first run, 100,000 files into one
/// directory had smbd at 100% of a core and only 51,000 written after 10 minutes.
fn case_sensitive(dir: &Path) -> anyhow::Result<()> {
    let conf = dir.join("samba/smb.conf");
    let text = std::fs::read_to_string(&conf)?;
    if !text.contains("[archive]\n") {
        bail!("{} has no [archive] share", conf.display());
    }
    std::fs::write(
        &conf,
        text.replace("[archive]\n", "[archive]\n  case sensitive = yes\n"),
    )?;
    let pid_file = dir.join("samba/pid/smbd.pid");
    let pid = std::fs::read_to_string(&pid_file)
        .with_context(|| format!("reading {}", pid_file.display()))?;
    let status = Command::new("kill")
        .args(["-HUP", pid.trim()])
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!(
            "could not make smbd {} reload its configuration",
            pid.trim()
        );
    }
    Ok(())
}

/// The SMB references, each to a fresh directory of the share.
fn smb_references(
    options: &Options,
    scenario: &str,
    source: &Source,
    smbd: &Smbd,
    server: &SmbServer,
    logs: &Logs,
) -> anyhow::Result<Vec<(String, Result<Duration, String>)>> {
    let mut out = Vec::new();
    let dest = format!("ref-tar-{scenario}");
    let local = smbd.archive_dir.join(&dest);
    std::fs::create_dir_all(&local)?;
    files::sync()?;
    eprintln!("{scenario}/smb: tar | smbclient -Tx …");
    let put = reference::smb_tar_put(server, &source.dir, &dest, None, logs)?;
    files::expect_copy(&local, source, "tar | smbclient -Tx")?;
    eprintln!("{scenario}/smb: smbclient -Tc …");
    let (get, streamed) = reference::smb_tar_get(server, &dest, logs)?;
    if streamed < source.bytes {
        bail!(
            "smbclient -Tc streamed {streamed} bytes, less than the {} of the files",
            source.bytes
        );
    }
    files::remove(&local)?;
    out.push(("tar | smbclient -Tx".to_string(), Ok(put)));
    out.push((
        "same, then smbclient -Tc (read back)".to_string(),
        Ok(put + get),
    ));

    let dest = format!("ref-tarb-{scenario}");
    let local = smbd.archive_dir.join(&dest);
    std::fs::create_dir_all(&local)?;
    files::sync()?;
    eprintln!("{scenario}/smb: tar | smbclient -Txb {TAR_BLOCKS} …");
    let put = reference::smb_tar_put(server, &source.dir, &dest, Some(TAR_BLOCKS), logs)?;
    files::expect_copy(&local, source, "tar | smbclient -Txb")?;
    files::remove(&local)?;
    out.push((
        format!("tar | smbclient -Txb {TAR_BLOCKS} (1 MiB blocks)"),
        Ok(put),
    ));

    let dest = format!("ref-mput-{scenario}");
    let limit = Duration::from_secs(options.mput_limit_secs);
    let name = "smbclient mput".to_string();
    if limit.is_zero() {
        out.push((name, Err("not run (--mput-limit-secs 0)".into())));
        return Ok(out);
    }
    let local = smbd.archive_dir.join(&dest);
    std::fs::create_dir_all(&local)?;
    files::sync()?;
    eprintln!("{scenario}/smb: smbclient mput …");
    match reference::smb_mput(server, &source.dir, &dest, limit, logs)? {
        Some(time) => {
            files::expect_copy(&local, source, "smbclient mput")?;
            out.push((name, Ok(time)));
        }
        None => out.push((
            name,
            Err(format!("skipped: over {} s", options.mput_limit_secs)),
        )),
    }
    files::remove(&local)?;

    let n = options.parallel_batches;
    let name = format!("{n} × smbclient mput side by side");
    let dest = format!("ref-pmput-{scenario}");
    let local = smbd.archive_dir.join(&dest);
    std::fs::create_dir_all(&local)?;
    let parts = files::split(source, &source.dir.with_extension("split"), n)?;
    files::sync()?;
    eprintln!("{scenario}/smb: {name} …");
    match reference::smb_mput_parallel(server, &parts, &dest, limit, logs)? {
        Some(time) => {
            files::expect_copy(&local, source, &name)?;
            out.push((name, Ok(time)));
        }
        None => out.push((
            name,
            Err(format!("skipped: over {} s", options.mput_limit_secs)),
        )),
    }
    files::remove(&local)?;
    files::remove(&source.dir.with_extension("split"))?;
    Ok(out)
}

/// The directory references, each to a fresh directory.
fn nfs_references(
    work: &Path,
    scenario: &str,
    source: &Source,
    logs: &Logs,
) -> anyhow::Result<Vec<(String, Result<Duration, String>)>> {
    let base = work.join(scenario).join("ref-nfs");
    let mut out = Vec::new();
    let cases: [(&str, &str, &[&str]); 3] = [
        ("rsync -a", "rsync", &["-a"]),
        ("cp -r", "cp", &["-r"]),
        ("rsync -a --fsync", "rsync", &["-a", "--fsync"]),
    ];
    for (i, (name, program, flags)) in cases.into_iter().enumerate() {
        let dest = base.join(format!("copy-{i}"));
        std::fs::create_dir_all(&base)?;
        let mut cmd = Command::new(program);
        cmd.args(flags);
        if program == "rsync" {
            // `src/ dst/`: the contents of src into dst.
            cmd.arg(format!("{}/", source.dir.display()))
                .arg(format!("{}/", dest.display()));
        } else {
            cmd.arg(&source.dir).arg(&dest);
        }
        files::sync()?;
        eprintln!("{scenario}/nfs: {name} …");
        let time = reference::run(cmd, &format!("{scenario}-copy-{i}"), logs)?;
        files::expect_copy(&dest, source, name)?;
        files::remove(&dest)?;
        out.push((name.to_string(), Ok(time)));
    }
    Ok(out)
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mb_per_s(bytes: u64, time: Duration) -> f64 {
    bytes as f64 / 1e6 / time.as_secs_f64()
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<8} {:<6} {:>9} {:>9}  {:<42} {:>9} {:>8}  {:>9} {:>8}  {:>6}",
        "scenario",
        "target",
        "files",
        "MB",
        "reference",
        "ref s",
        "ref MB/s",
        "Custos s",
        "MB/s",
        "ratio"
    );
    for r in rows {
        let custos = r.custos.unwrap_or_default();
        let (ref_s, ref_rate, ratio) = match &r.reference_time {
            Ok(t) => (
                format!("{:.2}", t.as_secs_f64()),
                format!("{:.1}", mb_per_s(r.bytes, *t)),
                format!("{:.2}", t.as_secs_f64() / custos.as_secs_f64()),
            ),
            Err(why) => (why.clone(), "-".into(), "-".into()),
        };
        println!(
            "{:<8} {:<6} {:>9} {:>9.1}  {:<42} {:>9} {:>8}  {:>9.2} {:>8.1}  {:>6}",
            r.scenario,
            r.target,
            thousands(r.files as u64),
            r.bytes as f64 / 1e6,
            r.reference,
            ref_s,
            ref_rate,
            custos.as_secs_f64(),
            mb_per_s(r.bytes, custos),
            ratio
        );
    }
    println!();
    println!(
        "MB = 10^6 bytes of trail data; ratio = reference s / Custos s (>= 0.8 is the target; > 1: Custos faster)."
    );
    println!(
        "Custos's time is one archive job from start to return: per batch it journals, hashes the local files, copies them,"
    );
    println!(
        "reads every copy back from the target and compares BLAKE3 (so 2x the MB cross the target), saves the batch's records,"
    );
    println!(
        "deletes the local files and flushes the trail directory; a few batches at once (one smbclient session per batch and"
    );
    println!(
        "direction). On the directory (nfs) target it also flushes the files (one syncfs per batch) and their directories;"
    );
    println!(
        "`rsync -a --fsync` is the reference that flushes too. `N × smbclient mput side by side` uses as many SMB sessions"
    );
    println!("as the job: what the target can take, written once and never read back.");
}

fn print_jobs(jobs: &[JobLine], batch_files: usize) {
    println!();
    println!("where the job's time went (batches of {batch_files}):");
    println!(
        "{:<8} {:<6} {:>9} {:>11} {:>9} {:>21} {:>21} {:>15} {:>9}  {:>9}",
        "scenario",
        "target",
        "job s",
        "saves s",
        "ms/save",
        "smbclient put s (n)",
        "smbclient get s (n)",
        "other smb s (n)",
        "rest s",
        "setup s"
    );
    for j in jobs {
        let m = &j.measured;
        let per_save = if m.save_count > 0 {
            m.saves.as_secs_f64() * 1e3 / m.save_count as f64
        } else {
            0.0
        };
        let (put, get, other, rest) = match &j.smbclient {
            Some(p) => (
                format!("{:.2} ({})", p.put.1.as_secs_f64(), p.put.0),
                format!("{:.2} ({})", p.read_back.1.as_secs_f64(), p.read_back.0),
                format!("{:.2} ({})", p.other.1.as_secs_f64(), p.other.0),
                format!(
                    "{:.2}",
                    (m.elapsed
                        .saturating_sub(m.saves + p.put.1 + p.read_back.1 + p.other.1))
                    .as_secs_f64()
                ),
            ),
            None => (
                "-".into(),
                "-".into(),
                "-".into(),
                format!("{:.2}", m.elapsed.saturating_sub(m.saves).as_secs_f64()),
            ),
        };
        println!(
            "{:<8} {:<6} {:>9.2} {:>11.2} {:>9.3} {:>21} {:>21} {:>15} {:>9}  {:>9.1}",
            j.scenario,
            j.target,
            m.elapsed.as_secs_f64(),
            m.saves.as_secs_f64(),
            per_save,
            put,
            get,
            other,
            rest,
            m.setup.as_secs_f64()
        );
    }
    println!(
        "saves: the records saved through the SessionStore (one SQLite transaction per batch, synchronous=FULL);"
    );
    println!(
        "smbclient columns only with --trace-smbclient: the time of every run added up (batches overlap, so the sum"
    );
    println!(
        "can exceed the job's time); rest: the job's time minus saves and smbclient (journal, hashing, directory"
    );
    println!(
        "copies and fsyncs on nfs, deletes); setup (not timed): linking the trails and saving the records before the job."
    );
}
