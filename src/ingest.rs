//! The callback pipeline up to storage: decode → verify signature →
//! timestamp window → classify (event vs path, required fields). What needs
//! shared memory across replicas (the replay guard, identities) is decided by
//! the store, in the same transaction that archives the delivery.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::domain::delivery::DeliverySummary;
use crate::domain::{Delivery, EventKind, RejectCode, Rejection, ReplayKey, Verdict};
use crate::store::DeliveryRecord;
use crate::zego::body::{self, Fields};
use crate::zego::fields::{DisplayDecoding, FieldError, MAX_KEY_BYTES, signed_text};
use crate::zego::{SecretBook, event, signature};

/// How deliveries are verified.
#[derive(Debug, Clone)]
pub struct VerifyPolicy {
    pub secrets: SecretBook,
    /// `None` turns the freshness check off.
    pub timestamp_tolerance: Option<Duration>,
}

/// A callback as it came off the wire.
#[derive(Debug, Clone)]
pub struct RawCallback {
    pub received_at: DateTime<Utc>,
    pub remote_addr: Option<String>,
    pub endpoint: String,
    pub content_type: Option<String>,
    pub body: bytes::Bytes,
}

impl RawCallback {
    /// The arrival time to record now, in whole milliseconds: what the API
    /// shows and what both backends store alike (SQLite's text keeps every
    /// digit it is given, PostgreSQL microseconds).
    pub fn arrival_now() -> DateTime<Utc> {
        chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 3)
    }
}

/// What the path a callback came to says about its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathEvent<'a> {
    /// `POST /callbacks`: the body's `event` names it.
    Any,
    /// `POST /callbacks/{event}` of an event we model.
    Modelled(EventKind),
    /// `POST /callbacks/{event}` of another ZEGO event (`stream_close`):
    /// signed, it is archived and answered `ignored`, as on `/callbacks`,
    /// rather than a 404 that nothing keeps while ZEGO retries it.
    Other(&'a str),
}

impl<'a> PathEvent<'a> {
    /// The path segment after `/callbacks/`, if it can name a ZEGO event
    /// (lower-case letters, digits and `_`, at most 64 bytes: every event
    /// ZEGO documents); `None` for anything else, a 404.
    pub fn of_segment(segment: &'a str) -> Option<PathEvent<'a>> {
        if let Some(kind) = EventKind::parse(segment) {
            return Some(PathEvent::Modelled(kind));
        }
        let event_like = (1..=64).contains(&segment.len())
            && segment
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        event_like.then_some(PathEvent::Other(segment))
    }

    /// The event the path names, if it names one.
    pub fn name(self) -> Option<&'a str> {
        match self {
            PathEvent::Any => None,
            PathEvent::Modelled(kind) => Some(kind.as_str()),
            PathEvent::Other(name) => Some(name),
        }
    }

