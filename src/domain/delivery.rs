//! One HTTP delivery of a callback, what we concluded about it, and how it
//! ended. Every delivery that reaches a handler is archived with its verdict.

use chrono::{DateTime, Utc};

use super::event::Event;

/// A received body plus everything known about it before storage decides
/// the final outcome (the replay guard and identity checks live in the
/// database, so replicas agree).
#[derive(Debug, Clone)]
pub struct Delivery {
    pub received_at: DateTime<Utc>,
    pub remote_addr: Option<String>,
    /// The request path, e.g. `/callbacks/room_close`, or `import:FILE` for imports.
    pub endpoint: String,
    pub content_type: Option<String>,
    pub body: bytes::Bytes,
    /// Lowercase hex SHA-256 of `body`; binds a signature triple to one body.
    pub body_sha256: String,
    pub summary: DeliverySummary,
    /// Present once the signature verified: the triple the replay guard binds.
    pub replay_key: Option<ReplayKey>,
    pub verdict: Verdict,
}

/// Best-effort identifying fields, filled in even for rejected deliveries so
/// operators can find them in the archive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliverySummary {
    pub event: Option<String>,
    pub appid: Option<u32>,
    pub room_id: Option<String>,
    pub room_session_id: Option<String>,
}

/// The signed triple: `timestamp` and `nonce` as received, the signature's
/// hex lower-cased (`ingest::verify`), so its case variants are one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplayKey {
    pub timestamp: String,
    pub nonce: String,
    pub signature: String,
}

/// What decoding and verification made of a delivery.
#[derive(Debug, Clone)]
pub enum Verdict {
    Rejected(Rejection),
    /// Correctly signed, but an event we do not model (e.g. `stream_create`).
    Ignored {
        event: String,
    },
    Accepted(Event),
}

/// Why a delivery was refused. `code` is the stable snake_case code that
/// both the archive and the HTTP error body carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: RejectCode,
    pub message: String,
}

impl Rejection {
    /// A NUL the message quotes from the body is written `\0`: the message
    /// is archived, and PostgreSQL text cannot hold a NUL.
    pub fn new(code: RejectCode, message: impl Into<String>) -> Rejection {
        let message = message.into();
        Rejection {
            code,
            message: if message.contains('\0') {
                message.replace('\0', "\\0")
            } else {
                message
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectCode {
    /// Not JSON, URL-encoded JSON or form fields; empty; not UTF-8.
    MalformedBody,
    /// `signature`, `timestamp` or `nonce` absent.
    MissingSignature,
    /// No configured secret produces the signature.
    InvalidSignature,
    /// `timestamp` outside the configured tolerance.
    StaleTimestamp,
    /// The signature triple was seen before with another body.
    ReplayedSignature,
    /// The body's `event` is not the one the path is for.
    EventMismatch,
    MissingField,
    InvalidField,
    BodyTooLarge,
}

impl RejectCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::MalformedBody => "malformed_body",
            RejectCode::MissingSignature => "missing_signature",
            RejectCode::InvalidSignature => "invalid_signature",
            RejectCode::StaleTimestamp => "stale_timestamp",
            RejectCode::ReplayedSignature => "replayed_signature",
            RejectCode::EventMismatch => "event_mismatch",
            RejectCode::MissingField => "missing_field",
            RejectCode::InvalidField => "invalid_field",
            RejectCode::BodyTooLarge => "body_too_large",
        }
    }
}

/// How a delivery ended, as archived in `deliveries.outcome` and answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Stored,
    /// The same identity and the same content were stored before.
    Duplicate,
    /// The same identity with different content: the first copy stays.
    Conflict,
    Ignored,
    Rejected(Rejection),
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Stored => "stored",
            Outcome::Duplicate => "duplicate",
            Outcome::Conflict => "conflict",
            Outcome::Ignored => "ignored",
            Outcome::Rejected(_) => "rejected",
        }
    }
}
