//! `/api/transaction`, `/api/transaction/changes` and `/api/changelog`: status shapes, the
//! configuration lock, isolation, commit/rollback, commit validation and the revision history.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Client, Options, Server};

const GROUPS: &str = "/api/configuration/aaa/local_database/groups";
const USERS: &str = "/api/configuration/aaa/local_database/users";

/// `POST /api/transaction` (with `Content-Length: 0`) whatever the answer.
async fn try_open(client: &Client) -> crate::harness::Response {
    client
        .request(
            reqwest::Method::POST,
            "/api/transaction",
            Some(b""),
            &[("content-length", "0")],
        )
        .await
}

/// Creates (as admin, in its own committed transaction) users in the given groups, then returns
/// a logged-in client per user, in the same order.
async fn users_in(server: &Server, users: &[(&str, &str, &[&str])]) -> Vec<Client> {
    let admin = server.admin().await;
    admin.open_transaction().await;
    for (name, password, groups) in users {
        admin.create_user(name, password, groups).await;
    }
    let r = admin.commit().await;
    assert_eq!(r.status, StatusCode::OK, "commit of the users: {}", r.json);
    let r = admin.delete("/api/authentication").await;
    assert_eq!(r.status, StatusCode::OK);
    let mut clients = Vec::new();
    for (name, password, _) in users {
        clients.push(server.login(name, password).await);
    }
    clients
}

/// Number of committed revisions (`meta.match_count` of the changelog).
async fn revision_count(admin: &Client) -> i64 {
    let r = admin.get("/api/changelog").await;
    assert_eq!(r.status, StatusCode::OK, "changelog: {}", r.json);
    r.json["meta"]["match_count"].as_i64().expect("match_count")
}

/// Asserts a transaction status object in both the 8.0 and the 6.x shape.
fn assert_status(r: &crate::harness::Response, expected: &str) {
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["key"], "transaction", "{}", r.json);
    assert_eq!(r.json["body"]["status"], expected, "8.0 shape: {}", r.json);
    assert_eq!(
        r.json["transaction"]["status"], expected,
        "6.x shape: {}",
        r.json
    );
    assert_eq!(r.json["meta"]["href"], "/api/transaction", "{}", r.json);
    assert_eq!(r.json["meta"]["parent"], "/api", "{}", r.json);
}

fn group_path(key: &str) -> String {
    format!("{GROUPS}/{key}")
}

/// Keys listed by a collection GET.
async fn listed_keys(client: &Client, path: &str) -> Vec<String> {
    let r = client.get(path).await;
    assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", r.json);
    r.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["key"].as_str().expect("key").to_string())
        .collect()
}

#[tokio::test]
async fn status_is_closed_by_default_in_both_shapes() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let r = admin.get("/api/transaction").await;
    assert_status(&r, "closed");
    assert_eq!(r.json["body"]["commit_message"], "optional", "{}", r.json);
    assert!(r.json["meta"]["remaining_seconds"].is_u64(), "{}", r.json);
    assert!(
        r.json["meta"].get("changes").is_none(),
        "no changes link while closed: {}",
        r.json
    );
}

#[tokio::test]
async fn post_opens_and_reports_remaining_seconds() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let r = admin.open_transaction().await;
    assert_status(&r, "open");
    let remaining = r.json["meta"]["remaining_seconds"]
        .as_u64()
        .expect("remaining_seconds");
    assert!(
        remaining > 0 && remaining <= 600,
        "remaining_seconds {remaining} not in 1..=600"
    );

    let r = admin.get("/api/transaction").await;
    assert_status(&r, "open");
    let remaining = r.json["meta"]["remaining_seconds"]
        .as_u64()
        .expect("remaining_seconds");
    assert!(
        remaining > 0 && remaining <= 600,
        "remaining_seconds {remaining} not in 1..=600"
    );

    // Re-confirming the own transaction is fine.
    let r = admin.open_transaction().await;
    assert_status(&r, "open");

    // Another login does not own it: closed for it.
    let other = server.admin().await;
    assert_status(&other.get("/api/transaction").await, "closed");
}

