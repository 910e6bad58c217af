//! The real binary serving on a random port: for what lives once per
//! process (the Prometheus recorder, signals, startup) and so cannot be
//! tested inside this test binary without sharing it with every other test.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::{Encoded, SECRET, TestDb};

/// `serve` on `db` with the tests' secret, killed when dropped.
pub struct Served {
    child: Child,
    pub addr: String,
    /// Its stderr, kept open: the server logs a line per callback.
    _log: Receiver<String>,
    client: reqwest::Client,
    _db: TestDb,
}

impl Served {
    pub fn start(db: TestDb) -> Served {
        Served::with_settings(db, &[])
    }

    /// With more settings (environment variables) than the defaults.
    pub fn with_settings(db: TestDb, settings: &[(&str, &str)]) -> Served {
        let mut serve = super::zego_room_tracker_on(&db.url);
        serve
            .env("ZEGO_CALLBACK_SECRET", SECRET)
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .envs(settings.iter().copied());
        let (child, addr, log) = spawn_until_listening(serve);
        Served {
            child,
            addr,
            _log: log,
            client: reqwest::Client::new(),
            _db: db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn post(&self, path: &str, body: Encoded) -> StatusCode {
        super::post_to(&self.client, &self.url(path), body).await.0
    }

    pub async fn get_raw(&self, path: &str) -> (StatusCode, HeaderMap, String) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.text().await.unwrap())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` (a server) and waits for its `listening` line: the child,
/// its address, and the rest of its stderr lines.
pub fn spawn_until_listening(mut cmd: Command) -> (Child, String, Receiver<String>) {
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        if line.contains("listening")
            && let Some(addr) = line
                .split("addr=")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
        {
            return (child, addr.to_owned(), rx);
        }
        seen.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("no `listening` line with addr= within 20 s; stderr: {seen:?}");
}
