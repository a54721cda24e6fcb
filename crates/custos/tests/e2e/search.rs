//! Session search against the real binary: sessions recorded by the gateway (real `ssh` to a
//! real `sshd`) are found by metadata and by what was typed and shown, while they run and after;
//! content hits lead `custos replay --at` to the right moment; statistics and histograms count
//! them; and audit-data access rules restrict every session endpoint (a matrix of users, rules
//! and endpoints); `custos index rebuild` recreates the index from the database and the trails.

use std::io::Write as _;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use custos_testkit::{Client as Ssh, PASSWORD, Sshd, USER, free_port};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Client, Server, eventually};

const SESSIONS: &str = "/api/audit/sessions";
const CONNECTIONS: &str = "/api/configuration/ssh/connections";
const GROUPS: &str = "/api/configuration/aaa/local_database/groups";
const AUDIT_DATA: &str = "/api/acl/audit_data";

/// A server with two connection policies, `prod` and `lab`, both to one real sshd.
struct Site {
    _dir: tempfile::TempDir,
    _sshd: Sshd,
    ssh: Ssh,
    server: Server,
    admin: Client,
    prod: u16,
    lab: u16,
}

async fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(dir.path());
    let ssh = Ssh::new(dir.path());
    let server = Server::start().await;
    let admin = server.admin().await;
    let (prod, lab) = (free_port(), free_port());
    admin.open_transaction().await;
    for (name, port) in [("prod", prod), ("lab", lab)] {
        admin
            .create(
                CONNECTIONS,
                &json!({
                    "name": name,
                    "network": {"clients": ["127.0.0.0/8"], "targets": ["127.0.0.1"], "ports": [port]},
                    "server_address": {"selection": "fix", "address": "127.0.0.1", "port": sshd.port},
                    "policies": {"channel_policy": "-2", "audit_policy": "-1"},
                }),
            )
            .await;
    }
    admin.commit_ok().await;
    for port in [prod, lab] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "the gateway never listened on {port}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    Site {
        _dir: dir,
        _sshd: sshd,
        ssh,
        server,
        admin,
        prod,
        lab,
    }
}

