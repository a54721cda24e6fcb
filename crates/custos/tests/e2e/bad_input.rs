//! Bad input: malformed, mistyped, oversized and fuzzed request bodies, odd paths and query
//! parameters. Every answer is a 4xx SPS error envelope, never a 5xx, and the server keeps working.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{ADMIN_PASSWORD, Client, Response, Server};

const GROUPS: &str = "/api/configuration/aaa/local_database/groups";
const USERS: &str = "/api/configuration/aaa/local_database/users";
const SETTINGS: &str = "/api/configuration/aaa/settings";
const LIMIT: usize = 1024 * 1024;

async fn admin_in_tx(server: &Server) -> Client {
    let admin = server.admin().await;
    admin.open_transaction().await;
    admin
}

async fn post_raw(client: &Client, path: &str, body: &[u8]) -> Response {
    client.request(Method::POST, path, Some(body), &[]).await
}

/// Asserts a 400 SyntacticError envelope for `path`.
fn assert_syntactic(r: &Response, path: &str, context: &str) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{context}: {}", r.text);
    assert_eq!(r.error_type(), "SyntacticError", "{context}: {}", r.text);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{context}: {}",
        r.text
    );
    assert_eq!(
        r.json["error"]["details"]["path"], path,
        "{context}: {}",
        r.text
    );
    assert_eq!(r.json["meta"]["href"], path, "{context}: {}", r.text);
}

/// Asserts a 4xx answer with a non-empty `error.type`.
fn assert_client_error(r: &Response, context: &str) {
    assert!(
        r.status.is_client_error(),
        "{context}: expected 4xx, got {} {}",
        r.status,
        r.text
    );
    assert!(
        !r.error_type().is_empty(),
        "{context}: no error envelope: {}",
        r.text
    );
}

/// Whether the server still answers normally.
async fn assert_healthy(server: &Server) {
    let r = server.client().get("/api/info").await;
    assert_eq!(r.status, StatusCode::OK, "server unhealthy: {}", r.text);
    assert_eq!(r.json["key"], "about_info", "{}", r.text);
    let admin = server.admin().await;
    assert_eq!(admin.get(GROUPS).await.status, StatusCode::OK);
}

/// A hand-written HTTP/1.1 exchange over TLS, for requests reqwest will not make (chunked
/// bodies, raw bytes in the request target). Returns (status, body) or the transport error.
struct RawAnswer {
    status: Option<u16>,
    body: String,
    transport_error: Option<String>,
}

impl RawAnswer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

async fn raw_exchange(server: &Server, request: Vec<u8>) -> RawAnswer {
    let pem = std::fs::read(server.data_dir().join("tls/server.crt")).expect("server certificate");
    let address = server.base.trim_start_matches("https://").to_string();
    tokio::task::spawn_blocking(move || raw_exchange_blocking(&pem, &address, &request))
        .await
        .expect("raw exchange task")
}

fn raw_exchange_blocking(pem: &[u8], address: &str, request: &[u8]) -> RawAnswer {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pem).expect("certificate PEM"))
        .expect("root");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1")
        .expect("server name")
        .to_owned();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("TLS client");
    let mut sock = TcpStream::connect(address).expect("connect");
    sock.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).expect("TLS handshake");
    }
    // Write as much as the server takes; it may answer early and stop reading (then the write
    // fails, but its answer is already on the way and still readable).
    let mut transport_error = None;
    let mut offset = 0;
    'write: while offset < request.len() {
        match conn.writer().write(&request[offset..]) {
            Ok(n) => offset += n,
            Err(e) => {
                transport_error = Some(format!("write: {e}"));
                break;
            }
        }
        while conn.wants_write() {
            if let Err(e) = conn.write_tls(&mut sock) {
                transport_error = Some(format!("write: {e}"));
                break 'write;
            }
        }
    }
    // Read ciphertext directly (never flushing unsent data first) until the server closes.
    let mut received = Vec::new();
    loop {
        match conn.read_tls(&mut sock) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if conn.process_new_packets().is_err() {
                    break;
                }
                let mut buf = [0u8; 16 * 1024];
                loop {
                    match conn.reader().read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => received.extend_from_slice(&buf[..n]),
                        Err(_) => break,
                    }
                }
            }
        }
    }
    let text = String::from_utf8_lossy(&received).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|_| text.starts_with("HTTP/1.1 "));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    RawAnswer {
        status,
        body,
        transport_error,
    }
}

