//! `seed`: fills a migrated database with synthetic but realistic history
//! for query benchmarks, through the bulk paths (PostgreSQL `COPY`, SQLite
//! multi-row inserts in big transactions), never through HTTP or ingest.
//!
//! The data is a pure function of [`Params`]: the same flags give the same
//! rows on both backends. Sessions are spread over 90 days from
//! 2026-09-01T00:00:00Z across three appids; ordinary rooms see about five
//! lifecycles each and a few hundred "hot" rooms hundreds; about 95% of
//! sessions are closed (reasons 0 normal 70%, 1 heartbeat 10%, 2 last user
//! disconnected 15%, 3 last user kicked 5%); 0.5% lost their create. One
//! session (the middle one) has `big_session_users` participants and is the
//! only one with rows in `events` (its timeline); every other session has
//! presence intervals but no events, so the tables the query API reads for
//! lists and statistics are full size while `events` stays small.

mod postgres;
mod sqlite;

use sha2::{Digest, Sha256};
use sqlx::{Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

pub use postgres::{check_postgres, seed_postgres};
pub use sqlite::{check_sqlite, seed_sqlite};

/// The three appids of the seeded history.
pub const APPIDS: [i64; 3] = [1_234_567_890, 2_345_678_901, 3_456_789_012];
/// 2026-09-01T00:00:00Z, the start of the seeded history.
pub const START_MS: i64 = days_from_civil(2026, 9, 1) * DAY_MS;
/// How long the seeded history lasts.
pub const SPAN_MS: i64 = 90 * DAY_MS;
const DAY_MS: i64 = 86_400_000;

/// What to seed.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub sessions: u64,
    /// Mean presence intervals per session (each session has this, one fewer or one more).
    pub users_per_session: u32,
    pub seed: u64,
    /// Participants of the one big session.
    pub big_session_users: u32,
}

/// What a database holds that tells which flags seeded it (`seed --check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeededCounts {
    pub sessions: i64,
    pub intervals: i64,
    /// Intervals of the big session these flags name (its appid and id):
    /// another `--seed` or `--sessions` gives another id, so none.
    pub big_session_intervals: i64,
    /// Rows of the close-reason rollup that differ from a recount.
    pub rollup_rows_differing: i64,
}

impl SeededCounts {
    /// Why the database is not what `plan` seeds, if it is not: each count
    /// against the flag that decides it.
    pub fn mismatch(&self, plan: &Plan) -> Option<String> {
        let p = &plan.params;
        let want = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        if self.rollup_rows_differing != 0 {
            return Some(format!(
                "close_reason_hourly differs from a recount of room_sessions in {} rows",
                self.rollup_rows_differing
            ));
        }
        if self.sessions != want(p.sessions) {
            return Some(format!(
                "the database holds {} sessions, not the {} of --sessions",
                self.sessions, p.sessions
            ));
        }
        if self.big_session_intervals != i64::from(p.big_session_users) {
            return Some(format!(
                "its big session has {} participants, not the {} of --big-session-users \
                 (none: another --seed seeded it)",
                self.big_session_intervals, p.big_session_users
            ));
        }
        let intervals = plan.expected_intervals();
        if self.intervals != want(intervals) {
            return Some(format!(
                "the database holds {} presence intervals, not the {intervals} of \
                 --users-per-session {}",
                self.intervals, p.users_per_session
            ));
        }
        None
    }
}

/// What the database on `conn` holds that tells which flags seeded it (the
/// same statements on both backends; `rollup_diff` is the backend's
/// recount). The big session is looked up by the appid and id `plan`
/// gives it.
async fn seeded_counts<DB>(
    conn: &mut DB::Connection,
    plan: &Plan,
    rollup_diff: &str,
) -> Result<SeededCounts, String>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB> + Decode<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
{
    let db = |e: sqlx::Error| format!("database error: {e}");
    let big = plan.session(plan.big, &mut Vec::new());
    let big_session_intervals = sqlx::query_scalar::<DB, i64>(
        "SELECT count(*) FROM presence_intervals WHERE appid = $1 AND room_session_id = $2",
    )
    .bind(big.appid)
    .bind(big.room_session_id)
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    let mut count = async |sql: &str| {
        sqlx::query_scalar::<DB, i64>(sql)
            .fetch_one(&mut *conn)
            .await
            .map_err(db)
    };
    Ok(SeededCounts {
        sessions: count("SELECT count(*) FROM room_sessions").await?,
        intervals: count("SELECT count(*) FROM presence_intervals").await?,
        big_session_intervals,
        rollup_rows_differing: count(rollup_diff).await?,
    })
}