fn keys(listing: &Value) -> Vec<String> {
    listing["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["key"].as_str().map(String::from))
        .collect()
}

/// `GET /api/audit/sessions?<query>` with `q` encoded.
async fn search(client: &Client, q: &str) -> Value {
    let r = client.get(&format!("{SESSIONS}?q={}", encode(q))).await;
    assert_eq!(r.status, StatusCode::OK, "q={q}: {}", r.json);
    r.json
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Site {
    /// An ended exec session through `port`; returns its key.
    async fn exec(&self, port: u16, command: &str) -> String {
        let before = keys(&self.admin.get(SESSIONS).await.json);
        let mut exec = self.ssh.ssh(port, USER, PASSWORD, &[command]);
        let out = tokio::task::spawn_blocking(move || exec.output().unwrap())
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let admin = &self.admin;
        eventually(10, "the ended record", || {
            let before = before.clone();
            async move {
                let now = keys(
                    &admin
                        .get(&format!("{SESSIONS}?q=active%3Afalse"))
                        .await
                        .json,
                );
                now.into_iter().find(|k| !before.contains(k))
            }
        })
        .await
    }

    /// An interactive terminal session (`ssh -tt`) through `port`, its stdin left open.
    fn shell(&self, port: u16) -> Child {
        let mut shell = self.ssh.ssh(port, USER, PASSWORD, &["-tt"]);
        shell.stdin(Stdio::piped()).stdout(Stdio::piped());
        shell.spawn().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_typed_and_shown_is_searchable_while_the_session_runs_and_replays_from_a_hit() {
    let s = site().await;
    let mut shell = s.shell(s.prod);
    let mut stdin = shell.stdin.take().unwrap();
    // The shell prints `needle42x`; only the typed line holds `needle$((6*7))x`.
    stdin.write_all(b"echo needle$((6*7))x\n").unwrap();
    stdin.flush().unwrap();

    // Found while the session still runs (the index commits about every second).
    let started = Instant::now();
    let key = eventually(15, "the screen text in the index", || async {
        keys(&search(&s.admin, "needle42x AND active:true").await)
            .into_iter()
            .next()
    })
    .await;
    let latency = started.elapsed();
    assert!(
        latency < Duration::from_secs(10),
        "searchable after {latency:?}"
    );
    assert_eq!(
        keys(&search(&s.admin, "content.command:\"needle 6 7 x\"").await),
        std::slice::from_ref(&key),
        "the typed command line is indexed as typed"
    );
    assert!(
        keys(&search(&s.admin, "content.command:needle42x").await).is_empty(),
        "the output is screen text, not a command"
    );

    // Seconds later, so its output is recorded apart from the first (for the replay below).
    stdin
        .write_all(b"echo second-line-haystack; exit\n")
        .unwrap();
    drop(stdin);
    let out = tokio::task::spawn_blocking(move || shell.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("needle42x"));
    let other = s.exec(s.lab, "echo unrelated-output").await;

    // Ended: still found, by content and metadata together; NOT excludes it.
    let ended = eventually(10, "the ended session", || async {
        let found = keys(
            &search(
                &s.admin,
                "needle42x AND active:false AND psm.connection_policy:prod",
            )
            .await,
        );
        found.contains(&key).then_some(found)
    })
    .await;
    assert_eq!(ended, std::slice::from_ref(&key));
    let without = keys(&search(&s.admin, "NOT needle42x").await);
    assert!(
        without.contains(&other) && !without.contains(&key),
        "{without:?}"
    );
    assert_eq!(
        keys(&search(&s.admin, "needle4*").await),
        std::slice::from_ref(&key),
        "wildcards"
    );
    assert_eq!(
        keys(&search(&s.admin, "\"SECOND line\"").await),
        std::slice::from_ref(&key),
        "phrases, any case"
    );

    // Content hits carry their time; `custos replay --at` starts there.
    let hits = s
        .admin
        .get(&format!("{SESSIONS}/{key}/content?q=second-line-haystack"))
        .await;
    assert_eq!(hits.status, StatusCode::OK, "{}", hits.json);
    let screen_hit = hits.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["body"]["kind"] == "screen")
        .cloned()
        .unwrap_or_else(|| panic!("no screen hit: {}", hits.json));
    assert!(
        screen_hit["body"]["text"]
            .as_str()
            .unwrap()
            .contains("second-line-haystack")
    );
    let offset = screen_hit["body"]["offset"].as_f64().unwrap();
    let time = screen_hit["body"]["time"].as_str().unwrap().to_string();
    assert!(offset > 0.0, "{screen_hit}");
    assert!(
        hits.json["meta"]["match_count"].as_u64().unwrap() >= 2,
        "typed and shown: {}",
        hits.json
    );
    let empty = s.admin.get(&format!("{SESSIONS}/{key}/content")).await;
    assert_eq!(empty.json["items"], json!([]), "no q: nothing, as SPS does");
    let metadata = s
        .admin
        .get(&format!("{SESSIONS}/{key}/content?q=protocol%3Assh"))
        .await;
    assert_eq!(
        metadata.status,
        StatusCode::BAD_REQUEST,
        "{}",
        metadata.json
    );
    assert_eq!(metadata.error_type(), "InvalidQuery");

    let trail = s.server.data_dir().join(format!("trails/{key}.trail"));
    for at in [offset.to_string(), time] {
        let replay = std::process::Command::new(env!("CARGO_BIN_EXE_custos"))
            .args(["replay", "--max", "--at", &at])
            .arg(&trail)
            .output()
            .unwrap();
        assert!(
            replay.status.success(),
            "{}",
            String::from_utf8_lossy(&replay.stderr)
        );
        let shown = String::from_utf8_lossy(&replay.stdout);
        assert!(shown.contains("second-line-haystack"), "--at {at}: {shown}");
        assert!(
            !shown.contains("needle42x"),
            "--at {at} starts after the first line: {shown}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listing_takes_sps_parameters_and_bad_queries_say_where() {
    let s = site().await;
    let first = s.exec(s.prod, "echo one").await;
    let second = s.exec(s.lab, "echo two").await;
    let admin = &s.admin;

    // sort, fields, paging links that keep the question.
    let r = admin
        .get(&format!("{SESSIONS}?q=protocol%3ASSH&sort=start_time&limit=1&fields=protocol,recording.connection_policy"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(keys(&r.json), std::slice::from_ref(&first));
    assert_eq!(
        r.json["items"][0]["body"],
        json!({"protocol": "SSH", "recording": {"connection_policy": "prod"}})
    );
    assert_eq!(r.json["meta"]["match_count"], 2);
    assert_eq!(
        r.json["meta"]["fields"],
        json!(["protocol", "recording.connection_policy"])
    );
    let next = r.json["meta"]["next"].as_str().unwrap().to_string();
    assert!(
        next.contains("q=protocol%3ASSH") && next.contains("sort=start_time"),
        "{next}"
    );
    let page2 = admin.get(&next).await;
    assert_eq!(keys(&page2.json), std::slice::from_ref(&second));
    assert_eq!(page2.json["meta"]["next"], Value::Null);
    let newest = admin.get(&format!("{SESSIONS}?sort=-start_time")).await;
    assert_eq!(keys(&newest.json), [second.clone(), first.clone()]);
    let everything = admin.get(&format!("{SESSIONS}?fields=*&limit=1")).await;
    assert_eq!(
        everything.json["items"][0]["body"]["recording"]["session_id"]
            .as_str()
            .map(|s| s.starts_with("svc/")),
        Some(true)
    );

    // start / end in ISO 8601.
    let r = admin
        .get(&format!("{SESSIONS}?start=2000-01-01&end=2999-01-01T00:00"))
        .await;
    assert_eq!(r.json["meta"]["match_count"], 2, "{}", r.json);
    let r = admin.get(&format!("{SESSIONS}?start=2999-01-01")).await;
    assert_eq!(r.json["meta"]["match_count"], 0);
    let r = admin.get(&format!("{SESSIONS}?start=tomorrow")).await;
    assert_eq!(
        (r.status, r.error_type()),
        (StatusCode::BAD_REQUEST, "SyntacticError")
    );
    assert_eq!(r.json["error"]["details"]["field"], "start");

    // CSV by parameter and by Accept.
    let (status, headers, body) = admin
        .get_bytes(&format!(
            "{SESSIONS}?format=csv&sort=start_time&fields=protocol,recording.connection_policy"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = String::from_utf8(body).unwrap();
    assert_eq!(
        text,
        format!(
            "key,protocol,recording.connection_policy\r\n{first},SSH,prod\r\n{second},SSH,lab\r\n"
        )
    );
    let accept = admin
        .request(
            reqwest::Method::GET,
            SESSIONS,
            None,
            &[("accept", "text/csv")],
        )
        .await;
    assert!(
        accept.text.starts_with("key,start_time,end_time,protocol"),
        "{}",
        accept.text
    );

    // Invalid queries: 400 InvalidQuery with the position of the problem.
    for (q, position) in [
        ("protocol:ssh AND", 13),
        ("(protocol:ssh", 0),
        ("colour:red", 0),
        ("protocol:ssh AND server.port:abc", 17),
    ] {
        let r = admin.get(&format!("{SESSIONS}?q={}", encode(q))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.json);
        assert_eq!(r.error_type(), "InvalidQuery", "{q}");
        let details = &r.json["error"]["details"];
        assert_eq!(details["field"], "q");
        assert_eq!(details["position"], position, "{q}: {}", r.json);
        assert!(
            r.json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("position"),
            "{}",
            r.json
        );
    }
    let r = admin.get(&format!("{SESSIONS}?sort=colour")).await;
    assert_eq!(
        (r.status, r.error_type()),
        (StatusCode::BAD_REQUEST, "SyntacticError")
    );

    // _count.
    let count = admin
        .get(&format!("{SESSIONS}/_count?q=psm.connection_policy%3Alab"))
        .await;
    assert_eq!(count.json, json!({"count": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_and_histograms_count_sessions() {
    let s = site().await;
    s.exec(s.prod, "true").await;
    s.exec(s.prod, "true").await;
    s.exec(s.lab, "true").await;
    let admin = &s.admin;
    let r = admin
        .get(&format!(
            "{SESSIONS}/stats?field=recording.connection_policy&sub_fields=protocol&size=5"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["meta"]["href"], format!("{SESSIONS}/stats"));
    let body = &r.json["body"];
    assert_eq!(body["field"], "recording.connection_policy");
    assert_eq!(
        body["values"][0],
        json!({"value": "prod", "count": 2, "sub_fields": {"protocol": [{"value": "SSH", "count": 2}]}})
    );
    assert_eq!(body["values"][1]["value"], "lab");
    let top1 = admin
        .get(&format!(
            "{SESSIONS}/stats?field=psm.connection_policy&size=1"
        ))
        .await;
    assert_eq!(top1.json["body"]["values"].as_array().unwrap().len(), 1);
    assert_eq!(top1.json["body"]["other_count"], 1);
    let filtered = admin
        .get(&format!(
            "{SESSIONS}/stats?field=protocol&q=psm.connection_policy%3Alab"
        ))
        .await;
    assert_eq!(
        filtered.json["body"]["values"],
        json!([{"value": "SSH", "count": 1}])
    );

    let h = admin
        .get(&format!(
            "{SESSIONS}/histogram?field=start_time&bin-size=hour"
        ))
        .await;
    assert_eq!(h.status, StatusCode::OK, "{}", h.json);
    let bins = h.json["body"]["bins"].as_array().unwrap();
    assert_eq!(
        bins.iter()
            .map(|b| b["count"].as_u64().unwrap())
            .sum::<u64>(),
        3,
        "{}",
        h.json
    );
    assert!(bins[0]["start"].as_str().unwrap().ends_with(":00:00.000Z"));

    for (path, field) in [
        (format!("{SESSIONS}/stats"), "field"),
        (format!("{SESSIONS}/histogram"), "field"),
        (format!("{SESSIONS}/stats?field=protocol&size=0"), "size"),
    ] {
        let r = admin.get(&path).await;
        assert_eq!(
            (r.status, r.error_type()),
            (StatusCode::BAD_REQUEST, "SyntacticError"),
            "{path}"
        );
        assert_eq!(r.json["error"]["details"]["field"], field);
    }
    for path in [
        format!("{SESSIONS}/stats?field=colour"),
        format!("{SESSIONS}/stats?field=start_time"),
        format!("{SESSIONS}/histogram?field=protocol"),
        format!("{SESSIONS}/histogram?field=start_time&bin-size=fortnight"),
    ] {
        let r = admin.get(&path).await;
        assert_eq!(
            (r.status, r.error_type()),
            (StatusCode::BAD_REQUEST, "InvalidQuery"),
            "{path}: {}",
            r.json
        );
    }
    let r = admin
        .put(&format!("{SESSIONS}/stats?field=protocol"), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

/// Whether a user sees the `prod` and `lab` sessions; `None`: no search privilege at all.
type Sees = Option<(bool, bool)>;

/// Who sees what: the matrix of users (by their groups and the rules naming them) and every
/// session endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_data_rules_restrict_every_session_endpoint() {
    let s = site().await;
    let prod = s.exec(s.prod, "echo prod-secret-output").await;
    let lab = s.exec(s.lab, "echo lab-secret-output").await;
    let admin = &s.admin;

    admin.open_transaction().await;
    let auditors = admin
        .create(GROUPS, &json!({"name": "prod-auditors", "members": []}))
        .await;
    let rule = admin
        .create(AUDIT_DATA, &json!({"name": "prod-only", "query": "psm.connection_policy:prod", "groups": ["prod-auditors"]}))
        .await;
    let auditor = admin
        .create_user("auditor", "Aud1tor-pass!", &["search", "prod-auditors"])
        .await;
    admin
        .create_user("chief", "Ch1ef-pass!!", &["search", "search-all"])
        .await;
    admin
        .create_user("clerk", "Cl3rk-pass!!", &["search"])
        .await;
    admin.create_user("outsider", "0utsider-pass", &[]).await;
    let _ = (auditors, auditor);
    admin.commit_ok().await;

    // (user, password, sees prod, sees lab); `None`: no search privilege at all (403).
    let users: [(&str, &str, Sees); 5] = [
        ("admin", crate::harness::ADMIN_PASSWORD, Some((true, true))),
        ("chief", "Ch1ef-pass!!", Some((true, true))),
        ("auditor", "Aud1tor-pass!", Some((true, false))),
        ("clerk", "Cl3rk-pass!!", Some((false, false))),
        ("outsider", "0utsider-pass", None),
    ];
    for (user, password, sees) in users {
        let c = s.server.login(user, password).await;
        let Some((sees_prod, sees_lab)) = sees else {
            for path in [
                SESSIONS.to_string(),
                format!("{SESSIONS}/_count"),
                format!("{SESSIONS}/stats?field=protocol"),
                format!("{SESSIONS}/histogram?field=start_time"),
                format!("{SESSIONS}/{prod}"),
                format!("{SESSIONS}/{prod}/content?q=prod"),
                format!("{SESSIONS}/{prod}/audit_trail"),
            ] {
                let r = c.get(&path).await;
                assert_eq!(r.status, StatusCode::FORBIDDEN, "{user} {path}");
            }
            continue;
        };
        let expected: Vec<String> = [(sees_prod, &prod), (sees_lab, &lab)]
            .iter()
            .filter(|(sees, _)| *sees)
            .map(|(_, k)| (*k).clone())
            .collect();
        let n = expected.len() as u64;
        let mut listed = keys(&c.get(SESSIONS).await.json);
        listed.sort();
        let mut want = expected.clone();
        want.sort();
        assert_eq!(listed, want, "{user}: listing");
        assert_eq!(
            keys(&search(&c, "secret").await).len() as u64,
            n,
            "{user}: content search"
        );
        assert_eq!(
            c.get(&format!("{SESSIONS}/_count")).await.json["count"],
            n,
            "{user}: _count"
        );
        let stats = c
            .get(&format!("{SESSIONS}/stats?field=protocol"))
            .await
            .json;
        let counted: u64 = stats["body"]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["count"].as_u64().unwrap())
            .sum();
        assert_eq!(counted, n, "{user}: stats {stats}");
        let h = c
            .get(&format!(
                "{SESSIONS}/histogram?field=start_time&bin-size=day"
            ))
            .await
            .json;
        let binned: u64 = h["body"]["bins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["count"].as_u64().unwrap())
            .sum();
        assert_eq!(binned, n, "{user}: histogram {h}");
        for (key, sees, word) in [(&prod, sees_prod, "prod"), (&lab, sees_lab, "lab")] {
            let record = c.get(&format!("{SESSIONS}/{key}")).await;
            let content = c
                .get(&format!("{SESSIONS}/{key}/content?q={word}-secret-output"))
                .await;
            let (trail, _, bytes) = c.get_bytes(&format!("{SESSIONS}/{key}/audit_trail")).await;
            if sees {
                assert_eq!(record.status, StatusCode::OK, "{user} {word}: record");
                assert_eq!(content.status, StatusCode::OK, "{user} {word}: content");
                assert!(
                    content.json["meta"]["match_count"].as_u64().unwrap() >= 1,
                    "{user} {word}: {}",
                    content.json
                );
                assert_eq!(trail, StatusCode::OK, "{user} {word}: trail");
                assert!(bytes.starts_with(b"CSTR"), "{user} {word}: a trail file");
            } else {
                assert_eq!(
                    record.status,
                    StatusCode::NOT_FOUND,
                    "{user} {word}: record"
                );
                assert_eq!(
                    content.status,
                    StatusCode::NOT_FOUND,
                    "{user} {word}: content"
                );
                assert_eq!(trail, StatusCode::NOT_FOUND, "{user} {word}: trail");
            }
        }
    }

    // A changed rule applies at once, without logging in again.
    let auditor = s.server.login("auditor", "Aud1tor-pass!").await;
    admin.open_transaction().await;
    let r = admin
        .put(&format!("{AUDIT_DATA}/{rule}"), &json!({"name": "prod-only", "query": "psm.connection_policy:lab", "groups": ["prod-auditors"]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    admin.commit_ok().await;
    assert_eq!(
        keys(&auditor.get(SESSIONS).await.json),
        std::slice::from_ref(&lab)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_is_rebuilt_from_the_database_and_the_trails() {
    let mut s = site().await;
    let key = s.exec(s.prod, "echo rebuilt-needle").await;
    eventually(10, "the text in the index", || async {
        keys(&search(&s.admin, "rebuilt").await)
            .contains(&key)
            .then_some(())
    })
    .await;
    let data = s.server.data_dir();

    // With the server running, a rebuild refuses (the index is in use).
    let busy = std::process::Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(["index", "rebuild", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!busy.status.success());
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );

    // Killed, index wiped: rebuilt offline, everything is found again.
    s.server.kill9().await;
    std::fs::remove_dir_all(data.join("index")).unwrap();
    std::fs::create_dir_all(data.join("index")).unwrap();
    std::fs::write(data.join("index/meta.json"), b"garbage").unwrap();
    let rebuild = std::process::Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(["index", "rebuild", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        rebuild.status.success(),
        "{}",
        String::from_utf8_lossy(&rebuild.stderr)
    );
    assert!(
        String::from_utf8_lossy(&rebuild.stdout).contains("indexed 1 sessions"),
        "{}",
        String::from_utf8_lossy(&rebuild.stdout)
    );
    s.server.restart().await;
    let admin = s.server.admin().await;
    assert_eq!(
        keys(&search(&admin, "rebuilt-needle AND psm.connection_policy:prod").await),
        std::slice::from_ref(&key)
    );

    // Killed again with the index lost: the server catches up by itself at start.
    s.server.kill9().await;
    std::fs::remove_dir_all(data.join("index")).unwrap();
    s.server.restart().await;
    let admin = s.server.admin().await;
    eventually(15, "the index caught up at start", || async {
        (keys(&search(&admin, "rebuilt-needle").await) == std::slice::from_ref(&key)).then_some(())
    })
    .await;
}
