//! The session endpoints over a real store and registry, below HTTP.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, StatusCode, Version};
use custos_config::acl::Privileges;
use custos_search::SearchIndex;
use custos_sessions::{Endpoint, LiveSessions, SessionRecord, Verdict};
use custos_store::{KEY_LEN, Sealer, Store};
use serde_json::{Value, json};

use super::download::{audit_trail, audit_trail_key};
use super::route;
use crate::request::{ApiRequest, Caller};
use crate::state::{Api, ApiOptions, ServerIdentity};

struct Fixture {
    api: Arc<Api>,
    store: Arc<Store>,
    index: Arc<SearchIndex>,
    live: LiveSessions,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// Saves a record as the server does: to the database, then to the index (searchable now).
    async fn save(&self, record: &SessionRecord) {
        let revision = self.store.save_session(record).await.unwrap();
        self.index.record(record, revision).unwrap();
        self.index.sync().unwrap();
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::open(&dir.path().join("c.db"), Sealer::new(&[7; KEY_LEN]))
            .await
            .unwrap(),
    );
    let live = LiveSessions::default();
    let index = Arc::new(SearchIndex::open(&dir.path().join("index")).unwrap());
    let options = ApiOptions {
        auto_open_transaction: false,
        identity: ServerIdentity {
            hostname: "h".into(),
            domainname: String::new(),
            node_id: "n".into(),
        },
    };
    let (api, _) = Api::open(
        Arc::clone(&store),
        live.clone(),
        index.clone(),
        options,
        "Adm1n-pass",
    )
    .await
    .unwrap();
    Fixture {
        api,
        store,
        index,
        live,
        _dir: dir,
    }
}

fn caller(api: &Api, privileges: Privileges) -> Caller {
    let (_, login) = api.logins.start("someone", privileges, Instant::now());
    Caller {
        login,
        cookie: None,
    }
}

fn admin(api: &Api) -> Caller {
    caller(api, Privileges::superuser())
}

fn in_groups(api: &Api, groups: &[&str]) -> Caller {
    caller(api, Privileges::from_groups(groups.iter().copied()))
}

/// The reply's JSON, or the error's SPS type.
async fn call(
    api: &Api,
    caller: &Caller,
    method: Method,
    path: &str,
    query: &[(&str, &str)],
) -> Result<Value, String> {
    let req = ApiRequest {
        method,
        version: Version::HTTP_11,
        path: path.into(),
        query: query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
        headers: HeaderMap::new(),
        body: Default::default(),
        peer: "127.0.0.1".parse().unwrap(),
        now: Instant::now(),
    };
    match route(api, &req, caller).await.expect("a session endpoint") {
        Ok((status, body)) => {
            assert_eq!(status, StatusCode::OK);
            Ok(body)
        }
        Err(e) => Err(e.code().to_string()),
    }
}

async fn get(api: &Api, caller: &Caller, path: &str) -> Result<Value, String> {
    call(api, caller, Method::GET, path, &[]).await
}

async fn delete(api: &Api, caller: &Caller, id: Option<&str>) -> Result<Value, String> {
    let query: Vec<(&str, &str)> = id.map(|id| ("id", id)).into_iter().collect();
    call(api, caller, Method::DELETE, "/api/active-sessions", &query).await
}

fn record(key: &str, start_time: i64, active: bool) -> SessionRecord {
    let ep = |port| Endpoint {
        ip: "192.0.2.7".parse().unwrap(),
        port,
    };
    SessionRecord {
        key: key.into(),
        session_id: format!("svc/{key}/demo:1"),
        protocol: "SSH".into(),
        node_id: "n".into(),
        client: ep(40000),
        gateway: ep(2222),
        server: None,
        server_local: None,
        gateway_username: Some("alice".into()),
        server_username: None,
        connection_policy: "demo".into(),
        connection_policy_id: "pk".into(),
        channel_policy: None,
        auth_method: None,
        start_time,
        end_time: (!active).then_some(start_time + 1_000_000),
        active,
        verdict: Verdict::Accept,
        reason: None,
        has_accepted_channel: false,
        trail: None,
        archived: false,
        archive: None,
    }
}

