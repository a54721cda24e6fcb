//! Durable storage of the configuration in the embedded database (SQLite, in the data directory).
//!
//! The current configuration is kept as one row per object; every commit is one SQLite
//! transaction that writes the changed rows and a revision record (who, when, message, changes).
//! WAL journaling with `synchronous=FULL` makes a commit durable when it returns, and SQLite's
//! atomic commit means a crash at any moment leaves the previous or the new revision, never a mix.
//!
//! Recorded-session records live in the same database ([`sessions`]), outside the revisions: they
//! are history, not configuration.
//!
//! **Invariant:** the store knows the document only as node paths, keys and JSON bodies; it does
//! not interpret them.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use custos_config::document::{Document, Stored};
use serde_json::Value;
use sqlx::Row;

mod retention;
mod sealing;
mod sessions;
pub use retention::{INTERRUPTED, JobRow, JournalEntry};
pub use sealing::{KEY_LEN, Sealer};
pub use sessions::STALE_REASON;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored configuration is corrupt: {0}")]
    Corrupt(String),
}

/// One object write of a commit. `key` is `None` for singletons.
pub enum Write<'a> {
    Put {
        node: &'a str,
        key: Option<&'a str>,
        body: &'a Value,
    },
    Delete {
        node: &'a str,
        key: &'a str,
    },
}

/// What a commit records about itself.
pub struct RevisionInfo<'a> {
    pub author: &'a str,
    pub message: &'a str,
    pub committed_at: i64,
    pub schema_version: i64,
    /// The change list as shown to auditors (already stripped of secrets).
    pub changes: &'a Value,
}

#[derive(Debug, Clone)]
pub struct Revision {
    pub id: i64,
    pub author: String,
    pub message: String,
    pub committed_at: i64,
    pub schema_version: i64,
    pub changes: Value,
}

