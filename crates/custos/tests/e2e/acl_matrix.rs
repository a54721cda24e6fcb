//! The ACL matrix: for every built-in group, a user in just that group may read what the group's
//! privilege covers, is refused (403 Unauthorized) everywhere else, and may write only with a
//! write privilege. Also: ACLs are read-only, admin may do everything, deny by default.

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Client, Response, Server};

const GROUPS: &str = "/api/configuration/aaa/local_database/groups";
const USERS: &str = "/api/configuration/aaa/local_database/users";
const PASSWORDS: &str = "/api/configuration/passwords";

/// Every built-in group: the privilege area it covers (None: no endpoint yet) and whether it
/// grants write. In `GET /api/configuration/aaa/acls` order.
const BUILTIN: &[(&str, Option<&str>, bool)] = &[
    ("basic-view", Some("basic"), false),
    ("basic-write", Some("basic"), true),
    ("auth-view", Some("auth"), false),
    ("auth-write", Some("auth"), true),
    ("search", Some("search"), false),
    ("changelog", Some("changelog"), false),
    ("policies-view", Some("pol"), false),
    ("policies-write", Some("pol"), true),
    ("ssh-view", Some("ssh"), false),
    ("ssh-write", Some("ssh"), true),
    ("rdp-view", Some("rdp"), false),
    ("rdp-write", Some("rdp"), true),
    ("telnet-view", Some("telnet"), false),
    ("telnet-write", Some("telnet"), true),
    ("vnc-view", Some("vnc"), false),
    ("vnc-write", Some("vnc"), true),
    ("indexing", None, true),
    ("ica-view", Some("ica"), false),
    ("ica-write", Some("ica"), true),
    ("api", None, true),
    ("http-view", Some("http"), false),
    ("http-write", Some("http"), true),
    ("indexer-view", None, false),
    ("indexer-write", None, true),
    ("sessions-view", None, false),
    ("sessions-write", None, true),
    ("search-all", None, false),
];

/// Guarded endpoints and the privilege area that may read them.
const GUARDED: &[(&str, &str)] = &[
    ("/api/configuration/aaa", "auth"),
    ("/api/configuration/aaa/acls", "auth"),
    ("/api/configuration/aaa/local_database", "auth"),
    (GROUPS, "auth"),
    (USERS, "auth"),
    ("/api/configuration/aaa/settings", "auth"),
    ("/api/acl", "auth"),
    ("/api/acl/audit_data", "auth"),
    ("/api/configuration/management", "basic"),
    ("/api/configuration/policies", "pol"),
    ("/api/configuration/ssh", "ssh"),
    ("/api/configuration/rdp", "rdp"),
    ("/api/configuration/telnet", "telnet"),
    ("/api/configuration/vnc", "vnc"),
    ("/api/configuration/ica", "ica"),
    ("/api/configuration/http", "http"),
    ("/api/audit", "search"),
    ("/api/changelog", "changelog"),
];

/// Endpoints any logged-in user may read.
const ANY_USER: &[&str] = &[
    "/api",
    "/api/configuration",
    "/api/info",
    "/api/user_info",
    "/api/endpoints",
    "/api/transaction",
];

/// Areas whose writers may create password objects.
const PASSWORD_AREAS: &[&str] = &[
    "auth", "basic", "pol", "ssh", "rdp", "telnet", "vnc", "ica", "http",
];