fn basic_admin() -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PASSWORD}"));
    format!("Basic {token}")
}

#[tokio::test]
async fn malformed_json_names_line_and_column() {
    let server = Server::start().await;
    let admin = admin_in_tx(&server).await;
    let body = b"{\n  \"name\": \"broken\",\n  \"members\": [,]\n}";
    let r = post_raw(&admin, GROUPS, body).await;
    assert_syntactic(&r, GROUPS, "malformed JSON");
    let message = r.json["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("line 3"),
        "message lacks the line: {message}"
    );
    assert!(
        message.contains("column"),
        "message lacks the column: {message}"
    );

    // The same on a singleton PUT and on the transaction itself.
    let r = admin
        .request(Method::PUT, SETTINGS, Some(b"{\"backend\": "), &[])
        .await;
    assert_syntactic(&r, SETTINGS, "truncated settings");
    assert!(
        r.json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("line 1") && m.contains("column")),
        "{}",
        r.text
    );
    let r = admin
        .request(
            Method::PUT,
            "/api/transaction",
            Some(b"{\"status\": commit}"),
            &[],
        )
        .await;
    assert_syntactic(&r, "/api/transaction", "malformed commit");
    assert_eq!(
        admin.get("/api/transaction").await.json["body"]["status"],
        "open"
    );
}

#[tokio::test]
async fn wrong_types_name_the_field() {
    let server = Server::start().await;
    let admin = admin_in_tx(&server).await;
    let r = admin.post(GROUPS, &json!({"name": 5})).await;
    assert_syntactic(&r, GROUPS, "name: 5");
    assert_eq!(r.json["error"]["details"]["field"], "name", "{}", r.text);

    let r = admin
        .post(GROUPS, &json!({"name": "g", "members": "everyone"}))
        .await;
    assert_syntactic(&r, GROUPS, "members: string");
    assert_eq!(r.json["error"]["details"]["field"], "members", "{}", r.text);

    let r = admin
        .post(GROUPS, &json!({"name": "g", "members": [5]}))
        .await;
    assert_syntactic(&r, GROUPS, "members: [5]");
    let field = r.json["error"]["details"]["field"]
        .as_str()
        .unwrap_or_default();
    assert!(field.starts_with("members"), "field {field:?}: {}", r.text);

    let r = admin.post(USERS, &json!({"name": ["admin2"]})).await;
    assert_syntactic(&r, USERS, "user name: list");
    assert_eq!(r.json["error"]["details"]["field"], "name", "{}", r.text);

    let r = admin
        .post("/api/configuration/passwords", &json!({"plain": 12345}))
        .await;
    assert_syntactic(&r, "/api/configuration/passwords", "plain: number");
    assert_eq!(r.json["error"]["details"]["field"], "plain", "{}", r.text);

    // Nothing was created.
    let r = admin.get("/api/transaction/changes").await;
    assert_eq!(r.json["changes"], json!([]), "{}", r.text);
}

