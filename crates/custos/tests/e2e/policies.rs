//! Audit, archive/cleanup and backup policies (issue 3): the SPS 8.0 samples of seed 003
//! round-trip, every enum and conditional rule is enforced with a SemanticError on the exact
//! dotted field, references to private keys and X.509 objects, the built-in default audit policy,
//! and the policies ACL.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{self, Client, Server};
use crate::key_material::{
    ARCHIVE, AUDIT, BACKUP, Cert, KeyKind, PRIVATE_KEYS, SshKey, X509, assert_semantic_error_on,
    create_private_key, create_x509, ec_cert, is_semantic_error_on, reference, rsa_cert,
    rsync_backup, semantic_errors, ssh_key,
};

const POLICIES: &str = "/api/configuration/policies";
const DEFAULT_AUDIT: &str = "/api/configuration/policies/audit_policies/-1";

// ---------------------------------------------------------------------------------------------
// Seed 003 samples. The excerpt lost the closing brackets of the JSON; they are restored here.
// Placeholders are filled in as the seed leaves them empty or elided:
//   server.value "" → "10.0.0.5", the truncated `"start_times": [` → ["1:30"],
//   auth_key href ".../XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX" → a private key created by the test.
// ---------------------------------------------------------------------------------------------

const SEED_003_ARCHIVE_ALL_WITH_FILELIST: &str = r#"{
    "name": "archive_all_with_filelist",
    "include_node_id_in_path": false,
    "notification_event": {
      "type": "all",
      "send_filelist": true,
      "file_count_limit": 123456
    },
    "target": {
      "type": "nfs",
      "server": {
        "selection": "ip",
        "value": "10.0.0.5"
      },
      "path": "/data/backup"
    },
    "start_times": ["1:30"],
    "retention_days": 30
}"#;

const SEED_003_BACKUP_ALL_WITH_FILELIST: &str = r#"{
    "name": "backup_all_with_filelist",
    "include_node_id_in_path": false,
    "notification_event": {
      "type": "all",
      "send_filelist": true,
      "file_count_limit": 123456
    },
    "target": {
      "type": "nfs",
      "server": {
        "selection": "ip",
        "value": "10.0.0.5"
      },
      "path": "/data/backup"
    },
    "start_times": ["1:30"]
}"#;

/// The seed's Rsync sample; `AUTH_KEY_UUID` is replaced by a real private key's id.
const SEED_003_BACKUP_RSYNC: &str = r#"{
    "name": "backup_rsync",
    "include_node_id_in_path": true,
    "notification_event": {
      "type": "none",
      "send_filelist": true,
      "file_count_limit": 10240
    },
    "target": {
      "type": "rsync",
      "server": {
        "selection": "ip",
        "value": "10.0.0.5"
      },
      "username": "user1",
      "path": "/data/backup",
      "auth_key": {
        "meta": {
          "href": "/api/configuration/private_keys/AUTH_KEY_UUID"
        }
      },
      "host_key": {
        "selection": "rsa",
        "value": "AAAAB3NzaC1yc2EAAAADAQABAAAAYQCsU80IBrJbOlqCi03qZK+FtgS783VKE1TVZBtDQlsXJ9FXu6KNBvqvSAjcXiWY+izqn+P14UVRY1vOdz7WwLIWOUoTKHfPMqv3bdjwM4Bhd26POWSFyDf46yx1YzvMwgc="
      },
      "port": 1122
    },
    "start_times": ["1:30"]
}"#;

/// The seed's shorthand `host_key` example (it parses: `ssh-keygen -lf` reports a 2048-bit RSA
/// key, SHA256:zUbHbHgjXCeiUAAS+7Y5i3mgDuWvBAz/yQYOA6VtgcI), used verbatim.
const SEED_003_HOST_KEY_SHORTHAND: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDmIDa1PuJFzgvZvPs9hzgvMd/9WIn4J7RBFuO769g/OgTvCRTgrF8IM/0iN0YzcUM3IGyPnJ1OlLE2Gb6CxVvEcjP6pme7JroAWo039wQHR3Rxl1KoEmC+0EOImQycIdAS7grWNwD2VB2S7iyFErZhqRxhGJPKbR/kF3lQ3dGtt3pr4+R6wnU9lZ7RSETfB+N09FE4f5Nqy+VEShgdc66ElFRXXVilmiTnIMAyim3T7UVNgRdZYIUAZ79tkyTp6I+DZ7k7BG9TYwdBjhwr0eVL56ILxpXylpzWONuMhHxLKsL42NfmeagjVUD1CJVOrfaGjCVGEeS3iQs6GVVxe78n";

/// The SPS audit policy listing sample (from the brief; the seed excerpt lost the sample bodies).
const SPS_REMOTE_TIMESTAMPING: &str = r#"{
    "name": "remote-timestamping",
    "encryption": {"enabled": false},
    "signing": {"enabled": false},
    "signing_and_timestamping_interval": 42,
    "timestamping": {
      "enabled": true,
      "server": {
        "oid": {"enabled": true, "policy_oid": "2.3.5.3.1.5.32.322.32"},
        "selection": "remote",
        "server_url": "http://tsa.example.com/"
      }
    }
}"#;

const DEFAULT_AUDIT_BODY: &str = r#"{
    "name": "default",
    "encryption": {"enabled": false},
    "signing": {"enabled": false},
    "timestamping": {"enabled": false},
    "signing_and_timestamping_interval": 30
}"#;

/// The seed's encrypting certificate "as accepted by the SPS API", verbatim JSON text (the `\n`
/// are JSON escapes). It parses: a 2048-bit RSA certificate, CN=balabit.
const SEED_003_ENCRYPTION_CERTIFICATE_LINE: &str = r#""certificate": "-----BEGIN CERTIFICATE-----\nMIIDnDCCAoQCCQDc536Ob5tPQTANBgkqhkiG9w0BAQUFADCBjzELMAkGA1UEBhMC\nQ0ExEDAOBgNVBAgTB09udGFyaW8xEDAOBgNVBAcTB1Rvcm9udG8xEDAOBgNVBAoT\nB0JhbGFiaXQxFjAUBgNVBAsTDURvY3VtZW50YXRpb24xEDAOBgNVBAMTB2JhbGFi\naXQxIDAeBgkqhkiG9w0BCQEWEWNhdGFpbEBiYWxhYml0Lmh1MB4XDTE2MDQyMjE2\nMDAyNloXDTE3MDQyMjE2MDAyNlowgY8xCzAJBgNVBAYTAkNBMRAwDgYDVQQIEwdP\nbnRhcmlvMRAwDgYDVQQHEwdUb3JvbnRvMRAwDgYDVQQKEwdCYWxhYml0MRYwFAYD\nVQQLEw1Eb2N1bWVudGF0aW9uMRAwDgYDVQQDEwdiYWxhYml0MSAwHgYJKoZIhvcN\nAQkBFhFjYXRhaWxAYmFsYWJpdC5odTCCASIwDQYJKoZIhvcNAQEBBQADggEPADCC\nAQoCggEBAOGa9I2jmVlVdVWEI/Wy7ahTeyaIjK52FQUXqxG8okOSD+nV74ZFUuiS\n59X+2Ow1aDqVGrDMgPNhSVpYXUvDUAUOILJW4rAIoxDY6vDU9/4v9dDiQfEPlauw\n0qNRjPS1MLzjSOQDSKqPkdivkS6HKZeX3+TFq3OxO+vIrF9zFfp9T+eDG2oSobPc\n3mV2zkvtD61CXzbezAVdArDl6WnysRyzxyH8WEhFwZepWxFD9Y5N1dzKody7Hncs\nX5kVIv0+Z6bBHfg/7wHWysJdwNuLr0ByTOvPM6WdA83k3Fy2gYNk7Rc0BbRFbQTX\nhJVfUzSUWHVhFQtAb4diKU5voqepfNMCAwEAATANBgkqhkiG9w0BAQUFAAOCAQEA\nR5DIwOHsEKoGkiI3cHC2VMnxP2rRhpTneh6El+DFnQPdjrXa+tnqV4TdnNaD+FvP\nAB1kqbmC4hJAsjMLU2b1ne6m+SLmzhRuMxcA6x+fnYvcQT57IbRdq2E/4oJGeyuy\n0jQE+nmoVD3lDytIOxCfQvZhl1tcbBE5hp5USme4PmNhY6QfUlgjsFjPfoVG7XDB\nuNaUoWS6RvZPmL5IuvF9tqe96ES6DTjC8rBfQYvSoVNjjPnUMx0C8xstRSEG7oJc\nN5+4ImYnFNxSG20hZpFy0OFDf2g7Fx+W50/NtXamUF1Sf8WlPZc03oVl1/Fzo7mt\nqYyyD1ld89OUEYZ+aJQd/A==\n-----END CERTIFICATE-----\n""#;

