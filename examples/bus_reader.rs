//! Reads what `market_feed --publish` wrote to NATS JetStream, with a durable
//! consumer, and checks each instrument's continuity.
//!
//! ```text
//! cargo run --features nats --example bus_reader -- --nats nats://127.0.0.1:4222 \
//!     [--stream MD] [--durable reader] [--subject md.>] [--duration SECS]
//! ```
//!
//! Continuity is checked on the embedded exchange's ticker `volume` (the
//! round number, +1 per update per instrument) when the payload has one, and
//! otherwise on the venue's message id header: a repeated `Nats-Msg-Id` is a
//! duplicate. Signals (`Rws-Signal`) are counted and reset the instrument's
//! expectation, as a book builder would discard its state there. Messages are
//! acknowledged after they are checked, so a restarted reader resumes where
//! the durable consumer stopped.

use std::collections::{HashMap, HashSet};
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

#[derive(Default)]
struct Instrument {
    last_round: Option<u64>,
    messages: u64,
    gaps: u64,
    duplicates: u64,
    signals: u64,
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
            entry.last_round = None;
        } else {
            entry.messages += 1;
            let id = headers
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.as_str().to_owned());
            if let Some(id) = id {
                if !ids.insert(id) {
                    entry.duplicates += 1;
                }
            }
            let round = serde_json::from_slice::<serde_json::Value>(&message.payload)
                .ok()
                .and_then(|v| {
                    v["msg"]["volume"]
                        .as_u64()
                        .or(v["data"][0]["volume"].as_u64())
                });
            if let Some(round) = round {
                match entry.last_round {
                    Some(last) if round == last => entry.duplicates += 1,
                    Some(last) if round != last + 1 => entry.gaps += 1,
                    _ => {}
                }
                entry.last_round = Some(round);
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
            "{name}: messages={} gaps={} duplicates={} signals={}",
            i.messages, i.gaps, i.duplicates, i.signals
        );
        ok &= i.gaps == 0 && i.duplicates == 0;
    }
    println!("instruments={} continuous={ok}", instruments.len());
    Ok(ok)
}
