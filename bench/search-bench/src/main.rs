//! Benchmark of the session search index (`custos-search`). Run `bench/search.sh` (it builds
//! the release binary first); the defaults are the issue's: 1,000,000 session records and
//! 10 GiB of terminal text.
//!
//! Measures, in one run on one machine:
//! 1. indexing throughput: synthetic records, then synthetic terminal text, fed through the
//!    index's own API (`record`, `text`, `text_done`) as the store and the gateway feed it, up to
//!    the final `sync()`: records/s and MB/s of text (10^6 bytes of line contents). The indexing
//!    thread commits every second as in production, and tantivy merges segments meanwhile, so
//!    this is the rate a server sustains, not a one-shot bulk load;
//! 2. the index's size on disk as a ratio of the text, after background merges have finished;
//! 3. query latency, p50/p90/p99/max per kind of question and per category, against the
//!    targets: p99 < 50 ms for field (metadata) queries, < 200 ms for content queries.
//!
//! The data is synthetic and deterministic for `--seed` (see [`synth`]). The text is generated
//! on this thread while the index's thread indexes it; the generator's own time is printed, so
//! a reader can tell whether it held the indexer back (on two cores they share the machine).

mod queries;
mod synth;
mod system;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use custos_search::SearchIndex;
use custos_trail::text::TextChunk;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::queries::{Category, Corpus, Measured};
use crate::synth::{Records, Session, Shell, World};