/// The seed certificate as a string value.
fn seed_certificate() -> String {
    let v = harness::sample(&format!("{{{SEED_003_ENCRYPTION_CERTIFICATE_LINE}}}"));
    v["certificate"].as_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn is_policy_key(s: &str) -> bool {
    s.len() == 22 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// POSTs `body` to `collection`, checks the create envelope, and returns the key.
async fn post_policy(client: &Client, collection: &str, body: &Value) -> String {
    let r = client.post(collection, body).await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "POST {collection}: {}",
        r.json
    );
    let key = r.json["key"].as_str().expect("key").to_string();
    assert!(is_policy_key(&key), "policy keys are 22 hex chars: {key}");
    assert_eq!(
        r.json,
        json!({"key": key, "meta": {"href": format!("{collection}/{key}"), "parent": collection, "transaction": "/api/transaction"}})
    );
    key
}

/// The body of `path`, read by a fresh login (so only committed state).
async fn committed_body(server: &Server, path: &str) -> Value {
    let r = server.admin().await.get(path).await;
    assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", r.json);
    r.json["body"].clone()
}

/// Sets (`Some`) or removes (`None`) the member at a JSON pointer (its parent must exist).
fn edit(body: &mut Value, pointer: &str, value: Option<Value>) {
    let (parent, last) = pointer.rsplit_once('/').expect("pointer");
    let target = if parent.is_empty() {
        &mut *body
    } else {
        body.pointer_mut(parent)
            .unwrap_or_else(|| panic!("no {parent} in the body"))
    };
    let object = target
        .as_object_mut()
        .unwrap_or_else(|| panic!("{parent} is not an object"));
    match value {
        Some(v) => {
            object.insert(last.to_string(), v);
        }
        None => {
            object.remove(last);
        }
    }
}

/// One rule row: a description, edits applied to the base body, and the expected SemanticError
/// field (`None`: the body must be accepted).
struct Rule {
    what: String,
    edits: Vec<(String, Option<Value>)>,
    field: Option<String>,
}

fn reject(what: &str, edits: Vec<(String, Option<Value>)>, field: &str) -> Rule {
    Rule {
        what: what.into(),
        edits,
        field: Some(field.into()),
    }
}

fn accept(what: &str, edits: Vec<(String, Option<Value>)>) -> Rule {
    Rule {
        what: what.into(),
        edits,
        field: None,
    }
}

fn set(pointer: &str, v: Value) -> (String, Option<Value>) {
    (pointer.to_string(), Some(v))
}

fn unset(pointer: &str) -> (String, Option<Value>) {
    (pointer.to_string(), None)
}

/// Runs every rule against `collection` inside an open transaction: rejected rows must give a 400
/// SemanticError whose errors name exactly the expected field (on a path below the collection);
/// accepted rows must give 201. Each accepted row gets a unique name and, when `auth_key` is
/// given (rsync), a fresh private key (keys are single use). All mismatches are reported at once.
async fn check_rules(
    admin: &Client,
    collection: &str,
    base: &Value,
    rules: Vec<Rule>,
    auth_key: Option<&SshKey>,
) {
    let shared_key = match auth_key {
        Some(k) => Some(create_private_key(admin, k).await),
        None => None,
    };
    let mut failures = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let mut body = base.clone();
        body["name"] = json!(format!("{}-{i}", base["name"].as_str().unwrap()));
        if let (Some(k), Some(shared)) = (auth_key, &shared_key) {
            let id = if rule.field.is_none() {
                create_private_key(admin, k).await
            } else {
                shared.clone()
            };
            body["target"]["auth_key"] = json!(id);
        }
        for (pointer, value) in &rule.edits {
            edit(&mut body, pointer, value.clone());
        }
        let r = admin.post(collection, &body).await;
        match &rule.field {
            Some(field) => {
                if !is_semantic_error_on(&r, field) {
                    failures.push(format!(
                        "{}: expected SemanticError on {field:?}, got {} {}",
                        rule.what, r.status, r.json
                    ));
                    continue;
                }
                for e in r.json["error"]["details"]["errors"].as_array().unwrap() {
                    if !e["path"]
                        .as_str()
                        .is_some_and(|p| p.starts_with(collection))
                        || !e["message"].is_string()
                    {
                        failures.push(format!("{}: bad error entry {e}", rule.what));
                    }
                }
            }
            None => {
                if r.status != StatusCode::CREATED {
                    failures.push(format!(
                        "{}: expected 201, got {} {}",
                        rule.what, r.status, r.json
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} rule(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn archive_nfs() -> Value {
    harness::sample(SEED_003_ARCHIVE_ALL_WITH_FILELIST)
}

fn archive_smb() -> Value {
    json!({
        "name": "archive-smb",
        "include_node_id_in_path": false,
        "notification_event": {"type": "errors-only", "send_filelist": false},
        "target": {
            "type": "smb",
            "server": {"selection": "fqdn", "value": "files.example.com"},
            "protocol_version": "3.1.1",
            "share": "archive",
            "domain": "EXAMPLE",
            "path": "audit/trails",
            "authentication": {"selection": "password", "username": "archiver", "password": "Arch1ve-pw"}
        },
        "start_times": ["0:00", "23:59"],
        "template": "archive_date",
        "retention_days": 0
    })
}

fn archive_none() -> Value {
    json!({
        "name": "cleanup",
        "include_node_id_in_path": false,
        "notification_event": {"type": "none", "send_filelist": false},
        "target": {"type": "none"},
        "start_times": ["4:00"],
        "retention_days": 365
    })
}

fn backup_nfs() -> Value {
    harness::sample(SEED_003_BACKUP_ALL_WITH_FILELIST)
}

fn audit_base() -> Value {
    let mut body = harness::sample(DEFAULT_AUDIT_BODY);
    body["name"] = json!("audit");
    body
}

/// Rows shared by every policy kind with an nfs target (the base must be nfs).
fn common_rules() -> Vec<Rule> {
    vec![
        reject(
            "name with a space",
            vec![set("/name", json!("two words"))],
            "name",
        ),
        reject(
            "name with a tab",
            vec![set("/name", json!("tab\tname"))],
            "name",
        ),
        reject(
            "notification type",
            vec![set("/notification_event/type", json!("sometimes"))],
            "notification_event.type",
        ),
        accept(
            "notification type errors-only",
            vec![set("/notification_event/type", json!("errors-only"))],
        ),
        accept(
            "notification type none with send_filelist",
            vec![
                set("/notification_event/type", json!("none")),
                set("/notification_event/send_filelist", json!(true)),
            ],
        ),
        reject(
            "file_count_limit 0",
            vec![set("/notification_event/file_count_limit", json!(0))],
            "notification_event.file_count_limit",
        ),
        accept(
            "file_count_limit 1",
            vec![set("/notification_event/file_count_limit", json!(1))],
        ),
        accept(
            "file_count_limit absent",
            vec![unset("/notification_event/file_count_limit")],
        ),
        accept(
            "include_node_id_in_path true",
            vec![set("/include_node_id_in_path", json!(true))],
        ),
        reject(
            "server selection other",
            vec![set("/target/server/selection", json!("other"))],
            "target.server.selection",
        ),
        reject(
            "ip with three octets",
            vec![set("/target/server/value", json!("1.2.3"))],
            "target.server.value",
        ),
        reject(
            "ip octet 256",
            vec![set("/target/server/value", json!("10.0.0.256"))],
            "target.server.value",
        ),
        reject(
            "ip given a host name",
            vec![set("/target/server/value", json!("backup.example.com"))],
            "target.server.value",
        ),
        reject(
            "ip empty (the seed's placeholder)",
            vec![set("/target/server/value", json!(""))],
            "target.server.value",
        ),
        accept(
            "ipv6 address",
            vec![set("/target/server/value", json!("2001:db8::5"))],
        ),
        reject(
            "fqdn with invalid characters",
            vec![set(
                "/target/server",
                json!({"selection": "fqdn", "value": "bad_host!.example.com"}),
            )],
            "target.server.value",
        ),
        reject(
            "fqdn with an empty label",
            vec![set(
                "/target/server",
                json!({"selection": "fqdn", "value": "a..example.com"}),
            )],
            "target.server.value",
        ),
        reject(
            "fqdn label starting with a hyphen",
            vec![set(
                "/target/server",
                json!({"selection": "fqdn", "value": "-lead.example.com"}),
            )],
            "target.server.value",
        ),
        reject(
            "fqdn with a space",
            vec![set(
                "/target/server",
                json!({"selection": "fqdn", "value": "back up.example.com"}),
            )],
            "target.server.value",
        ),
        accept(
            "fqdn",
            vec![set(
                "/target/server",
                json!({"selection": "fqdn", "value": "backup.example.com"}),
            )],
        ),
        reject(
            "nfs without server",
            vec![unset("/target/server")],
            "target.server",
        ),
        reject(
            "nfs without path",
            vec![unset("/target/path")],
            "target.path",
        ),
        reject(
            "nfs relative path",
            vec![set("/target/path", json!("data/backup"))],
            "target.path",
        ),
        reject(
            "nfs path with ..",
            vec![set("/target/path", json!("/data/../etc"))],
            "target.path",
        ),
        reject(
            "smb-only protocol_version under nfs",
            vec![set("/target/protocol_version", json!("3.0"))],
            "target.protocol_version",
        ),
        reject(
            "smb-only share under nfs",
            vec![set("/target/share", json!("archive"))],
            "target.share",
        ),
        reject(
            "smb-only domain under nfs",
            vec![set("/target/domain", json!("EXAMPLE"))],
            "target.domain",
        ),
        reject(
            "smb-only authentication under nfs",
            vec![set(
                "/target/authentication",
                json!({"selection": "anonymous"}),
            )],
            "target.authentication",
        ),
        reject(
            "rsync-only username under nfs",
            vec![set("/target/username", json!("user1"))],
            "target.username",
        ),
        reject(
            "rsync-only port under nfs",
            vec![set("/target/port", json!(22))],
            "target.port",
        ),
        reject(
            "rsync-only host_key under nfs",
            vec![set("/target/host_key", json!(SEED_003_HOST_KEY_SHORTHAND))],
            "target.host_key",
        ),
        reject(
            "start_time 7:5",
            vec![set("/start_times", json!(["7:5"]))],
            "start_times[0]",
        ),
        reject(
            "start_time 24:00",
            vec![set("/start_times", json!(["24:00"]))],
            "start_times[0]",
        ),
        reject(
            "start_time 12:60",
            vec![set("/start_times", json!(["12:60"]))],
            "start_times[0]",
        ),
        reject(
            "start_time 1230",
            vec![set("/start_times", json!(["1230"]))],
            "start_times[0]",
        ),
        reject(
            "start_time 123:00",
            vec![set("/start_times", json!(["123:00"]))],
            "start_times[0]",
        ),
        reject(
            "start_time empty",
            vec![set("/start_times", json!(["1:00", ""]))],
            "start_times[1]",
        ),
        reject(
            "start_times duplicate",
            vec![set("/start_times", json!(["1:30", "2:00", "1:30"]))],
            "start_times[2]",
        ),
        accept(
            "start_times H:MM and HH:MM at the bounds",
            vec![set(
                "/start_times",
                json!(["0:00", "7:05", "07:06", "23:59"]),
            )],
        ),
    ]
}

fn archive_only_rules() -> Vec<Rule> {
    vec![
        reject(
            "archive target type rsync",
            vec![set("/target/type", json!("rsync"))],
            "target.type",
        ),
        reject(
            "retention_days -1",
            vec![set("/retention_days", json!(-1))],
            "retention_days",
        ),
        accept("retention_days 0", vec![set("/retention_days", json!(0))]),
        reject(
            "template protocol",
            vec![set("/template", json!("protocol"))],
            "template",
        ),
        reject(
            "template with a leading slash",
            vec![set("/template", json!("/archive_date"))],
            "template",
        ),
        accept(
            "template protocol/connection/archive_date",
            vec![set("/template", json!("protocol/connection/archive_date"))],
        ),
        accept(
            "template protocol/connection/connection_date",
            vec![set(
                "/template",
                json!("protocol/connection/connection_date"),
            )],
        ),
        accept(
            "template archive_date",
            vec![set("/template", json!("archive_date"))],
        ),
        accept(
            "template connection_date",
            vec![set("/template", json!("connection_date"))],
        ),
        accept(
            "template archive_date/connection",
            vec![set("/template", json!("archive_date/connection"))],
        ),
    ]
}

/// Rows for an smb target (archive or backup; the base must be smb with password auth).
fn smb_rules() -> Vec<Rule> {
    let mut rules = vec![
        reject(
            "smb without server",
            vec![unset("/target/server")],
            "target.server",
        ),
        reject(
            "smb without protocol_version",
            vec![unset("/target/protocol_version")],
            "target.protocol_version",
        ),
        reject(
            "smb without share",
            vec![unset("/target/share")],
            "target.share",
        ),
        reject(
            "smb without authentication",
            vec![unset("/target/authentication")],
            "target.authentication",
        ),
        accept(
            "smb without domain and path",
            vec![unset("/target/domain"), unset("/target/path")],
        ),
        reject(
            "protocol_version 4.0",
            vec![set("/target/protocol_version", json!("4.0"))],
            "target.protocol_version",
        ),
        reject(
            "protocol_version 3",
            vec![set("/target/protocol_version", json!("3"))],
            "target.protocol_version",
        ),
        reject(
            "protocol_version 3.1",
            vec![set("/target/protocol_version", json!("3.1"))],
            "target.protocol_version",
        ),
        reject(
            "share with a leading slash",
            vec![set("/target/share", json!("/archive"))],
            "target.share",
        ),
        reject(
            "share with ..",
            vec![set("/target/share", json!("archive/../etc"))],
            "target.share",
        ),
        reject(
            "share ..",
            vec![set("/target/share", json!(".."))],
            "target.share",
        ),
        accept(
            "share with a directory",
            vec![set("/target/share", json!("archive/sps"))],
        ),
        reject(
            "smb path absolute",
            vec![set("/target/path", json!("/audit"))],
            "target.path",
        ),
        reject(
            "smb path with ..",
            vec![set("/target/path", json!("audit/../../x"))],
            "target.path",
        ),
        reject(
            "smb path with ';' (smbclient splits commands there)",
            vec![set("/target/path", json!("audit;rm x"))],
            "target.path",
        ),
        reject(
            "share with a double quote",
            vec![set("/target/share", json!("arch\"ive"))],
            "target.share",
        ),
        reject(
            "password with a line break (smbclient's credentials file is line based)",
            vec![set(
                "/target/authentication/password",
                json!("pw\ndomain=ELSEWHERE"),
            )],
            "target.authentication.password",
        ),
        reject(
            "username with a control character",
            vec![set("/target/authentication/username", json!("arch\tiver"))],
            "target.authentication.username",
        ),
        accept(
            "path with spaces and a share with a dash",
            vec![
                set("/target/path", json!("audit trails/2026")),
                set("/target/share", json!("arch-ive")),
            ],
        ),
        reject(
            "password auth without username",
            vec![unset("/target/authentication/username")],
            "target.authentication.username",
        ),
        reject(
            "password auth without password",
            vec![unset("/target/authentication/password")],
            "target.authentication.password",
        ),
        reject(
            "anonymous with username",
            vec![set(
                "/target/authentication",
                json!({"selection": "anonymous", "username": "bob"}),
            )],
            "target.authentication.username",
        ),
        reject(
            "anonymous with password",
            vec![set(
                "/target/authentication",
                json!({"selection": "anonymous", "password": "pw"}),
            )],
            "target.authentication.password",
        ),
        reject(
            "authentication selection kerberos",
            vec![set(
                "/target/authentication",
                json!({"selection": "kerberos"}),
            )],
            "target.authentication.selection",
        ),
        accept(
            "anonymous",
            vec![set(
                "/target/authentication",
                json!({"selection": "anonymous"}),
            )],
        ),
        reject(
            "rsync-only username under smb",
            vec![set("/target/username", json!("user1"))],
            "target.username",
        ),
        reject(
            "rsync-only port under smb",
            vec![set("/target/port", json!(22))],
            "target.port",
        ),
        reject(
            "rsync-only host_key under smb",
            vec![set("/target/host_key", json!(SEED_003_HOST_KEY_SHORTHAND))],
            "target.host_key",
        ),
        reject(
            "rsync-only auth_key under smb",
            vec![set(
                "/target/auth_key",
                json!("00000000-0000-4000-8000-000000000000"),
            )],
            "target.auth_key",
        ),
    ];
    for v in ["1.0", "2.0", "2.1", "3.0", "3.1.1"] {
        rules.push(accept(
            &format!("protocol_version {v}"),
            vec![set("/target/protocol_version", json!(v))],
        ));
    }
    rules
}

// ---------------------------------------------------------------------------------------------
// Seed 003 round-trips
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn seed_003_archive_all_with_filelist_round_trips() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let body = harness::sample(SEED_003_ARCHIVE_ALL_WITH_FILELIST);
    admin.open_transaction().await;
    let key = post_policy(&admin, ARCHIVE, &body).await;
    admin.commit_ok().await;
    let path = format!("{ARCHIVE}/{key}");
    let r = server.admin().await.get(&path).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["key"], key.as_str());
    assert_eq!(r.json["body"], body);
    assert_eq!(r.json["meta"]["parent"], ARCHIVE);
    // Unlike audit policies, the archive/cleanup listing does not embed bodies.
    assert_eq!(
        server.admin().await.get(ARCHIVE).await.json["items"],
        json!([{"key": key, "meta": {"href": path}}])
    );
}

#[tokio::test]
async fn seed_003_backup_all_with_filelist_round_trips() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let body = harness::sample(SEED_003_BACKUP_ALL_WITH_FILELIST);
    admin.open_transaction().await;
    let key = post_policy(&admin, BACKUP, &body).await;
    admin.commit_ok().await;
    assert_eq!(
        committed_body(&server, &format!("{BACKUP}/{key}")).await,
        body
    );
}

#[tokio::test]
async fn seed_003_backup_rsync_round_trips() {
    let auth = ssh_key(KeyKind::Ed25519);
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let auth_key = create_private_key(&admin, &auth).await;
    let sample = harness::sample(&SEED_003_BACKUP_RSYNC.replace("AUTH_KEY_UUID", &auth_key));
    // Written with the seed's shorthand host_key string (and the seed's {"meta":{"href"}} key).
    let mut body = sample.clone();
    body["target"]["host_key"] = json!(SEED_003_HOST_KEY_SHORTHAND);
    let key = post_policy(&admin, BACKUP, &body).await;
    admin.commit_ok().await;

    let mut expected = sample.clone();
    expected["target"]["auth_key"] = reference(PRIVATE_KEYS, &auth_key);
    expected["target"]["host_key"] = json!({
        "selection": "rsa",
        "value": SEED_003_HOST_KEY_SHORTHAND.strip_prefix("ssh-rsa ").unwrap()
    });
    assert_eq!(
        committed_body(&server, &format!("{BACKUP}/{key}")).await,
        expected
    );
}

#[tokio::test]
async fn seed_003_backup_rsync_host_key_object_form_round_trips() {
    // The sample's own {"selection":"rsa","value":…} host key, verbatim. (Its blob is a
    // structurally valid but 768-bit RSA key, which OpenSSH's ssh-keygen refuses to print.)
    let auth = ssh_key(KeyKind::Ed25519);
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let auth_key = create_private_key(&admin, &auth).await;
    let body = harness::sample(&SEED_003_BACKUP_RSYNC.replace("AUTH_KEY_UUID", &auth_key));
    let key = post_policy(&admin, BACKUP, &body).await;
    admin.commit_ok().await;
    let mut expected = body.clone();
    expected["target"]["auth_key"] = reference(PRIVATE_KEYS, &auth_key);
    assert_eq!(
        committed_body(&server, &format!("{BACKUP}/{key}")).await,
        expected
    );
}

#[tokio::test]
async fn seed_003_audit_policy_listing_sample_remote_timestamping_round_trips() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let body = harness::sample(SPS_REMOTE_TIMESTAMPING);
    admin.open_transaction().await;
    let key = post_policy(&admin, AUDIT, &body).await;
    admin.commit_ok().await;
    let path = format!("{AUDIT}/{key}");
    assert_eq!(committed_body(&server, &path).await, body);
    // SPS 8.0 listings of audit policies embed each policy's body.
    let list = server.admin().await.get(AUDIT).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.json);
    let items = list.json["items"].as_array().expect("items");
    assert_eq!(
        items,
        &vec![
            json!({"key": "-1", "meta": {"href": DEFAULT_AUDIT}, "body": harness::sample(DEFAULT_AUDIT_BODY)}),
            json!({"key": key, "meta": {"href": path}, "body": body}),
        ]
    );
}

#[tokio::test]
async fn seed_003_default_audit_policy_exists_from_the_first_start() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let r = admin.get(DEFAULT_AUDIT).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["key"], "-1");
    assert_eq!(r.json["body"], harness::sample(DEFAULT_AUDIT_BODY));
    assert_eq!(r.json["meta"]["href"], DEFAULT_AUDIT);
    assert_eq!(r.json["meta"]["parent"], AUDIT);
    let list = admin.get(AUDIT).await;
    assert_eq!(
        list.json["items"],
        json!([{"key": "-1", "meta": {"href": DEFAULT_AUDIT}, "body": harness::sample(DEFAULT_AUDIT_BODY)}])
    );
    // The other policy collections start empty.
    for collection in [ARCHIVE, BACKUP] {
        let r = admin.get(collection).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        assert_eq!(r.json["items"], json!([]), "{collection}");
    }
}

