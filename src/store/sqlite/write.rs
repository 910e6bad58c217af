//! The write path's statements (Sqlite); the decisions are in `store::recorder`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, Transaction};

use crate::domain::presence::PresenceInterval;
use crate::domain::{Delivery, Outcome, ReplayKey};
use crate::store::StoreError;
use crate::store::merge::{EventColumns, GroupEventRow, outcome_reason};
use crate::store::model::DeliveryRecord;
use crate::store::rebuild::{RebuildReport, RebuildTx};
use crate::store::rebuild_sql;
use crate::store::recorder::WriteTx;

/// The write path's statements on an open SQLite transaction.
pub(super) struct SqliteWrite(pub(super) Transaction<'static, Sqlite>, CloseCounts);

/// Close-reason increments of this transaction, applied at commit in key
/// order: concurrent transactions then lock rollup rows in one order (no
/// deadlocks) and each row is written once per transaction.
type CloseCounts = std::collections::BTreeMap<(i64, DateTime<Utc>, i64), i64>;

impl SqliteWrite {
    pub(super) fn new(tx: Transaction<'static, Sqlite>) -> SqliteWrite {
        SqliteWrite(tx, CloseCounts::new())
    }

    pub(super) async fn commit(mut self) -> Result<(), StoreError> {
        self.flush_close_counts().await?;
        self.0.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl WriteTx for SqliteWrite {
    async fn claim_replay_key(
        &mut self,
        key: &ReplayKey,
        body_sha256: &str,
        at: DateTime<Utc>,
    ) -> Result<String, StoreError> {
        // DO UPDATE (a no-op) rather than DO NOTHING so RETURNING yields the
        // first body's digest in the same round trip.
        Ok(sqlx::query_scalar(
            "INSERT INTO replay_guard (sent_timestamp, nonce, signature, body_sha256, first_seen_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (sent_timestamp, nonce, signature)
             DO UPDATE SET body_sha256 = replay_guard.body_sha256
             RETURNING body_sha256",
        )
        .bind(&key.timestamp)
        .bind(&key.nonce)
        .bind(&key.signature)
        .bind(body_sha256)
        .bind(at)
        .fetch_one(&mut *self.0)
        .await?)
    }

    async fn lock_presence_group(&mut self, _: &EventColumns<'_>) -> Result<(), StoreError> {
        // The single writer connection already serialises every transaction.
        Ok(())
    }

    async fn insert_event(
        &mut self,
        c: &EventColumns<'_>,
        received_at: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
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
        .bind(&c.room_session_id)
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
        Ok(sqlx::query_as(
            "SELECT id, content_sha256 FROM events
             WHERE event = $1 AND appid = $2 AND room_session_id = $3
               AND ($4 IS NULL OR (user_account = $4 AND session_id = $5 AND event_at = $6))",
        )
        .bind(c.event)
        .bind(c.appid)
        .bind(&c.room_session_id)
        .bind(c.user_account)
        .bind(c.session_id)
        .bind(c.event_at)
        .fetch_one(&mut *self.0)
        .await?)
    }

    async fn merge_lifecycle_event(&mut self, c: &EventColumns<'_>) -> Result<(), StoreError> {
        let (created_at, closed_at, close_reason) = c.session_fields();
        // At most one create and one close are ever stored per session, so
        // COALESCE and min give the same row in every arrival order.
        sqlx::query(
            "INSERT INTO room_sessions (appid, room_session_id, room_id, created_at, creator,
                                        closed_at, close_reason, first_event_at, started_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, COALESCE($4, $8))
             ON CONFLICT (appid, room_session_id) DO UPDATE SET
                room_id = min(room_sessions.room_id, excluded.room_id),
                created_at = COALESCE(room_sessions.created_at, excluded.created_at),
                creator = COALESCE(room_sessions.creator, excluded.creator),
                closed_at = COALESCE(room_sessions.closed_at, excluded.closed_at),
                close_reason = COALESCE(room_sessions.close_reason, excluded.close_reason),
                first_event_at = min(room_sessions.first_event_at, excluded.first_event_at),
                started_at = COALESCE(room_sessions.created_at, excluded.created_at,
                                      min(room_sessions.first_event_at, excluded.first_event_at))",
        )
        .bind(c.appid)
        .bind(&c.room_session_id)
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
            sqlx::query(
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
        let inserted = sqlx::query(
            "INSERT INTO room_sessions (appid, room_session_id, room_id, first_event_at, started_at)
             VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (appid, room_session_id) DO NOTHING",
        )
        .bind(c.appid)
        .bind(&c.room_session_id)
        .bind(c.room_id)
        .bind(c.event_at)
        .execute(&mut *self.0)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    async fn widen_session(&mut self, c: &EventColumns<'_>) -> Result<(), StoreError> {
        // Only when something changes (PostgreSQL's reason; here it saves a write).
        sqlx::query(
            "UPDATE room_sessions SET
                room_id = min(room_id, $3),
                first_event_at = min(first_event_at, $4),
                started_at = COALESCE(created_at, min(first_event_at, $4))
             WHERE appid = $1 AND room_session_id = $2 AND (first_event_at > $4 OR room_id > $3)",
        )
        .bind(c.appid)
        .bind(&c.room_session_id)
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
        Ok(sqlx::query_as(
            "SELECT id, event, event_at, login_at, reason, room_id, user_nickname, user_role
             FROM events
             WHERE appid = $1 AND room_session_id = $2 AND user_account = $3 AND session_id = $4
               AND event IN ('room_login', 'room_logout')",
        )
        .bind(c.appid)
        .bind(&c.room_session_id)
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
        sqlx::query(
            "DELETE FROM presence_intervals
             WHERE appid = $1 AND room_session_id = $2 AND user_account = $3 AND session_id = $4",
        )
        .bind(c.appid)
        .bind(&c.room_session_id)
        .bind(c.user_account)
        .bind(c.session_id)
        .execute(&mut *self.0)
        .await?;
        if intervals.is_empty() {
            return Ok(());
        }
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO presence_intervals (appid, room_session_id, user_account, session_id, room_id,
                user_nickname, user_role, login_at, logout_at, logout_reason, duration_ms,
                login_event_id, logout_event_id) ",
        );
        insert.push_values(intervals, |mut row, i| {
            row.push_bind(c.appid)
                .push_bind(c.room_session_id.clone())
                .push_bind(c.user_account)
                .push_bind(c.session_id)
                .push_bind(i.room_id)
                .push_bind(i.user_nickname)
                .push_bind(i.user_role)
                .push_bind(i.login_at.map(|t| t.to_utc()))
                .push_bind(i.logout_at.map(|t| t.to_utc()))
                .push_bind(i.logout_reason)
                .push_bind(i.duration_ms)
                .push_bind(i.login_event_id)
                .push_bind(i.logout_event_id);
        });
        insert.build().execute(&mut *self.0).await?;
        Ok(())
    }

    async fn archive(
        &mut self,
        d: &Delivery,
        outcome: &Outcome,
        event_id: Option<i64>,
    ) -> Result<(), StoreError> {
        let (reason, detail) = outcome_reason(outcome);
        sqlx::query(
            "INSERT INTO deliveries (received_at, remote_addr, endpoint, content_type, body, body_sha256,
                                     event, appid, room_id, room_session_id, outcome, reason, detail,
                                     event_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(d.received_at)
        .bind(&d.remote_addr)
        .bind(&d.endpoint)
        .bind(&d.content_type)
        .bind(d.body.as_ref())
        .bind(&d.body_sha256)
        .bind(&d.summary.event)
        .bind(d.summary.appid.map(i64::from))
        .bind(&d.summary.room_id)
        .bind(&d.summary.room_session_id)
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
impl RebuildTx for SqliteWrite {
    async fn set_aside_current_state(&mut self) -> Result<(), StoreError> {
        // BEGIN IMMEDIATE already holds SQLite's one write lock.
        for (table, columns) in rebuild_sql::TABLES {
            sqlx::query(&rebuild_sql::set_aside(table, columns, ""))
                .execute(&mut *self.0)
                .await?;
        }
        Ok(())
    }

    async fn clear_derived(&mut self) -> Result<(), StoreError> {
        rebuild_sql::clear_derived::<Sqlite>(&mut self.0).await
    }

    async fn archived_after(
        &mut self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        rebuild_sql::archived_after::<Sqlite>(&mut self.0, after, limit).await
    }

    async fn set_delivery_result(
        &mut self,
        id: i64,
        outcome: &Outcome,
        event_id: Option<i64>,
    ) -> Result<(), StoreError> {
        rebuild_sql::set_delivery_result::<Sqlite>(&mut self.0, id, outcome, event_id).await
    }

    async fn compare_with_set_aside(
        &mut self,
        report: &mut RebuildReport,
    ) -> Result<(), StoreError> {
        rebuild_sql::compare_with_set_aside::<Sqlite>(&mut self.0, report).await?;
        for (table, _) in rebuild_sql::TABLES {
            sqlx::query(&format!("DROP TABLE temp.rebuild_old_{table}"))
                .execute(&mut *self.0)
                .await?;
        }
        Ok(())
    }
}
