//! Keeps `purge --sessions` and the ingest of the same room session apart
//! on PostgreSQL, where they run side by side.
//!
//! A login or logout that does not move its session row does not lock it
//! (so a busy room's callbacks do not queue on one row). Without more, a
//! purge could delete such a session while a late callback of it was being
//! stored: the callback's event and presence rows would outlive their
//! session row, and the purge could delete a session that had just become
//! recent. So every ingest transaction takes a *shared* transaction-scoped
//! advisory lock per session it writes, first of all (shared locks never
//! wait for each other), and a purge takes the *exclusive* one for each
//! session it chose, then checks again which are still expired before it
//! deletes anything (`purge_sql::delete_expired_sessions`). Ingest that
//! comes later waits for the purge to commit, then creates the session row
//! again. Both take these locks before any row lock, in key order.
//!
//! SQLite has one writer at a time and needs none of this.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

/// A session's advisory lock key, in PostgreSQL's two-`int4` key space,
/// which is apart from the one-`bigint` space of the presence-group locks:
/// the appid's bits and 32 bits of a digest of the session id. Two
/// sessions that share a key only make a purge and an ingest of unrelated
/// sessions wait for each other.
pub fn key(appid: i64, room_session_id: &str) -> (i32, i32) {
    let digest = Sha256::digest(room_session_id.as_bytes());
    let id_bits = i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    // appid is a u32: keep its bits, whatever the sign they make.
    (appid as u32 as i32, id_bits)
}

/// The keys of these sessions, sorted and without repeats: the order every
/// transaction takes them in.
pub fn keys<S: AsRef<str>>(sessions: impl IntoIterator<Item = (i64, S)>) -> Vec<(i32, i32)> {
    let keys: BTreeSet<(i32, i32)> = sessions
        .into_iter()
        .map(|(appid, id)| key(appid, id.as_ref()))
        .collect();
    keys.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_always_has_the_same_key() {
        // Ingest and purge may run in different processes and versions:
        // the key is a fixed function of the session, never a seeded hash.
        assert_eq!(key(1, "123"), key(1, "123"));
        assert_eq!(
            key(1, "123"),
            (1, i32::from_be_bytes([0xa6, 0x65, 0xa4, 0x59]))
        );
        assert_ne!(key(1, "123"), key(2, "123"));
        assert_ne!(key(1, "123"), key(1, "124"));
        assert_eq!(key(i64::from(u32::MAX), "1").0, -1);
    }

    #[test]
    fn keys_come_sorted_once_each() {
        let keys = keys([(2, "9"), (1, "5"), (2, "9"), (1, "7")]);
        assert_eq!(keys.len(), 3);
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }
}
