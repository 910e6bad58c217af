//! The real binary: startup errors, `--help`, serving, and SIGTERM.

use std::process::Command;
use std::time::Duration;

use crate::support::served::spawn_until_listening;

const BIN: &str = env!("CARGO_BIN_EXE_zego-room-tracker");

/// The binary in an empty directory (no `.env`) with no settings inherited.
fn command(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info");
    cmd
}

#[test]
fn missing_secret_stops_startup_with_one_sentence_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: ZEGO_CALLBACK_SECRET is not set"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn invalid_setting_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .env("ZEGO_CALLBACK_SECRET", "s")
        .env("LISTEN_ADDR", "not-an-address")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("LISTEN_ADDR") || stderr.contains("--listen-addr"),
        "{stderr}"
    );
}

#[test]
fn help_explains_every_setting() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for setting in [
        "DATABASE_URL",
        "LISTEN_ADDR",
        "ZEGO_CALLBACK_SECRET",
        "ZEGO_APP_SECRETS",
        "TIMESTAMP_TOLERANCE_SECS",
        "BODY_LIMIT_BYTES",
        "WRITER_CPU",
        "migrate",
    ] {
        assert!(help.contains(setting), "--help lacks {setting}:\n{help}");
    }
}

#[test]
fn serves_on_the_default_sqlite_layout_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // .env is read from the working directory; the data dir is created.
    std::fs::write(
        dir.path().join(".env"),
        "ZEGO_CALLBACK_SECRET=from-dotenv\nLISTEN_ADDR=127.0.0.1:0\n",
    )
    .unwrap();
    let (mut child, addr, rx) = spawn_until_listening(command(dir.path()));
    let next_line = || rx.recv_timeout(Duration::from_secs(20));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let health = runtime.block_on(async {
        reqwest::get(format!("http://{addr}/healthz"))
            .await
            .unwrap()
            .status()
    });
    assert_eq!(health, 200);
    // A signed callback: neither the secret nor the signature may reach the log.
    let fields =
        zego_room_tracker::sender::sign(&crate::support::fixture("room_close.json"), "from-dotenv");
    let signature = fields["signature"].as_str().unwrap().to_owned();
    let answer = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("http://{addr}/callbacks/room_close"))
            .json(&fields)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert_eq!(answer, r#"{"status":"stored"}"#);
    assert!(dir.path().join("data/zego-room-tracker.db").exists());

    sigterm(&child);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = std::iter::from_fn(|| next_line().ok()).collect();
    assert!(
        rest.iter().any(|l| l.contains("shut down cleanly")),
        "{rest:?}"
    );
    assert!(
        rest.iter().any(|l| l.contains("outcome=\"stored\"")),
        "one line per callback: {rest:?}"
    );
    assert!(
        !rest
            .iter()
            .any(|l| l.contains("from-dotenv") || l.contains(&signature)),
        "{rest:?}"
    );
}

/// `send` run with the ZEGO_CALLBACK_SECRET of a server that is rotating
/// secrets (a comma-separated list) signs with the first, and is accepted.
#[test]
fn send_signs_with_the_first_of_a_rotation_list() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = "new-secret,old-secret";
    let mut serve = command(dir.path());
    serve
        .env("ZEGO_CALLBACK_SECRET", secrets)
        .env("LISTEN_ADDR", "127.0.0.1:0");
    let (mut server, addr, _log) = spawn_until_listening(serve);
    let sent = command(dir.path())
        .env("ZEGO_CALLBACK_SECRET", secrets)
        .args(["send", "--no-retry", "--url", &format!("http://{addr}")])
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let stdout = String::from_utf8_lossy(&sent.stdout);
    assert!(
        sent.status.success() && stdout.contains("8 sent, 8 succeeded"),
        "{stdout}{}",
        String::from_utf8_lossy(&sent.stderr)
    );
}

