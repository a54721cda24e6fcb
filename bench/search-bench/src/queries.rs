//! The query mix: each kind of question the API asks of the index, with parameters drawn per
//! run, timed call by call. Field queries go through `search` as `GET /api/audit/sessions` does
//! (a page of 500, newest first, and the total); content queries also search the text.
//!
//! Results are checked, not just timed: a rare marker must find exactly the sessions the
//! generator put it in, and every kind must match something, so the benchmark cannot quietly
//! measure empty answers.

use std::time::Instant;

use anyhow::{Context, bail};
use custos_search::{Filter, SearchIndex, Sort, Visibility, parse_query};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::synth::{DAY, Session, World, YEAR_DAYS, YEAR_START, date, zipf};

/// The targets for p99 latency, in ms.
pub const FIELD_TARGET_MS: f64 = 50.0;
pub const CONTENT_TARGET_MS: f64 = 200.0;
/// Page size of the listings (the API's largest page).
const PAGE: usize = 500;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Category {
    Field,
    Content,
}

impl Category {
    pub fn target_ms(self) -> f64 {
        match self {
            Category::Field => FIELD_TARGET_MS,
            Category::Content => CONTENT_TARGET_MS,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Category::Field => "field queries",
            Category::Content => "content queries",
        }
    }
}

/// What the queries may ask about: the population and what the text phase produced.
pub struct Corpus<'a> {
    pub world: &'a World,
    pub sessions: &'a [Session],
    /// Indices (into `sessions`) of the sessions that have text.
    pub with_text: &'a [usize],
    /// Per marker word: how many sessions have it (0: never inserted).
    pub marker_sessions: &'a [usize],
}

/// Latencies (ms) and match counts of one kind.
pub struct Measured {
    pub label: &'static str,
    pub category: Category,
    pub ms: Vec<f64>,
    pub matches: Vec<usize>,
}

/// One timed call: its latency and how many sessions (or hits) it found.
struct Run {
    ms: f64,
    matches: usize,
}

type Probe<'a> = Box<dyn FnMut(&mut StdRng) -> anyhow::Result<Run> + 'a>;

fn timed<T>(call: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(f64, T)> {
    let start = Instant::now();
    let value = call()?;
    Ok((start.elapsed().as_secs_f64() * 1000.0, value))
}

/// A listing as the API runs it: 500 newest first, with the total.
fn listing(index: &SearchIndex, q: &str, visibility: &Visibility) -> anyhow::Result<Run> {
    let sort = Sort::parse("-start_time")?;
    let filter = Filter {
        q: Some(q),
        ..Default::default()
    };
    let (ms, page) = timed(|| {
        index
            .search(&filter, visibility, sort, 0, PAGE)
            .with_context(|| format!("search q={q}"))
    })?;
    Ok(Run {
        ms,
        matches: page.total,
    })
}

/// Sessions counted by a stats or histogram answer (the sum of its buckets, plus `extra`).
fn counted(answer: &serde_json::Value, list: &str, extra: u64) -> usize {
    let sum: u64 = answer[list]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["count"].as_u64())
        .sum();
    (sum + extra) as usize
}

/// The filter of the aggregations: every session on even runs, one policy's on odd ones.
fn aggregation_filter<'q>(world: &World, rng: &mut StdRng, q: &'q mut String) -> Filter<'q> {
    q.clear();
    if rng.random_bool(0.5) {
        q.push_str("recording.connection_policy:");
        q.push_str(&world.policies[rng.random_range(0..world.policies.len())].name);
    }
    Filter {
        q: (!q.is_empty()).then_some(q.as_str()),
        ..Default::default()
    }
}

fn field_kinds<'a>(index: &'a SearchIndex, c: &'a Corpus<'a>) -> Vec<(&'static str, Probe<'a>)> {
    let world = c.world;
    let all = Visibility::All;
    let mut kinds: Vec<(&'static str, Probe<'a>)> = Vec::new();
    kinds.push((
        "user.name:<user>",
        Box::new(move |rng| {
            let user = &world.users[zipf(rng, world.users.len())];
            listing(index, &format!("user.name:{user}"), &all)
        }),
    ));
    kinds.push((
        "psm.connection_policy:<policy> AND protocol:ssh",
        Box::new(move |rng| {
            let policy = &world.policies[rng.random_range(0..world.policies.len())].name;
            listing(
                index,
                &format!("psm.connection_policy:{policy} AND protocol:ssh"),
                &Visibility::All,
            )
        }),
    ));
    kinds.push((
        "start_time:[<day> TO <day+7d>]",
        Box::new(move |rng| {
            let day = YEAR_START + rng.random_range(0..YEAR_DAYS - 7) * DAY;
            let q = format!("start_time:[{} TO {}]", date(day), date(day + 7 * DAY));
            listing(index, &q, &Visibility::All)
        }),
    ));
    kinds.push((
        "client.ip:10.<n>.*",
        Box::new(move |rng| {
            let q = format!("client.ip:10.{}.*", rng.random_range(0..16));
            listing(index, &q, &Visibility::All)
        }),
    ));
    kinds.push((
        "NOT verdict:accept AND duration:>600",
        Box::new(move |_| {
            listing(
                index,
                "NOT verdict:accept AND duration:>600",
                &Visibility::All,
            )
        }),
    ));
    kinds.push((
        "stats user.name size 10 (all / one policy)",
        Box::new(move |rng| {
            let mut q = String::new();
            let filter = aggregation_filter(world, rng, &mut q);
            let (ms, answer) =
                timed(|| Ok(index.stats(&filter, &Visibility::All, "user.name", None, 10)?))?;
            let other = answer["other_count"].as_u64().unwrap_or(0);
            Ok(Run {
                ms,
                matches: counted(&answer, "values", other),
            })
        }),
    ));
    kinds.push((
        "histogram start_time bin day (all / one policy)",
        Box::new(move |rng| {
            let mut q = String::new();
            let filter = aggregation_filter(world, rng, &mut q);
            let (ms, answer) =
                timed(|| Ok(index.histogram(&filter, &Visibility::All, "start_time", "day")?))?;
            Ok(Run {
                ms,
                matches: counted(&answer, "bins", 0),
            })
        }),
    ));
    kinds.push((
        "rule psm.connection_policy:<p>, q=protocol:ssh",
        Box::new(move |rng| {
            let policy = &world.policies[rng.random_range(0..world.policies.len())].name;
            let rule = parse_query(&format!("psm.connection_policy:{policy}"))?;
            listing(index, "protocol:ssh", &Visibility::Rules(vec![rule]))
        }),
    ));
    kinds
}

