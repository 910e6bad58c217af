//! `send`: play ZEGO against a URL, to test a deployment or load it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::StreamExt;

use crate::sender::traffic::{self, Plan};
use crate::sender::{Callback, Encoding, Sender, Sent};

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Base URL of the service, e.g. http://127.0.0.1:8080 or https://callbacks.example.com.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,

    /// The callback secret to sign with.
    #[arg(long, env = "ZEGO_CALLBACK_SECRET", hide_env_values = true)]
    secret: String,

    /// Body encoding.
    #[arg(long, value_enum, default_value_t = Encoding::Json)]
    encoding: Encoding,

    /// Post everything to `/callbacks` instead of `/callbacks/{event}`.
    #[arg(long)]
    generic_endpoint: bool,

    /// Seconds to wait before each retry of a non-2xx answer (ZEGO's schedule by default).
    #[arg(long, value_delimiter = ',', default_value = "2,4,8,16,32")]
    retry_schedule: Vec<f64>,

    /// Send each callback once, without retries.
    #[arg(long)]
    no_retry: bool,

    /// Send callbacks from this file: JSON lines, or one body in any encoding.
    #[arg(long, conflicts_with = "sessions")]
    file: Option<std::path::PathBuf>,

    /// Generate this many room sessions (create, logins, logouts, close) instead.
    #[arg(long)]
    sessions: Option<u64>,

    /// Keep generating sessions for this long (e.g. 30s) instead of a fixed
    /// number; `--sessions` then caps the count.
    #[arg(long, value_parser = humantime::parse_duration, requires = "sessions")]
    duration: Option<Duration>,

    /// Users per generated session.
    #[arg(long, default_value_t = 3)]
    users: usize,

    /// Sessions in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,

    /// Shuffle each generated session's callbacks (out-of-order delivery).
    #[arg(long)]
    shuffle: bool,

    /// Fraction of generated callbacks sent twice (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    duplicates: f64,

    /// appid of generated sessions.
    #[arg(long, default_value_t = 1)]
    appid: u32,
}

pub async fn run(args: SendArgs) -> Result<(), String> {
    if !(0.0..=1.0).contains(&args.duplicates) {
        return Err("--duplicates must be between 0 and 1".into());
    }
    let mut sender = Sender::new(&args.url, &args.secret);
    sender.encoding = args.encoding;
    sender.typed_paths = !args.generic_endpoint;
    sender.retry_schedule = if args.no_retry {
        Vec::new()
    } else {
        args.retry_schedule
            .iter()
            .map(|s| {
                Duration::try_from_secs_f64(*s)
                    .map_err(|_| format!("--retry-schedule: {s} is not a number of seconds"))
            })
            .collect::<Result<_, _>>()?
    };
    match args.sessions {
        Some(sessions) => generate(&sender, &args, sessions).await,
        None => {
            let callbacks = match &args.file {
                Some(path) => read_file(path)?,
                None => traffic::fixtures(),
            };
            send_listed(&sender, &callbacks).await
        }
    }
}

fn read_file(path: &std::path::Path) -> Result<Vec<Callback>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let bodies = if lines.len() > 1 && lines.iter().all(|l| l.trim_start().starts_with('{')) {
        lines
    } else {
        vec![text.as_str()]
    };
    bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            traffic::parse_callback(body).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

/// One line per callback: what was sent and how it ended.
async fn send_listed(sender: &Sender, callbacks: &[Callback]) -> Result<(), String> {
    let mut failed = 0;
    for callback in callbacks {
        let sent = sender.send(callback).await;
        failed += usize::from(!sent.succeeded());
        let room = callback
            .fields
            .get("room_id")
            .and_then(|v| v.as_str())
            .unwrap_or("-");
        println!(
            "{:<12} {:<20} -> {} {} ({} attempt{}, {:.1} ms)",
            callback.event,
            room,
            sent.status.map_or("---".into(), |s| s.to_string()),
            sent.outcome(),
            sent.attempts,
            if sent.attempts == 1 { "" } else { "s" },
            sent.latency.as_secs_f64() * 1000.0
        );
        if !sent.succeeded() {
            println!("             {}", sent.answer.trim());
        }
    }
    println!(
        "{} sent, {} succeeded, {failed} failed",
        callbacks.len(),
        callbacks.len() - failed
    );
    if failed > 0 {
        Err(format!("{failed} callbacks failed after retries"))
    } else {
        Ok(())
    }
}

/// Generated traffic: progress on stderr every second, a summary at the end.
async fn generate(sender: &Sender, args: &SendArgs, sessions: u64) -> Result<(), String> {
    let plan = Arc::new(Plan {
        appid: args.appid,
        users: args.users,
        shuffle: args.shuffle,
        duplicates: args.duplicates,
        run_id: format!("send-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S")),
    });
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!(
                    "sent {} callbacks ({:.0}/s)",
                    done.load(Ordering::Relaxed),
                    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
                );
            }
        })
    };
    let deadline = args.duration.map(|d| started + d);
    let results: Vec<Vec<Sent>> = futures_util::stream::iter(0..sessions)
        .take_while(|_| std::future::ready(deadline.is_none_or(|d| Instant::now() < d)))
        .map(|n| {
            let (plan, done) = (plan.clone(), done.clone());
            async move {
                let callbacks = traffic::session(&plan, n, &mut rand::rng());
                let mut sent = Vec::with_capacity(callbacks.len());
                for callback in &callbacks {
                    sent.push(sender.send(callback).await);
                    done.fetch_add(1, Ordering::Relaxed);
                }
                sent
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    progress.abort();
    let elapsed = started.elapsed();
    let all: Vec<&Sent> = results.iter().flatten().collect();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for s in &all {
        *outcomes.entry(s.outcome()).or_default() += 1;
    }
    let mut latencies: Vec<Duration> = all.iter().map(|s| s.latency).collect();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let outcome_text: Vec<String> = outcomes.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "{} sessions, {} callbacks in {:.1} s ({:.0}/s): {}; latency ms p50 {:.1} p95 {:.1} p99 {:.1} max {:.1}",
        results.len(),
        all.len(),
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64(),
        outcome_text.join(" "),
        pct(0.50),
        pct(0.95),
        pct(0.99),
        pct(1.0)
    );
    let failed = all.iter().filter(|s| !s.succeeded()).count();
    if failed > 0 {
        Err(format!("{failed} callbacks failed after retries"))
    } else {
        Ok(())
    }
}