/// `send` reads ZEGO_APP_SECRETS as `serve` does: the fixtures (appid 1,
/// some as a string) are signed with appid 1's own secret, which is the
/// only one the server accepts for it.
#[test]
fn send_signs_each_appid_with_its_own_secret() {
    let dir = tempfile::tempdir().unwrap();
    let settings = [
        ("ZEGO_CALLBACK_SECRET", "shared"),
        ("ZEGO_APP_SECRETS", "1=app-one"),
    ];
    let mut serve = command(dir.path());
    serve.envs(settings).env("LISTEN_ADDR", "127.0.0.1:0");
    let (mut server, addr, _log) = spawn_until_listening(serve);
    let url = format!("http://{addr}");
    let sent = command(dir.path())
        .envs(settings)
        .args(["send", "--no-retry", "--url", &url])
        .output()
        .unwrap();
    let generated = command(dir.path())
        .envs(settings)
        .args([
            "send",
            "--no-retry",
            "--url",
            &url,
            "--sessions",
            "2",
            "--appid",
            "1",
        ])
        .output()
        .unwrap();
    // No secret for the fixtures' appid: refused before sending anything.
    let unsigned = command(dir.path())
        .env_remove("ZEGO_CALLBACK_SECRET")
        .env("ZEGO_APP_SECRETS", "2=app-two")
        .args(["send", "--no-retry", "--url", &url])
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let refusal = String::from_utf8_lossy(&unsigned.stderr);
    assert!(
        !unsigned.status.success() && refusal.contains("(appid 1) has no secret"),
        "{refusal}"
    );
    for (out, expected) in [(&sent, "8 sent, 8 succeeded"), (&generated, "http 200=16")] {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(expected),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Sends SIGTERM, as an orchestrator stops the service.
fn sigterm(child: &std::process::Child) {
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
}

/// Absurd arguments to the operator's tools are refused with a sentence
/// naming the flag; they used to panic on an overflow.
#[test]
fn operator_commands_refuse_absurd_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("a.db").display());
    for (args, expected) in [
        (
            &["purge", "--older-than", "100000000d"][..],
            "--older-than reaches back before any time",
        ),
        (
            &["send", "--sessions", "1", "--users", "9223372036854775808"][..],
            "--users must be at most 1000000",
        ),
    ] {
        let out = command(dir.path())
            .args(args)
            .env("DATABASE_URL", &database)
            .env("ZEGO_CALLBACK_SECRET", "s")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(expected) && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn migrate_creates_the_schema_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested/dir/m.db");
    let out = command(dir.path())
        .arg("migrate")
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("migrations applied"));
    assert!(db.exists());
}

/// An unsupported scheme, a SQLite URL naming no file (`sqlite://$UNSET`:
/// SQLite opened that as a private temporary database per connection, so
/// the service said ready and answered every callback with a 500), and an
/// in-memory one (a 2xx must mean the callback is on disk).
#[test]
fn an_unusable_database_url_is_named_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    // `migrate` opens the store as `serve` does, and cannot hang listening.
    for (url, command_args) in [
        ("mysql://nope", &[][..]),
        ("sqlite://", &["migrate"][..]),
        ("sqlite:", &["migrate"][..]),
        ("sqlite::memory:", &["migrate"][..]),
        ("sqlite://x.db?mode=memory", &["migrate"][..]),
    ] {
        let out = command(dir.path())
            .args(command_args)
            .env("ZEGO_CALLBACK_SECRET", "s")
            .env("DATABASE_URL", url)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{url} {command_args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("DATABASE_URL"), "{stderr}");
    }
}

/// A bad value of a setting only `serve` reads stops `serve`, naming it,
/// and no other command: it stopped `report` and `send` too, which have no
/// such flag to fix it with.
#[test]
fn a_bad_serve_setting_stops_serve_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "ARCHIVE_RETENTION=0d\nLOG_FORMAT=xml\n",
    )
    .unwrap();
    let report = command(dir.path())
        .args(["report", "--list"])
        .output()
        .unwrap();
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    assert!(String::from_utf8_lossy(&report.stdout).contains("open-sessions"));
    for serve in [&[][..], &["serve"][..]] {
        let out = command(dir.path())
            .args(serve)
            .env("ZEGO_CALLBACK_SECRET", "s")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{serve:?}");
        assert!(
            stderr.contains("archive-retention") || stderr.contains("log-format"),
            "{stderr}"
        );
    }
}

/// `report` on a PostgreSQL nothing answers for names the cause, as the
/// commands that write do; it said only that the pool timed out.
#[test]
fn report_names_why_postgresql_did_not_connect() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .args(["report", "open-sessions", "--database-timeout-ms", "500"])
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nothing")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
    assert!(stderr.to_lowercase().contains("refused"), "{stderr}");
}