#[tokio::test]
async fn saved_records_are_listed_newest_first_and_shown() {
    let f = fixture().await;
    for (key, start) in [("old", 1_000_000), ("mid", 2_000_000), ("new", 3_000_000)] {
        f.save(&record(key, start, false)).await;
    }
    let admin = admin(&f.api);
    let page = call(
        &f.api,
        &admin,
        Method::GET,
        "/api/audit/sessions",
        &[("limit", "2")],
    )
    .await
    .unwrap();
    assert_eq!(
        page["items"],
        json!([
            {"key": "new", "meta": {"href": "/api/audit/sessions/new"}},
            {"key": "mid", "meta": {"href": "/api/audit/sessions/mid"}},
        ])
    );
    assert_eq!(page["meta"]["match_count"], 3);
    assert_eq!(
        page["meta"]["next"],
        "/api/audit/sessions?limit=2&offset=2&fields="
    );
    assert_eq!(page["meta"]["parent"], "/api/audit");

    let one = get(&f.api, &admin, "/api/audit/sessions/mid")
        .await
        .unwrap();
    assert_eq!(one["key"], "mid");
    assert_eq!(one["body"]["recording"]["session_id"], "svc/mid/demo:1");
    assert_eq!(one["body"]["duration"], 1);
    assert_eq!(one["meta"]["href"], "/api/audit/sessions/mid");
    assert_eq!(one["meta"]["parent"], "/api/audit/sessions");
    assert!(one["meta"]["remaining_seconds"].is_u64());

    assert_eq!(
        get(&f.api, &admin, "/api/audit/sessions/nope").await,
        Err("NotFound".into())
    );
    assert_eq!(
        get(&f.api, &admin, "/api/audit/sessions/mid/events").await,
        Err("NotFound".into()),
        "other sub-resources are not served yet"
    );
}

