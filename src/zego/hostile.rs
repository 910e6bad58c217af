//! Hostile input: whatever bytes arrive, decoding and event parsing end in a
//! value or a typed error, never a panic. Run by `cargo test` with a fixed
//! case budget (PROPTEST_CASES raises it).

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use crate::domain::EventKind;
    use crate::zego::fields::DisplayDecoding;
    use crate::zego::{body, event};

    fn field_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            "[0-9]{0,25}".prop_map(Value::from),
            ".{0,40}".prop_map(Value::from),
            "%[0-9A-Fa-f]{2}.{0,5}".prop_map(Value::from),
            Just(json!(null)),
            Just(json!(true)),
            Just(json!({"nested": [1, {"x": "y"}]})),
            Just(json!("18446744073709551616")),
            Just(json!("-9223372036854775809")),
            Just(json!("a\u{0}b")),
        ]
    }

    fn callback_fields() -> impl Strategy<Value = Map<String, Value>> {
        let names = prop::sample::select(vec![
            "event",
            "appid",
            "room_id",
            "room_session_id",
            "room_seq",
            "room_create_time",
            "room_close_time",
            "close_reason",
            "login_time",
            "logout_time",
            "user_account",
            "session_id",
            "user_nickname",
            "room_name",
            "reason",
            "user_role",
            "timestamp",
            "nonce",
            "signature",
            "id_name",
            "other",
        ]);
        prop::collection::btree_map(names, field_value(), 0..18)
            .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_decode_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = body::decode(&bytes);
        }

        #[test]
        fn arbitrary_text_decodes_or_fails_cleanly(text in ".{0,300}") {
            let _ = body::decode(text.as_bytes());
            let _ = body::decode(format!("{{{text}}}").as_bytes());
            let _ = body::decode(format!("%7B{text}").as_bytes());
        }

        #[test]
        fn arbitrary_fields_parse_or_name_the_bad_field(fields in callback_fields()) {
            for encoding in 0..3 {
                let json = Value::Object(fields.clone()).to_string();
                let bytes = match encoding {
                    0 => json.into_bytes(),
                    1 => urlencoding::encode(&json).replace("%20", "+").into_bytes(),
                    _ => fields.iter().map(|(k, v)| format!("{k}={}", urlencoding::encode(&v.to_string())))
                        .collect::<Vec<_>>().join("&").into_bytes(),
                };
                if let Ok((encoding, decoded)) = body::decode(&bytes) {
                    let _ = event::summarize(&decoded);
                    for (kind, setting) in EventKind::ALL.into_iter().flat_map(|k| {
                        [DisplayDecoding::Percent, DisplayDecoding::AsSent].map(|d| (k, d))
                    }) {
                        if let Ok(e) = event::parse_event(kind, &decoded, setting.for_body(encoding)) {
                            // Whatever parsed is in range and free of NUL.
                            prop_assert!(!e.room_id.contains('\0'));
                            prop_assert!(e.event_at().millis() >= 0);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn deep_nesting_and_huge_numbers_are_errors_or_values() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(body::decode(format!("{{\"a\":{deep}}}").as_bytes()).is_err());
        // Beyond f64: a decode error. Beyond u64 but within f64: an invalid field.
        let beyond_f64 = format!("{{\"appid\": 1{}}}", "0".repeat(400));
        assert!(body::decode(beyond_f64.as_bytes()).is_err());
        let beyond_u64 = format!("{{\"appid\": 1{}}}", "0".repeat(30));
        let (_, fields) = body::decode(beyond_u64.as_bytes()).unwrap();
        assert!(event::appid(&fields).is_err());
    }
}