/// Counts and timings of a seed run.
#[derive(Debug, Default, Clone)]
pub struct SeedReport {
    pub sessions: u64,
    pub intervals: u64,
    pub events: u64,
    pub rollup_rows: u64,
    /// (step, seconds), in order.
    pub steps: Vec<(String, f64)>,
}

impl SeedReport {
    /// Records that step `name` ended now (it began when the previous one
    /// ended, or at `started`), and prints its time.
    pub fn lap(&mut self, started: &mut std::time::Instant, name: &str) {
        let secs = started.elapsed().as_secs_f64();
        eprintln!("  {name}: {secs:.1} s");
        self.steps.push((name.to_owned(), secs));
        *started = std::time::Instant::now();
    }
}

/// The derived shape of the history: which rooms exist, where the big session is.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub params: Params,
    /// Ordinary rooms (`room-0` ..), about five lifecycles each.
    pub rooms: u64,
    /// Hot rooms (`hot-0` ..): one session in ten, hundreds of lifecycles each.
    pub hot_rooms: u64,
    /// The index of the big session.
    pub big: u64,
    users: u64,
}

/// One `room_sessions` row; times in Unix milliseconds.
#[derive(Debug, Clone)]
pub struct Session {
    pub appid: i64,
    pub room_session_id: String,
    pub room_id: String,
    pub created_at: Option<i64>,
    pub creator: Option<String>,
    pub closed_at: Option<i64>,
    pub close_reason: Option<i64>,
    pub first_event_at: i64,
    pub started_at: i64,
}

/// One `presence_intervals` row (its id is given by the loader).
#[derive(Debug, Clone)]
pub struct Interval {
    pub user_account: String,
    pub session_id: String,
    pub user_nickname: Option<String>,
    pub user_role: Option<i64>,
    pub login_at: Option<i64>,
    pub logout_at: Option<i64>,
    pub logout_reason: Option<i64>,
    pub duration_ms: Option<i64>,
    pub login_event_id: Option<i64>,
    pub logout_event_id: Option<i64>,
}

/// One `events` row (the big session's timeline).
#[derive(Debug, Clone)]
pub struct Event {
    pub id: i64,
    pub event: &'static str,
    pub event_at: i64,
    pub received_at: i64,
    pub user_account: Option<String>,
    pub session_id: Option<String>,
    pub user_nickname: Option<String>,
    pub user_role: Option<i64>,
    pub login_at: Option<i64>,
    pub reason: Option<i64>,
    pub creator: Option<String>,
    pub room_name: Option<String>,
    pub content_sha256: String,
}

/// splitmix64's finaliser: a bijection on u64, so distinct inputs give distinct ids.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn below(h: u64, n: u64) -> i64 {
    i64::try_from(h % n.max(1)).unwrap_or(0)
}

impl Plan {
    pub fn new(params: Params) -> Plan {
        let sessions = params.sessions.max(1);
        let rooms = (sessions * 9 / 10 / 5).max(1);
        Plan {
            params,
            rooms,
            hot_rooms: (rooms / 1000).max(2),
            big: sessions / 2,
            users: (sessions * u64::from(params.users_per_session.max(1)) / 20).max(1000),
        }
    }

    fn hash(&self, i: u64, purpose: u64) -> u64 {
        mix(mix(i ^ self.params.seed.wrapping_mul(0xD6E8_FEB8_6659_FD93)) ^ purpose)
    }

    /// The room session id of session `i`: unique per `i`, spread over u64.
    pub fn room_session_id(&self, i: u64) -> String {
        mix(i ^ self.params.seed.wrapping_shl(40)).to_string()
    }

    fn appid_of_room(&self, room: &str) -> i64 {
        let h = room
            .bytes()
            .fold(self.params.seed, |h, b| mix(h ^ u64::from(b)));
        match h % 10 {
            0..=5 => APPIDS[0],
            6..=8 => APPIDS[1],
            _ => APPIDS[2],
        }
    }

