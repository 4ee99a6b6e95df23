//! Issue 14: one tracing span per connection (venue, redacted URL, name,
//! attempt), and every log line of that connection inside it.
//!
//! Its own test binary: the subscriber is scoped to this thread
//! (`set_default`), and tracing's per-callsite interest cache races with
//! other tests' threads hitting the same callsites without a subscriber.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resilient_ws::{Backoff, Client, Config, Event, Kalshi, Topic};
use support::exchange::{Exchange, Venue};
use support::wait_event;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event as TraceEvent, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

fn config(url: &str) -> Config {
    Config::builder(url)
        .backoff(Backoff::new(Duration::from_millis(5), Duration::from_millis(20)).seed(3))
        .idle_timeout(None)
        .rate_limit(1000, Duration::from_secs(1))
        .connection_name("feed-a")
        .build()
        .expect("valid config")
}

/// A span's name and fields (`name=value`).
type SpanFields = (String, Vec<String>);
/// A log line and the fields of its `connection` ancestor, if any.
type Line = (String, Option<Vec<String>>);

#[derive(Default, Clone)]
struct Captured {
    /// Span id -> its fields as `name=value`.
    spans: Arc<Mutex<HashMap<u64, SpanFields>>>,
    /// Every event: its message and the fields of its `connection` ancestor, if any.
    events: Arc<Mutex<Vec<Line>>>,
}

struct Fields<'a>(&'a mut Vec<String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let name = field.name();
        self.0.retain(|f| !f.starts_with(&format!("{name}=")));
        self.0.push(format!("{name}={value:?}"));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Captured {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = Vec::new();
        attrs.record(&mut Fields(&mut fields));
        let name = attrs.metadata().name().to_owned();
        self.spans
            .lock()
            .unwrap()
            .insert(id.into_u64(), (name, fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some((_, fields)) = self.spans.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }

    fn on_event(&self, event: &TraceEvent<'_>, ctx: Context<'_, S>) {
        let mut fields = Vec::new();
        event.record(&mut Fields(&mut fields));
        let connection = ctx.event_scope(event).and_then(|scope| {
            scope
                .into_iter()
                .find(|span| span.name() == "connection")
                .and_then(|span| {
                    let spans = self.spans.lock().unwrap();
                    spans.get(&span.id().into_u64()).map(|(_, f)| f.clone())
                })
        });
        self.events
            .lock()
            .unwrap()
            .push((fields.join(" "), connection));
    }
}

#[tokio::test]
async fn every_log_line_of_a_connection_is_inside_its_span_with_a_redacted_url() {
    let exchange = Exchange::start(Venue::Kalshi).await.unwrap();
    let captured = Captured::default();
    let subscriber = tracing_subscriber::registry().with(captured.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let url = format!("{}?token=hunter2-secret", exchange.url());
    let (client, _) = Client::connect(config(&url), Kalshi::new()).await.unwrap();
    let mut events = client.events();
    let _sub = client
        .subscribe(Topic::new("ticker").symbol("A"))
        .await
        .unwrap();
    exchange.reject("NOPE", "Unknown market ticker", 8);
    let _ = client.subscribe(Topic::new("ticker").symbol("NOPE")).await;
    exchange.abort_all();
    wait_event(&mut events, |e| matches!(e, Event::Resubscribed { .. })).await;
    client.close().await.unwrap();

    let lines = captured.events.lock().unwrap().clone();
    assert!(
        lines.len() >= 3,
        "expected connect/lost/reject lines: {lines:?}"
    );
    for (line, span) in &lines {
        let span = span
            .as_ref()
            .unwrap_or_else(|| panic!("log line outside a connection span: {line}"));
        let all = span.join(" ");
        assert!(all.contains("venue=\"kalshi\""), "{all}");
        assert!(all.contains("connection=feed-a"), "{all}");
        assert!(all.contains("url=ws://127.0.0.1"), "{all}");
        assert!(all.contains("attempt="), "{all}");
        assert!(
            !all.contains("hunter2") && !line.contains("hunter2"),
            "{all} {line}"
        );
    }
    // The attempt field follows the reconnect.
    assert!(
        lines.iter().any(|(_, s)| s
            .as_ref()
            .is_some_and(|f| f.contains(&"attempt=1".to_owned()))),
        "{lines:?}"
    );
    let spans = captured.spans.lock().unwrap();
    let connection_spans = spans.values().filter(|(n, _)| n == "connection").count();
    assert_eq!(connection_spans, 1, "one span per connection");
}
