//! The advisory locks a PostgreSQL write transaction takes before anything
//! else, in the round trip of its BEGIN (`store::postgres`), and the key
//! `purge --sessions` locks a session by. SQLite has one writer at a time
//! and needs none of them.
//!
//! **Presence groups** (exclusive): a user session's logins and logouts in
//! one room session are recomputed together, so two transactions that
//! write one group (replicas, `GROUP_COMMIT_WORKERS` > 1) take turns. The
//! lock is taken before the batch's first statement, so its recomputation
//! sees every event of the group a concurrent writer committed.
//!
//! **Sessions** (shared by ingest, exclusive by a purge): a login or logout
//! that does not move its session row does not lock it (so a busy room's
//! callbacks do not queue on one row). Without more, a purge could delete
//! such a session while a late callback of it was being stored: the
//! callback's event and presence rows would outlive their session row, and
//! the purge could delete a session that had just become recent. So ingest
//! holds a shared lock per session it writes (shared locks never wait for
//! each other), and a purge takes the exclusive one for each session it
//! chose, then checks again which are still expired before it deletes
//! anything (`postgres::lock_still_expired`). Ingest that comes later
//! waits for the purge to commit, then creates the session row again.
//!
//! Every transaction takes them in one order: sessions by key, then groups
//! by `GroupKey`, then row locks (session rows, sorted, then the rest); so
//! none waits for one that waits for it.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use super::merge::{EventColumns, GroupKey};
use crate::domain::{Delivery, Verdict};

/// A session's lock key, in PostgreSQL's two-`int4` key space, which is
/// apart from the one-`bigint` space of the presence-group locks: the
/// appid's bits and 32 bits of a digest of the session id. Two sessions
/// that share a key only make a purge and an ingest of unrelated sessions
/// wait for each other.
pub fn session_key(appid: i64, room_session_id: &str) -> (i32, i32) {
    let digest = Sha256::digest(room_session_id.as_bytes());
    let id_bits = i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    // appid is a u32: keep its bits, whatever the sign they make.
    (appid as u32 as i32, id_bits)
}

/// The keys of these sessions, sorted and without repeats: the order every
/// transaction takes them in.
pub fn session_keys<S: AsRef<str>>(
    sessions: impl IntoIterator<Item = (i64, S)>,
) -> Vec<(i32, i32)> {
    let keys: BTreeSet<(i32, i32)> = sessions
        .into_iter()
        .map(|(appid, id)| session_key(appid, id.as_ref()))
        .collect();
    keys.into_iter().collect()
}

/// What a batch of deliveries locks: every accepted event's session and
/// every login's and logout's group, each sorted once. (A delivery the
/// replay guard turns away later still has its locks taken: a lock too many
/// only makes a writer wait.)
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BatchLocks {
    pub sessions: Vec<(i32, i32)>,
    /// `GroupKey::lock_name`s, in `GroupKey` order.
    pub groups: Vec<String>,
}

impl BatchLocks {
    pub fn of(deliveries: &[Delivery]) -> BatchLocks {
        let mut sessions = BTreeSet::new();
        let mut groups = BTreeSet::new();
        for delivery in deliveries {
            if let Verdict::Accepted(event) = &delivery.verdict {
                let columns = EventColumns::of(event);
                sessions.insert(session_key(columns.appid, &columns.room_session_id));
                groups.extend(columns.presence_group());
            }
        }
        BatchLocks {
            sessions: sessions.into_iter().collect(),
            groups: groups.iter().map(GroupKey::lock_name).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_always_has_the_same_key() {
        // Ingest and purge may run in different processes and versions:
        // the key is a fixed function of the session, never a seeded hash.
        assert_eq!(
            session_key(1, "123"),
            (1, i32::from_be_bytes([0xa6, 0x65, 0xa4, 0x59]))
        );
        assert_ne!(session_key(1, "123"), session_key(2, "123"));
        assert_ne!(session_key(1, "123"), session_key(1, "124"));
        assert_eq!(session_key(i64::from(u32::MAX), "1").0, -1);
    }

    #[test]
    fn session_keys_come_sorted_once_each() {
        let keys = session_keys([(2, "9"), (1, "5"), (2, "9"), (1, "7")]);
        assert_eq!(keys.len(), 3);
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }
}
