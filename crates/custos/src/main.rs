//! The `custos` binary: parses the command line and wires the crates together.

mod indexing;
mod restore;
mod serve;
mod sessions_cli;
mod tls;
mod trail_cli;
mod trail_report;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "custos",
    version,
    about = "Custos: privileged session management gateway"
)]
struct Cli {
    /// Log format on standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the management REST API (HTTPS) with the embedded database.
    Serve(serve::ServeArgs),
    /// List or terminate the active sessions of a running server (through its REST API;
    /// the password is read from CUSTOS_PASSWORD).
    Sessions(sessions_cli::SessionsArgs),
    /// Audit trails offline: verify, decrypt, replay, export.
    Trail {
        #[command(subcommand)]
        command: trail_cli::TrailCommand,
    },
    /// Play a recorded terminal session in this terminal (= `custos trail replay`).
    Replay(trail_cli::ReplayArgs),
    /// Convert a recorded session (= `custos trail export`).
    Export(trail_cli::ExportArgs),
    /// Make a fresh data directory from a backup (see backup policies).
    Restore(restore::RestoreArgs),
    /// The session search index.
    Index {
        #[command(subcommand)]
        command: IndexCommand,
    },
}

#[derive(Subcommand)]
enum IndexCommand {
    /// Rebuild the search index from the database and the trail files (stop `custos serve`
    /// first). The old index stays in place until the new one is complete.
    Rebuild(DataDirArg),
}

async fn index_command(command: IndexCommand) -> anyhow::Result<()> {
    match command {
        IndexCommand::Rebuild(args) => {
            if !args.data_dir.join("custos.db").exists() {
                anyhow::bail!("{} holds no Custos database", args.data_dir.display());
            }
            let store = serve::open_store(&args.data_dir).await?;
            let started = std::time::Instant::now();
            let count = indexing::rebuild(&args.data_dir, &store).await?;
            println!(
                "custos: indexed {count} sessions in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}

#[derive(clap::Args, Clone)]
pub struct DataDirArg {
    /// Where the database, TLS certificate and recordings live.
    #[arg(long, env = "CUSTOS_DATA_DIR", default_value = "./custos-data")]
    pub data_dir: PathBuf,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUSTOS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,rustls=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve::run(args)),
        Command::Sessions(args) => runtime.block_on(sessions_cli::run(args)),
        Command::Trail { command } => trail_cli::run(command),
        Command::Replay(args) => trail_cli::replay(args),
        Command::Export(args) => trail_cli::export(args),
        Command::Index { command } => runtime.block_on(index_command(command)),
        Command::Restore(args) => runtime.block_on(restore::run(args)),
    }
}

/// Default management listener, loopback only until an operator says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|e| format!("{s:?} is not an address:port ({e})"))
}
