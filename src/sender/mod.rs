//! Playing ZEGO's role: sign callbacks, send them in one of ZEGO's encodings,
//! and retry non-2xx answers on ZEGO's schedule. Used by `send`, and by
//! anyone testing a deployment.

pub mod load;
pub mod request_file;
mod tls;
pub mod traffic;

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::zego::{Secret, SecretBook, signature};

/// ZEGO's retry waits after a failed attempt: 2, 4, 8, 16, 32 s.
pub const ZEGO_RETRY_SCHEDULE: [Duration; 5] = [
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
    Duration::from_secs(32),
];

/// One callback to send: its event name and its fields (unsigned).
#[derive(Debug, Clone, PartialEq)]
pub struct Callback {
    pub event: String,
    pub fields: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    /// A JSON object (ZEGO's default).
    Json,
    /// The JSON URL-encoded as a whole.
    UrlencodedJson,
    /// `application/x-www-form-urlencoded` fields.
    Form,
}

/// How one callback's delivery ended, after any retries.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The last HTTP status, or `None` if no attempt got an answer.
    pub status: Option<u16>,
    /// The last answer's body, or the transport error.
    pub answer: String,
    pub attempts: usize,
    /// Time of the last attempt alone.
    pub latency: Duration,
}

impl Sent {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// `stored`, `duplicate`, … from a 2xx answer, else the status or error.
    pub fn outcome(&self) -> String {
        let status = serde_json::from_str::<Value>(&self.answer)
            .ok()
            .and_then(|v| v.get("status").and_then(Value::as_str).map(str::to_owned));
        match (self.succeeded(), status, self.status) {
            (true, Some(s), _) => s,
            (_, _, Some(code)) => format!("http_{code}"),
            (_, _, None) => "unreachable".into(),
        }
    }
}

/// Sends callbacks to one service.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    /// Parsed once: parsing it again for every request cost the load
    /// generator more CPU than signing.
    base_url: reqwest::Url,
    /// The first secret of a callback's appid signs it, as ZEGO signs with
    /// the current secret of the app that sent it.
    secrets: std::sync::Arc<SecretBook>,
    pub encoding: Encoding,
    /// Post to `/callbacks/{event}` (true) or to `/callbacks`.
    pub typed_paths: bool,
    pub retry_schedule: Vec<Duration>,
}

impl Sender {
    /// A sender to the service at `base_url` (`http://host:port`, or with
    /// a path prefix) that signs everything with `secret`; an error says why
    /// the URL cannot be one.
    pub fn new(base_url: &str, secret: &str) -> Result<Sender, String> {
        Sender::signing_with(
            base_url,
            SecretBook::new(vec![Secret::new(secret)], Default::default()),
        )
    }

    /// The same, signing each appid with the first of its secrets in
    /// `secrets` and other appids with the first shared one, like a server
    /// reading ZEGO_APP_SECRETS and ZEGO_CALLBACK_SECRET.
    pub fn signing_with(base_url: &str, secrets: SecretBook) -> Result<Sender, String> {
        let base_url = reqwest::Url::parse(base_url)
            .map_err(|e| e.to_string())
            .and_then(|url| match url.scheme() {
                "http" | "https" => Ok(url),
                other => Err(format!("its scheme is {other}, not http or https")),
            })
            .map_err(|why| format!("{base_url} is not a base URL: {why}"))?;
        Ok(Sender {
            client: client(None),
            base_url,
            secrets: std::sync::Arc::new(secrets),
            encoding: Encoding::Json,
            typed_paths: true,
            retry_schedule: ZEGO_RETRY_SCHEDULE.to_vec(),
        })
    }

    /// Also trusts the certificates in `pem` (one or a bundle) for an
    /// https URL, as for a service whose certificate is self-signed (a CA
    /// one too, `tls`) or from a private CA; the public roots stay trusted.
    pub fn trusting(mut self, pem: &[u8]) -> Result<Sender, String> {
        self.client = client(Some(tls::trusting(pem)?));
        Ok(self)
    }

