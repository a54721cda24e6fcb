//! `custos trail verify|decrypt|replay|export` (and the older top-level `custos replay` and
//! `custos export`): reading recorded sessions offline, without a server. Encrypted trails
//! open with the auditors' private keys (`--key`, twice for a four-eyes pair).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use custos_evidence::envelope::{OpeningKey, open_data_key};
use custos_trail::{Direction, Record, TrailReader, TrailWriter, WriterOptions};

use crate::trail_report;

#[derive(clap::Subcommand)]
pub enum TrailCommand {
    /// Check a trail's hash chain, signatures and time-stamps, and say what they prove.
    /// Exit status: 0 intact and complete, 1 tampered or a seal does not verify (or is not
    /// trusted under --ca), 3 intact but incomplete (the recording was cut short).
    Verify(trail_report::VerifyArgs),
    /// Write a decrypted copy of an encrypted trail (a plain trail, no longer evidence).
    Decrypt(DecryptArgs),
    /// Play a recorded terminal session in this terminal.
    Replay(ReplayArgs),
    /// Convert a recorded session (e.g. to asciicast v2 for asciinema).
    Export(ExportArgs),
}

pub fn run(command: TrailCommand) -> anyhow::Result<()> {
    match command {
        TrailCommand::Verify(args) => trail_report::verify(args),
        TrailCommand::Decrypt(args) => decrypt(args),
        TrailCommand::Replay(args) => replay(args),
        TrailCommand::Export(args) => export(args),
    }
}

/// Private keys for encrypted trails.
#[derive(clap::Args, Clone, Default)]
pub struct KeyArgs {
    /// PEM private key of a certificate the trail was encrypted to; give two for a jointly
    /// (four-eyes) encrypted trail, or for output and keystrokes encrypted to different ones.
    #[arg(long = "key", value_name = "PEM")]
    pub keys: Vec<PathBuf>,
}

#[derive(clap::Args)]
pub struct DecryptArgs {
    /// The encrypted trail file.
    trail: PathBuf,
    /// Where to write the decrypted copy (created, never overwritten).
    #[arg(long, short)]
    output: PathBuf,
    #[command(flatten)]
    keys: KeyArgs,
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// The trail file (`<data-dir>/trails/<session key>.trail`).
    trail: PathBuf,
    /// Playback speed: 2 plays twice as fast.
    #[arg(long, default_value_t = 1.0, conflicts_with = "max")]
    speed: f64,
    /// As fast as possible, without pauses.
    #[arg(long)]
    max: bool,
    /// Longest pause, in seconds, however long the recorded idle time was.
    #[arg(long)]
    idle_limit: Option<f64>,
    /// Start here: seconds into the session (`12.5`, the `offset` of a content search hit), or
    /// a time (`2024-01-31T10:00:05Z`, the `time` of a hit).
    #[arg(long)]
    at: Option<String>,
    /// Only this channel (default: every channel's output).
    #[arg(long)]
    channel: Option<u32>,
    #[command(flatten)]
    keys: KeyArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Asciicast,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    #[arg(long, value_enum)]
    format: Format,
    /// The trail file.
    trail: PathBuf,
    /// Where to write (default: standard output).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Only this channel (default: the first terminal channel).
    #[arg(long)]
    channel: Option<u32>,
    /// Include what the client typed ("i" events). Typed passwords may be among it.
    #[arg(long)]
    input: bool,
    #[command(flatten)]
    keys: KeyArgs,
}

fn seconds_to_micros(seconds: f64) -> u64 {
    (seconds.max(0.0) * 1_000_000.0) as u64
}

fn opening_keys(args: &KeyArgs) -> anyhow::Result<Vec<OpeningKey>> {
    args.keys
        .iter()
        .map(|path| {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            OpeningKey::from_pem(&pem).with_context(|| format!("{}", path.display()))
        })
        .collect()
}

/// Opens a trail and unlocks the encrypted streams the given keys open. `needed`: streams
/// that must be readable (0: output and metadata; 1: what the client sent); the others are
/// stepped over if they stay locked.
pub fn open_with_keys(path: &Path, keys: &KeyArgs, needed: &[u8]) -> anyhow::Result<TrailReader> {
    let mut reader =
        TrailReader::open(path).with_context(|| format!("opening {}", path.display()))?;
    let opening = opening_keys(keys)?;
    let envelopes = reader.key_envelopes().to_vec();
    for key in &envelopes {
        match open_data_key(&key.envelope, &opening) {
            Ok(data_key) => reader.set_stream_key(key.stream, &data_key)?,
            Err(e) if needed.contains(&key.stream) => {
                anyhow::bail!(
                    "{} is encrypted ({}): {e}",
                    path.display(),
                    stream_name(key.stream)
                )
            }
            Err(_) => {}
        }
    }
    reader.skip_unreadable_streams();
    Ok(reader)
}