#[derive(Parser)]
#[command(
    about = "Benchmark of the session search index: indexing throughput, index size, query latency"
)]
struct Options {
    /// Session records to index.
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// Terminal text to index, in GiB (fractions allowed: 0.5).
    #[arg(long, default_value_t = 10.0)]
    text_gib: f64,
    /// Directory for the index (new or empty; deleted at the end unless --keep). Default: a new
    /// directory under /work.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the index directory.
    #[arg(long)]
    keep: bool,
    /// Timed runs per query kind.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Seed of the synthetic data and of the query parameters.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Sessions whose text is produced at the same time, interleaved as on a busy gateway.
const CONCURRENT_SESSIONS: usize = 32;
/// Lines per `text` call: a gateway hands over what one trail record completed.
const LINES_PER_CALL: usize = 64;
/// Progress on stderr at most this often.
const PROGRESS: Duration = Duration::from_secs(10);
/// The longest wait for background merges before measuring anyway.
const MERGE_WAIT: Duration = Duration::from_secs(30 * 60);
/// For the disk-space check: index bytes per text byte and per record (measured: ~1.05 and
/// ~290 B), doubled because a merge holds its old and new segments at once.
const INDEX_PER_TEXT_BYTE: f64 = 2.2;
const INDEX_PER_RECORD: f64 = 600.0;

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    if options.records == 0
        || options.text_gib.is_nan()
        || options.text_gib <= 0.0
        || options.queries == 0
    {
        bail!("--records, --text-gib and --queries must be positive");
    }
    let budget = (options.text_gib * (1u64 << 30) as f64) as u64;
    let dir = custos_bench_support::WorkDir::prepare(
        options.dir.as_deref(),
        options.keep,
        "custos-search-bench-",
    )?;
    check_space(&dir.path, budget, options.records)?;
    let machine = system::machine();
    println!("machine: {machine}");
    println!(
        "command: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!("index:   {}", dir.path.display());

    let world = World::new(options.seed);
    // Declared after `dir`: dropped (committed, writer released) before the directory goes.
    let index = SearchIndex::open(&dir.path).context("opening the index")?;

    let records = index_records(&index, &world, options.records, options.seed)?;
    let records_merge = settle(&index)?;
    let records_size = system::dir_size(&dir.path)?;
    println!(
        "records: {} in {:.1} s: {} records/s (then {:.0} s of merges); index {:.1} MB",
        thousands(options.records as u64),
        records.elapsed.as_secs_f64(),
        thousands((options.records as f64 / records.elapsed.as_secs_f64()) as u64),
        records_merge.as_secs_f64(),
        records_size as f64 / 1e6
    );

    let text = index_text(
        &index,
        &dir.path,
        &world,
        &records.sessions,
        budget,
        options.seed,
    )?;
    let text_merge = settle(&index)?;
    let size = system::dir_size(&dir.path)?;
    let searcher = index.searcher();
    let layout = format!(
        "{} segments, {} documents",
        searcher.segment_readers().len(),
        thousands(searcher.num_docs())
    );
    println!(
        "text:    {:.2} GiB = {:.1} MB, {} lines, {} sessions, in {:.1} s: {:.1} MB/s (generator busy {:.1} s; then {:.0} s of merges)",
        text.bytes as f64 / (1u64 << 30) as f64,
        text.bytes as f64 / 1e6,
        thousands(text.lines),
        thousands(text.with_text.len() as u64),
        text.elapsed.as_secs_f64(),
        text.bytes as f64 / 1e6 / text.elapsed.as_secs_f64(),
        text.generating.as_secs_f64(),
        text_merge.as_secs_f64()
    );
    println!(
        "size:    {:.2} GB on disk = {:.3} × the text ({layout}); at most {:.2} GB while indexing; peak RSS {:.0} MiB (with mapped index pages)",
        size as f64 / 1e9,
        size as f64 / text.bytes as f64,
        text.peak_disk.max(size) as f64 / 1e9,
        system::peak_rss_mib()
    );

    let corpus = Corpus {
        world: &world,
        sessions: &records.sessions,
        with_text: &text.with_text,
        marker_sessions: &text.marker_sessions,
    };
    eprintln!("querying: {} runs of each kind …", options.queries);
    let measured = queries::run(&index, &corpus, options.queries, options.seed)?;
    print_latencies(&measured, options.queries);

    let report = Report {
        options: &options,
        machine: &machine,
        records: &records,
        text: &text,
        size,
        layout,
        measured: &measured,
    };
    report.print();
    drop(index);
    Ok(())
}

/// Refuses to start a run that would fill the disk half-way through.
fn check_space(dir: &std::path::Path, budget: u64, records: usize) -> anyhow::Result<()> {
    let need = budget as f64 * INDEX_PER_TEXT_BYTE + records as f64 * INDEX_PER_RECORD;
    let free = system::free_space(dir)? as f64;
    if free < need {
        bail!(
            "{:.1} GB free at {}, and the run may need {:.1} GB: give --dir on a larger disk or less --text-gib",
            free / 1e9,
            dir.display(),
            need / 1e9
        );
    }
    Ok(())
}

/// Waits for background merges, then lets searches see the merged segments.
fn settle(index: &SearchIndex) -> anyhow::Result<Duration> {
    let waited = system::wait_until_idle(MERGE_WAIT);
    index.sync()?;
    Ok(waited)
}

struct RecordLoad {
    sessions: Vec<Session>,
    elapsed: Duration,
}

/// Phase 1: every record, in start order with revision i + 1 as the store saves them, then
/// `sync`.
fn index_records(
    index: &SearchIndex,
    world: &World,
    n: usize,
    seed: u64,
) -> anyhow::Result<RecordLoad> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7265_636f_7264);
    let times = synth::start_times(&mut rng, n);
    let mut records = Records::new(world, seed ^ 0x5e55_1075);
    let mut sessions = Vec::with_capacity(n);
    let mut progress = Progress::new("records");
    let start = Instant::now();
    for (i, &time) in times.iter().enumerate() {
        let (record, session) = records.next(time);
        index.record(&record, i as i64 + 1)?;
        sessions.push(session);
        progress.tick(|| format!("{} of {}", thousands(i as u64 + 1), thousands(n as u64)));
    }
    index.sync()?;
    Ok(RecordLoad {
        sessions,
        elapsed: start.elapsed(),
    })
}

struct TextLoad {
    /// Bytes of line contents fed, exactly.
    bytes: u64,
    lines: u64,
    elapsed: Duration,
    /// The largest index size seen while indexing (sampled with the progress lines).
    peak_disk: u64,
    /// Time this thread spent generating text (not waiting for the index's queue).
    generating: Duration,
    with_text: Vec<usize>,
    marker_sessions: Vec<usize>,
}