#[tokio::test]
async fn a_session_in_progress_shows_its_live_state() {
    let f = fixture().await;
    let started = record("k1", 5_000_000, true);
    f.save(&started).await;
    let (handle, _signal) = f.live.register(started);
    handle.update(|r| r.server_username = Some("root".into()));

    let admin = admin(&f.api);
    let one = get(&f.api, &admin, "/api/audit/sessions/k1").await.unwrap();
    assert_eq!(one["body"]["active"], true);
    assert_eq!(one["body"]["end_time"], Value::Null);
    assert_eq!(
        one["body"]["user"]["server_username"],
        json!(["root"]),
        "live, not stored"
    );

    let active = get(&f.api, &admin, "/api/active-sessions").await.unwrap();
    let items = active["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["key"], "svc/k1/demo:1");
    assert_eq!(items[0]["meta"]["href"], "/api/audit/sessions/k1");
    assert_eq!(items[0]["body"]["user"]["gateway_username"], "alice");
    assert_eq!(active["meta"]["href"], "/api/active-sessions");
    assert_eq!(active["meta"]["parent"], "/api");

    // Once finished, the stored final record is what shows.
    let finished = handle.finish(9_000_000, None).unwrap();
    f.save(&finished).await;
    let one = get(&f.api, &admin, "/api/audit/sessions/k1").await.unwrap();
    assert_eq!(one["body"]["active"], false);
    assert_eq!(one["body"]["duration"], 4);
    let active = get(&f.api, &admin, "/api/active-sessions").await.unwrap();
    assert_eq!(active["items"], json!([]));
}

#[tokio::test]
async fn delete_terminates_through_the_gateway_and_checks_the_id() {
    let f = fixture().await;
    let writer = in_groups(&f.api, &["sessions-write"]);
    let (handle, mut signal) = f.live.register(record("k2", 1, true));
    let gateway = tokio::spawn(async move {
        signal.requested().await;
        handle.finish(2, Some(Verdict::Terminated))
    });
    assert_eq!(
        delete(&f.api, &writer, Some("svc/k2/demo:1"))
            .await
            .unwrap(),
        json!({"meta": {"href": "/api/active-sessions", "parent": "/api"}})
    );
    let ended = gateway.await.unwrap().unwrap();
    assert_eq!(ended.verdict, Verdict::Terminated);
    assert!(f.live.list().is_empty());

    assert_eq!(
        delete(&f.api, &writer, None).await,
        Err("SessionIdMissing".into())
    );
    assert_eq!(
        delete(&f.api, &writer, Some("")).await,
        Err("SessionIdMissing".into())
    );
    assert_eq!(
        delete(&f.api, &writer, Some("svc/k2/demo:1")).await,
        Err("SessionCouldNotBeFound".into()),
        "an ended session cannot be terminated again"
    );
}

#[tokio::test]
async fn a_session_that_does_not_end_in_time_is_termination_failed() {
    let mut f = fixture().await;
    Arc::get_mut(&mut f.api).unwrap().terminate_within = Duration::from_millis(50);
    let (_handle, _signal) = f.live.register(record("k3", 1, true));
    let admin = admin(&f.api);
    assert_eq!(
        delete(&f.api, &admin, Some("svc/k3/demo:1")).await,
        Err("SessionTerminationFailed".into())
    );
    assert_eq!(f.live.list().len(), 1, "still listed: it did not end");
}

#[tokio::test]
async fn guards_follow_the_sps_privileges() {
    let f = fixture().await;
    let search = in_groups(&f.api, &["search"]);
    let viewer = in_groups(&f.api, &["sessions-view"]);
    let nobody = in_groups(&f.api, &[]);

    assert!(get(&f.api, &search, "/api/audit/sessions").await.is_ok());
    assert_eq!(
        get(&f.api, &search, "/api/active-sessions").await,
        Err("Unauthorized".into())
    );
    assert!(get(&f.api, &viewer, "/api/active-sessions").await.is_ok());
    assert_eq!(
        delete(&f.api, &viewer, Some("svc/x/y:1")).await,
        Err("Unauthorized".into())
    );
    assert_eq!(
        get(&f.api, &viewer, "/api/audit/sessions").await,
        Err("Unauthorized".into())
    );
    assert_eq!(
        get(&f.api, &nobody, "/api/audit/sessions/k").await,
        Err("Unauthorized".into())
    );
    // The guard comes before the id check: no hint to the unauthorised.
    assert_eq!(
        delete(&f.api, &nobody, None).await,
        Err("Unauthorized".into())
    );
    let admin = admin(&f.api);
    assert_eq!(
        call(&f.api, &admin, Method::POST, "/api/audit/sessions", &[]).await,
        Err("MethodNotAllowed".into())
    );
}

#[tokio::test]
async fn records_are_shown_only_to_those_who_may_search_all_connections() {
    let f = fixture().await;
    f.save(&record("k4", 1, false)).await;
    let search = in_groups(&f.api, &["search"]);
    let page = get(&f.api, &search, "/api/audit/sessions").await.unwrap();
    assert_eq!(
        (page["items"].clone(), page["meta"]["match_count"].clone()),
        (json!([]), json!(0))
    );
    assert_eq!(
        get(&f.api, &search, "/api/audit/sessions/k4").await,
        Err("NotFound".into())
    );

    let all = in_groups(&f.api, &["search", "search-all"]);
    let page = get(&f.api, &all, "/api/audit/sessions").await.unwrap();
    assert_eq!(page["meta"]["match_count"], 1);
    assert!(get(&f.api, &all, "/api/audit/sessions/k4").await.is_ok());
}

#[tokio::test]
async fn queries_filter_bad_ones_are_invalid_and_unknown_parameters_are_ignored() {
    let f = fixture().await;
    f.save(&record("on", 5, true)).await;
    f.save(&record("off", 6, false)).await;
    let admin = admin(&f.api);
    let path = "/api/audit/sessions";
    let active = call(&f.api, &admin, Method::GET, path, &[("q", "active:true")])
        .await
        .unwrap();
    assert_eq!(
        active["items"],
        json!([{"key": "on", "meta": {"href": "/api/audit/sessions/on"}}])
    );
    assert_eq!(
        active["meta"]["first"], "/api/audit/sessions?limit=500&offset=0&fields=&q=active%3Atrue",
        "paging URLs keep the query"
    );
    assert_eq!(
        call(&f.api, &admin, Method::GET, path, &[("q", "active:")]).await,
        Err("InvalidQuery".into())
    );
    assert_eq!(
        call(&f.api, &admin, Method::GET, path, &[("sort", "colour")]).await,
        Err("SyntacticError".into())
    );
    assert_eq!(
        call(&f.api, &admin, Method::GET, path, &[("start", "yesterday")]).await,
        Err("SyntacticError".into())
    );
    let page = call(
        &f.api,
        &admin,
        Method::GET,
        path,
        &[("q", ""), ("sort", "-start_time")],
    )
    .await
    .unwrap();
    assert_eq!(page["meta"]["fields"], json!([]));
    assert_eq!(page["meta"]["limit"], 500);
}

#[tokio::test]
async fn other_paths_are_left_to_the_router() {
    let f = fixture().await;
    let admin = admin(&f.api);
    for path in [
        "/api/audit",
        "/api/audit/sessionsx",
        "/api/active-sessions/x",
    ] {
        let req = ApiRequest {
            method: Method::GET,
            version: Version::HTTP_11,
            path: path.into(),
            query: HashMap::new(),
            headers: HeaderMap::new(),
            body: Default::default(),
            peer: "127.0.0.1".parse().unwrap(),
            now: Instant::now(),
        };
        assert!(route(&f.api, &req, &admin).await.is_none(), "{path}");
    }
}

/// `GET <key>/audit_trail`: the response's headers and body, or the error envelope.
async fn download(
    f: &Fixture,
    caller: &Caller,
    method: Method,
    key: &str,
) -> Result<(HeaderMap, Vec<u8>), Value> {
    let path = format!("/api/audit/sessions/{key}/audit_trail");
    assert_eq!(audit_trail_key(&path), Some(key));
    let req = ApiRequest {
        method,
        version: Version::HTTP_11,
        path: path.clone(),
        query: HashMap::new(),
        headers: HeaderMap::new(),
        body: Default::default(),
        peer: "127.0.0.1".parse().unwrap(),
        now: Instant::now(),
    };
    let response = match audit_trail(&f.api, &req, caller, key).await {
        Ok(response) => response,
        Err(e) => {
            let response = e.into_response_for(&path);
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            return Err(serde_json::from_slice(&bytes).unwrap());
        }
    };
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Ok((headers, body.to_vec()))
}

/// A record of `key` whose trail is `trails/<key>.trail` holding `bytes` in the data directory.
async fn with_trail(f: &Fixture, key: &str, bytes: &[u8], active: bool) -> SessionRecord {
    let trails = f._dir.path().join("trails");
    std::fs::create_dir_all(&trails).unwrap();
    std::fs::write(trails.join(format!("{key}.trail")), bytes).unwrap();
    let mut r = record(key, 1_000_000, active);
    r.trail = Some(format!("trails/{key}.trail"));
    f.save(&r).await;
    r
}

/// Bytes that are not text, in a file larger than one chunk of the stream.
fn binary(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 256) as u8).collect()
}

