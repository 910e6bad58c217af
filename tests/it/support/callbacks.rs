//! Builders for ZEGO callbacks (unsigned; `ingest_all` signs them) and a
//! fast way to load them through the real pipeline.

use serde_json::{Map, Value, json};
use zego_room_tracker::domain::EventKind;
use zego_room_tracker::store::Store;

use super::{ingest_direct, signed};

/// A base time for test events: 2023-11-14T22:13:20Z.
pub const T0: i64 = 1_700_000_000_000;

/// One callback body (unsigned) and its kind.
pub type Callback = (EventKind, Map<String, Value>);

fn callback(kind: EventKind, fields: Value) -> Callback {
    let Value::Object(mut map) = fields else {
        panic!("callback fields must be an object")
    };
    map.insert("event".into(), json!(kind.as_str()));
    map.insert("room_id".into(), json!("room-1"));
    (kind, map)
}

pub fn create(session: u64, at: i64) -> Callback {
    callback(
        EventKind::RoomCreate,
        json!({"room_session_id": session, "room_create_time": at.to_string(), "id_name": "u0"}),
    )
}

pub fn close(session: u64, at: i64, reason: i64) -> Callback {
    callback(
        EventKind::RoomClose,
        json!({"room_session_id": session, "room_close_time": at.to_string(), "close_reason": reason}),
    )
}

pub fn login(session: u64, user: &str, sid: &str, at: i64, role: i64) -> Callback {
    callback(
        EventKind::RoomLogin,
        json!({"room_seq": session.to_string(), "user_account": user, "user_nickname": format!("nick-{user}"),
               "session_id": sid, "login_time": at.to_string(), "user_role": role.to_string()}),
    )
}

pub fn logout(session: u64, user: &str, sid: &str, at: i64, login_at: Option<i64>) -> Callback {
    let mut fields = json!({"room_seq": session.to_string(), "user_account": user, "session_id": sid,
                            "logout_time": at.to_string(), "reason": "1"});
    if let Some(l) = login_at {
        fields["login_time"] = json!(l.to_string());
    }
    callback(EventKind::RoomLogout, fields)
}

pub async fn ingest_all(store: &dyn Store, appid: u32, callbacks: &[Callback]) {
    for (kind, fields) in callbacks {
        let mut fields = fields.clone();
        fields.insert("appid".into(), json!(appid));
        let outcome = ingest_direct(store, &signed(fields), *kind).await;
        assert!(
            matches!(outcome.as_str(), "stored" | "duplicate"),
            "{outcome:?} for {kind}"
        );
    }
}

/// The same callback in another room.
pub fn in_room((kind, mut fields): Callback, room_id: &str) -> Callback {
    fields.insert("room_id".into(), json!(room_id));
    (kind, fields)
}
