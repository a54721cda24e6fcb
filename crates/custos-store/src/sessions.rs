//! Recorded-session records: one row per session, the whole [`SessionRecord`] as JSON plus the
//! columns that listings sort and filter on.
//!
//! The gateway saves a record when a session starts (so that it is listed while active) and again
//! when it ends; [`SessionStore::save`] is therefore an upsert by key. Records hold no secrets
//! (addresses, user names, policy names), so they are not sealed.

use custos_sessions::{BoxFuture, SessionRecord, SessionStore};
use sqlx::Row;

use crate::{Store, StoreError};

pub(crate) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS sessions (
        key TEXT PRIMARY KEY,
        session_id TEXT NOT NULL UNIQUE,
        start_time INTEGER NOT NULL,
        end_time INTEGER,
        active INTEGER NOT NULL,
        connection_policy TEXT NOT NULL,
        record TEXT NOT NULL)",
    // Listings are newest first: paging must not sort the whole table.
    "CREATE INDEX IF NOT EXISTS sessions_start_time ON sessions (start_time)",
];

/// Added after the first release: every save stamps the row with the next revision, so the
/// search index can ask for exactly the records that changed since its last commit.
const REVISION_COLUMN: &str = "ALTER TABLE sessions ADD COLUMN revision INTEGER NOT NULL DEFAULT 0";
const REVISION_INDEX: &str = "CREATE INDEX IF NOT EXISTS sessions_revision ON sessions (revision)";

/// Brings an older sessions table up to date (idempotent).
pub(crate) async fn migrate(pool: &sqlx::SqlitePool) -> Result<(), StoreError> {
    let has_revision =
        sqlx::query("SELECT 1 FROM pragma_table_info('sessions') WHERE name = 'revision'")
            .fetch_optional(pool)
            .await?
            .is_some();
    if !has_revision {
        sqlx::query(REVISION_COLUMN).execute(pool).await?;
    }
    sqlx::query(REVISION_INDEX).execute(pool).await?;
    Ok(())
}

/// Why sessions found active at startup ended: the process that ran them is gone.
pub const STALE_REASON: &str = "gateway stopped";

pub(crate) fn parse(key: &str, text: &str) -> Result<SessionRecord, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("session {key}: {e}")))
}

impl Store {
    /// Inserts the record, or replaces the one with the same key; returns the revision the row
    /// now carries (higher than any before it).
    pub async fn save_session(&self, record: &SessionRecord) -> Result<i64, StoreError> {
        let mut revisions = self.save_sessions(std::slice::from_ref(record)).await?;
        revisions
            .pop()
            .ok_or_else(|| StoreError::Corrupt(format!("session {}: no revision", record.key)))
    }

