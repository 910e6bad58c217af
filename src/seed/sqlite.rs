//! SQLite: prepared multi-row inserts in big transactions on one
//! connection with the journal and syncing off during the load; the loaded
//! tables' indexes are dropped first and recreated from their own SQL, so
//! the schema afterwards is exactly the migrated one (checked). No ANALYZE:
//! the service never runs it, so the benchmark plans like production.

use std::str::FromStr;
use std::time::Instant;

use sqlx::sqlite::{SqliteArguments, SqliteConnectOptions, SqliteConnection};
use sqlx::{Arguments, ConnectOptions, Connection, Executor, Sqlite};

use super::{Interval, Plan, SeedReport, SeededCounts, Session, TimeStyle, format_time};

/// Rows per INSERT statement.
const ROWS: usize = 64;
/// Sessions per transaction.
const TX_SESSIONS: u64 = 100_000;

const SCHEMA_FINGERPRINT: &str = "SELECT coalesce(group_concat(x, char(10)), '') FROM (
    SELECT type || ' ' || name || ' ' || tbl_name || ' ' || coalesce(sql, '') AS x FROM sqlite_master
    WHERE name NOT LIKE 'sqlite_stat%' ORDER BY type, name)";

/// Rows that differ between `close_reason_hourly` and a recount of `room_sessions`.
pub const ROLLUP_DIFF: &str = "WITH recount AS (
    SELECT appid, strftime('%Y-%m-%dT%H:00:00+00:00', closed_at) AS hour_start, close_reason,
           count(*) AS closed_count
    FROM room_sessions WHERE closed_at IS NOT NULL GROUP BY 1, 2, 3)
SELECT count(*) FROM (
    SELECT * FROM (SELECT appid, hour_start, close_reason, closed_count FROM recount
                   EXCEPT SELECT appid, hour_start, close_reason, closed_count FROM close_reason_hourly)
    UNION ALL
    SELECT * FROM (SELECT appid, hour_start, close_reason, closed_count FROM close_reason_hourly
                   EXCEPT SELECT appid, hour_start, close_reason, closed_count FROM recount))";

const LOADED: [&str; 2] = ["room_sessions", "presence_intervals"];

/// For `map_err`: every database error as one sentence.
#[expect(clippy::needless_pass_by_value, reason = "the shape map_err wants")]
fn db(e: sqlx::Error) -> String {
    format!("database error: {e}")
}

async fn connect(url: &str) -> Result<SqliteConnection, String> {
    SqliteConnectOptions::from_str(url)
        .map_err(|e| format!("bad DATABASE_URL: {e}"))?
        .disable_statement_logging()
        .connect()
        .await
        .map_err(|e| format!("cannot open the SQLite database: {e}"))
}

async fn scalar_i64(conn: &mut SqliteConnection, sql: &str) -> Result<i64, String> {
    sqlx::query_scalar(sql).fetch_one(conn).await.map_err(db)
}

/// What the database holds that tells which flags seeded it (`seed --check`).
pub async fn check_sqlite(url: &str, plan: &Plan) -> Result<SeededCounts, String> {
    let mut conn = connect(url).await?;
    let counts = super::seeded_counts::<sqlx::Sqlite>(&mut conn, plan, ROLLUP_DIFF).await?;
    conn.close().await.map_err(db)?;
    Ok(counts)
}