    /// The secret `fields` are signed with: their appid's first, else the
    /// first shared one (empty when there is none: the service refuses it).
    fn secret_for(&self, fields: &Map<String, Value>) -> &str {
        // Read as the server reads it (`zego::event::appid`), which falls
        // back to the shared secrets for an appid it cannot read.
        let appid = fields
            .get("appid")
            .and_then(crate::zego::fields::u64_value)
            .and_then(|id| u32::try_from(id).ok());
        self.secrets
            .for_app(appid)
            .first()
            .map_or("", Secret::expose)
    }

    /// Whether there is a secret to sign `callback` with (its appid's, or
    /// a shared one).
    pub fn can_sign(&self, callback: &Callback) -> bool {
        !self.secret_for(&callback.fields).is_empty()
    }

    /// `/callbacks/{event}` (or `/callbacks`) under the base URL's path.
    fn url_for(&self, event: &str) -> reqwest::Url {
        let mut url = self.base_url.clone();
        {
            let mut path = url.path_segments_mut().expect("an http(s) URL has a path");
            path.pop_if_empty().push("callbacks");
            if self.typed_paths {
                path.push(event);
            }
        }
        url
    }

    /// One attempt at `callback`: its URL, and its body, signed now with a
    /// fresh timestamp and nonce, with the body's Content-Type.
    pub fn prepare(&self, callback: &Callback) -> (reqwest::Url, String, &'static str) {
        let (body, content_type) = encode(
            &sign(&callback.fields, self.secret_for(&callback.fields)),
            self.encoding,
        );
        (self.url_for(&callback.event), body, content_type)
    }

    /// Sends `callback`, re-signed with a fresh timestamp and nonce on every
    /// attempt, retrying on transport errors and non-2xx answers.
    pub async fn send(&self, callback: &Callback) -> Sent {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (url, body, content_type) = self.prepare(callback);
            let sent = Sent {
                attempts,
                ..self.post(url, body, content_type).await
            };
            match self.retry_schedule.get(attempts - 1) {
                Some(wait) if !sent.succeeded() => tokio::time::sleep(*wait).await,
                _ => return sent,
            }
        }
    }

    /// One POST of a request written by `request_file::write`, as written
    /// (signature and all), once: its path replaces the base URL's.
    pub async fn replay(&self, request: &request_file::Request<'_>) -> Sent {
        let mut url = self.base_url.clone();
        url.set_path(request.path);
        self.post(url, request.body.to_owned(), request.content_type)
            .await
    }

    /// One attempt.
    async fn post(&self, url: reqwest::Url, body: String, content_type: &str) -> Sent {
        let started = Instant::now();
        let result = self
            .client
            .post(url)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await;
        let (status, answer) = match result {
            Ok(response) => {
                let status = response.status().as_u16();
                (Some(status), response.text().await.unwrap_or_default())
            }
            // With its causes: "error sending request" alone does not say
            // whether the connection was refused or the certificate not trusted.
            Err(e) => (None, with_causes(&e)),
        };
        Sent {
            status,
            answer,
            attempts: 1,
            latency: started.elapsed(),
        }
    }
}

/// `fields` plus `timestamp` (now), a random `nonce` and their `signature`.
pub fn sign(fields: &Map<String, Value>, secret: &str) -> Map<String, Value> {
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let nonce = rand::random::<u64>().to_string();
    let mut signed = fields.clone();
    signed.insert(
        "signature".into(),
        json!(signature::sign(secret, &timestamp, &nonce)),
    );
    signed.insert("timestamp".into(), json!(timestamp));
    signed.insert("nonce".into(), json!(nonce));
    signed
}