    /// Inserts or replaces every record in one transaction (all or none), returning the
    /// revision each was given, in order.
    pub async fn save_sessions(&self, records: &[SessionRecord]) -> Result<Vec<i64>, StoreError> {
        /// Rows per statement (8 parameters each; SQLite allows 32766).
        const ROWS: usize = 100;
        let mut tx = self.pool.begin().await?;
        let mut revisions = Vec::with_capacity(records.len());
        for chunk in records.chunks(ROWS) {
            // The revisions are the highest one so far plus 1, 2, … for the rows in order:
            // unique and increasing whether SQLite evaluates the subquery once per statement or
            // once per row. The statement itself takes the write lock, so no other writer
            // can slip in between reading the highest revision and using it.
            let values = (0..chunk.len())
                .map(|i| {
                    let p = i * 8;
                    format!(
                        "(${}, ${}, ${}, ${}, ${}, ${}, ${}, (SELECT COALESCE(MAX(revision), 0) FROM sessions) + ${})",
                        p + 1,
                        p + 2,
                        p + 3,
                        p + 4,
                        p + 5,
                        p + 6,
                        p + 7,
                        p + 8
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO sessions (key, session_id, start_time, end_time, active, connection_policy, record, revision)
                 VALUES {values}
                 ON CONFLICT (key) DO UPDATE SET
                    end_time = excluded.end_time, active = excluded.active,
                    connection_policy = excluded.connection_policy, record = excluded.record,
                    revision = excluded.revision
                 RETURNING key, session_id, start_time, revision"
            );
            // Only numbered placeholders are formatted in; every value is bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (i, record) in chunk.iter().enumerate() {
                let text = serde_json::to_string(record)
                    .map_err(|e| StoreError::Corrupt(format!("session {}: {e}", record.key)))?;
                query = query
                    .bind(&record.key)
                    .bind(&record.session_id)
                    .bind(record.start_time)
                    .bind(record.end_time)
                    .bind(record.active)
                    .bind(&record.connection_policy)
                    .bind(text)
                    .bind(i as i64 + 1);
            }
            let rows = query.fetch_all(&mut *tx).await?;
            let mut given: std::collections::HashMap<String, i64> =
                std::collections::HashMap::new();
            let by_key: std::collections::HashMap<&str, &SessionRecord> =
                chunk.iter().map(|r| (r.key.as_str(), r)).collect();
            for row in rows {
                let key: String = row.try_get("key")?;
                // A session's id and start time identify it: an update keeps them (not
                // rewriting their index entries), and a record that changes them is refused
                // (the transaction is dropped, so nothing of the batch is saved).
                let (session_id, start_time): (String, i64) =
                    (row.try_get("session_id")?, row.try_get("start_time")?);
                if let Some(record) = by_key.get(key.as_str())
                    && (record.session_id != session_id || record.start_time != start_time)
                {
                    return Err(StoreError::Corrupt(format!(
                        "session {key}: its session id and start time cannot change"
                    )));
                }
                given.insert(key, row.try_get("revision")?);
            }
            for record in chunk {
                revisions.push(*given.get(&record.key).ok_or_else(|| {
                    StoreError::Corrupt(format!("session {}: no revision given", record.key))
                })?);
            }
        }
        tx.commit().await?;
        Ok(revisions)
    }

    /// The records of `keys` that exist, in no particular order.
    pub async fn sessions_by_keys(
        &self,
        keys: &[String],
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        // SQLite allows a few hundred parameters comfortably; pages are at most 500 keys.
        for batch in keys.chunks(250) {
            let placeholders = (1..=batch.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!("SELECT key, record FROM sessions WHERE key IN ({placeholders})");
            // Only numbered placeholders are formatted in; every key is bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for key in batch {
                query = query.bind(key);
            }
            for row in query.fetch_all(&self.pool).await? {
                let key: String = row.try_get("key")?;
                out.push(parse(&key, &row.try_get::<String, _>("record")?)?);
            }
        }
        Ok(out)
    }

    /// Up to `limit` records saved with a revision above `after`, in revision order, each with
    /// its revision: what the search index has not seen yet.
    pub async fn sessions_changed_since(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(SessionRecord, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT key, record, revision FROM sessions WHERE revision > $1 ORDER BY revision LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                let key: String = row.try_get("key")?;
                Ok((
                    parse(&key, &row.try_get::<String, _>("record")?)?,
                    row.try_get("revision")?,
                ))
            })
            .collect()
    }

    /// The highest revision of any record (0 when there are none).
    pub async fn sessions_revision(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COALESCE(MAX(revision), 0) AS r FROM sessions")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("r")?)
    }

    /// The record of one session, by its key.
    pub async fn session(&self, key: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query("SELECT record FROM sessions WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| parse(key, &row.try_get::<String, _>("record")?))
            .transpose()
    }

    /// One page of records, newest first, and the number of records in all.
    pub async fn sessions(
        &self,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<SessionRecord>, i64), StoreError> {
        // One read transaction, so that the page and the total describe the same moment.
        let mut tx = self.pool.begin().await?;
        let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM sessions")
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        let rows = sqlx::query(
            "SELECT key, record FROM sessions ORDER BY start_time DESC, key LIMIT $1 OFFSET $2",
        )
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let records = rows
            .into_iter()
            .map(|row| {
                let key: String = row.try_get("key")?;
                parse(&key, &row.try_get::<String, _>("record")?)
            })
            .collect::<Result<_, _>>()?;
        Ok((records, total))
    }

    /// Ends the sessions that a previous run left marked active (it crashed or was killed before
    /// its gateway could finish them), so that nothing claims to be live that is not. They keep
    /// their verdict; the end time, unknown, becomes the start time (the only time known to be
    /// no later than the real end). Call once at startup, before any gateway runs. Returns how
    /// many sessions were closed.
    pub async fn close_stale_sessions(&self) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query("SELECT key, record FROM sessions WHERE active <> 0")
            .fetch_all(&mut *tx)
            .await?;
        let mut closed = 0;
        for row in rows {
            let key: String = row.try_get("key")?;
            let text: String = row.try_get("record")?;
            let record = match parse(&key, &text) {
                Ok(mut record) => {
                    record.active = false;
                    record.end_time = Some(record.end_time.unwrap_or(record.start_time));
                    record.reason = Some(STALE_REASON.to_string());
                    Some(
                        serde_json::to_string(&record)
                            .map_err(|e| StoreError::Corrupt(format!("session {key}: {e}")))?,
                    )
                }
                Err(e) => {
                    // An unreadable record must not keep the server from starting, nor stay
                    // listed as active: end it in the columns and leave the text for inspection.
                    tracing::warn!(%key, error = %e, "cannot read a stale session record");
                    None
                }
            };
            sqlx::query(
                "UPDATE sessions SET active = 0, end_time = COALESCE(end_time, start_time),
                 record = COALESCE($2, record),
                 revision = (SELECT COALESCE(MAX(revision), 0) + 1 FROM sessions) WHERE key = $1",
            )
            .bind(&key)
            .bind(record)
            .execute(&mut *tx)
            .await?;
            closed += 1;
        }
        tx.commit().await?;
        Ok(closed)
    }
}