#[tokio::test]
async fn seed_003_encryption_certificate_one_line_form_round_trips() {
    let server = Server::start().await;
    let admin = server.admin().await;
    let body = harness::sample(&format!(
        r#"{{
            "name": "encrypted",
            "encryption": {{
                "enabled": true,
                "certificates": [{{{SEED_003_ENCRYPTION_CERTIFICATE_LINE}}}],
                "different_certificates_for_upstream": {{"enabled": false}}
            }},
            "signing": {{"enabled": false}},
            "timestamping": {{"enabled": false}},
            "signing_and_timestamping_interval": 30
        }}"#
    ));
    admin.open_transaction().await;
    let key = post_policy(&admin, AUDIT, &body).await;
    admin.commit_ok().await;
    assert_eq!(
        committed_body(&server, &format!("{AUDIT}/{key}")).await,
        body
    );
}

// ---------------------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn archive_policy_rules_nfs_target() {
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let mut rules = common_rules();
    rules.extend(archive_only_rules());
    rules.push(reject(
        "rsync-only auth_key under nfs",
        vec![set(
            "/target/auth_key",
            json!("00000000-0000-4000-8000-000000000000"),
        )],
        "target.auth_key",
    ));
    check_rules(&admin, ARCHIVE, &archive_nfs(), rules, None).await;
}