fn content_kinds<'a>(index: &'a SearchIndex, c: &'a Corpus<'a>) -> Vec<(&'static str, Probe<'a>)> {
    let world = c.world;
    let markers: Vec<usize> = (0..world.markers.len())
        .filter(|&m| c.marker_sessions[m] > 0)
        .collect();
    let text_session =
        move |rng: &mut StdRng| &c.sessions[c.with_text[rng.random_range(0..c.with_text.len())]];
    let mut kinds: Vec<(&'static str, Probe<'a>)> = Vec::new();
    kinds.push((
        "rare marker word",
        Box::new(move |rng| {
            let Some(&marker) = markers.get(rng.random_range(0..markers.len().max(1))) else {
                bail!(
                    "no marker word was put into the text (too little text for 1 line in {})",
                    crate::synth::MARKER_EVERY
                );
            };
            let run = listing(index, &world.markers[marker], &Visibility::All)?;
            let expected = c.marker_sessions[marker];
            if run.matches != expected {
                bail!(
                    "the marker '{}' is in {expected} sessions but the index found {}",
                    world.markers[marker],
                    run.matches
                );
            }
            Ok(run)
        }),
    ));
    kinds.push((
        "common word (top 10)",
        Box::new(move |rng| {
            listing(
                index,
                &world.vocab[rng.random_range(0..10)],
                &Visibility::All,
            )
        }),
    ));
    kinds.push((
        "phrase \"systemctl restart\"",
        Box::new(move |_| listing(index, "\"systemctl restart\"", &Visibility::All)),
    ));
    kinds.push((
        "wildcard kube*",
        Box::new(move |_| listing(index, "kube*", &Visibility::All)),
    ));
    kinds.push((
        "sudo AND user.name:<user>",
        Box::new(move |rng| {
            let user = &world.users[text_session(rng).user as usize];
            listing(
                index,
                &format!("sudo AND user.name:{user}"),
                &Visibility::All,
            )
        }),
    ));
    kinds.push((
        "content(<key>, q, 500) of one session",
        Box::new(move |rng| {
            let key = &text_session(rng).key;
            let q = match rng.random_range(0..3) {
                0 => "sudo",
                1 => "\"systemctl restart\"",
                _ => world.vocab[rng.random_range(0..10)].as_str(),
            };
            let (ms, hits) = timed(|| Ok(index.content(key, q, PAGE)?))?;
            Ok(Run {
                ms,
                matches: hits.len(),
            })
        }),
    ));
    kinds
}

/// Runs every kind once to warm up, then `runs` times each, interleaved (so that a disturbance
/// of the machine spreads over all kinds rather than hitting one).
pub fn run(
    index: &SearchIndex,
    corpus: &Corpus<'_>,
    runs: usize,
    seed: u64,
) -> anyhow::Result<Vec<Measured>> {
    if corpus.with_text.is_empty() {
        bail!("no session got text: give more --text-gib or --records");
    }
    let mut kinds: Vec<(&'static str, Category, Probe<'_>)> = field_kinds(index, corpus)
        .into_iter()
        .map(|(l, p)| (l, Category::Field, p))
        .chain(
            content_kinds(index, corpus)
                .into_iter()
                .map(|(l, p)| (l, Category::Content, p)),
        )
        .collect();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7175_6572_7973);
    for (label, _, probe) in &mut kinds {
        probe(&mut rng).with_context(|| format!("warm-up of {label}"))?;
    }
    let mut measured: Vec<Measured> = kinds
        .iter()
        .map(|(label, category, _)| Measured {
            label,
            category: *category,
            ms: Vec::with_capacity(runs),
            matches: Vec::with_capacity(runs),
        })
        .collect();
    for _ in 0..runs {
        for ((label, _, probe), out) in kinds.iter_mut().zip(&mut measured) {
            let run = probe(&mut rng).with_context(|| format!("query kind {label}"))?;
            out.ms.push(run.ms);
            out.matches.push(run.matches);
        }
    }
    for m in &measured {
        if m.matches.iter().all(|&n| n == 0) {
            bail!(
                "'{}' matched nothing in {} runs: the benchmark would time empty answers (the synthetic data or the query is wrong)",
                m.label,
                m.matches.len()
            );
        }
    }
    Ok(measured)
}

/// The nearest-rank percentile `p` (0–1) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// p50, p90, p99 and max of some latencies.
pub fn summary(ms: &[f64]) -> [f64; 4] {
    let mut sorted = ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    [
        percentile(&sorted, 0.50),
        percentile(&sorted, 0.90),
        percentile(&sorted, 0.99),
        sorted.last().copied().unwrap_or(0.0),
    ]
}
