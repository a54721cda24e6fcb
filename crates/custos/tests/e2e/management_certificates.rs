//! `/api/configuration/management/certificates` (API notes §11): a fresh installation names its
//! built-in time-stamping authority there, an X.509 identity whose private key never leaves the
//! server; administrators may point it at another identity fit for time stamping only.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Client, Server};
use crate::key_material::{X509, assert_semantic_error_on, create_x509, ec_cert, reference};

const CERTIFICATES: &str = "/api/configuration/management/certificates";

/// What `openssl x509 -noout -ext extendedKeyUsage` prints for `pem`.
fn openssl_eku(pem: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.pem");
    std::fs::write(&path, pem).unwrap();
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "extendedKeyUsage", "-in"])
        .arg(&path)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The key of the identity `management/certificates` names now.
async fn tsa_key(client: &Client) -> String {
    let r = client.get(CERTIFICATES).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    r.json["body"]["tsa"]["key"]
        .as_str()
        .unwrap_or_else(|| panic!("no tsa reference: {}", r.json))
        .to_string()
}

#[tokio::test]
async fn a_fresh_server_names_its_built_in_tsa_whose_key_never_leaves() {
    let server = Server::start().await;
    let admin = server.admin().await;

    let r = admin.get(CERTIFICATES).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let key = tsa_key(&admin).await;
    assert_eq!(r.json["key"], "certificates");
    assert_eq!(r.json["body"], json!({"tsa": reference(X509, &key)}));
    assert_eq!(r.json["meta"]["href"], CERTIFICATES);
    assert_eq!(r.json["meta"]["parent"], "/api/configuration/management");
    assert_eq!(r.json["meta"]["transaction"], "/api/transaction");
    let management = admin.get("/api/configuration/management").await;
    assert_eq!(
        management.json["items"],
        json!([
            {"key": "certificates", "meta": {"href": CERTIFICATES}},
            {"key": "email", "meta": {"href": "/api/configuration/management/email"}},
        ])
    );

    // The identity: a certificate with its private key, of which GET shows only the former.
    let identity = admin.get(&format!("{X509}/{key}")).await;
    assert_eq!(identity.status, StatusCode::OK, "{}", identity.json);
    let body = &identity.json["body"];
    assert_eq!(body["has_private_key"], true);
    assert_eq!(body["subject"], "CN=Custos built-in TSA");
    assert_eq!(body["key_type"], "ecdsa-p256");
    assert_eq!(body["is_ca"], false);
    assert!(body.get("private_key").is_none(), "{body}");
    assert!(!identity.text.contains("PRIVATE KEY"));
    let certificate = body["certificate"].as_str().expect("certificate PEM");
    let eku = openssl_eku(certificate);
    assert!(eku.contains("X509v3 Extended Key Usage: critical"), "{eku}");
    assert_eq!(eku.lines().nth(1).map(str::trim), Some("Time Stamping"));

    // Nor does the first revision show it, nor is it in clear in the database.
    let first = admin.get("/api/changelog/1").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.json);
    assert!(first.text.contains(&key), "the revision lists the identity");
    assert!(!first.text.contains("PRIVATE KEY"));
    let mut database = Vec::new();
    for name in ["custos.db", "custos.db-wal"] {
        database.extend(std::fs::read(server.data_dir().join(name)).unwrap_or_default());
    }
    let holds = |needle: &[u8]| database.windows(needle.len()).any(|w| w == needle);
    assert!(
        holds(b"Custos built-in TSA"),
        "the search looks at plain data"
    );
    assert!(!holds(b"PRIVATE KEY"), "the TSA key is sealed at rest");
}