#[tokio::test]
async fn archive_policy_rules_smb_target() {
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    check_rules(&admin, ARCHIVE, &archive_smb(), smb_rules(), None).await;
}

#[tokio::test]
async fn archive_policy_rules_none_target() {
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let mut rules = vec![accept("cleanup only", vec![])];
    for (field, value) in [
        ("server", json!({"selection": "ip", "value": "10.0.0.5"})),
        ("path", json!("/data")),
        ("share", json!("archive")),
        ("protocol_version", json!("3.0")),
        ("domain", json!("EXAMPLE")),
        ("authentication", json!({"selection": "anonymous"})),
        ("username", json!("user1")),
        ("port", json!(22)),
        ("host_key", json!(SEED_003_HOST_KEY_SHORTHAND)),
        ("auth_key", json!("00000000-0000-4000-8000-000000000000")),
    ] {
        rules.push(reject(
            &format!("{field} under none"),
            vec![set(&format!("/target/{field}"), value)],
            &format!("target.{field}"),
        ));
    }
    check_rules(&admin, ARCHIVE, &archive_none(), rules, None).await;
}

#[tokio::test]
async fn backup_policy_rules_nfs_target() {
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let mut rules = common_rules();
    rules.extend([
        reject(
            "backup target type none",
            vec![set("/target/type", json!("none"))],
            "target.type",
        ),
        reject(
            "backup target type ftp",
            vec![set("/target/type", json!("ftp"))],
            "target.type",
        ),
        reject(
            "rsync-only auth_key under nfs",
            vec![set(
                "/target/auth_key",
                json!("00000000-0000-4000-8000-000000000000"),
            )],
            "target.auth_key",
        ),
    ]);
    check_rules(&admin, BACKUP, &backup_nfs(), rules, None).await;
}

#[tokio::test]
async fn backup_policy_rules_smb_target() {
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let mut base = archive_smb();
    let object = base.as_object_mut().unwrap();
    object.remove("template");
    object.remove("retention_days");
    base["name"] = json!("backup-smb");
    check_rules(&admin, BACKUP, &base, smb_rules(), None).await;
}

