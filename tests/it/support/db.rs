//! A fresh database per test, on either backend.
//!
//! PostgreSQL: `TEST_DATABASE_URL` (an admin URL, default
//! `postgres://postgres@127.0.0.1:5432/postgres`). When nothing answers
//! there, a throwaway cluster is started under `target/` with the installed
//! `initdb`/`pg_ctl`. When that is impossible the PostgreSQL tests say so
//! loudly and pass without running — except with `CI` set (but not to `false` or `0`), where they fail.

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection};
use zego_room_tracker::store::Backend;

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const THROWAWAY_PORT: u16 = 54329;
const DB_PREFIX: &str = "zrt_it_";

/// A database made for one test. SQLite files live in a temp dir that goes
/// away with the value; PostgreSQL databases are dropped at the start of the
/// next run (a pool may still hold connections when a test ends).
pub struct TestDb {
    pub url: String,
    /// For PostgreSQL, `host:port` of the server (tests reroute it through a proxy).
    pub pg_server: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => Some(TestDb::sqlite()),
            Backend::Postgres => TestDb::postgres().await,
        }
    }

    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        TestDb {
            url,
            pg_server: None,
            _dir: Some(dir),
        }
    }

    /// The SQLite database's file (`None` for PostgreSQL).
    pub fn sqlite_file(&self) -> Option<String> {
        self.url.strip_prefix("sqlite://").map(str::to_owned)
    }

    async fn postgres() -> Option<TestDb> {
        TestDb::postgres_with("").await
    }

    /// A PostgreSQL database whose collation is ICU's `locale` (e.g.
    /// `en-US`, where `a` sorts before `B`), not the server's default.
    pub async fn postgres_icu(locale: &str) -> Option<TestDb> {
        TestDb::postgres_with(&format!(
            "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '{locale}' LOCALE 'C.UTF-8'"
        ))
        .await
    }

    /// A PostgreSQL database made by `CREATE DATABASE name {options}`.
    pub async fn postgres_with(options: &str) -> Option<TestDb> {
        let admin = admin_url()?;
        // The run's pid in the name: a concurrent run's cleanup leaves it be.
        let name = format!(
            "{DB_PREFIX}{}_{:016x}",
            std::process::id(),
            rand::random::<u64>()
        );
        let mut conn = PgConnection::connect(admin)
            .await
            .expect("connect to PostgreSQL admin URL");
        conn.execute(format!("CREATE DATABASE {name} {options}").as_str())
            .await
            .expect("create test database");
        let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
        let server = base.rsplit_once('@').map_or(base, |(_, h)| h).to_owned();
        Some(TestDb {
            url: format!("{base}/{name}"),
            pg_server: Some(server),
            _dir: None,
        })
    }
}

/// The PostgreSQL admin URL for this run, found (or started) once.
fn admin_url() -> Option<&'static str> {
    static ADMIN: OnceLock<Option<String>> = OnceLock::new();
    ADMIN
        .get_or_init(|| {
            let found = find_or_start_postgres();
            match &found {
                Ok(url) => drop_leftover_databases(url),
                Err(why) if in_ci() => {
                    panic!("CI is set and PostgreSQL is unavailable: {why}")
                }
                // Written to the real stderr: the test harness captures eprintln!.
                Err(why) => drop(writeln!(
                    std::io::stderr(),
                    "\n\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                     !! PostgreSQL tests are NOT RUNNING: {why}\n\
                     !! Fix: start PostgreSQL (e.g. `pg_ctlcluster 15 main start`), install it\n\
                     !! (`apt-get install postgresql`), or set TEST_DATABASE_URL to an admin URL.\n\
                     !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
                )),
            }
            found.ok()
        })
        .as_deref()
}

/// `CI` set to anything but empty, `false` or `0` (CI services set `true`,
/// some `1`): the PostgreSQL half must run there, never skip.
fn in_ci() -> bool {
    std::env::var("CI")
        .is_ok_and(|v| !matches!(v.to_ascii_lowercase().as_str(), "" | "false" | "0"))
}

fn find_or_start_postgres() -> Result<String, String> {
    let configured = std::env::var("TEST_DATABASE_URL").ok();
    let url = configured
        .clone()
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned());
    if answers(&url) {
        return Ok(url);
    }
    if configured.is_some() {
        return Err(format!("nothing answers at TEST_DATABASE_URL {url}"));
    }
    start_throwaway_cluster().map_err(|why| {
        format!("nothing answers at {url}, and no throwaway cluster could be started: {why}")
    })
}

fn answers(url: &str) -> bool {
    let host_port = url
        .split_once('@')
        .map_or(url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok())
}

