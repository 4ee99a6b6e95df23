//! The throughput matrix: {venues} x {client runtimes} x {cases}, and the
//! `bench:` line keys it produces.
//!
//! Issue 12 item 4 judges the library on 1 subscription and on 100 read
//! through one `SubscriptionSet`, for Kalshi and Kraken ticker frames, on a
//! current-thread runtime and on 2 workers: those eight cells give the keys
//! `vs_routing_<venue>_<ct|mtN>_<1|100>=` and `vs_framing_...=`, and their
//! minima `vs_routing_min=` / `vs_framing_min=` (over whatever cells ran, so
//! `matrix_cells=` says how many). The older keys (`throughput_ratio_1`,
//! `vs_routing_100_set`, ...) keep their meaning: Kalshi on the runtime named
//! by `BENCH_CLIENT_THREADS` (default 2 workers).

use super::*;

/// One throughput case: how many subscriptions and how they are read.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Case {
    /// 1 subscription, one consumer task.
    One,
    /// 100 subscriptions read through `select_all` in one task.
    Merged,
    /// 100 subscriptions read through one `SubscriptionSet` (the merged stream).
    Set,
    /// 100 subscriptions, one consumer task each.
    Tasks,
}

impl Case {
    /// The name in `BENCH_CASES`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Case::One => "1",
            Case::Merged => "100",
            Case::Set => "set",
            Case::Tasks => "tasks",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Case::One => "1 subscription",
            Case::Merged => "100 subscriptions, one consumer task (select_all)",
            Case::Set => "100 subscriptions, one SubscriptionSet",
            Case::Tasks => "100 subscriptions, one consumer task per subscription",
        }
    }

    fn subs(self) -> usize {
        match self {
            Case::One => 1,
            _ => 100,
        }
    }

    fn consumers(self) -> Consumers {
        match self {
            Case::One | Case::Tasks => Consumers::TaskEach,
            Case::Merged => Consumers::Merged,
            Case::Set => Consumers::Set,
        }
    }

    /// The key suffix of a case the issue judges (`1`, or `100` for the set).
    fn judged(self) -> Option<&'static str> {
        match self {
            Case::One => Some("1"),
            Case::Set => Some("100"),
            Case::Merged | Case::Tasks => None,
        }
    }
}

const ALL_CASES: [Case; 4] = [Case::One, Case::Merged, Case::Set, Case::Tasks];

/// `ct` for a current-thread runtime, `mtN` for N workers.
pub(crate) fn runtime_key(threads: usize) -> String {
    match threads {
        0 => "ct".to_owned(),
        n => format!("mt{n}"),
    }
}

pub(crate) fn runtime_label(threads: usize) -> String {
    match threads {
        0 => "current-thread runtime".to_owned(),
        n => format!("multi-thread runtime, {n} workers"),
    }
}

/// The cases of one (venue, runtime) cell: `BENCH_CASES` (comma-separated
/// names) on every cell when set; otherwise the two judged cases everywhere,
/// plus `select_all` and a task each for Kalshi on the primary runtime (the
/// older keys and comparisons; skipped elsewhere to keep the run short).
fn cases_for(settings: &Settings, venue: Venue, threads: usize) -> Vec<Case> {
    match std::env::var("BENCH_CASES") {
        Ok(list) => ALL_CASES
            .into_iter()
            .filter(|c| list.split(',').any(|x| x.trim() == c.name()))
            .collect(),
        Err(_) if venue == Venue::Kalshi && threads == settings.client_threads => {
            ALL_CASES.to_vec()
        }
        Err(_) => vec![Case::One, Case::Set],
    }
}

pub(crate) struct CaseResult {
    pub(crate) venue: Venue,
    pub(crate) threads: usize,
    pub(crate) case: Case,
    pub(crate) result: ThroughputResult,
}

/// Every venue's cases on the runtime this runs on (`threads` only names it).
pub(crate) async fn throughput_cell(
    server: Server,
    settings: Arc<Settings>,
    threads: usize,
) -> Vec<CaseResult> {
    let mut out = Vec::new();
    for &venue in &settings.venues {
        for case in cases_for(&settings, venue, threads) {
            println!(
                "\n== throughput: {}, {}, {} ==",
                venue.name(),
                runtime_label(threads),
                case.title()
            );
            let result = throughput(&server, &settings, venue, case.subs(), case.consumers()).await;
            out.push(CaseResult {
                venue,
                threads,
                case,
                result,
            });
        }
    }
    out
}

