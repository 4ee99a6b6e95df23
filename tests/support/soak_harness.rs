//! The exchange side of the chaos soak (`tests/chaos.rs`), run in a child
//! process so the parent's live heap and RSS are the library's own.
//!
//! The soak re-executes its own test binary with [`CHILD_ENV`] set and the
//! name of an ignored test that calls [`serve`]. The child starts the four
//! venues (the Kalshi and Kraken exchanges, the WEEX V3 and OKX v5 `op_venue` servers),
//! each behind its own fault proxy, and prints one line per venue on stdout:
//! `chaos-harness <venue> ready <proxy url>`. Then it reads commands on stdin,
//! one per line, `<venue> <command>`, and answers each with one line
//! `chaos-harness <venue> <answer>`; each venue handles its commands in order,
//! the venues run concurrently:
//!
//! | command              | what the child does                                | answer                 |
//! |----------------------|----------------------------------------------------|------------------------|
//! | `stream`             | starts publishing (every 50 ms per symbol)         | `ok`                   |
//! | `faults SEED SECS`   | injects a random fault every 100-500 ms for SECS s | `faults {kind: count}` |
//! | `gap`                | (Kalshi) one sequence skip and one repeat          | `ok`                   |
//! | `finish`             | stops the venue and its proxy                      | `finish {record}`      |
//!
//! The record is what the parent checks promises against: the frames the
//! exchange received (`[{conn, text}]`, the last `RECEIVED_LIMIT`), the
//! handshakes, the WEEX pongs, and the child's own RSS and live heap.
//! When stdin closes the child stops whatever is left and exits. Lines not
//! starting with [`LINE_PREFIX`] (libtest's own output) are not protocol.
//!
//! The fault schedule is a function of the seed the parent sends, so a soak
//! replays with the same `CHAOS_SEED` as before the split.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::exchange::{Exchange, Venue};
use super::op_venue::{Dialect, OpVenue};
use super::proxy::{Direction, Proxy};
use super::{okx, vm_rss_kib, weex};

/// Set in the child's environment: run the exchange side.
pub const CHILD_ENV: &str = "RESILIENT_WS_CHAOS_EXCHANGE";
/// Every protocol line on the child's stdout starts with this.
pub const LINE_PREFIX: &str = "chaos-harness ";
/// The four venues, by their protocol name.
pub const VENUES: [&str; 4] = ["kalshi", "kraken", "weex", "okx"];

/// Subscriptions per Kalshi/Kraken client.
pub const SUBSCRIPTIONS: usize = 20;
/// Tickers per op/args client.
pub const OP_TICKERS: usize = 8;
/// OKX book subscriptions (verified, resynced on faults).
pub const OKX_BOOKS: [&str; 2] = ["BTC-USDT", "ETH-USDT"];
/// Every venue publishes one frame per symbol this often.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(50);

/// The symbols a Kalshi or Kraken client subscribes, in creation order.
pub fn exchange_symbols(venue: Venue) -> Vec<String> {
    (0..SUBSCRIPTIONS)
        .map(|i| match venue {
            Venue::Kalshi => format!("KXCHAOS-{i:02}"),
            _ => format!("C{i:02}/USD"),
        })
        .collect()
}

/// The ticker channel and symbols of an op/args client.
pub fn op_tickers(dialect: Dialect) -> (&'static str, Vec<String>) {
    let (channel, prefix) = match dialect {
        Dialect::Weex => ("ticker", "W"),
        Dialect::Okx => ("tickers", "O"),
    };
    let symbols = (0..OP_TICKERS)
        .map(|i| format!("{prefix}{i:02}-USDT"))
        .collect();
    (channel, symbols)
}

/// A fault of the Kalshi/Kraken soak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    // The proxy.
    Cut,
    Blackhole,
    StallClientToServer,
    StallServerToClient,
    Delay,
    Throttle,
    Truncate,
    Corrupt,
    // The exchange.
    Abort,
    Close1001,
    Close1011,
    Close1012,
    Close1013,
    Silent,
    Garbage,
    Refuse,
    SlowHandshake,
    SkipSeq,
    RepeatSeq,
}

