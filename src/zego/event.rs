//! From decoded fields to a typed domain event: required fields, types, and
//! the content fingerprint that tells a retry from a conflicting resend.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::body::Fields;
use super::fields::{
    DisplayDecoding, FieldError, MAX_KEY_BYTES, display_field, i64_field, string_field, u64_field,
};
use crate::domain::delivery::DeliverySummary;
use crate::domain::{Event, EventDetail, EventKind, EventTime, RoomSessionId, UserRef};

/// Fields the signature covers or that change on every retry; everything else
/// is content.
const ENVELOPE_FIELDS: [&str; 3] = ["timestamp", "nonce", "signature"];

/// Integer fields whose text is canonicalised before fingerprinting, so
/// `1`, `"1"` and `"01"` are the same content.
const INTEGER_FIELDS: [&str; 13] = [
    "appid",
    "room_session_id",
    "room_seq",
    "room_create_time",
    "room_close_time",
    "login_time",
    "logout_time",
    "close_reason",
    "reason",
    "user_role",
    "auth_level",
    "relogin",
    "user_update_seq",
];

const DISPLAY_FIELDS: [&str; 2] = ["user_nickname", "room_name"];

/// The body's `event`, if present; an array, object, boolean or text
/// with NUL is an error, not "absent" (which would let any path take it).
pub fn event_name(fields: &Fields) -> Result<Option<String>, FieldError> {
    string_field(fields, "event")
}

/// Whether a `room_create` is ZIM's (In-app Chat), not the RTC room's we
/// model: ZIM sends the same `event` name with its own schema, an
/// `operator_account` and no `room_session_id`. An app using both products
/// may point both at one URL; ZIM's is signed like any other and is then
/// ignored (archived), not refused with a 400 that ZEGO retries.
pub fn is_zim_room_create(fields: &Fields) -> bool {
    fields.contains_key("operator_account") && !fields.contains_key("room_session_id")
}

/// Whatever identifying fields can be read, for the archive; never fails.
pub fn summarize(fields: &Fields) -> DeliverySummary {
    let session = u64_field(fields, "room_session_id")
        .ok()
        .flatten()
        .or_else(|| u64_field(fields, "room_seq").ok().flatten());
    DeliverySummary {
        event: event_name(fields).ok().flatten(),
        appid: appid(fields).ok(),
        room_id: string_field(fields, "room_id").ok().flatten(),
        room_session_id: session.map(|s| s.to_string()),
    }
}

/// Reads `appid` as ZEGO documents it: an unsigned 32-bit integer.
pub fn appid(fields: &Fields) -> Result<u32, FieldError> {
    let raw = u64_field(fields, "appid")?.ok_or(FieldError::Missing("appid"))?;
    u32::try_from(raw).map_err(|_| FieldError::Invalid {
        name: "appid",
        expected: "an unsigned 32-bit integer",
    })
}

/// Builds the typed event of `kind` from `fields`, checking every required
/// field and the type of every field we read. Unknown fields are not
/// rejected (they stay in the archived body and in the fingerprint).
///
/// `display` is how this body's display fields are read
/// (`DisplayDecoding::for_body`), for the event and its fingerprint alike:
/// two copies are one content exactly when what would be stored is the
/// same, so which of them arrives first never matters.
pub fn parse_event(
    kind: EventKind,
    fields: &Fields,
    display: DisplayDecoding,
) -> Result<Event, FieldError> {
    let appid = appid(fields)?;
    let room_id = required_text(fields, "room_id")?;
    let (session_field, detail) = match kind {
        EventKind::RoomCreate => (
            "room_session_id",
            EventDetail::RoomCreate {
                created_at: required_time(fields, "room_create_time")?,
                creator: string_field(fields, "id_name")?,
            },
        ),
        EventKind::RoomClose => (
            "room_session_id",
            EventDetail::RoomClose {
                closed_at: required_time(fields, "room_close_time")?,
                close_reason: i64_field(fields, "close_reason")?
                    .ok_or(FieldError::Missing("close_reason"))?,
            },
        ),
        EventKind::RoomLogin => (
            "room_seq",
            EventDetail::RoomLogin {
                user: user(fields, display)?,
                login_at: required_time(fields, "login_time")?,
                room_name: display_field(fields, "room_name", display)?,
            },
        ),
        EventKind::RoomLogout => (
            "room_seq",
            EventDetail::RoomLogout {
                user: user(fields, display)?,
                logout_at: required_time(fields, "logout_time")?,
                login_at: time(fields, "login_time")?,
                reason: i64_field(fields, "reason")?,
            },
        ),
    };
    let room_session_id =
        u64_field(fields, session_field)?.ok_or(FieldError::Missing(session_field))?;
    Ok(Event {
        appid,
        room_id,
        room_session_id: RoomSessionId(room_session_id),
        detail,
        content_sha256: content_sha256(kind, fields, display),
    })
}

