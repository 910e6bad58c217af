//! Lenient reading of ZEGO's fields. The same field is a JSON number in one
//! doc version and a string in another (`appid`, times, reasons, ids), so
//! every numeric field accepts both, leading zeros included, and never goes
//! through `f64` (which would corrupt 64-bit ids).

use std::borrow::Cow;

use serde_json::Value;

use super::body::{BodyEncoding, Fields};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("the field `{0}` is required")]
    Missing(&'static str),
    #[error("the field `{name}` must be {expected}")]
    Invalid {
        name: &'static str,
        expected: &'static str,
    },
}

/// A field that must be an unsigned integer (number or decimal string).
pub fn u64_field(fields: &Fields, name: &'static str) -> Result<Option<u64>, FieldError> {
    let invalid = FieldError::Invalid {
        name,
        expected: "an unsigned integer (a JSON number or a string of digits)",
    };
    match present_number(fields, name) {
        None => Ok(None),
        Some(value) => u64_value(value).map(Some).ok_or(invalid),
    }
}

/// An unsigned integer as ZEGO writes one: a JSON number or a string of
/// digits (no sign, no spaces). What the load generator reads an appid with,
/// so it picks the secret the server will check.
pub fn u64_value(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => parse_digits(s),
        _ => None,
    }
}

/// A field that must be a signed integer: reason and role codes, where an
/// unexpected value is kept rather than refused.
pub fn i64_field(fields: &Fields, name: &'static str) -> Result<Option<i64>, FieldError> {
    let invalid = FieldError::Invalid {
        name,
        expected: "an integer (a JSON number or a string of digits)",
    };
    match present_number(fields, name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(invalid),
        Some(Value::String(s)) => {
            let (negative, digits) = s
                .strip_prefix('-')
                .map_or((false, s.as_str()), |d| (true, d));
            // Signed before the range check: i64::MIN's magnitude is no i64.
            let magnitude = i128::from(parse_digits(digits).ok_or(invalid.clone())?);
            let value = if negative { -magnitude } else { magnitude };
            i64::try_from(value).map(Some).map_err(|_| invalid)
        }
        Some(_) => Err(invalid),
    }
}

/// A field that must be text. A JSON number is accepted and kept as its
/// decimal text (some senders send numeric ids as numbers).
pub fn string_field(fields: &Fields, name: &'static str) -> Result<Option<String>, FieldError> {
    match present(fields, name) {
        None => Ok(None),
        // NUL is refused: PostgreSQL text cannot hold it, and no ZEGO field has it.
        Some(Value::String(s)) if !s.contains('\0') => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(FieldError::Invalid {
            name,
            expected: "a string without NUL characters",
        }),
    }
}

/// How the display fields (`user_nickname`, `room_name`) of a JSON body
/// are read: the DISPLAY_FIELD_DECODING setting. ZEGO's "the data is JSON;
/// you must UrlDecode it" may mean its strings are percent-encoded, or may
/// be a leftover of the FORM variant; the docs do not say, so it is the
/// operator's choice (README, "Choices where the design was silent").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DisplayDecoding {
    /// Percent-encoded UTF-8 is decoded (`%E5%BC%A0` → `张`); `+` is left
    /// alone, and text that does not decode cleanly is kept as it came.
    #[default]
    Percent,
    /// Kept exactly as the JSON string holds it.
    #[value(name = "none")]
    AsSent,
}

impl DisplayDecoding {
    /// The rule for a body in `encoding`. Form fields and whole-body
    /// URL-encoded JSON had their one URL decoding with the body: decoding
    /// again would turn a sent `%41` into `A`, so they are kept as they are.
    pub fn for_body(self, encoding: BodyEncoding) -> DisplayDecoding {
        match encoding {
            BodyEncoding::Json => self,
            BodyEncoding::UrlEncodedJson | BodyEncoding::Form => DisplayDecoding::AsSent,
        }
    }

    /// A display field's text as this rule reads it (borrowed when that is
    /// the text as sent: most names hold no `%`).
    pub fn read(self, text: &str) -> Cow<'_, str> {
        match self {
            DisplayDecoding::Percent => decode_display(text),
            DisplayDecoding::AsSent => Cow::Borrowed(text),
        }
    }
}

/// A display field, read by `decoding` (the body's rule, `for_body`).
pub fn display_field(
    fields: &Fields,
    name: &'static str,
    decoding: DisplayDecoding,
) -> Result<Option<String>, FieldError> {
    let Some(text) = string_field(fields, name)? else {
        return Ok(None);
    };
    Ok(Some(match decoding.read(&text) {
        Cow::Owned(decoded) => decoded,
        Cow::Borrowed(_) => text,
    }))
}