const COMMON_FAULTS: [Fault; 17] = [
    Fault::Cut,
    Fault::Blackhole,
    Fault::StallClientToServer,
    Fault::StallServerToClient,
    Fault::Delay,
    Fault::Throttle,
    Fault::Truncate,
    Fault::Corrupt,
    Fault::Abort,
    Fault::Close1001,
    Fault::Close1011,
    Fault::Close1012,
    Fault::Close1013,
    Fault::Silent,
    Fault::Garbage,
    Fault::Refuse,
    Fault::SlowHandshake,
];

/// Applies one fault. Modes (blackhole, stalls, delay, throttle, refusal, slow
/// handshakes) last until the next fault clears them; silence lasts for the
/// connections live now (they die of the idle timeout).
fn inject(fault: Fault, rng: &mut StdRng, proxy: &Proxy, exchange: &Exchange, symbols: &[String]) {
    match fault {
        Fault::Cut => proxy.cut_all(),
        Fault::Blackhole => proxy.set_blackhole(true),
        Fault::StallClientToServer => proxy.set_stall(Direction::ClientToServer, true),
        Fault::StallServerToClient => proxy.set_stall(Direction::ServerToClient, true),
        Fault::Delay => proxy.set_delay(Duration::from_millis(rng.random_range(20..300))),
        Fault::Throttle => proxy.set_throttle(Some(rng.random_range(2_000..50_000))),
        Fault::Truncate => proxy.truncate_next(rng.random_range(1..60)),
        // Server to client only: see RELIABILITY.md on client-to-server corruption.
        Fault::Corrupt => proxy.corrupt_next(Direction::ServerToClient, rng.random_range(0..150)),
        Fault::Abort => exchange.abort_all(),
        Fault::Close1001 => exchange.close_all(1001, "going away"),
        Fault::Close1011 => exchange.close_all(1011, "internal error"),
        Fault::Close1012 => exchange.close_all(1012, "service restart"),
        Fault::Close1013 => exchange.close_all(1013, "try again later"),
        Fault::Silent => exchange.set_silent(true),
        Fault::Garbage => exchange.send_text_all("}{ not json"),
        Fault::Refuse => exchange.set_refuse(true),
        Fault::SlowHandshake => {
            exchange.set_handshake_delay(Some(Duration::from_millis(rng.random_range(200..2_000))))
        }
        Fault::SkipSeq => {
            let symbol = &symbols[rng.random_range(0..symbols.len())];
            exchange.skip_seq(symbol, rng.random_range(1..5));
        }
        Fault::RepeatSeq => {
            let symbol = &symbols[rng.random_range(0..symbols.len())];
            exchange.repeat_seq(symbol);
        }
    }
}

fn clear_modes(proxy: &Proxy, exchange: &Exchange) {
    proxy.clear();
    exchange.set_refuse(false);
    exchange.set_handshake_delay(None);
}

/// One venue of the child, behind its proxy.
enum Side {
    Exchange {
        exchange: Exchange,
        proxy: Proxy,
        symbols: Vec<String>,
    },
    Op {
        venue: OpVenue,
        proxy: Proxy,
        tasks: Vec<JoinHandle<()>>,
    },
}

impl Side {
    async fn start(name: &str) -> Side {
        match name {
            "kalshi" | "kraken" => {
                let venue = if name == "kalshi" {
                    Venue::Kalshi
                } else {
                    Venue::Kraken
                };
                let exchange = Exchange::start(venue).await.expect("exchange");
                let proxy = Proxy::start(exchange.addr()).await.expect("proxy");
                Side::Exchange {
                    exchange,
                    proxy,
                    symbols: exchange_symbols(venue),
                }
            }
            _ => {
                let dialect = if name == "weex" {
                    Dialect::Weex
                } else {
                    Dialect::Okx
                };
                let venue = OpVenue::start(dialect).await.expect("server");
                if dialect == Dialect::Weex {
                    weex::heartbeats(&venue, Duration::from_millis(200), true);
                }
                let proxy = Proxy::start(venue.addr()).await.expect("proxy");
                Side::Op {
                    venue,
                    proxy,
                    tasks: Vec::new(),
                }
            }
        }
    }

