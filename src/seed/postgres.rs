//! PostgreSQL: `COPY ... FROM STDIN` of generated rows, both tables at once
//! on two connections, into tables whose secondary indexes and primary keys
//! are dropped for the load and then recreated from their own definitions,
//! so the schema afterwards is exactly the migrated one (checked).

use std::time::Instant;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Executor, Row};

use super::{Event, Interval, Plan, SeedReport, SeededCounts, Session, TimeStyle, push_time};

const CHUNK: usize = 1 << 20;

/// Indexes, constraints, columns and defaults of the current schema: must
/// be the same before and after the load.
const SCHEMA_FINGERPRINT: &str = "SELECT coalesce(string_agg(x, E'\\n' ORDER BY x), '') FROM (
    SELECT 'index ' || indexdef AS x FROM pg_indexes WHERE schemaname = current_schema()
    UNION ALL
    SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
    FROM pg_constraint WHERE connamespace = current_schema()::regnamespace
    UNION ALL
    SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
           || ' ' || a.attnotnull || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'v')
      AND a.attnum > 0 AND NOT a.attisdropped) s";

/// Rows that differ between `close_reason_hourly` and a recount of `room_sessions`.
pub const ROLLUP_DIFF: &str = "WITH recount AS (
    SELECT appid, date_trunc('hour', closed_at, 'UTC') AS hour_start, close_reason, count(*) AS closed_count
    FROM room_sessions WHERE closed_at IS NOT NULL GROUP BY 1, 2, 3)
SELECT count(*) FROM (
    (SELECT appid, hour_start, close_reason, closed_count FROM recount
     EXCEPT ALL SELECT appid, hour_start, close_reason, closed_count FROM close_reason_hourly)
    UNION ALL
    (SELECT appid, hour_start, close_reason, closed_count FROM close_reason_hourly
     EXCEPT ALL SELECT appid, hour_start, close_reason, closed_count FROM recount)) d";

const LOADED: [&str; 2] = ["room_sessions", "presence_intervals"];

