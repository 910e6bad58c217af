//! The write path's statements, written once for both backends (generic
//! over the sqlx backend). What differs, a handful of SQL texts, comes from
//! `WriteDialect`, implemented in `postgres/` and `sqlite/`; the decisions
//! are in `store::recorder` and `store::rebuild`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Transaction, Type};

use crate::domain::presence::PresenceInterval;
use crate::domain::{Delivery, Outcome, ReplayKey};
use crate::store::StoreError;
use crate::store::merge::{EventColumns, GroupEventRow, outcome_reason};
use crate::store::model::DeliveryRecord;
use crate::store::rebuild::{RebuildReport, RebuildTx};
use crate::store::rebuild_sql;
use crate::store::recorder::WriteTx;

/// The SQL that differs between backends.
pub trait WriteDialect: Database {
    /// Takes a transaction-scoped lock on a presence group (`$1`: its key),
    /// where the backend has concurrent writers.
    const LOCK_PRESENCE_GROUP: Option<&'static str>;
    /// Upserts the session fields of a create or a close.
    const MERGE_LIFECYCLE_EVENT: &'static str;
    /// Moves a session's first event earlier when this event is earlier.
    const WIDEN_SESSION: &'static str;
    /// Keeps writers out for a rebuild, where the backend needs a statement for it.
    const LOCK_FOR_REBUILD: Option<&'static str>;
    /// Suffix of `CREATE TEMP TABLE … AS` for the rebuild's copies.
    const TEMP_TABLE_SUFFIX: &'static str;
    /// Whether the rebuild's copies must be dropped by hand before commit.
    const DROP_TEMP_TABLES: bool;
}