    /// The room of session `i`.
    pub fn room_of(&self, i: u64) -> String {
        if i != self.big && self.hash(i, 1).is_multiple_of(10) {
            format!("hot-{}", self.hash(i, 2) % self.hot_rooms)
        } else {
            format!("room-{}", i % self.rooms)
        }
    }

    /// How many presence intervals session `i` has.
    fn participants(&self, i: u64, has_create: bool) -> u32 {
        let users = if i == self.big {
            self.params.big_session_users
        } else {
            let u = self.params.users_per_session;
            (u + (((i / 7) % 3) as u32)).saturating_sub(1)
        };
        // A session whose create was lost is known from a login.
        if has_create { users } else { users.max(1) }
    }

    /// The presence intervals these params seed in all, counted without
    /// building them (a hash per session).
    pub fn expected_intervals(&self) -> u64 {
        (0..self.params.sessions.max(1))
            .map(|i| {
                let has_create = i == self.big || !self.hash(i, 7).is_multiple_of(200);
                u64::from(self.participants(i, has_create))
            })
            .sum()
    }

    /// Session `i` and its presence intervals (appended to `out`, which is cleared).
    pub fn session(&self, i: u64, out: &mut Vec<Interval>) -> Session {
        out.clear();
        let n = self.params.sessions.max(1);
        let room_id = self.room_of(i);
        let appid = self.appid_of_room(&room_id);
        let slot = SPAN_MS / i64::try_from(n).unwrap_or(i64::MAX).max(1);
        let start = START_MS
            + i64::try_from(u128::from(i) * SPAN_MS.unsigned_abs() as u128 / u128::from(n))
                .unwrap_or(0)
            + below(self.hash(i, 3), slot.unsigned_abs());
        let big = i == self.big;
        // Mostly short sessions, some up to three hours.
        let a = below(self.hash(i, 4), 1000);
        let duration = if big {
            3 * 3_600_000
        } else {
            60_000 + a * a * 10 + below(self.hash(i, 5), 1000)
        };
        let closed = big || self.hash(i, 6) % 100 < 95;
        let has_create = big || !self.hash(i, 7).is_multiple_of(200);
        let close_reason = closed.then(|| match self.hash(i, 8) % 100 {
            _ if big => 0,
            0..=69 => 0,
            70..=79 => 1,
            80..=94 => 2,
            _ => 3,
        });
        let users = self.participants(i, has_create);
        let room_session_id = self.room_session_id(i);
        let mut event_id = 1;
        let mut previous: Option<(String, i64)> = None;
        for j in 0..u64::from(users) {
            let h = self.hash(i, 1000 + j);
            let reconnect = j > 0 && !big && h.is_multiple_of(20);
            let (user_account, earliest) = match (&previous, reconnect) {
                (Some((user, logout)), true) => (user.clone(), *logout),
                _ if big => (format!("viewer-{j}"), start),
                _ => (format!("user-{}", mix(h) % self.users), start),
            };
            let role = if j == 0 {
                1
            } else if (h >> 8).is_multiple_of(50) || (big && j % 50 == 49) {
                4
            } else {
                2
            };
            let span = (start + duration - earliest).max(1);
            let login = if j == 0 {
                start + below(h >> 12, 2000)
            } else {
                earliest + below(h >> 12, (span / 2).unsigned_abs())
            };
            let stay = below(h >> 20, ((start + duration - login).max(1)).unsigned_abs());
            let open = !closed && (h >> 40) % 10 < 3;
            let logout = (!open).then_some(login + stay);
            let logout_reason = logout.map(|_| match (h >> 48) % 100 {
                0..=79 => 0,
                80..=87 => 1,
                88..=95 => 2,
                96..=97 => 3,
                _ => 4,
            });
            let nickname = match (h >> 32) % 10 {
                0 => None,
                1 => Some(format!("用户{}", h % 100_000)),
                _ => Some(format!("{user_account} nick")),
            };
            let (login_event_id, logout_event_id) = if big {
                (Some(event_id + 1), Some(event_id + 2))
            } else {
                (None, None)
            };
            event_id += 2;
            out.push(Interval {
                session_id: format!("ls-{:016x}", mix(h)),
                user_nickname: nickname,
                user_role: Some(role),
                login_at: Some(login),
                logout_at: logout,
                logout_reason,
                duration_ms: logout.map(|l| l - login),
                login_event_id,
                logout_event_id,
                user_account: user_account.clone(),
            });
            previous = Some((user_account, logout.unwrap_or(login)));
        }
        let first_login = out.iter().filter_map(|p| p.login_at).min();
        let created_at = has_create.then_some(start);
        let closed_at = closed.then_some(start + duration);
        let first_event_at = [created_at, first_login, closed_at]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(start);
        Session {
            appid,
            room_session_id,
            creator: has_create.then(|| {
                out.first()
                    .map_or_else(|| "host".to_owned(), |p| p.user_account.clone())
            }),
            room_id,
            created_at,
            closed_at,
            close_reason,
            first_event_at,
            started_at: created_at.unwrap_or(first_event_at),
        }
    }

