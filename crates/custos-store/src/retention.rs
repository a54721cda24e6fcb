//! What the archive, cleanup and backup jobs need to be durable: the **archive journal** (which
//! trail is on its way to which destination) and the **job history**.
//!
//! The journal is written before a trail is copied and cleared only after the trail's record
//! says where it is and the local file is gone, so a crash at any point leaves a row that tells
//! the next run to finish the move to the *same* destination (never a second copy elsewhere).
//! Job details are opaque JSON owned by the retention engine.

use custos_sessions::SessionRecord;
use sqlx::Row;

use crate::{Store, StoreError};

pub(crate) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS archive_journal (
        session_key TEXT PRIMARY KEY,
        policy_id TEXT NOT NULL,
        destination TEXT NOT NULL,
        created INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS retention_jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        policy_id TEXT NOT NULL,
        policy TEXT NOT NULL,
        trigger TEXT NOT NULL,
        state TEXT NOT NULL,
        started INTEGER NOT NULL,
        finished INTEGER,
        detail TEXT NOT NULL)",
];

/// A trail on its way to an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalEntry {
    pub session_key: String,
    pub policy_id: String,
    /// Where the trail goes, relative to the target's root.
    pub destination: String,
}

/// One run of a job, as kept in the history.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRow {
    pub id: i64,
    /// `archive`, `cleanup` or `backup`.
    pub kind: String,
    pub policy_id: String,
    pub policy: String,
    /// `schedule`, `cleanup_now`, `resume`, …
    pub trigger: String,
    /// `running`, `succeeded`, `failed`, `interrupted`.
    pub state: String,
    /// Unix microseconds.
    pub started: i64,
    pub finished: Option<i64>,
    pub detail: serde_json::Value,
}

/// The state a job that the process did not live to finish is left in.
pub const INTERRUPTED: &str = "interrupted";

fn job(row: &sqlx::sqlite::SqliteRow) -> Result<JobRow, StoreError> {
    let id: i64 = row.try_get("id")?;
    let detail: String = row.try_get("detail")?;
    Ok(JobRow {
        id,
        kind: row.try_get("kind")?,
        policy_id: row.try_get("policy_id")?,
        policy: row.try_get("policy")?,
        trigger: row.try_get("trigger")?,
        state: row.try_get("state")?,
        started: row.try_get("started")?,
        finished: row.try_get("finished")?,
        detail: serde_json::from_str(&detail)
            .map_err(|e| StoreError::Corrupt(format!("job {id}: {e}")))?,
    })
}

