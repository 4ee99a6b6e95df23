//! Replays a recording directory (made with `Config::builder(..).record(..)`
//! or `market_feed --record DIR`) through the venue's adapter and the same
//! session core, and prints a summary.
//!
//! ```text
//! cargo run --example replay -- DIR [--protocol kalshi|kraken|weex|okx] [--paced]
//! ```
//!
//! Without `--paced` it replays as fast as possible (the session still sees
//! the recorded times, so the items are the same). It prints what the files
//! hold (streams, frames, torn or corrupt records, holes), then the replayed
//! items per subscription, then the replay's checks, one line each:
//!
//! ```text
//! recording: files=N records=N frames=N connects=N disconnects=N dropped=N torn=N corrupt=N
//! replay: items=N data=N signals=N errors=N subscriptions=K writes_matched=N writes_mismatched=N
//! ```
//!
//! The settings that shape the session's decisions (ping, pong, idle and
//! request timeouts, queue and stash sizes, resync on gap) come from the
//! recording itself; the outbound rate limit is the library's default here
//! (as in `market_feed`).

use std::collections::BTreeMap;
use std::process::ExitCode;

use futures::StreamExt;
use resilient_ws::{Config, Kalshi, Kraken, Okx, Pace, Protocol, Recording, Replay, Update, Weex};

const USAGE: &str = "usage: replay DIR [--protocol kalshi|kraken|weex|okx] [--paced]";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut dir = None;
    let mut venue = "kalshi".to_owned();
    let mut pace = Pace::AsFastAsPossible;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--protocol" => match args.next() {
                Some(v) => venue = v,
                None => {
                    eprintln!("{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--paced" => pace = Pace::Recorded,
            "-h" | "--help" => {
                eprintln!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => dir = Some(arg),
        }
    }
    let Some(dir) = dir else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match venue.as_str() {
        "kalshi" => replay(&dir, Kalshi::new(), pace).await,
        "kraken" => replay(&dir, Kraken::new(), pace).await,
        "weex" => replay(&dir, Weex::new(), pace).await,
        "okx" => replay(&dir, Okx::new(), pace).await,
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

async fn replay<P: Protocol>(dir: &str, protocol: P, pace: Pace) -> ExitCode {
    let summary = match Recording::open(dir) {
        Ok(recording) => recording.summary(),
        Err(error) => {
            eprintln!("cannot open {dir}: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "recording: files={} records={} frames={} connects={} disconnects={} dropped={} torn={} corrupt={}",
        summary.files,
        summary.records,
        summary.frames,
        summary.connects,
        summary.disconnects,
        summary.dropped,
        summary.torn,
        summary.corrupt,
    );
    for (stream, (name, venue)) in &summary.streams {
        println!("stream {stream}: connection={name} venue={venue}");
    }
    let Ok(recording) = Recording::open(dir) else {
        return ExitCode::FAILURE;
    };
    // The URL only names the connection in errors; nothing is dialled.
    let config = match Config::builder("wss://replay.invalid/").build() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let mut replay = Replay::new(recording, config, protocol, pace);
    let (mut data, mut signals, mut errors) = (0u64, 0u64, 0u64);
    let mut per_subscription: BTreeMap<u64, (String, u64)> = BTreeMap::new();
    while let Some(item) = replay.next().await {
        let entry = per_subscription
            .entry(item.client_id.get())
            .or_insert_with(|| (format!("{:?}", item.topic), 0));
        entry.1 += 1;
        match item.item {
            Ok(Update::Data(_)) => data += 1,
            Ok(_) => signals += 1,
            Err(_) => errors += 1,
        }
    }
    for (id, (topic, items)) in &per_subscription {
        println!("subscription {id}: items={items} topic={topic}");
    }
    let stats = replay.stats();
    println!(
        "replay: items={} data={data} signals={signals} errors={errors} subscriptions={} writes_matched={} writes_mismatched={}",
        data + signals + errors,
        per_subscription.len(),
        stats.writes_matched,
        stats.writes_mismatched,
    );
    ExitCode::SUCCESS
}
