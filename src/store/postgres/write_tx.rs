//! PostgreSQL's write transactions: how one begins (plans pinned, the
//! batch's advisory locks taken in the same round trip), the connection it
//! runs on (pooled, or held by the group-commit writer), and recording a
//! batch on it, in one round trip when the guess holds.

use std::fmt::Write as _;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgConnection, Postgres};

use super::PgStore;
use crate::domain::{Delivery, Outcome};
use crate::store::StoreError;
use crate::store::advisory_locks::BatchLocks;
use crate::store::recorder::{record, record_at_once};
use crate::store::timed::{Timed, WriteStep, timed};
use crate::store::write::Write;

/// Opens a write transaction with plans pinned to index lookups, the
/// settings in the same round trip as the BEGIN (and the batch's advisory
/// locks just before it: `begin_write`). Every statement of the write
/// path looks up a batch's keys; on a young table (before autovacuum's first ANALYZE) the
/// statistics make a scan of the whole table (or a hash join over one) look
/// cheaper, and the generic plan a connection then caches keeps it as the
/// table grows, so each batch gets slower than the last. These settings
/// last until the transaction ends, and only the write path's statements
/// are planned under them (a plan stays with its statement's text).
///
/// Generic plans always: left to choose, PostgreSQL plans a statement
/// afresh whenever a plan for the batch's array sizes looks cheaper than
/// the generic one, which it does for every small batch, the usual ones
/// at a light load. Planning the larger statements again cost a batch of
/// one about 0.5 ms and a third of PostgreSQL's CPU per callback
/// (docs/benchmarks.md). Full batches already ran on the generic plans
/// (their binds take 0.02-0.07 ms in PostgreSQL's log), so at full load
/// nothing changes.
const BEGIN_WRITE: &str = "BEGIN;
    SET LOCAL enable_seqscan = off;
    SET LOCAL enable_bitmapscan = off;
    SET LOCAL enable_hashjoin = off;
    SET LOCAL enable_mergejoin = off;
    SET LOCAL enable_material = off;
    SET LOCAL plan_cache_mode = force_generic_plan";

/// The batch's advisory locks (`store::advisory_locks`) in their order,
/// each session's shared lock, then each presence group's, and then
/// `BEGIN_WRITE`: all one message, so one round trip.
///
/// The locks come *before* the BEGIN. The statements of one message run
/// in one implicit transaction, which the BEGIN turns into the explicit
/// one, so the locks are held until COMMIT; and a lock that fails (its
/// wait outlasting `lock_timeout`) rolls the whole message back and leaves
/// the connection idle. After a BEGIN, that failure would leave the
/// connection inside an aborted transaction, and sqlx would put it back in
/// the pool that way, failing every later batch on it (a test in
/// `tests/it/outage.rs` holds a session's lock to check this).
///
/// A simple query cannot take bind parameters, so the values are written
/// into the text: session keys are integers, and a group's name goes as
/// hex and is decoded by PostgreSQL, so no text of a callback is ever read
/// as SQL. A VALUES list is scanned in its written order.
///
/// The transaction also ends on the server once it has waited `idle_limit`
/// for its next statement (`idle_in_transaction_session_timeout`). Our
/// writer never waits between statements; a connection that went silent
/// does (a firewall dropped its state, and `record_deliveries` gave up on
/// it), and until PostgreSQL ends that transaction, its locks hold up every
/// later write to the same sessions.
fn begin_write(locks: &BatchLocks, idle_limit: Duration) -> String {
    let mut sql = String::new();
    if !locks.sessions.is_empty() {
        let keys: Vec<String> = locks
            .sessions
            .iter()
            .map(|(a, b)| format!("({a}, {b})"))
            .collect();
        let keys = keys.join(", ");
        let _ = writeln!(
            sql,
            "SELECT pg_advisory_xact_lock_shared(k.a, k.b) FROM (VALUES {keys}) AS k (a, b);"
        );
    }
    if !locks.groups.is_empty() {
        let names: Vec<String> = locks
            .groups
            .iter()
            .map(|name| format!("('{}')", hex::encode(name)))
            .collect();
        let names = names.join(", ");
        // The same key as hashing the name bound as text.
        let _ = writeln!(
            sql,
            "SELECT pg_advisory_xact_lock(hashtextextended(convert_from(decode(g.name, 'hex'), 'UTF8'), 0)) \
             FROM (VALUES {names}) AS g (name);"
        );
    }
    sql.push_str(BEGIN_WRITE);
    let _ = write!(
        sql,
        ";\n    SET LOCAL idle_in_transaction_session_timeout = {}",
        idle_limit.as_millis().max(1)
    );
    sql
}

/// A write transaction's connection: pooled, or held by the writer's store.
pub(super) enum WriteConnection {
    Pooled(PoolConnection<Postgres>),
    Held(PgConnection),
}