#[tokio::test]
async fn post_without_content_length_is_411() {
    let server = Server::start().await;
    let admin = server.admin().await;
    // No body at all: reqwest sends neither Content-Length nor Transfer-Encoding.
    let r = admin
        .request(Method::POST, "/api/transaction", None, &[])
        .await;
    assert_eq!(r.status, StatusCode::LENGTH_REQUIRED, "{}", r.text);
    assert_eq!(r.error_type(), "LengthRequired", "{}", r.json);
    assert_status(&admin.get("/api/transaction").await, "closed");
}

#[tokio::test]
async fn empty_json_post_opens() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let r = admin
        .request(
            Method::POST,
            "/api/transaction",
            Some(b""),
            &[("content-length", "0")],
        )
        .await;
    assert_status(&r, "open");
}

#[tokio::test]
async fn meta_changes_appears_only_with_changes() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let r = admin.open_transaction().await;
    assert!(
        r.json["meta"].get("changes").is_none(),
        "no changes yet: {}",
        r.json
    );
    let r = admin.get("/api/transaction").await;
    assert!(
        r.json["meta"].get("changes").is_none(),
        "no changes yet: {}",
        r.json
    );

    admin.create(GROUPS, &json!({"name": "ops"})).await;
    let r = admin.get("/api/transaction").await;
    assert_status(&r, "open");
    assert_eq!(
        r.json["meta"]["changes"], "/api/transaction/changes",
        "{}",
        r.json
    );

    // Another login never sees the owner's changes link.
    let other = server.admin().await;
    let r = other.get("/api/transaction").await;
    assert!(r.json["meta"].get("changes").is_none(), "{}", r.json);

    let r = admin.delete("/api/transaction").await;
    assert_eq!(r.status, StatusCode::OK);
    let r = admin.get("/api/transaction").await;
    assert_status(&r, "closed");
    assert!(
        r.json["meta"].get("changes").is_none(),
        "after rollback: {}",
        r.json
    );
}

