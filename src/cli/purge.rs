//! `purge --older-than 90d`: retention by hand.

use std::time::{Duration, Instant};

use clap::Args;

use super::{closing, open_store};
use crate::config::DatabaseArgs;
use crate::retention;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Delete what is older than this, e.g. 90d or 12h (at least 1h).
    #[arg(long, value_parser = crate::config::parse_retention)]
    older_than: Duration,

    /// Also delete whole sessions (events, presence, counts) all of whose
    /// events are older; by default only raw deliveries are deleted.
    #[arg(long)]
    sessions: bool,

    /// Deliveries or sessions per transaction (1 to 100,000).
    /// A late callback of a session in the batch being deleted waits for
    /// that transaction (answered 503 past DATABASE_TIMEOUT_MS, and ZEGO
    /// retries it): smaller batches keep that wait short.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    batch_size: i64,

    #[command(flatten)]
    database: DatabaseArgs,
}

pub async fn run(args: PurgeArgs) -> Result<(), String> {
    let cutoff = retention::before(chrono::Utc::now(), args.older_than)
        .ok_or("--older-than reaches back before any time that can be held: give a shorter age")?;
    closing(open_store(&args.database).await?, async |store| {
        purge(&args, cutoff, store).await
    })
    .await
}

async fn purge(
    args: &PurgeArgs,
    cutoff: chrono::DateTime<chrono::Utc>,
    store: &dyn Store,
) -> Result<(), String> {
    let what = if args.sessions {
        "deliveries received, and sessions whose events all happened,"
    } else {
        "deliveries received"
    };
    eprintln!(
        "purging {what} before {}",
        cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let last = std::cell::Cell::new(Instant::now());
    let purged = retention::purge(store, cutoff, args.sessions, args.batch_size, |p| {
        if last.get().elapsed() >= Duration::from_secs(1) {
            eprintln!(
                "deleted {} deliveries, {} sessions so far",
                p.deliveries, p.sessions
            );
            last.set(Instant::now());
        }
    })
    .await
    .map_err(|e| format!("purge failed: {e}"))?;
    println!(
        "deleted {} deliveries, {} sessions older than {}",
        purged.deliveries,
        purged.sessions,
        cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    Ok(())
}
