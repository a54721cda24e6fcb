//! `custos serve`: the management HTTPS server over the embedded database.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use custos_api::{Api, ApiOptions, FirstStart, ServerIdentity};
use custos_store::Store;
use rand::Rng;

use crate::{DataDirArg, tls};

#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    data: DataDirArg,
    /// Address and port of the management HTTPS server.
    #[arg(long, default_value = crate::DEFAULT_LISTEN, value_parser = crate::parse_listen)]
    listen: SocketAddr,
    /// Password of the built-in `admin` user, used on first start only (generated and printed
    /// once if not given).
    #[arg(long, env = "CUSTOS_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// Open a transaction automatically on the first configuration write (newer SPS behaviour)
    /// instead of answering 409 NoTransaction.
    #[arg(long)]
    auto_open_transaction: bool,
    /// Where this host mounts the NFS exports that archive policies name: the export
    /// `server:/path` must be mounted at `<dir>/<server>/path`.
    #[arg(long, env = "CUSTOS_NFS_MOUNT_ROOT", default_value = "/mnt/custos-nfs")]
    nfs_mount_root: std::path::PathBuf,
    /// Accept an NFS target directory that is not a mount point (files would land on the
    /// local file system if the export is not mounted; for tests and bind-mounted setups).
    #[arg(long)]
    nfs_allow_unmounted: bool,
    /// Trails per batch of an archive job: one journal write, one SMB session each way, one
    /// transaction of records.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=4096))]
    archive_batch_files: u32,
    /// Batches of an archive job copied and read back at once (SMB sessions per direction).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    archive_parallel_batches: u32,
}

fn read_kernel_name(file: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/kernel/{file}"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty() && s != "(none)")
        .unwrap_or_default()
}

fn generated_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A stable identifier of this node, made on first start.
fn node_id(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("node-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        return Ok(id.trim().to_string());
    }
    let bytes: [u8; 16] = rand::random();
    let id = format!(
        "{}-{}-{}-{}-{}",
        hex(&bytes[0..4]),
        hex(&bytes[4..6]),
        hex(&bytes[6..8]),
        hex(&bytes[8..10]),
        hex(&bytes[10..16])
    );
    tls::write_atomically(&path, id.as_bytes(), 0o644)?;
    Ok(id)
}

/// The key that seals secrets in the database (`secrets.key`, 32 random bytes, mode 0600), made
/// on first start. Without it the stored secrets cannot be opened: back it up with the database,
/// but not next to copies of the database that others can read.
fn secrets_key(data_dir: &std::path::Path) -> anyhow::Result<[u8; custos_store::KEY_LEN]> {
    let path = data_dir.join("secrets.key");
    match std::fs::read(&path) {
        Ok(bytes) => bytes.try_into().map_err(|_| {
            anyhow::anyhow!(
                "{} must hold exactly {} bytes",
                path.display(),
                custos_store::KEY_LEN
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; custos_store::KEY_LEN] = rand::random();
            tls::write_atomically(&path, &key, 0o600)?;
            Ok(key)
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("reading {}", path.display()))),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    raise_open_file_limit();
    let data_dir = &args.data.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;

    let hostname = read_kernel_name("hostname");
    let identity = ServerIdentity {
        hostname: hostname.clone(),
        domainname: read_kernel_name("domainname"),
        node_id: node_id(data_dir)?,
    };
    let tls_files = tls::ensure_identity(data_dir, &hostname)?;

    let sealer = custos_store::Sealer::new(&secrets_key(data_dir)?);
    let mut store = Store::open(&data_dir.join("custos.db"), sealer)
        .await
        .context("opening the database")?;
    if let Some(ms) = std::env::var("CUSTOS_FAULT_COMMIT_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        store.pause_inside_commits(Duration::from_millis(ms));
    }

    // --- Sessions: records in the store, sessions in progress in the registry. The gateways
    // fill both (save through `store`, register with `live_sessions`); the API lists and
    // terminates. This runs before any gateway starts, so whatever the database still calls
    // active is a leftover of a previous run that ended without finishing its sessions.
    let closed = store
        .close_stale_sessions()
        .await
        .context("closing the sessions a previous run left active")?;
    if closed > 0 {
        tracing::warn!(
            closed,
            "marked sessions left active by a previous run as ended"
        );
    }
    let store = Arc::new(store);
    let live_sessions = custos_sessions::LiveSessions::default();
    // The search index follows the records (saved through `indexed`) and the recorders' text;
    // whatever it missed while the server was down is read back in the background.
    let index = Arc::new(
        custos_search::SearchIndex::open(&crate::indexing::index_dir(data_dir))
            .context("opening the search index")?,
    );
    let indexed: Arc<dyn custos_sessions::SessionStore> = Arc::new(
        crate::indexing::IndexedStore::new(store.clone(), index.clone()),
    );
    {
        let (store, index, data_dir) = (store.clone(), index.clone(), data_dir.to_path_buf());
        tokio::spawn(async move {
            match crate::indexing::catch_up(&store, &index, &data_dir).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    sessions = n,
                    "indexed the sessions the search index had missed"
                ),
                Err(e) => tracing::error!(error = %e, "cannot bring the search index up to date"),
            }
        });
    }
    // --- end of sessions wiring.

    let (password, generated) = match &args.admin_password {
        Some(p) if !p.is_empty() => (p.clone(), false),
        _ => (generated_password(), true),
    };
    let options = ApiOptions {
        auto_open_transaction: args.auto_open_transaction,
        identity,
    };
    let (api, first) = Api::open(
        Arc::clone(&store),
        live_sessions.clone(),
        index.clone(),
        options,
        &password,
    )
    .await
    .map_err(anyhow::Error::msg)?;
    match first {
        FirstStart::Created if generated => {
            // Shown once, on standard output only; never logged.
            println!("custos: generated password of the built-in admin user: {password}");
        }
        FirstStart::Created => tracing::info!("created the initial configuration"),
        FirstStart::Existing if args.admin_password.is_some() => {
            tracing::info!(
                "the data directory is initialised; --admin-password applies to the first start only"
            )
        }
        FirstStart::Existing => {}
    }

    tokio::spawn(give_back_memory(live_sessions.clone()));

    // The SSH gateway follows the committed configuration: every commit reconciles its
    // listeners (sessions in progress keep the policy they started with).
    start_retention(&args, &api, &store, indexed.clone()).await?;
    let gateway = custos_gateway::Gateway::new(
        data_dir,
        api.committed_node_id(),
        live_sessions.clone(),
        indexed,
    )
    .context("starting the SSH gateway")?;
    gateway.set_text_sink(Arc::new(crate::indexing::IndexedText(index.clone())));
    let mut revisions = api.subscribe();
    let follower = gateway.clone();
    tokio::spawn(async move {
        loop {
            let snapshot = revisions.borrow_and_update().clone();
            follower.apply(&snapshot.doc).await;
            if revisions.changed().await.is_err() {
                break;
            }
        }
    });

    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let tls_config =
        axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls_files.cert, &tls_files.key)
            .await
            .context("loading the TLS certificate")?;
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("binding {}", args.listen))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;

    let sweeper = Arc::clone(&api);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
            sweeper.sweep().await;
        }
    });

    let handle = axum_server::Handle::new();
    let shutdown = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        shutdown.graceful_shutdown(Some(Duration::from_secs(5)));
    });

    let app = custos_api::router(api);
    let server = axum_server::from_tcp_rustls(listener, tls_config)?.handle(handle);
    println!("custos: listening on https://{bound}");
    tracing::info!(%bound, "management API listening");
    server
        .serve(app.into_make_service_with_connect_info::<SocketAddr>())
        .await
        .context("serving")?;
    // What the index holds in memory is committed before the process ends.
    index.sync().context("committing the search index")?;
    Ok(())
}