impl Store {
    /// Up to `limit` closed sessions of the given connection policies that ended before
    /// `ended_before`, still have their trail here and were never archived, after row
    /// `after_row` (0 at first; then the last row returned), each with its row.
    pub async fn archivable_sessions(
        &self,
        connection_policy_ids: &[String],
        ended_before: i64,
        after_row: i64,
        limit: i64,
    ) -> Result<Vec<(i64, SessionRecord)>, StoreError> {
        if connection_policy_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = serde_json::to_string(connection_policy_ids)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // In storage order (oldest sessions first, as they were saved): a batch's records then
        // sit side by side in the table, so saving them back touches few pages.
        let rows = sqlx::query(
            "SELECT rowid AS row, key, record FROM sessions
             WHERE active = 0 AND end_time < $1 AND rowid > $2
               AND json_extract(record, '$.trail') IS NOT NULL
               AND json_extract(record, '$.archive') IS NULL
               AND json_extract(record, '$.connection_policy_id') IN (SELECT value FROM json_each($3))
             ORDER BY rowid LIMIT $4",
        )
        .bind(ended_before)
        .bind(after_row)
        .bind(ids)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let key: String = row.try_get("key")?;
                let record = crate::sessions::parse(&key, &row.try_get::<String, _>("record")?)?;
                Ok((row.try_get("row")?, record))
            })
            .collect()
    }

    /// Notes where trails are going, in one transaction. A trail already in the journal for the
    /// same policy keeps the destination it had: a resumed move never picks a new place. (A
    /// trail whose connection policy now uses another archive policy moves under that one.)
    pub async fn journal_add(&self, entries: &[JournalEntry], now: i64) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        // One statement for the batch (the rows travel as one JSON array).
        let rows: Vec<[&str; 3]> = entries
            .iter()
            .map(|e| [e.session_key.as_str(), &e.policy_id, &e.destination])
            .collect();
        let rows = serde_json::to_string(&rows).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO archive_journal (session_key, policy_id, destination, created)
             SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
                    json_extract(value, '$[2]'), $2
             FROM json_each($1) WHERE true
             ON CONFLICT (session_key) DO UPDATE SET
                policy_id = excluded.policy_id, destination = excluded.destination,
                created = excluded.created
             WHERE archive_journal.policy_id <> excluded.policy_id",
        )
        .bind(rows)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The unfinished moves of one policy (all policies with `None`), oldest first.
    pub async fn journal(&self, policy_id: Option<&str>) -> Result<Vec<JournalEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT session_key, policy_id, destination FROM archive_journal
             WHERE $1 IS NULL OR policy_id = $1 ORDER BY created, session_key",
        )
        .bind(policy_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(JournalEntry {
                    session_key: row.try_get("session_key")?,
                    policy_id: row.try_get("policy_id")?,
                    destination: row.try_get("destination")?,
                })
            })
            .collect()
    }

    /// Forgets finished moves.
    pub async fn journal_remove(&self, session_keys: &[String]) -> Result<(), StoreError> {
        if session_keys.is_empty() {
            return Ok(());
        }
        let keys =
            serde_json::to_string(session_keys).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "DELETE FROM archive_journal WHERE session_key IN (SELECT value FROM json_each($1))",
        )
        .bind(keys)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the start of a job; returns its id.
    pub async fn job_start(
        &self,
        kind: &str,
        policy_id: &str,
        policy: &str,
        trigger: &str,
        started: i64,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO retention_jobs (kind, policy_id, policy, trigger, state, started, detail)
             VALUES ($1, $2, $3, $4, 'running', $5, '{}') RETURNING id",
        )
        .bind(kind)
        .bind(policy_id)
        .bind(policy)
        .bind(trigger)
        .bind(started)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// Updates a job's state and detail (`finished` once it is over).
    pub async fn job_update(
        &self,
        id: i64,
        state: &str,
        finished: Option<i64>,
        detail: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE retention_jobs SET state = $1, finished = $2, detail = $3 WHERE id = $4",
        )
        .bind(state)
        .bind(finished)
        .bind(detail.to_string())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Jobs, newest first.
    pub async fn jobs(&self, offset: i64, limit: i64) -> Result<(Vec<JobRow>, i64), StoreError> {
        let mut tx = self.pool.begin().await?;
        let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM retention_jobs")
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        let rows = sqlx::query("SELECT * FROM retention_jobs ORDER BY id DESC LIMIT $1 OFFSET $2")
            .bind(limit)
            .bind(offset)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((rows.iter().map(job).collect::<Result<_, _>>()?, total))
    }

    /// One job by id.
    pub async fn job(&self, id: i64) -> Result<Option<JobRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM retention_jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job).transpose()
    }

    /// Marks the jobs a previous process left running as interrupted (call once at startup,
    /// before any job runs); returns how many there were.
    pub async fn interrupt_running_jobs(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE retention_jobs SET state = $1, finished = $2 WHERE state = 'running'",
        )
        .bind(INTERRUPTED)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_journal_keeps_the_first_destination_and_jobs_are_listed_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), crate::Sealer::new(&[7; 32]))
            .await
            .unwrap();
        let entry = |key: &str, dest: &str| JournalEntry {
            session_key: key.into(),
            policy_id: "p".into(),
            destination: dest.into(),
        };
        store
            .journal_add(&[entry("a", "day1/a.trail"), entry("b", "day1/b.trail")], 1)
            .await
            .unwrap();
        store
            .journal_add(&[entry("a", "day2/a.trail")], 2)
            .await
            .unwrap();
        let journal = store.journal(Some("p")).await.unwrap();
        let moved = JournalEntry {
            policy_id: "q".into(),
            ..entry("c", "q/c.trail")
        };
        store
            .journal_add(&[entry("c", "p/c.trail")], 3)
            .await
            .unwrap();
        store
            .journal_add(std::slice::from_ref(&moved), 4)
            .await
            .unwrap();
        assert_eq!(store.journal(Some("q")).await.unwrap(), vec![moved]);
        store.journal_remove(&["c".into()]).await.unwrap();
        assert_eq!(
            journal,
            vec![entry("a", "day1/a.trail"), entry("b", "day1/b.trail")]
        );
        assert!(store.journal(Some("other")).await.unwrap().is_empty());
        store.journal_remove(&["a".into()]).await.unwrap();
        assert_eq!(
            store.journal(None).await.unwrap(),
            vec![entry("b", "day1/b.trail")]
        );

        let first = store
            .job_start("archive", "p", "pol", "schedule", 10)
            .await
            .unwrap();
        let second = store
            .job_start("cleanup", "q", "pol2", "cleanup_now", 11)
            .await
            .unwrap();
        store
            .job_update(
                first,
                "succeeded",
                Some(12),
                &serde_json::json!({"files": 3}),
            )
            .await
            .unwrap();
        assert_eq!(store.interrupt_running_jobs(13).await.unwrap(), 1);
        let (jobs, total) = store.jobs(0, 10).await.unwrap();
        assert_eq!(total, 2);
        assert_eq!(jobs[0].id, second);
        assert_eq!(jobs[0].state, INTERRUPTED);
        assert_eq!(jobs[1].detail["files"], 3);
        assert_eq!(store.job(first).await.unwrap().unwrap().finished, Some(12));
    }
}