fn user(fields: &Fields, display: DisplayDecoding) -> Result<UserRef, FieldError> {
    Ok(UserRef {
        user_account: required_text(fields, "user_account")?,
        session_id: required_text(fields, "session_id")?,
        user_nickname: display_field(fields, "user_nickname", display)?,
        user_role: i64_field(fields, "user_role")?,
    })
}

fn required_text(fields: &Fields, name: &'static str) -> Result<String, FieldError> {
    match string_field(fields, name)? {
        None => Err(FieldError::Missing(name)),
        Some(s) if s.is_empty() || s.len() > MAX_KEY_BYTES => Err(FieldError::Invalid {
            name,
            expected: "a non-empty string of at most 512 bytes",
        }),
        Some(s) => Ok(s),
    }
}

fn required_time(fields: &Fields, name: &'static str) -> Result<EventTime, FieldError> {
    time(fields, name)?.ok_or(FieldError::Missing(name))
}

fn time(fields: &Fields, name: &'static str) -> Result<Option<EventTime>, FieldError> {
    let invalid = FieldError::Invalid {
        name,
        expected: "Unix milliseconds between 1970 and 9999",
    };
    match u64_field(fields, name).map_err(|_| invalid.clone())? {
        None => Ok(None),
        Some(ms) => i64::try_from(ms)
            .ok()
            .and_then(EventTime::from_millis)
            .map(Some)
            .ok_or(invalid),
    }
}

/// SHA-256 over every field but the envelope, each normalised to text: so a
/// JSON retry of a FORM delivery (or `"1"` for `1`) is the same content.
/// Display fields are read by `display`, as they are stored: a copy they
/// would be stored differently from is another content (a conflict), not
/// a duplicate whose first arrival would decide what is kept.
pub fn content_sha256(kind: EventKind, fields: &Fields, display: DisplayDecoding) -> String {
    let mut normalised: BTreeMap<&str, String> = BTreeMap::new();
    normalised.insert("event", kind.as_str().to_owned());
    for (name, value) in fields {
        if ENVELOPE_FIELDS.contains(&name.as_str()) || name == "event" {
            continue;
        }
        let text = match value {
            Value::Null => continue,
            Value::String(s) if DISPLAY_FIELDS.contains(&name.as_str()) => {
                display.read(s).into_owned()
            }
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            nested => nested.to_string(),
        };
        let text = if INTEGER_FIELDS.contains(&name.as_str()) {
            if text.is_empty() {
                continue; // read as absent (`fields::u64_field`), so fingerprinted so
            }
            canonical_integer(&text).unwrap_or(text)
        } else {
            text
        };
        normalised.insert(name, text);
    }
    let bytes = serde_json::to_vec(&normalised).expect("a map of strings always serialises");
    hex::encode(Sha256::digest(bytes))
}

