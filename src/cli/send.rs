//! `send`: play ZEGO against a URL, to test a deployment or load it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;

use crate::sender::load::{self, Summary};
use crate::sender::traffic::{self, Plan};
use crate::sender::{Callback, Encoding, Sender, request_file};
use crate::zego::{Secret, SecretBook};

/// `--users`' bound: a session's callbacks are counted in usize arithmetic.
const MAX_USERS: usize = 1_000_000;

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Base URL of the service, e.g. http://127.0.0.1:8080 or https://callbacks.example.com.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,

    /// The callback secret to sign with. Of a comma-separated list (as
    /// `serve` reads ZEGO_CALLBACK_SECRET while rotating), the first.
    #[arg(long, env = "ZEGO_CALLBACK_SECRET", hide_env_values = true)]
    secret: Option<String>,

    /// Per-appid secrets, `appid=secret,…`, as `serve` reads them: a
    /// callback of a listed appid is signed with that appid's first secret
    /// instead of --secret.
    #[arg(long, env = "ZEGO_APP_SECRETS", hide_env_values = true)]
    app_secrets: Option<String>,

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
    #[arg(long, conflicts_with_all = ["sessions", "duration", "rate", "hot_room"])]
    file: Option<std::path::PathBuf>,

    /// Generate this many room sessions (create, logins, logouts, close) instead.
    #[arg(long)]
    sessions: Option<u64>,

    /// Keep generating sessions for this long (e.g. 30s) instead of a fixed
    /// number; `--sessions`, if given, then caps the count. Sessions under
    /// way at the end are finished.
    #[arg(long, value_parser = crate::config::parse_duration)]
    duration: Option<Duration>,

    /// Users per generated session (with `--hot-room`: users in the one
    /// room), at most 1,000,000.
    #[arg(long, default_value_t = 3)]
    users: usize,

    /// Sessions in flight at once (closed loop: a session starts when
    /// another finishes). With `--hot-room`: users in flight at once; with
    /// `--replay`: requests in flight at once; with `--write-requests`: the
    /// sessions in flight the file's order is written for.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,

    /// Offer this many callbacks per second instead of a fixed concurrency
    /// (open loop). Sessions start on a fixed schedule, one every
    /// (2 + 2·users)/RATE seconds, whatever the answers to earlier ones, so
    /// the sessions in flight grow when the service slows down. Within a
    /// session the callbacks stay in order, each due (3 + 2·users)/RATE
    /// seconds after the previous one; the schedule interleaves about
    /// 2 + 2·users sessions so that one callback is due every 1/RATE
    /// seconds. A callback whose predecessor in its session is still
    /// unanswered at its due time waits for that answer; the summary
    /// reports that delay ("behind schedule") and the latency counted from
    /// the due time as well as from the send. Needs `--duration` or
    /// `--sessions`; `--duplicates` adds callbacks on top of the rate.
    #[arg(long, conflicts_with = "hot_room")]
    rate: Option<f64>,

    /// One hot room instead of many sessions: one room_create, then the
    /// logins of all `--users` users with `--concurrency` in flight, then
    /// all their logouts the same way, then the room_close. Shows whether
    /// callbacks of one session serialise on its row.
    #[arg(long, conflicts_with_all = ["sessions", "duration", "shuffle"])]
    hot_room: bool,

    /// Shuffle each generated session's callbacks (out-of-order delivery).
    #[arg(long)]
    shuffle: bool,

    /// Fraction of generated callbacks sent twice (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    duplicates: f64,

    /// Also write the run's summary as JSON to this file (`-`: stdout, as
    /// the last line): mode, callbacks, requests_per_sec, latency_ms
    /// {p50,p95,p99,max,mean}, status (HTTP status of each callback's last
    /// attempt), outcomes, and with `--rate` schedule_lag_ms and
    /// latency_from_schedule_ms.
    #[arg(long, value_name = "FILE")]
    summary_json: Option<std::path::PathBuf>,

    /// Write the generated sessions' callbacks to this file, signed now,
    /// instead of sending them: one request per line, `PATH<TAB>CONTENT-TYPE<TAB>BODY`,
    /// in the order `--concurrency` sessions in flight would send them, for
    /// another HTTP client to replay (`bench/wrk-replay.lua`) within the
    /// server's TIMESTAMP_TOLERANCE_SECS. Needs `--sessions`.
    #[arg(long, value_name = "FILE", requires = "sessions",
          conflicts_with_all = ["duration", "rate", "hot_room", "file"])]
    write_requests: Option<std::path::PathBuf>,

    /// Send the requests of a file `--write-requests` wrote, each once as
    /// written (no re-signing, no retries), `--concurrency` at a time in the
    /// file's order, then print the summary (`--summary-json` too). Replay
    /// it within the server's TIMESTAMP_TOLERANCE_SECS of writing it. Any
    /// order of the lines is a valid delivery order: shuffle them to test
    /// out-of-order arrival (`scripts/order-check.sh`).
    #[arg(long, value_name = "FILE",
          conflicts_with_all = ["file", "sessions", "duration", "rate", "hot_room", "write_requests"])]
    replay: Option<std::path::PathBuf>,

    /// appid of generated sessions.
    #[arg(long, default_value_t = 1)]
    appid: u32,

    /// Also trust the CA certificate(s) in this PEM file for an https
    /// --url: a service with a self-signed certificate (its own cert
    /// file) or one from a private CA. Public CAs are trusted anyway.
    #[arg(long, value_name = "PEM")]
    ca_cert: Option<std::path::PathBuf>,
}

