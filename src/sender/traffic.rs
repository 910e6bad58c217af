//! Callbacks to send: ZEGO's documented examples, or generated room
//! sessions (one create, N logins, N logouts, one close) in realistic time
//! order, optionally shuffled and with duplicates, as retries deliver them.

use rand::Rng;
use rand::seq::SliceRandom;
use serde_json::{Map, Value, json};

use super::Callback;
use crate::zego::body;

/// ZEGO's documentation examples (the `fixtures/` files), decoded.
pub fn fixtures() -> Vec<Callback> {
    let files = [
        include_str!("../../fixtures/room_create.json"),
        include_str!("../../fixtures/room_login.json"),
        include_str!("../../fixtures/room_login_current.json"),
        include_str!("../../fixtures/room_logout.json"),
        include_str!("../../fixtures/room_logout_current.json"),
        include_str!("../../fixtures/room_close.json"),
        include_str!("../../fixtures/room_close.form"),
        include_str!("../../fixtures/room_logout.form"),
    ];
    files
        .iter()
        .map(|text| parse_callback(text).expect("the fixtures are valid callbacks"))
        .collect()
}

/// A callback from a body in any of ZEGO's encodings; `event` is required.
pub fn parse_callback(text: &str) -> Result<Callback, String> {
    let (_, fields) = body::decode(text.as_bytes()).map_err(|e| e.to_string())?;
    let fields: Map<String, Value> = fields.into_iter().collect();
    let event = fields
        .get("event")
        .and_then(Value::as_str)
        .ok_or("the callback has no `event` field")?
        .to_owned();
    Ok(Callback { event, fields })
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Plan {
    pub appid: u32,
    /// Logins (and logouts) per session.
    pub users: usize,
    /// Shuffle each session's callbacks (out-of-order delivery).
    pub shuffle: bool,
    /// Fraction of callbacks sent a second time (0 to 1).
    pub duplicates: f64,
    /// Prefix of generated room ids, unique per run.
    pub run_id: String,
}

/// The callbacks of session number `n` of a run.
pub fn session(plan: &Plan, n: u64, rng: &mut impl Rng) -> Vec<Callback> {
    let room_id = format!("{}-room-{n}", plan.run_id);
    let room_session_id: u64 = rng.random();
    let start = chrono::Utc::now().timestamp_millis() - 3_600_000 + rng.random_range(0..600_000);
    let base = |event: &str| -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("event".into(), json!(event));
        m.insert("appid".into(), json!(plan.appid));
        m.insert("room_id".into(), json!(room_id));
        m
    };
    let mut out = Vec::with_capacity(plan.users * 2 + 2);
    let mut create = base("room_create");
    create.insert("room_session_id".into(), json!(room_session_id));
    create.insert("room_create_time".into(), json!(start.to_string()));
    create.insert("id_name".into(), json!("user-0"));
    out.push(Callback {
        event: "room_create".into(),
        fields: create,
    });
    let mut end = start;
    for u in 0..plan.users {
        let login_at = start + 10 + rng.random_range(0..60_000);
        let logout_at = login_at + rng.random_range(1_000..1_800_000);
        end = end.max(logout_at);
        let user = |event: &str| {
            let mut m = base(event);
            m.insert("room_seq".into(), json!(room_session_id.to_string()));
            m.insert("user_account".into(), json!(format!("user-{u}")));
            m.insert("session_id".into(), json!(format!("{n}-{u}")));
            m.insert("user_role".into(), json!(if u == 0 { "1" } else { "2" }));
            m
        };
        let mut login = user("room_login");
        login.insert("user_nickname".into(), json!(format!("User {u}")));
        login.insert("login_time".into(), json!(login_at.to_string()));
        out.push(Callback {
            event: "room_login".into(),
            fields: login,
        });
        let mut logout = user("room_logout");
        logout.insert("login_time".into(), json!(login_at.to_string()));
        logout.insert("logout_time".into(), json!(logout_at.to_string()));
        logout.insert("reason".into(), json!(rng.random_range(0..3).to_string()));
        out.push(Callback {
            event: "room_logout".into(),
            fields: logout,
        });
    }
    let mut close = base("room_close");
    close.insert("room_session_id".into(), json!(room_session_id));
    close.insert("room_close_time".into(), json!((end + 1_000).to_string()));
    close.insert("close_reason".into(), json!(rng.random_range(0..4)));
    out.push(Callback {
        event: "room_close".into(),
        fields: close,
    });

    if plan.shuffle {
        out.shuffle(rng);
    }
    let repeats: Vec<Callback> = out
        .iter()
        .filter(|_| rng.random_bool(plan.duplicates))
        .cloned()
        .collect();
    out.extend(repeats);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixtures_decode_with_their_events() {
        let events: Vec<String> = fixtures().into_iter().map(|c| c.event).collect();
        assert_eq!(events.iter().filter(|e| *e == "room_close").count(), 2);
        assert_eq!(events.len(), 8);
    }

    #[test]
    fn a_session_has_one_create_n_logins_n_logouts_one_close() {
        let plan = Plan {
            appid: 1,
            users: 3,
            shuffle: true,
            duplicates: 0.0,
            run_id: "t".into(),
        };
        let callbacks = session(&plan, 1, &mut rand::rng());
        let count = |e: &str| callbacks.iter().filter(|c| c.event == e).count();
        assert_eq!(
            (
                count("room_create"),
                count("room_login"),
                count("room_logout"),
                count("room_close")
            ),
            (1, 3, 3, 1)
        );
    }
}
