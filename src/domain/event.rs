//! Typed room-lifecycle events, as the rest of the service sees them once the
//! wire format has been decoded and checked.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};

/// The four callbacks we model. Anything else a signed sender posts to
/// `POST /callbacks` or to `/callbacks/{event}` of its own name, and ZIM's
/// `room_create`, is archived as `ignored`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    RoomCreate,
    RoomClose,
    RoomLogin,
    RoomLogout,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [
        EventKind::RoomCreate,
        EventKind::RoomClose,
        EventKind::RoomLogin,
        EventKind::RoomLogout,
    ];

    /// ZEGO's `event` value, also the name stored in the `events.event` column.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RoomCreate => "room_create",
            EventKind::RoomClose => "room_close",
            EventKind::RoomLogin => "room_login",
            EventKind::RoomLogout => "room_logout",
        }
    }

    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One lifecycle of a room: ZEGO's `room_session_id` in create/close and
/// `room_seq` in login/logout. An unsigned 64-bit integer that may exceed
/// `i64::MAX`, so it is stored and shown as canonical decimal text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomSessionId(pub u64);

impl fmt::Display for RoomSessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Text that is not a room session id: not all decimal digits, or over u64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotARoomSessionId;

impl FromStr for RoomSessionId {
    type Err = NotARoomSessionId;

    /// Decimal digits only, leading zeros (`"01"`) accepted as ZEGO's
    /// string fields may carry them; no sign (u64's own parser takes `+1`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NotARoomSessionId);
        }
        s.parse::<u64>()
            .map(RoomSessionId)
            .map_err(|_| NotARoomSessionId)
    }
}

/// A ZEGO event time: Unix milliseconds on ZEGO's server clock. This, never
/// arrival order or the `timestamp` field, orders events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventTime(i64);

impl EventTime {
    /// The last millisecond of year 9999: beyond it neither SQLite's text
    /// times nor RFC 3339 output stay well-formed.
    pub const MAX_MS: i64 = 253_402_300_799_999;

    pub fn from_millis(ms: i64) -> Option<EventTime> {
        (0..=Self::MAX_MS).contains(&ms).then_some(EventTime(ms))
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn to_utc(self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.0)
            .single()
            .expect("EventTime is range-checked on construction")
    }

    pub fn from_utc(t: DateTime<Utc>) -> Option<EventTime> {
        EventTime::from_millis(t.timestamp_millis())
    }
}

/// Who a login or logout is about. `session_id` is the user's login session
/// (not the room session); old payloads send `"0"` for every login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRef {
    pub user_account: String,
    pub session_id: String,
    pub user_nickname: Option<String>,
    pub user_role: Option<i64>,
}

/// ZEGO's `user_role` for admin users (cloud recording, moderation bots),
/// left out of user counts unless asked for.
pub const ADMIN_ROLE: i64 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventDetail {
    RoomCreate {
        created_at: EventTime,
        /// `id_name`: the creator's `user_account`.
        creator: Option<String>,
    },
    RoomClose {
        closed_at: EventTime,
        close_reason: i64,
    },
    RoomLogin {
        user: UserRef,
        login_at: EventTime,
        room_name: Option<String>,
    },
    RoomLogout {
        user: UserRef,
        logout_at: EventTime,
        /// Current payloads say when the logged-out login began; old ones do not.
        login_at: Option<EventTime>,
        reason: Option<i64>,
    },
}

/// A decoded, validated callback. `content_sha256` fingerprints every
/// normalised field except `timestamp`, `nonce` and `signature`, so a retry
/// with a new nonce is a duplicate and a changed body under the same
/// identity is a conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub appid: u32,
    pub room_id: String,
    pub room_session_id: RoomSessionId,
    pub detail: EventDetail,
    pub content_sha256: String,
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self.detail {
            EventDetail::RoomCreate { .. } => EventKind::RoomCreate,
            EventDetail::RoomClose { .. } => EventKind::RoomClose,
            EventDetail::RoomLogin { .. } => EventKind::RoomLogin,
            EventDetail::RoomLogout { .. } => EventKind::RoomLogout,
        }
    }

    /// The time ZEGO says the event happened.
    pub fn event_at(&self) -> EventTime {
        match &self.detail {
            EventDetail::RoomCreate { created_at, .. } => *created_at,
            EventDetail::RoomClose { closed_at, .. } => *closed_at,
            EventDetail::RoomLogin { login_at, .. } => *login_at,
            EventDetail::RoomLogout { logout_at, .. } => *logout_at,
        }
    }

    pub fn user(&self) -> Option<&UserRef> {
        match &self.detail {
            EventDetail::RoomLogin { user, .. } | EventDetail::RoomLogout { user, .. } => {
                Some(user)
            }
            _ => None,
        }
    }

    /// The reason code: `close_reason` of a close, `reason` of a logout.
    pub fn reason(&self) -> Option<i64> {
        match &self.detail {
            EventDetail::RoomClose { close_reason, .. } => Some(*close_reason),
            EventDetail::RoomLogout { reason, .. } => *reason,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_session_ids_round_trip_the_whole_u64_range() {
        for text in ["0", "858012925204410400", "18446744073709551615"] {
            let id: RoomSessionId = text.parse().unwrap();
            assert_eq!(id.to_string(), text);
        }
        assert_eq!("007".parse::<RoomSessionId>().unwrap().to_string(), "7");
        assert!("18446744073709551616".parse::<RoomSessionId>().is_err());
        for not_digits in ["+1", "-0", "", " 1", "1 "] {
            assert!(
                not_digits.parse::<RoomSessionId>().is_err(),
                "{not_digits:?}"
            );
        }
    }

    #[test]
    fn event_times_outside_year_0_to_9999_are_refused() {
        assert!(EventTime::from_millis(-1).is_none());
        assert!(EventTime::from_millis(EventTime::MAX_MS + 1).is_none());
        let t = EventTime::from_millis(1_499_676_978_027).unwrap();
        assert_eq!(
            t.to_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "2017-07-10T08:56:18.027Z"
        );
    }

    #[test]
    fn event_kinds_parse_their_wire_names() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("stream_create"), None);
    }
}