/// What an operator command wrote is in the SQLite file itself when it
/// exits: closing the store folds the WAL in and deletes it. The commands
/// did not close it, so their writes sat in `-wal` only, and a copy of the
/// `.db` file alone (a backup, a move) lacked them.
#[test]
fn operator_commands_leave_their_writes_in_the_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let url = format!("sqlite://{}", db.display());
    let fixture = format!("{}/fixtures/room_close.json", env!("CARGO_MANIFEST_DIR"));
    for args in [
        &["migrate"][..],
        &["import", &fixture],
        &["rebuild"],
        &["purge", "--older-than", "36500d"],
        &["report", "open-sessions"],
        &[
            "report",
            "open-sessions",
            "--database-url",
            "sqlite://missing.db",
        ],
    ] {
        let out = command(dir.path())
            .args(args)
            .env("DATABASE_URL", &url)
            .output()
            .unwrap();
        let missing = args.contains(&"sqlite://missing.db");
        assert_eq!(
            out.status.success(),
            !missing,
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name != "x.db")
            .collect();
        assert!(left.is_empty(), "{args:?} left {left:?}");
    }
}

#[test]
fn the_env_example_works_as_a_dot_env() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{}/.env.example", env!("CARGO_MANIFEST_DIR")),
        dir.path().join(".env"),
    )
    .unwrap();
    // Its secret is a placeholder left commented out: copied unchanged,
    // it does not start with a secret anyone could read here.
    let out = command(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("ZEGO_CALLBACK_SECRET"),
        "{stderr}"
    );
    // The environment wins over .env (whose LISTEN_ADDR is port 8080), and
    // a flag over the environment: a free port each time.
    let mut by_env = command(dir.path());
    by_env
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("ZEGO_CALLBACK_SECRET", "s");
    let mut by_flag = command(dir.path());
    by_flag
        .args(["--listen-addr", "127.0.0.1:0"])
        .env("LISTEN_ADDR", "127.0.0.1:8080")
        .env("ZEGO_CALLBACK_SECRET", "s");
    for cmd in [by_env, by_flag] {
        let (mut child, addr, _lines) = spawn_until_listening(cmd);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!addr.ends_with(":8080"), "{addr}");
    }
}

/// SIGTERM stops accepting but lets a callback already being written
/// finish: it is committed and answered 200, and the process then exits
/// cleanly. The write is held on a table lock until after the signal.
#[test]
fn sigterm_lets_an_in_flight_callback_commit_and_be_answered() {
    use sqlx::{Connection, Executor};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(db) = runtime.block_on(crate::support::TestDb::new(
        zego_room_tracker::store::Backend::Postgres,
    )) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut serve = command(dir.path());
    serve
        .env("DATABASE_URL", &db.url)
        .env("ZEGO_CALLBACK_SECRET", crate::support::SECRET)
        .env("LISTEN_ADDR", "127.0.0.1:0")
        // Long enough for the held write to wait, not time out.
        .env("DATABASE_TIMEOUT_MS", "120000");
    let (mut child, addr, lines) = spawn_until_listening(serve);
    let (mut holder, answer) = runtime.block_on(async {
        let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
        holder
            .execute("BEGIN; LOCK TABLE deliveries IN EXCLUSIVE MODE")
            .await
            .unwrap();
        let fields = crate::support::signed(crate::support::fixture("room_close.json"));
        let answer = tokio::spawn(
            reqwest::Client::new()
                .post(format!("http://{addr}/callbacks/room_close"))
                .json(&fields)
                .send(),
        );
        let waits =
            crate::support::until_waiting_for_locks(&db.url, 1, || answer.is_finished()).await;
        assert!(waits, "{:?}", answer.await);
        (holder, answer)
    });
    sigterm(&child);
    // Give the signal time to land before the write may go on; whether it
    // did, the log's "shutdown signal received" line below shows.
    std::thread::sleep(Duration::from_millis(300));
    let (status, body, stored) = runtime.block_on(async {
        holder.execute("COMMIT").await.unwrap();
        let response = answer.await.unwrap().unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        let mut reader = sqlx::PgConnection::connect(&db.url).await.unwrap();
        let stored: i64 =
            sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE outcome = 'stored'")
                .fetch_one(&mut reader)
                .await
                .unwrap();
        (status, body, stored)
    });
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, r#"{"status":"stored"}"#)
    );
    assert_eq!(stored, 1);
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let log: Vec<String> =
        std::iter::from_fn(|| lines.recv_timeout(Duration::from_secs(20)).ok()).collect();
    let position = |text: &str| log.iter().position(|l| l.contains(text));
    let (shutting_down, callback, clean) = (
        position("shutdown signal received"),
        position("outcome=\"stored\""),
        position("shut down cleanly"),
    );
    assert!(
        shutting_down.is_some() && shutting_down < callback && callback < clean,
        "{log:?}"
    );
}