/// The per-case medians, one line each.
pub(crate) fn print_medians(results: &[CaseResult]) {
    println!("\n== throughput medians (msg/s; a = raw routing loop, b = framing loop) ==");
    for r in results {
        let t = &r.result;
        if t.lib.is_empty() {
            continue; // BENCH_CONSUMER runs report no comparison
        }
        println!(
            "  {:<6} {:<3} {:<5}  a {:>9.0}  b {:>9.0}  resilient-ws {:>9.0}  lib/a {:.3}  lib/b {}  feed/a {}  (runs {}; {} dropped)",
            r.venue.name(),
            runtime_key(r.threads),
            r.case.name(),
            median_f64(&t.raw),
            median_f64(&t.framing),
            median_f64(&t.lib),
            t.ratio(),
            t.vs_framing().map_or_else(|| "na".to_owned(), |v| format!("{v:.3}")),
            t.feed_ratio().map_or_else(|| "na".to_owned(), |v| format!("{v:.3}")),
            t.lib.len(),
            t.dropped
        );
    }
}

fn show(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "na".to_owned(), |v| format!("{v:.digits$}"))
}

/// The throughput part of the `bench:` line: the older keys, one
/// `vs_routing_*`/`vs_framing_*` pair per judged cell, `matrix_cells=` and the minima.
pub(crate) fn bench_keys(results: &[CaseResult], primary_threads: usize) -> String {
    let measured = |r: &&CaseResult| !r.result.lib.is_empty();
    let find = |venue: Venue, threads: usize, case: Case| {
        results
            .iter()
            .filter(measured)
            .find(|r| r.venue == venue && r.threads == threads && r.case == case)
            .map(|r| &r.result)
    };
    let legacy = |case: Case| find(Venue::Kalshi, primary_threads, case);
    let ratio = |t: Option<&ThroughputResult>| show(t.map(ThroughputResult::ratio), 3);
    let framing = |t: Option<&ThroughputResult>| show(t.and_then(ThroughputResult::vs_framing), 3);
    let mut keys = vec![
        format!("throughput_ratio_1={}", ratio(legacy(Case::One))),
        format!("throughput_ratio_100={}", ratio(legacy(Case::Merged))),
        format!("vs_routing_1={}", ratio(legacy(Case::One))),
        format!("vs_routing_100_set={}", ratio(legacy(Case::Set))),
        format!("vs_framing_1={}", framing(legacy(Case::One))),
        format!("vs_framing_100_set={}", framing(legacy(Case::Set))),
    ];
    let judged: Vec<(&CaseResult, &str)> = results
        .iter()
        .filter(measured)
        .filter_map(|r| r.case.judged().map(|suffix| (r, suffix)))
        .collect();
    for (r, suffix) in &judged {
        let cell = format!("{}_{}_{suffix}", r.venue.name(), runtime_key(r.threads));
        keys.push(format!("vs_routing_{cell}={}", ratio(Some(&r.result))));
        keys.push(format!("vs_framing_{cell}={}", framing(Some(&r.result))));
        keys.push(format!(
            "feed_vs_routing_{cell}={}",
            show(r.result.feed_ratio(), 3)
        ));
    }
    let min = |f: &dyn Fn(&ThroughputResult) -> Option<f64>| {
        judged
            .iter()
            .filter_map(|(r, _)| f(&r.result))
            .reduce(f64::min)
    };
    keys.push(format!("matrix_cells={}", judged.len()));
    keys.push(format!(
        "vs_routing_min={}",
        show(min(&|t| Some(t.ratio())), 3)
    ));
    keys.push(format!(
        "vs_framing_min={}",
        show(min(&ThroughputResult::vs_framing), 3)
    ));
    keys.push(format!(
        "feed_vs_routing_min={}",
        show(min(&ThroughputResult::feed_ratio), 3)
    ));
    keys.join(" ")
}
