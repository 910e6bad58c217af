//! Group commit: deliveries that arrive together are written in one
//! transaction, so one commit (one fsync) serves many requests. Each request
//! is answered only after the transaction holding it commits.
//!
//! No fixed wait: a worker takes whatever is queued (up to `max_batch`) the
//! moment it is free, so a lone callback is written at once and batches grow
//! only when commits are the bottleneck. If a batch fails for a reason other
//! than an unreachable database (a deadlock between replicas, a bug tripped
//! by one delivery), its deliveries are retried one transaction each, so one
//! bad delivery cannot fail its neighbours.
//!
//! The workers run on a thread of their own, with a current-thread runtime
//! (and, on PostgreSQL, connections of their own, held rather than pooled:
//! `store::postgres::held`). A batch is a chain
//! of round trips, one after another, and on the shared runtime each answer
//! from PostgreSQL waited for a worker thread busy with HTTP connections to
//! notice it and run the batch on: the batch took longer, so fewer
//! callbacks were written per second. On their own thread the workers
//! sleep in their own epoll and wake as soon as the answer arrives
//! (docs/benchmarks.md has the figures).

use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use super::{Store, StoreError, writer_cpu};
use crate::domain::{Delivery, Outcome};

/// Batching settings.
#[derive(Debug, Clone, Copy)]
pub struct GroupCommitOptions {
    /// Most deliveries in one transaction.
    pub max_batch: usize,
    /// Transactions in flight at once (SQLite has one writer: 1).
    pub workers: usize,
    /// The CPU the workers' thread is pinned to (`store::writer_cpu`), if any.
    pub cpu: Option<usize>,
}

struct Job {
    delivery: Delivery,
    reply: oneshot::Sender<Result<Outcome, StoreError>>,
}

/// A handle to the batching writers; cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    queue: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the workers on a thread of their own, with writer connections
    /// of their own where the store offers them (`Store::own_writer`). They
    /// stop once every handle is dropped and the batches in flight are
    /// answered. Fails only when the OS refuses a thread or an epoll instance.
    pub fn start(
        store: &Arc<dyn Store>,
        options: GroupCommitOptions,
    ) -> std::io::Result<GroupCommit> {
        let max_batch = options.max_batch.max(1);
        let workers = options.workers.max(1);
        let (queue, jobs) = mpsc::channel(max_batch * workers * 4);
        let jobs = Arc::new(Mutex::new(jobs));
        let spawn_workers = move |store: Arc<dyn Store>| {
            (0..workers)
                .map(|_| {
                    let worker = worker(store.clone(), jobs.clone(), max_batch);
                    tokio::spawn(worker)
                })
                .collect::<Vec<_>>()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let shared = store.clone();
        std::thread::Builder::new()
            .name("zrt-group-commit".into())
            .spawn(move || {
                let pinned = match options.cpu {
                    Some(cpu) if writer_cpu::pin_current_thread(cpu) => Some(cpu),
                    Some(cpu) => {
                        tracing::warn!(cpu, "WRITER_CPU: the system refused to pin the group-commit writer; it runs unpinned");
                        None
                    }
                    None => None,
                };
                runtime.block_on(async move {
                    if let Some(cpu) = pinned {
                        match shared.reopen_writer_here().await {
                            Ok(()) => tracing::info!(cpu, "group-commit writer pinned to one CPU (WRITER_CPU)"),
                            // The old connection still works, only unpinned.
                            Err(e) => tracing::warn!(cpu, error = %e, "WRITER_CPU: could not reopen the write connection on the pinned thread"),
                        }
                    }
                    // Opened here, so the connections belong to this runtime.
                    let own = shared.own_writer(workers as u32);
                    for handle in spawn_workers(own.clone().unwrap_or(shared)) {
                        let _ = handle.await;
                    }
                    if let Some(own) = own {
                        own.close().await;
                    }
                })
            })?;
        Ok(GroupCommit { queue })
    }

    /// Records `delivery` in the next batch; resolves after its commit.
    pub async fn record(&self, delivery: Delivery) -> Result<Outcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { delivery, reply })
            .await
            .map_err(|_| StoreError::Unusable("the group-commit writer has stopped".into()))?;
        answer.await.map_err(|_| {
            StoreError::Unusable("the group-commit writer stopped before answering".into())
        })?
    }
}

async fn worker(store: Arc<dyn Store>, jobs: Arc<Mutex<mpsc::Receiver<Job>>>, max_batch: usize) {
    loop {
        // Gather under the lock; commit after releasing it, so the next
        // worker gathers the next batch meanwhile.
        let batch = {
            let mut jobs = jobs.lock().await;
            let Some(first) = jobs.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < max_batch {
                let Ok(job) = jobs.try_recv() else { break };
                batch.push(job);
            }
            batch
        };
        // Arrival order; the recorder takes each step's locks in key
        // order, so concurrent batches do not deadlock on one another.
        let (deliveries, replies): (Vec<Delivery>, Vec<_>) =
            batch.into_iter().map(|j| (j.delivery, j.reply)).unzip();
        let started = std::time::Instant::now();
        let result = record_with_retries(store.as_ref(), &deliveries).await;
        crate::metrics::record_batch(deliveries.len(), started.elapsed());
        match result {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            // A bug tripped by one delivery, or a deadlock that kept coming
            // back: each delivery on its own, so only the culprit fails.
            Err(e)
                if deliveries.len() > 1
                    && (e.is_lock_conflict()
                        || matches!(
                            e,
                            StoreError::Internal(_)
                                | StoreError::Inconsistent(_)
                                | StoreError::Panicked(_)
                        )) =>
            {
                tracing::warn!(error = %e, size = deliveries.len(), "batch failed; retrying its deliveries one by one");
                for (delivery, reply) in deliveries.iter().zip(replies) {
                    let alone =
                        record_with_retries(store.as_ref(), std::slice::from_ref(delivery)).await;
                    let _ =
                        reply.send(alone.map(|mut o| o.pop().expect("one outcome per delivery")));
                }
            }
            // The database is unreachable: everyone gets the 503 (ZEGO retries).
            Err(e) => {
                let mut replies = replies.into_iter();
                let first = replies.next();
                for reply in replies {
                    let _ = reply.send(Err(e.shared()));
                }
                if let Some(first) = first {
                    let _ = first.send(Err(e));
                }
            }
        }
    }
}

/// One transaction for `deliveries`, run again (up to three times) when
/// PostgreSQL chose it as a deadlock or serialization victim.
async fn record_with_retries(
    store: &dyn Store,
    deliveries: &[Delivery],
) -> Result<Vec<Outcome>, StoreError> {
    super::retrying_lock_conflicts(|| record_catching_panics(store, deliveries)).await
}

/// `record_deliveries`, with a panic turned into `StoreError::Panicked`.
/// A panic is a bug some input tripped; uncaught, it ended this worker, and
/// every later callback waited for a writer that was gone (503s until a
/// restart). Caught, the batch's deliveries are retried one by one and only
/// the culprit fails. The open transaction is dropped on the way out, which
/// rolls it back.
async fn record_catching_panics(
    store: &dyn Store,
    deliveries: &[Delivery],
) -> Result<Vec<Outcome>, StoreError> {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(store.record_deliveries(deliveries))
        .catch_unwind()
        .await
    {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            Err(StoreError::Panicked(what))
        }
    }
}