#[tokio::test]
async fn unknown_fields_are_named() {
    let server = Server::start().await;
    let admin = admin_in_tx(&server).await;
    let r = admin
        .post(GROUPS, &json!({"name": "g", "colour": "red"}))
        .await;
    assert_syntactic(&r, GROUPS, "unknown field");
    assert_eq!(r.json["error"]["details"]["field"], "colour", "{}", r.text);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("colour")),
        "{}",
        r.text
    );

    // A `body` wrapper is not the bare object either.
    let r = admin.post(GROUPS, &json!({"body": {"name": "g"}})).await;
    assert_syntactic(&r, GROUPS, "body wrapper");
    assert!(r.text.contains("body"), "{}", r.text);

    let r = admin
        .put(
            SETTINGS,
            &json!({"backend": {"selection": "local"}, "extra": true}),
        )
        .await;
    assert_syntactic(&r, SETTINGS, "unknown settings field");
    assert!(r.text.contains("extra"), "{}", r.text);
}

#[tokio::test]
async fn unknown_field_in_a_unit_union_variant_is_rejected() {
    let server = Server::start().await;
    let admin = admin_in_tx(&server).await;
    let r = admin
        .put(
            SETTINGS,
            &json!({"backend": {"selection": "local", "bogus": 1}}),
        )
        .await;
    assert_syntactic(&r, SETTINGS, "unknown field in the local variant");
    assert!(r.text.contains("bogus"), "{}", r.text);
}

#[tokio::test]
async fn nested_unknown_field_reports_its_path() {
    let server = Server::start().await;
    let admin = admin_in_tx(&server).await;
    let body = json!({"backend": {"selection": "ldap", "servers": [{"host": "h", "port": 1}],
                                  "encryption": "ssl", "base_dn": "dc=x", "zzz": 1}});
    let r = admin.put(SETTINGS, &body).await;
    assert_syntactic(&r, SETTINGS, "unknown nested field");
    assert_eq!(
        r.json["error"]["details"]["field"], "backend.zzz",
        "{}",
        r.text
    );
}

#[tokio::test]
async fn missing_required_fields_are_rejected() {
    let server = Server::start().await;
    let admin = admin_in_tx(&server).await;
    for body in [json!({}), json!({"members": []})] {
        let r = admin.post(GROUPS, &body).await;
        assert_syntactic(&r, GROUPS, &body.to_string());
        assert!(
            r.text.contains("name"),
            "the missing field is not named: {}",
            r.text
        );
    }
    let r = admin.post(USERS, &json!({"password": null})).await;
    assert_client_error(&r, "user without name");
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // An empty body is not an object either.
    let r = post_raw(&admin, GROUPS, b"").await;
    assert_syntactic(&r, GROUPS, "empty body");
    let r = post_raw(&admin, GROUPS, b"   \n ").await;
    assert_syntactic(&r, GROUPS, "blank body");
}

#[tokio::test]
async fn scalar_bodies_instead_of_objects_are_rejected() {
    let server = Server::start().await;
    let admin = admin_in_tx(&server).await;
    for body in ["\"ops\"", "5", "null", "true", "-0.5e3"] {
        let r = post_raw(&admin, GROUPS, body.as_bytes()).await;
        assert_syntactic(&r, GROUPS, body);
        let r = admin
            .request(Method::PUT, SETTINGS, Some(body.as_bytes()), &[])
            .await;
        assert_syntactic(&r, SETTINGS, body);
    }
    let r = admin.get("/api/transaction/changes").await;
    assert_eq!(r.json["changes"], json!([]), "{}", r.text);
}

#[tokio::test]
async fn array_bodies_instead_of_objects_are_rejected() {
    let server = Server::start().await;
    let admin = admin_in_tx(&server).await;
    for body in [
        "[]",
        "[\"arr-group\", []]",
        "[\"arr-group\"]",
        "[{\"name\": \"g\"}]",
    ] {
        let r = post_raw(&admin, GROUPS, body.as_bytes()).await;
        assert_syntactic(&r, GROUPS, body);
    }
    let r = admin
        .request(
            Method::PUT,
            SETTINGS,
            Some(b"[{\"selection\": \"local\"}]"),
            &[],
        )
        .await;
    assert_syntactic(&r, SETTINGS, "array settings");
    let r = admin.get("/api/transaction/changes").await;
    assert_eq!(r.json["changes"], json!([]), "{}", r.text);
}

