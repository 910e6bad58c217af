//! How many distinct users were in a session at once.

use std::collections::HashMap;

/// One presence interval, in Unix milliseconds; an unknown end is `None`.
#[derive(Debug, Clone, Copy)]
pub struct Stay<'a> {
    pub user: &'a str,
    pub from_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

/// The largest number of distinct users present at one instant. An
/// interval without a login counts from `session_start_ms`; one without a
/// logout until `session_end_ms` (the close, or now). At equal times a
/// logout counts before a login, so back-to-back stays do not overlap, and
/// a stay of no length (a logout in the login's millisecond, a login after
/// the close) is no presence at all. A user with two overlapping stays (two
/// devices) counts once.
pub fn peak_concurrent_users(
    stays: &[Stay<'_>],
    session_start_ms: i64,
    session_end_ms: i64,
) -> i64 {
    // (time, 0 = leave / 1 = join, user): sorting puts leaves first at a tie.
    let mut edges: Vec<(i64, u8, &str)> = Vec::with_capacity(stays.len() * 2);
    for stay in stays {
        let from = stay.from_ms.unwrap_or(session_start_ms);
        let until = stay.until_ms.unwrap_or(session_end_ms.max(from));
        if until <= from {
            // Times running backwards, or no time at all: nobody to count.
            // (Its leave would also come before its own join.)
            continue;
        }
        edges.push((from, 1, stay.user));
        edges.push((until, 0, stay.user));
    }
    edges.sort_unstable();
    let mut open: HashMap<&str, u32> = HashMap::new();
    let (mut present, mut peak) = (0i64, 0i64);
    for (_, kind, user) in edges {
        let count = open.entry(user).or_default();
        if kind == 1 {
            *count += 1;
            if *count == 1 {
                present += 1;
                peak = peak.max(present);
            }
        } else {
            *count -= 1;
            if *count == 0 {
                present -= 1;
            }
        }
    }
    peak
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stay(user: &str, from: Option<i64>, until: Option<i64>) -> Stay<'_> {
        Stay {
            user,
            from_ms: from,
            until_ms: until,
        }
    }

    #[test]
    fn overlapping_users_add_up_and_back_to_back_do_not() {
        let stays = [
            stay("a", Some(0), Some(10)),
            stay("b", Some(5), Some(20)),
            stay("c", Some(10), Some(30)),
        ];
        assert_eq!(peak_concurrent_users(&stays, 0, 100), 2);
    }

    #[test]
    fn one_user_on_two_devices_counts_once() {
        let stays = [stay("a", Some(0), Some(10)), stay("a", Some(5), Some(20))];
        assert_eq!(peak_concurrent_users(&stays, 0, 100), 1);
    }

    #[test]
    fn open_ends_last_until_the_session_end_and_unknown_starts_from_its_start() {
        let stays = [
            stay("a", Some(65), None),
            stay("b", None, Some(60)),
            stay("c", Some(80), Some(90)),
        ];
        assert_eq!(peak_concurrent_users(&stays, 0, 100), 2); // a is still there at 80
        assert_eq!(peak_concurrent_users(&stays, 0, 70), 1); // a left with the close at 70
        assert_eq!(peak_concurrent_users(&stays, 61, 100), 2); // b would start after it left: skipped
    }

    #[test]
    fn a_stay_of_no_length_is_no_presence() {
        let stays = [
            stay("a", Some(50), Some(50)), // logged out in the login's millisecond
            stay("b", Some(120), None),    // logged in after the close at 100
            stay("c", Some(0), Some(10)),
            stay("c", Some(5), Some(5)), // c's second device, for no time
        ];
        assert_eq!(peak_concurrent_users(&stays, 0, 100), 1);
        assert_eq!(peak_concurrent_users(&stays[..2], 0, 100), 0);
    }

    #[test]
    fn nobody_means_zero() {
        assert_eq!(peak_concurrent_users(&[], 0, 100), 0);
    }
}
