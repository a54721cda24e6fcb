//! `custos replay` and `custos export`: reading recorded sessions offline, without a server.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use custos_trail::{Direction, Record, TrailReader};

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
    /// Start at this many seconds into the session.
    #[arg(long)]
    at: Option<f64>,
    /// Only this channel (default: every channel's output).
    #[arg(long)]
    channel: Option<u32>,
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
}

fn seconds_to_micros(seconds: f64) -> u64 {
    (seconds.max(0.0) * 1_000_000.0) as u64
}

pub fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    if !(args.speed > 0.0 && args.speed.is_finite()) {
        anyhow::bail!("--speed must be a positive number");
    }
    let mut reader = TrailReader::open(&args.trail)
        .with_context(|| format!("opening {}", args.trail.display()))?;
    let start = args.at.map(seconds_to_micros).unwrap_or(0);
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

pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    let Format::Asciicast = args.format;
    let mut reader = TrailReader::open(&args.trail)
        .with_context(|| format!("opening {}", args.trail.display()))?;
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