/// Self-signed and marked a CA, as `openssl req -x509` makes one by
/// default: `send --ca-cert` refused it (webpki's `CaUsedAsEndEntity`)
/// while curl's `--cacert` took it.
#[test]
fn serves_https_with_a_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
    let mut cmd = command(dir.path());
    cmd.env("ZEGO_CALLBACK_SECRET", "s")
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("TLS_CERT_PATH", dir.path().join("cert.pem"))
        .env("TLS_KEY_PATH", dir.path().join("key.pem"));
    let (mut child, addr, _lines) = spawn_until_listening(cmd);
    let port = addr.rsplit(':').next().unwrap().to_owned();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let status = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        client
            .get(format!("https://localhost:{port}/healthz"))
            .send()
            .await
            .map(|r| r.status())
    });
    // `send` names why an untrusted certificate fails, and trusts it with --ca-cert.
    let send = |host: &str, extra: &[&str]| {
        command(dir.path())
            .env("ZEGO_CALLBACK_SECRET", "s")
            .args([
                "send",
                "--no-retry",
                "--url",
                &format!("https://{host}:{port}"),
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let cert_file = dir.path().join("cert.pem");
    let ca_cert = ["--ca-cert", cert_file.to_str().unwrap()];
    let untrusted = send("localhost", &[]);
    let trusted = send("localhost", &ca_cert);
    // Trusted for its name only: the certificate is for localhost.
    let other_name = send("127.0.0.1", &ca_cert);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status.unwrap(), 200);
    let said = String::from_utf8_lossy(&untrusted.stdout);
    assert!(
        !untrusted.status.success() && said.contains("certificate"),
        "{said}"
    );
    let said = String::from_utf8_lossy(&trusted.stdout);
    assert!(
        trusted.status.success() && said.contains("8 sent, 8 succeeded"),
        "{said}{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    let said = String::from_utf8_lossy(&other_name.stdout);
    assert!(
        !other_name.status.success() && said.contains("NotValidForName"),
        "{said}"
    );
}

#[test]
fn half_a_tls_setting_or_a_missing_certificate_is_named_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .env("ZEGO_CALLBACK_SECRET", "s")
        .env("TLS_CERT_PATH", "cert.pem")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TLS_CERT_PATH is set but TLS_KEY_PATH is not"),
        "{stderr}"
    );
    let out = command(dir.path())
        .env("ZEGO_CALLBACK_SECRET", "s")
        .env("TLS_CERT_PATH", "missing.pem")
        .env("TLS_KEY_PATH", "missing-key.pem")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("cannot load TLS_CERT_PATH missing.pem: No such file"),
        "{stderr}"
    );
}

/// A PostgreSQL that refuses connections stops startup with the cause,
/// not the pool's "timed out".
#[test]
fn an_unreachable_postgres_is_named_with_its_cause_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/zrt");
    let out = command(dir.path())
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .env("DATABASE_TIMEOUT_MS", "300")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains(&format!(
                "cannot migrate the database at DATABASE_URL {url}"
            ))
            && stderr.contains("Connection refused"),
        "{stderr}"
    );
}