async fn connect(url: &str) -> Result<PgConnection, String> {
    let options: PgConnectOptions = url.parse().map_err(|e| format!("bad DATABASE_URL: {e}"))?;
    let mut conn = options
        .disable_statement_logging()
        .connect()
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    conn.execute(
        "SET statement_timeout = 0; SET lock_timeout = 0; SET synchronous_commit = off;
         SET maintenance_work_mem = '1GB'; SET max_parallel_maintenance_workers = 1",
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// For `map_err`: every database error as one sentence.
#[expect(clippy::needless_pass_by_value, reason = "the shape map_err wants")]
fn db(e: sqlx::Error) -> String {
    format!("database error: {e}")
}

async fn scalar_i64(conn: &mut PgConnection, sql: &str) -> Result<i64, String> {
    sqlx::query_scalar(sql).fetch_one(conn).await.map_err(db)
}

/// What the database holds that tells which flags seeded it (`seed --check`).
pub async fn check_postgres(url: &str, plan: &Plan) -> Result<SeededCounts, String> {
    let mut conn = connect(url).await?;
    super::seeded_counts::<sqlx::Postgres>(&mut conn, plan, ROLLUP_DIFF).await
}

/// Seeds the (migrated) database at `url`. With `force`, existing rows are deleted first.
pub async fn seed_postgres(url: &str, plan: &Plan, force: bool) -> Result<SeedReport, String> {
    let mut report = SeedReport::default();
    let mut conn = connect(url).await?;
    let mut step = Instant::now();

    let existing = scalar_i64(
        &mut conn,
        "SELECT (SELECT count(*) FROM (SELECT 1 FROM room_sessions LIMIT 1) a)
              + (SELECT count(*) FROM (SELECT 1 FROM presence_intervals LIMIT 1) b)
              + (SELECT count(*) FROM (SELECT 1 FROM events LIMIT 1) c)
              + (SELECT count(*) FROM (SELECT 1 FROM deliveries LIMIT 1) d)",
    )
    .await?;
    if existing > 0 {
        if !force {
            return Err(
                "the database already holds sessions, events or deliveries; \
                        seed only fills an empty database (--force deletes everything first)"
                    .into(),
            );
        }
        conn.execute(
            "TRUNCATE events, deliveries, replay_guard, room_sessions, presence_intervals, \
             close_reason_hourly RESTART IDENTITY",
        )
        .await
        .map_err(db)?;
    }
    let before = scalar_text(&mut conn, SCHEMA_FINGERPRINT).await?;

    // What to drop for the load and recreate after: every index of the loaded
    // tables, primary keys included (as constraints).
    let constraints: Vec<(String, String, String)> = sqlx::query(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
         WHERE conrelid = ANY (ARRAY['room_sessions'::regclass, 'presence_intervals'::regclass])
           AND contype = 'p' ORDER BY 1, 2",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(db)?
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect();
    let indexes: Vec<(String, String)> = sqlx::query(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i
         WHERE i.schemaname = current_schema() AND i.tablename = ANY ($1)
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
         ORDER BY 1",
    )
    .bind(&LOADED[..])
    .fetch_all(&mut conn)
    .await
    .map_err(db)?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    for (name, _) in &indexes {
        conn.execute(format!("DROP INDEX {name}").as_str())
            .await
            .map_err(db)?;
    }
    for (table, name, _) in &constraints {
        conn.execute(format!("ALTER TABLE {table} DROP CONSTRAINT {name}").as_str())
            .await
            .map_err(db)?;
    }
    report.lap(&mut step, "drop indexes");

    load(url, plan, &mut conn, &mut report).await?;
    report.lap(&mut step, "copy rows");

    for (table, name, def) in &constraints {
        conn.execute(format!("ALTER TABLE {table} ADD CONSTRAINT {name} {def}").as_str())
            .await
            .map_err(db)?;
    }
    report.lap(&mut step, "primary keys");
    for (_, def) in &indexes {
        conn.execute(def.as_str()).await.map_err(db)?;
    }
    report.lap(&mut step, "indexes");
    conn.execute(
        "SELECT setval(pg_get_serial_sequence('presence_intervals', 'id'), (SELECT max(id) FROM presence_intervals));
         SELECT setval(pg_get_serial_sequence('events', 'id'), (SELECT max(id) FROM events))",
    )
    .await
    .map_err(db)?;

    report.rollup_rows = conn
        .execute(
            "INSERT INTO close_reason_hourly (appid, hour_start, close_reason, closed_count)
             SELECT appid, date_trunc('hour', closed_at, 'UTC'), close_reason, count(*)
             FROM room_sessions WHERE closed_at IS NOT NULL GROUP BY 1, 2, 3",
        )
        .await
        .map_err(db)?
        .rows_affected();
    report.lap(&mut step, "rollup");
    conn.execute("VACUUM ANALYZE").await.map_err(db)?;
    report.lap(&mut step, "vacuum analyze");

    let after = scalar_text(&mut conn, SCHEMA_FINGERPRINT).await?;
    if after != before {
        return Err(format!(
            "the schema after seeding differs from the migrated one:\nbefore:\n{before}\nafter:\n{after}"
        ));
    }
    let diff = scalar_i64(&mut conn, ROLLUP_DIFF).await?;
    if diff != 0 {
        return Err(format!(
            "close_reason_hourly differs from a recount in {diff} rows"
        ));
    }
    report.lap(&mut step, "check schema and rollup");
    Ok(report)
}

async fn scalar_text(conn: &mut PgConnection, sql: &str) -> Result<String, String> {
    sqlx::query_scalar(sql).fetch_one(conn).await.map_err(db)
}

/// COPY both tables at once: sessions on `conn`, intervals on a second connection.
async fn load(
    url: &str,
    plan: &Plan,
    conn: &mut PgConnection,
    report: &mut SeedReport,
) -> Result<(), String> {
    let mut second = connect(url).await?;
    let mut sessions = conn
        .copy_in_raw(
            "COPY room_sessions (appid, room_session_id, room_id, created_at, creator, closed_at, \
             close_reason, first_event_at, started_at) FROM STDIN",
        )
        .await
        .map_err(db)?;
    let mut presence = second
        .copy_in_raw(
            "COPY presence_intervals (id, appid, room_session_id, user_account, session_id, room_id, \
             user_nickname, user_role, login_at, logout_at, logout_reason, duration_ms, \
             login_event_id, logout_event_id) FROM STDIN",
        )
        .await
        .map_err(db)?;
    let (mut sbuf, mut pbuf) = (Vec::with_capacity(CHUNK * 2), Vec::with_capacity(CHUNK * 2));
    let mut intervals = Vec::new();
    let mut big = None;
    let mut next_id: i64 = 1;
    let started = Instant::now();
    let mut shown = Instant::now();
    for i in 0..plan.params.sessions {
        let s = plan.session(i, &mut intervals);
        session_row(&mut sbuf, &s);
        for p in &intervals {
            interval_row(&mut pbuf, next_id, &s, p);
            next_id += 1;
        }
        if i == plan.big {
            big = Some((s, intervals.clone()));
        }
        if sbuf.len() >= CHUNK {
            sessions.send(std::mem::take(&mut sbuf)).await.map_err(db)?;
            sbuf.reserve(CHUNK * 2);
        }
        if pbuf.len() >= CHUNK {
            presence.send(std::mem::take(&mut pbuf)).await.map_err(db)?;
            pbuf.reserve(CHUNK * 2);
        }
        if shown.elapsed().as_secs() >= 10 {
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "  {} sessions, {} intervals sent ({:.0} sessions/s)",
                i + 1,
                next_id - 1,
                (i + 1) as f64 / secs
            );
            shown = Instant::now();
        }
    }
    sessions.send(sbuf).await.map_err(db)?;
    presence.send(pbuf).await.map_err(db)?;
    report.sessions = sessions.finish().await.map_err(db)?;
    report.intervals = presence.finish().await.map_err(db)?;

    if let Some((s, intervals)) = big {
        let events = plan.big_session_events(&s, &intervals);
        let mut copy = conn
            .copy_in_raw(
                "COPY events (id, event, appid, room_id, room_session_id, event_at, received_at, \
                 user_account, session_id, user_nickname, user_role, login_at, reason, creator, \
                 room_name, content_sha256) FROM STDIN",
            )
            .await
            .map_err(db)?;
        let mut buf = Vec::new();
        for e in &events {
            event_row(&mut buf, &s, e);
        }
        copy.send(buf).await.map_err(db)?;
        report.events = copy.finish().await.map_err(db)?;
    }
    Ok(())
}

fn text(out: &mut Vec<u8>, value: &str) {
    for b in value.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

fn opt_text(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(v) => text(out, v),
        None => out.extend_from_slice(b"\\N"),
    }
}

fn int(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(value.to_string().as_bytes());
}

fn opt_int(out: &mut Vec<u8>, value: Option<i64>) {
    match value {
        Some(v) => int(out, v),
        None => out.extend_from_slice(b"\\N"),
    }
}

fn opt_time(out: &mut Vec<u8>, value: Option<i64>) {
    match value {
        Some(v) => push_time(out, v, TimeStyle::Postgres),
        None => out.extend_from_slice(b"\\N"),
    }
}

fn session_row(out: &mut Vec<u8>, s: &Session) {
    int(out, s.appid);
    out.push(b'\t');
    text(out, &s.room_session_id);
    out.push(b'\t');
    text(out, &s.room_id);
    out.push(b'\t');
    opt_time(out, s.created_at);
    out.push(b'\t');
    opt_text(out, s.creator.as_deref());
    out.push(b'\t');
    opt_time(out, s.closed_at);
    out.push(b'\t');
    opt_int(out, s.close_reason);
    out.push(b'\t');
    push_time(out, s.first_event_at, TimeStyle::Postgres);
    out.push(b'\t');
    push_time(out, s.started_at, TimeStyle::Postgres);
    out.push(b'\n');
}

fn interval_row(out: &mut Vec<u8>, id: i64, s: &Session, p: &Interval) {
    int(out, id);
    out.push(b'\t');
    int(out, s.appid);
    out.push(b'\t');
    text(out, &s.room_session_id);
    out.push(b'\t');
    text(out, &p.user_account);
    out.push(b'\t');
    text(out, &p.session_id);
    out.push(b'\t');
    text(out, &s.room_id);
    out.push(b'\t');
    opt_text(out, p.user_nickname.as_deref());
    out.push(b'\t');
    opt_int(out, p.user_role);
    out.push(b'\t');
    opt_time(out, p.login_at);
    out.push(b'\t');
    opt_time(out, p.logout_at);
    out.push(b'\t');
    opt_int(out, p.logout_reason);
    out.push(b'\t');
    opt_int(out, p.duration_ms);
    out.push(b'\t');
    opt_int(out, p.login_event_id);
    out.push(b'\t');
    opt_int(out, p.logout_event_id);
    out.push(b'\n');
}

fn event_row(out: &mut Vec<u8>, s: &Session, e: &Event) {
    int(out, e.id);
    out.push(b'\t');
    text(out, e.event);
    out.push(b'\t');
    int(out, s.appid);
    out.push(b'\t');
    text(out, &s.room_id);
    out.push(b'\t');
    text(out, &s.room_session_id);
    out.push(b'\t');
    push_time(out, e.event_at, TimeStyle::Postgres);
    out.push(b'\t');
    push_time(out, e.received_at, TimeStyle::Postgres);
    out.push(b'\t');
    opt_text(out, e.user_account.as_deref());
    out.push(b'\t');
    opt_text(out, e.session_id.as_deref());
    out.push(b'\t');
    opt_text(out, e.user_nickname.as_deref());
    out.push(b'\t');
    opt_int(out, e.user_role);
    out.push(b'\t');
    opt_time(out, e.login_at);
    out.push(b'\t');
    opt_int(out, e.reason);
    out.push(b'\t');
    opt_text(out, e.creator.as_deref());
    out.push(b'\t');
    opt_text(out, e.room_name.as_deref());
    out.push(b'\t');
    text(out, &e.content_sha256);
    out.push(b'\n');
}
