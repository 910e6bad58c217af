//! The group-commit writer's connections, held by its store instead of
//! pooled (`Store::own_writer`).
//!
//! sqlx pings a pooled connection every time it goes back to its pool
//! (sqlx-core's `return_to_pool`): a round trip of its own after every
//! batch, which woke PostgreSQL and our writer once more in the middle of
//! the next batch's chain. A held connection goes back as it is: batches
//! 0.1-0.3 ms shorter, +4% under wrk and +4-11% under `send`, side by side
//! (docs/benchmarks.md).

use std::sync::Mutex;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

pub struct HeldConnections {
    connect: PgConnectOptions,
    /// How long opening one may take (`DATABASE_TIMEOUT_MS`, as the pool's
    /// acquire): an unreachable database fails the batch with a 503
    /// instead of holding it for the OS's TCP timeout.
    connect_timeout: Duration,
    /// At most one per worker: each takes one for a batch and puts it back.
    idle: Mutex<Vec<PgConnection>>,
}

impl HeldConnections {
    pub fn new(connect: PgConnectOptions, connect_timeout: Duration) -> HeldConnections {
        HeldConnections {
            connect,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle connection, or a new one.
    pub async fn take(&self) -> Result<PgConnection, sqlx::Error> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => tokio::time::timeout(self.connect_timeout, self.connect.connect())
                .await
                .unwrap_or(Err(sqlx::Error::PoolTimedOut)),
        }
    }

    /// Back for the next batch. Only a connection whose transaction ended
    /// cleanly comes back; one that failed is dropped (its socket closes,
    /// so PostgreSQL rolls back whatever it held) and the next batch opens
    /// another.
    pub fn put_back(&self, conn: PgConnection) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
    }

    /// Closes the idle connections (at shutdown).
    pub async fn close(&self) {
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        for conn in idle {
            let _ = conn.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database that accepts the connection and never answers (a
    /// black-holed host, a hung server): `take` gives up after the timeout.
    #[tokio::test]
    async fn opening_gives_up_after_the_timeout() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let connect = PgConnectOptions::new()
            .host("127.0.0.1")
            .port(port)
            .username("postgres");
        let held = HeldConnections::new(connect, Duration::from_millis(200));
        let started = std::time::Instant::now();
        let error = held.take().await.unwrap_err();
        assert!(matches!(error, sqlx::Error::PoolTimedOut), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
