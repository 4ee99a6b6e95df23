//! The parent's end of the chaos soak's child process (the exchange side,
//! `soak_harness`): spawns this test binary again with [`CHILD_ENV`] set,
//! reads the venues' URLs, and sends each venue's commands, waiting for that
//! venue's answer. The protocol is described in `soak_harness`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

use super::soak_harness::{CHILD_ENV, LINE_PREFIX, VENUES};

/// How long the child may take to start its venues.
const START: Duration = Duration::from_secs(60);

/// The running child.
pub struct HarnessChild {
    child: Child,
    stdin: Arc<Mutex<Option<ChildStdin>>>,
    urls: HashMap<String, String>,
    answers: HashMap<String, Mutex<mpsc::UnboundedReceiver<String>>>,
    reader: JoinHandle<()>,
    finishing: Arc<AtomicBool>,
}

/// One venue's end of the link.
#[derive(Clone, Copy)]
pub struct VenueLink<'a> {
    child: &'a HarnessChild,
    venue: &'static str,
}

impl HarnessChild {
    /// Re-executes this test binary running only the ignored test `test_name`
    /// (which must call `soak_harness::serve`) and waits for every venue's URL.
    pub async fn spawn(test_name: &str) -> HarnessChild {
        let exe = std::env::current_exe().expect("current test binary");
        let mut child = Command::new(exe)
            .args([test_name, "--exact", "--ignored", "--nocapture"])
            .env(CHILD_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the harness child");
        let stdin = child.stdin.take().expect("child stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("child stdout")).lines();
        let mut urls = HashMap::new();
        let started = tokio::time::timeout(START, async {
            while urls.len() < VENUES.len() {
                let line = lines
                    .next_line()
                    .await
                    .expect("read child stdout")
                    .expect("the harness child exited before it was ready");
                let Some(rest) = line.strip_prefix(LINE_PREFIX) else {
                    continue;
                };
                let mut words = rest.split_whitespace();
                if let (Some(venue), Some("ready"), Some(url)) =
                    (words.next(), words.next(), words.next())
                {
                    urls.insert(venue.to_owned(), url.to_owned());
                }
            }
        })
        .await;
        assert!(
            started.is_ok(),
            "the harness child did not start in {START:?}"
        );
        let mut senders = HashMap::new();
        let mut answers = HashMap::new();
        for venue in VENUES {
            let (tx, rx) = mpsc::unbounded_channel();
            senders.insert(venue.to_owned(), tx);
            answers.insert(venue.to_owned(), Mutex::new(rx));
        }
        let reader = tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let Some(rest) = line.strip_prefix(LINE_PREFIX) else {
                    continue;
                };
                let (venue, answer) = rest.split_once(' ').unwrap_or((rest, ""));
                if let Some(tx) = senders.get(venue) {
                    let _ = tx.send(answer.to_owned());
                }
            }
        });
        HarnessChild {
            child,
            stdin: Arc::new(Mutex::new(Some(stdin))),
            urls,
            answers,
            reader,
            finishing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The link to one venue (`kalshi`, `kraken`, `weex`, `okx`).
    pub fn venue(&self, venue: &'static str) -> VenueLink<'_> {
        VenueLink { child: self, venue }
    }

    /// Set once any venue's `finish` starts: the soak is in its end checks,
    /// which hold the exchange's log in this process (harness memory, not the
    /// library's), so memory samples stop there.
    pub fn finishing(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.finishing)
    }

    /// Closes the child's stdin, waits for it to exit successfully and for
    /// the reader task to end.
    pub async fn shutdown(mut self) {
        drop(self.stdin.lock().await.take());
        let status = tokio::time::timeout(START, self.child.wait())
            .await
            .expect("the harness child exits after stdin closes")
            .expect("wait for the harness child");
        assert!(status.success(), "the harness child failed: {status}");
        let _ = (&mut self.reader).await;
    }
}

impl VenueLink<'_> {
    /// The venue's URL (through its fault proxy).
    pub fn url(&self) -> String {
        self.child.urls[self.venue].clone()
    }

    /// Sends `command` and waits up to `timeout` for the venue's answer.
    pub async fn call(&self, command: &str, timeout: Duration) -> String {
        let mut answers = self.child.answers[self.venue].lock().await;
        {
            let mut stdin = self.child.stdin.lock().await;
            let stdin = stdin.as_mut().expect("the link is open");
            let line = format!("{} {command}\n", self.venue);
            stdin
                .write_all(line.as_bytes())
                .await
                .expect("write to the harness child");
            stdin.flush().await.expect("flush to the harness child");
        }
        tokio::time::timeout(timeout, answers.recv())
            .await
            .unwrap_or_else(|_| panic!("{}: no answer to {command:?} in {timeout:?}", self.venue))
            .unwrap_or_else(|| panic!("{}: the harness child ended during {command:?}", self.venue))
    }

    /// Starts the venue's publishing.
    pub async fn stream(&self) {
        let answer = self.call("stream", super::SOON).await;
        assert_eq!(answer, "ok", "{}: stream", self.venue);
    }

    /// Runs the fault schedule for `secs`; returns the faults by kind.
    pub async fn faults(&self, seed: u64, secs: u64) -> std::collections::BTreeMap<String, u64> {
        let answer = self
            .call(
                &format!("faults {seed} {secs}"),
                Duration::from_secs(secs) + START,
            )
            .await;
        let json = answer
            .strip_prefix("faults ")
            .unwrap_or_else(|| panic!("{}: bad faults answer {answer}", self.venue));
        serde_json::from_str(json).expect("faults by kind")
    }

    /// One sure sequence skip and repeat (Kalshi).
    pub async fn gap(&self) {
        let answer = self.call("gap", super::SOON).await;
        assert_eq!(answer, "ok", "{}: gap", self.venue);
    }

    /// Stops the venue; returns its record (`received`, `handshakes`,
    /// `pongs`, `child_rss_kib`, `child_heap_kib`).
    pub async fn finish(&self) -> Value {
        self.child.finishing.store(true, Ordering::SeqCst);
        let answer = self.call("finish", START).await;
        let json = answer
            .strip_prefix("finish ")
            .unwrap_or_else(|| panic!("{}: bad finish answer {answer}", self.venue));
        serde_json::from_str(json).expect("finish record")
    }
}
