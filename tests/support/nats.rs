//! A real `nats-server -js` on a free loopback port with a temporary store,
//! for the JetStream sink tests. The binary comes from `NATS_SERVER_BIN` or the
//! PATH (plus /usr/sbin, where Debian installs it); a missing binary fails the
//! test with how to install it, it never skips.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::SOON;

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// The nats-server binary, or a panic saying how to get one.
pub fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "NATS_SERVER_BIN={} is not a file",
            path.display()
        );
        return path;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/bin")])
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nats-server not found on PATH or in NATS_SERVER_BIN: these tests need a real \
                 server. Install it with `apt-get install nats-server` (Debian/Ubuntu) or from \
                 https://github.com/nats-io/nats-server/releases, or set NATS_SERVER_BIN"
            )
        })
}

/// A running nats-server with JetStream; killed on drop.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: PathBuf,
    extra: Vec<String>,
}

impl NatsServer {
    /// Starts a server on a free loopback port with a fresh store directory.
    pub async fn start() -> NatsServer {
        Self::start_with(Vec::new()).await
    }

    /// Like [`start`](Self::start) with extra command-line arguments (auth, TLS).
    pub async fn start_with(extra: Vec<String>) -> NatsServer {
        let port = free_port();
        let store = std::env::temp_dir().join(format!(
            "rws-nats-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&store);
        std::fs::create_dir_all(&store).expect("create the JetStream store dir");
        let mut server = NatsServer {
            child: None,
            port,
            store,
            extra,
        };
        server.spawn().await;
        server
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The store directory (kept across restarts).
    pub fn store(&self) -> &Path {
        &self.store
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts it again on the same port with the same store.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }

    async fn spawn(&mut self) {
        let mut child = Command::new(server_binary())
            .arg("-js")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .arg("-sd")
            .arg(&self.store)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn nats-server");
        let stderr = child.stderr.take().expect("piped stderr");
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        let ready = tokio::time::timeout(SOON, async {
            while let Ok(Some(line)) = lines.next_line().await {
                let done = line.contains("Server is ready");
                seen.push(line);
                if done {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(
            matches!(ready, Ok(true)),
            "nats-server did not become ready; its log:\n{}",
            seen.join("\n")
        );
        // Keep draining its log so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