#[test]
fn only_the_audit_trail_of_one_session_is_a_download() {
    assert_eq!(
        audit_trail_key("/api/audit/sessions/k1/audit_trail"),
        Some("k1")
    );
    for path in [
        "/api/audit/sessions/audit_trail",
        "/api/audit/sessions//audit_trail",
        "/api/audit/sessions/a/b/audit_trail",
        "/api/audit/sessions/k1/audit_trailx",
        "/api/audit/sessions/k1/xaudit_trail",
        "/api/audit/sessions/k1",
        "/api/audit/sessionsk1/audit_trail",
    ] {
        assert_eq!(audit_trail_key(path), None, "{path}");
    }
}

#[tokio::test]
async fn a_finished_trail_is_sent_as_stored_with_its_length() {
    let f = fixture().await;
    let bytes = binary(600 * 1024 + 13);
    with_trail(&f, "done", &bytes, false).await;
    let (headers, body) = download(&f, &admin(&f.api), Method::GET, "done")
        .await
        .unwrap();
    assert_eq!(body, bytes);
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"done.trail\""
    );
    assert_eq!(headers["content-length"], bytes.len().to_string().as_str());
    assert_eq!(headers["cache-control"], "no-store");
}

#[tokio::test]
async fn a_session_in_progress_sends_what_is_written_so_far() {
    let f = fixture().await;
    let started = with_trail(&f, "live", b"first part", true).await;
    let (_handle, _signal) = f.live.register(started);
    let admin = admin(&f.api);
    let (headers, body) = download(&f, &admin, Method::GET, "live").await.unwrap();
    assert_eq!(body, b"first part");
    assert!(
        headers.get("content-length").is_none(),
        "the file may still grow"
    );
    let path = f._dir.path().join("trails/live.trail");
    std::fs::write(&path, b"first part, second part").unwrap();
    let (_, body) = download(&f, &admin, Method::GET, "live").await.unwrap();
    assert_eq!(body, b"first part, second part");
}

#[tokio::test]
async fn unknown_and_invisible_sessions_are_not_found_like_their_records() {
    let f = fixture().await;
    with_trail(&f, "k5", b"trail", false).await;
    let admin = admin(&f.api);
    let unknown = download(&f, &admin, Method::GET, "nope").await.unwrap_err();
    assert_eq!(unknown["error"]["type"], "NotFound");
    assert_eq!(
        unknown["error"]["message"],
        "The requested object does not exist."
    );
    assert_eq!(
        unknown["meta"]["href"],
        "/api/audit/sessions/nope/audit_trail"
    );
    // Searchers who may not see every session see neither the record nor its trail.
    let search = in_groups(&f.api, &["search"]);
    let hidden = download(&f, &search, Method::GET, "k5").await.unwrap_err();
    assert_eq!(
        (&hidden["error"]["type"], &hidden["error"]["message"]),
        (&unknown["error"]["type"], &unknown["error"]["message"]),
        "indistinguishable from a missing session"
    );
    assert_eq!(
        get(&f.api, &search, "/api/audit/sessions/k5").await,
        Err("NotFound".into())
    );
    // Without the search privilege: 403, as for the record.
    let nobody = in_groups(&f.api, &["sessions-view"]);
    let denied = download(&f, &nobody, Method::GET, "k5").await.unwrap_err();
    assert_eq!(denied["error"]["type"], "Unauthorized");
    let all = in_groups(&f.api, &["search", "search-all"]);
    assert!(download(&f, &all, Method::GET, "k5").await.is_ok());
    let post = download(&f, &admin, Method::POST, "k5").await.unwrap_err();
    assert_eq!(post["error"]["type"], "MethodNotAllowed");
}

