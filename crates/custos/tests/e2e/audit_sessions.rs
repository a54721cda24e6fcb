//! Recorded sessions (`/api/audit/sessions`) and active sessions (`/api/active-sessions`): listing
//! shapes, paging limits, error types, guards, and the `custos sessions` command line.
//! Sessions with content come with the gateway; here the server has recorded none.

use std::process::Output;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{ADMIN_PASSWORD, Server};

const SESSIONS: &str = "/api/audit/sessions";
const ACTIVE: &str = "/api/active-sessions";

#[tokio::test]
async fn an_empty_session_listing_has_sps_paging_meta() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let r = admin.get(SESSIONS).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["items"], json!([]));
    let meta = &r.json["meta"];
    assert_eq!(meta["href"], SESSIONS);
    assert_eq!(meta["parent"], "/api/audit");
    assert_eq!(meta["match_count"], 0);
    assert_eq!(meta["limit"], 500);
    assert_eq!(meta["offset"], 0);
    assert_eq!(
        meta["first"],
        "/api/audit/sessions?limit=500&offset=0&fields="
    );
    assert_eq!(
        meta["last"],
        "/api/audit/sessions?limit=500&offset=0&fields="
    );
    assert_eq!(meta["previous"], Value::Null);
    assert_eq!(meta["next"], Value::Null);
    assert_eq!(meta["fields"], json!([]));

    // The audit directory lists it.
    let audit = admin.get("/api/audit").await;
    assert_eq!(
        audit.json["items"],
        json!([{"key": "sessions", "meta": {"href": SESSIONS}}])
    );
}

#[tokio::test]
async fn an_unknown_session_key_is_not_found() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let path = format!("{SESSIONS}/NoSuchSessionKey0000000");
    let r = admin.get(&path).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.json);
    assert_eq!(r.error_type(), "NotFound");
    assert_eq!(r.json["error"]["details"]["path"], path.as_str());
    assert_eq!(r.json["meta"]["parent"], SESSIONS);
}

#[tokio::test]
async fn paging_clamps_the_limit_and_refuses_what_sps_refuses() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let r = admin.get(&format!("{SESSIONS}?limit=100000")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["meta"]["limit"], 500, "clamped, not refused");
    let r = admin.get(&format!("{SESSIONS}?limit=7&offset=10000")).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "offset 10000 is the last allowed: {}",
        r.json
    );
    assert_eq!(
        r.json["meta"]["previous"],
        "/api/audit/sessions?limit=7&offset=9993&fields="
    );

    for (query, field) in [
        ("limit=abc", "limit"),
        ("offset=-1", "offset"),
        ("offset=10001", "offset"),
    ] {
        let r = admin.get(&format!("{SESSIONS}?{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.json);
        assert_eq!(r.error_type(), "SyntacticError", "{query}");
        assert_eq!(r.json["error"]["details"]["field"], field, "{query}");
    }
}

#[tokio::test]
async fn a_query_is_checked_even_when_nothing_is_recorded() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let r = admin.get(&format!("{SESSIONS}?q=active%3Atrue")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["meta"]["match_count"], 0);
    let r = admin.get(&format!("{SESSIONS}?q=active%3A")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    assert_eq!(r.error_type(), "InvalidQuery");
    assert_eq!(r.json["error"]["details"]["field"], "q");
    // Unknown parameters are ignored, as SPS does.
    let r = admin
        .get(&format!(
            "{SESSIONS}?sort=-start_time&format=json&colour=red"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

#[tokio::test]
async fn active_sessions_list_empty_and_delete_checks_the_id() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let r = admin.get(ACTIVE).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["items"], json!([]));
    assert_eq!(r.json["meta"]["href"], ACTIVE);
    assert_eq!(r.json["meta"]["parent"], "/api");

    for path in [ACTIVE.to_string(), format!("{ACTIVE}?id=")] {
        let r = admin.delete(&path).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.json);
        assert_eq!(r.error_type(), "SessionIdMissing", "{path}");
    }
    let r = admin
        .delete(&format!("{ACTIVE}?id=svc/rpokH8fD9kx6CaxNLznKx2/test:12"))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.json);
    assert_eq!(r.error_type(), "SessionCouldNotBeFound");
    assert_eq!(
        r.json["error"]["details"]["id"],
        "svc/rpokH8fD9kx6CaxNLznKx2/test:12"
    );

    let r = admin.request(Method::PUT, ACTIVE, Some(b"{}"), &[]).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{}", r.json);
    assert_eq!(r.headers["allow"], "DELETE, GET");
}