pub struct Store {
    pool: SqlitePool,
    sealer: Sealer,
    commit_pause: Option<Duration>,
    directory: PathBuf,
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS revisions (
        id INTEGER PRIMARY KEY,
        committed_at INTEGER NOT NULL,
        author TEXT NOT NULL,
        message TEXT NOT NULL,
        schema_version INTEGER NOT NULL,
        changes TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS config_objects (
        node TEXT NOT NULL,
        key TEXT NOT NULL,
        position INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (node, key))",
    // New members go after the last one: finding it must not scan the collection.
    "CREATE INDEX IF NOT EXISTS config_objects_order ON config_objects (node, position)",
];

impl Store {
    /// Opens (creating if needed) the database file. Secrets in bodies are sealed with `sealer`.
    pub async fn open(path: &Path, sealer: Sealer) -> Result<Store, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        for statement in SCHEMA
            .iter()
            .chain(sessions::SCHEMA)
            .chain(retention::SCHEMA)
        {
            sqlx::query(*statement).execute(&pool).await?;
        }
        sessions::migrate(&pool).await?;
        Ok(Store {
            pool,
            sealer,
            commit_pause: None,
            directory: match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
                _ => PathBuf::from("."),
            },
        })
    }

    /// The directory that holds the database file: the data directory, which the file paths
    /// in session records (their trails) are relative to.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// Fault injection for crash tests: pause inside every commit, after the rows are written and
    /// before the database transaction commits.
    pub fn pause_inside_commits(&mut self, pause: Duration) {
        self.commit_pause = Some(pause);
    }

    /// The last committed revision number and document, or `None` on a fresh database.
    pub async fn load(&self) -> Result<Option<(i64, Document)>, StoreError> {
        let Some(revision) = sqlx::query("SELECT MAX(id) AS id FROM revisions")
            .fetch_one(&self.pool)
            .await?
            .try_get::<Option<i64>, _>("id")?
        else {
            return Ok(None);
        };
        let rows =
            sqlx::query("SELECT node, key, body FROM config_objects ORDER BY node, position")
                .fetch_all(&self.pool)
                .await?;
        let mut doc = Document::default();
        for row in rows {
            let node: String = row.try_get("node")?;
            let key: String = row.try_get("key")?;
            let body: String = row.try_get("body")?;
            let mut body: Value = serde_json::from_str(&body)
                .map_err(|e| StoreError::Corrupt(format!("{node}/{key}: {e}")))?;
            let object_key = (!key.is_empty()).then_some(key.as_str());
            self.sealer.open(&mut body, &node, object_key)?;
            if key.is_empty() {
                doc.set_singleton(&node, Stored::new(body));
            } else {
                doc.put(&node, &key, Stored::new(body));
            }
        }
        Ok(Some((revision, doc)))
    }

    /// Writes one revision atomically and durably; returns its number.
    pub async fn commit(
        &self,
        info: RevisionInfo<'_>,
        writes: &[Write<'_>],
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO revisions (committed_at, author, message, schema_version, changes)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(info.committed_at)
        .bind(info.author)
        .bind(info.message)
        .bind(info.schema_version)
        .bind(info.changes.to_string())
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
        for write in writes {
            match write {
                Write::Put { node, key, body } => {
                    sqlx::query(
                        "INSERT INTO config_objects (node, key, position, body)
                         VALUES ($1, $2, (SELECT COALESCE(MAX(position), 0) + 1 FROM config_objects WHERE node = $1), $3)
                         ON CONFLICT (node, key) DO UPDATE SET body = excluded.body",
                    )
                    .bind(*node)
                    .bind(key.unwrap_or(""))
                    .bind(self.sealer.seal(body, node, *key)?.to_string())
                    .execute(&mut *tx)
                    .await?;
                }
                Write::Delete { node, key } => {
                    sqlx::query("DELETE FROM config_objects WHERE node = $1 AND key = $2")
                        .bind(*node)
                        .bind(*key)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        if let Some(pause) = self.commit_pause {
            tracing::warn!(?pause, "fault injection: pausing inside a commit");
            tokio::time::sleep(pause).await;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Revision summaries, newest first.
    pub async fn revisions(&self, offset: i64, limit: i64) -> Result<Vec<Revision>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, committed_at, author, message, schema_version, changes FROM revisions
             ORDER BY id DESC LIMIT $1 OFFSET $2",
        )
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(revision_from_row).collect()
    }

    pub async fn revision(&self, id: i64) -> Result<Option<Revision>, StoreError> {
        let row = sqlx::query(
            "SELECT id, committed_at, author, message, schema_version, changes FROM revisions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(revision_from_row).transpose()
    }

    /// Writes a consistent copy of the whole database to `path` (which must not exist), for
    /// backups: secrets stay sealed in it, exactly as they are stored.
    pub async fn snapshot_into(&self, path: &Path) -> Result<(), StoreError> {
        let target = path
            .to_str()
            .ok_or_else(|| StoreError::Corrupt(format!("{} is not UTF-8", path.display())))?;
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn revision_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM revisions")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }
}

fn revision_from_row(row: sqlx::sqlite::SqliteRow) -> Result<Revision, StoreError> {
    let changes: String = row.try_get("changes")?;
    Ok(Revision {
        id: row.try_get("id")?,
        committed_at: row.try_get("committed_at")?,
        author: row.try_get("author")?,
        message: row.try_get("message")?,
        schema_version: row.try_get("schema_version")?,
        changes: serde_json::from_str(&changes).map_err(|e| StoreError::Corrupt(e.to_string()))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sealer() -> Sealer {
        Sealer::new(&[1; KEY_LEN])
    }

    #[tokio::test]
    async fn secrets_never_reach_the_disk_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let store = Store::open(&path, sealer()).await.unwrap();
        assert_eq!(store.directory(), dir.path(), "the data directory");
        let body = json!({"password": {"$secret": "very-secret-value"}});
        let changes = json!([]);
        store
            .commit(
                info(&changes),
                &[Write::Put {
                    node: "/p",
                    key: Some("a"),
                    body: &body,
                }],
            )
            .await
            .unwrap();
        drop(store);
        let mut raw = Vec::new();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            raw.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        let needle = b"very-secret-value";
        assert!(
            !raw.windows(needle.len()).any(|w| w == needle),
            "secret found on disk"
        );
        let store = Store::open(&path, sealer()).await.unwrap();
        let (_, doc) = store.load().await.unwrap().unwrap();
        assert_eq!(doc.object("/p", Some("a")).unwrap().body, body);
        let wrong = Store::open(&path, Sealer::new(&[2; KEY_LEN]))
            .await
            .unwrap();
        assert!(wrong.load().await.is_err(), "a wrong key must not load");
    }

    fn info(changes: &Value) -> RevisionInfo<'_> {
        RevisionInfo {
            author: "admin",
            message: "m",
            committed_at: 1,
            schema_version: 1,
            changes,
        }
    }

    #[tokio::test]
    async fn commits_survive_reopening_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let changes = json!([]);
        {
            let store = Store::open(&path, sealer()).await.unwrap();
            assert!(store.load().await.unwrap().is_none());
            let (b1, b2, s) = (json!({"n": 1}), json!({"n": 2}), json!({"x": 1}));
            store
                .commit(
                    info(&changes),
                    &[
                        Write::Put {
                            node: "/c",
                            key: Some("b"),
                            body: &b1,
                        },
                        Write::Put {
                            node: "/c",
                            key: Some("a"),
                            body: &b2,
                        },
                        Write::Put {
                            node: "/s",
                            key: None,
                            body: &s,
                        },
                    ],
                )
                .await
                .unwrap();
            let b3 = json!({"n": 3});
            let id = store
                .commit(
                    info(&changes),
                    &[
                        Write::Put {
                            node: "/c",
                            key: Some("b"),
                            body: &b3,
                        },
                        Write::Delete {
                            node: "/c",
                            key: "a",
                        },
                        Write::Put {
                            node: "/c",
                            key: Some("z"),
                            body: &b2,
                        },
                    ],
                )
                .await
                .unwrap();
            assert_eq!(id, 2);
        }
        let store = Store::open(&path, sealer()).await.unwrap();
        let (rev, doc) = store.load().await.unwrap().unwrap();
        assert_eq!(rev, 2);
        let c = doc.collection("/c").unwrap();
        assert_eq!(c.keys().collect::<Vec<_>>(), ["b", "z"]);
        assert_eq!(c.get("b").unwrap().body, json!({"n": 3}));
        assert_eq!(doc.singleton("/s").unwrap().body, json!({"x": 1}));
        assert_eq!(store.revisions(0, 10).await.unwrap().len(), 2);
    }
}
