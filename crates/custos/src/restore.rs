//! `custos restore`: a fresh data directory from a backup (see `custos_retention::restore`),
//! then a check that the given `secrets.key` opens the backup's sealed secrets.

use std::path::PathBuf;

use anyhow::Context as _;

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The backup directory (the policy's path, with the node id if the policy adds it): the
    /// one holding MANIFEST.json.
    #[arg(long)]
    from: PathBuf,
    /// The data directory to create (must not exist, or be empty).
    #[arg(long, env = "CUSTOS_DATA_DIR")]
    data_dir: PathBuf,
    /// The `secrets.key` of the backed-up node (never part of a backup: keep a copy apart).
    #[arg(long)]
    secrets_key: PathBuf,
}

pub async fn run(args: RestoreArgs) -> anyhow::Result<()> {
    let key = std::fs::read(&args.secrets_key)
        .with_context(|| format!("reading {}", args.secrets_key.display()))?;
    let key: [u8; custos_store::KEY_LEN] = key.as_slice().try_into().map_err(|_| {
        anyhow::anyhow!(
            "{} must hold exactly {} bytes",
            args.secrets_key.display(),
            custos_store::KEY_LEN
        )
    })?;
    let manifest = custos_retention::restore::restore(&args.from, &args.data_dir, &key)?;
    // The database must open, secrets and all, with this key; otherwise leave nothing behind.
    let opened = async {
        let store = crate::serve::open_store(&args.data_dir).await?;
        let loaded = store
            .load()
            .await
            .context("the secrets key does not open this backup's configuration")?;
        let revisions = store.revision_count().await?;
        anyhow::Ok((loaded.map(|(r, _)| r), revisions))
    }
    .await;
    match opened {
        Ok((revision, revisions)) => {
            println!(
                "custos: restored {} files of node {} (backup of {}, policy {}) into {}: configuration revision {}, {revisions} revisions",
                manifest.files.len(),
                manifest.node_id,
                manifest.created,
                manifest.policy,
                args.data_dir.display(),
                revision.unwrap_or(0),
            );
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&args.data_dir);
            Err(e)
        }
    }
}