/// The secrets `send` signs with, read as `serve` reads them, so the
/// settings a server runs with sign as ZEGO would. Generated sessions need
/// a secret for their `--appid`.
fn signing_secrets(args: &SendArgs) -> Result<SecretBook, String> {
    let shared = crate::config::split_list(args.secret.as_deref())
        .map(Secret::new)
        .collect();
    let per_app =
        crate::config::parse_app_secrets(args.app_secrets.as_deref()).map_err(|e| e.to_string())?;
    let book = SecretBook::new(shared, per_app);
    let generates = args.sessions.is_some() || args.duration.is_some() || args.hot_room;
    // A replay sends requests signed when they were written.
    let signs = args.replay.is_none();
    if signs && (book.is_empty() || (generates && book.for_app(Some(args.appid)).is_empty())) {
        return Err(format!(
            "no secret to sign appid {} with: set --secret (ZEGO_CALLBACK_SECRET) or \
             --app-secrets (ZEGO_APP_SECRETS) to the callback secret the service checks",
            args.appid
        ));
    }
    Ok(book)
}

pub async fn run(args: SendArgs) -> Result<(), String> {
    if !(0.0..=1.0).contains(&args.duplicates) {
        return Err("--duplicates must be between 0 and 1".into());
    }
    let mut sender = Sender::signing_with(&args.url, signing_secrets(&args)?)
        .map_err(|e| format!("--url: {e}"))?;
    if let Some(path) = &args.ca_cert {
        let pem = std::fs::read(path)
            .map_err(|e| format!("--ca-cert: cannot read {}: {e}", path.display()))?;
        sender = sender
            .trusting(&pem)
            .map_err(|e| format!("--ca-cert {}: {e}", path.display()))?;
    }
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
    if let Some(rate) = args.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        return Err("--rate must be a positive number of callbacks per second".into());
    }
    if args.users > MAX_USERS {
        return Err(format!("--users must be at most {MAX_USERS}"));
    }
    if args.rate.is_some() && args.sessions.is_none() && args.duration.is_none() {
        return Err("--rate needs --duration or --sessions: how long to keep sending".into());
    }
    if let Some(path) = &args.write_requests {
        write_requests(&sender, &args, path)
    } else if let Some(path) = &args.replay {
        replay(&sender, &args, path).await
    } else if args.sessions.is_some() || args.duration.is_some() || args.hot_room {
        generate(sender, &args).await
    } else {
        let callbacks = match &args.file {
            Some(path) => read_file(path)?,
            None => traffic::fixtures(),
        };
        if let Some((i, unsigned)) = callbacks
            .iter()
            .enumerate()
            .find(|(_, c)| !sender.can_sign(c))
        {
            let appid = unsigned
                .fields
                .get("appid")
                .map_or("none".into(), ToString::to_string);
            return Err(format!(
                "callback {} (appid {appid}) has no secret to sign it with: set --secret \
                 (ZEGO_CALLBACK_SECRET), or list its appid in --app-secrets (ZEGO_APP_SECRETS)",
                i + 1
            ));
        }
        send_listed(&sender, &callbacks).await
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
    if failed > 0 && sender.retry_schedule.is_empty() {
        Err(format!("{failed} callbacks failed (no retries)"))
    } else if failed > 0 {
        Err(format!("{failed} callbacks failed after retries"))
    } else {
        Ok(())
    }
}

/// What `--sessions`, `--users`, … ask to generate, with room ids unique to this run.
fn plan(args: &SendArgs) -> Plan {
    Plan {
        appid: args.appid,
        users: args.users,
        shuffle: args.shuffle,
        duplicates: args.duplicates,
        run_id: format!(
            "send-{}-{:04x}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S"),
            rand::random::<u16>()
        ),
    }
}

/// `--write-requests`: the generated sessions to a file instead of the service.
fn write_requests(sender: &Sender, args: &SendArgs, path: &std::path::Path) -> Result<(), String> {
    let cannot = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let file = std::fs::File::create(path).map_err(cannot)?;
    let sessions = args.sessions.expect("clap requires --sessions");
    let written = request_file::write(
        &mut std::io::BufWriter::new(file),
        sender,
        &plan(args),
        sessions,
        args.concurrency,
    )
    .map_err(cannot)?;
    println!(
        "{written} requests of {sessions} sessions written to {}",
        path.display()
    );
    Ok(())
}

