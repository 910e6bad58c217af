//! Turns a raw callback body into one flat map of fields, whichever of ZEGO's
//! encodings was used. The bytes decide, not the Content-Type header:
//! - a JSON object (`{...}`);
//! - the same JSON URL-encoded as a whole (`%7B%22event%22...`), decoded with
//!   form rules (`+` is a space);
//! - `application/x-www-form-urlencoded` fields (`event=room_close&appid=1...`),
//!   every value a string.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

/// Top-level fields of a callback. Nested JSON values are kept as they are
/// (their keys unique, as at the top).
pub type Fields = BTreeMap<String, Value>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEncoding {
    Json,
    UrlEncodedJson,
    Form,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the body is empty")]
    Empty,
    #[error("the body is not valid UTF-8")]
    NotUtf8,
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("the body must be a JSON object, not {0}")]
    NotAnObject(&'static str),
    #[error("the field `{0}` appears more than once")]
    DuplicateField(String),
    #[error("the body is neither JSON nor form fields: `{0}` has no `=`")]
    InvalidForm(String),
}

/// Decodes `raw`, reporting which encoding it was in.
pub fn decode(raw: &[u8]) -> Result<(BodyEncoding, Fields), DecodeError> {
    let text = std::str::from_utf8(raw).map_err(|_| DecodeError::NotUtf8)?;
    let text = text.trim_start_matches('\u{feff}').trim();
    if text.is_empty() {
        return Err(DecodeError::Empty);
    }
    if text.starts_with(['{', '[', '"']) || text.starts_with(|c: char| c.is_ascii_digit()) {
        return Ok((BodyEncoding::Json, decode_json(text)?));
    }
    // Bytes, not a str slice: the third byte may sit inside a multi-byte char.
    if text
        .as_bytes()
        .get(..3)
        .is_some_and(|start| start.eq_ignore_ascii_case(b"%7B"))
    {
        let json = form_decode(text)?;
        return Ok((BodyEncoding::UrlEncodedJson, decode_json(json.trim())?));
    }
    Ok((BodyEncoding::Form, decode_form(text)?))
}

fn decode_json(text: &str) -> Result<Fields, DecodeError> {
    let UniqueKeys(value) = serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => match DUPLICATE_MARKER.strip_prefix_of(&e) {
            Some(name) => DecodeError::DuplicateField(name),
            None => DecodeError::InvalidJson(e.to_string()),
        },
        _ => DecodeError::InvalidJson(e.to_string()),
    })?;
    match value {
        Value::Object(fields) => Ok(fields.into_iter().collect()),
        Value::Array(_) => Err(DecodeError::NotAnObject("an array")),
        Value::String(_) => Err(DecodeError::NotAnObject("a string")),
        Value::Number(_) => Err(DecodeError::NotAnObject("a number")),
        Value::Bool(_) => Err(DecodeError::NotAnObject("a boolean")),
        Value::Null => Err(DecodeError::NotAnObject("null")),
    }
}

fn decode_form(text: &str) -> Result<Fields, DecodeError> {
    let mut fields = Fields::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(DecodeError::InvalidForm(truncate(pair)));
        };
        let key = form_decode(key)?;
        let value = form_decode(value)?;
        if fields.insert(key.clone(), Value::String(value)).is_some() {
            return Err(DecodeError::DuplicateField(key));
        }
    }
    Ok(fields)
}

/// `application/x-www-form-urlencoded` decoding of one component: `+` is a
/// space, `%XX` a byte; the result must be UTF-8.
fn form_decode(component: &str) -> Result<String, DecodeError> {
    let spaced = component.replace('+', " ");
    String::from_utf8(urlencoding::decode_binary(spaced.as_bytes()).into_owned())
        .map_err(|_| DecodeError::NotUtf8)
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Error text our visitor raises for a repeated key; recognised again above so
/// the caller gets a typed error instead of a string.
struct DuplicateMarker;
const DUPLICATE_MARKER: DuplicateMarker = DuplicateMarker;

impl DuplicateMarker {
    const PREFIX: &'static str = "duplicate field in callback body: ";

    fn strip_prefix_of(&self, e: &serde_json::Error) -> Option<String> {
        let text = e.to_string();
        let rest = text.strip_prefix(Self::PREFIX)?;
        // serde_json appends " at line L column C".
        let name = rest.rsplit_once(" at line ").map_or(rest, |(n, _)| n);
        Some(name.to_owned())
    }
}

/// A JSON value whose objects have unique keys at every depth (a repeated
/// key would let two readers of one body see different values; a nested
/// unknown field is part of the fingerprint too).
struct UniqueKeys(Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueKeysVisitor)
    }
}

struct UniqueKeysVisitor;

