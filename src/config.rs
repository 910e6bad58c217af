//! Settings: command-line flags, then environment variables, then `.env`,
//! then defaults (`.env` is loaded into the environment without overriding
//! it, before parsing). Validated once, at startup; every problem is one
//! sentence that names the setting and says how to fix it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::ingest::VerifyPolicy;
use crate::store::ConnectOptions;
use crate::zego::fields::DisplayDecoding;
use crate::zego::{Secret, SecretBook};

/// The default database: a SQLite file under `./data/`, created on first run.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/zego-room-tracker.db";

/// Where the data lives.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Database to use: `postgres://user@host:5432/db` for production, or
    /// `sqlite://path/to/file.db` for a single node (created when missing,
    /// except by `report`, which only reads).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,

    /// Most database connections for queries and unbatched writes. On top:
    /// SQLite's one write connection, and on PostgreSQL one held connection
    /// per GROUP_COMMIT_WORKERS while GROUP_COMMIT is on.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub database_max_connections: u32,

    /// Milliseconds to wait for a connection, lock or statement before
    /// answering 503 (ZEGO then retries) instead of holding the request.
    /// Migrations are not bound by it, only their connecting.
    #[arg(long, env = "DATABASE_TIMEOUT_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub database_timeout_ms: u64,
}

impl DatabaseArgs {
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            max_connections: self.database_max_connections,
            timeout: Duration::from_millis(self.database_timeout_ms),
        }
    }
}

/// How callback bodies are read, alike in every command that reads them
/// (`serve`, `import`, `rebuild`).
#[derive(Debug, Clone, Args)]
pub struct ReadingArgs {
    /// How the display fields (user_nickname, room_name) of a JSON body are
    /// read. ZEGO's docs leave open whether they arrive percent-encoded.
    /// Form bodies' values are URL-decoded once, with the body, either way.
    /// Copies are duplicates when they read the same by it; `rebuild`
    /// applies a changed setting to the stored history.
    #[arg(long, env = "DISPLAY_FIELD_DECODING", value_enum, default_value_t = DisplayDecoding::Percent)]
    pub display_field_decoding: DisplayDecoding,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Settings of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub reading: ReadingArgs,

    /// Address and port to listen on. Use 0.0.0.0:8080 to accept ZEGO's
    /// callbacks from outside this machine.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen_addr: SocketAddr,

    /// ZEGO callback secret(s), comma-separated; a callback signed with any
    /// one of them verifies (list the old and the new one while rotating).
    /// Used for every appid not listed in ZEGO_APP_SECRETS.
    #[arg(long, env = "ZEGO_CALLBACK_SECRET", hide_env_values = true)]
    pub zego_callback_secret: Option<String>,

    /// Per-appid secrets, `appid=secret,appid=secret`; an appid may appear
    /// more than once (rotation). A listed appid is checked against its own
    /// secrets only.
    #[arg(long, env = "ZEGO_APP_SECRETS", hide_env_values = true)]
    pub zego_app_secrets: Option<String>,

    /// Bearer tokens for the query API (`/api/v1`), comma-separated. Unset:
    /// the query API answers only clients on this machine.
    #[arg(long, env = "API_TOKENS", hide_env_values = true)]
    pub api_tokens: Option<String>,

    /// How far (seconds) a callback's `timestamp` may be from this server's
    /// clock; 0 turns the check off. Keep it above ZEGO's 62 s retry span.
    #[arg(long, env = "TIMESTAMP_TOLERANCE_SECS", default_value_t = 300)]
    pub timestamp_tolerance_secs: u64,

