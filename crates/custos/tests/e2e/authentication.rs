//! `/api/authentication`, cookies, Basic on every request, throttling, info endpoints.

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{ADMIN_PASSWORD, Client, Response, Server};

const GROUPS: &str = "/api/configuration/aaa/local_database/groups";

/// The `session_id` value of a response's `Set-Cookie` header.
fn session_id(r: &Response) -> String {
    let cookie = r
        .headers
        .get("set-cookie")
        .expect("set-cookie")
        .to_str()
        .expect("ascii cookie");
    cookie
        .strip_prefix("session_id=")
        .expect("session_id cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// Logs in with Basic on a fresh client; returns the client (cookie in its jar) and the session id.
async fn login_with_id(server: &Server, user: &str, password: &str) -> (Client, String) {
    let client = server.client();
    let r = client
        .with_basic(user, password)
        .get("/api/authentication")
        .await;
    assert_eq!(r.status, StatusCode::OK, "login of {user}: {}", r.json);
    let id = session_id(&r);
    (client, id)
}

/// A GET carrying only a hand-written `Cookie` header (fresh, empty jar).
async fn get_with_cookie(server: &Server, id: &str, path: &str) -> Response {
    let cookie = format!("session_id={id}");
    server
        .client()
        .request(Method::GET, path, None, &[("cookie", cookie.as_str())])
        .await
}

/// One request with Basic credentials and no cookie at all (fresh jar, dropped afterwards).
async fn basic_only(
    server: &Server,
    user: &str,
    password: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Response {
    let bytes = body.map(|b| b.to_string().into_bytes());
    server
        .client()
        .with_basic(user, password)
        .request(method, path, bytes.as_deref(), &[])
        .await
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().expect("object").keys().cloned().collect()
}

async fn group_names(client: &Client) -> Vec<String> {
    let list = client.get(GROUPS).await;
    let mut names = Vec::new();
    for item in list.json["items"].as_array().expect("items") {
        let g = client.get(item["meta"]["href"].as_str().unwrap()).await;
        names.push(g.json["body"]["name"].as_str().unwrap().to_string());
    }
    names
}

#[tokio::test]
async fn login_sets_a_40_hex_session_cookie() {
    let server = Server::start().await;
    let client = server.client().with_basic("admin", ADMIN_PASSWORD);
    let r = client.get("/api/authentication").await;
    assert_eq!(r.status, StatusCode::OK);
    let cookie = r.headers["set-cookie"].to_str().unwrap();
    let value = cookie
        .strip_prefix("session_id=")
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    assert_eq!(value.len(), 40);
    assert!(value.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
    for attr in ["Path=/", "Secure", "HttpOnly", "Expires="] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    assert_eq!(r.json["meta"]["remaining_seconds"], 1200);
}

#[tokio::test]
async fn login_response_body_is_the_authentication_meta() {
    let server = Server::start().await;
    let client = server.client().with_basic("admin", ADMIN_PASSWORD);
    for method in [Method::GET, Method::POST] {
        let body: Option<&[u8]> = if method == Method::POST {
            Some(b"")
        } else {
            None
        };
        let r = client
            .request(method.clone(), "/api/authentication", body, &[])
            .await;
        assert_eq!(r.status, StatusCode::OK, "{method}: {}", r.text);
        assert_eq!(
            r.json,
            json!({"meta": {"href": "/api/authentication", "parent": "/api", "remaining_seconds": 1200}}),
            "{method}"
        );
        assert!(
            r.headers.contains_key("set-cookie"),
            "{method} sets no cookie"
        );
    }
}

#[tokio::test]
async fn cookie_requests_resend_the_same_session_cookie() {
    let server = Server::start().await;
    let (client, id) = login_with_id(&server, "admin", ADMIN_PASSWORD).await;
    let r = client.get("/api/configuration").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        session_id(&r),
        id,
        "the sliding cookie must keep the session id"
    );
    let cookie = r.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("Expires="), "{cookie}");
}

#[tokio::test]
async fn no_credentials_gives_401_unauthenticated_with_basic_challenge() {
    let server = Server::start().await;
    let anonymous = server.client();
    for path in [
        "/api/authentication",
        "/api/configuration/aaa/local_database/users",
        "/api/transaction",
    ] {
        let r = anonymous.get(path).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(r.error_type(), "Unauthenticated", "{path}: {}", r.json);
        assert_eq!(r.json["error"]["details"]["path"], path, "{}", r.json);
        let challenge = r
            .headers
            .get("www-authenticate")
            .expect("WWW-Authenticate")
            .to_str()
            .unwrap();
        assert!(challenge.starts_with("Basic realm=\""), "{challenge}");
        assert_eq!(challenge, "Basic realm=\"Custos\"");
        assert_eq!(r.json["meta"]["href"], path);
    }
    // A cookie the server never issued is no login either.
    let r = get_with_cookie(&server, &"0".repeat(40), "/api/configuration").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error_type(), "Unauthenticated");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_give_401_authentication_failure() {
    let server = Server::start().await;
    for (user, password) in [
        ("admin", "not-the-password"),
        ("nobody-such", "whatever"),
        ("admin", ""),
    ] {
        let r = basic_only(
            &server,
            user,
            password,
            Method::GET,
            "/api/authentication",
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{user}");
        assert_eq!(
            r.error_type(),
            "AuthenticationFailure",
            "{user}: {}",
            r.json
        );
        assert!(
            !r.headers.contains_key("set-cookie"),
            "{user}: a failed login must not set a cookie"
        );
        assert!(
            !r.headers.contains_key("www-authenticate"),
            "{user}: no challenge on wrong credentials"
        );
        // Wrong Basic credentials on an ordinary request fail the same way.
        let r = basic_only(
            &server,
            user,
            password,
            Method::GET,
            "/api/configuration",
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{user}");
        assert_eq!(
            r.error_type(),
            "AuthenticationFailure",
            "{user}: {}",
            r.json
        );
    }
}

#[tokio::test]
async fn basic_alone_authenticates_a_request_without_cookie() {
    let server = Server::start().await;
    let r = basic_only(
        &server,
        "admin",
        ADMIN_PASSWORD,
        Method::GET,
        "/api/configuration/aaa/acls",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["key"], "acls");
    let r = basic_only(
        &server,
        "admin",
        ADMIN_PASSWORD,
        Method::GET,
        "/api/user_info",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["user"]["name"], "admin");
}

#[tokio::test]
async fn basic_next_to_a_valid_cookie_keeps_the_same_login() {
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let key = admin
        .create(GROUPS, &json!({"name": "cookie-tx-group", "members": []}))
        .await;
    let both = admin.with_basic("admin", ADMIN_PASSWORD);
    // Same login: the transaction opened through the cookie is still ours, with its change.
    assert_eq!(both.transaction_status().await, "open");
    let r = both.get(&format!("{GROUPS}/{key}")).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "uncommitted object invisible with cookie+Basic: {}",
        r.json
    );
    // The cookie+Basic request can keep writing and commit that transaction.
    let r = both
        .put(
            &format!("{GROUPS}/{key}"),
            &json!({"name": "cookie-tx-group-2", "members": []}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    // Contrast: a cookie-less Basic request is another login, which does not own the transaction.
    let r = basic_only(
        &server,
        "admin",
        ADMIN_PASSWORD,
        Method::GET,
        "/api/transaction",
        None,
    )
    .await;
    assert_eq!(r.json["body"]["status"], "closed", "{}", r.json);
    let r = both.commit().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(admin.transaction_status().await, "closed");
    assert!(
        group_names(&admin)
            .await
            .contains(&"cookie-tx-group-2".to_string())
    );
}

#[tokio::test]
async fn basic_only_requests_run_open_write_commit_across_requests() {
    let server = Server::start().await;
    let pw = ADMIN_PASSWORD;
    let r = basic_only(
        &server,
        "admin",
        pw,
        Method::POST,
        "/api/transaction",
        Some(&json!({})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = basic_only(
        &server,
        "admin",
        pw,
        Method::POST,
        GROUPS,
        Some(&json!({"name": "curl-group", "members": []})),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "write in the implicit Basic login: {}",
        r.json
    );
    let r = basic_only(&server, "admin", pw, Method::GET, "/api/transaction", None).await;
    assert_eq!(r.json["body"]["status"], "open", "{}", r.json);
    let r = basic_only(
        &server,
        "admin",
        pw,
        Method::PUT,
        "/api/transaction",
        Some(&json!({"status": "commit"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["body"]["status"], "closed", "{}", r.json);
    let admin = server.admin().await;
    assert!(
        group_names(&admin)
            .await
            .contains(&"curl-group".to_string()),
        "committed group missing"
    );
}

#[tokio::test]
async fn logout_ends_the_login_and_rolls_back_its_transaction() {
    let server = Server::start().await;
    let (admin, id) = login_with_id(&server, "admin", ADMIN_PASSWORD).await;
    admin.open_transaction().await;
    admin
        .create(GROUPS, &json!({"name": "never-committed", "members": []}))
        .await;

    let r = admin.delete("/api/authentication").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(
        r.json,
        json!({"meta": {"href": "/api/authentication", "parent": "/api"}})
    );

    // The old session id is dead on the server side (not just dropped from the jar).
    let r = get_with_cookie(&server, &id, "/api/configuration").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.json);
    assert_eq!(r.error_type(), "Unauthenticated");
    let r = admin.get("/api/configuration").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // The transaction was rolled back and its lock released.
    let other = server.admin().await;
    assert!(
        !group_names(&other)
            .await
            .contains(&"never-committed".to_string())
    );
    let r = other
        .request(
            Method::POST,
            "/api/transaction",
            Some(b""),
            &[("content-length", "0")],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "lock still held after logout: {}",
        r.json
    );
    assert_eq!(r.json["body"]["status"], "open");
}

#[tokio::test]
async fn five_failures_throttle_the_user_even_with_the_right_password() {
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    admin.create_user("victim", "V1ctim-right-pw", &[]).await;
    assert_eq!(admin.commit().await.status, StatusCode::OK);

    for attempt in 1..=5 {
        let r = basic_only(
            &server,
            "victim",
            "wrong-guess",
            Method::GET,
            "/api/authentication",
            None,
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}: {}",
            r.json
        );
        assert_eq!(r.error_type(), "AuthenticationFailure", "attempt {attempt}");
    }
    let r = basic_only(
        &server,
        "victim",
        "V1ctim-right-pw",
        Method::GET,
        "/api/authentication",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.json);
    assert_eq!(r.error_type(), "AuthenticationThrottled");
    assert!(
        !r.headers.contains_key("set-cookie"),
        "a throttled login must not get a session"
    );
    let retry: u64 = r
        .headers
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .expect("seconds");
    assert!(
        (1..=2).contains(&retry),
        "first lock is 1 s, Retry-After {retry}"
    );

    // The lock is per user name: admin is not affected.
    server.admin().await;

    tokio::time::sleep(Duration::from_millis(retry * 1000 + 200)).await;
    let r = basic_only(
        &server,
        "victim",
        "V1ctim-right-pw",
        Method::GET,
        "/api/authentication",
        None,
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "login after the lock expired: {}",
        r.json
    );

    // The success cleared the record: one new failure is a plain failure, not a lock.
    let r = basic_only(
        &server,
        "victim",
        "wrong-guess",
        Method::GET,
        "/api/authentication",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = basic_only(
        &server,
        "victim",
        "V1ctim-right-pw",
        Method::GET,
        "/api/authentication",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

#[tokio::test]
async fn info_anonymous_shows_a_subset_logged_in_shows_all_fields() {
    let server = Server::start().await;
    let r = server.client().get("/api/info").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(
        keys(&r.json),
        ["body", "key", "meta"].map(String::from).into()
    );
    assert_eq!(r.json["key"], "about_info");
    assert_eq!(
        r.json["meta"],
        json!({"href": "/api/info", "parent": "/api"})
    );
    let anonymous_fields = [
        "domainname",
        "hostname",
        "nickname",
        "plugin_sdk_version",
        "support_link",
    ];
    assert_eq!(
        keys(&r.json["body"]),
        anonymous_fields.map(String::from).into()
    );
    assert_eq!(r.json["body"]["nickname"], Value::Null);
    assert_eq!(
        keys(&r.json["body"]["plugin_sdk_version"]),
        ["feature", "full"].map(String::from).into()
    );

    let admin = server.admin().await;
    let r = admin.get("/api/info").await;
    assert_eq!(r.status, StatusCode::OK);
    let body = &r.json["body"];
    let mut all: BTreeSet<String> = anonymous_fields.map(String::from).into();
    for extra in [
        "analytics_enabled",
        "build_date",
        "config_hash",
        "firmware_version",
        "version",
        "roles",
        "node_id",
        "product",
        "custos_version",
    ] {
        all.insert(extra.to_string());
    }
    assert_eq!(keys(body), all);
    let firmware = body["firmware_version"].as_str().expect("firmware_version");
    assert!(firmware.starts_with("8."), "{firmware}");
    assert_eq!(body["product"], "Custos");
    assert!(body["roles"].is_array());
    assert!(r.json["meta"]["remaining_seconds"].is_u64(), "{}", r.json);
    assert_eq!(r.json["meta"]["href"], "/api/info");
    assert_eq!(r.json["meta"]["parent"], "/api");
}

#[tokio::test]
async fn user_info_and_its_aliases_list_the_admin_write_endpoints() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let r = admin.get("/api/user_info").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(
        keys(&r.json),
        ["endpoints", "meta", "user"].map(String::from).into()
    );
    assert_eq!(r.json["user"]["name"], "admin");
    assert_eq!(r.json["meta"]["href"], "/api/user_info");
    assert_eq!(r.json["meta"]["parent"], "/api");
    assert!(r.json["meta"]["remaining_seconds"].is_u64());
    for alias in ["/api/user/info", "/api/userinfo"] {
        let a = admin.get(alias).await;
        assert_eq!(a.status, StatusCode::OK, "{alias}: {}", a.json);
        assert_eq!(a.json["user"], r.json["user"], "{alias}");
        assert_eq!(a.json["endpoints"], r.json["endpoints"], "{alias}");
        assert_eq!(a.json["meta"]["parent"], "/api", "{alias}");
    }
    let methods = |url: &str| -> Vec<String> {
        let endpoint = r.json["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["url"] == url);
        let endpoint = endpoint.unwrap_or_else(|| panic!("admin lacks {url}: {}", r.json));
        endpoint["methods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap().to_string())
            .collect()
    };
    assert!(methods("/api/configuration/aaa/local_database/users").contains(&"POST".to_string()));
    let member = methods("/api/configuration/aaa/local_database/users/<key>");
    assert!(
        member.contains(&"PUT".to_string()) && member.contains(&"DELETE".to_string()),
        "{member:?}"
    );
    assert!(methods("/api/changelog").contains(&"GET".to_string()));
    assert!(methods("/api/configuration/aaa/settings").contains(&"PUT".to_string()));

    let e = admin.get("/api/endpoints").await;
    assert_eq!(e.status, StatusCode::OK);
    assert_eq!(
        keys(&e.json),
        ["endpoints", "meta"].map(String::from).into()
    );
    assert!(!e.json["endpoints"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn user_info_of_an_auth_view_user_lists_only_get_on_aaa_and_no_changelog() {
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    admin
        .create_user("viewer", "V1ewer-pass", &["auth-view"])
        .await;
    assert_eq!(admin.commit().await.status, StatusCode::OK);

    let viewer = server.login("viewer", "V1ewer-pass").await;
    let r = viewer.get("/api/user_info").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["user"]["name"], "viewer");
    let endpoints = r.json["endpoints"].as_array().unwrap();
    let urls: Vec<&str> = endpoints
        .iter()
        .map(|e| e["url"].as_str().unwrap())
        .collect();
    assert!(
        urls.contains(&"/api/configuration/aaa/local_database/users"),
        "{urls:?}"
    );
    assert!(urls.contains(&"/api/acl/audit_data"), "{urls:?}");
    let mut aaa = 0;
    for e in endpoints {
        let url = e["url"].as_str().unwrap();
        if url.starts_with("/api/configuration/aaa") || url.starts_with("/api/acl") {
            aaa += 1;
            assert_eq!(
                e["methods"],
                json!(["GET"]),
                "{url} for a read-only auth user"
            );
        }
        assert!(
            !url.starts_with("/api/changelog"),
            "changelog listed for auth-view: {url}"
        );
        assert!(
            !url.starts_with("/api/audit"),
            "audit listed for auth-view: {url}"
        );
        assert!(
            !url.starts_with("/api/configuration/ssh"),
            "ssh listed for auth-view: {url}"
        );
    }
    assert!(aaa >= 5, "{urls:?}");
    // What user_info promises is what the server enforces.
    assert_eq!(
        viewer
            .get("/api/configuration/aaa/local_database/users")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        viewer.get("/api/changelog").await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn user_info_lists_only_methods_a_read_only_user_may_use() {
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    admin
        .create_user("viewer", "V1ewer-pass", &["auth-view"])
        .await;
    assert_eq!(admin.commit().await.status, StatusCode::OK);

    let viewer = server.login("viewer", "V1ewer-pass").await;
    let r = viewer
        .request(
            Method::POST,
            "/api/transaction",
            Some(b""),
            &[("content-length", "0")],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a read-only user opened a transaction: {}",
        r.json
    );
    let r = viewer.get("/api/user_info").await;
    for e in r.json["endpoints"].as_array().unwrap() {
        let methods = e["methods"].as_array().unwrap();
        assert!(
            !methods.is_empty(),
            "{} is listed with no method the user may use",
            e["url"]
        );
        if e["url"] == "/api/transaction" {
            assert!(
                !methods.contains(&json!("POST")),
                "POST /api/transaction listed but answers 403: {e}"
            );
        }
    }
}

#[tokio::test]
async fn cookie_wins_over_basic_credentials_of_another_user() {
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    admin.create_user("other-user", "Other-user-pw", &[]).await;
    assert_eq!(admin.commit().await.status, StatusCode::OK);
    let mixed = admin.with_basic("other-user", "Other-user-pw");
    let r = mixed.get("/api/user_info").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(
        r.json["user"]["name"], "admin",
        "Basic replaced the cookie login"
    );
    assert_eq!(
        mixed
            .get("/api/configuration/aaa/local_database/users")
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn authentication_types_and_login_methods_are_anonymous() {
    let server = Server::start().await;
    let anonymous = server.client();
    let r = anonymous.get("/api/authentication/types").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["types"], json!({"basic": {}}));
    assert_eq!(r.json["meta"]["href"], "/api/authentication/types");
    let r = anonymous.get("/api/authentication/login_methods").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert!(r.json["login_methods"].is_array(), "{}", r.json);
    assert_eq!(r.json["meta"]["href"], "/api/authentication/login_methods");
}

#[tokio::test]
async fn secrets_never_appear_in_the_server_log() {
    let server = Server::start().await;
    let user_password = "Us3r-Secret-Passw0rd-7731";
    let wrong_password = "Wr0ng-Guess-Secret-4412";
    let (admin, admin_id) = login_with_id(&server, "admin", ADMIN_PASSWORD).await;
    admin.open_transaction().await;
    admin
        .create_user("logged-user", user_password, &["auth-view"])
        .await;
    let r = admin.get("/api/transaction/changes").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        !r.text.contains(user_password),
        "changes show the plain password"
    );
    assert_eq!(admin.commit().await.status, StatusCode::OK);
    let (user, user_id) = login_with_id(&server, "logged-user", user_password).await;
    assert_eq!(
        user.get("/api/configuration/aaa/local_database/users")
            .await
            .status,
        StatusCode::OK
    );
    let r = basic_only(
        &server,
        "logged-user",
        wrong_password,
        Method::GET,
        "/api/authentication",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = basic_only(
        &server,
        "admin",
        ADMIN_PASSWORD,
        Method::GET,
        "/api/configuration",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = get_with_cookie(&server, &user_id, "/api/transaction").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        user.delete("/api/authentication").await.status,
        StatusCode::OK
    );
    assert_eq!(
        admin.delete("/api/authentication").await.status,
        StatusCode::OK
    );

    let log = server.log();
    assert!(
        !log.is_empty(),
        "the server log is empty: nothing was checked"
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let secrets = [
        ("admin password", ADMIN_PASSWORD.to_string()),
        ("user password", user_password.to_string()),
        ("wrong password", wrong_password.to_string()),
        ("admin session id", admin_id),
        ("user session id", user_id),
        (
            "admin Basic token",
            b64.encode(format!("admin:{ADMIN_PASSWORD}")),
        ),
        (
            "user Basic token",
            b64.encode(format!("logged-user:{user_password}")),
        ),
    ];
    for (what, secret) in secrets {
        assert!(!log.contains(&secret), "the server log contains the {what}");
    }
}