#[tokio::test]
async fn backup_policy_rules_rsync_target() {
    let auth = ssh_key(KeyKind::Ed25519);
    let ed = ssh_key(KeyKind::Ed25519);
    let ec = ssh_key(KeyKind::Ecdsa);
    let rsa = ssh_key(KeyKind::Rsa);
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let base = rsync_backup("rsync", json!("replaced"), json!(rsa.public));
    let rules = vec![
        accept("the base", vec![]),
        reject(
            "rsync without server",
            vec![unset("/target/server")],
            "target.server",
        ),
        reject(
            "rsync without username",
            vec![unset("/target/username")],
            "target.username",
        ),
        reject(
            "rsync without path",
            vec![unset("/target/path")],
            "target.path",
        ),
        reject(
            "rsync without auth_key",
            vec![unset("/target/auth_key")],
            "target.auth_key",
        ),
        reject(
            "rsync without host_key",
            vec![unset("/target/host_key")],
            "target.host_key",
        ),
        reject(
            "rsync without port",
            vec![unset("/target/port")],
            "target.port",
        ),
        reject(
            "rsync relative path",
            vec![set("/target/path", json!("srv/backup"))],
            "target.path",
        ),
        reject(
            "rsync path with ..",
            vec![set("/target/path", json!("/srv/../etc"))],
            "target.path",
        ),
        reject("port 0", vec![set("/target/port", json!(0))], "target.port"),
        reject(
            "port 70000",
            vec![set("/target/port", json!(70000))],
            "target.port",
        ),
        reject(
            "port 65536",
            vec![set("/target/port", json!(65536))],
            "target.port",
        ),
        accept("port 1", vec![set("/target/port", json!(1))]),
        accept("port 65535", vec![set("/target/port", json!(65535))]),
        reject(
            "ip invalid",
            vec![set(
                "/target/server",
                json!({"selection": "ip", "value": "300.1.1.1"}),
            )],
            "target.server.value",
        ),
        reject(
            "server selection other",
            vec![set("/target/server/selection", json!("other"))],
            "target.server.selection",
        ),
        reject(
            "host_key garbage",
            vec![set("/target/host_key", json!("not a key"))],
            "target.host_key",
        ),
        reject(
            "host_key with bad base64",
            vec![set("/target/host_key", json!("ssh-rsa AAAA!!notbase64"))],
            "target.host_key",
        ),
        reject(
            "host_key type prefix disagreeing with the blob",
            vec![set(
                "/target/host_key",
                json!(format!("ssh-ed25519 {}", rsa.blob)),
            )],
            "target.host_key",
        ),
        reject(
            "host_key truncated blob",
            vec![set(
                "/target/host_key",
                json!(format!("ssh-rsa {}", &rsa.blob[..40])),
            )],
            "target.host_key",
        ),
        reject(
            "host_key pair rsa selection with an ed25519 blob",
            vec![set(
                "/target/host_key",
                json!({"selection": "rsa", "value": ed.blob}),
            )],
            "target.host_key",
        ),
        reject(
            "host_key pair dss selection with an rsa blob",
            vec![set(
                "/target/host_key",
                json!({"selection": "dss", "value": rsa.blob}),
            )],
            "target.host_key",
        ),
        reject(
            "host_key pair ecdsa selection with an ed25519 blob",
            vec![set(
                "/target/host_key",
                json!({"selection": "ecdsa", "value": ed.blob}),
            )],
            "target.host_key",
        ),
        reject(
            "host_key pair with garbage value",
            vec![set(
                "/target/host_key",
                json!({"selection": "rsa", "value": "garbage"}),
            )],
            "target.host_key",
        ),
        accept(
            "host_key ed25519 shorthand",
            vec![set("/target/host_key", json!(ed.public_with_comment))],
        ),
        accept(
            "host_key ecdsa shorthand",
            vec![set("/target/host_key", json!(ec.public))],
        ),
        accept(
            "host_key pair",
            vec![set(
                "/target/host_key",
                json!({"selection": "ecdsa", "value": ec.blob}),
            )],
        ),
        reject(
            "auth_key unknown",
            vec![set(
                "/target/auth_key",
                json!("00000000-0000-4000-8000-000000000000"),
            )],
            "target.auth_key",
        ),
        reject(
            "smb-only share under rsync",
            vec![set("/target/share", json!("archive"))],
            "target.share",
        ),
        reject(
            "smb-only protocol_version under rsync",
            vec![set("/target/protocol_version", json!("3.0"))],
            "target.protocol_version",
        ),
        reject(
            "smb-only domain under rsync",
            vec![set("/target/domain", json!("EXAMPLE"))],
            "target.domain",
        ),
        reject(
            "smb-only authentication under rsync",
            vec![set(
                "/target/authentication",
                json!({"selection": "anonymous"}),
            )],
            "target.authentication",
        ),
        reject(
            "start_times duplicate",
            vec![set("/start_times", json!(["2:15", "2:15"]))],
            "start_times[1]",
        ),
    ];
    check_rules(&admin, BACKUP, &base, rules, Some(&auth)).await;
}

