//! Test helpers: a real server on a random port over a fresh database, ZEGO
//! callbacks signed like ZEGO signs them, and the conformance macro.

pub mod callbacks;
pub mod db;
pub mod panicking;
pub mod proxy;
pub mod served;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use zego_room_tracker::domain::{Delivery, EventKind, Outcome};
use zego_room_tracker::http::{self, AppState};
use zego_room_tracker::ingest::{self, RawCallback, VerifyPolicy};
use zego_room_tracker::store::group_commit::{GroupCommit, GroupCommitOptions};
use zego_room_tracker::store::{
    self, Backend, ConnectOptions, DeliveryFilter, DeliveryRecord, Store,
};
use zego_room_tracker::zego::fields::DisplayDecoding;
use zego_room_tracker::zego::{Secret, SecretBook, signature};

pub use db::{TestDb, running_as_root, until_waiting_for_locks};

pub const SECRET: &str = "test-secret";
pub const BODY_LIMIT: usize = 64 * 1024;

/// Emits, for each listed `async fn(Backend)`, a SQLite and a PostgreSQL test.
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
              async fn $name() { super::$name(zego_room_tracker::store::Backend::Sqlite).await }
            )*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
              async fn $name() { super::$name(zego_room_tracker::store::Backend::Postgres).await }
            )*
        }
    };
}

/// Opens a migrated store on a fresh database; `None` when PostgreSQL is
/// unavailable outside CI (the loud warning is printed once).
pub async fn fresh_store(backend: Backend) -> Option<(Arc<dyn Store>, TestDb)> {
    let db = TestDb::new(backend).await?;
    let store = store::connect(&db.url, &test_connect_options())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    Some((store, db))
}

pub fn test_connect_options() -> ConnectOptions {
    ConnectOptions {
        max_connections: 8,
        timeout: Duration::from_millis(1500),
    }
}

/// Group commit as `serve` runs it: the conformance suite goes through it.
pub fn batching() -> GroupCommitOptions {
    GroupCommitOptions {
        max_batch: 64,
        workers: 4,
        // Unpinned: every test's writer pinned to one CPU would crowd it;
        // `batching::*::a_writer_pinned_to_a_cpu_*` runs pinned.
        cpu: None,
    }
}

pub fn policy() -> VerifyPolicy {
    VerifyPolicy {
        secrets: SecretBook::new(vec![Secret::new(SECRET)], Default::default()),
        timestamp_tolerance: Some(Duration::from_secs(300)),
    }
}