/// Each wrong file is named by its own setting: the certificate and the
/// key swapped, or a key that is not the certificate's.
#[test]
fn a_wrong_certificate_or_key_file_is_named_by_its_setting() {
    let dir = tempfile::tempdir().unwrap();
    let ours = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let files = [
        ("cert.pem", ours.cert.pem()),
        ("key.pem", ours.signing_key.serialize_pem()),
        ("other-key.pem", other.signing_key.serialize_pem()),
    ];
    for (name, pem) in files {
        std::fs::write(dir.path().join(name), pem).unwrap();
    }
    let start = |cert: &str, key: &str| {
        let out = command(dir.path())
            .env("ZEGO_CALLBACK_SECRET", "s")
            .env("TLS_CERT_PATH", cert)
            .env("TLS_KEY_PATH", key)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let swapped = start("key.pem", "cert.pem");
    assert!(
        swapped.contains("cannot load TLS_CERT_PATH key.pem: it holds no PEM certificate"),
        "{swapped}"
    );
    let key_is_a_cert = start("cert.pem", "cert.pem");
    assert!(
        key_is_a_cert
            .contains("cannot load TLS_KEY_PATH cert.pem: it holds no usable PEM private key"),
        "{key_is_a_cert}"
    );
    let mismatched = start("cert.pem", "other-key.pem");
    assert!(
        mismatched.contains("TLS_KEY_PATH other-key.pem is not the key of TLS_CERT_PATH cert.pem"),
        "{mismatched}"
    );
}

/// `WRITER_CPU=auto` on SQLite (the default): the group-commit writer and
/// the SQLite write connection's thread run on one CPU, the last this
/// process may use, and the HTTP threads stay free. With `off` nothing is
/// pinned. (Linux: read from /proc.)
#[cfg(target_os = "linux")]
#[test]
fn the_sqlite_writer_and_its_connection_share_one_cpu() {
    /// Each thread's name and the CPUs it may run on (`0-1` style).
    fn threads(pid: u32) -> Vec<(String, String)> {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
        tasks
            .filter_map(|task| {
                let dir = task.ok()?.path();
                let name = std::fs::read_to_string(dir.join("comm")).ok()?;
                let status = std::fs::read_to_string(dir.join("status")).ok()?;
                let cpus = status
                    .lines()
                    .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
                Some((name.trim().to_owned(), cpus.trim().to_owned()))
            })
            .collect()
    }
    let cpus_of = |threads: &[(String, String)], prefix: &str| -> Vec<String> {
        threads
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(_, cpus)| cpus.clone())
            .collect()
    };
    let allowed = zego_room_tracker::store::writer_cpu::allowed_cpus();
    for setting in ["auto", "off"] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = command(dir.path());
        cmd.env("ZEGO_CALLBACK_SECRET", "s")
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("WRITER_CPU", setting);
        let (mut child, _addr, _rx) = spawn_until_listening(cmd);
        let unpinned = threads(child.id())
            .into_iter()
            .find(|(name, _)| name == "zego-room-track")
            .map(|(_, cpus)| cpus)
            .unwrap();
        let expected = match (setting, allowed.last()) {
            ("auto", Some(last)) if allowed.len() >= 2 => last.to_string(),
            _ => unpinned.clone(),
        };
        // The writer starts, pins itself and reopens the connection just
        // after the `listening` line.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let seen = loop {
            let seen = threads(child.id());
            let writer = cpus_of(&seen, "zrt-group-commi");
            let connection = cpus_of(&seen, "sqlite-writer");
            if (writer == [expected.clone()] && connection == [expected.clone()])
                || std::time::Instant::now() > deadline
            {
                break seen;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(
            cpus_of(&seen, "zrt-group-commi"),
            std::slice::from_ref(&expected),
            "WRITER_CPU={setting}: {seen:?}"
        );
        assert_eq!(
            cpus_of(&seen, "sqlite-writer"),
            std::slice::from_ref(&expected),
            "WRITER_CPU={setting}: {seen:?}"
        );
        let workers = cpus_of(&seen, "tokio-rt-worker");
        assert!(!workers.is_empty(), "{seen:?}");
        for cpus in workers {
            assert_eq!(cpus, unpinned, "WRITER_CPU={setting}: {seen:?}");
        }
    }
}

#[test]
fn a_writer_cpu_the_process_cannot_use_is_named_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .env("ZEGO_CALLBACK_SECRET", "s")
        .env("WRITER_CPU", "100000")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("WRITER_CPU=100000: this process may run on CPUs"),
        "{stderr}"
    );
}