#[tokio::test]
async fn invalid_utf8_bodies_are_rejected() {
    let server = Server::start().await;
    let admin = admin_in_tx(&server).await;
    for body in [
        &b"{\"name\": \"\xff\xfe\"}"[..],
        b"{\"name\": \"ok\"\xc3}",
        b"\xc0\xaf",
        b"{\"na\xe9me\": \"x\"}",
    ] {
        let r = post_raw(&admin, GROUPS, body).await;
        assert_syntactic(&r, GROUPS, &format!("{body:?}"));
    }
    assert_healthy(&server).await;
}

/// A request with a declared Content-Length and the whole body, sent raw.
fn with_length(method: &str, path: &str, auth: bool, body: &[u8]) -> Vec<u8> {
    let auth = if auth {
        format!("Authorization: {}\r\n", basic_admin())
    } else {
        String::new()
    };
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

#[tokio::test]
async fn oversized_body_with_content_length_is_413() {
    let server = Server::start().await;
    let admin = admin_in_tx(&server).await;
    let mut big = b"{\"name\": \"".to_vec();
    big.resize(2 * LIMIT, b'a');
    big.extend_from_slice(b"\"}");
    let answer = raw_exchange(&server, with_length("POST", GROUPS, true, &big)).await;
    assert_eq!(
        answer.status,
        Some(413),
        "2 MiB: {:?} {}",
        answer.transport_error,
        answer.body
    );
    assert_eq!(
        answer.json()["error"]["type"],
        "RequestTooLarge",
        "{}",
        answer.body
    );
    assert_eq!(
        answer.json()["error"]["details"]["path"],
        GROUPS,
        "{}",
        answer.body
    );

    // One byte over the limit is too large; exactly the limit is read (and then judged).
    let mut over = b"{\"name\": \"".to_vec();
    over.resize(LIMIT - 1, b'b');
    over.extend_from_slice(b"\"}");
    assert_eq!(over.len(), LIMIT + 1);
    let answer = raw_exchange(&server, with_length("POST", GROUPS, true, &over)).await;
    assert_eq!(
        answer.status,
        Some(413),
        "limit + 1: {:?} {}",
        answer.transport_error,
        answer.body
    );
    assert_eq!(
        answer.json()["error"]["type"],
        "RequestTooLarge",
        "{}",
        answer.body
    );
    let at: Vec<u8> = over[..LIMIT - 2].iter().chain(b"\"}").copied().collect();
    assert_eq!(at.len(), LIMIT);
    let r = post_raw(&admin, GROUPS, &at).await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "a body of exactly the limit is judged by content: {}",
        r.text
    );
    assert_eq!(
        r.error_type(),
        "SemanticError",
        "a name of a million characters: {}",
        r.text
    );

    // Even unauthenticated and on the transaction.
    let answer = raw_exchange(&server, with_length("PUT", "/api/transaction", false, &big)).await;
    assert_eq!(
        answer.status,
        Some(413),
        "anonymous: {:?} {}",
        answer.transport_error,
        answer.body
    );
    assert_healthy(&server).await;
    assert_eq!(
        admin.get("/api/transaction/changes").await.json["changes"],
        json!([])
    );
}

#[tokio::test]
async fn oversized_body_413_reaches_an_ordinary_client() {
    let server = Server::start().await;
    let admin = admin_in_tx(&server).await;
    let mut big = b"{\"name\": \"".to_vec();
    big.resize(2 * LIMIT, b'a');
    big.extend_from_slice(b"\"}");
    let r = post_raw(&admin, GROUPS, &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text);
    assert_eq!(r.error_type(), "RequestTooLarge", "{}", r.text);
}