fn canonical_integer(text: &str) -> Option<String> {
    let (sign, digits) = text.strip_prefix('-').map_or(("", text), |d| ("-", d));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let trimmed = digits.trim_start_matches('0');
    Some(if trimmed.is_empty() {
        "0".to_owned()
    } else {
        format!("{sign}{trimmed}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zego::body::{BodyEncoding, decode};

    fn fixture(name: &str) -> Fields {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        decode(&std::fs::read(path).unwrap()).unwrap().1
    }

    /// `parse_event` of fields from a JSON body.
    fn parse_json(kind: EventKind, fields: &Fields) -> Result<Event, FieldError> {
        parse_event(kind, fields, DisplayDecoding::Percent)
    }

    #[test]
    fn key_fields_may_be_at_most_max_key_bytes() {
        for name in ["room_id", "user_account", "session_id"] {
            let with = |len: usize| {
                let mut fields = fixture("room_login_current.json");
                fields.insert(name.into(), Value::String("x".repeat(len)));
                parse_json(EventKind::RoomLogin, &fields)
            };
            assert!(with(MAX_KEY_BYTES).is_ok(), "{name}");
            let refused = with(MAX_KEY_BYTES + 1).unwrap_err().to_string();
            assert!(
                refused.contains(name) && refused.contains(&MAX_KEY_BYTES.to_string()),
                "{refused}"
            );
        }
    }

    #[test]
    fn every_fixture_parses_as_its_event() {
        for (file, kind) in [
            ("room_create.json", EventKind::RoomCreate),
            ("room_close.json", EventKind::RoomClose),
            ("room_close.form", EventKind::RoomClose),
            ("room_login.json", EventKind::RoomLogin),
            ("room_login_current.json", EventKind::RoomLogin),
            ("room_logout.json", EventKind::RoomLogout),
            ("room_logout.form", EventKind::RoomLogout),
            ("room_logout_current.json", EventKind::RoomLogout),
        ] {
            let encoding = decode(
                &std::fs::read(format!("{}/fixtures/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap(),
            )
            .unwrap()
            .0;
            let event = parse_event(
                kind,
                &fixture(file),
                DisplayDecoding::Percent.for_body(encoding),
            )
            .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(event.kind(), kind);
            assert_eq!(event.appid, 1);
        }
    }

    /// A form body's values had their URL decoding with the body: a sent
    /// `%41` stays `%41`. In a JSON body it is read as percent-encoded. The
    /// fingerprint reads them alike, so copies that read alike are one
    /// content and copies that do not are two.
    #[test]
    fn display_fields_are_url_decoded_once() {
        let base = "appid=1&room_id=r&room_seq=7&user_account=u&session_id=s&login_time=1";
        let (encoding, form) =
            decode(format!("{base}&user_nickname=50%2541+off").as_bytes()).unwrap();
        assert_eq!(encoding, BodyEncoding::Form);
        let from_form = parse_event(
            EventKind::RoomLogin,
            &form,
            DisplayDecoding::Percent.for_body(encoding),
        )
        .unwrap();
        let mut json = form.clone();
        json.insert("user_nickname".into(), Value::String("50%41 off".into()));
        let from_json = parse_json(EventKind::RoomLogin, &json).unwrap();
        let nickname = |e: &Event| match &e.detail {
            EventDetail::RoomLogin { user, .. } => user.user_nickname.clone(),
            _ => None,
        };
        assert_eq!(nickname(&from_form).as_deref(), Some("50%41 off"));
        assert_eq!(nickname(&from_json).as_deref(), Some("50A off"));
        // Stored differently, so not one content: whichever came first
        // would otherwise decide the name kept.
        assert_ne!(from_form.content_sha256, from_json.content_sha256);
        // A JSON copy that reads as the form does is one content with it.
        json.insert("user_nickname".into(), Value::String("50%2541 off".into()));
        let same = parse_json(EventKind::RoomLogin, &json).unwrap();
        assert_eq!(nickname(&same).as_deref(), Some("50%41 off"));
        assert_eq!(from_form.content_sha256, same.content_sha256);
    }

    /// DISPLAY_FIELD_DECODING=none keeps a JSON body's display fields as
    /// sent, and the fingerprint reads them so too: a copy that reads the
    /// same under one setting may not under the other.
    #[test]
    fn display_fields_can_be_kept_as_sent() {
        let mut fields = fixture("room_login_current.json");
        fields.insert("user_nickname".into(), Value::String("%E5%BC%A0+1".into()));
        fields.insert("room_name".into(), Value::String("100%25".into()));
        let as_sent = parse_event(EventKind::RoomLogin, &fields, DisplayDecoding::AsSent).unwrap();
        let decoded = parse_json(EventKind::RoomLogin, &fields).unwrap();
        let shown = |e: &Event| match &e.detail {
            EventDetail::RoomLogin {
                user, room_name, ..
            } => (user.user_nickname.clone(), room_name.clone()),
            _ => unreachable!("a login"),
        };
        assert_eq!(
            shown(&as_sent),
            (Some("%E5%BC%A0+1".into()), Some("100%25".into()))
        );
        assert_eq!(shown(&decoded), (Some("张+1".into()), Some("100%".into())));
        assert_ne!(as_sent.content_sha256, decoded.content_sha256);
        let mut plain = fields.clone();
        plain.insert("user_nickname".into(), Value::String("张+1".into()));
        plain.insert("room_name".into(), Value::String("100%".into()));
        let plain_decoded = parse_json(EventKind::RoomLogin, &plain).unwrap();
        assert_eq!(plain_decoded.content_sha256, decoded.content_sha256);
        let plain_as_sent =
            parse_event(EventKind::RoomLogin, &plain, DisplayDecoding::AsSent).unwrap();
        assert_ne!(plain_as_sent.content_sha256, as_sent.content_sha256);
    }

    #[test]
    fn json_and_form_of_one_callback_have_one_fingerprint() {
        let json = parse_json(EventKind::RoomClose, &fixture("room_close.json")).unwrap();
        let form = parse_event(
            EventKind::RoomClose,
            &fixture("room_close.form"),
            DisplayDecoding::Percent.for_body(BodyEncoding::Form),
        )
        .unwrap();
        assert_eq!(json, form);
    }

    #[test]
    fn the_envelope_is_not_content_but_every_other_field_is() {
        let mut f = fixture("room_close.json");
        let base = content_sha256(EventKind::RoomClose, &f, DisplayDecoding::Percent);
        f.insert("nonce".into(), "other".into());
        f.insert("timestamp".into(), 1.into());
        assert_eq!(
            content_sha256(EventKind::RoomClose, &f, DisplayDecoding::Percent),
            base
        );
        f.insert("close_reason".into(), "01".into());
        assert_eq!(
            content_sha256(EventKind::RoomClose, &f, DisplayDecoding::Percent),
            base
        );
        // A numeric field sent as "" is read as absent, and is no content.
        f.insert("relogin".into(), "".into());
        assert_eq!(
            content_sha256(EventKind::RoomClose, &f, DisplayDecoding::Percent),
            base
        );
        f.insert("extra".into(), "x".into());
        assert_ne!(
            content_sha256(EventKind::RoomClose, &f, DisplayDecoding::Percent),
            base
        );
    }

    #[test]
    fn missing_and_invalid_fields_are_named() {
        let mut f = fixture("room_close.json");
        f.remove("close_reason");
        assert_eq!(
            parse_json(EventKind::RoomClose, &f).unwrap_err(),
            FieldError::Missing("close_reason")
        );
        let mut f = fixture("room_login_current.json");
        f.insert("login_time".into(), "yesterday".into());
        assert!(matches!(
            parse_json(EventKind::RoomLogin, &f).unwrap_err(),
            FieldError::Invalid {
                name: "login_time",
                ..
            }
        ));
        let mut f = fixture("room_create.json");
        f.insert("appid".into(), 4_294_967_296u64.into());
        assert!(matches!(
            parse_json(EventKind::RoomCreate, &f).unwrap_err(),
            FieldError::Invalid { name: "appid", .. }
        ));
    }

    #[test]
    fn logouts_without_login_time_or_reason_are_accepted() {
        let mut f = fixture("room_logout_current.json");
        f.remove("login_time");
        f.remove("reason");
        let event = parse_json(EventKind::RoomLogout, &f).unwrap();
        assert!(matches!(
            event.detail,
            EventDetail::RoomLogout {
                login_at: None,
                reason: None,
                ..
            }
        ));
    }
}
