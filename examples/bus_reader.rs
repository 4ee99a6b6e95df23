//! Reads what `market_feed --publish` wrote to NATS JetStream, with a durable
//! consumer, and checks each instrument's continuity.
//!
//! ```text
//! cargo run --features nats --example bus_reader -- --nats nats://127.0.0.1:4222 \
//!     [--stream MD] [--durable reader] [--subject md.>] [--duration SECS]
//! ```
//!
//! Continuity is checked on the embedded exchange's ticker round number
//! (`volume`, or Kalshi's `volume_fp` "N.00"; +1 per update per instrument)
//! when the payload has one, and otherwise on the venue's message id header:
//! a repeated `Nats-Msg-Id` is a duplicate. A round below the highest seen
//! that fills a hole is `late`, not a duplicate: with two replicas, one can
//! store an instrument's updates ahead of the other after a venue fault, so
//! stream order is not venue order. Holes still open at the end are `gaps`,
//! unless a signal (`Rws-Signal`) came right before them: then they are
//! `lost_after_signal`, as a book builder would have discarded its state
//! there. Messages are acknowledged after they are checked, so a restarted
//! reader resumes where the durable consumer stopped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt;
use resilient_ws::sink::nats::async_nats;
use resilient_ws::sink::nats::async_nats::jetstream::{self, consumer::pull};
use resilient_ws::sink::nats::SIGNAL_HEADER;

struct Args {
    nats: String,
    stream: String,
    durable: String,
    subject: String,
    duration: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        nats: "nats://127.0.0.1:4222".into(),
        stream: "MD".into(),
        durable: "reader".into(),
        subject: "md.>".into(),
        duration: Duration::from_secs(10),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--nats" => args.nats = value,
            "--stream" => args.stream = value,
            "--durable" => args.durable = value,
            "--subject" => args.subject = value,
            "--duration" => {
                let secs: u64 = value
                    .parse()
                    .map_err(|_| "--duration: seconds".to_owned())?;
                args.duration = Duration::from_secs(secs);
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(args)
}

/// Holes larger than this are counted, not each remembered.
const MAX_HOLES: u64 = 100_000;

#[derive(Default)]
struct Instrument {
    max_round: Option<u64>,
    /// Rounds not seen yet below `max_round`, each with whether a signal came
    /// right before the round that opened the hole.
    missing: BTreeMap<u64, bool>,
    /// A signal came since the last data message.
    signalled: bool,
    /// Rounds skipped past `MAX_HOLES` at once.
    jumped: u64,
    messages: u64,
    late: u64,
    duplicates: u64,
    signals: u64,
}

impl Instrument {
    fn round(&mut self, round: u64) {
        match self.max_round {
            Some(max) if round > max => {
                let holes = round - max - 1;
                if holes > MAX_HOLES {
                    self.jumped += holes;
                } else {
                    for hole in max + 1..round {
                        self.missing.insert(hole, self.signalled);
                    }
                }
                self.max_round = Some(round);
            }
            Some(_) => {
                if self.missing.remove(&round).is_some() {
                    self.late += 1;
                } else {
                    self.duplicates += 1;
                }
            }
            None => self.max_round = Some(round),
        }
        self.signalled = false;
    }

    fn gaps(&self) -> usize {
        self.missing
            .values()
            .filter(|after_signal| !**after_signal)
            .count()
    }
}

/// The embedded exchange's round number: Kraken `data[0].volume`, Kalshi
/// `msg.volume_fp` ("12.00") or an integer `msg.volume`.
fn round_of(payload: &[u8]) -> Option<u64> {
    let v = serde_json::from_slice::<serde_json::Value>(payload).ok()?;
    v["msg"]["volume"]
        .as_u64()
        .or(v["data"][0]["volume"].as_u64())
        .or_else(|| {
            v["msg"]["volume_fp"]
                .as_str()?
                .strip_suffix(".00")?
                .parse()
                .ok()
        })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    match read(args).await {
        Ok(ok) if ok => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("bus_reader: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn read(args: Args) -> Result<bool, String> {
    let client = async_nats::connect(args.nats.as_str())
        .await
        .map_err(|e| format!("connect: {:?}", e.kind()))?;
    let js = jetstream::new(client);
    let stream = js
        .get_stream(&args.stream)
        .await
        .map_err(|e| format!("stream {}: {e}", args.stream))?;
    let consumer: jetstream::consumer::Consumer<pull::Config> = stream
        .get_or_create_consumer(
            &args.durable,
            pull::Config {
                durable_name: Some(args.durable.clone()),
                filter_subject: args.subject.clone(),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("consumer {}: {e}", args.durable))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| format!("messages: {e}"))?;
    let mut instruments: HashMap<String, Instrument> = HashMap::new();
    let mut ids = HashSet::new();
    let deadline = tokio::time::Instant::now() + args.duration;
    loop {
        let next = tokio::time::timeout_at(deadline, messages.next()).await;
        let message = match next {
            Err(_) | Ok(None) => break,
            Ok(Some(Err(error))) => return Err(format!("reading: {error}")),
            Ok(Some(Ok(message))) => message,
        };
        let entry = instruments.entry(message.subject.to_string()).or_default();
        let headers = message.headers.as_ref();
        if headers.and_then(|h| h.get(SIGNAL_HEADER)).is_some() {
            entry.signals += 1;
            entry.signalled = true;
        } else {
            entry.messages += 1;
            let id = headers
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.as_str().to_owned());
            let repeated_id = id.is_some_and(|id| !ids.insert(id));
            match round_of(&message.payload) {
                Some(round) => entry.round(round),
                None if repeated_id => entry.duplicates += 1,
                None => {}
            }
        }
        message.ack().await.map_err(|e| format!("ack: {e}"))?;
    }
    let mut ok = true;
    let mut names: Vec<_> = instruments.keys().cloned().collect();
    names.sort();
    for name in names {
        let i = &instruments[&name];
        println!(
            "{name}: messages={} gaps={} lost_after_signal={} late={} duplicates={} signals={}",
            i.messages,
            i.gaps() as u64 + i.jumped,
            i.missing.len() - i.gaps(),
            i.late,
            i.duplicates,
            i.signals
        );
        ok &= i.gaps() == 0 && i.jumped == 0 && i.duplicates == 0;
    }
    println!("instruments={} continuous={ok}", instruments.len());
    Ok(ok)
}