#[tokio::test]
async fn oversized_chunked_body_is_413() {
    let server = Server::start().await;
    let admin = admin_in_tx(&server).await;
    drop(admin);
    // Chunked (no Content-Length): the limit must hold while reading. Slightly over the limit so
    // the unread rest fits in the socket buffers.
    let mut request = format!(
        "POST {GROUPS} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        basic_admin()
    )
    .into_bytes();
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent <= LIMIT {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(&chunk);
        request.extend_from_slice(b"\r\n");
        sent += chunk.len();
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let answer = raw_exchange(&server, request).await;
    assert_eq!(
        answer.status,
        Some(413),
        "chunked over the limit: {:?} {}",
        answer.transport_error,
        answer.body
    );
    assert_eq!(
        answer.json()["error"]["type"],
        "RequestTooLarge",
        "{}",
        answer.body
    );

    // A small chunked body is fine (it reaches the body checks).
    let body = b"{\"name\": \"chunky\"}";
    let mut request = format!(
        "POST {GROUPS} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n",
        basic_admin(),
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    let answer = raw_exchange(&server, request).await;
    // Basic without a cookie is its own login, which holds no transaction: locked by the other.
    assert!(
        answer.status == Some(201) || answer.status == Some(409),
        "small chunked body: {:?} {:?} {}",
        answer.status,
        answer.transport_error,
        answer.body
    );
    assert_healthy(&server).await;
}

#[tokio::test]
async fn odd_keys_in_paths_are_404_or_400() {
    let server = Server::start().await;
    let admin = admin_in_tx(&server).await;
    let long = "k".repeat(10_000);
    let keys = [
        "..%2f..",
        "..%2F..%2Fsettings",
        "%00",
        "%ff%fe",
        "%25",
        "%20",
        "-1%00",
        "nul%0aline",
        long.as_str(),
        "a%2fb",
    ];
    for base in [
        USERS,
        GROUPS,
        "/api/configuration/passwords",
        "/api/acl/audit_data",
    ] {
        for key in keys {
            let path = format!("{base}/{key}");
            let short = &path[..path.len().min(120)];
            let r = admin.get(&path).await;
            assert!(
                r.status == StatusCode::NOT_FOUND || r.status == StatusCode::BAD_REQUEST,
                "GET {short}: {} {}",
                r.status,
                r.text
            );
            assert_client_error(&r, short);
            let r = admin.put(&path, &json!({"name": "x"})).await;
            assert!(
                [
                    StatusCode::NOT_FOUND,
                    StatusCode::BAD_REQUEST,
                    StatusCode::METHOD_NOT_ALLOWED
                ]
                .contains(&r.status),
                "PUT {short}: {} {}",
                r.status,
                r.text
            );
            assert_client_error(&r, short);
            let r = admin.delete(&path).await;
            assert!(
                [
                    StatusCode::NOT_FOUND,
                    StatusCode::BAD_REQUEST,
                    StatusCode::METHOD_NOT_ALLOWED
                ]
                .contains(&r.status),
                "DELETE {short}: {} {}",
                r.status,
                r.text
            );
            assert_client_error(&r, short);
        }
    }
    // Below a member there is nothing.
    let r = admin.get(&format!("{USERS}/-1/name")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    // Nothing was changed by any of it.
    assert_eq!(
        admin.get("/api/transaction/changes").await.json["changes"],
        json!([])
    );
    assert_healthy(&server).await;
}

#[tokio::test]
async fn changelog_revision_and_paging_parameters_are_checked() {
    let server = Server::start().await;
    let admin = server.admin().await;
    for revision in [
        "abc",
        "-1",
        "1.5",
        "0x1",
        "1e0",
        "99999999999999999999",
        "0",
    ] {
        let path = format!("/api/changelog/{revision}");
        let r = admin.get(&path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
        assert_eq!(r.error_type(), "NotFound", "{path}: {}", r.text);
    }
    for query in [
        "limit=-1",
        "limit=abc",
        "offset=-1",
        "offset=x",
        "limit=1.5",
        "limit=99999999999999999999",
    ] {
        let path = format!("/api/changelog?{query}");
        let r = admin.get(&path).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.text);
        assert_eq!(r.error_type(), "SyntacticError", "{path}: {}", r.text);
        let field = query.split('=').next().unwrap_or_default();
        assert_eq!(
            r.json["error"]["details"]["field"], field,
            "{path}: {}",
            r.text
        );
    }
    // Valid edge values still work.
    for query in ["limit=0", "offset=0", "limit=1&offset=0"] {
        let r = admin.get(&format!("/api/changelog?{query}")).await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text);
    }
}

#[tokio::test]
async fn percent_sign_before_non_ascii_in_query_is_answered() {
    let server = Server::start().await;
    for target in ["/api/info?x=%\u{20ac}", "/api/changelog?limit=%a\u{e9}"] {
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
            basic_admin()
        );
        let answer = raw_exchange(&server, request.into_bytes()).await;
        let status = answer.status.unwrap_or(0);
        assert!(
            (200..500).contains(&status),
            "{target}: no proper answer (status {:?}, transport {:?}, body {:?})",
            answer.status,
            answer.transport_error,
            answer.body
        );
    }
    assert!(
        !server.log().contains("panicked"),
        "the server panicked: {}",
        server.log()
    );
    assert_healthy(&server).await;
}

#[tokio::test]
async fn transaction_is_checked_before_the_body() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let r = post_raw(&admin, GROUPS, b"{\"name\": ").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.error_type(), "NoTransaction", "{}", r.text);
    let r = admin
        .request(Method::PUT, SETTINGS, Some(b"not json"), &[])
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.error_type(), "NoTransaction", "{}", r.text);
}