    fn url(&self) -> String {
        match self {
            Side::Exchange { proxy, .. } | Side::Op { proxy, .. } => proxy.url(),
        }
    }

    fn stream(&mut self) {
        match self {
            Side::Exchange {
                exchange, symbols, ..
            } => {
                exchange.start_stream(symbols.clone(), PUBLISH_EVERY);
            }
            Side::Op { venue, tasks, .. } => {
                let (channel, symbols) = op_tickers(venue.dialect());
                tasks.push(venue.start_stream(channel, symbols, PUBLISH_EVERY));
                if venue.dialect() == Dialect::Okx {
                    let venue = venue.clone();
                    tasks.push(tokio::spawn(async move {
                        let mut tick = tokio::time::interval(PUBLISH_EVERY);
                        for n in 0u64.. {
                            tick.tick().await;
                            let size = format!("{}", 1 + n % 7);
                            for inst in OKX_BOOKS {
                                okx::update(
                                    &venue,
                                    inst,
                                    &[("100.4", &size)],
                                    &[("100.75", &size)],
                                );
                            }
                        }
                    }));
                }
            }
        }
    }

    /// Runs the fault schedule; returns the faults injected, by kind.
    async fn faults(&self, seed: u64, secs: u64) -> BTreeMap<String, u64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut faults: BTreeMap<String, u64> = BTreeMap::new();
        let end = Instant::now() + Duration::from_secs(secs);
        match self {
            Side::Exchange {
                exchange,
                proxy,
                symbols,
            } => {
                let mut menu = COMMON_FAULTS.to_vec();
                if exchange.venue() == Venue::Kalshi {
                    menu.extend([Fault::SkipSeq, Fault::RepeatSeq]);
                }
                while Instant::now() < end {
                    // Pacing of the stimulus, not synchronisation: faults arrive at random.
                    tokio::time::sleep(Duration::from_millis(rng.random_range(100..=500))).await;
                    clear_modes(proxy, exchange);
                    let fault = menu[rng.random_range(0..menu.len())];
                    inject(fault, &mut rng, proxy, exchange, symbols);
                    *faults.entry(format!("{fault:?}")).or_default() += 1;
                }
                clear_modes(proxy, exchange);
            }
            Side::Op { venue, proxy, .. } => {
                while Instant::now() < end {
                    tokio::time::sleep(Duration::from_millis(rng.random_range(100..500))).await;
                    proxy.clear();
                    venue.state().drop_subscribes = false;
                    let kind = match rng.random_range(0..9u8) {
                        0 => {
                            proxy.cut_all();
                            "Cut"
                        }
                        1 => {
                            proxy.set_blackhole(true);
                            "Blackhole"
                        }
                        2 => {
                            proxy.set_stall(Direction::ServerToClient, true);
                            "StallServerToClient"
                        }
                        3 => {
                            proxy.corrupt_next(Direction::ServerToClient, rng.random_range(0..150));
                            "Corrupt"
                        }
                        4 => {
                            venue.drop_all();
                            "Drop"
                        }
                        5 => {
                            venue.close_all(1011, "internal error");
                            "Close1011"
                        }
                        6 => {
                            venue.send_text_all("}{ not json");
                            "Garbage"
                        }
                        7 => {
                            venue.state().drop_subscribes = true;
                            "DropSubscribes"
                        }
                        _ => {
                            let inst = OKX_BOOKS[rng.random_range(0..OKX_BOOKS.len())].to_owned();
                            let mut state = venue.state();
                            if rng.random_range(0..2u8) == 0 {
                                state.corrupt_checksum.insert(inst);
                                "BadChecksum"
                            } else {
                                state.gap.insert(inst);
                                "BookGap"
                            }
                        }
                    };
                    *faults.entry(kind.to_owned()).or_default() += 1;
                }
                proxy.clear();
                venue.state().drop_subscribes = false;
            }
        }
        faults
    }

    /// One sure sequence skip (first symbol) and repeat (second symbol).
    fn gap(&self) {
        if let Side::Exchange {
            exchange, symbols, ..
        } = self
        {
            exchange.skip_seq(&symbols[0], 2);
            exchange.repeat_seq(&symbols[1]);
        }
    }

    /// Stops everything and returns the record the parent checks.
    async fn finish(self, heap: fn() -> i64) -> Value {
        let mut record = match self {
            Side::Exchange {
                exchange, proxy, ..
            } => {
                let received: Vec<Value> = exchange
                    .received()
                    .into_iter()
                    .map(|r| json!({"conn": r.conn, "text": r.text}))
                    .collect();
                let handshakes = exchange.handshakes();
                exchange.shutdown().await;
                proxy.shutdown().await;
                json!({"received": received, "handshakes": handshakes, "pongs": 0})
            }
            Side::Op {
                venue,
                proxy,
                tasks,
            } => {
                for task in &tasks {
                    task.abort();
                }
                for task in tasks {
                    let _ = task.await;
                }
                let pongs = venue.state().pongs.len();
                let handshakes = venue.handshakes();
                proxy.shutdown().await;
                venue.shutdown().await;
                json!({"received": [], "handshakes": handshakes, "pongs": pongs})
            }
        };
        record["child_rss_kib"] = json!(vm_rss_kib());
        record["child_heap_kib"] = json!(heap() / 1024);
        record
    }
}