/// The archive/cleanup engine: attached to the API, scheduled, and resuming at once whatever
/// moves a previous run left unfinished.
async fn start_retention(
    args: &ServeArgs,
    api: &Arc<Api>,
    store: &Arc<Store>,
    records: Arc<dyn custos_sessions::SessionStore>,
) -> anyhow::Result<()> {
    let nfs = custos_retention::NfsMounts {
        root: args.nfs_mount_root.clone(),
        require_mount: !args.nfs_allow_unmounted,
    };
    let mut options =
        custos_retention::Options::new(args.data.data_dir.clone(), api.committed_node_id(), nfs);
    options.batch_files = args.archive_batch_files as usize;
    options.parallel_batches = args.archive_parallel_batches as usize;
    // Fault injection for the crash tests: `<phase>:<milliseconds>`.
    options.fault_pause = std::env::var("CUSTOS_FAULT_ARCHIVE_PAUSE")
        .ok()
        .and_then(|v| {
            let (phase, ms) = v.split_once(':')?;
            Some((phase.to_string(), Duration::from_millis(ms.parse().ok()?)))
        });
    let retention = custos_retention::Retention::open(
        Arc::clone(store),
        records,
        options,
        // The commit's response is sent after the snapshot is published here, so a job
        // requested right after a commit runs with it.
        {
            let committed = api.subscribe();
            Box::new(move || committed.borrow().doc.clone())
        },
    )
    .await
    .context("starting the archive engine")?;
    api.attach_retention(Arc::clone(&retention));
    retention.spawn_scheduler();
    let resuming = Arc::clone(&retention);
    tokio::spawn(async move {
        if let Err(e) = resuming.resume().await {
            tracing::error!(error = %e, "cannot resume unfinished archive moves");
        }
    });
    Ok(())
}

/// Opens the database of `data_dir` (for offline commands; the server must not be running
/// for those that write).
pub async fn open_store(data_dir: &std::path::Path) -> anyhow::Result<Store> {
    let sealer = custos_store::Sealer::new(&secrets_key(data_dir)?);
    Store::open(&data_dir.join("custos.db"), sealer)
        .await
        .context("opening the database")
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Every proxied session holds about five descriptors (two sockets, the trail and its index
/// spool, the `O_DIRECT` handle), so the usual soft limit of 1024 would cap a gateway at ~200
/// sessions. The hard limit is what the administrator allows; take all of it.
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(soft, hard, error = %e, "cannot raise the open-file limit");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the open-file limit"),
    }
}

/// Returns freed memory to the system after sessions end.
///
/// Why: glibc's allocator keeps memory freed by ended sessions in its arenas for reuse, so a
/// gateway that once carried 500 sessions would keep their memory for good (measured: 300
/// idle sessions took 45 MiB and 40 MiB of it stayed after they closed). `malloc_trim` hands
/// the free pages back (measured: back to within 0.3 MiB of the start). It is called at most
/// every few seconds and only when fewer sessions are live than at the last look, off the
/// async workers, because it walks every arena.
async fn give_back_memory(live: custos_sessions::LiveSessions) {
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(5));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut previous = 0usize;
    loop {
        interval.tick().await;
        let now = live.list().len();
        if now < previous {
            let _ = tokio::task::spawn_blocking(trim_allocator).await;
        }
        previous = now;
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_allocator() {
    // SAFETY: malloc_trim only releases free memory held by the allocator; it has no
    // preconditions and touches no memory the program still uses.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_allocator() {}
