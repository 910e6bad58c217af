//! `rebuild`: re-derive events, sessions and presence from the delivery
//! archive (after a fix to the merge rules, or a bad deploy) and report what
//! changed. Runs in one transaction: writers wait (ZEGO's retries cover it).

use std::time::{Duration, Instant};

use clap::Args;

use super::{closing, open_store};
use crate::config::{DatabaseArgs, ReadingArgs};
use crate::ingest;
use crate::store::Store;
use crate::store::rebuild::TableChange;

#[derive(Debug, Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    database: DatabaseArgs,

    #[command(flatten)]
    reading: ReadingArgs,
}

pub async fn run(mut args: RebuildArgs) -> Result<(), String> {
    // One long transaction: allow it far more than a request's timeout.
    args.database.database_timeout_ms = args.database.database_timeout_ms.max(3_600_000);
    closing(open_store(&args.database).await?, async |store| {
        rebuild(&args, store).await
    })
    .await
}

async fn rebuild(args: &RebuildArgs, store: &dyn Store) -> Result<(), String> {
    let display = args.reading.display_field_decoding;
    let last = std::sync::Mutex::new(Instant::now());
    let reassess = |archived: &_| ingest::reassess(archived, display);
    let progress = |replayed| {
        let mut last = last.lock().expect("not poisoned");
        if last.elapsed() >= Duration::from_secs(1) {
            eprintln!("replayed {replayed} deliveries");
            *last = Instant::now();
        }
    };
    // Chosen as a deadlock victim, it rolled back whole: run it again.
    let report = crate::store::retrying_lock_conflicts(|| store.rebuild(&reassess, &progress))
        .await
        .map_err(|e| format!("rebuild failed, nothing was changed: {e}"))?;
    let change = |name: &str, c: TableChange| format!("{name} +{} -{}", c.added, c.removed);
    println!(
        "replayed {} deliveries; {} outcomes changed; {}, {}, {}, {}{}",
        report.replayed,
        report.outcomes_changed,
        change("events", report.events),
        change("sessions", report.sessions),
        change("presence intervals", report.intervals),
        change("close counts", report.close_counts),
        if report.changed_nothing() {
            " (nothing changed)"
        } else {
            ""
        }
    );
    Ok(())
}