/// How many DATABASE_TIMEOUT_MS a write transaction may take in all before
/// its connection counts as silent: each of its round trips (at most about
/// ten, when a batch is recorded again step by step) is bounded by one on
/// the server, so only a connection that stopped answering gets here.
pub(super) const SILENT_WRITE_LIMIT_IN_TIMEOUTS: u32 = 10;

impl WriteConnection {
    /// Closes the connection instead of reusing it: a pooled one leaves its
    /// pool first (returned, the pool would ping it, and wait on it again).
    pub(super) fn discard(self) {
        match self {
            WriteConnection::Pooled(conn) => drop(conn.detach()),
            WriteConnection::Held(conn) => drop(conn),
        }
    }
}

impl Deref for WriteConnection {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        match self {
            WriteConnection::Pooled(conn) => conn,
            WriteConnection::Held(conn) => conn,
        }
    }
}

impl DerefMut for WriteConnection {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            WriteConnection::Pooled(conn) => conn,
            WriteConnection::Held(conn) => conn,
        }
    }
}

/// Why a write transaction failed: at a BEGIN (nothing written yet, so a
/// dead connection may be swapped for another), or after.
pub(super) enum WriteFailed {
    Begin(sqlx::Error),
    Store(StoreError),
}

impl From<StoreError> for WriteFailed {
    fn from(e: StoreError) -> WriteFailed {
        WriteFailed::Store(e)
    }
}

impl From<sqlx::Error> for WriteFailed {
    fn from(e: sqlx::Error) -> WriteFailed {
        WriteFailed::Store(e.into())
    }
}

/// Records `deliveries` in one transaction on `conn`, holding `locks`.
///
/// Most of a batch goes in one round trip, on the guess that no delivery
/// replays a signed triple with another body; where one does, the
/// transaction is rolled back and the batch recorded step by step in a
/// new one (`recorder::record_at_once`).
pub(super) async fn record_on(
    conn: &mut PgConnection,
    locks: &BatchLocks,
    idle_limit: Duration,
    deliveries: &[Delivery],
) -> Result<Vec<Outcome>, WriteFailed> {
    let mut tx = begin_on(conn, locks, idle_limit).await?;
    if let Some(outcomes) = record_at_once(&mut Timed(&mut tx), deliveries).await? {
        timed(WriteStep::Commit, tx.commit()).await?;
        return Ok(outcomes);
    }
    tx.rollback().await?;
    let mut tx = begin_on(conn, locks, idle_limit).await?;
    let outcomes = record(&mut Timed(&mut tx), deliveries).await?;
    timed(WriteStep::Commit, tx.commit()).await?;
    Ok(outcomes)
}

async fn begin_on<'c>(
    conn: &'c mut PgConnection,
    locks: &BatchLocks,
    idle_limit: Duration,
) -> Result<Write<'c, Postgres>, WriteFailed> {
    let begin = conn.begin_with(begin_write(locks, idle_limit));
    let tx = timed(WriteStep::Begin, begin)
        .await
        .map_err(WriteFailed::Begin)?;
    Ok(Write::new(tx))
}

impl PgStore {
    pub(super) async fn write_connection(&self) -> Result<WriteConnection, sqlx::Error> {
        Ok(match &self.held {
            Some(held) => WriteConnection::Held(held.take().await?),
            None => WriteConnection::Pooled(self.pool.acquire().await?),
        })
    }

    /// After a commit: a held connection goes back to be held (a pooled
    /// one goes back to its pool when dropped).
    pub(super) fn done_with(&self, conn: WriteConnection) {
        if let (Some(held), WriteConnection::Held(conn)) = (&self.held, conn) {
            held.put_back(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_then_group_locks_then_the_begin_with_no_callback_text_in_them() {
        let locks = BatchLocks {
            sessions: vec![(-3, 4), (1, 2)],
            groups: vec!["1\u{1f}9\u{1f}o'brien\u{1f}s".into()],
        };
        let sql = begin_write(&locks, Duration::from_millis(1500));
        let sessions = sql
            .find("(VALUES (-3, 4), (1, 2))")
            .expect("session keys in order");
        let groups = sql
            .find(&format!(
                "(VALUES ('{}'))",
                hex::encode("1\u{1f}9\u{1f}o'brien\u{1f}s")
            ))
            .expect("group names as hex");
        let begin = sql.find(BEGIN_WRITE).expect("the BEGIN");
        assert!(sessions < groups && groups < begin, "{sql}");
        assert!(
            sql.ends_with("idle_in_transaction_session_timeout = 1500"),
            "{sql}"
        );
        assert!(!sql.contains("brien"), "{sql}");
        let alone = begin_write(&BatchLocks::default(), Duration::from_millis(1500));
        assert!(alone.starts_with(BEGIN_WRITE), "{alone}");
    }
}
