//! E-mail notifications of finished jobs, per the policy's `notification_event`: `all` (every
//! job, with the list of files when `send_filelist`, at most `file_count_limit` of them),
//! `errors-only` (failed jobs), `none`. Sent to the e-mail settings' `admin_address` through
//! their SMTP server; a notification that cannot be sent is logged as an event and noted in
//! the job's history, and never changes the job's outcome.

use std::time::Duration;

use custos_config::objects::email::{EMAIL, EmailSettings, SmtpServer};
use custos_config::objects::retention::NotificationEvent;
use custos_store::JobRow;
use serde_json::Value;

/// Whether a job with this outcome is to be notified.
pub(crate) fn wanted(event: &NotificationEvent, state: &str) -> bool {
    match event.kind.as_str() {
        "all" => true,
        "errors-only" => state != "succeeded",
        _ => false,
    }
}

/// The message for a finished job.
pub(crate) fn message(event: &NotificationEvent, job: &JobRow, node: &str) -> (String, String) {
    let d = &job.detail;
    let subject = format!(
        "Custos: {} job of policy {} {} on node {node}",
        job.kind, job.policy, job.state
    );
    let time = |t: Option<i64>| t.and_then(custos_sessions::iso_time).unwrap_or_default();
    let mut body = format!(
        "Policy: {} ({})\nJob: {} #{}, started by {}\nTarget: {}\nStarted: {}\nFinished: {}\nResult: {}\nFiles: {}\nBytes: {}\nFailed: {}\n",
        job.policy,
        job.policy_id,
        job.kind,
        job.id,
        job.trigger,
        d["target"].as_str().unwrap_or("(deleted for good)"),
        time(Some(job.started)),
        time(job.finished),
        job.state,
        d["files"],
        d["bytes"],
        d["failed"],
    );
    if let Some(errors) = d["errors"].as_array().filter(|e| !e.is_empty()) {
        body.push_str("\nErrors:\n");
        for e in errors {
            body.push_str(&format!("- {}\n", e.as_str().unwrap_or_default()));
        }
    }
    if event.kind == "all" && event.send_filelist {
        let limit = event.file_count_limit.unwrap_or(i64::MAX).max(0) as usize;
        let files: Vec<&str> = d["file_list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let shown = files.len().min(limit);
        body.push_str("\nFiles:\n");
        for f in &files[..shown] {
            body.push_str(f);
            body.push('\n');
        }
        let total = d["files"].as_u64().unwrap_or(files.len() as u64);
        if total > shown as u64 {
            body.push_str(&format!("… and {} more\n", total - shown as u64));
        }
    }
    (subject, body)
}

/// Sends the notification of `job` if the policy wants one; returns what happened, for the
/// job's history (`None` when nothing was to be sent).
pub(crate) async fn job_finished(
    config: &custos_config::document::Document,
    event: &NotificationEvent,
    job: &JobRow,
    node: &str,
) -> Option<String> {
    if !wanted(event, &job.state) {
        return None;
    }
    let settings: EmailSettings = config
        .singleton(EMAIL)
        .and_then(|s| serde_json::from_value(s.body.clone()).ok())
        .unwrap_or_default();
    let SmtpServer::Address(server) = &settings.smtp_server else {
        tracing::warn!(policy = %job.policy, "a job notification is due but no SMTP server is set (/api/configuration/management/email)");
        return Some("not sent: no SMTP server is set".into());
    };
    if settings.admin_address.is_empty() {
        tracing::warn!(policy = %job.policy, "a job notification is due but no admin_address is set");
        return Some("not sent: no admin_address is set".into());
    }
    let (subject, body) = message(event, job, node);
    let relay = custos_mail::Relay {
        host: server.address.clone(),
        port: u16::try_from(server.port).unwrap_or(25),
        hello: "custos".into(),
        timeout: Duration::from_secs(30),
    };
    let mail = custos_mail::Message {
        from: settings.sender_address.clone(),
        to: vec![settings.admin_address.clone()],
        subject,
        body,
    };
    Some(match custos_mail::send(&relay, &mail).await {
        Ok(()) => {
            tracing::info!(policy = %job.policy, job = job.id, to = %settings.admin_address, "job notification sent");
            format!("sent to {}", settings.admin_address)
        }
        Err(e) => {
            tracing::error!(target: "custos::events", policy = %job.policy, job = job.id, error = %e, "cannot send a job notification");
            format!("not sent: {e}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(state: &str, files: u64) -> JobRow {
        JobRow {
            id: 7,
            kind: "archive".into(),
            policy_id: "k".into(),
            policy: "nightly".into(),
            trigger: "schedule".into(),
            state: state.into(),
            started: 1_700_000_000_000_000,
            finished: Some(1_700_000_060_000_000),
            detail: json!({
                "target": "smb://10.0.0.1/archive",
                "files": files, "bytes": 100, "failed": 0, "errors": [],
                "file_list": ["a.trail", "b.trail", "c.trail"],
            }),
        }
    }

    fn event(kind: &str, send_filelist: bool, limit: Option<i64>) -> NotificationEvent {
        NotificationEvent {
            kind: kind.into(),
            send_filelist,
            file_count_limit: limit,
        }
    }

    #[test]
    fn the_event_type_decides_and_the_file_list_is_limited() {
        assert!(wanted(&event("all", false, None), "succeeded"));
        assert!(!wanted(&event("errors-only", false, None), "succeeded"));
        assert!(wanted(&event("errors-only", false, None), "failed"));
        assert!(!wanted(&event("none", false, None), "failed"));

        let (subject, body) = message(&event("all", true, Some(2)), &job("succeeded", 3), "n1");
        assert_eq!(
            subject,
            "Custos: archive job of policy nightly succeeded on node n1"
        );
        assert!(body.contains("a.trail\nb.trail\n… and 1 more\n"), "{body}");
        assert!(!body.contains("c.trail"));
        let (_, body) = message(&event("all", false, Some(2)), &job("succeeded", 3), "n1");
        assert!(!body.contains("a.trail"));
        let (_, body) = message(&event("errors-only", true, None), &job("failed", 3), "n1");
        assert!(
            !body.contains("a.trail"),
            "file lists go with type all only"
        );
    }
}
