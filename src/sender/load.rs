//! Generated load for `send`: sessions at a fixed concurrency, at a fixed
//! (open-loop) rate, or one hot room with many users; and the summary of a
//! run (requests/s, latency percentiles, HTTP statuses and outcomes), as
//! prose or JSON.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;

use super::traffic::{self, Plan};
use super::{Callback, Sender, Sent, request_file};

/// One callback's delivery, and how late it was started against its
/// schedule (always zero without `--rate`).
#[derive(Debug, Clone)]
pub struct Record {
    pub sent: Sent,
    pub lag: Duration,
}

impl Record {
    fn unscheduled(sent: Sent) -> Record {
        Record {
            sent,
            lag: Duration::ZERO,
        }
    }
}

/// Sessions with `concurrency` in flight; each session's callbacks in order,
/// the next session starting when one finishes (closed loop). Stops starting
/// sessions at `deadline`.
pub async fn at_concurrency(
    sender: &Sender,
    plan: &Plan,
    sessions: u64,
    deadline: Option<Instant>,
    concurrency: usize,
    done: &AtomicU64,
) -> Vec<Vec<Record>> {
    futures_util::stream::iter(0..sessions)
        .take_while(|_| std::future::ready(deadline.is_none_or(|d| Instant::now() < d)))
        .map(|n| async move {
            let callbacks = traffic::session(plan, n, &mut rand::rng());
            let mut sent = Vec::with_capacity(callbacks.len());
            for callback in &callbacks {
                sent.push(Record::unscheduled(sender.send(callback).await));
                done.fetch_add(1, Ordering::Relaxed);
            }
            sent
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}

/// The requests of a file `request_file::write` wrote, each sent once as
/// written, in the file's order with `concurrency` in flight.
pub async fn replay(
    sender: &Sender,
    requests: &[request_file::Request<'_>],
    concurrency: usize,
    done: &AtomicU64,
) -> Vec<Record> {
    each_once(requests, concurrency, done, |request| {
        sender.replay(request)
    })
    .await
}

/// `send` applied to each item once, `concurrency` at a time, counting each
/// answer in `done`.
async fn each_once<T, F>(
    items: impl IntoIterator<Item = T>,
    concurrency: usize,
    done: &AtomicU64,
    send: impl Fn(T) -> F,
) -> Vec<Record>
where
    F: std::future::Future<Output = Sent>,
{
    futures_util::stream::iter(items)
        .map(|item| {
            let sending = send(item);
            async move {
                let sent = sending.await;
                done.fetch_add(1, Ordering::Relaxed);
                Record::unscheduled(sent)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}

/// The slot (in units of 1/rate seconds from the start) of callback `index`
/// of session `session` when every session has `per_session` callbacks.
///
/// Session `s` starts at slot `s·k` and its callbacks are `k + 1` slots
/// apart, so callback `j` of session `s` has slot `(s + j)·k + j`: every
/// slot is used by exactly one callback (once the first `k` sessions are
/// under way), which makes the offered load one callback every 1/rate
/// seconds, with about `k` sessions interleaved and each session's
/// callbacks in order.
pub fn slot(session: u64, index: usize, per_session: usize) -> u64 {
    let k = per_session.max(1) as u64;
    let j = index as u64;
    // Saturating: absurd --sessions/--users only push a slot past the run.
    session
        .saturating_add(j)
        .saturating_mul(k)
        .saturating_add(j)
}

/// Open loop at `rate` callbacks per second: each session starts on
/// schedule whatever the answers to earlier ones (so sessions in flight grow
/// when the service slows down), and each of its callbacks is sent at its
/// slot (see [`slot`]) or, if the previous callback of the same session has
/// not been answered by then, as soon as it is; that delay is recorded as
/// the record's `lag`.
pub async fn at_rate(
    sender: &Arc<Sender>,
    plan: &Arc<Plan>,
    sessions: u64,
    rate: f64,
    done: &Arc<AtomicU64>,
) -> Vec<Vec<Record>> {
    let per_session = plan.users.saturating_mul(2).saturating_add(2);
    let started = tokio::time::Instant::now();
    // A slot too far out for an Instant (a tiny --rate) is "never" in practice.
    let never = started + Duration::from_secs(100 * 365 * 86_400);
    let at = move |s: u64, j: usize| {
        Duration::try_from_secs_f64(slot(s, j, per_session) as f64 / rate)
            .ok()
            .and_then(|d| started.checked_add(d))
            .unwrap_or(never)
    };
    let mut tasks = Vec::new();
    for n in 0..sessions {
        tokio::time::sleep_until(at(n, 0)).await;
        let (sender, plan, done) = (sender.clone(), plan.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let callbacks = traffic::session(&plan, n, &mut rand::rng());
            let mut sent = Vec::with_capacity(callbacks.len());
            for (j, callback) in callbacks.iter().enumerate() {
                let due = at(n, j);
                tokio::time::sleep_until(due).await;
                let lag = tokio::time::Instant::now().saturating_duration_since(due);
                sent.push(Record {
                    sent: sender.send(callback).await,
                    lag,
                });
                done.fetch_add(1, Ordering::Relaxed);
            }
            sent
        }));
    }
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.unwrap_or_default());
    }
    results
}

/// One room session with `plan.users` users: the create, then every login
/// with `concurrency` in flight, then every logout the same way, then the
/// close.
pub async fn hot_room(
    sender: &Sender,
    plan: &Plan,
    concurrency: usize,
    done: &AtomicU64,
) -> Vec<Record> {
    let callbacks = traffic::session(plan, 0, &mut rand::rng());
    let phase =
        |event: &str| -> Vec<&Callback> { callbacks.iter().filter(|c| c.event == event).collect() };
    let mut records = Vec::with_capacity(callbacks.len());
    for event in ["room_create", "room_login", "room_logout", "room_close"] {
        records.extend(each_once(phase(event), concurrency, done, |c| sender.send(c)).await);
    }
    records
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `values`; all zero when empty.
    pub fn of(mut values: Vec<Duration>) -> Percentiles {
        values.sort();
        let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
        let pct = |p: f64| {
            if values.is_empty() {
                return 0.0;
            }
            let rank = (p * values.len() as f64).ceil() as usize;
            ms(&values[rank.clamp(1, values.len()) - 1])
        };
        let mean = if values.is_empty() {
            0.0
        } else {
            values.iter().map(ms).sum::<f64>() / values.len() as f64
        };
        Percentiles {
            p50: pct(0.50),
            p95: pct(0.95),
            p99: pct(0.99),
            max: pct(1.0),
            mean,
        }
    }
}

/// What a run did, for people (`Display`) and scripts (JSON).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// `concurrency`, `rate`, `hot_room` or `replay`.
    pub mode: &'static str,
    /// Sessions (or, in a hot room, users) in flight; `None` with `--rate`.
    pub concurrency: Option<usize>,
    /// The offered rate in callbacks/s with `--rate`.
    pub target_rate: Option<f64>,
    pub sessions: usize,
    pub users_per_session: usize,
    pub callbacks: usize,
    /// HTTP requests made, retries included.
    pub requests: usize,
    pub elapsed_secs: f64,
    /// Callbacks per second over the whole run.
    pub requests_per_sec: f64,
    /// Callbacks whose last attempt got a 2xx answer.
    pub succeeded: usize,
    pub failed: usize,
    /// The last attempt's HTTP status per callback (`none`: no answer).
    pub status: BTreeMap<String, usize>,
    /// `stored`, `duplicate`, … (2xx) or `http_503`, `unreachable`.
    pub outcomes: BTreeMap<String, usize>,
    /// Per failed outcome, the answer (or transport error) of its first
    /// callback: what a count alone cannot say (which 400, why unreachable).
    pub first_failures: BTreeMap<String, String>,
    /// Send to answer, of the last attempt.
    pub latency_ms: Percentiles,
    /// With `--rate`: how late callbacks were started against the schedule.
    pub schedule_lag_ms: Option<Percentiles>,
    /// With `--rate`: from the scheduled start to the answer (lag + latency),
    /// which counts the time a slow answer held up the session's next callback.
    pub latency_from_schedule_ms: Option<Percentiles>,
}

impl Summary {
    pub fn new(
        mode: &'static str,
        sessions: &[Vec<Record>],
        users_per_session: usize,
        elapsed: Duration,
    ) -> Summary {
        let all: Vec<&Record> = sessions.iter().flatten().collect();
        let mut status = BTreeMap::new();
        let mut outcomes = BTreeMap::new();
        let mut first_failures = BTreeMap::new();
        for r in &all {
            let code = r.sent.status.map_or("none".into(), |s| s.to_string());
            *status.entry(code).or_default() += 1;
            let outcome = r.sent.outcome();
            if !r.sent.succeeded() {
                first_failures
                    .entry(outcome.clone())
                    .or_insert_with(|| shortened(&r.sent.answer));
            }
            *outcomes.entry(outcome).or_default() += 1;
        }
        let succeeded = all.iter().filter(|r| r.sent.succeeded()).count();
        let secs = elapsed.as_secs_f64();
        Summary {
            mode,
            concurrency: None,
            target_rate: None,
            sessions: sessions.len(),
            users_per_session,
            callbacks: all.len(),
            requests: all.iter().map(|r| r.sent.attempts).sum(),
            elapsed_secs: secs,
            requests_per_sec: if secs > 0.0 {
                all.len() as f64 / secs
            } else {
                0.0
            },
            succeeded,
            failed: all.len() - succeeded,
            status,
            outcomes,
            first_failures,
            latency_ms: Percentiles::of(all.iter().map(|r| r.sent.latency).collect()),
            schedule_lag_ms: None,
            latency_from_schedule_ms: None,
        }
        .with_schedule(&all, mode == "rate")
    }

    fn with_schedule(mut self, all: &[&Record], scheduled: bool) -> Summary {
        if scheduled {
            self.schedule_lag_ms = Some(Percentiles::of(all.iter().map(|r| r.lag).collect()));
            self.latency_from_schedule_ms = Some(Percentiles::of(
                all.iter().map(|r| r.lag + r.sent.latency).collect(),
            ));
        }
        self
    }
}

/// One line; starts like it always has (`N sessions, M callbacks in … s
/// (R/s): outcome=n …; latency ms p50 …`), which scripts may read.
impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let join = |m: &BTreeMap<String, usize>| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let l = &self.latency_ms;
        write!(
            f,
            "{} sessions, {} callbacks in {:.1} s ({:.0}/s): {}; latency ms p50 {:.1} p95 {:.1} p99 {:.1} max {:.1}; http {}",
            self.sessions,
            self.callbacks,
            self.elapsed_secs,
            self.requests_per_sec,
            join(&self.outcomes),
            l.p50,
            l.p95,
            l.p99,
            l.max,
            join(&self.status),
        )?;
        if let (Some(rate), Some(lag), Some(from)) = (
            self.target_rate,
            &self.schedule_lag_ms,
            &self.latency_from_schedule_ms,
        ) {
            write!(
                f,
                "; target {rate:.0}/s, behind schedule ms p99 {:.1} max {:.1}, latency from schedule ms p99 {:.1}",
                lag.p99, lag.max, from.p99
            )?;
        }
        for (outcome, answer) in &self.first_failures {
            write!(f, "; first {outcome}: {answer}")?;
        }
        Ok(())
    }
}