fn placeholders(columns: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

struct Inserter {
    sql_full: String,
    sql_one: String,
    args: SqliteArguments<'static>,
    rows: usize,
}

impl Inserter {
    fn new(head: &str, columns: usize) -> Inserter {
        Inserter {
            sql_full: format!("{head} VALUES {}", placeholders(columns, ROWS)),
            sql_one: format!("{head} VALUES {}", placeholders(columns, 1)),
            args: SqliteArguments::default(),
            rows: 0,
        }
    }

    fn add<T>(&mut self, value: T) -> Result<(), String>
    where
        T: 'static + Send + sqlx::Encode<'static, Sqlite> + sqlx::Type<Sqlite>,
    {
        self.args.add(value).map_err(|e| e.to_string())
    }

    async fn row_done(&mut self, conn: &mut SqliteConnection) -> Result<(), String> {
        self.rows += 1;
        if self.rows == ROWS {
            let args = std::mem::take(&mut self.args);
            sqlx::query_with(&self.sql_full, args)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            self.rows = 0;
        }
        Ok(())
    }

    /// Inserts what is buffered, one row at a time (a partial batch).
    async fn flush(&mut self, conn: &mut SqliteConnection, columns: usize) -> Result<(), String> {
        if self.rows == 0 {
            return Ok(());
        }
        // Partial batches are rare (once per table): rebuild the arguments row by row.
        let sql = format!(
            "{} VALUES {}",
            self.sql_one.split(" VALUES ").next().unwrap_or_default(),
            placeholders(columns, self.rows)
        );
        let args = std::mem::take(&mut self.args);
        sqlx::query_with(&sql, args)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        self.rows = 0;
        Ok(())
    }
}

fn time(ms: i64) -> String {
    format_time(ms, TimeStyle::Sqlite)
}

fn opt_time(ms: Option<i64>) -> Option<String> {
    ms.map(time)
}

async fn add_session(
    ins: &mut Inserter,
    conn: &mut SqliteConnection,
    s: &Session,
) -> Result<(), String> {
    ins.add(s.appid)?;
    ins.add(s.room_session_id.clone())?;
    ins.add(s.room_id.clone())?;
    ins.add(opt_time(s.created_at))?;
    ins.add(s.creator.clone())?;
    ins.add(opt_time(s.closed_at))?;
    ins.add(s.close_reason)?;
    ins.add(time(s.first_event_at))?;
    ins.add(time(s.started_at))?;
    ins.row_done(conn).await
}

async fn add_interval(
    ins: &mut Inserter,
    conn: &mut SqliteConnection,
    id: i64,
    s: &Session,
    p: &Interval,
) -> Result<(), String> {
    ins.add(id)?;
    ins.add(s.appid)?;
    ins.add(s.room_session_id.clone())?;
    ins.add(p.user_account.clone())?;
    ins.add(p.session_id.clone())?;
    ins.add(s.room_id.clone())?;
    ins.add(p.user_nickname.clone())?;
    ins.add(p.user_role)?;
    ins.add(opt_time(p.login_at))?;
    ins.add(opt_time(p.logout_at))?;
    ins.add(p.logout_reason)?;
    ins.add(p.duration_ms)?;
    ins.add(p.login_event_id)?;
    ins.add(p.logout_event_id)?;
    ins.row_done(conn).await
}

/// Seeds the (migrated) SQLite database at `url`. With `force`, existing rows are deleted first.
pub async fn seed_sqlite(url: &str, plan: &Plan, force: bool) -> Result<SeedReport, String> {
    let mut report = SeedReport::default();
    let mut conn = connect(url).await?;
    let mut step = Instant::now();
    let existing = scalar_i64(
        &mut conn,
        "SELECT EXISTS (SELECT 1 FROM room_sessions) + EXISTS (SELECT 1 FROM presence_intervals)
              + EXISTS (SELECT 1 FROM events) + EXISTS (SELECT 1 FROM deliveries)",
    )
    .await?;
    if existing > 0 && !force {
        return Err(
            "the database already holds sessions, events or deliveries; \
                    seed only fills an empty database (--force deletes everything first)"
                .into(),
        );
    }
    let before = scalar_text(&mut conn, SCHEMA_FINGERPRINT).await?;
    conn.execute(
        "PRAGMA synchronous = OFF; PRAGMA journal_mode = OFF; PRAGMA cache_size = -262144;
         PRAGMA temp_store = MEMORY",
    )
    .await
    .map_err(db)?;
    if existing > 0 {
        conn.execute(
            "DELETE FROM events; DELETE FROM deliveries; DELETE FROM replay_guard;
             DELETE FROM room_sessions; DELETE FROM presence_intervals; DELETE FROM close_reason_hourly;
             DELETE FROM sqlite_sequence WHERE name IN ('events', 'deliveries', 'presence_intervals')",
        )
        .await
        .map_err(db)?;
    }
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL
         AND tbl_name IN (?, ?) ORDER BY name",
    )
    .bind(LOADED[0])
    .bind(LOADED[1])
    .fetch_all(&mut conn)
    .await
    .map_err(db)?;
    for (name, _) in &indexes {
        conn.execute(format!("DROP INDEX {name}").as_str())
            .await
            .map_err(db)?;
    }
    report.lap(&mut step, "drop indexes");

    let mut sessions = Inserter::new(
        "INSERT INTO room_sessions (appid, room_session_id, room_id, created_at, creator, closed_at, \
         close_reason, first_event_at, started_at)",
        9,
    );
    let mut presence = Inserter::new(
        "INSERT INTO presence_intervals (id, appid, room_session_id, user_account, session_id, room_id, \
         user_nickname, user_role, login_at, logout_at, logout_reason, duration_ms, \
         login_event_id, logout_event_id)",
        14,
    );
    let mut intervals = Vec::new();
    let mut big = None;
    let mut next_id: i64 = 1;
    let started = Instant::now();
    let mut shown = Instant::now();
    conn.execute("BEGIN").await.map_err(db)?;
    for i in 0..plan.params.sessions {
        let s = plan.session(i, &mut intervals);
        add_session(&mut sessions, &mut conn, &s).await?;
        for p in &intervals {
            add_interval(&mut presence, &mut conn, next_id, &s, p).await?;
            next_id += 1;
        }
        if i == plan.big {
            big = Some((s, intervals.clone()));
        }
        if (i + 1) % TX_SESSIONS == 0 {
            conn.execute("COMMIT; BEGIN").await.map_err(db)?;
        }
        if shown.elapsed().as_secs() >= 10 {
            eprintln!(
                "  {} sessions, {} intervals inserted ({:.0} sessions/s)",
                i + 1,
                next_id - 1,
                (i + 1) as f64 / started.elapsed().as_secs_f64()
            );
            shown = Instant::now();
        }
    }
    sessions.flush(&mut conn, 9).await?;
    presence.flush(&mut conn, 14).await?;
    if let Some((s, intervals)) = big {
        for e in plan.big_session_events(&s, &intervals) {
            sqlx::query(
                "INSERT INTO events (id, event, appid, room_id, room_session_id, event_at, received_at, \
                 user_account, session_id, user_nickname, user_role, login_at, reason, creator, \
                 room_name, content_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(e.id)
            .bind(e.event)
            .bind(s.appid)
            .bind(&s.room_id)
            .bind(&s.room_session_id)
            .bind(time(e.event_at))
            .bind(time(e.received_at))
            .bind(&e.user_account)
            .bind(&e.session_id)
            .bind(&e.user_nickname)
            .bind(e.user_role)
            .bind(opt_time(e.login_at))
            .bind(e.reason)
            .bind(&e.creator)
            .bind(&e.room_name)
            .bind(&e.content_sha256)
            .execute(&mut conn)
            .await
            .map_err(db)?;
            report.events += 1;
        }
    }
    conn.execute("COMMIT").await.map_err(db)?;
    report.sessions = plan.params.sessions;
    report.intervals = u64::try_from(next_id - 1).unwrap_or(0);
    report.lap(&mut step, "insert rows");

    conn.execute("BEGIN").await.map_err(db)?;
    for (_, sql) in &indexes {
        conn.execute(sql.as_str()).await.map_err(db)?;
    }
    conn.execute("COMMIT").await.map_err(db)?;
    report.lap(&mut step, "indexes");
    report.rollup_rows = conn
        .execute(
            "INSERT INTO close_reason_hourly (appid, hour_start, close_reason, closed_count)
             SELECT appid, strftime('%Y-%m-%dT%H:00:00+00:00', closed_at), close_reason, count(*)
             FROM room_sessions WHERE closed_at IS NOT NULL GROUP BY 1, 2, 3",
        )
        .await
        .map_err(db)?
        .rows_affected();
    report.lap(&mut step, "rollup");
    conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL")
        .await
        .map_err(db)?;

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
    conn.close().await.map_err(db)?;
    report.lap(&mut step, "check schema and rollup");
    Ok(report)
}

async fn scalar_text(conn: &mut SqliteConnection, sql: &str) -> Result<String, String> {
    sqlx::query_scalar(sql).fetch_one(conn).await.map_err(db)
}