    /// The path event of an archived delivery's endpoint (`import:…` and
    /// `/callbacks` are `Any`).
    pub fn of_endpoint(endpoint: &'a str) -> PathEvent<'a> {
        endpoint
            .strip_prefix("/callbacks/")
            .and_then(PathEvent::of_segment)
            .unwrap_or(PathEvent::Any)
    }
}

/// Decodes, verifies and classifies `raw`, which came to a path for
/// `expected`, reading display fields by `display`.
pub fn assess(
    policy: &VerifyPolicy,
    display: DisplayDecoding,
    expected: PathEvent<'_>,
    raw: RawCallback,
) -> Delivery {
    assess_with(Some(policy), display, expected, raw)
}

/// Like `assess`, without signature, timestamp or replay checks: for the
/// operator's own archived data (`import`, `rebuild`).
pub fn assess_unsigned(
    display: DisplayDecoding,
    expected: PathEvent<'_>,
    raw: RawCallback,
) -> Delivery {
    assess_with(None, display, expected, raw)
}

/// An archived delivery decoded again with today's rules and `display`
/// setting, as it was received (same body, path and receive time);
/// `rebuild` replays these.
pub fn reassess(archived: &DeliveryRecord, display: DisplayDecoding) -> Delivery {
    // The path is archived as it came; the live request was routed by its
    // percent-decoded segment (`/callbacks/room%5Fclose` is room_close).
    let endpoint = urlencoding::decode(&archived.endpoint)
        .unwrap_or(std::borrow::Cow::Borrowed(&archived.endpoint));
    let expected = PathEvent::of_endpoint(&endpoint);
    let raw = RawCallback {
        received_at: archived.received_at,
        remote_addr: archived.remote_addr.clone(),
        endpoint: archived.endpoint.clone(),
        content_type: archived.content_type.clone(),
        body: bytes::Bytes::copy_from_slice(&archived.body),
    };
    assess_unsigned(display, expected, raw)
}

fn assess_with(
    policy: Option<&VerifyPolicy>,
    display: DisplayDecoding,
    expected: PathEvent<'_>,
    raw: RawCallback,
) -> Delivery {
    let body_sha256 = hex::encode(Sha256::digest(&raw.body));
    let (summary, replay_key, verdict) = match body::decode(&raw.body) {
        Err(e) => (
            DeliverySummary::default(),
            None,
            Verdict::Rejected(Rejection::new(RejectCode::MalformedBody, e.to_string())),
        ),
        Ok((encoding, fields)) => {
            let summary = event::summarize(&fields);
            match policy
                .map(|p| verify(p, &fields, raw.received_at))
                .transpose()
            {
                Err(rejection) => (summary, None, Verdict::Rejected(rejection)),
                Ok(key) => (
                    summary,
                    key,
                    classify(expected, &fields, display.for_body(encoding)),
                ),
            }
        }
    };
    Delivery {
        received_at: raw.received_at,
        remote_addr: raw.remote_addr,
        endpoint: raw.endpoint,
        content_type: raw.content_type,
        body: raw.body,
        body_sha256,
        summary,
        replay_key,
        verdict,
    }
}

fn verify(
    policy: &VerifyPolicy,
    fields: &Fields,
    now: DateTime<Utc>,
) -> Result<ReplayKey, Rejection> {
    let signed = |name: &str| {
        signed_text(fields, name).ok_or_else(|| {
            Rejection::new(
                RejectCode::MissingSignature,
                format!(
                    "the field `{name}` is required to verify the signature, as a string or number without NUL characters"
                ),
            )
        })
    };
    let key = ReplayKey {
        // The hex verifies in either case (`signature::verify`); the guard
        // keys on one spelling, or each of its 2^40 case variants would be
        // a fresh triple for a replay with another body.
        signature: signed("signature")?.to_ascii_lowercase(),
        timestamp: signed("timestamp")?,
        nonce: signed("nonce")?,
    };
    for (name, value) in [("timestamp", &key.timestamp), ("nonce", &key.nonce)] {
        if value.len() > MAX_KEY_BYTES {
            return Err(Rejection::new(
                RejectCode::InvalidField,
                format!("the field `{name}` must be at most {MAX_KEY_BYTES} bytes"),
            ));
        }
    }
    let appid = event::appid(fields).ok();
    let secrets = policy.secrets.for_app(appid);
    if secrets.is_empty() {
        let who = appid.map_or_else(|| "this appid".to_owned(), |a| format!("appid {a}"));
        return Err(Rejection::new(
            RejectCode::InvalidSignature,
            format!("no callback secret is configured for {who}"),
        ));
    }
    let verified = secrets
        .iter()
        .any(|s| signature::verify(s.expose(), &key.timestamp, &key.nonce, &key.signature));
    if !verified {
        return Err(Rejection::new(
            RejectCode::InvalidSignature,
            "the signature does not match any configured callback secret",
        ));
    }
    if let Some(tolerance) = policy.timestamp_tolerance {
        check_freshness(&key.timestamp, now, tolerance)?;
    }
    Ok(key)
}

fn check_freshness(
    timestamp: &str,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), Rejection> {
    let stale = |message: String| Rejection::new(RejectCode::StaleTimestamp, message);
    let sent: i64 = timestamp
        .parse()
        .map_err(|_| stale(format!("`timestamp` {timestamp:?} is not Unix seconds")))?;
    let skew = now.timestamp().abs_diff(sent);
    if skew > tolerance.as_secs() {
        return Err(stale(format!(
            "`timestamp` {sent} is {skew} s from the server's clock; the tolerance is {} s",
            tolerance.as_secs()
        )));
    }
    Ok(())
}

fn classify(expected: PathEvent<'_>, fields: &Fields, display: DisplayDecoding) -> Verdict {
    let named = match event::event_name(fields) {
        Ok(named) => named,
        Err(e) => {
            return Verdict::Rejected(Rejection::new(RejectCode::InvalidField, e.to_string()));
        }
    };
    let mismatch = |path: &str, name: &str| {
        Verdict::Rejected(Rejection::new(
            RejectCode::EventMismatch,
            format!("this endpoint takes `{path}` callbacks, but the body's `event` is {name:?}"),
        ))
    };
    let kind = match (expected, named) {
        (PathEvent::Modelled(kind), None) => kind,
        (PathEvent::Modelled(kind), Some(name)) if name == kind.as_str() => kind,
        (PathEvent::Modelled(kind), Some(name)) => return mismatch(kind.as_str(), &name),
        (PathEvent::Other(path), None) => {
            return Verdict::Ignored {
                event: path.to_owned(),
            };
        }
        (PathEvent::Other(path), Some(name)) if name == path => {
            return Verdict::Ignored { event: name };
        }
        (PathEvent::Other(path), Some(name)) => return mismatch(path, &name),
        (PathEvent::Any, None) => {
            return Verdict::Rejected(Rejection::new(
                RejectCode::MissingField,
                "the field `event` is required where the path does not name the event (POST /callbacks, `import`)",
            ));
        }
        (PathEvent::Any, Some(name)) => match EventKind::parse(&name) {
            Some(kind) => kind,
            None => return Verdict::Ignored { event: name },
        },
    };
    if kind == EventKind::RoomCreate && event::is_zim_room_create(fields) {
        return Verdict::Ignored {
            event: kind.as_str().to_owned(),
        };
    }
    match event::parse_event(kind, fields, display) {
        Ok(event) => Verdict::Accepted(event),
        Err(e @ FieldError::Missing(_)) => {
            Verdict::Rejected(Rejection::new(RejectCode::MissingField, e.to_string()))
        }
        Err(e @ FieldError::Invalid { .. }) => {
            Verdict::Rejected(Rejection::new(RejectCode::InvalidField, e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_names_a_zego_event_or_nothing() {
        let long = "e".repeat(64);
        assert_eq!(
            PathEvent::of_segment("room_close"),
            Some(PathEvent::Modelled(EventKind::RoomClose))
        );
        for other in ["stream_close", "cdn_2", long.as_str()] {
            assert_eq!(PathEvent::of_segment(other), Some(PathEvent::Other(other)));
        }
        let too_long = "e".repeat(65);
        for nothing in ["", "Room_Close", "stream-close", "a b", too_long.as_str()] {
            assert_eq!(PathEvent::of_segment(nothing), None, "{nothing}");
        }
        assert_eq!(PathEvent::of_endpoint("/callbacks"), PathEvent::Any);
        assert_eq!(PathEvent::of_endpoint("import:a.json:1"), PathEvent::Any);
        assert_eq!(
            PathEvent::of_endpoint("/callbacks/stream_close"),
            PathEvent::Other("stream_close")
        );
    }
}