#[tokio::test]
async fn session_endpoints_follow_the_search_and_active_sessions_privileges() {
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    admin
        .create_user("searcher", "Search3r-pass", &["search"])
        .await;
    admin
        .create_user("watcher", "Watch3r-pass", &["sessions-view"])
        .await;
    admin
        .create_user("closer", "Clos3r-pass", &["sessions-write"])
        .await;
    admin.commit_ok().await;
    let unknown = format!("{ACTIVE}?id=svc/nope/x:1");

    let searcher = server.login("searcher", "Search3r-pass").await;
    assert_eq!(searcher.get(SESSIONS).await.status, StatusCode::OK);
    let r = searcher.get(ACTIVE).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.json);
    assert_eq!(r.error_type(), "Unauthorized");

    let watcher = server.login("watcher", "Watch3r-pass").await;
    assert_eq!(watcher.get(ACTIVE).await.status, StatusCode::OK);
    let r = watcher.delete(&unknown).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.json);
    assert_eq!(r.error_type(), "Unauthorized");
    assert_eq!(watcher.get(SESSIONS).await.status, StatusCode::FORBIDDEN);

    let closer = server.login("closer", "Clos3r-pass").await;
    let r = closer.delete(&unknown).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "passes the guard: {}",
        r.json
    );
    assert_eq!(r.error_type(), "SessionCouldNotBeFound");

    // user_info offers exactly what each may do.
    let methods = |info: &Value| -> Option<Value> {
        info["endpoints"]
            .as_array()?
            .iter()
            .find(|e| e["url"] == ACTIVE)
            .map(|e| e["methods"].clone())
    };
    assert_eq!(
        methods(&watcher.get("/api/user_info").await.json),
        Some(json!(["GET"]))
    );
    assert_eq!(
        methods(&closer.get("/api/user_info").await.json),
        Some(json!(["DELETE", "GET"]))
    );
    assert_eq!(methods(&searcher.get("/api/user_info").await.json), None);
}

/// Runs `custos sessions <args>` against `server` with `password` in CUSTOS_PASSWORD.
async fn cli(server: &Server, password: Option<&str>, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_custos"));
    command
        .arg("sessions")
        .args(args)
        .arg("--url")
        .arg(&server.base)
        .arg("--data-dir")
        .arg(server.data_dir())
        .env_remove("CUSTOS_URL")
        .env_remove("CUSTOS_USER")
        .env_remove("CUSTOS_PASSWORD")
        .env_remove("CUSTOS_DATA_DIR");
    if let Some(password) = password {
        command.env("CUSTOS_PASSWORD", password);
    }
    command.output().await.expect("run custos sessions")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn the_sessions_command_lists_kills_and_reports_server_errors() {
    let server = Server::start().await;

    let out = cli(&server, Some(ADMIN_PASSWORD), &["list"]).await;
    assert!(out.status.success(), "list failed: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "", "no session lines");

    let out = cli(&server, Some(ADMIN_PASSWORD), &["kill", "svc/nope/x:1"]).await;
    assert!(
        !out.status.success(),
        "killing an unknown session succeeded"
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains("SessionCouldNotBeFound"), "{stderr}");

    let out = cli(&server, Some("wrong-password"), &["list"]).await;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("AuthenticationFailure"), "{stderr}");

    let out = cli(&server, None, &["list"]).await;
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("CUSTOS_PASSWORD"), "{stderr}");
}
