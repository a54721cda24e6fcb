//! The index end to end below HTTP: records and text in, queries out.

use custos_query::parse;
use custos_search::{Filter, SearchIndex, Sort, Visibility};
use custos_sessions::{Endpoint, SessionRecord, Verdict};
use custos_trail::text::{TextChunk, TextKind};

const DAY: i64 = 86_400_000_000;
/// 2024-01-01T00:00:00Z.
const T0: i64 = 1_704_067_200_000_000;

fn record(
    key: &str,
    user: &str,
    policy: &str,
    protocol: &str,
    start: i64,
    port: u16,
) -> SessionRecord {
    SessionRecord {
        key: key.into(),
        session_id: format!("svc/{key}/{policy}:1"),
        protocol: protocol.into(),
        node_id: "node-1".into(),
        client: Endpoint {
            ip: "10.0.0.7".parse().unwrap(),
            port: 40000,
        },
        gateway: Endpoint {
            ip: "127.0.0.1".parse().unwrap(),
            port: 2222,
        },
        server: Some(Endpoint {
            ip: "192.0.2.10".parse().unwrap(),
            port,
        }),
        server_local: None,
        gateway_username: Some(user.into()),
        server_username: Some(user.into()),
        connection_policy: policy.into(),
        connection_policy_id: format!("id-{policy}"),
        channel_policy: Some("all".into()),
        auth_method: Some("password".into()),
        start_time: start,
        end_time: Some(start + 90_000_000),
        active: false,
        verdict: Verdict::Accept,
        reason: None,
        has_accepted_channel: true,
        trail: None,
        archived: false,
        archive: None,
    }
}

fn line(at: u64, kind: TextKind, text: &str) -> TextChunk {
    TextChunk {
        at,
        kind,
        text: text.into(),
    }
}

struct Fixture {
    index: SearchIndex,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let index = SearchIndex::open(dir.path()).unwrap();
    let records = [
        record("Alpha", "alice", "prod_ssh", "SSH", T0, 22),
        record("bravo", "Bob", "prod_ssh", "SSH", T0 + DAY, 22),
        record("charlie", "carol", "lab", "SSH", T0 + 2 * DAY, 2222),
        record("delta", "alice", "lab", "RDP", T0 + 3 * DAY, 3389),
    ];
    for (i, r) in records.iter().enumerate() {
        index.record(r, i as i64 + 1).unwrap();
    }
    index
        .text(
            "Alpha",
            vec![
                line(
                    1_000_000,
                    TextKind::Screen,
                    "alice@web1:~$ sudo cat /etc/shadow",
                ),
                line(1_000_000, TextKind::Command, "sudo cat /etc/shadow"),
                line(5_000_000, TextKind::Screen, "root:*:19000:0:99999:7:::"),
            ],
        )
        .unwrap();
    index
        .text(
            "bravo",
            vec![line(2_000_000, TextKind::Command, "ls -la /var/log")],
        )
        .unwrap();
    index.text_done("Alpha").unwrap();
    index.text_done("bravo").unwrap();
    index.sync().unwrap();
    Fixture { index, _dir: dir }
}

fn keys(f: &Fixture, q: &str) -> Vec<String> {
    let sort = Sort::parse("start_time").unwrap();
    let filter = Filter {
        q: Some(q),
        ..Default::default()
    };
    f.index
        .search(&filter, &Visibility::All, sort, 0, 100)
        .unwrap()
        .keys
}

#[test]
fn metadata_queries_follow_the_sps_language() {
    let f = fixture();
    assert_eq!(
        keys(&f, "protocol:ssh"),
        ["Alpha", "bravo", "charlie"],
        "case-insensitive"
    );
    assert_eq!(
        keys(&f, "psm.connection_policy:PROD_SSH"),
        ["Alpha", "bravo"]
    );
    assert_eq!(
        keys(&f, "recording.connection_policy:prod*"),
        ["Alpha", "bravo"]
    );
    assert_eq!(keys(&f, "user.name:bob"), ["bravo"]);
    assert_eq!(keys(&f, "NOT protocol:ssh"), ["delta"], "leading NOT");
    assert_eq!(
        keys(&f, "protocol:ssh AND NOT user:alice"),
        ["bravo", "charlie"]
    );
    assert_eq!(
        keys(&f, "(user:alice OR user:carol) AND protocol:ssh"),
        ["Alpha", "charlie"]
    );
    assert_eq!(keys(&f, "server.port:[2000 TO 3000]"), ["charlie"]);
    assert_eq!(keys(&f, "server.port:>=2222"), ["charlie", "delta"]);
    assert_eq!(
        keys(&f, "start_time:2024-01-02"),
        ["bravo"],
        "a date is the whole day"
    );
    assert_eq!(
        keys(&f, "start_time:[2024-01-02 TO 2024-01-03]"),
        ["bravo", "charlie"]
    );
    assert_eq!(
        keys(&f, "start_time:{2024-01-02 TO *]"),
        ["charlie", "delta"]
    );
    assert_eq!(
        keys(&f, "active:false AND duration:90"),
        ["Alpha", "bravo", "charlie", "delta"]
    );
    assert_eq!(keys(&f, "key:Alpha"), ["Alpha"]);
    assert!(keys(&f, "key:alpha").is_empty(), "keys are exact");
    assert_eq!(keys(&f, "client.ip:10.0.0.*").len(), 4);
    assert_eq!(keys(&f, "*").len(), 4);
}