impl SessionStore for Store {
    fn save(&self, record: SessionRecord) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.save_session(&record)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }

    fn save_all(&self, records: Vec<SessionRecord>) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.save_sessions(&records)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KEY_LEN, Sealer};
    use custos_sessions::{Endpoint, Verdict};

    async fn store(dir: &tempfile::TempDir) -> Store {
        Store::open(&dir.path().join("c.db"), Sealer::new(&[1; KEY_LEN]))
            .await
            .unwrap()
    }

    fn record(key: &str, start_time: i64, active: bool) -> SessionRecord {
        let ep = Endpoint {
            ip: "192.0.2.1".parse().unwrap(),
            port: 40000,
        };
        SessionRecord {
            key: key.into(),
            session_id: format!("svc/{key}/demo:1"),
            protocol: "SSH".into(),
            node_id: "node".into(),
            client: ep,
            gateway: ep,
            server: None,
            server_local: None,
            gateway_username: Some("alice".into()),
            server_username: None,
            connection_policy: "demo".into(),
            connection_policy_id: "pk".into(),
            channel_policy: None,
            auth_method: None,
            start_time,
            end_time: (!active).then_some(start_time + 5_000_000),
            active,
            verdict: Verdict::Accept,
            reason: None,
            has_accepted_channel: false,
            trail: None,
            archived: false,
            archive: None,
        }
    }

    #[tokio::test]
    async fn a_batch_save_gives_every_record_its_own_increasing_revision() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        store
            .save_session(&record("k00000", 0, true))
            .await
            .unwrap();
        // More rows than one statement takes, one of them an update.
        let batch: Vec<SessionRecord> = (0..250)
            .map(|i| record(&format!("k{i:05}"), i, false))
            .collect();
        let revisions = store.save_sessions(&batch).await.unwrap();
        assert_eq!(revisions.len(), 250);
        assert!(revisions[0] > 1);
        assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{revisions:?}");
        let changed = store.sessions_changed_since(1, 1000).await.unwrap();
        let keys: Vec<&str> = changed.iter().map(|(r, _)| r.key.as_str()).collect();
        let expected: Vec<String> = batch.iter().map(|r| r.key.clone()).collect();
        assert_eq!(keys, expected);
        assert_eq!(
            changed.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
            revisions
        );
        assert_eq!(
            store.session("k00000").await.unwrap(),
            Some(batch[0].clone())
        );
        assert_eq!(store.save_sessions(&[]).await.unwrap(), Vec::<i64>::new());

        // A batch with one record that changes what identifies its session saves nothing.
        let mut ended = batch[1].clone();
        ended.reason = Some("archived".into());
        let mut moved = batch[2].clone();
        moved.start_time += 1;
        let err = store.save_sessions(&[ended, moved]).await.unwrap_err();
        assert!(err.to_string().contains("cannot change"), "{err}");
        assert_eq!(
            store.session("k00001").await.unwrap(),
            Some(batch[1].clone())
        );
        assert_eq!(
            store.session("k00002").await.unwrap(),
            Some(batch[2].clone())
        );
    }

    #[tokio::test]
    async fn save_is_an_upsert_and_get_returns_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        assert_eq!(store.session("a").await.unwrap(), None);
        let started = record("a", 10, true);
        SessionStore::save(&store, started.clone()).await.unwrap();
        assert_eq!(store.session("a").await.unwrap(), Some(started.clone()));
        let finished = SessionRecord {
            active: false,
            end_time: Some(20),
            verdict: Verdict::Terminated,
            ..started
        };
        SessionStore::save(&store, finished.clone()).await.unwrap();
        assert_eq!(store.session("a").await.unwrap(), Some(finished));
        let (all, total) = store.sessions(0, 10).await.unwrap();
        assert_eq!((all.len(), total), (1, 1), "an update must not add a row");
    }

    #[tokio::test]
    async fn every_save_gets_a_higher_revision_and_changes_are_listed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        assert_eq!(store.sessions_revision().await.unwrap(), 0);
        let a1 = store.save_session(&record("a", 1, true)).await.unwrap();
        let b1 = store.save_session(&record("b", 2, true)).await.unwrap();
        let a2 = store.save_session(&record("a", 1, false)).await.unwrap();
        assert!(a1 < b1 && b1 < a2, "{a1} {b1} {a2}");
        let since = |after| {
            let store = &store;
            async move {
                store
                    .sessions_changed_since(after, 10)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|(r, rev)| (r.key, rev))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            since(0).await,
            [("b".to_string(), b1), ("a".to_string(), a2)]
        );
        assert_eq!(since(b1).await, [("a".to_string(), a2)]);
        assert!(since(a2).await.is_empty());
        assert_eq!(store.sessions_revision().await.unwrap(), a2);
        // Closing stale sessions is a change too.
        store.save_session(&record("c", 3, true)).await.unwrap();
        store.close_stale_sessions().await.unwrap();
        assert_eq!(since(a2).await.len(), 2, "b and c were still active");
        let mut found = store
            .sessions_by_keys(&["a".into(), "c".into(), "nope".into()])
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.key)
            .collect::<Vec<_>>();
        found.sort();
        assert_eq!(found, ["a", "c"]);
    }

    #[tokio::test]
    async fn a_session_id_belongs_to_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        store.save_session(&record("a", 1, true)).await.unwrap();
        let mut clash = record("b", 2, true);
        clash.session_id = "svc/a/demo:1".into();
        assert!(store.save_session(&clash).await.is_err());
    }

    #[tokio::test]
    async fn listing_is_newest_first_and_pages_with_a_total() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        // Saved out of order; two share a start time (ordered by key then).
        for (key, start) in [("c", 30), ("a", 10), ("e", 50), ("d", 30), ("b", 20)] {
            store
                .save_session(&record(key, start, false))
                .await
                .unwrap();
        }
        let keys = |page: &[SessionRecord]| page.iter().map(|r| r.key.clone()).collect::<Vec<_>>();
        let (page, total) = store.sessions(0, 2).await.unwrap();
        assert_eq!((keys(&page), total), (vec!["e".into(), "c".into()], 5));
        let (page, total) = store.sessions(2, 2).await.unwrap();
        assert_eq!((keys(&page), total), (vec!["d".into(), "b".into()], 5));
        let (page, _) = store.sessions(4, 2).await.unwrap();
        assert_eq!(keys(&page), ["a"]);
        let (page, total) = store.sessions(10, 2).await.unwrap();
        assert!(page.is_empty());
        assert_eq!(total, 5);
    }

    #[tokio::test]
    async fn stale_active_sessions_are_closed_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let finished = record("done", 5, false);
        {
            let store = store(&dir).await;
            store.save_session(&record("live", 7, true)).await.unwrap();
            let mut denied = record("denied", 8, true);
            denied.verdict = Verdict::Deny;
            store.save_session(&denied).await.unwrap();
            store.save_session(&finished).await.unwrap();
        }
        let store = store(&dir).await;
        assert_eq!(store.close_stale_sessions().await.unwrap(), 2);
        let live = store.session("live").await.unwrap().unwrap();
        assert!(!live.active);
        assert_eq!(live.end_time, Some(7));
        assert_eq!(live.reason.as_deref(), Some(STALE_REASON));
        assert_eq!(live.verdict, Verdict::Accept);
        let denied = store.session("denied").await.unwrap().unwrap();
        assert_eq!(denied.verdict, Verdict::Deny, "the verdict stays");
        assert!(!denied.active);
        assert_eq!(
            store.session("done").await.unwrap(),
            Some(finished),
            "finished sessions are untouched"
        );
        assert_eq!(store.close_stale_sessions().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn an_unreadable_stale_record_is_still_closed() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        sqlx::query(
            "INSERT INTO sessions (key, session_id, start_time, end_time, active, connection_policy, record)
             VALUES ('x', 'svc/x/p:1', 3, NULL, 1, 'p', 'not json')",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        assert_eq!(store.close_stale_sessions().await.unwrap(), 1);
        let row = sqlx::query("SELECT active, end_time FROM sessions WHERE key = 'x'")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(row.get::<i64, _>("active"), 0);
        assert_eq!(row.get::<Option<i64>, _>("end_time"), Some(3));
        assert!(matches!(
            store.session("x").await,
            Err(StoreError::Corrupt(_))
        ));
    }
}