fn say(venue: &str, answer: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    // The parent is gone if this fails; the stdin EOF ends the child then.
    let _ = writeln!(out, "{LINE_PREFIX}{venue} {answer}");
    let _ = out.flush();
}

/// Handles one venue's commands in order until `finish` or stdin closes.
async fn venue_task(
    name: &'static str,
    mut side: Side,
    mut rx: mpsc::UnboundedReceiver<String>,
    heap: fn() -> i64,
) {
    while let Some(line) = rx.recv().await {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("stream") => {
                side.stream();
                say(name, "ok");
            }
            Some("faults") => {
                let seed = words.next().and_then(|w| w.parse().ok()).expect("seed");
                let secs = words.next().and_then(|w| w.parse().ok()).expect("secs");
                let faults = side.faults(seed, secs).await;
                say(name, &format!("faults {}", json!(faults)));
            }
            Some("gap") => {
                side.gap();
                say(name, "ok");
            }
            Some("finish") => {
                let record = side.finish(heap).await;
                say(name, &format!("finish {record}"));
                return;
            }
            other => panic!("chaos harness: unknown command {other:?} for {name}"),
        }
    }
    // Stdin closed early (the parent failed): stop anyway.
    let _ = side.finish(heap).await;
}

/// The child's main: starts the venues, prints their URLs, serves commands
/// until stdin closes. `heap` reads the child's live heap for the record.
pub async fn serve(heap: fn() -> i64) {
    let mut senders = BTreeMap::new();
    let mut tasks = Vec::new();
    for name in VENUES {
        let side = Side::start(name).await;
        say(name, &format!("ready {}", side.url()));
        let (tx, rx) = mpsc::unbounded_channel();
        senders.insert(name, tx);
        tasks.push(tokio::spawn(venue_task(name, side, rx, heap)));
    }
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let (venue, command) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        match senders.get(venue) {
            Some(tx) => {
                let _ = tx.send(command.to_owned());
            }
            None => panic!("chaos harness: unknown venue in {line:?}"),
        }
    }
    drop(senders);
    for task in tasks {
        task.await.expect("venue task");
    }
}