/// Percent-decodes display text when that yields UTF-8 without NUL; any
/// other text is kept as it is.
pub fn decode_display(s: &str) -> Cow<'_, str> {
    match urlencoding::decode(s) {
        Ok(decoded) if !decoded.contains('\0') => decoded,
        _ => Cow::Borrowed(s),
    }
}

/// Text as it would be signed: a string as is, a number as its decimal text.
/// The most bytes a key field may have: `room_id`, `user_account`,
/// `session_id`, and the signed `timestamp` and `nonce`. ZEGO's own limits
/// are 127 bytes for a room id and 255 for user fields; PostgreSQL refuses
/// an index entry over 2,704 bytes, and an identity index holds two such
/// fields, so a longer one would fail there on every retry (a 500) while
/// SQLite stored it. Refused on both backends instead, as a 400.
pub const MAX_KEY_BYTES: usize = 512;

pub fn signed_text(fields: &Fields, name: &str) -> Option<String> {
    match fields.get(name)? {
        Value::String(s) if !s.contains('\0') => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `null` counts as absent: some senders serialise missing optionals that way.
fn present<'a>(fields: &'a Fields, name: &str) -> Option<&'a Value> {
    fields.get(name).filter(|v| !v.is_null())
}

/// A numeric field: `""` counts as absent too, as a form or a template
/// writes an unset value. An optional code (`user_role`, a logout's
/// `reason` or `login_time`) sent so is then read as missing instead of
/// refusing the whole event, which ZEGO would retry and then drop.
fn present_number<'a>(fields: &'a Fields, name: &str) -> Option<&'a Value> {
    present(fields, name).filter(|v| v.as_str() != Some(""))
}

fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Fields {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn numbers_come_as_numbers_or_digit_strings() {
        let f =
            fields(json!({"a": 18446744073709551615u64, "b": "18446744073709551615", "c": "007"}));
        assert_eq!(u64_field(&f, "a").unwrap(), Some(u64::MAX));
        assert_eq!(u64_field(&f, "b").unwrap(), Some(u64::MAX));
        assert_eq!(u64_field(&f, "c").unwrap(), Some(7));
        assert_eq!(u64_field(&f, "missing").unwrap(), None);
    }

    #[test]
    fn non_integers_are_invalid_not_rounded() {
        let f = fields(
            json!({"neg": -1, "float": 1.5, "big": "18446744073709551616",
                             "sign": "+1", "space": " 1", "bool": true, "empty": ""}),
        );
        for name in ["neg", "float", "big", "sign", "space", "bool"] {
            assert!(u64_field(&f, name).is_err(), "{name}");
        }
        // An empty string is no value: absent, not invalid.
        assert_eq!(u64_field(&f, "empty"), Ok(None));
        assert_eq!(i64_field(&f, "empty"), Ok(None));
        // A JSON number above u64::MAX parses as a float and is refused.
        let big: Fields = serde_json::from_str(r#"{"n": 99999999999999999999}"#).unwrap();
        assert!(u64_field(&big, "n").is_err());
    }

    #[test]
    fn codes_may_be_negative_or_strings() {
        let f = fields(json!({"a": "-3", "b": 4, "c": "x"}));
        assert_eq!(i64_field(&f, "a").unwrap(), Some(-3));
        assert_eq!(i64_field(&f, "b").unwrap(), Some(4));
        assert!(i64_field(&f, "c").is_err());
        // The whole i64 range, as text as well as a number.
        let edges = fields(json!({
            "min": "-9223372036854775808", "max": "9223372036854775807",
            "below": "-9223372036854775809", "above": "9223372036854775808",
            "min_n": i64::MIN,
        }));
        assert_eq!(i64_field(&edges, "min").unwrap(), Some(i64::MIN));
        assert_eq!(i64_field(&edges, "min_n").unwrap(), Some(i64::MIN));
        assert_eq!(i64_field(&edges, "max").unwrap(), Some(i64::MAX));
        assert!(i64_field(&edges, "below").is_err());
        assert!(i64_field(&edges, "above").is_err());
    }

    #[test]
    fn display_text_is_percent_decoded_but_plus_is_kept() {
        assert_eq!(decode_display("%E5%BC%A0%E4%B8%89"), "张三");
        assert_eq!(decode_display("a+b"), "a+b");
        assert_eq!(decode_display("100%"), "100%");
        assert_eq!(decode_display("%FF"), "%FF");
    }

    #[test]
    fn null_is_absent_and_objects_are_not_strings() {
        let f = fields(json!({"n": null, "o": {"x": 1}, "num": 12}));
        assert_eq!(string_field(&f, "n").unwrap(), None);
        assert!(string_field(&f, "o").is_err());
        assert_eq!(string_field(&f, "num").unwrap().as_deref(), Some("12"));
    }
}