#[tokio::test]
async fn audit_policy_rules() {
    let a = rsa_cert("EncA", "Ex").certificate;
    let b = rsa_cert("EncB", "Ex").certificate;
    let ec = ec_cert("EncEc").certificate;
    let signer: Cert = rsa_cert("Signer", "Ex");
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let with_key = create_x509(&admin, &signer, true).await;
    let without_key = create_x509(&admin, &rsa_cert("NoKey", "Ex"), false).await;
    let enc = |certs: Value, upstream: Value| json!({"enabled": true, "certificates": certs, "different_certificates_for_upstream": upstream});
    let off = json!({"enabled": false});
    let rules = vec![
        accept("the base", vec![]),
        reject(
            "name with a space",
            vec![set("/name", json!("my policy"))],
            "name",
        ),
        reject(
            "encryption enabled without certificates",
            vec![set(
                "/encryption",
                json!({"enabled": true, "different_certificates_for_upstream": off}),
            )],
            "encryption.certificates",
        ),
        reject(
            "encryption enabled with empty certificates",
            vec![set("/encryption", enc(json!([]), off.clone()))],
            "encryption.certificates",
        ),
        reject(
            "encryption enabled without different_certificates_for_upstream",
            vec![set(
                "/encryption",
                json!({"enabled": true, "certificates": [{"certificate": a}]}),
            )],
            "encryption.different_certificates_for_upstream",
        ),
        reject(
            "upstream enabled without certificates",
            vec![set(
                "/encryption",
                enc(json!([{"certificate": a}]), json!({"enabled": true})),
            )],
            "encryption.different_certificates_for_upstream.certificates",
        ),
        reject(
            "certificate garbage",
            vec![set(
                "/encryption",
                enc(json!([{"certificate": "garbage"}]), off.clone()),
            )],
            "encryption.certificates[0].certificate",
        ),
        reject(
            "second certificate garbage",
            vec![set(
                "/encryption",
                enc(
                    json!([{"certificate": a}, {"certificate": "garbage"}]),
                    off.clone(),
                ),
            )],
            "encryption.certificates[1].certificate",
        ),
        reject(
            "EC certificate for encryption",
            vec![set(
                "/encryption",
                enc(json!([{"certificate": ec}]), off.clone()),
            )],
            "encryption.certificates[0].certificate",
        ),
        reject(
            "four_eyes equal to certificate",
            vec![set(
                "/encryption",
                enc(
                    json!([{"certificate": a, "four_eyes_certificate": a}]),
                    off.clone(),
                ),
            )],
            "encryption.certificates[0].four_eyes_certificate",
        ),
        reject(
            "four_eyes equal to certificate, formatted differently",
            vec![set(
                "/encryption",
                enc(
                    json!([{"certificate": a, "four_eyes_certificate": a.trim_end()}]),
                    off.clone(),
                ),
            )],
            "encryption.certificates[0].four_eyes_certificate",
        ),
        reject(
            "four_eyes garbage",
            vec![set(
                "/encryption",
                enc(
                    json!([{"certificate": a, "four_eyes_certificate": "garbage"}]),
                    off.clone(),
                ),
            )],
            "encryption.certificates[0].four_eyes_certificate",
        ),
        reject(
            "four_eyes EC",
            vec![set(
                "/encryption",
                enc(
                    json!([{"certificate": a, "four_eyes_certificate": ec}]),
                    off.clone(),
                ),
            )],
            "encryption.certificates[0].four_eyes_certificate",
        ),
        reject(
            "upstream certificate garbage",
            vec![set(
                "/encryption",
                enc(
                    json!([{"certificate": a}]),
                    json!({"enabled": true, "certificates": [{"certificate": "garbage"}]}),
                ),
            )],
            "encryption.different_certificates_for_upstream.certificates[0].certificate",
        ),
        reject(
            "upstream EC certificate",
            vec![set(
                "/encryption",
                enc(
                    json!([{"certificate": a}]),
                    json!({"enabled": true, "certificates": [{"certificate": ec}]}),
                ),
            )],
            "encryption.different_certificates_for_upstream.certificates[0].certificate",
        ),
        reject(
            "upstream four_eyes equal to certificate",
            vec![set(
                "/encryption",
                enc(
                    json!([{"certificate": a}]),
                    json!({"enabled": true, "certificates": [{"certificate": b, "four_eyes_certificate": b}]}),
                ),
            )],
            "encryption.different_certificates_for_upstream.certificates[0].four_eyes_certificate",
        ),
        accept(
            "encryption with one certificate, upstream disabled",
            vec![set(
                "/encryption",
                enc(json!([{"certificate": a}]), off.clone()),
            )],
        ),
        accept(
            "encryption with four eyes and two certificates",
            vec![set(
                "/encryption",
                enc(
                    json!([{"certificate": a, "four_eyes_certificate": b}, {"certificate": b}]),
                    off.clone(),
                ),
            )],
        ),
        accept(
            "encryption with upstream certificates",
            vec![set(
                "/encryption",
                enc(
                    json!([{"certificate": a}]),
                    json!({"enabled": true, "certificates": [{"certificate": b, "four_eyes_certificate": a}]}),
                ),
            )],
        ),
        reject(
            "signing enabled without x509_identity",
            vec![set("/signing", json!({"enabled": true}))],
            "signing.x509_identity",
        ),
        reject(
            "signing with an x509 object lacking a private key",
            vec![set(
                "/signing",
                json!({"enabled": true, "x509_identity": without_key}),
            )],
            "signing.x509_identity",
        ),
        reject(
            "signing with an unknown x509 object",
            vec![set(
                "/signing",
                json!({"enabled": true, "x509_identity": "00000000-0000-4000-8000-000000000000"}),
            )],
            "signing.x509_identity",
        ),
        accept(
            "signing with a bare x509 key",
            vec![set(
                "/signing",
                json!({"enabled": true, "x509_identity": with_key}),
            )],
        ),
        accept(
            "signing with a rendered x509 reference",
            vec![set(
                "/signing",
                json!({"enabled": true, "x509_identity": reference(X509, &with_key)}),
            )],
        ),
        reject(
            "timestamping enabled without server",
            vec![set("/timestamping", json!({"enabled": true}))],
            "timestamping.server",
        ),
        reject(
            "timestamping selection other",
            vec![set(
                "/timestamping",
                json!({"enabled": true, "server": {"selection": "other"}}),
            )],
            "timestamping.server.selection",
        ),
        reject(
            "remote without server_url",
            vec![set(
                "/timestamping",
                json!({"enabled": true, "server": {"selection": "remote"}}),
            )],
            "timestamping.server.server_url",
        ),
        reject(
            "server_url ftp",
            vec![set(
                "/timestamping",
                json!({"enabled": true, "server": {"selection": "remote", "server_url": "ftp://tsa.example.com/"}}),
            )],
            "timestamping.server.server_url",
        ),
        reject(
            "server_url without scheme",
            vec![set(
                "/timestamping",
                json!({"enabled": true, "server": {"selection": "remote", "server_url": "tsa.example.com"}}),
            )],
            "timestamping.server.server_url",
        ),
        reject(
            "local with server_url",
            vec![set(
                "/timestamping",
                json!({"enabled": true, "server": {"selection": "local", "server_url": "http://tsa.example.com/"}}),
            )],
            "timestamping.server.server_url",
        ),
        reject(
            "oid enabled without policy_oid",
            vec![set(
                "/timestamping",
                json!({"enabled": true, "server": {"selection": "remote", "server_url": "https://tsa.example.com/", "oid": {"enabled": true}}}),
            )],
            "timestamping.server.oid.policy_oid",
        ),
        accept(
            "timestamping local",
            vec![set(
                "/timestamping",
                json!({"enabled": true, "server": {"selection": "local"}}),
            )],
        ),
        accept(
            "timestamping remote https with oid",
            vec![set(
                "/timestamping",
                json!({"enabled": true, "server": {"selection": "remote", "server_url": "https://tsa.example.com:8443/tsa", "oid": {"enabled": true, "policy_oid": "1.3.6.1.4.1.311"}}}),
            )],
        ),
        accept(
            "oid disabled without policy_oid",
            vec![set(
                "/timestamping",
                json!({"enabled": true, "server": {"selection": "remote", "server_url": "http://tsa.example.com/", "oid": {"enabled": false}}}),
            )],
        ),
        reject(
            "interval 9",
            vec![set("/signing_and_timestamping_interval", json!(9))],
            "signing_and_timestamping_interval",
        ),
        reject(
            "interval 100001",
            vec![set("/signing_and_timestamping_interval", json!(100001))],
            "signing_and_timestamping_interval",
        ),
        reject(
            "interval 0",
            vec![set("/signing_and_timestamping_interval", json!(0))],
            "signing_and_timestamping_interval",
        ),
        accept(
            "interval 10",
            vec![set("/signing_and_timestamping_interval", json!(10))],
        ),
        accept(
            "interval 100000",
            vec![set("/signing_and_timestamping_interval", json!(100000))],
        ),
    ];
    check_rules(&admin, AUDIT, &audit_base(), rules, None).await;
}