/// An open write transaction.
pub struct Write<DB: Database>(pub Transaction<'static, DB>, CloseCounts);

/// Close-reason increments of this transaction, applied at commit in key
/// order: concurrent transactions then lock rollup rows in one order (no
/// deadlocks) and each row is written once per transaction.
type CloseCounts = std::collections::BTreeMap<(i64, DateTime<Utc>, i64), i64>;

impl<DB> Write<DB>
where
    DB: WriteDialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB> + Default,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<DateTime<Utc>>: Encode<'q, DB> + Type<DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> (String,): FromRow<'r, DB::Row>,
    for<'r> (i64, String): FromRow<'r, DB::Row>,
    for<'r> (i64, i64): FromRow<'r, DB::Row>,
    for<'r> GroupEventRow: FromRow<'r, DB::Row>,
    for<'r> DeliveryRecord: FromRow<'r, DB::Row>,
{
    pub fn new(tx: Transaction<'static, DB>) -> Write<DB> {
        Write(tx, CloseCounts::new())
    }

    pub async fn commit(mut self) -> Result<(), StoreError> {
        self.flush_close_counts().await?;
        self.0.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl<DB> WriteTx for Write<DB>
where
    DB: WriteDialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB> + Default,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<DateTime<Utc>>: Encode<'q, DB> + Type<DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> (String,): FromRow<'r, DB::Row>,
    for<'r> (i64, String): FromRow<'r, DB::Row>,
    for<'r> (i64, i64): FromRow<'r, DB::Row>,
    for<'r> GroupEventRow: FromRow<'r, DB::Row>,
    for<'r> DeliveryRecord: FromRow<'r, DB::Row>,
{
    async fn claim_replay_key(
        &mut self,
        key: &ReplayKey,
        body_sha256: &str,
        at: DateTime<Utc>,
    ) -> Result<String, StoreError> {
        // DO UPDATE (a no-op) rather than DO NOTHING so RETURNING yields the
        // first body's digest in the same round trip.
        Ok(sqlx::query_scalar::<DB, _>(
            "INSERT INTO replay_guard (sent_timestamp, nonce, signature, body_sha256, first_seen_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (sent_timestamp, nonce, signature)
             DO UPDATE SET body_sha256 = replay_guard.body_sha256
             RETURNING body_sha256",
        )
        .bind(key.timestamp.as_str())
        .bind(key.nonce.as_str())
        .bind(key.signature.as_str())
        .bind(body_sha256)
        .bind(at)
        .fetch_one(&mut *self.0)
        .await?)
    }

    async fn lock_presence_group(&mut self, c: &EventColumns<'_>) -> Result<(), StoreError> {
        if let Some(lock) = DB::LOCK_PRESENCE_GROUP {
            sqlx::query::<DB>(lock)
                .bind(c.presence_group_key())
                .execute(&mut *self.0)
                .await?;
        }
        Ok(())
    }

    async fn insert_event(
        &mut self,
        c: &EventColumns<'_>,
        received_at: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar::<DB, _>(
            "INSERT INTO events (event, appid, room_id, room_session_id, event_at, received_at,
                                 user_account, session_id, user_nickname, user_role, login_at, reason,
                                 creator, room_name, content_sha256)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT DO NOTHING
             RETURNING id",
        )
        .bind(c.event)
        .bind(c.appid)
        .bind(c.room_id)
        .bind(c.room_session_id.as_str())
        .bind(c.event_at)
        .bind(received_at)
        .bind(c.user_account)
        .bind(c.session_id)
        .bind(c.user_nickname)
        .bind(c.user_role)
        .bind(c.login_at)
        .bind(c.reason)
        .bind(c.creator)
        .bind(c.room_name)
        .bind(c.content_sha256)
        .fetch_optional(&mut *self.0)
        .await?)
    }

    async fn find_event(&mut self, c: &EventColumns<'_>) -> Result<(i64, String), StoreError> {
        // Logins and logouts are identified by user, session and time too;
        // for creates and closes those are NULL and not part of the identity.
        Ok(sqlx::query_as::<DB, _>(
            "SELECT id, content_sha256 FROM events
             WHERE event = $1 AND appid = $2 AND room_session_id = $3
               AND ($4 IS NULL OR (user_account = $4 AND session_id = $5 AND event_at = $6))",
        )
        .bind(c.event)
        .bind(c.appid)
        .bind(c.room_session_id.as_str())
        .bind(c.user_account)
        .bind(c.session_id)
        .bind(c.event_at)
        .fetch_one(&mut *self.0)
        .await?)
    }

    async fn merge_lifecycle_event(&mut self, c: &EventColumns<'_>) -> Result<(), StoreError> {
        let (created_at, closed_at, close_reason) = c.session_fields();
        sqlx::query::<DB>(DB::MERGE_LIFECYCLE_EVENT)
            .bind(c.appid)
            .bind(c.room_session_id.as_str())
            .bind(c.room_id)
            .bind(created_at)
            .bind(c.creator)
            .bind(closed_at)
            .bind(close_reason)
            .bind(c.event_at)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn count_close(&mut self, c: &EventColumns<'_>) -> Result<(), StoreError> {
        let reason = c.reason.expect("a stored close has a close_reason");
        *self.1.entry((c.appid, c.event_hour(), reason)).or_default() += 1;
        Ok(())
    }

    async fn flush_close_counts(&mut self) -> Result<(), StoreError> {
        for ((appid, hour, reason), count) in std::mem::take(&mut self.1) {
            sqlx::query::<DB>(
                "INSERT INTO close_reason_hourly (appid, hour_start, close_reason, closed_count)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (appid, hour_start, close_reason)
                 DO UPDATE SET closed_count = close_reason_hourly.closed_count + excluded.closed_count",
            )
            .bind(appid)
            .bind(hour)
            .bind(reason)
            .bind(count)
            .execute(&mut *self.0)
            .await?;
        }
        Ok(())
    }

    async fn insert_session_if_absent(&mut self, c: &EventColumns<'_>) -> Result<bool, StoreError> {
        // RETURNING says whether the row was new (DO NOTHING returns none).
        let inserted: Option<i64> = sqlx::query_scalar::<DB, _>(
            "INSERT INTO room_sessions (appid, room_session_id, room_id, first_event_at, started_at)
             VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (appid, room_session_id) DO NOTHING
             RETURNING appid",
        )
        .bind(c.appid)
        .bind(c.room_session_id.as_str())
        .bind(c.room_id)
        .bind(c.event_at)
        .fetch_optional(&mut *self.0)
        .await?;
        Ok(inserted.is_some())
    }

    async fn widen_session(&mut self, c: &EventColumns<'_>) -> Result<(), StoreError> {
        sqlx::query::<DB>(DB::WIDEN_SESSION)
            .bind(c.appid)
            .bind(c.room_session_id.as_str())
            .bind(c.room_id)
            .bind(c.event_at)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn presence_group(
        &mut self,
        c: &EventColumns<'_>,
    ) -> Result<Vec<GroupEventRow>, StoreError> {
        Ok(sqlx::query_as::<DB, _>(
            "SELECT id, event, event_at, login_at, reason, room_id, user_nickname, user_role
             FROM events
             WHERE appid = $1 AND room_session_id = $2 AND user_account = $3 AND session_id = $4
               AND event IN ('room_login', 'room_logout')",
        )
        .bind(c.appid)
        .bind(c.room_session_id.as_str())
        .bind(c.user_account)
        .bind(c.session_id)
        .fetch_all(&mut *self.0)
        .await?)
    }

    async fn replace_presence(
        &mut self,
        c: &EventColumns<'_>,
        intervals: Vec<PresenceInterval>,
    ) -> Result<(), StoreError> {
        sqlx::query::<DB>(
            "DELETE FROM presence_intervals
             WHERE appid = $1 AND room_session_id = $2 AND user_account = $3 AND session_id = $4",
        )
        .bind(c.appid)
        .bind(c.room_session_id.as_str())
        .bind(c.user_account)
        .bind(c.session_id)
        .execute(&mut *self.0)
        .await?;
        // Almost always one interval per group: one plain INSERT each.
        for i in intervals {
            sqlx::query::<DB>(
                "INSERT INTO presence_intervals (appid, room_session_id, user_account, session_id, room_id,
                    user_nickname, user_role, login_at, logout_at, logout_reason, duration_ms,
                    login_event_id, logout_event_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(c.appid)
            .bind(c.room_session_id.as_str())
            .bind(c.user_account)
            .bind(c.session_id)
            .bind(i.room_id)
            .bind(i.user_nickname)
            .bind(i.user_role)
            .bind(i.login_at.map(|t| t.to_utc()))
            .bind(i.logout_at.map(|t| t.to_utc()))
            .bind(i.logout_reason)
            .bind(i.duration_ms)
            .bind(i.login_event_id)
            .bind(i.logout_event_id)
            .execute(&mut *self.0)
            .await?;
        }
        Ok(())
    }

    async fn archive(
        &mut self,
        d: &Delivery,
        outcome: &Outcome,
        event_id: Option<i64>,
    ) -> Result<(), StoreError> {
        let (reason, detail) = outcome_reason(outcome);
        sqlx::query::<DB>(
            "INSERT INTO deliveries (received_at, remote_addr, endpoint, content_type, body, body_sha256,
                                     event, appid, room_id, room_session_id, outcome, reason, detail,
                                     event_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(d.received_at)
        .bind(d.remote_addr.as_deref())
        .bind(d.endpoint.as_str())
        .bind(d.content_type.as_deref())
        .bind(d.body.as_ref())
        .bind(d.body_sha256.as_str())
        .bind(d.summary.event.as_deref())
        .bind(d.summary.appid.map(i64::from))
        .bind(d.summary.room_id.as_deref())
        .bind(d.summary.room_session_id.as_deref())
        .bind(outcome.as_str())
        .bind(reason)
        .bind(detail)
        .bind(event_id)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl<DB> RebuildTx for Write<DB>
where
    DB: WriteDialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB> + Default,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<DateTime<Utc>>: Encode<'q, DB> + Type<DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> (String,): FromRow<'r, DB::Row>,
    for<'r> (i64, String): FromRow<'r, DB::Row>,
    for<'r> (i64, i64): FromRow<'r, DB::Row>,
    for<'r> GroupEventRow: FromRow<'r, DB::Row>,
    for<'r> DeliveryRecord: FromRow<'r, DB::Row>,
{
    async fn set_aside_current_state(&mut self) -> Result<(), StoreError> {
        if let Some(lock) = DB::LOCK_FOR_REBUILD {
            sqlx::query::<DB>(lock).execute(&mut *self.0).await?;
        }
        for (table, columns) in rebuild_sql::TABLES {
            let copy = rebuild_sql::set_aside(table, columns, DB::TEMP_TABLE_SUFFIX);
            sqlx::query::<DB>(&copy).execute(&mut *self.0).await?;
        }
        Ok(())
    }

    async fn clear_derived(&mut self) -> Result<(), StoreError> {
        rebuild_sql::clear_derived::<DB>(&mut self.0).await
    }

    async fn archived_after(
        &mut self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        rebuild_sql::archived_after::<DB>(&mut self.0, after, limit).await
    }

    async fn set_delivery_result(
        &mut self,
        id: i64,
        outcome: &Outcome,
        event_id: Option<i64>,
    ) -> Result<(), StoreError> {
        rebuild_sql::set_delivery_result::<DB>(&mut self.0, id, outcome, event_id).await
    }

    async fn compare_with_set_aside(
        &mut self,
        report: &mut RebuildReport,
    ) -> Result<(), StoreError> {
        rebuild_sql::compare_with_set_aside::<DB>(&mut self.0, report).await?;
        if DB::DROP_TEMP_TABLES {
            for (table, _) in rebuild_sql::TABLES {
                let drop = format!("DROP TABLE temp.rebuild_old_{table}");
                sqlx::query::<DB>(&drop).execute(&mut *self.0).await?;
            }
        }
        Ok(())
    }
}