#[tokio::test]
async fn changes_list_create_replace_delete_without_secrets() {
    let server = Server::start().await;
    let admin = server.admin().await;
    // Something committed to delete later.
    admin.open_transaction().await;
    let doomed = admin.create(GROUPS, &json!({"name": "doomed"})).await;
    assert_eq!(admin.commit().await.status, StatusCode::OK);

    admin.open_transaction().await;
    let r = admin.get("/api/transaction/changes").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["changes"], json!([]), "{}", r.json);
    assert_eq!(r.json["meta"]["href"], "/api/transaction/changes");
    assert_eq!(r.json["meta"]["parent"], "/api/transaction");
    assert_eq!(r.json["meta"]["transaction"], "/api/transaction");

    let password = "Sup3r-secret-plain";
    let user = admin.create_user("carol", password, &["search"]).await;
    let search = admin.group_key("search").await;
    let created = admin
        .create(GROUPS, &json!({"name": "fresh", "members": [user]}))
        .await;
    let r = admin.delete(&group_path(&doomed)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);

    let r = admin.get("/api/transaction/changes").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert!(
        !r.text.contains("argon2"),
        "a password hash leaked: {}",
        r.text
    );
    assert!(
        !r.text.contains(password),
        "a plain password leaked: {}",
        r.text
    );
    let changes = r.json["changes"].as_array().expect("changes");
    let find = |path: &str| -> &Value {
        changes
            .iter()
            .find(|c| c["path"] == path)
            .unwrap_or_else(|| panic!("no change for {path}: {}", r.json))
    };

    let c = find(&group_path(&created));
    assert_eq!(c["type"], "create", "{c}");
    assert!(
        c.get("old_value").is_none_or(Value::is_null),
        "create has no old value: {c}"
    );
    assert_eq!(c["new_value"]["name"], "fresh", "{c}");

    let c = find(&format!("{USERS}/{user}"));
    assert_eq!(c["type"], "create", "{c}");
    assert_eq!(c["new_value"]["name"], "carol", "{c}");

    let c = find(&group_path(&search));
    assert_eq!(c["type"], "replace", "{c}");
    assert_eq!(c["old_value"]["members"], json!([]), "{c}");
    assert_eq!(c["new_value"]["name"], "search", "{c}");
    assert_eq!(
        c["new_value"]["members"].as_array().map(Vec::len),
        Some(1),
        "{c}"
    );

    let c = find(&group_path(&doomed));
    assert_eq!(c["type"], "delete", "{c}");
    assert_eq!(c["old_value"]["name"], "doomed", "{c}");
    assert!(
        c.get("new_value").is_none_or(Value::is_null),
        "delete has no new value: {c}"
    );

    // The password object appears, showing only its creation time.
    let pw = changes
        .iter()
        .find(|c| {
            c["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/api/configuration/passwords/"))
        })
        .unwrap_or_else(|| panic!("no password change: {}", r.json));
    assert_eq!(pw["type"], "create", "{pw}");
    let shown = pw["new_value"]
        .as_object()
        .expect("password new_value object");
    assert!(
        shown.keys().all(|k| k == "created"),
        "password shows more than `created`: {pw}"
    );

    // The committed changelog entry is secret-free too.
    let r = admin
        .put(
            "/api/transaction",
            &json!({"status": "commit", "message": "carol"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = admin.get("/api/changelog?limit=1").await;
    let newest = r.json["items"][0]["key"].as_str().expect("key").to_string();
    let r = admin.get(&format!("/api/changelog/{newest}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert!(
        !r.text.contains("argon2"),
        "a password hash leaked in the changelog: {}",
        r.text
    );
    assert!(
        !r.text.contains(password),
        "a plain password leaked in the changelog: {}",
        r.text
    );
}

#[tokio::test]
async fn owner_sees_uncommitted_changes_others_do_not() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let other = server.admin().await;
    admin.open_transaction().await;
    let key = admin.create(GROUPS, &json!({"name": "isolated"})).await;

    let r = admin.get(&group_path(&key)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "owner reads its own change: {}",
        r.json
    );
    assert_eq!(r.json["body"]["name"], "isolated");
    assert!(listed_keys(&admin, GROUPS).await.contains(&key));

    let r = other.get(&group_path(&key)).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "other login must not see it: {}",
        r.json
    );
    assert_eq!(r.error_type(), "NotFound");
    assert!(!listed_keys(&other, GROUPS).await.contains(&key));

    assert_eq!(admin.commit().await.status, StatusCode::OK);
    let r = other.get(&group_path(&key)).await;
    assert_eq!(r.status, StatusCode::OK, "visible after commit: {}", r.json);
    assert_eq!(r.json["body"]["name"], "isolated");
}

#[tokio::test]
async fn second_login_is_locked_out_until_commit_or_rollback() {
    let server = Server::start().await;
    let clients = users_in(&server, &[("ops", "Ops-pass-1", &["auth-write"])]).await;
    let ops = &clients[0];
    let admin = server.admin().await;

    ops.open_transaction().await;
    let held = ops.create(GROUPS, &json!({"name": "held"})).await;

    let r = try_open(&admin).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.json);
    assert_eq!(r.error_type(), "ConfigurationLocked", "{}", r.json);
    assert_eq!(r.json["error"]["details"]["locked_by"], "ops", "{}", r.json);

    let r = admin.post(GROUPS, &json!({"name": "intruder"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.json);
    assert_eq!(r.error_type(), "ConfigurationLocked", "{}", r.json);
    assert_eq!(r.json["error"]["details"]["locked_by"], "ops", "{}", r.json);

    let r = admin.delete(&group_path(&held)).await;
    assert!(
        r.status == StatusCode::CONFLICT || r.status == StatusCode::NOT_FOUND,
        "admin cannot touch the held transaction: {} {}",
        r.status,
        r.json
    );

    // The holder commits: the lock is free, and the admin's blocked write did not sneak in.
    assert_eq!(ops.commit().await.status, StatusCode::OK);
    let r = admin.open_transaction().await;
    assert_status(&r, "open");
    let r = admin.get(&group_path(&held)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);

    // Now the admin holds it; ops is locked out, naming admin.
    let r = try_open(ops).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.json);
    assert_eq!(
        r.json["error"]["details"]["locked_by"], "admin",
        "{}",
        r.json
    );

    // After a rollback the other login can open.
    assert_eq!(
        admin.delete("/api/transaction").await.status,
        StatusCode::OK
    );
    let r = ops.open_transaction().await;
    assert_status(&r, "open");
}

#[tokio::test]
async fn rollback_discards_changes() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let before = revision_count(&admin).await;
    admin.open_transaction().await;
    let key = admin.create(GROUPS, &json!({"name": "ephemeral"})).await;
    let r = admin.delete("/api/transaction").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(
        r.json,
        json!({"meta": {"href": "/api/transaction", "parent": "/api"}})
    );
    assert_status(&admin.get("/api/transaction").await, "closed");
    let r = admin.get(&group_path(&key)).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "rolled back object still there: {}",
        r.json
    );
    assert_eq!(
        revision_count(&admin).await,
        before,
        "a rollback must not add a revision"
    );
    let r = admin.get("/api/transaction/changes").await;
    assert_eq!(r.json["changes"], json!([]), "{}", r.json);

    // Rolling back with nothing open is still 200.
    let r = admin.delete("/api/transaction").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

