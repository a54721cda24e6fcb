//! One run of a backup policy: the configuration database (every revision; secrets still
//! sealed under the data directory's `secrets.key`, which is **not** in the backup) and the
//! local trails of the connection policies that reference the policy, with a manifest of every
//! file's length and BLAKE3 digest that `custos restore` checks.
//!
//! Layout on the target, below the policy's path (and `<node id>/` with
//! `include_node_id_in_path`): `custos.db`, `node-id`, `trails/<key>.trail`, `MANIFEST.json`.
//! The manifest is written last, so a backup whose manifest is present is complete.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use custos_config::objects::key_material::PRIVATE_KEYS;
use custos_config::objects::retention::{BACKUP_POLICIES, BackupPolicy, HostKey};
use custos_config::secret::Secret;
use custos_store::JobRow;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::target::{Digest, Item, Rsync, Target, TargetError, digest};
use crate::{Retention, RetentionError, blocking, finish_job, now_micros};

pub const MANIFEST: &str = "MANIFEST.json";
pub const MANIFEST_FORMAT: u32 = 1;

/// What a backup holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub created: String,
    pub node_id: String,
    pub policy: String,
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ManifestFile {
    /// Relative to the backup directory, `/`-separated.
    pub path: String,
    pub size: u64,
    pub blake3: String,
}

/// Removes the staging directory when the run is over.
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) async fn run(
    engine: &Arc<Retention>,
    key: &str,
    policy: &BackupPolicy,
    trigger: &str,
) -> Result<JobRow, RetentionError> {
    let started = now_micros();
    let id = engine
        .store
        .job_start("backup", key, &policy.name, trigger, started)
        .await?;
    tracing::info!(job = id, policy = %policy.name, %trigger, "backup started");
    let result = backup(engine, key, policy, id).await;
    let (state, detail) = match result {
        Ok(detail) => ("succeeded", detail),
        Err(e) => {
            tracing::error!(target: "custos::events", job = id, policy = %policy.name, error = %e, "backup failed");
            (
                "failed",
                json!({"errors": [e.to_string()], "files": 0, "bytes": 0, "failed": 1}),
            )
        }
    };
    if state == "succeeded" {
        tracing::info!(job = id, policy = %policy.name, files = %detail["files"], bytes = %detail["bytes"], "backup succeeded");
    }
    finish_job(engine, id, state, detail, &policy.notification_event).await
}

