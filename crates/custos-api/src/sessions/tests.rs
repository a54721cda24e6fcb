//! The session endpoints over a real store and registry, below HTTP.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, StatusCode, Version};
use custos_config::acl::Privileges;
use custos_sessions::{Endpoint, LiveSessions, SessionRecord, SessionStore, Verdict};
use custos_store::{KEY_LEN, Sealer, Store};
use serde_json::{Value, json};

use super::route;
use crate::request::{ApiRequest, Caller};
use crate::state::{Api, ApiOptions, ServerIdentity};

struct Fixture {
    api: Arc<Api>,
    store: Arc<Store>,
    live: LiveSessions,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Store::open(&dir.path().join("c.db"), Sealer::new(&[7; KEY_LEN]))
            .await
            .unwrap(),
    );
    let live = LiveSessions::default();
    let options = ApiOptions {
        auto_open_transaction: false,
        identity: ServerIdentity {
            hostname: "h".into(),
            domainname: String::new(),
            node_id: "n".into(),
        },
    };
    let (api, _) = Api::open(Arc::clone(&store), live.clone(), options, "Adm1n-pass")
        .await
        .unwrap();
    Fixture {
        api,
        store,
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
    }
}

#[tokio::test]
async fn saved_records_are_listed_newest_first_and_shown() {
    let f = fixture().await;
    for (key, start) in [("old", 1_000_000), ("mid", 2_000_000), ("new", 3_000_000)] {
        SessionStore::save(f.store.as_ref(), record(key, start, false))
            .await
            .unwrap();
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
        get(&f.api, &admin, "/api/audit/sessions/mid/audit_trail").await,
        Err("NotFound".into()),
        "trails are not served yet"
    );
}

#[tokio::test]
async fn a_session_in_progress_shows_its_live_state() {
    let f = fixture().await;
    let started = record("k1", 5_000_000, true);
    f.store.save_session(&started).await.unwrap();
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
    f.store.save_session(&finished).await.unwrap();
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
    f.store.save_session(&record("k4", 1, false)).await.unwrap();
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
async fn query_search_is_refused_honestly_and_unknown_parameters_are_ignored() {
    let f = fixture().await;
    let admin = admin(&f.api);
    let path = "/api/audit/sessions";
    assert_eq!(
        call(&f.api, &admin, Method::GET, path, &[("q", "active:true")]).await,
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