/// reqwest's own TLS (the public roots), or `tls`'s.
fn client(tls: Option<rustls::ClientConfig>) -> reqwest::Client {
    let builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
    match tls {
        None => builder,
        Some(config) => builder.use_preconfigured_tls(config),
    }
    .build()
    .expect("a TLS backend is compiled in")
}

/// An error and each of its sources, `: `-separated.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // hyper and reqwest sometimes repeat the cause in the outer message.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The body and Content-Type of `fields` in `encoding`.
pub fn encode(fields: &Map<String, Value>, encoding: Encoding) -> (String, &'static str) {
    let json = serde_json::to_string(fields).expect("a JSON map serialises");
    match encoding {
        Encoding::Json => (json, "application/json"),
        Encoding::UrlencodedJson => (form_component(&json), "application/json"),
        Encoding::Form => {
            let pairs: Vec<String> = fields
                .iter()
                .map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    format!("{}={}", form_component(k), form_component(&text))
                })
                .collect();
            (pairs.join("&"), "application/x-www-form-urlencoded")
        }
    }
}

/// Percent-encoding with form rules: a space is `+`.
fn form_component(text: &str) -> String {
    urlencoding::encode(text).replace("%20", "+")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zego::body;

    #[test]
    fn an_appid_is_read_as_the_server_reads_it_to_pick_the_secret() {
        let mut per_app = std::collections::HashMap::new();
        per_app.insert(1, vec![Secret::new("one")]);
        let secrets = SecretBook::new(vec![Secret::new("shared")], per_app);
        let sender = Sender::signing_with("http://127.0.0.1:1", secrets).unwrap();
        let secret = |appid: Value| {
            let fields = json!({ "appid": appid }).as_object().unwrap().clone();
            sender.secret_for(&fields).to_owned()
        };
        assert_eq!(secret(json!(1)), "one");
        assert_eq!(secret(json!("1")), "one");
        // Not an appid to the server (a sign, a space, a fraction, too big):
        // it checks the shared secrets, so those sign.
        for unread in [
            json!("+1"),
            json!(" 1"),
            json!(1.0),
            json!(4_294_967_297_u64),
        ] {
            assert_eq!(secret(unread.clone()), "shared", "{unread}");
        }
    }

    #[test]
    fn callbacks_go_under_the_base_url_path() {
        let url = |base: &str, typed: bool| {
            let mut sender = Sender::new(base, "s").unwrap();
            sender.typed_paths = typed;
            sender.url_for("room_close").to_string()
        };
        assert_eq!(
            url("http://127.0.0.1:8080", true),
            "http://127.0.0.1:8080/callbacks/room_close"
        );
        assert_eq!(
            url("https://example.com/zego/", true),
            "https://example.com/zego/callbacks/room_close"
        );
        assert_eq!(
            url("https://example.com/zego", false),
            "https://example.com/zego/callbacks"
        );
        for bad in ["127.0.0.1:8080", "ftp://example.com", "not a url"] {
            let e = Sender::new(bad, "s").unwrap_err();
            assert!(e.starts_with(bad), "{e}");
        }
    }

    #[test]
    fn every_encoding_decodes_back_to_the_same_fields() {
        let fields: Map<String, Value> = serde_json::from_value(
            json!({"event": "room_close", "room_id": "a b&c=d", "appid": 1}),
        )
        .unwrap();
        let signed = sign(&fields, "s");
        for encoding in [Encoding::Json, Encoding::UrlencodedJson, Encoding::Form] {
            let (text, _) = encode(&signed, encoding);
            let (_, decoded) = body::decode(text.as_bytes()).unwrap();
            assert_eq!(decoded["room_id"], "a b&c=d", "{encoding:?}");
            let ts = decoded["timestamp"].as_str().unwrap();
            let nonce = decoded["nonce"].as_str().unwrap();
            assert!(signature::verify(
                "s",
                ts,
                nonce,
                decoded["signature"].as_str().unwrap()
            ));
        }
    }
}
