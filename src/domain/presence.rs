//! Presence intervals: which logins and logouts of one user login session
//! belong together.
//!
//! The pairing is a pure function of the *set* of events in a group (one
//! appid, room session, `user_account` and `session_id`), so stores recompute
//! a group from scratch whenever one of its events arrives and every arrival
//! order gives the same rows. Rules (docs/schema.md, `presence_intervals`):
//! 1. a logout that carries `login_time` pairs with the login of exactly that
//!    time; if that login is unknown the interval still starts at that time;
//! 2. a logout without `login_time` pairs with the latest unpaired login at or
//!    before it, logouts taken in time order; a login in its own millisecond
//!    only when no earlier one is unpaired (at equal times a logout counts
//!    before a login); with none its `login_at` is null;
//! 3. a login nobody paired is an open interval (`logout_at` null).

use super::event::EventTime;

/// A stored login, as far as pairing needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginFact {
    pub event_id: i64,
    pub login_at: EventTime,
    pub room_id: String,
    pub user_nickname: Option<String>,
    pub user_role: Option<i64>,
}

/// A stored logout, as far as pairing needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutFact {
    pub event_id: i64,
    pub logout_at: EventTime,
    pub login_at: Option<EventTime>,
    pub reason: Option<i64>,
    pub room_id: String,
    pub user_nickname: Option<String>,
    pub user_role: Option<i64>,
}

/// One stay of one user login session in a room session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceInterval {
    pub room_id: String,
    pub user_nickname: Option<String>,
    pub user_role: Option<i64>,
    pub login_at: Option<EventTime>,
    pub logout_at: Option<EventTime>,
    pub logout_reason: Option<i64>,
    /// `logout_at - login_at`; null while either end is unknown (or the
    /// sender's times run backwards).
    pub duration_ms: Option<i64>,
    pub login_event_id: Option<i64>,
    pub logout_event_id: Option<i64>,
}

/// Pairs one group's logins and logouts. Inputs may come in any order.
pub fn pair_group(
    mut logins: Vec<LoginFact>,
    mut logouts: Vec<LogoutFact>,
) -> Vec<PresenceInterval> {
    // Within a group, identity makes login times and logout times unique, so
    // sorting by time alone is a total order independent of arrival.
    logins.sort_by_key(|l| l.login_at);
    logouts.sort_by_key(|o| o.logout_at);
    let mut paired = vec![false; logins.len()];
    let mut intervals = Vec::with_capacity(logins.len().max(logouts.len()));
    let mut unmatched = Vec::new();

    for logout in &logouts {
        let Some(login_at) = logout.login_at else {
            unmatched.push(logout);
            continue;
        };
        let exact = logins
            .binary_search_by_key(&login_at, |l| l.login_at)
            .ok()
            .filter(|&i| !paired[i]);
        match exact {
            Some(i) => {
                paired[i] = true;
                intervals.push(closed(Some(&logins[i]), logout, Some(login_at)));
            }
            None => intervals.push(closed(None, logout, Some(login_at))),
        }
    }

    for logout in unmatched {
        // At equal times a logout counts before a login (docs/api.md): a login
        // in the logout's own millisecond is a stay that begins as an
        // earlier one ends, so an earlier open login is ended first. Only
        // without one does the logout end that login, a stay of no length.
        let open = |i: &usize| !paired[*i];
        let latest = (0..logins.len())
            .rev()
            .filter(open)
            .find(|&i| logins[i].login_at < logout.logout_at)
            .or_else(|| {
                (0..logins.len())
                    .filter(open)
                    .find(|&i| logins[i].login_at == logout.logout_at)
            });
        match latest {
            Some(i) => {
                paired[i] = true;
                intervals.push(closed(Some(&logins[i]), logout, Some(logins[i].login_at)));
            }
            None => intervals.push(closed(None, logout, None)),
        }
    }

    for (login, _) in logins.iter().zip(&paired).filter(|(_, p)| !**p) {
        intervals.push(PresenceInterval {
            room_id: login.room_id.clone(),
            user_nickname: login.user_nickname.clone(),
            user_role: login.user_role,
            login_at: Some(login.login_at),
            logout_at: None,
            logout_reason: None,
            duration_ms: None,
            login_event_id: Some(login.event_id),
            logout_event_id: None,
        });
    }
    intervals.sort_by_key(|i| (i.login_at, i.logout_at));
    intervals
}

