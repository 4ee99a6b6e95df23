//! Run settings from the environment (`BENCH_QUICK`, `BENCH_PHASES`,
//! `BENCH_CLIENT_THREADS`, `BENCH_VENUES`) and the clock shared by server
//! timestamps and consumers.

use super::*;

pub(crate) const SERVER_ROLE_ENV: &str = "RESILIENT_WS_BENCH_SERVER";

#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) quick: bool,
    /// `BENCH_PHASES` (comma-separated: idle, stall, throughput, latency, recovery); all when unset.
    pub(crate) phases: Option<Vec<String>>,
    /// Worker threads of the client runtime the non-throughput phases run on
    /// (0 = current-thread): `BENCH_CLIENT_THREADS`, default 2.
    pub(crate) client_threads: usize,
    /// The client runtimes of the throughput matrix, each built in turn:
    /// current-thread and 2 workers, or only `BENCH_CLIENT_THREADS` when set.
    pub(crate) runtimes: Vec<usize>,
    /// `BENCH_VENUES` (comma-separated: kalshi, kraken): the throughput
    /// matrix's frames; both when unset (Kalshi only with `BENCH_CONSUMER`).
    pub(crate) venues: Vec<Venue>,
    /// Frames per throughput run.
    pub(crate) frames: u64,
    /// Repetitions of each throughput run (the median is reported).
    pub(crate) repeats: usize,
    pub(crate) latency_rate: u64,
    pub(crate) latency_secs: f64,
    pub(crate) drops: usize,
    pub(crate) idle_conns: usize,
    pub(crate) idle_subs: usize,
    pub(crate) stall_frames: u64,
    pub(crate) stall_capacity: usize,
}

impl Settings {
    pub(crate) fn runs(&self, phase: &str) -> bool {
        self.phases
            .as_ref()
            .is_none_or(|p| p.iter().any(|x| x == phase))
    }

    pub(crate) fn from_env() -> Self {
        let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let phases = std::env::var("BENCH_PHASES")
            .ok()
            .map(|v| v.split(',').map(|p| p.trim().to_owned()).collect());
        let only_threads: Option<usize> = std::env::var("BENCH_CLIENT_THREADS")
            .ok()
            .and_then(|v| v.trim().parse().ok());
        let client_threads = only_threads.unwrap_or(2);
        let runtimes = match only_threads {
            Some(n) => vec![n],
            None => vec![0, 2],
        };
        let venues = match std::env::var("BENCH_VENUES") {
            Ok(list) => list
                .split(',')
                .filter_map(|v| match v.trim() {
                    "kalshi" => Some(Venue::Kalshi),
                    "kraken" => Some(Venue::Kraken),
                    "" => None,
                    other => panic!("BENCH_VENUES: unknown venue {other:?} (kalshi, kraken)"),
                })
                .collect(),
            // A profile of one side (`BENCH_CONSUMER`) stays on Kalshi frames
            // unless asked, so the callgrind commands in BENCHMARKS.md keep
            // measuring what they measured before Kraken joined the matrix.
            Err(_) if std::env::var_os("BENCH_CONSUMER").is_some() => vec![Venue::Kalshi],
            Err(_) => vec![Venue::Kalshi, Venue::Kraken],
        };
        if quick {
            Settings {
                quick,
                phases,
                client_threads,
                runtimes,
                venues,
                frames: 100_000,
                repeats: 1,
                latency_rate: 20_000,
                latency_secs: 0.5,
                drops: 10,
                idle_conns: 100,
                idle_subs: 10,
                stall_frames: 100_000,
                stall_capacity: 1024,
            }
        } else {
            Settings {
                quick,
                phases,
                client_threads,
                runtimes,
                venues,
                frames: 1_000_000,
                repeats: 3,
                latency_rate: 20_000,
                latency_secs: 4.0,
                drops: 50,
                idle_conns: 1000,
                idle_subs: 10,
                stall_frames: 500_000,
                stall_capacity: 1024,
            }
        }
    }
}

/// The clock shared by the server's send timestamps and the consumers.
pub(crate) fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

pub(crate) fn now_ns() -> u64 {
    base().elapsed().as_nanos() as u64
}