/// `--replay`: a request file's lines, each sent once.
async fn replay(sender: &Sender, args: &SendArgs, path: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let requests = text
        .lines()
        .enumerate()
        .map(|(i, line)| {
            request_file::parse_line(line).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let started = Instant::now();
    let done = AtomicU64::new(0);
    let records = load::replay(sender, &requests, args.concurrency, &done).await;
    let mut summary = Summary::new("replay", &[records], 0, started.elapsed());
    summary.sessions = 0;
    summary.concurrency = Some(args.concurrency.max(1));
    report(&summary, args)
}

/// Prints `summary` (and writes it as JSON where asked); an error if any
/// callback ended without a 2xx answer.
fn report(summary: &Summary, args: &SendArgs) -> Result<(), String> {
    println!("{summary}");
    if let Some(path) = &args.summary_json {
        let json = serde_json::to_string(summary).map_err(|e| e.to_string())?;
        if path.as_os_str() == "-" {
            println!("{json}");
        } else {
            std::fs::write(path, json + "\n")
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
    }
    if summary.failed > 0 {
        // `--replay` and `--no-retry` make one attempt; otherwise ZEGO's schedule ran out.
        Err(format!("{} callbacks got no 2xx answer", summary.failed))
    } else {
        Ok(())
    }
}

/// Generated traffic: progress on stderr every second, a summary at the end.
async fn generate(sender: Sender, args: &SendArgs) -> Result<(), String> {
    let plan = Arc::new(plan(args));
    let sender = Arc::new(sender);
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
    let summary = if args.hot_room {
        let records = load::hot_room(&sender, &plan, args.concurrency, &done).await;
        let mut s = Summary::new("hot_room", &[records], args.users, started.elapsed());
        s.concurrency = Some(args.concurrency.max(1));
        s
    } else if let Some(rate) = args.rate {
        let per_session = (args.users * 2 + 2) as f64;
        let by_time = args.duration.map_or(u64::MAX, |d| {
            (d.as_secs_f64() * rate / per_session).ceil() as u64
        });
        let sessions = args.sessions.unwrap_or(u64::MAX).min(by_time.max(1));
        let results = load::at_rate(&sender, &plan, sessions, rate, &done).await;
        let mut s = Summary::new("rate", &results, args.users, started.elapsed());
        s.target_rate = Some(rate);
        s
    } else {
        let deadline = args.duration.map(|d| started + d);
        let sessions = args.sessions.unwrap_or(u64::MAX);
        let results =
            load::at_concurrency(&sender, &plan, sessions, deadline, args.concurrency, &done).await;
        let mut s = Summary::new("concurrency", &results, args.users, started.elapsed());
        s.concurrency = Some(args.concurrency.max(1));
        s
    };
    progress.abort();
    report(&summary, args)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{SendArgs, signing_secrets};

    #[derive(Parser)]
    struct Harness {
        #[command(flatten)]
        send: SendArgs,
    }

    fn secrets_for(args: &[&str], appid: u32) -> Result<Vec<String>, String> {
        let argv = std::iter::once("send").chain(args.iter().copied());
        let args = Harness::try_parse_from(argv).unwrap().send;
        let book = signing_secrets(&args)?;
        Ok(book
            .for_app(Some(appid))
            .iter()
            .map(|s| s.expose().to_owned())
            .collect())
    }

    #[test]
    fn signs_with_the_first_secret_of_the_appid_as_serve_reads_them() {
        assert_eq!(secrets_for(&["--secret", "new, old"], 1).unwrap()[0], "new");
        let both = ["--secret", "shared", "--app-secrets", "7=own,7=older"];
        assert_eq!(secrets_for(&both, 7).unwrap()[0], "own");
        assert_eq!(secrets_for(&both, 1).unwrap()[0], "shared");
        // Generated sessions of an appid without a secret, or no secret at all.
        let generating = |appid: &'static str| {
            [
                "--app-secrets",
                "7=own",
                "--sessions",
                "1",
                "--appid",
                appid,
            ]
        };
        assert_eq!(secrets_for(&generating("7"), 7).unwrap()[0], "own");
        let err = secrets_for(&generating("8"), 8).unwrap_err();
        assert!(
            err.contains("appid 8") && err.contains("ZEGO_CALLBACK_SECRET"),
            "{err}"
        );
        assert!(secrets_for(&["--secret", " , "], 1).is_err());
        let bad = secrets_for(&["--app-secrets", "seven=x"], 1).unwrap_err();
        assert!(bad.contains("ZEGO_APP_SECRETS"), "{bad}");
    }
}