#[tokio::test]
async fn audit_policy_oid_must_be_a_dotted_oid() {
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let with_oid = |oid: &str| {
        let mut body = audit_base();
        body["timestamping"] = json!({"enabled": true, "server": {"selection": "remote", "server_url": "http://tsa.example.com/", "oid": {"enabled": true, "policy_oid": oid}}});
        body
    };
    for oid in [
        "3.1", "1", "1..2", "a.b", "1.2.", ".1.2", "1.-2", "", "1 .2",
    ] {
        let r = admin.post(AUDIT, &with_oid(oid)).await;
        assert!(
            is_semantic_error_on(&r, "timestamping.server.oid.policy_oid"),
            "{oid:?}: {}",
            r.json
        );
    }
    for (i, oid) in ["0.0", "1.2", "2.999.1", "2.3.5.3.1.5.32.322.32"]
        .iter()
        .enumerate()
    {
        let mut body = with_oid(oid);
        body["name"] = json!(format!("oid-{i}"));
        let r = admin.post(AUDIT, &body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{oid:?}: {}", r.json);
    }
}

#[tokio::test]
async fn non_integer_retention_days_is_a_syntactic_error() {
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    for value in [json!(1.5), json!("30")] {
        let mut body = archive_nfs();
        body["retention_days"] = value.clone();
        let r = admin.post(ARCHIVE, &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{value}: {}", r.json);
        assert_eq!(r.error_type(), "SyntacticError", "{value}: {}", r.json);
    }
}

#[tokio::test]
async fn backup_policies_have_no_template_or_retention_days() {
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    for (field, value) in [
        ("template", json!("archive_date")),
        ("retention_days", json!(30)),
    ] {
        let mut body = backup_nfs();
        body[field] = value;
        let r = admin.post(BACKUP, &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{field}: {}", r.json);
        assert_eq!(r.error_type(), "SyntacticError", "{field}: {}", r.json);
        assert_eq!(r.json["error"]["details"]["field"], field, "{}", r.json);
    }
}

#[tokio::test]
async fn defaults_are_filled_in() {
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let mut archive = archive_nfs();
    archive
        .as_object_mut()
        .unwrap()
        .remove("include_node_id_in_path");
    archive["notification_event"] = json!({"type": "all"});
    let a = post_policy(&admin, ARCHIVE, &archive).await;
    let mut audit = audit_base();
    audit
        .as_object_mut()
        .unwrap()
        .remove("signing_and_timestamping_interval");
    let b = post_policy(&admin, AUDIT, &audit).await;
    admin.commit_ok().await;
    let got = committed_body(&server, &format!("{ARCHIVE}/{a}")).await;
    assert_eq!(got["include_node_id_in_path"], false, "{got}");
    assert_eq!(
        got["notification_event"],
        json!({"type": "all", "send_filelist": false}),
        "{got}"
    );
    let got = committed_body(&server, &format!("{AUDIT}/{b}")).await;
    assert_eq!(got["signing_and_timestamping_interval"], 30, "{got}");
}

#[tokio::test]
async fn duplicate_policy_names_are_rejected_at_commit() {
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    // Duplicates are accepted at the write ...
    let a1 = post_policy(&admin, ARCHIVE, &archive_nfs()).await;
    post_policy(&admin, ARCHIVE, &archive_nfs()).await;
    let b1 = post_policy(&admin, BACKUP, &backup_nfs()).await;
    post_policy(&admin, BACKUP, &backup_nfs()).await;
    let mut named_default = audit_base();
    named_default["name"] = json!("default");
    let c1 = post_policy(&admin, AUDIT, &named_default).await;
    // ... and the commit names every duplicate.
    let r = admin.commit().await;
    let errors = semantic_errors(&r);
    for collection in [ARCHIVE, BACKUP, AUDIT] {
        assert!(
            errors.iter().any(|e| e["field"] == "name"
                && e["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with(collection))),
            "no duplicate-name error under {collection}: {}",
            r.json
        );
    }
    assert!(errors.iter().all(|e| e["field"] == "name"), "{}", r.json);
    assert_eq!(admin.transaction_status().await, "open");

    // Renaming one of each pair makes the commit pass.
    for (collection, key, name) in [
        (ARCHIVE, &a1, "archive-renamed"),
        (BACKUP, &b1, "backup-renamed"),
        (AUDIT, &c1, "not-default"),
    ] {
        let path = format!("{collection}/{key}");
        let mut body = admin.get(&path).await.json["body"].clone();
        body["name"] = json!(name);
        let r = admin.put(&path, &body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    }
    admin.commit_ok().await;
    assert_eq!(
        admin.get(AUDIT).await.json["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn put_back_of_get_bodies_keeps_every_policy_unchanged() {
    let auth = ssh_key(KeyKind::Ed25519);
    let host = ssh_key(KeyKind::Ecdsa);
    let signer = rsa_cert("Signer", "Ex");
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let key = create_private_key(&admin, &auth).await;
    let x509 = create_x509(&admin, &signer, true).await;
    let mut audit = harness::sample(SPS_REMOTE_TIMESTAMPING);
    audit["signing"] = json!({"enabled": true, "x509_identity": x509});
    audit["encryption"] = json!({"enabled": true, "certificates": [{"certificate": seed_certificate()}], "different_certificates_for_upstream": {"enabled": false}});
    let paths = vec![
        format!(
            "{ARCHIVE}/{}",
            post_policy(&admin, ARCHIVE, &archive_smb()).await
        ),
        format!(
            "{ARCHIVE}/{}",
            post_policy(&admin, ARCHIVE, &archive_none()).await
        ),
        format!(
            "{BACKUP}/{}",
            post_policy(
                &admin,
                BACKUP,
                &rsync_backup("rsync", json!(key), json!(host.public))
            )
            .await
        ),
        format!("{AUDIT}/{}", post_policy(&admin, AUDIT, &audit).await),
        DEFAULT_AUDIT.to_string(),
    ];
    admin.commit_ok().await;
    admin.open_transaction().await;
    for path in &paths {
        let before = admin.get(path).await.json["body"].clone();
        let r = admin.put(path, &before).await;
        assert_eq!(r.status, StatusCode::OK, "PUT back {path}: {}", r.json);
        assert_eq!(r.json["meta"]["href"], path.as_str(), "{}", r.json);
        assert_eq!(admin.get(path).await.json["body"], before, "{path}");
    }
    admin.commit_ok().await;
    // The rendered references point to the right objects.
    let backup = admin.get(&paths[2]).await.json["body"].clone();
    assert_eq!(backup["target"]["auth_key"], reference(PRIVATE_KEYS, &key));
    assert_eq!(
        backup["target"]["host_key"],
        json!({"selection": "ecdsa", "value": host.blob})
    );
    let audit = admin.get(&paths[3]).await.json["body"].clone();
    assert_eq!(audit["signing"]["x509_identity"], reference(X509, &x509));
}

#[tokio::test]
async fn policies_can_be_updated_and_deleted() {
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let key = post_policy(&admin, ARCHIVE, &archive_nfs()).await;
    admin.commit_ok().await;
    let path = format!("{ARCHIVE}/{key}");
    admin.open_transaction().await;
    // Switch the target from nfs to cleanup only.
    let mut body = archive_none();
    body["name"] = json!("archive_all_with_filelist");
    let r = admin.put(&path, &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(
        r.json,
        json!({"key": key, "meta": {"href": path, "parent": ARCHIVE, "transaction": "/api/transaction"}})
    );
    // An invalid PUT is refused and leaves the object as it was.
    let mut bad = body.clone();
    bad["retention_days"] = json!(-5);
    assert_semantic_error_on(&admin.put(&path, &bad).await, "retention_days");
    admin.commit_ok().await;
    assert_eq!(committed_body(&server, &path).await, body);

    admin.open_transaction().await;
    let r = admin.delete(&path).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json, json!({"meta": {"href": path, "parent": ARCHIVE}}));
    admin.commit_ok().await;
    let r = admin.get(&path).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.json);
    assert_eq!(r.error_type(), "NotFound");
}

// ---------------------------------------------------------------------------------------------
// References: auth_key, host_key, x509_identity
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn auth_key_accepts_bare_key_rendered_reference_and_href_only_forms() {
    let host = ssh_key(KeyKind::Ed25519);
    let keys: Vec<SshKey> = (0..3).map(|_| ssh_key(KeyKind::Ed25519)).collect();
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let mut created = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let id = create_private_key(&admin, k).await;
        let form = match i {
            0 => json!(id),
            1 => reference(PRIVATE_KEYS, &id),
            _ => json!({"meta": {"href": format!("{PRIVATE_KEYS}/{id}")}}),
        };
        let policy = post_policy(
            &admin,
            BACKUP,
            &rsync_backup(&format!("form-{i}"), form, json!(host.public)),
        )
        .await;
        created.push((policy, id));
    }
    // Unknown key: a SemanticError on the reference.
    let r = admin
        .post(
            BACKUP,
            &rsync_backup(
                "unknown-key",
                json!("00000000-0000-4000-8000-000000000000"),
                json!(host.public),
            ),
        )
        .await;
    assert_semantic_error_on(&r, "target.auth_key");
    // An href into another collection is malformed.
    let spare = create_private_key(&admin, &ssh_key(KeyKind::Ed25519)).await;
    let r = admin
        .post(
            BACKUP,
            &rsync_backup(
                "wrong-collection",
                json!({"meta": {"href": format!("{X509}/{spare}")}}),
                json!(host.public),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    assert_eq!(r.error_type(), "SyntacticError", "{}", r.json);
    admin.commit_ok().await;
    for (policy, id) in created {
        assert_eq!(
            committed_body(&server, &format!("{BACKUP}/{policy}")).await["target"]["auth_key"],
            reference(PRIVATE_KEYS, &id)
        );
    }
}

#[tokio::test]
async fn host_key_shorthand_is_stored_as_selection_and_value() {
    let rsa = ssh_key(KeyKind::Rsa);
    let ed = ssh_key(KeyKind::Ed25519);
    let ec = ssh_key(KeyKind::Ecdsa);
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let mut created = Vec::new();
    for (host, selection) in [(&rsa, "rsa"), (&ed, "ed25519"), (&ec, "ecdsa")] {
        let auth = create_private_key(&admin, &ssh_key(KeyKind::Ed25519)).await;
        // With the authorized_keys-style comment.
        let policy = post_policy(
            &admin,
            BACKUP,
            &rsync_backup(
                &format!("host-{selection}"),
                json!(auth),
                json!(host.public_with_comment),
            ),
        )
        .await;
        created.push((policy, json!({"selection": selection, "value": host.blob})));
    }
    admin.commit_ok().await;
    for (policy, expected) in created {
        assert_eq!(
            committed_body(&server, &format!("{BACKUP}/{policy}")).await["target"]["host_key"],
            expected
        );
    }
}

/// An `ssh-dss` host key made by OpenSSH 9.2 (`ssh-keygen -t dsa`); embedded because OpenSSH
/// 9.8 and later can no longer generate DSA keys. Public data only.
const DSS_HOST_KEY: &str = "ssh-dss AAAAB3NzaC1kc3MAAACBANsyWNj7+N2XrFEBScZ9N4a/wk0GmU7HnoyKBjcwnoJKBMhG/KDjaQo1QwpVYbuoAoFlhrrt2Ix8BpMn2DIRJXDKSkbGQogZJlATwOX1C+DUHptN0l06+eb3IKQri7Q9WWyTxW1BbrFVtf+kerz1zXHycANNjejmhnQbYiR8v4wrAAAAFQCYXR0RNtsy90BY0UdvvY8sFVohwQAAAIBszEsFr0F2uED2Ywnhmb8GHgZZWsGW7G+8kl+F6zVJQd+IMnPIxOaWTEKi48QDKWZYpRW/M/4Pjw6XpshaECvaLFZc0cb+vX51X+5R/KHATGSeliJs0CbKSZWSdxF8QZiRlGJcsio5hIYvvU5YpJY9PNGmzy450AXyVY4pHjWOOgAAAIAZGiQg4j+k3HocB0DBjzhMmI8QQAy8ixRQwPiI0ijre/Kl0NyRElOJH3ci6PCXCJW9Y9+OTz0qUzk6tIFpB6HBePl4KvT9d2sr0OVNfe6vv6Sxu/yczIeYcvqW4iVDAE+ADZBcXkB6elb7MFmdEar4dm1nvQpaSwez1PAyPhtvzg==";

#[tokio::test]
async fn host_key_dss_shorthand_and_the_seed_dsa_selection() {
    let blob = DSS_HOST_KEY.strip_prefix("ssh-dss ").unwrap();
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let mut created = Vec::new();
    // The seed's enum is (dsa | dss | rsa): both DSA spellings are valid selections.
    for (i, host_key) in [
        json!(DSS_HOST_KEY),
        json!({"selection": "dss", "value": blob}),
        json!({"selection": "dsa", "value": blob}),
    ]
    .into_iter()
    .enumerate()
    {
        let auth = create_private_key(&admin, &ssh_key(KeyKind::Ed25519)).await;
        let policy = post_policy(
            &admin,
            BACKUP,
            &rsync_backup(&format!("dss-{i}"), json!(auth), host_key),
        )
        .await;
        created.push(policy);
    }
    // A DSA selection on an RSA blob is still a mismatch.
    let auth = create_private_key(&admin, &ssh_key(KeyKind::Ed25519)).await;
    let r = admin
        .post(
            BACKUP,
            &rsync_backup(
                "dsa-on-rsa",
                json!(auth),
                json!({"selection": "dsa", "value": SEED_003_HOST_KEY_SHORTHAND.strip_prefix("ssh-rsa ").unwrap()}),
            ),
        )
        .await;
    assert_semantic_error_on(&r, "target.host_key");
    admin.commit_ok().await;
    let shown: Vec<Value> = {
        let mut v = Vec::new();
        for policy in &created {
            v.push(
                committed_body(&server, &format!("{BACKUP}/{policy}")).await["target"]["host_key"]
                    .clone(),
            );
        }
        v
    };
    assert_eq!(shown[0], json!({"selection": "dss", "value": blob}));
    assert_eq!(shown[1], json!({"selection": "dss", "value": blob}));
    // Written as "dsa": shown as one of the seed's DSA spellings, with the same blob.
    assert_eq!(shown[2]["value"], blob);
    assert!(
        shown[2]["selection"] == "dsa" || shown[2]["selection"] == "dss",
        "{}",
        shown[2]
    );
}

#[tokio::test]
async fn smb_password_is_not_resurrected_after_switching_to_anonymous() {
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let key = post_policy(&admin, ARCHIVE, &archive_smb()).await;
    admin.commit_ok().await;
    let path = format!("{ARCHIVE}/{key}");
    let with_password = admin.get(&path).await.json["body"].clone();
    assert_eq!(
        with_password["target"]["authentication"],
        json!({"selection": "password", "username": "archiver"})
    );
    let mut anonymous = with_password.clone();
    anonymous["target"]["authentication"] = json!({"selection": "anonymous"});

    // Within one transaction: password → anonymous → the old GET body again.
    admin.open_transaction().await;
    let r = admin.put(&path, &anonymous).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = admin.put(&path, &with_password).await;
    assert_semantic_error_on(&r, "target.authentication.password");
    admin.commit_ok().await;
    assert_eq!(committed_body(&server, &path).await, anonymous);

    // Across commits as well.
    admin.open_transaction().await;
    let r = admin.put(&path, &with_password).await;
    assert_semantic_error_on(&r, "target.authentication.password");
    // With a password given it is accepted again.
    let mut again = with_password.clone();
    again["target"]["authentication"]["password"] = json!("New-pw-123");
    let r = admin.put(&path, &again).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    admin.commit_ok().await;
    assert_eq!(committed_body(&server, &path).await, with_password);
}

#[tokio::test]
async fn default_audit_policy_can_be_modified_but_not_deleted() {
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let r = admin.delete(DEFAULT_AUDIT).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{}", r.json);
    assert_eq!(r.error_type(), "MethodNotAllowed");
    let modified = json!({
        "name": "default",
        "encryption": {"enabled": false},
        "signing": {"enabled": false},
        "timestamping": {"enabled": true, "server": {"selection": "local"}},
        "signing_and_timestamping_interval": 600
    });
    let r = admin.put(DEFAULT_AUDIT, &modified).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(
        r.json,
        json!({"key": "-1", "meta": {"href": DEFAULT_AUDIT, "parent": AUDIT, "transaction": "/api/transaction"}})
    );
    admin.commit_ok().await;
    assert_eq!(committed_body(&server, DEFAULT_AUDIT).await, modified);
    // Still not deletable after the change.
    admin.open_transaction().await;
    let r = admin.delete(DEFAULT_AUDIT).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{}", r.json);
    admin.commit_ok().await;
    assert_eq!(committed_body(&server, DEFAULT_AUDIT).await, modified);
}

#[tokio::test]
async fn deleting_an_x509_identity_in_use_names_the_policy() {
    let signer = rsa_cert("Signer", "Ex");
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    let x509 = create_x509(&admin, &signer, true).await;
    let mut body = audit_base();
    body["name"] = json!("signed");
    body["signing"] = json!({"enabled": true, "x509_identity": reference(X509, &x509)});
    let policy = post_policy(&admin, AUDIT, &body).await;
    admin.commit_ok().await;

    admin.open_transaction().await;
    let x509_path = format!("{X509}/{x509}");
    let policy_path = format!("{AUDIT}/{policy}");
    let r = admin.delete(&x509_path).await;
    let errors = semantic_errors(&r);
    assert!(
        errors.iter().any(|e| e.to_string().contains(&policy_path)),
        "the error does not name {policy_path}: {}",
        r.json
    );
    assert_eq!(admin.get(&x509_path).await.status, StatusCode::OK);

    // Once the policy stops using it, the delete succeeds.
    body["signing"] = json!({"enabled": false});
    let r = admin.put(&policy_path, &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = admin.delete(&x509_path).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    admin.commit_ok().await;
    assert_eq!(admin.get(&x509_path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(committed_body(&server, &policy_path).await, body);
}

// ---------------------------------------------------------------------------------------------
// ACL
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn policies_acl_view_write_and_other_groups() {
    let auth = ssh_key(KeyKind::Ed25519);
    let host = ssh_key(KeyKind::Ed25519);
    let signer = rsa_cert("Writer", "Ex");
    let server = Server::start().await;
    let admin = server.admin().await;
    admin.open_transaction().await;
    admin
        .create_user("pol-viewer", "Pol-viewer-pw1", &["policies-view"])
        .await;
    admin
        .create_user("pol-writer", "Pol-writer-pw1", &["policies-write"])
        .await;
    admin
        .create_user("auth-viewer", "Auth-viewer-pw1", &["auth-view"])
        .await;
    admin.commit_ok().await;

    // policies-write: creates policies, private keys and x509 objects.
    let writer = server.login("pol-writer", "Pol-writer-pw1").await;
    writer.open_transaction().await;
    let key = create_private_key(&writer, &auth).await;
    let x509 = create_x509(&writer, &signer, true).await;
    let backup = post_policy(
        &writer,
        BACKUP,
        &rsync_backup("by-writer", json!(key), json!(host.public)),
    )
    .await;
    let archive = post_policy(&writer, ARCHIVE, &archive_nfs()).await;
    let mut audit = audit_base();
    audit["signing"] = json!({"enabled": true, "x509_identity": x509});
    let audit = post_policy(&writer, AUDIT, &audit).await;
    writer.commit_ok().await;
    writer
        .request(reqwest::Method::DELETE, "/api/authentication", None, &[])
        .await;

    // policies-view: reads everything under policies, writes nothing.
    let viewer = server.login("pol-viewer", "Pol-viewer-pw1").await;
    for path in [
        POLICIES.to_string(),
        AUDIT.to_string(),
        ARCHIVE.to_string(),
        BACKUP.to_string(),
        DEFAULT_AUDIT.to_string(),
        format!("{BACKUP}/{backup}"),
        format!("{ARCHIVE}/{archive}"),
        format!("{AUDIT}/{audit}"),
    ] {
        let r = viewer.get(&path).await;
        assert_eq!(r.status, StatusCode::OK, "viewer GET {path}: {}", r.json);
    }
    for collection in [AUDIT, ARCHIVE, BACKUP] {
        let r = viewer.post(collection, &audit_base()).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "viewer POST {collection}: {}",
            r.json
        );
        assert_eq!(r.error_type(), "Unauthorized");
    }
    let r = viewer.put(DEFAULT_AUDIT, &audit_base()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.json);

    // auth-view: nothing under policies.
    let other = server.login("auth-viewer", "Auth-viewer-pw1").await;
    for path in [POLICIES, AUDIT, ARCHIVE, BACKUP, DEFAULT_AUDIT] {
        let r = other.get(path).await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "auth-view GET {path}: {}",
            r.json
        );
        assert_eq!(r.error_type(), "Unauthorized");
        assert_eq!(r.json["error"]["details"]["path"], path, "{}", r.json);
    }
}