/// Phase 2: the text of the planned sessions, `CONCURRENT_SESSIONS` at a time, a command
/// block each in turn, then `text_done` per session and one final `sync`.
fn index_text(
    index: &SearchIndex,
    dir: &std::path::Path,
    world: &World,
    sessions: &[Session],
    budget: u64,
    seed: u64,
) -> anyhow::Result<TextLoad> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7465_7874);
    let plan = synth::plan_text(sessions, budget, &mut rng);
    let with_text: Vec<usize> = plan.iter().map(|&(i, _)| i).collect();
    let mut pending = plan
        .into_iter()
        .map(|(i, size)| Shell::new(world, i, &sessions[i], size, seed));
    let mut shells: Vec<Shell> = pending.by_ref().take(CONCURRENT_SESSIONS).collect();
    let (mut bytes, mut lines) = (0u64, 0u64);
    let mut generating = Duration::ZERO;
    let mut block: Vec<TextChunk> = Vec::new();
    let mut marks = Vec::new();
    let mut marked: HashSet<(usize, usize)> = HashSet::new();
    let mut progress = Progress::new("text");
    let mut peak_disk = 0;
    let start = Instant::now();
    let mut turn = 0;
    while !shells.is_empty() {
        turn = (turn + 1) % shells.len();
        let shell = &mut shells[turn];
        let began = Instant::now();
        shell.block(world, &mut block, &mut marks);
        generating += began.elapsed();
        lines += block.len() as u64;
        bytes += block.iter().map(|c| c.text.len() as u64).sum::<u64>();
        marked.extend(marks.drain(..).map(|m| (m, shell.session)));
        let mut drain = block.drain(..);
        loop {
            let call: Vec<TextChunk> = drain.by_ref().take(LINES_PER_CALL).collect();
            if call.is_empty() {
                break;
            }
            index.text(&shell.key, call)?;
        }
        if shell.done {
            index.text_done(&shell.key)?;
            match pending.next() {
                Some(next) => shells[turn] = next,
                None => {
                    shells.swap_remove(turn);
                }
            }
        }
        progress.tick(|| {
            let secs = start.elapsed().as_secs_f64();
            // Sampled: merges hold old and new segments at once, so the peak exceeds the end.
            let now = system::dir_size(dir).unwrap_or(0);
            peak_disk = peak_disk.max(now);
            format!(
                "{:.0} of {:.0} MB, {:.1} MB/s, ~{:.0} s left; index {:.2} GB",
                bytes as f64 / 1e6,
                budget as f64 / 1e6,
                bytes as f64 / 1e6 / secs,
                (budget.saturating_sub(bytes)) as f64 / (bytes as f64 / secs),
                now as f64 / 1e9
            )
        });
    }
    index.sync()?;
    let mut marker_sessions = vec![0; world.markers.len()];
    for (marker, _) in marked {
        marker_sessions[marker] += 1;
    }
    Ok(TextLoad {
        bytes,
        lines,
        peak_disk,
        elapsed: start.elapsed(),
        generating,
        with_text,
        marker_sessions,
    })
}

/// A progress line on stderr now and then.
struct Progress {
    what: &'static str,
    last: Instant,
    count: u32,
}

impl Progress {
    fn new(what: &'static str) -> Progress {
        Progress {
            what,
            last: Instant::now(),
            count: 0,
        }
    }

    fn tick(&mut self, line: impl FnOnce() -> String) {
        // Checking the clock every call would cost more than some calls.
        self.count += 1;
        if self.count.is_multiple_of(256) && self.last.elapsed() >= PROGRESS {
            eprintln!("  {}: {}", self.what, line());
            self.last = Instant::now();
        }
    }
}