/// Whether the tests run as root (file modes do not bind root; `initdb`
/// refuses it).
pub fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// `initdb` + `pg_ctl start` in `target/tmp/pg-throwaway`, reused by later
/// runs. As root, the cluster runs as the `postgres` user (initdb refuses
/// root), and where that user cannot reach `target/` (a checkout under
/// root's 0700 home) it lives in the system's temp dir instead.
fn start_throwaway_cluster() -> Result<String, String> {
    let bindir = postgres_bindir().ok_or("no initdb found (is PostgreSQL installed?)")?;
    let url = format!("postgres://postgres@127.0.0.1:{THROWAWAY_PORT}/postgres");
    let as_root = running_as_root();
    let target_tmp = env!("CARGO_TARGET_TMPDIR");
    let postgres_reaches_target = || {
        Command::new("runuser")
            .args(["-u", "postgres", "--", "test", "-x", target_tmp])
            .status()
            .is_ok_and(|s| s.success())
    };
    let dir = if as_root && !postgres_reaches_target() {
        std::env::temp_dir().join(format!("zrt-pg-throwaway-{THROWAWAY_PORT}"))
    } else {
        PathBuf::from(target_tmp).join("pg-throwaway")
    };
    let run = |program: &str, args: &[&str]| -> Result<(), String> {
        let exe = bindir.join(program);
        let mut cmd = if as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .output()
            .map_err(|e| format!("{program}: {e}"))?;
        out.status
            .success()
            .then_some(())
            .ok_or_else(|| format!("{program} failed: {}", String::from_utf8_lossy(&out.stderr)))
    };
    let data = dir.to_string_lossy().into_owned();
    if !dir.join("PG_VERSION").exists() {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        if as_root {
            Command::new("chown")
                .args(["-R", "postgres", &data])
                .status()
                .map_err(|e| e.to_string())?;
        }
        run("initdb", &["-D", &data, "-U", "postgres", "-A", "trust"])?;
    }
    let options = format!("-p {THROWAWAY_PORT} -k {data} -c listen_addresses=127.0.0.1");
    let log = format!("{data}/server.log");
    run(
        "pg_ctl",
        &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
    )?;
    if answers(&url) {
        eprintln!("started a throwaway PostgreSQL cluster in {data} on port {THROWAWAY_PORT}");
        Ok(url)
    } else {
        Err(format!("the throwaway cluster in {data} did not answer"))
    }
}

fn postgres_bindir() -> Option<PathBuf> {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.join("initdb").exists());
    from_pg_config.or_else(|| {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| Some(e.ok()?.path().join("bin")))
            .filter(|p| Path::new(p).join("initdb").exists())
            .collect();
        dirs.sort();
        dirs.pop()
    })
}

/// Waits until at least `n` sessions of the PostgreSQL database at `url`
/// wait for a lock, watched from a connection outside any transaction (one
/// inside sees `pg_stat_activity` as at its first look); `false` if
/// `finished` says the work meant to wait ended first.
pub async fn until_waiting_for_locks(url: &str, n: i64, finished: impl Fn() -> bool) -> bool {
    let mut watcher = PgConnection::connect(url).await.expect("connect");
    let waiting = "SELECT count(*) FROM pg_stat_activity \
                   WHERE datname = current_database() AND wait_event_type = 'Lock'";
    loop {
        let count: i64 = sqlx::query_scalar(waiting)
            .fetch_one(&mut watcher)
            .await
            .expect("pg_stat_activity");
        if count >= n {
            return true;
        }
        if finished() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Drops the databases earlier runs left behind: those of a run whose
/// process is gone. A run still going (another `cargo test` against the
/// same server) may have made a database and not yet connected to it, so
/// being unconnected is not enough; and without `FORCE`, one someone is
/// connected to is refused and left.
fn drop_leftover_databases(admin: &str) {
    let admin = admin.to_owned();
    let cleanup = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        runtime.block_on(async {
            let mut conn = PgConnection::connect(&admin).await.ok()?;
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT datname FROM pg_database WHERE datname LIKE 'zrt\\_it\\_%'",
            )
            .fetch_all(&mut conn)
            .await
            .ok()?;
            for name in names.into_iter().filter(|n| run_has_ended(n)) {
                let _ = conn
                    .execute(format!("DROP DATABASE IF EXISTS {name}").as_str())
                    .await;
            }
            Some(())
        })
    });
    let _ = cleanup.join();
}

/// Whether the test run that made database `name` (`zrt_it_<pid>_<random>`)
/// has exited. Where `/proc` cannot tell (not Linux), or the name has no
/// pid, as taken for ended: the refusal to drop a database in use remains.
fn run_has_ended(name: &str) -> bool {
    let pid = name
        .strip_prefix(DB_PREFIX)
        .and_then(|rest| rest.split_once('_'))
        .and_then(|(pid, _)| pid.parse::<u32>().ok());
    match pid {
        Some(pid) if Path::new("/proc/self").exists() => {
            !Path::new(&format!("/proc/{pid}")).exists()
        }
        _ => true,
    }
}