#[test]
fn content_conditions_join_text_to_sessions() {
    let f = fixture();
    assert_eq!(keys(&f, "shadow"), ["Alpha"]);
    assert_eq!(keys(&f, "\"/etc/shadow\""), ["Alpha"]);
    assert_eq!(keys(&f, "content.command:\"ls -la\""), ["bravo"]);
    assert!(
        keys(&f, "content.screen:\"ls -la\"").is_empty(),
        "typed, not on screen"
    );
    assert_eq!(
        keys(&f, "protocol:ssh AND NOT content:shadow"),
        ["bravo", "charlie"]
    );
    assert_eq!(keys(&f, "sha*"), ["Alpha"]);
    assert_eq!(keys(&f, "content:*"), ["Alpha", "bravo"]);
}

#[test]
fn bad_queries_say_what_and_where() {
    let f = fixture();
    let run = |q: &str| {
        let filter = Filter {
            q: Some(q),
            ..Default::default()
        };
        f.index
            .search(&filter, &Visibility::All, Sort::parse("").unwrap(), 0, 10)
            .unwrap_err()
            .to_string()
    };
    assert!(run("protocol:ssh AND").contains("missing right operand"));
    let unknown = run("protocol:ssh AND colour:red");
    assert!(unknown.contains("unknown field 'colour'"), "{unknown}");
    assert!(run("server.port:abc").contains("whole number"));
    assert!(run("start_time:yesterday").contains("ISO 8601"));
    assert!(run("active:maybe").contains("true or false"));
    assert!(run("content:[a TO b]").contains("ranges do not apply"));
    let err = match f.index.search(
        &Filter {
            q: Some("user:x AND colour:red"),
            ..Default::default()
        },
        &Visibility::All,
        Sort::parse("").unwrap(),
        0,
        10,
    ) {
        Err(custos_search::SearchError::Query(e)) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!(err.position, Some(11), "points at the unknown field");
}

#[test]
fn sorting_paging_and_counting() {
    let f = fixture();
    let all = Filter::default();
    let page = f
        .index
        .search(
            &all,
            &Visibility::All,
            Sort::parse("-start_time").unwrap(),
            1,
            2,
        )
        .unwrap();
    assert_eq!(
        (page.keys, page.total),
        (vec!["charlie".to_string(), "bravo".into()], 4)
    );
    let by_user = f
        .index
        .search(
            &all,
            &Visibility::All,
            Sort::parse("user.name").unwrap(),
            0,
            10,
        )
        .unwrap();
    assert_eq!(
        by_user.keys.first().map(String::as_str),
        Some("bravo"),
        "raw values sort: 'Bob' < 'alice'"
    );
    let windowed = Filter {
        start: Some(T0 + DAY),
        end: Some(T0 + 2 * DAY + 90_000_000),
        q: None,
    };
    assert_eq!(f.index.count(&windowed, &Visibility::All).unwrap(), 2);
    assert!(Sort::parse("colour").is_err());
    assert!(Sort::parse("content").is_err());
}

#[test]
fn visibility_rules_restrict_every_question() {
    let f = fixture();
    let lab_only = Visibility::Rules(vec![parse("psm.connection_policy:lab").unwrap()]);
    let two_rules = Visibility::Rules(vec![
        parse("psm.connection_policy:lab").unwrap(),
        parse("user:bob").unwrap(),
    ]);
    let nothing = Visibility::Rules(vec![]);
    let all = Filter::default();
    let sort = Sort::parse("start_time").unwrap();
    assert_eq!(
        f.index.search(&all, &lab_only, sort, 0, 10).unwrap().keys,
        ["charlie", "delta"]
    );
    assert_eq!(
        f.index.search(&all, &two_rules, sort, 0, 10).unwrap().total,
        3
    );
    assert_eq!(
        f.index.search(&all, &nothing, sort, 0, 10).unwrap().total,
        0
    );
    assert!(f.index.visible("delta", &lab_only).unwrap());
    assert!(!f.index.visible("Alpha", &lab_only).unwrap());
    assert!(!f.index.visible("Alpha", &nothing).unwrap());
    assert!(f.index.visible("Alpha", &Visibility::All).unwrap());
    let stats = f
        .index
        .stats(&all, &lab_only, "protocol", None, 10)
        .unwrap();
    assert_eq!(stats["values"].as_array().unwrap().len(), 2, "{stats}");
    let filter = Filter {
        q: Some("shadow"),
        ..Default::default()
    };
    assert_eq!(
        f.index.count(&filter, &lab_only).unwrap(),
        0,
        "content search is scoped too"
    );
}

#[test]
fn stats_count_values_with_sub_fields() {
    let f = fixture();
    let s = f
        .index
        .stats(
            &Filter::default(),
            &Visibility::All,
            "protocol",
            Some("user.name"),
            10,
        )
        .unwrap();
    assert_eq!(s["field"], "protocol");
    assert_eq!(s["values"][0]["value"], "SSH");
    assert_eq!(s["values"][0]["count"], 3);
    assert_eq!(s["values"][1]["value"], "RDP");
    let users = s["values"][0]["sub_fields"]["user.name"]
        .as_array()
        .unwrap();
    assert_eq!(users.len(), 3, "{s}");
    let top1 = f
        .index
        .stats(&Filter::default(), &Visibility::All, "user.name", None, 1)
        .unwrap();
    assert_eq!(top1["values"][0]["value"], "alice");
    assert_eq!(top1["values"][0]["count"], 2);
    assert_eq!(top1["other_count"], 2);
    let ports = f
        .index
        .stats(
            &Filter::default(),
            &Visibility::All,
            "server.port",
            None,
            10,
        )
        .unwrap();
    assert_eq!(ports["values"][0]["value"], 22, "{ports}");
    assert!(
        f.index
            .stats(&Filter::default(), &Visibility::All, "start_time", None, 10)
            .is_err()
    );
}

#[test]
fn histograms_bin_times_and_numbers() {
    let f = fixture();
    let h = f
        .index
        .histogram(&Filter::default(), &Visibility::All, "start_time", "day")
        .unwrap();
    let bins = h["bins"].as_array().unwrap();
    assert_eq!(bins.len(), 4, "{h}");
    assert_eq!(bins[0]["start"], "2024-01-01T00:00:00.000Z");
    assert!(bins.iter().all(|b| b["count"] == 1));
    let two_days = f
        .index
        .histogram(&Filter::default(), &Visibility::All, "start_time", "2d")
        .unwrap();
    assert_eq!(
        two_days["bins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["count"].as_u64().unwrap())
            .sum::<u64>(),
        4
    );
    let ports = f
        .index
        .histogram(&Filter::default(), &Visibility::All, "server.port", "1000")
        .unwrap();
    assert!(ports["bins"].as_array().unwrap().len() >= 3);
    assert!(
        f.index
            .histogram(&Filter::default(), &Visibility::All, "protocol", "hour")
            .is_err()
    );
    assert!(
        f.index
            .histogram(
                &Filter::default(),
                &Visibility::All,
                "start_time",
                "fortnight"
            )
            .is_err()
    );
    assert!(
        f.index
            .histogram(&Filter::default(), &Visibility::All, "start_time", "1s")
            .is_err(),
        "too many bins"
    );
}

#[test]
fn content_hits_carry_their_own_line_and_time() {
    let f = fixture();
    let hits = f.index.content("Alpha", "shadow", 100).unwrap();
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert!(hits.iter().all(|h| h.at == 1_000_000));
    let root = f.index.content("Alpha", "root", 100).unwrap();
    assert_eq!(root.len(), 1);
    assert_eq!((root[0].at, root[0].kind), (5_000_000, "screen"));
    assert!(root[0].text.starts_with("root:"));
    assert!(
        f.index.content("bravo", "shadow", 100).unwrap().is_empty(),
        "per session"
    );
    assert!(
        f.index.content("Alpha", "protocol:ssh", 100).is_err(),
        "metadata is not content"
    );
}

#[test]
fn an_update_replaces_the_session_and_reopening_keeps_the_revision() {
    let dir = tempfile::tempdir().unwrap();
    {
        let index = SearchIndex::open(dir.path()).unwrap();
        let mut r = record("k1", "alice", "p", "SSH", T0, 22);
        r.active = true;
        r.end_time = None;
        index.record(&r, 5).unwrap();
        index
            .text("k1", vec![line(1, TextKind::Screen, "hello world")])
            .unwrap();
        index.sync().unwrap();
        r.active = false;
        r.end_time = Some(T0 + 1);
        index.record(&r, 9).unwrap();
        index.sync().unwrap();
        let f = Fixture {
            index,
            _dir: tempfile::tempdir().unwrap(),
        };
        assert_eq!(keys(&f, "active:false"), ["k1"]);
        assert!(
            keys(&f, "active:true").is_empty(),
            "the old document is gone"
        );
        assert_eq!(
            keys(&f, "hello"),
            ["k1"],
            "text written at the commit, before the session ended"
        );
    }
    let index = SearchIndex::open(dir.path()).unwrap();
    assert_eq!(index.committed_revision(), 9);
}

#[test]
fn an_unreadable_index_is_discarded_and_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    {
        let index = SearchIndex::open(dir.path()).unwrap();
        index
            .record(&record("k1", "a", "p", "SSH", T0, 22), 3)
            .unwrap();
        index.sync().unwrap();
    }
    std::fs::write(dir.path().join("meta.json"), b"{ not json").unwrap();
    let index = SearchIndex::open(dir.path()).unwrap();
    assert_eq!(
        index.committed_revision(),
        0,
        "everything must be re-indexed"
    );
}