/// ZEGO's admin role.
const ADMIN_ROLE: i64 = 4;

/// The login's role, else the logout's; but an admin at either end makes an
/// admin's stay, so that user counts leave out every user any of whose
/// events carry role 4 (DESIGN.md), the logout's included.
fn stay_role(login: Option<i64>, logout: Option<i64>) -> Option<i64> {
    if logout == Some(ADMIN_ROLE) {
        logout
    } else {
        login.or(logout)
    }
}

fn closed(
    login: Option<&LoginFact>,
    logout: &LogoutFact,
    login_at: Option<EventTime>,
) -> PresenceInterval {
    let duration_ms = login_at
        .map(|start| logout.logout_at.millis() - start.millis())
        .filter(|d| *d >= 0);
    PresenceInterval {
        room_id: login.map_or(&logout.room_id, |l| &l.room_id).clone(),
        user_nickname: login
            .and_then(|l| l.user_nickname.clone())
            .or_else(|| logout.user_nickname.clone()),
        user_role: stay_role(login.and_then(|l| l.user_role), logout.user_role),
        login_at,
        logout_at: Some(logout.logout_at),
        logout_reason: logout.reason,
        duration_ms,
        login_event_id: login.map(|l| l.event_id),
        logout_event_id: Some(logout.event_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(ms: i64) -> EventTime {
        EventTime::from_millis(ms).unwrap()
    }

    fn login(id: i64, at: i64) -> LoginFact {
        LoginFact {
            event_id: id,
            login_at: t(at),
            room_id: "r1".into(),
            user_nickname: Some("nick".into()),
            user_role: Some(2),
        }
    }

    fn logout(id: i64, at: i64, login_at: Option<i64>) -> LogoutFact {
        LogoutFact {
            event_id: id,
            logout_at: t(at),
            login_at: login_at.map(t),
            reason: Some(0),
            room_id: "r1".into(),
            user_nickname: None,
            user_role: None,
        }
    }

    fn spans(intervals: &[PresenceInterval]) -> Vec<(Option<i64>, Option<i64>)> {
        intervals
            .iter()
            .map(|i| {
                (
                    i.login_at.map(EventTime::millis),
                    i.logout_at.map(EventTime::millis),
                )
            })
            .collect()
    }

    #[test]
    fn a_logout_with_login_time_pairs_with_that_exact_login() {
        let out = pair_group(
            vec![login(1, 10), login(2, 30)],
            vec![logout(3, 40, Some(10))],
        );
        assert_eq!(spans(&out), vec![(Some(10), Some(40)), (Some(30), None)]);
        assert_eq!(out[0].duration_ms, Some(30));
        assert_eq!(out[0].user_nickname.as_deref(), Some("nick"));
    }

    #[test]
    fn a_logout_without_login_time_takes_the_latest_unpaired_login_before_it() {
        let out = pair_group(vec![login(1, 10), login(2, 30)], vec![logout(3, 40, None)]);
        assert_eq!(spans(&out), vec![(Some(10), None), (Some(30), Some(40))]);
    }

    #[test]
    fn a_logout_before_any_login_is_an_interval_with_unknown_start() {
        let out = pair_group(vec![login(1, 50)], vec![logout(2, 40, None)]);
        assert_eq!(spans(&out), vec![(None, Some(40)), (Some(50), None)]);
        assert_eq!(out[0].duration_ms, None);
    }

    #[test]
    fn a_logout_whose_login_never_arrived_still_knows_its_start() {
        let out = pair_group(vec![], vec![logout(2, 40, Some(25))]);
        assert_eq!(spans(&out), vec![(Some(25), Some(40))]);
        assert_eq!(out[0].duration_ms, Some(15));
        assert_eq!(out[0].login_event_id, None);
    }

    #[test]
    fn a_login_and_logout_at_the_same_millisecond_pair() {
        let out = pair_group(vec![login(1, 40)], vec![logout(2, 40, None)]);
        assert_eq!(spans(&out), vec![(Some(40), Some(40))]);
        assert_eq!(out[0].duration_ms, Some(0));
    }

    /// A re-login in the millisecond of a logout without `login_time`: the
    /// logout ends the earlier stay and the re-login stays open (it ended
    /// the re-login, a stay of no length, and left the first open).
    #[test]
    fn a_logout_ends_an_earlier_stay_before_a_login_of_its_millisecond() {
        let out = pair_group(
            vec![login(1, 20), login(2, 100)],
            vec![logout(3, 100, None)],
        );
        assert_eq!(spans(&out), vec![(Some(20), Some(100)), (Some(100), None)]);
        assert_eq!(out[0].duration_ms, Some(80));
        assert_eq!(out[0].login_event_id, Some(1));
    }

    /// The login's role names a stay, else the logout's; an admin (role 4)
    /// at either end makes it an admin's stay, which user counts leave out.
    #[test]
    fn an_admin_role_at_either_end_makes_an_admins_stay() {
        let with_role = |role| LogoutFact {
            user_role: role,
            ..logout(3, 40, Some(10))
        };
        let role_of = |login_role, logout_role| {
            let logins = vec![LoginFact {
                user_role: login_role,
                ..login(1, 10)
            }];
            pair_group(logins, vec![with_role(logout_role)])[0].user_role
        };
        assert_eq!(role_of(Some(2), Some(4)), Some(4));
        assert_eq!(role_of(Some(4), Some(2)), Some(4));
        assert_eq!(role_of(Some(2), Some(1)), Some(2));
        assert_eq!(role_of(None, Some(1)), Some(1));
        assert_eq!(role_of(Some(2), None), Some(2));
        let unknown_start = pair_group(vec![], vec![with_role(Some(4))]);
        assert_eq!(unknown_start[0].user_role, Some(4));
    }

    fn strip_ids(mut v: Vec<PresenceInterval>) -> Vec<PresenceInterval> {
        for i in &mut v {
            i.login_event_id = None;
            i.logout_event_id = None;
        }
        v
    }

    proptest! {
        /// Arrival order (and so event ids) never changes the intervals.
        #[test]
        fn pairing_ignores_input_order(
            login_times in proptest::collection::btree_set(0i64..100, 0..6),
            logout_specs in proptest::collection::btree_map(0i64..100, proptest::option::of(0i64..100), 0..6),
            seed in any::<u64>(),
        ) {
            let logins: Vec<_> = login_times.iter().enumerate().map(|(i, &at)| login(i as i64, at)).collect();
            let logouts: Vec<_> = logout_specs.iter().enumerate()
                .map(|(i, (&at, &la))| logout(100 + i as i64, at, la)).collect();
            let expected = strip_ids(pair_group(logins.clone(), logouts.clone()));

            let mut rng = seed;
            let mut shuffled_logins = logins;
            let mut shuffled_logouts = logouts;
            // Deterministic Fisher-Yates from the seed, re-numbering ids as a
            // different arrival order would.
            for i in (1..shuffled_logins.len()).rev() {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled_logins.swap(i, (rng >> 33) as usize % (i + 1));
            }
            for i in (1..shuffled_logouts.len()).rev() {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled_logouts.swap(i, (rng >> 33) as usize % (i + 1));
            }
            for (n, l) in shuffled_logins.iter_mut().enumerate() { l.event_id = 500 + n as i64; }
            for (n, o) in shuffled_logouts.iter_mut().enumerate() { o.event_id = 900 + n as i64; }
            let actual = strip_ids(pair_group(shuffled_logins, shuffled_logouts));
            prop_assert_eq!(actual, expected);
        }
    }
}