fn print_latencies(measured: &[Measured], runs: usize) {
    println!();
    println!(
        "query latency, ms ({runs} runs per kind after one warm-up run each; matches: sessions, or hits for content()):"
    );
    println!(
        "  {:<50} {:>7} {:>7} {:>7} {:>7}  {:>17}  p99",
        "", "p50", "p90", "p99", "max", "matches med / max"
    );
    for category in [Category::Field, Category::Content] {
        println!(
            "  {} (target p99 < {:.0} ms)",
            category.name(),
            category.target_ms()
        );
        let of: Vec<&Measured> = measured.iter().filter(|m| m.category == category).collect();
        for m in &of {
            let mut matches = m.matches.clone();
            matches.sort_unstable();
            let median = matches[matches.len() / 2];
            let max = matches.last().copied().unwrap_or(0);
            print_row(
                &format!("  {}", m.label),
                &m.ms,
                &format!("{} / {}", thousands(median as u64), thousands(max as u64)),
                category,
            );
        }
        let all: Vec<f64> = of.iter().flat_map(|m| m.ms.iter().copied()).collect();
        print_row(&format!("  all {}", category.name()), &all, "", category);
    }
}

fn print_row(label: &str, ms: &[f64], matches: &str, category: Category) {
    let [p50, p90, p99, max] = queries::summary(ms);
    println!(
        "  {label:<50} {p50:>7.2} {p90:>7.2} {p99:>7.2} {max:>7.2}  {matches:>17}  {}",
        verdict(p99, category)
    );
}

fn verdict(p99: f64, category: Category) -> &'static str {
    if p99 < category.target_ms() {
        "PASS"
    } else {
        "FAIL"
    }
}

/// The block to paste into the README.
struct Report<'a> {
    options: &'a Options,
    machine: &'a str,
    records: &'a RecordLoad,
    text: &'a TextLoad,
    size: u64,
    layout: String,
    measured: &'a [Measured],
}

impl Report<'_> {
    fn print(&self) {
        let o = self.options;
        let today = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        let text = self.text;
        let text_secs = text.elapsed.as_secs_f64();
        let record_secs = self.records.elapsed.as_secs_f64();
        println!();
        println!("---- for the README ----");
        println!(
            "Measured {} on {}, release build, `bench/search.sh --records {} --text-gib {} --queries {} --seed {}`:",
            synth::date(today),
            self.machine,
            o.records,
            o.text_gib,
            o.queries,
            o.seed
        );
        println!();
        println!("| measurement | result | target |");
        println!("|---|---|---|");
        println!(
            "| indexing {} session records (then `sync`) | {:.1} s: **{} records/s** | — |",
            thousands(o.records as u64),
            record_secs,
            thousands((o.records as f64 / record_secs) as u64)
        );
        println!(
            "| indexing {:.2} GiB of terminal text ({} MB, {} lines, {} sessions; then `sync`) | {:.0} s: **{:.1} MB/s** | — |",
            text.bytes as f64 / (1u64 << 30) as f64,
            thousands(text.bytes / 1_000_000),
            thousands(text.lines),
            thousands(text.with_text.len() as u64),
            text_secs,
            text.bytes as f64 / 1e6 / text_secs
        );
        println!(
            "| index size ({}) | {:.2} GB: **{:.2} × the text** (at most {:.2} GB while indexing) | — |",
            self.layout,
            self.size as f64 / 1e9,
            self.size as f64 / text.bytes as f64,
            text.peak_disk.max(self.size) as f64 / 1e9
        );
        for category in [Category::Field, Category::Content] {
            let of: Vec<&Measured> = self
                .measured
                .iter()
                .filter(|m| m.category == category)
                .collect();
            let all: Vec<f64> = of.iter().flat_map(|m| m.ms.iter().copied()).collect();
            let [p50, _, p99, _] = queries::summary(&all);
            println!(
                "| {} p50 / p99 ({} kinds × {} runs) | {p50:.1} / **{p99:.1} ms** ({}) | p99 < {:.0} ms |",
                category.name(),
                of.len(),
                o.queries,
                verdict(p99, category),
                category.target_ms()
            );
            for m in of {
                let [p50, _, p99, _] = queries::summary(&m.ms);
                println!(
                    "| &nbsp;&nbsp;`{}` p50 / p99 | {p50:.1} / {p99:.1} ms | |",
                    m.label
                );
            }
        }
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
