//! Durability: committed revisions survive `kill -9`; a commit interrupted by `kill -9` leaves the
//! previous configuration, complete and usable (all or nothing).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{ADMIN_PASSWORD, Client, Server};

const GROUPS: &str = "/api/configuration/aaa/local_database/groups";
const USERS: &str = "/api/configuration/aaa/local_database/users";

/// A plain reqwest client for requests that may hit a dying server: errors are returned, not
/// panicked on (the harness client panics on transport errors). Logged in as admin (cookie).
struct Fragile {
    http: reqwest::Client,
    base: String,
}

impl Fragile {
    async fn connect(server: &Server) -> Fragile {
        let pem =
            std::fs::read(server.data_dir().join("tls/server.crt")).expect("server certificate");
        let cert = reqwest::Certificate::from_pem(&pem).expect("pem");
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .tls_certs_only([cert])
            .https_only(true)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let r = http
            .get(format!("{}/api/authentication", server.base))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .expect("login");
        assert_eq!(r.status(), StatusCode::OK, "login");
        Fragile {
            http,
            base: server.base.clone(),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), reqwest::Error> {
        let mut rb = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(body) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let r = rb.send().await?;
        let status = r.status();
        let text = r.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// Opens a transaction, creates `names` as groups and commits. Ok(true) only if the commit
    /// was acknowledged with 200.
    async fn commit_groups(&self, names: &[String]) -> Result<bool, reqwest::Error> {
        let (s, _) = self
            .send(reqwest::Method::POST, "/api/transaction", Some(&json!({})))
            .await?;
        if s != StatusCode::OK {
            return Ok(false);
        }
        for name in names {
            let (s, _) = self
                .send(reqwest::Method::POST, GROUPS, Some(&json!({"name": name})))
                .await?;
            if s != StatusCode::CREATED {
                return Ok(false);
            }
        }
        let (s, _) = self
            .send(
                reqwest::Method::PUT,
                "/api/transaction",
                Some(&json!({"status": "commit"})),
            )
            .await?;
        Ok(s == StatusCode::OK)
    }
}

async fn revision_count(admin: &Client) -> i64 {
    let r = admin.get("/api/changelog").await;
    assert_eq!(r.status, StatusCode::OK, "changelog: {}", r.json);
    r.json["meta"]["match_count"].as_i64().expect("match_count")
}

/// Names of all groups in the committed configuration, as seen by `client`.
async fn group_names(client: &Client) -> Vec<String> {
    let r = client.get(GROUPS).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let mut names = Vec::new();
    for item in r.json["items"].as_array().expect("items") {
        let key = item["key"].as_str().expect("key");
        let g = client.get(&format!("{GROUPS}/{key}")).await;
        assert_eq!(g.status, StatusCode::OK, "{}", g.json);
        names.push(g.json["body"]["name"].as_str().expect("name").to_string());
    }
    names
}

async fn group_count(client: &Client) -> usize {
    let r = client.get(GROUPS).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    r.json["items"].as_array().expect("items").len()
}

/// After a restart: the admin logs in with the original password and can commit a change.
async fn assert_usable(server: &Server, marker: &str) {
    let admin = server.admin().await;
    let r = admin.open_transaction().await;
    assert_eq!(r.json["body"]["status"], "open", "{}", r.json);
    let key = admin.create(GROUPS, &json!({"name": marker})).await;
    let r = admin.commit().await;
    assert_eq!(r.status, StatusCode::OK, "commit after restart: {}", r.json);
    let other = server.admin().await;
    assert_eq!(
        other.get(&format!("{GROUPS}/{key}")).await.json["body"]["name"],
        marker
    );
}

#[tokio::test]
async fn committed_objects_survive_kill9() {
    let mut server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let user = admin
        .create_user("survivor", "Surv1vor-pass", &["auth-view"])
        .await;
    let group = admin
        .create(GROUPS, &json!({"name": "kept", "members": [user]}))
        .await;
    let r = admin
        .put(
            "/api/transaction",
            &json!({"status": "commit", "message": "before crash"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let revisions = revision_count(&admin).await;
    let user_body = admin.get(&format!("{USERS}/{user}")).await.json["body"].clone();

    server.kill9().await;
    server.restart().await;

    let admin = server.admin().await;
    assert_eq!(
        revision_count(&admin).await,
        revisions,
        "revision count changed over a restart"
    );
    let r = admin.get(&format!("{GROUPS}/{group}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["body"]["name"], "kept");
    assert_eq!(
        r.json["body"]["members"][0]["key"],
        user.as_str(),
        "{}",
        r.json
    );
    let r = admin.get(&format!("{USERS}/{user}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["body"], user_body, "user changed over a restart");
    let r = admin.get("/api/changelog?limit=1").await;
    assert_eq!(
        r.json["items"][0]["body"]["message"], "before crash",
        "{}",
        r.json
    );

    // The user's password hash survived too, and the group membership still grants its privilege.
    let survivor = server.login("survivor", "Surv1vor-pass").await;
    let r = survivor.get(USERS).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "auth-view privilege lost over a restart: {}",
        r.json
    );
}

#[tokio::test]
async fn kill9_inside_a_commit_keeps_the_old_configuration() {
    let mut server = Server::start().await;
    let admin = server.admin().await;
    let revisions = revision_count(&admin).await;
    let groups_before = group_count(&admin).await;

    server
        .restart_with_env(vec![("CUSTOS_FAULT_COMMIT_PAUSE_MS".into(), "3000".into())])
        .await;
    let fragile = Fragile::connect(&server).await;
    let (s, body) = fragile
        .send(reqwest::Method::POST, "/api/transaction", Some(&json!({})))
        .await
        .expect("open");
    assert_eq!(s, StatusCode::OK, "{body}");
    for i in 0..50 {
        let (s, body) = fragile
            .send(
                reqwest::Method::POST,
                GROUPS,
                Some(&json!({"name": format!("tag-{i}")})),
            )
            .await
            .expect("create");
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
    let committing = tokio::spawn(async move {
        fragile
            .send(
                reqwest::Method::PUT,
                "/api/transaction",
                Some(&json!({"status": "commit"})),
            )
            .await
            .map(|(s, _)| s)
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        !committing.is_finished(),
        "the commit returned before the injected pause ended"
    );
    server.kill9().await;
    let outcome = committing.await.expect("task");
    assert!(
        outcome.as_ref().map_or(true, |s| *s != StatusCode::OK),
        "a commit killed mid-way was acknowledged: {outcome:?}"
    );

    server.restart_with_env(vec![]).await;
    let admin = server.admin().await;
    assert_eq!(
        revision_count(&admin).await,
        revisions,
        "the interrupted commit left a revision"
    );
    assert_eq!(
        group_count(&admin).await,
        groups_before,
        "the interrupted commit left groups"
    );
    let names = group_names(&admin).await;
    assert!(
        !names.iter().any(|n| n.starts_with("tag-")),
        "interrupted commit partly applied: {names:?}"
    );
    // No transaction survives a restart either.
    assert_eq!(
        admin.get("/api/transaction").await.json["body"]["status"],
        "closed"
    );

    assert_usable(&server, "after-crash").await;
    assert_eq!(revision_count(&admin).await, revisions + 1);
}

#[tokio::test]
async fn kill9_at_arbitrary_points_is_all_or_nothing() {
    const BATCH: usize = 8;
    let mut server = Server::start().await;
    let admin = server.admin().await;
    let builtin_groups = group_count(&admin).await;
    let initial_revisions = revision_count(&admin).await;
    drop(admin);

    // Fixed, irregular delays: the kill lands at different points of the commit loop.
    let delays = [173u64, 421, 97, 733, 311];
    // Batches known to be committed (acknowledged, or found after a restart).
    let mut committed_before = 0usize;
    for (iteration, delay) in delays.iter().enumerate() {
        let fragile = Fragile::connect(&server).await;
        let acknowledged = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&acknowledged);
        let worker = tokio::spawn(async move {
            for batch in 0.. {
                let names: Vec<String> = (0..BATCH)
                    .map(|g| format!("it{iteration}-b{batch}-g{g}"))
                    .collect();
                match fragile.commit_groups(&names).await {
                    Ok(true) => {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(false) => panic!("batch {batch} was refused by a healthy server"),
                    Err(_) => return, // the server died
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(*delay)).await;
        server.kill9().await;
        let outcome = worker.await;
        assert!(
            outcome.is_ok(),
            "iteration {iteration}: the commit loop failed: {outcome:?}"
        );
        let acked = acknowledged.load(Ordering::SeqCst);

        server.restart().await;
        let admin = server.admin().await;
        let tagged = group_count(&admin).await - builtin_groups;
        let revisions = revision_count(&admin).await - initial_revisions;
        assert_eq!(
            tagged % BATCH,
            0,
            "iteration {iteration} (kill after {delay} ms): {tagged} groups is not whole batches"
        );
        let committed = tagged / BATCH;
        assert_eq!(
            committed as i64, revisions,
            "iteration {iteration}: {committed} batches present but {revisions} revisions recorded"
        );
        assert!(
            committed >= committed_before + acked,
            "iteration {iteration}: {committed_before} + {acked} acknowledged batches but only {committed} survived"
        );
        // At most the one commit in flight at the kill may have landed without an answer.
        assert!(
            committed <= committed_before + acked + 1,
            "iteration {iteration}: {committed} batches, more than {committed_before} + {acked} acknowledged plus one in flight"
        );
        committed_before = committed;
    }
    assert!(
        committed_before > 0,
        "no batch was ever committed: the kills never raced a commit loop"
    );

    // The surviving batches are complete by name, too.
    let admin = server.admin().await;
    let names = group_names(&admin).await;
    let mut batches = std::collections::BTreeMap::<String, usize>::new();
    for name in names.iter().filter(|n| n.starts_with("it")) {
        let batch = name.rsplit_once("-g").expect("tagged name").0.to_string();
        *batches.entry(batch).or_default() += 1;
    }
    for (batch, count) in &batches {
        assert_eq!(*count, BATCH, "batch {batch} is partial");
    }
    assert_usable(&server, "after-loop").await;
}

#[tokio::test]
async fn admin_logs_in_with_the_original_password_after_restarts() {
    let mut server = Server::start().await;
    server.kill9().await;
    server.restart().await;
    let admin = server.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(
        admin.get("/api/user_info").await.json["user"]["name"],
        "admin"
    );
    server.restart().await;
    let admin = server.login("admin", ADMIN_PASSWORD).await;
    let r = admin
        .get("/api/configuration/aaa/local_database/users/-1")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["body"]["name"], "admin");
    // The only revision is still the initial one: a restart writes nothing.
    assert_eq!(revision_count(&admin).await, 1);
}

#[tokio::test]
async fn restart_does_not_reset_a_changed_admin_password() {
    // The harness passes the original --admin-password on every start; after the password was
    // changed over REST, that argument must not reset it (it applies to the first start only).
    let mut server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let pw = admin
        .create(
            "/api/configuration/passwords",
            &json!({"plain": "N3w-admin-password"}),
        )
        .await;
    let r = admin
        .put(
            &format!("{USERS}/-1"),
            &json!({"name": "admin", "password": pw}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(admin.commit().await.status, StatusCode::OK);

    server.kill9().await;
    server.restart().await;
    let r = server
        .client()
        .with_basic("admin", ADMIN_PASSWORD)
        .get("/api/authentication")
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the start argument reset the admin password: {}",
        r.json
    );
    assert_eq!(r.error_type(), "AuthenticationFailure", "{}", r.json);
    let admin = server.login("admin", "N3w-admin-password").await;
    assert_eq!(revision_count(&admin).await, 2);
}