/// An answer cut to one line of at most 200 characters, for the summary.
fn shortened(answer: &str) -> String {
    const MAX: usize = 200;
    let line = answer.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_slot_is_used_once_and_sessions_stay_in_order() {
        let k = 10;
        let mut seen = HashSet::new();
        for s in 0..200 {
            let mut previous = None;
            for j in 0..k {
                let t = slot(s, j, k);
                assert!(seen.insert(t), "slot {t} used twice");
                assert!(previous.is_none_or(|p| p < t));
                previous = Some(t);
            }
        }
        // Past the ramp-up (the first k sessions) every slot is taken:
        // one callback every 1/rate seconds.
        let start = (k * k) as u64;
        assert!((start..200 * k as u64).all(|t| seen.contains(&t)));
        // Absurd runs saturate instead of overflowing.
        assert_eq!(slot(u64::MAX - 1, 3, usize::MAX), u64::MAX);
    }

    fn sent(status: Option<u16>, answer: &str, ms: u64) -> Sent {
        Sent {
            status,
            answer: answer.into(),
            attempts: 1,
            latency: Duration::from_millis(ms),
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let p = Percentiles::of((1..=100).map(Duration::from_millis).collect());
        assert_eq!((p.p50, p.p95, p.p99, p.max), (50.0, 95.0, 99.0, 100.0));
        assert!((p.mean - 50.5).abs() < 1e-9);
        assert_eq!(Percentiles::of(Vec::new()).max, 0.0);
    }

    #[test]
    fn the_summary_counts_statuses_and_outcomes() {
        let records = vec![vec![
            Record::unscheduled(sent(Some(200), r#"{"status":"stored"}"#, 2)),
            Record::unscheduled(sent(Some(200), r#"{"status":"duplicate"}"#, 3)),
            Record::unscheduled(sent(Some(503), "{}", 4)),
            Record::unscheduled(sent(None, "connection refused", 5)),
        ]];
        let s = Summary::new("concurrency", &records, 1, Duration::from_secs(2));
        assert_eq!((s.callbacks, s.succeeded, s.failed), (4, 2, 2));
        assert_eq!(s.requests_per_sec, 2.0);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            json["status"],
            serde_json::json!({"200": 2, "503": 1, "none": 1})
        );
        assert_eq!(
            json["outcomes"],
            serde_json::json!({"stored": 1, "duplicate": 1, "http_503": 1, "unreachable": 1})
        );
        assert_eq!(
            json["first_failures"],
            serde_json::json!({"http_503": "{}", "unreachable": "connection refused"})
        );
        assert!(json["schedule_lag_ms"].is_null());
        let line = s.to_string();
        assert!(
            line.starts_with("1 sessions, 4 callbacks in 2.0 s (2/s): duplicate=1 http_503=1 stored=1 unreachable=1; latency ms p50 3.0"),
            "{line}"
        );
        assert!(
            line.ends_with("; first http_503: {}; first unreachable: connection refused"),
            "{line}"
        );
    }

    #[test]
    fn a_rate_summary_adds_the_schedule() {
        let records = vec![vec![Record {
            sent: sent(Some(200), r#"{"status":"stored"}"#, 2),
            lag: Duration::from_millis(5),
        }]];
        let mut s = Summary::new("rate", &records, 1, Duration::from_secs(1));
        s.target_rate = Some(100.0);
        assert_eq!(s.latency_from_schedule_ms.unwrap().max, 7.0);
        assert!(s.to_string().contains("target 100/s"));
    }
}