#[tokio::test]
async fn a_trail_that_is_not_there_is_not_available() {
    let f = fixture().await;
    let admin = admin(&f.api);
    let not_available = |e: Value| {
        assert_eq!(e["error"]["type"], "NotFound", "{e}");
        let message = e["error"]["message"].as_str().unwrap().to_string();
        assert!(
            message.starts_with("The audit trail is not available"),
            "{message}"
        );
        message
    };
    // No trail recorded (e.g. a refused connection).
    f.save(&record("none", 1, false)).await;
    let e = download(&f, &admin, Method::GET, "none").await.unwrap_err();
    assert!(not_available(e).contains("no audit trail"));
    // The file is gone.
    with_trail(&f, "gone", b"x", false).await;
    std::fs::remove_file(f._dir.path().join("trails/gone.trail")).unwrap();
    let e = download(&f, &admin, Method::GET, "gone").await.unwrap_err();
    assert!(not_available(e).contains("not available on this node"));
    // Deleted by a cleanup policy: the record says so, and so does the answer.
    let mut deleted = with_trail(&f, "arch", b"x", false).await;
    deleted.archive = Some(custos_sessions::TrailArchive {
        policy: "forget".into(),
        policy_id: "k".into(),
        target: "none".into(),
        server: None,
        share: None,
        path: None,
        size: 1,
        blake3: None,
        time: 1,
    });
    f.save(&deleted).await;
    let e = download(&f, &admin, Method::GET, "arch").await.unwrap_err();
    assert!(not_available(e).contains("deleted by its archive/cleanup policy"));
    // Archived elsewhere, with no archive engine running here: unavailable, not "missing".
    let mut archived = with_trail(&f, "arch2", b"x", false).await;
    archived.archived = true;
    archived.archive = Some(custos_sessions::TrailArchive {
        target: "smb".into(),
        server: Some("10.0.0.1".into()),
        share: Some("archive".into()),
        path: Some("x/arch2.trail".into()),
        ..deleted.archive.clone().unwrap()
    });
    f.save(&archived).await;
    let e = download(&f, &admin, Method::GET, "arch2")
        .await
        .unwrap_err();
    assert_eq!(e["error"]["type"], "ServiceUnavailable", "{e}");
    // A record naming a file outside the data directory is never followed.
    let mut escaping = record("esc", 1, false);
    escaping.trail = Some("../c.db".into());
    f.save(&escaping).await;
    let e = download(&f, &admin, Method::GET, "esc").await.unwrap_err();
    not_available(e);
}

#[tokio::test]
async fn downloads_are_logged_unless_the_connection_policy_says_not_to() {
    use custos_config::edit;
    use custos_config::objects::ssh::SSH_CONNECTIONS;
    use custos_config::tree::tree;

    let f = fixture().await;
    let mut doc = f.api.committed().doc.clone();
    let mut connection = |name: &str, log: bool| {
        let body = json!({
            "name": name,
            "network": {"clients": ["0.0.0.0/0"], "targets": ["127.0.0.1"], "ports": [2222]},
            "server_address": {"selection": "fix", "address": "127.0.0.1", "port": 22},
            "policies": {"channel_policy": "-1", "audit_policy": "-1"},
            "log_audit_trail_downloads": log,
        });
        edit::create(&mut doc, tree().node(SSH_CONNECTIONS).unwrap(), body, 1).unwrap()
    };
    let (logged, quiet) = (connection("logged", true), connection("quiet", false));
    f.api.publish(crate::state::Snapshot { revision: 2, doc });

    let mut r = record("k6", 1, false);
    r.connection_policy_id = logged;
    assert!(super::download::should_log(&f.api, &r));
    r.connection_policy_id = quiet;
    assert!(!super::download::should_log(&f.api, &r));
    r.connection_policy_id = "deleted-since".into();
    assert!(
        super::download::should_log(&f.api, &r),
        "a policy that is gone cannot say no"
    );
}