    /// Largest callback body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "BODY_LIMIT_BYTES", default_value_t = 65_536,
          value_parser = clap::value_parser!(u64).range(1..=16_777_216))]
    pub body_limit_bytes: u64,

    /// Delete archived deliveries older than this (e.g. 90d; at least 1h),
    /// hourly. Unset: keep them forever. Sessions are never deleted
    /// automatically.
    #[arg(long, env = "ARCHIVE_RETENTION", value_parser = parse_retention)]
    pub archive_retention: Option<Duration>,

    /// PEM certificate chain: serve HTTPS directly (with TLS_KEY_PATH).
    /// Unset: plain HTTP, for use behind a TLS-terminating proxy.
    #[arg(long, env = "TLS_CERT_PATH")]
    pub tls_cert_path: Option<std::path::PathBuf>,

    /// PEM private key of TLS_CERT_PATH.
    #[arg(long, env = "TLS_KEY_PATH")]
    pub tls_key_path: Option<std::path::PathBuf>,

    /// Write concurrent callbacks in shared transactions (group commit): one
    /// commit serves many requests, each answered after that commit.
    #[arg(long, env = "GROUP_COMMIT", default_value_t = true, action = clap::ArgAction::Set)]
    pub group_commit: bool,

    /// Most callbacks in one group-commit transaction (1 to 1000).
    #[arg(long, env = "GROUP_COMMIT_MAX_BATCH", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub group_commit_max_batch: u64,

    /// Group-commit transactions in flight at once on PostgreSQL, 1 to 64 (SQLite: always 1).
    /// One by default: on a small machine one writer with large batches beats
    /// several with small ones (docs/benchmarks.md); raise it where
    /// PostgreSQL has cores to spare.
    #[arg(long, env = "GROUP_COMMIT_WORKERS", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    pub group_commit_workers: u64,

    /// The CPU the group-commit writer runs on: auto, off or a CPU number.
    /// auto pins it on SQLite (with the SQLite write connection's thread,
    /// when the process may use two or more CPUs: the two take turns on
    /// every statement, and on one core they hand over fastest) and leaves
    /// it unpinned on PostgreSQL. A number pins it on either backend; on
    /// PostgreSQL that pays only with PostgreSQL pinned to the same CPU
    /// (docs/operations.md).
    #[arg(long, env = "WRITER_CPU", default_value = "auto")]
    pub writer_cpu: crate::store::writer_cpu::WriterCpu,

    /// Seconds a request may take before it answers 503 (ZEGO then retries).
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_secs: u64,

    /// Seconds to let in-flight requests finish after SIGTERM/SIGINT; then
    /// the database connections get as long again (at least 5 s) to close
    /// before the process exits, so allow twice this (or this + 5 s).
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,

    /// Log line format. Which lines: RUST_LOG (default info; e.g.
    /// info,sqlx=warn), read from the environment only.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Everything `serve` needs, validated.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub database_url: String,
    pub connect: ConnectOptions,
    pub listen_addr: SocketAddr,
    pub verify: VerifyPolicy,
    pub display_decoding: DisplayDecoding,
    pub body_limit: usize,
    pub api_tokens: Vec<Secret>,
    pub archive_retention: Option<Duration>,
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
    /// Group-commit settings, when on (`workers` before the backend's
    /// limit, `cpu` before `writer_cpu` is resolved for the backend).
    pub group_commit: Option<crate::store::group_commit::GroupCommitOptions>,
    pub writer_cpu: crate::store::writer_cpu::WriterCpu,
    /// Certificate and key paths, when serving HTTPS.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// A setting that stops startup.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ServeArgs {
    pub fn validate(&self) -> Result<ServeConfig, ConfigError> {
        let shared = split_list(self.zego_callback_secret.as_deref())
            .map(Secret::new)
            .collect::<Vec<_>>();
        let per_app = parse_app_secrets(self.zego_app_secrets.as_deref())?;
        let secrets = SecretBook::new(shared, per_app);
        if secrets.is_empty() {
            return Err(ConfigError(
                "ZEGO_CALLBACK_SECRET is not set: set it (or ZEGO_APP_SECRETS) to the callback secret \
                 from the ZEGO console, e.g. ZEGO_CALLBACK_SECRET=your-secret in .env"
                    .into(),
            ));
        }
        Ok(ServeConfig {
            database_url: self.database.database_url.clone(),
            connect: self.database.connect_options(),
            listen_addr: self.listen_addr,
            verify: VerifyPolicy {
                secrets,
                timestamp_tolerance: (self.timestamp_tolerance_secs > 0)
                    .then(|| Duration::from_secs(self.timestamp_tolerance_secs)),
            },
            display_decoding: self.reading.display_field_decoding,
            body_limit: usize::try_from(self.body_limit_bytes).expect("range-checked to 16 MiB"),
            api_tokens: split_list(self.api_tokens.as_deref())
                .map(Secret::new)
                .collect(),
            archive_retention: self.archive_retention,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            group_commit: self.group_commit.then(|| {
                crate::store::group_commit::GroupCommitOptions {
                    max_batch: usize::try_from(self.group_commit_max_batch).expect("range-checked"),
                    workers: usize::try_from(self.group_commit_workers).expect("range-checked"),
                    cpu: None,
                }
            }),
            writer_cpu: self.writer_cpu,
            tls: match (&self.tls_cert_path, &self.tls_key_path) {
                (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(ConfigError("TLS_CERT_PATH is set but TLS_KEY_PATH is not: set both to serve HTTPS, or neither".into()));
                }
                (None, Some(_)) => {
                    return Err(ConfigError("TLS_KEY_PATH is set but TLS_CERT_PATH is not: set both to serve HTTPS, or neither".into()));
                }
            },
        })
    }
}

/// A duration setting or flag, e.g. `90d`; the error shows the form wanted
/// (humantime's own says only where it stopped reading: "expected number at 0").
pub(crate) fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value)
        .map_err(|e| format!("{e}: write a duration such as 90d, 12h, 30m or 10s"))
}

/// A retention or purge age: at least an hour. A `0d` (or a unit slip,
/// `90s` for `90d`) would delete the whole archive, and with it what
/// `rebuild` needs; an hour is the retention's own period.
pub(crate) fn parse_retention(value: &str) -> Result<Duration, String> {
    let age = parse_duration(value)?;
    if age < Duration::from_secs(3_600) {
        return Err(format!(
            "{value} would delete (nearly) the whole archive: give at least 1h, such as 90d"
        ));
    }
    Ok(age)
}