    /// The big session's events: create, one login and one logout per
    /// interval (ids as its intervals name them), close.
    pub fn big_session_events(&self, s: &Session, intervals: &[Interval]) -> Vec<Event> {
        let received = |id: i64, at: i64| {
            at + 80 + below(self.hash(self.big, 9_000_000 + id.unsigned_abs()), 400)
        };
        let sha = |text: String| hex::encode(Sha256::digest(text.as_bytes()));
        let mut events = Vec::with_capacity(intervals.len() * 2 + 2);
        let created = s.created_at.unwrap_or(s.started_at);
        events.push(Event {
            id: 1,
            event: "room_create",
            event_at: created,
            received_at: received(1, created),
            user_account: None,
            session_id: None,
            user_nickname: None,
            user_role: None,
            login_at: None,
            reason: None,
            creator: s.creator.clone(),
            room_name: None,
            content_sha256: sha(format!("room_create|{}|{}", s.appid, s.room_session_id)),
        });
        for p in intervals {
            let (Some(login_id), Some(login)) = (p.login_event_id, p.login_at) else {
                continue;
            };
            events.push(Event {
                id: login_id,
                event: "room_login",
                event_at: login,
                received_at: received(login_id, login),
                user_account: Some(p.user_account.clone()),
                session_id: Some(p.session_id.clone()),
                user_nickname: p.user_nickname.clone(),
                user_role: p.user_role,
                login_at: None,
                reason: None,
                creator: None,
                room_name: Some(format!("Room {}", s.room_id)),
                content_sha256: sha(format!("room_login|{}|{}", p.session_id, login)),
            });
            if let (Some(logout_id), Some(logout)) = (p.logout_event_id, p.logout_at) {
                events.push(Event {
                    id: logout_id,
                    event: "room_logout",
                    event_at: logout,
                    received_at: received(logout_id, logout),
                    user_account: Some(p.user_account.clone()),
                    session_id: Some(p.session_id.clone()),
                    user_nickname: None,
                    user_role: None,
                    login_at: Some(login),
                    reason: p.logout_reason,
                    creator: None,
                    room_name: None,
                    content_sha256: sha(format!("room_logout|{}|{}", p.session_id, logout)),
                });
            }
        }
        if let Some(closed) = s.closed_at {
            let id = i64::try_from(intervals.len()).unwrap_or(0) * 2 + 2;
            events.push(Event {
                id,
                event: "room_close",
                event_at: closed,
                received_at: received(id, closed),
                user_account: None,
                session_id: None,
                user_nickname: None,
                user_role: None,
                login_at: None,
                reason: s.close_reason,
                creator: None,
                room_name: None,
                content_sha256: sha(format!("room_close|{}|{}", s.appid, s.room_session_id)),
            });
        }
        events
    }

    /// Ids the benchmark uses, one `key=value` per line.
    pub fn describe(&self) -> String {
        let mut scratch = Vec::new();
        let big = self.session(self.big, &mut scratch);
        format!(
            "big_session_appid={}\nbig_session_id={}\nbig_session_room={}\nbig_session_participants={}\n\
             hot_room=hot-1\nordinary_room=room-{}\nhistory_start={}\nhistory_end={}",
            big.appid,
            big.room_session_id,
            big.room_id,
            scratch.len(),
            self.rooms / 3,
            format_time(START_MS, TimeStyle::Sqlite),
            format_time(START_MS + SPAN_MS, TimeStyle::Sqlite),
        )
    }
}