/// The real router on a real socket.
pub struct TestApp {
    pub addr: SocketAddr,
    pub store: Arc<dyn Store>,
    pub client: reqwest::Client,
    pub db: TestDb,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        let (store, db) = fresh_store(backend).await?;
        Some(TestApp::with_store(store, db, policy(), Vec::new()).await)
    }

    /// Each delivery in its own transaction (group commit off).
    pub async fn spawn_unbatched(backend: Backend) -> Option<TestApp> {
        let (store, db) = fresh_store(backend).await?;
        let (batched, display) = (false, DisplayDecoding::Percent);
        Some(TestApp::start(store, db, policy(), Vec::new(), batched, display).await)
    }

    /// Reading display fields by `display` (DISPLAY_FIELD_DECODING).
    pub async fn spawn_reading(backend: Backend, display: DisplayDecoding) -> Option<TestApp> {
        let (store, db) = fresh_store(backend).await?;
        Some(TestApp::start(store, db, policy(), Vec::new(), true, display).await)
    }

    /// With group commit, as `serve` runs by default.
    pub async fn with_store(
        store: Arc<dyn Store>,
        db: TestDb,
        verify: VerifyPolicy,
        api_tokens: Vec<Secret>,
    ) -> TestApp {
        TestApp::start(
            store,
            db,
            verify,
            api_tokens,
            true,
            DisplayDecoding::Percent,
        )
        .await
    }

    async fn start(
        store: Arc<dyn Store>,
        db: TestDb,
        verify: VerifyPolicy,
        api_tokens: Vec<Secret>,
        batched: bool,
        display_decoding: DisplayDecoding,
    ) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = AppState {
            store: store.clone(),
            verify: Arc::new(verify),
            display_decoding,
            body_limit: BODY_LIMIT,
            api_tokens: Arc::new(api_tokens),
            request_timeout: std::time::Duration::from_secs(30),
            group_commit: batched
                .then(|| GroupCommit::start(&store, batching()).expect("group commit")),
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(http::serve(listener, state, async {
            let _ = rx.await;
        }));
        TestApp {
            addr,
            store,
            client: reqwest::Client::new(),
            db,
            shutdown: Some(tx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs `body` and returns the status and the JSON answer.
    pub async fn post(&self, path: &str, body: Encoded) -> (StatusCode, Value) {
        post_to(&self.client, &self.url(path), body).await
    }

    /// `post`, sent again after each 503 as ZEGO does (at most 20 times):
    /// for tests of what is stored, where a busy machine may make the
    /// database answer slower than the tests' DATABASE_TIMEOUT_MS.
    pub async fn post_as_zego(&self, path: &str, body: Encoded) -> (StatusCode, Value) {
        for _ in 1..20 {
            let answer = self.post(path, body.clone()).await;
            if answer.0 != StatusCode::SERVICE_UNAVAILABLE {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.post(path, body).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// GET with headers; the status, response headers and body text.
    pub async fn get_raw(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let mut request = self.client.get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request");
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.text().await.expect("body"))
    }

    pub async fn deliveries(&self) -> Vec<DeliveryRecord> {
        deliveries(self.store.as_ref()).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// POSTs `body` to `url`: the status and the JSON answer (null if none).
pub async fn post_to(client: &reqwest::Client, url: &str, body: Encoded) -> (StatusCode, Value) {
    let response = client
        .post(url)
        .header("content-type", body.content_type)
        .body(body.bytes)
        .send()
        .await
        .expect("request");
    let status = response.status();
    let json = response.json().await.unwrap_or(Value::Null);
    (status, json)
}

pub async fn deliveries(store: &dyn Store) -> Vec<DeliveryRecord> {
    let filter = DeliveryFilter {
        limit: 10_000,
        ..Default::default()
    };
    store
        .list_deliveries(&filter)
        .await
        .expect("list deliveries")
}

/// A fixture from `fixtures`, as a JSON object.
pub fn fixture(name: &str) -> Map<String, Value> {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (_, fields) = zego_room_tracker::zego::body::decode(&bytes).expect("fixture decodes");
    fields.into_iter().collect()
}

pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Re-stamps `fields` with the current time and a fresh nonce and signs them
/// with `secret`, keeping the fixture's types (number vs string).
pub fn sign_with(mut fields: Map<String, Value>, secret: &str) -> Map<String, Value> {
    let ts = now_secs();
    let nonce = format!("{}", rand::random::<u32>());
    let timestamp = match fields.get("timestamp") {
        Some(Value::Number(_)) => json!(ts),
        _ => json!(ts.to_string()),
    };
    let sig = signature::sign(secret, &ts.to_string(), &nonce);
    fields.insert("timestamp".into(), timestamp);
    fields.insert("nonce".into(), json!(nonce));
    fields.insert("signature".into(), json!(sig));
    fields
}

pub fn signed(fields: Map<String, Value>) -> Map<String, Value> {
    sign_with(fields, SECRET)
}

/// A body in one of ZEGO's encodings.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
}

pub use zego_room_tracker::sender::Encoding;

pub const ENCODINGS: [Encoding; 3] = [Encoding::Json, Encoding::UrlencodedJson, Encoding::Form];

/// `fields` as ZEGO sends them in `encoding` (the sender's encoder, which
/// its own unit test decodes back with the service's decoder).
pub fn encode(fields: &Map<String, Value>, encoding: Encoding) -> Encoded {
    let (body, content_type) = zego_room_tracker::sender::encode(fields, encoding);
    Encoded {
        bytes: body.into_bytes(),
        content_type,
    }
}

pub fn json_body(fields: &Map<String, Value>) -> Encoded {
    encode(fields, Encoding::Json)
}

/// The built binary, on the database at `database_url`: an operator's
/// command as a user runs it.
pub fn zego_room_tracker_on(database_url: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_zego-room-tracker"));
    command.env("DATABASE_URL", database_url);
    command
}

/// A callback body as the HTTP handler would have assessed it.
pub fn assessed(fields: &Map<String, Value>, kind: EventKind) -> Delivery {
    let raw = RawCallback {
        received_at: chrono::Utc::now(),
        remote_addr: None,
        endpoint: format!("/callbacks/{kind}"),
        content_type: Some("application/json".into()),
        body: serde_json::to_vec(fields).expect("serialise").into(),
    };
    let display = DisplayDecoding::Percent;
    ingest::assess(&policy(), display, ingest::PathEvent::Modelled(kind), raw)
}

/// `ingest::reassess` under the default DISPLAY_FIELD_DECODING, as `rebuild`
/// runs it.
pub fn reassess(archived: &DeliveryRecord) -> Delivery {
    ingest::reassess(archived, DisplayDecoding::Percent)
}

/// Runs a signed callback through the same pipeline as HTTP, without a
/// socket: for tests that send thousands of events.
pub async fn ingest_direct(
    store: &dyn Store,
    fields: &Map<String, Value>,
    kind: EventKind,
) -> Outcome {
    let delivery = assessed(fields, kind);
    store
        .record_delivery(&delivery)
        .await
        .expect("record delivery")
}

/// The archive row of the most recent delivery.
pub async fn last_delivery(store: &dyn Store) -> DeliveryRecord {
    deliveries(store)
        .await
        .into_iter()
        .next()
        .expect("a delivery was archived")
}

/// Unwraps a `fresh_store`/`TestApp::spawn` result, or ends a PostgreSQL
/// test that cannot run here (the reason was printed loudly).
#[macro_export]
macro_rules! or_skip {
    ($e:expr) => {
        match $e {
            Some(v) => v,
            None => return,
        }
    };
}