/// The entries of a comma-separated setting, trimmed, empty ones left out.
pub(crate) fn split_list(value: Option<&str>) -> impl Iterator<Item = &str> {
    value
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

pub(crate) fn parse_app_secrets(
    value: Option<&str>,
) -> Result<HashMap<u32, Vec<Secret>>, ConfigError> {
    let mut per_app: HashMap<u32, Vec<Secret>> = HashMap::new();
    for (number, entry) in split_list(value).enumerate() {
        let parsed = entry
            .split_once('=')
            .and_then(|(appid, secret)| Some((appid.trim().parse::<u32>().ok()?, secret.trim())))
            .filter(|(_, secret)| !secret.is_empty());
        let Some((appid, secret)) = parsed else {
            // Only what comes before `=` may be shown: without one, the
            // whole entry may be a secret pasted without its appid.
            let which = match entry.split_once('=') {
                Some((appid, _)) => format!("entry {} (appid {:?})", number + 1, appid.trim()),
                None => format!("entry {} (it has no `=`)", number + 1),
            };
            return Err(ConfigError(format!(
                "ZEGO_APP_SECRETS {which} is invalid: write entries as appid=secret, \
                 comma-separated, with a numeric appid"
            )));
        };
        per_app.entry(appid).or_default().push(Secret::new(secret));
    }
    Ok(per_app)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Harness {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn parse(args: &[&str]) -> Result<ServeConfig, ConfigError> {
        let mut argv = vec!["test"];
        argv.extend_from_slice(args);
        Harness::try_parse_from(argv).unwrap().serve.validate()
    }

    /// What clap says of `args` it refuses.
    fn refusal(args: &[&str]) -> String {
        let mut argv = vec!["test"];
        argv.extend_from_slice(args);
        Harness::try_parse_from(argv)
            .err()
            .expect("refused")
            .to_string()
    }

    #[test]
    fn a_bad_duration_says_what_form_is_wanted() {
        let err = refusal(&["--archive-retention", "abc"]);
        assert!(
            err.contains("--archive-retention") && err.contains("such as 90d"),
            "{err}"
        );
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
    }

    #[test]
    fn a_retention_under_an_hour_is_refused() {
        for short in ["0d", "0s", "90s", "59m"] {
            let err = refusal(&["--archive-retention", short]);
            assert!(
                err.contains("--archive-retention") && err.contains("at least 1h"),
                "{err}"
            );
        }
        assert_eq!(parse_retention("1h"), Ok(Duration::from_secs(3_600)));
    }

    #[test]
    fn secrets_rotate_and_can_be_per_app() {
        let config = parse(&[
            "--zego-callback-secret",
            "old, new",
            "--zego-app-secrets",
            "7=a,7=b,8=c",
        ])
        .unwrap();
        let book = &config.verify.secrets;
        assert_eq!(book.for_app(Some(1)).len(), 2);
        assert_eq!(
            book.for_app(Some(7))
                .iter()
                .map(Secret::expose)
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(book.for_app(None).len(), 2);
    }

    #[test]
    fn a_missing_secret_names_the_setting() {
        let err = parse(&[]).unwrap_err().to_string();
        assert!(err.starts_with("ZEGO_CALLBACK_SECRET is not set"), "{err}");
    }

    #[test]
    fn a_malformed_app_secret_names_the_setting_but_not_the_secret() {
        let err = parse(&["--zego-app-secrets", "abc=topsecret"])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("ZEGO_APP_SECRETS entry 1 (appid \"abc\")"),
            "{err}"
        );
        assert!(!err.contains("topsecret"), "{err}");
        // A secret pasted without its appid is not echoed either.
        let err = parse(&["--zego-app-secrets", "7=a, 9f8e7d6c5b4a"])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("ZEGO_APP_SECRETS entry 2 (it has no `=`)"),
            "{err}"
        );
        assert!(!err.contains("9f8e7d6c5b4a"), "{err}");
    }

    #[test]
    fn display_field_decoding_is_percent_unless_set_and_names_its_values() {
        let chosen = |extra: &[&str]| {
            let mut args = vec!["--zego-callback-secret", "s"];
            args.extend_from_slice(extra);
            parse(&args).unwrap().display_decoding
        };
        assert_eq!(chosen(&[]), DisplayDecoding::Percent);
        assert_eq!(
            chosen(&["--display-field-decoding", "none"]),
            DisplayDecoding::AsSent
        );
        let err = refusal(&["--display-field-decoding", "raw"]);
        assert!(
            err.contains("--display-field-decoding")
                && err.contains("[possible values: percent, none]"),
            "{err}"
        );
    }

    #[test]
    fn zero_tolerance_turns_the_window_off() {
        let config = parse(&[
            "--zego-callback-secret",
            "s",
            "--timestamp-tolerance-secs",
            "0",
        ])
        .unwrap();
        assert_eq!(config.verify.timestamp_tolerance, None);
        let config = parse(&["--zego-callback-secret", "s"]).unwrap();
        assert_eq!(
            config.verify.timestamp_tolerance,
            Some(Duration::from_secs(300))
        );
        assert_eq!(config.body_limit, 65_536);
    }
}