#[tokio::test]
async fn commit_without_transaction_is_409() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let r = admin.commit().await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.json);
    assert_eq!(r.error_type(), "NoTransaction", "{}", r.json);

    // Same after a completed commit (the transaction is closed again).
    admin.open_transaction().await;
    admin.create(GROUPS, &json!({"name": "once"})).await;
    assert_eq!(admin.commit().await.status, StatusCode::OK);
    let r = admin.commit().await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.json);
    assert_eq!(r.error_type(), "NoTransaction", "{}", r.json);
}

#[tokio::test]
async fn rejected_commit_keeps_transaction_open_and_can_be_fixed() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let before = revision_count(&admin).await;
    admin.open_transaction().await;
    // Duplicate names are accepted per write; only the commit checks them.
    let first = admin.create(GROUPS, &json!({"name": "twin"})).await;
    let second = admin.create(GROUPS, &json!({"name": "twin"})).await;

    let r = admin.commit().await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    assert_eq!(r.error_type(), "SemanticError", "{}", r.json);
    let errors = r.json["error"]["details"]["errors"]
        .as_array()
        .expect("details.errors");
    for key in [&first, &second] {
        let path = group_path(key);
        assert!(
            errors
                .iter()
                .any(|e| e["path"] == path.as_str() && e["field"] == "name"),
            "{path} not listed with field name: {}",
            r.json
        );
    }

    // Still open, changes kept.
    let r = admin.get("/api/transaction").await;
    assert_status(&r, "open");
    let r = admin.get("/api/transaction/changes").await;
    assert_eq!(
        r.json["changes"].as_array().map(Vec::len),
        Some(2),
        "{}",
        r.json
    );
    assert_eq!(
        revision_count(&admin).await,
        before,
        "a rejected commit must not add a revision"
    );

    // Fix and commit.
    let r = admin
        .put(
            &group_path(&second),
            &json!({"name": "twin-2", "members": []}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = admin.commit().await;
    assert_status(&r, "closed");
    assert_eq!(revision_count(&admin).await, before + 1);
    let other = server.admin().await;
    assert_eq!(
        other.get(&group_path(&first)).await.json["body"]["name"],
        "twin"
    );
    assert_eq!(
        other.get(&group_path(&second)).await.json["body"]["name"],
        "twin-2"
    );
}

#[tokio::test]
async fn commit_messages_are_recorded_in_the_changelog() {
    let server = Server::start().await;
    let admin = server.admin().await;

    admin.open_transaction().await;
    let a = admin.create(GROUPS, &json!({"name": "msg-a"})).await;
    let r = admin
        .put(
            "/api/transaction",
            &json!({"status": "commit", "message": "first via message"}),
        )
        .await;
    assert_status(&r, "closed");

    admin.open_transaction().await;
    let b = admin.create(GROUPS, &json!({"name": "msg-b"})).await;
    let r = admin
        .put(
            "/api/transaction",
            &json!({"status": "commit", "commit_message": "second via commit_message"}),
        )
        .await;
    assert_status(&r, "closed");

    let r = admin.get("/api/changelog").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let items = r.json["items"].as_array().expect("items");
    assert_eq!(items.len(), 3, "{}", r.json);
    assert_eq!(items[0]["key"], "3");
    assert_eq!(
        items[0]["body"]["message"], "second via commit_message",
        "{}",
        r.json
    );
    assert_eq!(items[0]["body"]["author"], "admin", "{}", r.json);
    assert!(
        items[0]["body"]["committed_at"]
            .as_i64()
            .is_some_and(|t| t > 1_600_000_000),
        "{}",
        r.json
    );
    assert_eq!(items[1]["key"], "2");
    assert_eq!(
        items[1]["body"]["message"], "first via message",
        "{}",
        r.json
    );
    assert_eq!(items[1]["meta"]["href"], "/api/changelog/2", "{}", r.json);

    for (revision, key, message) in [
        (2, &a, "first via message"),
        (3, &b, "second via commit_message"),
    ] {
        let r = admin.get(&format!("/api/changelog/{revision}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        assert_eq!(r.json["key"], revision.to_string(), "{}", r.json);
        assert_eq!(r.json["body"]["author"], "admin", "{}", r.json);
        assert_eq!(r.json["body"]["message"], message, "{}", r.json);
        let changes = r.json["body"]["changes"].as_array().expect("changes");
        assert_eq!(changes.len(), 1, "{}", r.json);
        assert_eq!(changes[0]["type"], "create");
        assert_eq!(changes[0]["path"], group_path(key).as_str());
    }
}

#[tokio::test]
async fn put_with_other_status_is_a_syntactic_error() {
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    admin.create(GROUPS, &json!({"name": "kept"})).await;
    for body in [
        json!({"status": "nonsense"}),
        json!({}),
        json!({"status": 1}),
        json!({"status": "open"}),
    ] {
        let r = admin.put("/api/transaction", &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.json);
        assert_eq!(r.error_type(), "SyntacticError", "{body}: {}", r.json);
    }
    // Nothing was committed or discarded.
    let r = admin.get("/api/transaction").await;
    assert_status(&r, "open");
    assert_eq!(r.json["meta"]["changes"], "/api/transaction/changes");
}

#[tokio::test]
async fn writes_need_a_transaction_by_default() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let r = admin.post(GROUPS, &json!({"name": "no-tx"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.json);
    assert_eq!(r.error_type(), "NoTransaction", "{}", r.json);
    assert_status(&admin.get("/api/transaction").await, "closed");
}

#[tokio::test]
async fn auto_open_transaction_opens_on_first_write() {
    let server = Server::start_with(Options {
        args: vec!["--auto-open-transaction".into()],
        ..Options::default()
    })
    .await;
    let admin = server.admin().await;
    let key = admin.create(GROUPS, &json!({"name": "auto"})).await;
    let r = admin.get("/api/transaction").await;
    assert_status(&r, "open");
    assert_eq!(
        r.json["meta"]["changes"], "/api/transaction/changes",
        "{}",
        r.json
    );

    // It is a real transaction: the lock holds, and the commit publishes.
    let other = server.admin().await;
    let r = other.post(GROUPS, &json!({"name": "other"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.json);
    assert_eq!(r.error_type(), "ConfigurationLocked", "{}", r.json);
    assert_eq!(
        other.get(&group_path(&key)).await.status,
        StatusCode::NOT_FOUND
    );

    assert_status(&admin.commit().await, "closed");
    assert_eq!(other.get(&group_path(&key)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn logout_releases_the_lock_and_discards_changes() {
    let server = Server::start().await;
    let first = server.admin().await;
    let second = server.admin().await;
    first.open_transaction().await;
    let key = first.create(GROUPS, &json!({"name": "abandoned"})).await;

    let r = try_open(&second).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.json);
    assert_eq!(
        r.json["error"]["details"]["locked_by"], "admin",
        "{}",
        r.json
    );

    let r = first.delete("/api/authentication").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);

    let r = second.open_transaction().await;
    assert_status(&r, "open");
    let r = second.get(&group_path(&key)).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "logout must roll back: {}",
        r.json
    );
}

#[tokio::test]
async fn user_without_write_privilege_cannot_open() {
    let server = Server::start().await;
    let clients = users_in(&server, &[("viewer", "View3r-pass", &["basic-view"])]).await;
    let viewer = &clients[0];
    let r = try_open(viewer).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.json);
    assert_eq!(r.error_type(), "Unauthorized", "{}", r.json);
    assert_eq!(
        r.json["error"]["details"]["path"], "/api/transaction",
        "{}",
        r.json
    );
    // Reading the status is fine, and it stays closed; the lock is not taken.
    assert_status(&viewer.get("/api/transaction").await, "closed");
    let admin = server.admin().await;
    admin.open_transaction().await;
}

#[tokio::test]
async fn changelog_history_paging_and_access() {
    let server = Server::start().await;
    let admin = server.admin().await;

    // A fresh installation has exactly revision 1, by custos.
    let r = admin.get("/api/changelog").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["meta"]["match_count"], 1, "{}", r.json);
    assert_eq!(r.json["meta"]["href"], "/api/changelog", "{}", r.json);
    let items = r.json["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{}", r.json);
    assert_eq!(items[0]["key"], "1");
    assert_eq!(items[0]["body"]["author"], "custos", "{}", r.json);
    let r = admin.get("/api/changelog/1").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["key"], "1");
    assert_eq!(r.json["body"]["author"], "custos", "{}", r.json);
    assert!(r.json["body"]["schema_version"].is_i64(), "{}", r.json);
    assert!(
        !r.json["body"]["changes"]
            .as_array()
            .expect("changes")
            .is_empty(),
        "{}",
        r.json
    );
    assert!(
        !r.text.contains("argon2"),
        "initial revision shows the admin's hash: {}",
        r.text
    );

    // Users: one without the changelog group, one with it (this is revision 2).
    let clients = users_in(
        &server,
        &[
            ("nolog", "No-log-pass-1", &["basic-view"]),
            ("auditor", "Aud1tor-pass", &["changelog"]),
        ],
    )
    .await;
    for i in 0..2 {
        admin.open_transaction().await;
        admin
            .create(GROUPS, &json!({"name": format!("rev-{i}")}))
            .await;
        let r = admin
            .put(
                "/api/transaction",
                &json!({"status": "commit", "message": format!("m{i}")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    }

    let keys = |r: &crate::harness::Response| -> Vec<String> {
        r.json["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["key"].as_str().unwrap().to_string())
            .collect()
    };
    let r = admin.get("/api/changelog").await;
    assert_eq!(keys(&r), ["4", "3", "2", "1"], "newest first: {}", r.json);
    assert_eq!(r.json["meta"]["match_count"], 4);

    let r = admin.get("/api/changelog?limit=2").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(keys(&r), ["4", "3"], "{}", r.json);
    assert_eq!(r.json["meta"]["limit"], 2);
    assert_eq!(r.json["meta"]["match_count"], 4);

    let r = admin.get("/api/changelog?limit=2&offset=1").await;
    assert_eq!(keys(&r), ["3", "2"], "{}", r.json);
    assert_eq!(r.json["meta"]["offset"], 1);

    let r = admin.get("/api/changelog?offset=3").await;
    assert_eq!(keys(&r), ["1"], "{}", r.json);
    let r = admin.get("/api/changelog?offset=10").await;
    assert_eq!(keys(&r), Vec::<String>::new(), "{}", r.json);

    let r = admin.get("/api/changelog/3").await;
    assert_eq!(r.json["body"]["message"], "m0", "{}", r.json);
    assert_eq!(r.json["body"]["author"], "admin", "{}", r.json);

    let r = admin.get("/api/changelog/99").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.json);
    assert_eq!(r.error_type(), "NotFound", "{}", r.json);

    let (nolog, auditor) = (&clients[0], &clients[1]);
    for path in ["/api/changelog", "/api/changelog/1"] {
        let r = nolog.get(path).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.json);
        assert_eq!(r.error_type(), "Unauthorized", "{path}: {}", r.json);
        assert_eq!(r.json["error"]["details"]["path"], path, "{}", r.json);
        let r = auditor.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.json);
    }
    let r = auditor.get("/api/changelog").await;
    assert_eq!(keys(&r), ["4", "3", "2", "1"], "{}", r.json);
}