pub fn stream_name(stream: u8) -> &'static str {
    if stream == 0 {
        "stream 0: output and session metadata"
    } else {
        "stream 1: what the client sent, keystrokes and typed passwords included"
    }
}

pub fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    if !(args.speed > 0.0 && args.speed.is_finite()) {
        anyhow::bail!("--speed must be a positive number");
    }
    let mut reader = open_with_keys(&args.trail, &args.keys, &[0])?;
    let start = match &args.at {
        Some(at) => start_offset(at, reader.header())?,
        None => 0,
    };
    if start > 0 {
        reader.seek_to(start)?;
    }
    let idle_limit = args.idle_limit.map(seconds_to_micros);
    let mut previous = start;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for item in reader.records() {
        let (at, record) = item?;
        let Record::Data {
            channel,
            direction: Direction::ServerToClient,
            bytes,
            ..
        } = record
        else {
            continue;
        };
        if args.channel.is_some_and(|c| c != channel) {
            continue;
        }
        if !args.max {
            let mut pause = at.saturating_sub(previous);
            if let Some(limit) = idle_limit {
                pause = pause.min(limit);
            }
            std::thread::sleep(Duration::from_secs_f64(
                pause as f64 / 1_000_000.0 / args.speed,
            ));
        }
        previous = at;
        out.write_all(&bytes)?;
        out.flush()?;
    }
    Ok(())
}

/// `--at`: seconds into the session, or an absolute time converted with the session's start
/// time from the trail header.
fn start_offset(at: &str, header: &serde_json::Value) -> anyhow::Result<u64> {
    if let Ok(seconds) = at.trim().parse::<f64>() {
        if !(seconds >= 0.0 && seconds.is_finite()) {
            anyhow::bail!("--at must not be negative");
        }
        return Ok(seconds_to_micros(seconds));
    }
    let Some(when) = custos_search::time::parse_instant(at) else {
        anyhow::bail!("--at takes seconds into the session or an ISO 8601 time, not {at:?}");
    };
    let start = header["session"]["start_time"]
        .as_str()
        .and_then(custos_search::time::parse_instant)
        .ok_or_else(|| {
            anyhow::anyhow!("the trail header has no session start time; give --at in seconds")
        })?;
    // Both times are printed to the millisecond (the hit's and the header's start): step back by
    // the start's precision so that rounding never seeks past the moment asked for.
    if when.micros < start.micros {
        anyhow::bail!(
            "--at {at} is before the session started ({})",
            custos_search::time::iso(start.micros)
        );
    }
    let offset = when.micros - start.micros - start.span;
    Ok(u64::try_from(offset).unwrap_or(0))
}

pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    let Format::Asciicast = args.format;
    let needed: &[u8] = if args.input { &[0, 1] } else { &[0] };
    let mut reader = open_with_keys(&args.trail, &args.keys, needed)?;
    match &args.output {
        Some(path) => {
            let mut file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            custos_trail::export_asciicast(&mut reader, args.channel, args.input, &mut file)?;
            file.sync_all()?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            custos_trail::export_asciicast(&mut reader, args.channel, args.input, &mut out)?;
        }
    }
    Ok(())
}

pub fn decrypt(args: DecryptArgs) -> anyhow::Result<()> {
    let mut reader = open_with_keys(&args.trail, &args.keys, &[0, 1])?;
    let verification = reader.verify()?;
    if let Some(problem) = &verification.problem {
        anyhow::bail!(
            "{} does not verify, not decrypting it: {problem}",
            args.trail.display()
        );
    }
    let mut header = reader.header().clone();
    if let Some(map) = header.as_object_mut() {
        map.insert(
            "decrypted_from".into(),
            serde_json::json!({
                "file": args.trail.file_name().map(|n| n.to_string_lossy().into_owned()),
                "final_chain": hex::encode(verification.final_chain),
                "complete": verification.complete,
            }),
        );
    }
    let mut writer = TrailWriter::create(&args.output, &header, WriterOptions::default())
        .with_context(|| format!("creating {}", args.output.display()))?;
    let mut last = 0;
    for item in reader.records() {
        let (at, record) = item?;
        writer.append(at, &record)?;
        last = at;
    }
    let end = verification.end_micros.unwrap_or(last);
    let summary = writer.finish(end)?;
    eprintln!(
        "wrote {} ({} records); a decrypted copy is not evidence: verify the original",
        args.output.display(),
        summary.records
    );
    Ok(())
}