impl<'de> Visitor<'de> for UniqueKeysVisitor {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueKeys, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let UniqueKeys(value) = map.next_value()?;
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "{}{key}",
                    DuplicateMarker::PREFIX
                )));
            }
            object.insert(key, value);
        }
        Ok(UniqueKeys(Value::Object(object)))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<UniqueKeys, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(UniqueKeys(Value::Array(items)))
    }

    fn visit_str<E>(self, s: &str) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(Value::String(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(Value::String(s)))
    }

    fn visit_u64<E>(self, n: u64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(Value::from(n)))
    }

    fn visit_i64<E>(self, n: i64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(Value::from(n)))
    }

    fn visit_f64<E>(self, n: f64) -> Result<UniqueKeys, E> {
        // As serde_json's own Value: a float it cannot hold is null.
        Ok(UniqueKeys(
            serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number),
        ))
    }

    fn visit_bool<E>(self, b: bool) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(Value::Bool(b)))
    }

    fn visit_unit<E>(self) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(Value::Null))
    }

    fn visit_none<E>(self) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys(Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = r#"{"event":"room_close","appid":1,"room_name":"a+b c","room_session_id":18446744073709551615}"#;

    #[test]
    fn json_object_keeps_u64_max_exact() {
        let (enc, fields) = decode(JSON.as_bytes()).unwrap();
        assert_eq!(enc, BodyEncoding::Json);
        assert_eq!(fields["room_session_id"].as_u64(), Some(u64::MAX));
        assert_eq!(fields["room_name"], "a+b c");
    }

    #[test]
    fn whole_body_url_encoded_json_uses_form_rules() {
        let encoded = urlencoding::encode(JSON).replace("%20", "+");
        let (enc, fields) = decode(encoded.as_bytes()).unwrap();
        assert_eq!(enc, BodyEncoding::UrlEncodedJson);
        assert_eq!(fields["room_name"], "a+b c");
        assert_eq!(fields["room_session_id"].as_u64(), Some(u64::MAX));
    }

    #[test]
    fn form_fields_are_decoded_strings() {
        let (enc, fields) =
            decode(b"event=room_login&room_name=room%23123&user_nickname=a+b").unwrap();
        assert_eq!(enc, BodyEncoding::Form);
        assert_eq!(fields["room_name"], "room#123");
        assert_eq!(fields["user_nickname"], "a b");
    }

    #[test]
    fn content_type_is_not_needed_and_whitespace_and_bom_are_tolerated() {
        let body = format!("\u{feff}\n  {JSON}\n");
        assert_eq!(decode(body.as_bytes()).unwrap().0, BodyEncoding::Json);
    }

    #[test]
    fn bad_bodies_get_typed_errors() {
        assert_eq!(decode(b"").unwrap_err(), DecodeError::Empty);
        assert_eq!(decode(b"  \n").unwrap_err(), DecodeError::Empty);
        assert_eq!(
            decode(&[0x7b, 0xff, 0x7d]).unwrap_err(),
            DecodeError::NotUtf8
        );
        assert!(matches!(
            decode(b"{\"a\":").unwrap_err(),
            DecodeError::InvalidJson(_)
        ));
        assert_eq!(
            decode(b"[1,2]").unwrap_err(),
            DecodeError::NotAnObject("an array")
        );
        assert_eq!(
            decode(b"42").unwrap_err(),
            DecodeError::NotAnObject("a number")
        );
        assert!(matches!(
            decode(b"hello").unwrap_err(),
            DecodeError::InvalidForm(_)
        ));
        assert_eq!(decode(b"a=%FF").unwrap_err(), DecodeError::NotUtf8);
    }

    #[test]
    fn repeated_keys_are_refused_in_every_encoding() {
        assert_eq!(
            decode(br#"{"appid":1,"appid":2}"#).unwrap_err(),
            DecodeError::DuplicateField("appid".into())
        );
        assert_eq!(
            decode(b"appid=1&appid=2").unwrap_err(),
            DecodeError::DuplicateField("appid".into())
        );
        // Nested too: an unknown field is archived and fingerprinted.
        assert_eq!(
            decode(br#"{"appid":1,"extra":[{"k":1,"k":2}]}"#).unwrap_err(),
            DecodeError::DuplicateField("k".into())
        );
        let (_, nested) = decode(br#"{"x":{"k":[1,-2,2.5,true,null,"s"],"j":{}}}"#).unwrap();
        assert_eq!(
            nested["x"],
            serde_json::json!({"k":[1,-2,2.5,true,null,"s"],"j":{}})
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            decode(deep.as_bytes()).unwrap_err(),
            DecodeError::InvalidJson(_)
        ));
    }
}