/// Soft assertions: every failure is collected, with the group it concerns.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }

    fn expect_status(
        &mut self,
        who: &str,
        what: &str,
        r: &Response,
        status: StatusCode,
        error_type: Option<&str>,
    ) {
        self.check(r.status == status, || {
            format!(
                "[{who}] {what}: expected {status}, got {} {}",
                r.status, r.text
            )
        });
        if let Some(t) = error_type {
            self.check(r.error_type() == t, || {
                format!("[{who}] {what}: expected error {t}, got {}", r.text)
            });
        }
    }

    fn expect_forbidden(&mut self, who: &str, what: &str, path: &str, r: &Response) {
        self.expect_status(who, what, r, StatusCode::FORBIDDEN, Some("Unauthorized"));
        self.check(r.json["error"]["details"]["path"] == path, || {
            format!("[{who}] {what}: details.path should be {path}: {}", r.text)
        });
    }

    fn assert_none(self) {
        assert!(
            self.0.is_empty(),
            "{} failure(s):\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

/// Name → key of every group.
async fn group_keys(admin: &Client) -> HashMap<String, String> {
    let list = admin.get(GROUPS).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.json);
    let mut keys = HashMap::new();
    for item in list.json["items"].as_array().expect("items") {
        let key = item["key"].as_str().expect("key");
        let g = admin.get(&format!("{GROUPS}/{key}")).await;
        keys.insert(
            g.json["body"]["name"].as_str().expect("name").to_string(),
            key.to_string(),
        );
    }
    keys
}

async fn open_tx(client: &Client) -> Response {
    client
        .request(
            Method::POST,
            "/api/transaction",
            Some(b""),
            &[("content-length", "0")],
        )
        .await
}

fn password_of(user: &str) -> String {
    format!("Pw-{user}-9q")
}

/// Creates, in one admin transaction, one user per `(user, group)` (group None: no group), each
/// with its own password object, and commits.
async fn create_users(server: &Server, users: &[(String, Option<&str>)]) {
    let admin = server.admin().await;
    let r = open_tx(&admin).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let keys = group_keys(&admin).await;
    let mut members: HashMap<&str, Vec<String>> = HashMap::new();
    for (user, group) in users {
        let pw = admin
            .create(PASSWORDS, &json!({"plain": password_of(user)}))
            .await;
        let key = admin
            .create(USERS, &json!({"name": user, "password": pw}))
            .await;
        if let Some(group) = group {
            members.entry(group).or_default().push(key);
        }
    }
    for (group, users) in members {
        let key = keys
            .get(group)
            .unwrap_or_else(|| panic!("no built-in group {group}"));
        let r = admin
            .put(
                &format!("{GROUPS}/{key}"),
                &json!({"name": group, "members": users}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "PUT group {group}: {}", r.json);
    }
    let r = admin.commit().await;
    assert_eq!(r.status, StatusCode::OK, "commit: {}", r.json);
}

fn user_name(group: &str) -> String {
    format!("u-{group}")
}

fn endpoint_urls(user_info: &Value) -> Vec<(String, Vec<String>)> {
    user_info["endpoints"]
        .as_array()
        .map(|eps| {
            eps.iter()
                .map(|e| {
                    let url = e["url"].as_str().unwrap_or_default().to_string();
                    let methods = e["methods"]
                        .as_array()
                        .map(|m| {
                            m.iter()
                                .filter_map(Value::as_str)
                                .map(String::from)
                                .collect()
                        })
                        .unwrap_or_default();
                    (url, methods)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn every_builtin_group_grants_exactly_its_privilege() {
    let server = Server::start().await;
    let users: Vec<(String, Option<&str>)> = BUILTIN
        .iter()
        .map(|(g, _, _)| (user_name(g), Some(*g)))
        .collect();
    create_users(&server, &users).await;

    let mut f = Failures::default();
    for (group, area, writes) in BUILTIN {
        let who = *group;
        let client = server
            .login(&user_name(group), &password_of(&user_name(group)))
            .await;

        // Reads: the covered area is readable, every other guarded endpoint is 403.
        for (path, needs) in GUARDED {
            let r = client.get(path).await;
            if Some(*needs) == *area {
                f.expect_status(who, &format!("GET {path}"), &r, StatusCode::OK, None);
            } else {
                f.expect_forbidden(who, &format!("GET {path}"), path, &r);
            }
        }
        for path in ANY_USER {
            let r = client.get(path).await;
            f.expect_status(who, &format!("GET {path}"), &r, StatusCode::OK, None);
        }

        // user_info lists what may be read, and only that.
        let info = client.get("/api/user_info").await;
        f.check(
            info.json["user"]["name"] == user_name(group).as_str(),
            || format!("[{who}] user_info name: {}", info.text),
        );
        let endpoints = endpoint_urls(&info.json);
        if *area != Some("auth") {
            let aaa: Vec<&String> = endpoints
                .iter()
                .map(|(u, _)| u)
                .filter(|u| u.starts_with("/api/configuration/aaa") || u.starts_with("/api/acl"))
                .collect();
            f.check(aaa.is_empty(), || {
                format!("[{who}] user_info lists auth endpoints: {aaa:?}")
            });
        }
        for (path, needs) in GUARDED {
            let listed = endpoints.iter().any(|(u, _)| u == path);
            f.check(listed == (Some(*needs) == *area), || {
                format!(
                    "[{who}] user_info lists {path}: {listed}, expected {}",
                    Some(*needs) == *area
                )
            });
        }
        if !writes {
            for (url, methods) in &endpoints {
                if url.starts_with("/api/configuration") || url.starts_with("/api/acl") {
                    f.check(methods.iter().all(|m| m == "GET"), || {
                        format!("[{who}] read-only user offered {methods:?} on {url}")
                    });
                }
            }
        }
        let tx_methods = endpoints
            .iter()
            .find(|(u, _)| u == "/api/transaction")
            .map(|(_, m)| m.clone());
        f.check(tx_methods.as_ref().is_some_and(|m| m.contains(&"POST".to_string()) == *writes), || {
            format!("[{who}] user_info methods of /api/transaction: {tx_methods:?} (may write: {writes})")
        });
        if *area == Some("auth") {
            let users_methods = endpoints
                .iter()
                .find(|(u, _)| u == USERS)
                .map(|(_, m)| m.clone());
            let expected: Vec<String> = if *writes {
                vec!["GET".into(), "POST".into()]
            } else {
                vec!["GET".into()]
            };
            f.check(users_methods.as_ref() == Some(&expected), || {
                format!(
                    "[{who}] user_info methods of {USERS}: {users_methods:?}, expected {expected:?}"
                )
            });
        }

        // Writes.
        let r = open_tx(&client).await;
        if *writes {
            f.expect_status(who, "POST /api/transaction", &r, StatusCode::OK, None);
            f.check(r.json["body"]["status"] == "open", || {
                format!("[{who}] transaction not open: {}", r.text)
            });
        } else {
            f.expect_forbidden(who, "POST /api/transaction", "/api/transaction", &r);
        }
        // A write outside the group's privilege.
        if *area == Some("auth") {
            let path = "/api/configuration/management";
            let r = client.put(path, &json!({})).await;
            f.expect_forbidden(who, &format!("PUT {path}"), path, &r);
            let path = "/api/configuration/ssh";
            let r = client.post(path, &json!({"name": "x"})).await;
            f.expect_forbidden(who, &format!("POST {path}"), path, &r);
        } else {
            let r = client
                .post(GROUPS, &json!({"name": format!("by-{group}")}))
                .await;
            f.expect_forbidden(who, "POST groups", GROUPS, &r);
            let path = "/api/configuration/aaa/settings";
            let r = client
                .put(path, &json!({"backend": {"selection": "local"}}))
                .await;
            f.expect_forbidden(who, &format!("PUT {path}"), path, &r);
        }
        // A write inside the privilege: read-only groups are refused (403 comes before 405);
        // write groups pass the privilege check and meet the node's method rules (405).
        if let Some(area) = area {
            let own = GUARDED
                .iter()
                .find(|(_, a)| a == area)
                .map(|(p, _)| *p)
                .expect("area path");
            if *area != "auth" && *area != "changelog" && *area != "search" {
                let r = client.put(own, &json!({})).await;
                if *writes {
                    f.expect_status(
                        who,
                        &format!("PUT {own}"),
                        &r,
                        StatusCode::METHOD_NOT_ALLOWED,
                        Some("MethodNotAllowed"),
                    );
                } else {
                    f.expect_forbidden(who, &format!("PUT {own}"), own, &r);
                }
            }
            if *area == "auth" && !*writes {
                let r = client.post(GROUPS, &json!({"name": "by-auth-view"})).await;
                f.expect_forbidden(who, "POST groups", GROUPS, &r);
            }
        }
        // Password objects: any writer of a configuration area may create one.
        let may_create_password = *writes && area.is_some_and(|a| PASSWORD_AREAS.contains(&a));
        let r = client
            .post(PASSWORDS, &json!({"plain": "Some-pass-123"}))
            .await;
        if may_create_password {
            f.expect_status(who, "POST passwords", &r, StatusCode::CREATED, None);
        } else {
            f.expect_forbidden(who, "POST passwords", PASSWORDS, &r);
        }
        // The changelog is read-only for everybody, and guarded.
        if *area == Some("changelog") {
            let r = client
                .request(Method::DELETE, "/api/changelog/1", None, &[])
                .await;
            f.expect_status(
                who,
                "DELETE /api/changelog/1",
                &r,
                StatusCode::METHOD_NOT_ALLOWED,
                Some("MethodNotAllowed"),
            );
        }
        // Release the lock for the next user.
        let r = client.delete("/api/transaction").await;
        f.expect_status(who, "DELETE /api/transaction", &r, StatusCode::OK, None);
    }

    // Nothing any of them did reached the configuration.
    let admin = server.admin().await;
    let r = admin.get("/api/changelog").await;
    f.check(r.json["meta"]["match_count"] == 2, || {
        format!("unexpected revisions: {}", r.text)
    });
    f.assert_none();
}

#[tokio::test]
async fn acl_table_lists_every_builtin_group() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let r = admin.get("/api/configuration/aaa/acls").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let rows = r.json["body"].as_array().expect("body");
    let groups: Vec<&str> = rows
        .iter()
        .filter_map(|row| row["group"].as_str())
        .collect();
    let expected: Vec<&str> = BUILTIN.iter().map(|(g, _, _)| *g).collect();
    assert_eq!(groups, expected, "{}", r.json);
    for (row, (group, _, writes)) in rows.iter().zip(BUILTIN) {
        let permission = if *writes { "write" } else { "read" };
        assert_eq!(row["permission"], permission, "{group}: {row}");
        assert!(
            row["objects"].as_array().is_some_and(|o| !o.is_empty()),
            "{group}: {row}"
        );
    }
    // One built-in group per ACL row exists from the first start.
    let keys = group_keys(&admin).await;
    for group in &expected {
        assert!(
            keys.contains_key(*group),
            "no built-in group {group}: {keys:?}"
        );
    }
}

#[tokio::test]
async fn acls_are_read_only_even_for_admin() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let path = "/api/configuration/aaa/acls";
    let before = admin.get(path).await;
    assert_eq!(before.status, StatusCode::OK);
    for with_transaction in [false, true] {
        if with_transaction {
            assert_eq!(open_tx(&admin).await.status, StatusCode::OK);
        }
        for method in [Method::PUT, Method::POST, Method::DELETE] {
            let body = (method != Method::DELETE).then_some(&b"[]"[..]);
            let r = admin.request(method.clone(), path, body, &[]).await;
            assert_eq!(
                r.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} (tx {with_transaction}): {}",
                r.json
            );
            assert_eq!(r.error_type(), "MethodNotAllowed", "{method}: {}", r.json);
            let allow = r
                .headers
                .get("allow")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert_eq!(allow, "GET", "{method}: Allow header");
        }
    }
    assert_eq!(admin.get(path).await.json["body"], before.json["body"]);
    let r = admin.get("/api/transaction/changes").await;
    assert_eq!(r.json["changes"], json!([]), "{}", r.json);
}

#[tokio::test]
async fn admin_may_do_everything() {
    let server = Server::start().await;
    let admin = server.admin().await;
    for (path, _) in GUARDED {
        let r = admin.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", r.json);
    }
    let info = admin.get("/api/user_info").await;
    let urls: Vec<String> = endpoint_urls(&info.json)
        .into_iter()
        .map(|(u, _)| u)
        .collect();
    for (path, _) in GUARDED {
        assert!(
            urls.iter().any(|u| u == path),
            "admin's user_info lacks {path}: {urls:?}"
        );
    }
    assert_eq!(open_tx(&admin).await.status, StatusCode::OK);
    let g = admin.create(GROUPS, &json!({"name": "by-admin"})).await;
    admin
        .create_user("made-by-admin", "Made-by-admin-1", &["ssh-write"])
        .await;
    let r = admin
        .put(
            "/api/configuration/aaa/settings",
            &json!({"backend": {"selection": "local"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = admin
        .post(
            "/api/acl/audit_data",
            &json!({"name": "r1", "query": "*", "groups": ["ssh-write"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let r = admin.commit().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(
        admin.get(&format!("{GROUPS}/{g}")).await.status,
        StatusCode::OK
    );
    server.login("made-by-admin", "Made-by-admin-1").await;
}

#[tokio::test]
async fn user_without_groups_is_denied_by_default() {
    let server = Server::start().await;
    create_users(&server, &[("loner".to_string(), None)]).await;
    let loner = server.login("loner", &password_of("loner")).await;

    let r = loner.get("/api/info").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(
        r.json["body"]["firmware_version"], "8.0.0",
        "logged-in info fields: {}",
        r.json
    );
    let r = loner.get("/api/user_info").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["user"]["name"], "loner");
    let urls: Vec<String> = endpoint_urls(&r.json).into_iter().map(|(u, _)| u).collect();
    for (path, _) in GUARDED {
        assert!(
            !urls.iter().any(|u| u == path),
            "user_info offers {path} to a user without groups"
        );
    }
    for path in ANY_USER {
        assert_eq!(loner.get(path).await.status, StatusCode::OK, "GET {path}");
    }

    let mut f = Failures::default();
    for (path, _) in GUARDED {
        let r = loner.get(path).await;
        f.expect_forbidden("loner", &format!("GET {path}"), path, &r);
    }
    for path in [
        format!("{GROUPS}/nonexistent"),
        "/api/configuration/aaa/local_database/users/-1".to_string(),
        "/api/changelog/1".to_string(),
    ] {
        let r = loner.get(&path).await;
        f.expect_forbidden("loner", &format!("GET {path}"), &path, &r);
    }
    let r = open_tx(&loner).await;
    f.expect_forbidden("loner", "POST /api/transaction", "/api/transaction", &r);
    let r = loner.post(GROUPS, &json!({"name": "nope"})).await;
    f.expect_forbidden("loner", "POST groups", GROUPS, &r);
    let r = loner
        .post(PASSWORDS, &json!({"plain": "Whatever-123"}))
        .await;
    f.expect_forbidden("loner", "POST passwords", PASSWORDS, &r);
    f.assert_none();
}

#[tokio::test]
async fn auth_write_manages_users_and_groups() {
    let server = Server::start().await;
    create_users(&server, &[("useradmin".to_string(), Some("auth-write"))]).await;
    let ua = server.login("useradmin", &password_of("useradmin")).await;

    let r = open_tx(&ua).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let pw = ua
        .create(PASSWORDS, &json!({"plain": "New-user-pass-1"}))
        .await;
    let user = ua
        .create(USERS, &json!({"name": "newbie", "password": pw}))
        .await;
    let group = ua
        .create(GROUPS, &json!({"name": "newbies", "members": [user]}))
        .await;
    let r = ua
        .put(
            "/api/transaction",
            &json!({"status": "commit", "message": "by useradmin"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["body"]["status"], "closed");

    let admin = server.admin().await;
    let r = admin.get(&format!("{GROUPS}/{group}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(
        r.json["body"]["members"][0]["key"],
        user.as_str(),
        "{}",
        r.json
    );
    let r = admin.get("/api/changelog?limit=1").await;
    assert_eq!(
        r.json["items"][0]["body"]["author"], "useradmin",
        "{}",
        r.json
    );
    assert_eq!(
        r.json["items"][0]["body"]["message"], "by useradmin",
        "{}",
        r.json
    );
    // The new user can log in (no groups: only the any-user endpoints).
    let newbie = server.login("newbie", "New-user-pass-1").await;
    assert_eq!(newbie.get(USERS).await.status, StatusCode::FORBIDDEN);

    // auth-write may also delete what it made.
    let r = open_tx(&ua).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(
        ua.delete(&format!("{GROUPS}/{group}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        ua.delete(&format!("{USERS}/{user}")).await.status,
        StatusCode::OK
    );
    assert_eq!(ua.commit().await.status, StatusCode::OK);
    assert_eq!(
        admin.get(&format!("{USERS}/{user}")).await.status,
        StatusCode::NOT_FOUND
    );
}