async fn backup(
    engine: &Arc<Retention>,
    key: &str,
    policy: &BackupPolicy,
    id: i64,
) -> Result<serde_json::Value, RetentionError> {
    let data_dir = engine.options.data_dir.clone();
    let stage = engine.scratch().join(format!("backup-{id}"));
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage).map_err(|e| TargetError::io("cannot create", &stage, &e))?;
    let _staging = Staging(stage.clone());
    engine.store.snapshot_into(&stage.join("custos.db")).await?;
    std::fs::write(stage.join("node-id"), &engine.options.node_id)
        .map_err(|e| TargetError::io("cannot write", &stage, &e))?;

    // The local trails of the connection policies that use this policy (closed sessions only:
    // a trail being written would not match its digest by the time it is copied).
    let connections = engine.connection_policies_using(BACKUP_POLICIES, key);
    let mut trails: Vec<String> = Vec::new();
    let mut after = 0;
    loop {
        let page = engine
            .store
            .archivable_sessions(&connections, i64::MAX, after, 1000)
            .await?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        trails.extend(page.into_iter().filter_map(|(_, r)| {
            r.trail
                .filter(|t| t.starts_with("trails/") && !t.contains(".."))
        }));
    }

    let manifest_files = {
        let (data_dir, stage, trails) = (data_dir.clone(), stage.clone(), trails.clone());
        blocking(move || -> Result<Vec<ManifestFile>, TargetError> {
            let mut out = Vec::new();
            let mut add = |base: &Path, rel: &str| -> Result<(), TargetError> {
                let path = base.join(rel);
                match std::fs::File::open(&path).and_then(digest) {
                    Ok(Digest { size, blake3 }) => {
                        out.push(ManifestFile {
                            path: rel.to_string(),
                            size,
                            blake3,
                        });
                        Ok(())
                    }
                    // Archived or cleaned up since it was listed: not here to back up.
                    Err(e)
                        if e.kind() == std::io::ErrorKind::NotFound
                            && rel.starts_with("trails/") =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(TargetError::io("cannot read", &path, &e)),
                }
            };
            add(&stage, "custos.db")?;
            add(&stage, "node-id")?;
            for t in &trails {
                add(&data_dir, t)?;
            }
            Ok(out)
        })
        .await??
    };
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        created: custos_sessions::iso_time(now_micros()).unwrap_or_default(),
        node_id: engine.options.node_id.clone(),
        policy: policy.name.clone(),
        files: manifest_files,
    };
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| RetentionError::Unavailable(e.to_string()))?;
    std::fs::write(stage.join(MANIFEST), text)
        .map_err(|e| TargetError::io("cannot write", &stage, &e))?;
    let trails: Vec<String> = manifest
        .files
        .iter()
        .filter(|f| f.path.starts_with("trails/"))
        .map(|f| f.path.clone())
        .collect();
    let staged = vec!["custos.db".to_string(), "node-id".to_string()];
    let prefix = if policy.include_node_id_in_path {
        engine.options.node_id.clone()
    } else {
        String::new()
    };

    let target = &policy.target;
    let description;
    if target.kind == "rsync" {
        let rsync = rsync_target(engine, policy)?;
        description = format!(
            "rsync://{}@{}/{}",
            target.username.clone().unwrap_or_default(),
            rsync.server,
            rsync.path.trim_start_matches('/')
        );
        let rsync = Arc::new(rsync);
        // Trails first, the database next, the manifest last.
        for (base, files) in [
            (data_dir.clone(), trails.clone()),
            (stage.clone(), staged.clone()),
            (stage.clone(), vec![MANIFEST.to_string()]),
        ] {
            let (r, prefix) = (Arc::clone(&rsync), prefix.clone());
            blocking(move || r.send(&base, &files, &prefix)).await??;
        }
    } else {
        let t = Target::from_config(target, &engine.options.nfs, &engine.scratch())?
            .ok_or_else(|| TargetError("a backup policy needs a target".into()))?;
        let (kind, server, share) = t.describe();
        description = format!("{kind}://{server}/{share}");
        let t = Arc::new(t);
        let remote = |rel: &str| {
            if prefix.is_empty() {
                rel.to_string()
            } else {
                format!("{prefix}/{rel}")
            }
        };
        let item = |base: &Path, rel: &str| Item {
            local: base.join(rel),
            remote: remote(rel),
        };
        let mut items: Vec<Item> = trails.iter().map(|r| item(&data_dir, r)).collect();
        items.extend(staged.iter().map(|r| item(&stage, r)));
        let check = Arc::clone(&t);
        blocking(move || check.check()).await??;
        let (put, sent) = (Arc::clone(&t), items.clone());
        let refused = blocking(move || put.put(&sent)).await??;
        // Read back and compare before the manifest declares the backup complete.
        let wanted: Vec<(String, u64)> = manifest
            .files
            .iter()
            .map(|f| (remote(&f.path), f.size))
            .collect();
        let back = Arc::clone(&t);
        let copies = blocking(move || back.read_back(&wanted)).await??;
        for f in &manifest.files {
            let ok = copies
                .get(&remote(&f.path))
                .is_some_and(|c| c.size == f.size && c.blake3 == f.blake3);
            if !ok {
                return Err(TargetError(format!(
                    "the copy of {} on the target does not match (read back: {:?}){}",
                    f.path,
                    copies.get(&remote(&f.path)),
                    if refused.is_empty() {
                        String::new()
                    } else {
                        format!("; the target said: {}", refused.join("; "))
                    }
                ))
                .into());
            }
        }
        let last = vec![item(&stage, MANIFEST)];
        let refused = blocking(move || t.put(&last)).await??;
        if !refused.is_empty() {
            return Err(TargetError(format!(
                "cannot write {MANIFEST} to the target: {}",
                refused.join("; ")
            ))
            .into());
        }
    }
    let bytes: u64 = manifest.files.iter().map(|f| f.size).sum();
    Ok(json!({
        "target": description,
        "files": manifest.files.len(),
        "bytes": bytes,
        "failed": 0,
        "errors": [],
        "file_list": manifest.files.iter().map(|f| f.path.as_str()).take(1000).collect::<Vec<_>>(),
    }))
}

/// The rsync target of a policy: its private key (opened from the configuration) and pinned
/// host key.
fn rsync_target(engine: &Retention, policy: &BackupPolicy) -> Result<Rsync, RetentionError> {
    let t = &policy.target;
    let missing =
        |what: &str| RetentionError::Unavailable(format!("the rsync target has no {what}"));
    let server = t
        .server
        .as_ref()
        .map(|s| s.value.clone())
        .ok_or_else(|| missing("server"))?;
    let key_ref = t.auth_key.as_ref().ok_or_else(|| missing("auth_key"))?;
    let config = engine.config();
    let private_key = config
        .object(PRIVATE_KEYS, Some(key_ref.key()))
        .and_then(|o| o.body.get("private_key").cloned())
        .and_then(|v| serde_json::from_value::<Secret>(v).ok())
        .ok_or_else(|| missing("usable auth_key"))?;
    let host_key = match &t.host_key {
        Some(HostKey::Pair(pair)) => {
            custos_keys::ssh_public_key_from_selection(&pair.selection, &pair.value)
                .map(|k| format!("{} {}", k.algorithm, k.base64))
                .map_err(|e| {
                    RetentionError::Unavailable(format!("the pinned host key is unusable: {}", e.0))
                })?
        }
        Some(HostKey::Line(line)) => line.clone(),
        None => return Err(missing("host_key")),
    };
    Ok(Rsync::new(
        server,
        u16::try_from(t.port.unwrap_or(22)).unwrap_or(22),
        t.username.clone().ok_or_else(|| missing("username"))?,
        t.path.clone().ok_or_else(|| missing("path"))?,
        private_key.expose().to_string(),
        host_key,
        &engine.scratch(),
    ))
}