#[tokio::test]
async fn the_tsa_can_point_to_another_time_stamping_identity_and_only_to_one() {
    let mut server = Server::start().await;
    let admin = server.admin().await;
    let built_in = tsa_key(&admin).await;

    admin.open_transaction().await;
    // Without the extended key usage RFC 3161 demands: refused, naming the field.
    let (plain, plain_key) = custos_testkit::pki::self_signed_pem("Operator TSA", "ec", &[]);
    let no_eku = admin
        .create(
            X509,
            &json!({"certificate": plain, "private_key": plain_key}),
        )
        .await;
    let r = admin.put(CERTIFICATES, &json!({"tsa": no_eku})).await;
    assert_semantic_error_on(&r, "tsa");
    assert_eq!(
        r.json["error"]["details"]["errors"][0]["path"], CERTIFICATES,
        "{}",
        r.json
    );
    // Time stamping among other purposes, or not critical: refused too.
    for ext in [
        "extendedKeyUsage=critical,timeStamping,serverAuth",
        "extendedKeyUsage=timeStamping",
    ] {
        let (certificate, private_key) =
            custos_testkit::pki::self_signed_pem("Operator TSA", "ec", &[ext]);
        let x509 = admin
            .create(
                X509,
                &json!({"certificate": certificate, "private_key": private_key}),
            )
            .await;
        let r = admin.put(CERTIFICATES, &json!({"tsa": x509})).await;
        assert_semantic_error_on(&r, "tsa");
    }
    // A certificate without its private key cannot sign.
    let public_only = create_x509(&admin, &ec_cert("No key"), false).await;
    let r = admin.put(CERTIFICATES, &json!({"tsa": public_only})).await;
    assert_semantic_error_on(&r, "tsa");
    // Unknown objects and fields.
    let r = admin
        .put(CERTIFICATES, &json!({"tsa": "no-such-object"}))
        .await;
    assert_semantic_error_on(&r, "tsa");
    let r = admin
        .put(CERTIFICATES, &json!({"tsa": built_in, "ca": built_in}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    assert_eq!(r.error_type(), "SyntacticError");
    assert_eq!(tsa_key(&admin).await, built_in, "nothing changed");

    // An identity for time stamping only is accepted, in the bare and the rendered form.
    let (certificate, private_key) = custos_testkit::pki::self_signed_pem(
        "Operator TSA",
        "ec",
        &[
            "extendedKeyUsage=critical,timeStamping",
            "keyUsage=critical,digitalSignature",
        ],
    );
    let operator = admin
        .create(
            X509,
            &json!({"certificate": certificate, "private_key": private_key}),
        )
        .await;
    let r = admin.put(CERTIFICATES, &json!({"tsa": operator})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = admin
        .put(CERTIFICATES, &json!({"tsa": reference(X509, &operator)}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    admin.commit_ok().await;
    assert_eq!(tsa_key(&admin).await, operator);

    // It stays after a restart (the built-in identity is not made again), and the identity in
    // use cannot be deleted while the built-in one, no longer referenced, can.
    server.restart().await;
    let admin = server.admin().await;
    assert_eq!(tsa_key(&admin).await, operator);
    admin.open_transaction().await;
    let r = admin.delete(&format!("{X509}/{operator}")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    assert_eq!(r.error_type(), "SemanticError");
    let r = admin.delete(&format!("{X509}/{built_in}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    admin.commit_ok().await;
}

#[tokio::test]
async fn management_certificates_need_the_basic_privileges() {
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    admin
        .create_user("viewer", "Viewer-passw0rd", &["basic-view"])
        .await;
    admin
        .create_user("writer", "Writer-passw0rd", &["basic-write"])
        .await;
    admin
        .create_user("auth", "Auth-passw0rd", &["auth-write"])
        .await;
    admin.commit_ok().await;
    let body: Value = admin.get(CERTIFICATES).await.json["body"].clone();

    let viewer = server.login("viewer", "Viewer-passw0rd").await;
    assert_eq!(viewer.get(CERTIFICATES).await.status, StatusCode::OK);
    let r = viewer.put(CERTIFICATES, &body).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.json);
    assert_eq!(r.error_type(), "Unauthorized");

    let writer = server.login("writer", "Writer-passw0rd").await;
    writer.open_transaction().await;
    let r = writer.put(CERTIFICATES, &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    writer.commit_ok().await;

    let auth = server.login("auth", "Auth-passw0rd").await;
    let r = auth.get(CERTIFICATES).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.json);
    assert_eq!(r.json["error"]["details"]["path"], CERTIFICATES);
}
