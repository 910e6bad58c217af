//! `seed --sessions N`: synthetic history for query benchmarks
//! (`scripts/bench-queries.sh`), loaded in bulk.

use std::time::Instant;

use clap::Args;

use super::{open_store, redact_url};
use crate::config::DatabaseArgs;
use crate::seed::{self, Params, Plan};
use crate::store::Backend;

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Room sessions to create, over 90 days from 2026-09-01 across three appids.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    sessions: u64,

    /// Mean presence intervals per session.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    users_per_session: u32,

    /// Participants of the one big session (the middle one), for the session-detail benchmark.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    big_session_users: u32,

    /// Random seed: the same flags always give the same rows.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Delete every event, delivery, session and interval first (otherwise
    /// a database that holds any is refused).
    #[arg(long)]
    force: bool,

    /// Do not load: check that the database holds what these flags seed
    /// (its session and interval counts, and the big session these flags
    /// name with its participants) and that the close-reason rollup equals
    /// a recount of the sessions; print the benchmark's ids. Fails otherwise.
    #[arg(long)]
    check: bool,

    #[command(flatten)]
    database: DatabaseArgs,
}

pub async fn run(args: SeedArgs) -> Result<(), String> {
    let url = args.database.database_url.clone();
    let store = open_store(&args.database).await?;
    let backend = store.backend();
    store.close().await;
    drop(store);
    let plan = Plan::new(Params {
        sessions: args.sessions,
        users_per_session: args.users_per_session,
        seed: args.seed,
        big_session_users: args.big_session_users,
    });
    if args.check {
        let counts = match backend {
            Backend::Postgres => seed::check_postgres(&url, &plan).await?,
            Backend::Sqlite => seed::check_sqlite(&url, &plan).await?,
        };
        println!(
            "sessions={}\nintervals={}\nrollup_rows_differing={}",
            counts.sessions, counts.intervals, counts.rollup_rows_differing
        );
        println!("{}", plan.describe());
        return match counts.mismatch(&plan) {
            Some(why) => Err(format!("not what these flags seed: {why}")),
            None => Ok(()),
        };
    }
    eprintln!(
        "seeding {} with {} sessions, ~{} intervals each ...",
        redact_url(&url),
        args.sessions,
        args.users_per_session
    );
    let started = Instant::now();
    let report = match backend {
        Backend::Postgres => seed::seed_postgres(&url, &plan, args.force).await?,
        Backend::Sqlite => seed::seed_sqlite(&url, &plan, args.force).await?,
    };
    let secs = started.elapsed().as_secs_f64();
    println!(
        "seeded {} sessions, {} presence intervals, {} events, {} close_reason_hourly rows in {secs:.1} s",
        report.sessions, report.intervals, report.events, report.rollup_rows
    );
    let steps: Vec<String> = report
        .steps
        .iter()
        .map(|(name, s)| format!("{name} {s:.1} s"))
        .collect();
    println!("steps: {}", steps.join(", "));
    println!("rollup equals a recount: yes");
    println!("{}", plan.describe());
    Ok(())
}