#[tokio::test]
async fn unknown_member_is_checked_before_the_transaction() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let path = format!("{GROUPS}/no-such-group");
    let r = admin.delete(&path).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(r.error_type(), "NotFound", "{}", r.text);
    let r = admin.put(&path, &json!({"name": "x"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert_eq!(r.error_type(), "NotFound", "{}", r.text);
}

#[tokio::test]
async fn unsupported_methods_are_405() {
    let server = Server::start().await;
    let admin = admin_in_tx(&server).await;
    let admin_key_path = format!("{USERS}/-1");
    let cases: [(&str, Option<&str>); 6] = [
        (GROUPS, Some("GET, POST")),
        (&admin_key_path, Some("DELETE, GET, PUT")),
        (SETTINGS, Some("GET, PUT")),
        ("/api/transaction", Some("DELETE, GET, POST, PUT")),
        ("/api/configuration/aaa", Some("GET")),
        ("/api/changelog", Some("GET")),
    ];
    for (path, allow) in cases {
        let r = admin.request(Method::PATCH, path, Some(b"{}"), &[]).await;
        assert_eq!(
            r.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "PATCH {path}: {}",
            r.text
        );
        assert_eq!(
            r.error_type(),
            "MethodNotAllowed",
            "PATCH {path}: {}",
            r.text
        );
        if let Some(allow) = allow {
            let header = r
                .headers
                .get("allow")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert_eq!(header, allow, "Allow of {path}");
        }
    }
    // Other methods on collections and singletons.
    let r = admin.delete(GROUPS).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{}", r.text);
    let r = admin
        .post(SETTINGS, &json!({"backend": {"selection": "local"}}))
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{}", r.text);
    let r = admin.request(Method::OPTIONS, GROUPS, None, &[]).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{}", r.text);
    assert_eq!(
        admin.get("/api/transaction/changes").await.json["changes"],
        json!([])
    );
}

/// A tiny deterministic generator (64-bit LCG, Knuth's constants).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Truncations of `valid`, then copies with 1–3 bytes XORed, `total` bodies in all.
fn mutations(valid: &[u8], total: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = (0..valid.len()).map(|n| valid[..n].to_vec()).collect();
    let mut rng = Lcg(seed);
    while out.len() < total {
        let mut body = valid.to_vec();
        for _ in 0..=rng.below(3) {
            let at = rng.below(body.len());
            body[at] ^= (rng.below(255) + 1) as u8;
        }
        out.push(body);
    }
    out
}

/// POSTs or PUTs every mutation: 4xx with an envelope or a success, never 5xx; bodies that are
/// not JSON at all are 400 SyntacticError. Returns (successes, rejections).
async fn fuzz(
    admin: &Client,
    method: Method,
    path: &str,
    bodies: &[Vec<u8>],
    success: StatusCode,
) -> (usize, usize) {
    let (mut accepted, mut rejected) = (0, 0);
    for (i, body) in bodies.iter().enumerate() {
        let r = admin.request(method.clone(), path, Some(body), &[]).await;
        let shown = String::from_utf8_lossy(body);
        assert!(
            !r.status.is_server_error(),
            "case {i} {shown:?}: {} {}",
            r.status,
            r.text
        );
        if r.status == success {
            accepted += 1;
            continue;
        }
        rejected += 1;
        assert_client_error(&r, &format!("case {i} {shown:?}"));
        assert!(
            r.json["error"]["message"].is_string(),
            "case {i}: {}",
            r.text
        );
        if serde_json::from_slice::<Value>(body).is_err() {
            assert_eq!(
                r.status,
                StatusCode::BAD_REQUEST,
                "case {i} {shown:?}: {}",
                r.text
            );
            assert_eq!(
                r.error_type(),
                "SyntacticError",
                "case {i} {shown:?}: {}",
                r.text
            );
        }
    }
    (accepted, rejected)
}

#[tokio::test]
async fn fuzzed_bodies_never_cause_server_errors() {
    let server = Server::start().await;
    let admin = admin_in_tx(&server).await;
    let valid = br#"{"name": "fuzz-base", "members": ["-1"]}"#;
    let bodies = mutations(valid, 200, 0x5eed_c0de);
    assert_eq!(bodies.len(), 200);
    let (accepted, rejected) =
        fuzz(&admin, Method::POST, GROUPS, &bodies, StatusCode::CREATED).await;
    assert!(
        rejected >= 120,
        "too few rejections to mean anything: {rejected} rejected, {accepted} accepted"
    );
    // Exactly the accepted ones are pending in the transaction.
    let r = admin.get("/api/transaction/changes").await;
    assert_eq!(
        r.json["changes"].as_array().map(Vec::len),
        Some(accepted),
        "{}",
        r.text
    );

    // Unions: the AAA settings singleton, from a valid LDAP variant.
    let ldap = br#"{"backend": {"selection": "ldap", "servers": [{"host": "ldap.example.com", "port": 636}], "encryption": "ssl", "base_dn": "dc=example,dc=com"}}"#;
    let r = admin.request(Method::PUT, SETTINGS, Some(ldap), &[]).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the unmutated LDAP settings must be valid: {}",
        r.text
    );
    let bodies = mutations(ldap, 120, 42);
    let (_, rejected) = fuzz(&admin, Method::PUT, SETTINGS, &bodies, StatusCode::OK).await;
    assert!(rejected >= 100, "too few rejections: {rejected}");

    // Still answering normally, and the transaction is intact and can be discarded.
    assert_healthy(&server).await;
    assert_eq!(
        admin.get("/api/transaction").await.json["body"]["status"],
        "open"
    );
    assert_eq!(
        admin.delete("/api/transaction").await.status,
        StatusCode::OK
    );
    admin.open_transaction().await;
    let key = admin.create(GROUPS, &json!({"name": "after-fuzz"})).await;
    assert_eq!(admin.commit().await.status, StatusCode::OK);
    assert_eq!(
        admin.get(&format!("{GROUPS}/{key}")).await.json["body"]["name"],
        "after-fuzz"
    );
    assert!(
        !server.log().contains("panicked"),
        "the server panicked during fuzzing"
    );
}