/// How a backend spells a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeStyle {
    /// PostgreSQL COPY text: `2026-09-01 00:00:00.123+00`.
    Postgres,
    /// What sqlx writes to SQLite: `2026-09-01T00:00:00.123+00:00`, whole
    /// seconds without a fraction.
    Sqlite,
}

const fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn push_digits(out: &mut Vec<u8>, value: i64, width: u32) {
    for k in (0..width).rev() {
        let digit = (value / 10_i64.pow(k)) % 10;
        out.push(b'0' + u8::try_from(digit).unwrap_or(0));
    }
}

/// Appends the time `ms` (Unix milliseconds, after 1970) in `style`.
pub fn push_time(out: &mut Vec<u8>, ms: i64, style: TimeStyle) {
    let (days, in_day) = (ms.div_euclid(DAY_MS), ms.rem_euclid(DAY_MS));
    let (y, m, d) = civil_from_days(days);
    push_digits(out, y, 4);
    out.push(b'-');
    push_digits(out, m, 2);
    out.push(b'-');
    push_digits(out, d, 2);
    out.push(if style == TimeStyle::Postgres {
        b' '
    } else {
        b'T'
    });
    push_digits(out, in_day / 3_600_000, 2);
    out.push(b':');
    push_digits(out, in_day / 60_000 % 60, 2);
    out.push(b':');
    push_digits(out, in_day / 1000 % 60, 2);
    let frac = in_day % 1000;
    if style == TimeStyle::Postgres || frac != 0 {
        out.push(b'.');
        push_digits(out, frac, 3);
    }
    out.extend_from_slice(if style == TimeStyle::Postgres {
        b"+00"
    } else {
        b"+00:00"
    });
}

/// The time `ms` in `style`, as a string.
pub fn format_time(ms: i64, style: TimeStyle) -> String {
    let mut out = Vec::with_capacity(32);
    push_time(&mut out, ms, style);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{SecondsFormat, TimeZone, Utc};

    #[test]
    fn times_are_spelled_as_the_backends_spell_them() {
        for ms in [
            0,
            1_499_676_989_909,
            START_MS,
            START_MS + 1000,
            4_102_444_799_999,
            951_782_400_000,
        ] {
            let t = Utc.timestamp_millis_opt(ms).unwrap();
            assert_eq!(
                format_time(ms, TimeStyle::Sqlite),
                t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
            );
            assert_eq!(
                format_time(ms, TimeStyle::Postgres),
                t.format("%Y-%m-%d %H:%M:%S%.3f+00").to_string()
            );
        }
        assert_eq!(
            format_time(START_MS, TimeStyle::Sqlite),
            "2026-09-01T00:00:00+00:00"
        );
    }

    #[test]
    fn the_history_is_deterministic_and_ids_are_unique() {
        let plan = Plan::new(Params {
            sessions: 20_000,
            users_per_session: 5,
            seed: 1,
            big_session_users: 1000,
        });
        let mut ids = std::collections::HashSet::new();
        let (mut closed, mut intervals, mut scratch) = (0, 0, Vec::new());
        for i in 0..20_000 {
            let s = plan.session(i, &mut scratch);
            assert!(ids.insert(s.room_session_id.clone()));
            closed += u64::from(s.closed_at.is_some());
            intervals += scratch.len();
            assert!(s.started_at <= s.first_event_at.max(s.started_at));
            for p in &scratch {
                if let (Some(login), Some(logout), Some(close)) =
                    (p.login_at, p.logout_at, s.closed_at)
                {
                    assert!(login <= logout && logout <= close, "{s:?} {p:?}");
                }
            }
        }
        assert!((18_700..19_300).contains(&closed), "{closed}");
        assert!((99_000..102_000).contains(&intervals), "{intervals}");
        let big = plan.session(plan.big, &mut scratch);
        assert_eq!(scratch.len(), 1000);
        assert_eq!(plan.big_session_events(&big, &scratch).len(), 2002);
        let again = plan.session(plan.big, &mut Vec::new());
        assert_eq!(again.room_session_id, big.room_session_id);
    }
}
