//! Times the in-memory parts of a commit on a document with 10,000 groups:
//! `cargo run --release -p custos-config --example commit_cost`.
use std::time::Instant;

use custos_config::{bootstrap, edit, tree::tree};
use serde_json::json;

fn main() {
    let groups = tree()
        .node("/api/configuration/aaa/local_database/groups")
        .unwrap();
    let mut base = bootstrap::initial_document("pw", 1).unwrap();
    for i in 0..10_000 {
        edit::create(&mut base, groups, json!({"name": format!("g{i}")}), 1).unwrap();
    }
    let key = base
        .collection(groups.path)
        .unwrap()
        .key_at(500)
        .unwrap()
        .to_string();
    for round in 0..3 {
        let mut work = base.clone();
        let t = Instant::now();
        edit::replace(
            &mut work,
            groups,
            Some(&key),
            json!({"name": format!("x{round}")}),
            2,
        )
        .unwrap();
        let replace = t.elapsed();
        let t = Instant::now();
        let changes = work.changes_since(&base);
        let diff = t.elapsed();
        let t = Instant::now();
        edit::collect_garbage(&mut work, &changes);
        let gc = t.elapsed();
        let t = Instant::now();
        let problems = edit::validate(&work, &changes, 2);
        let validate = t.elapsed();
        println!(
            "replace {replace:?} gc {gc:?} validate {validate:?} diff {diff:?} ({} problems, {} changes)",
            problems.len(),
            changes.len()
        );
    }
}
