//! Connections and threads: one writer thread doing group commit, and a pool of read-only
//! connections.
//!
//! SQLite allows one writer at a time, and with `synchronous=FULL` every commit costs an fsync of
//! the WAL. So all writes go to one thread that owns the only read-write connection: it takes every
//! job waiting in its queue, runs them inside one `BEGIN IMMEDIATE … COMMIT` (each job inside its
//! own SAVEPOINT, so a failing job is rolled back alone), and answers each caller only after the
//! COMMIT has returned — one fsync acknowledges the whole group. Just before COMMIT the group's new
//! messages are added to the full-text index in one go (see `migrations::V2` for why not per job).
//! Reads never wait for the writer: WAL lets the read-only connections see the last committed
//! state concurrently. A third thread checkpoints the WAL into the database file in the background.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::migrations;
use super::rows::db;
use crate::store::{StoreError, StoreResult};

/// Upper bound of jobs per transaction, so one commit's latency stays bounded under a flood.
const MAX_GROUP: usize = 1024;
/// Writes queued beyond this make callers wait (backpressure instead of unbounded memory).
const QUEUE_DEPTH: usize = 8192;
/// Read-only connections; a few are enough on small machines since reads are short.
const READERS: usize = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Prepared statements kept per connection; the backend uses fewer than this many distinct SQL texts.
const STATEMENT_CACHE: usize = 128;
/// Page cache of the write connection (KiB, SQLite's negative-size convention): keeps the hot
/// right-hand edges of the message, index and FTS b-trees in memory.
const WRITER_CACHE_KIB: i64 = 32 * 1024;
const READER_CACHE_KIB: i64 = 8 * 1024;
/// How often the checkpointer folds the WAL back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// The writer checkpoints by itself only past this many WAL pages: a safety net in case the
/// checkpointer thread cannot keep up or has died, not the normal path.
const WRITER_AUTOCHECKPOINT_PAGES: i64 = 20_000;

type WriteOp<R> = Box<dyn FnOnce(&Connection) -> StoreResult<R> + Send>;
type RawOp = Box<dyn FnOnce(&mut Connection) + Send>;

enum Job {
    /// Runs inside the group transaction, in its own savepoint.
    Tx(Box<dyn GroupJob>),
    /// Runs alone, outside any transaction (checkpoints, pings).
    Raw(RawOp),
}

/// A write waiting for its group's COMMIT. Type-erased so jobs of any result type share one queue.
trait GroupJob: Send {
    /// Runs the job inside a savepoint. Returns false if the connection is left in a state where
    /// the group transaction cannot be trusted any more.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the group's fate is known (`commit` is the COMMIT's outcome).
    fn finish(self: Box<Self>, commit: Result<(), &str>);
}

struct Pending<R> {
    op: Option<WriteOp<R>>,
    result: Option<StoreResult<R>>,
    reply: oneshot::Sender<StoreResult<R>>,
}

fn sql(conn: &Connection, text: &str) -> StoreResult<()> {
    conn.prepare_cached(text).and_then(|mut s| s.execute([])).map(drop).map_err(db)
}

impl<R: Send + 'static> GroupJob for Pending<R> {
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(op) = self.op.take() else {
            return true;
        };
        if let Err(e) = sql(conn, "SAVEPOINT job") {
            self.result = Some(Err(e));
            return false;
        }
        // A panic in one job must not take the writer thread (and every later write) down with it.
        let outcome = catch_unwind(AssertUnwindSafe(|| op(conn)))
            .unwrap_or_else(|_| Err(StoreError::Backend("sqlite write job panicked".into())));
        let closed = match &outcome {
            Ok(_) => sql(conn, "RELEASE job"),
            Err(_) => sql(conn, "ROLLBACK TO job").and_then(|()| sql(conn, "RELEASE job")),
        };
        let healthy = closed.is_ok() && !conn.is_autocommit();
        self.result = Some(match (outcome, closed) {
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(e),
            (Ok(v), Ok(())) => Ok(v),
        });
        healthy
    }

    fn finish(self: Box<Self>, commit: Result<(), &str>) {
        let answer = match (self.result, commit) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (Some(Ok(_)) | None, Err(why)) => Err(StoreError::Backend(format!("sqlite write not committed: {why}"))),
            (None, Ok(())) => Err(StoreError::Backend("sqlite write job was never run".into())),
        };
        // The caller may have given up waiting; the write stands either way.
        let _ = self.reply.send(answer);
    }
}

/// Runs one group: BEGIN IMMEDIATE, every job in its savepoint, the search-index drain, COMMIT,
/// then the answers.
fn run_group(conn: &Connection, mut jobs: Vec<Box<dyn GroupJob>>) {
    if let Err(e) = sql(conn, "BEGIN IMMEDIATE") {
        let why = e.to_string();
        jobs.into_iter().for_each(|j| j.finish(Err(&why)));
        return;
    }
    let healthy = jobs.iter_mut().all(|job| job.run(conn));
    let commit = if !healthy {
        Err("the group transaction was aborted by a failing write".to_owned())
    } else if let Err(e) = migrations::drain_fts_queue(conn) {
        // The group's messages would commit unsearchable: fail the group instead.
        Err(format!("indexing the group's messages for search failed: {e}"))
    } else {
        sql(conn, "COMMIT").map_err(|e| e.to_string())
    };
    if commit.is_err() && !conn.is_autocommit() {
        // Nothing of this group may persist if we are about to report it as failed.
        if let Err(e) = sql(conn, "ROLLBACK") {
            tracing::error!(error = %e, "sqlite rollback after failed group failed");
        }
    }
    let commit = commit.as_ref().map(|_| ()).map_err(String::as_str);
    if let Err(why) = commit {
        tracing::error!(jobs = jobs.len(), error = why, "sqlite group commit failed");
    }
    jobs.into_iter().for_each(|j| j.finish(commit));
}

fn writer_loop(mut conn: Connection, mut queue: mpsc::Receiver<Job>) {
    let mut group: Vec<Box<dyn GroupJob>> = Vec::new();
    // Ends when every sender is gone, i.e. the store was dropped; the connection closes cleanly.
    while let Some(first) = queue.blocking_recv() {
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Tx(j) => group.push(j),
                Job::Raw(f) => {
                    // Keep the queue's order: what was sent before this job commits before it runs.
                    if !group.is_empty() {
                        run_group(&conn, std::mem::take(&mut group));
                    }
                    if catch_unwind(AssertUnwindSafe(|| f(&mut conn))).is_err() {
                        tracing::error!("sqlite raw writer job panicked");
                    }
                }
            }
            if group.len() < MAX_GROUP {
                next = queue.try_recv().ok();
            }
        }
        if !group.is_empty() {
            run_group(&conn, std::mem::take(&mut group));
        }
    }
}

struct Readers {
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

/// Gives the connection back to the pool even if the read closure panics.
struct Checkout<'a> {
    pool: &'a Readers,
    conn: Option<Connection>,
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.idle.lock().push(conn);
        }
    }
}

pub struct Engine {
    queue: mpsc::Sender<Job>,
    readers: Arc<Readers>,
    /// Dropping it stops the checkpointer thread.
    _checkpointer: std::sync::mpsc::Sender<()>,
}

/// Runs PASSIVE checkpoints on a connection of its own, so that copying WAL pages into the
/// database file and fsyncing it never stalls a write group (it did, inline, at every
/// `wal_autocheckpoint`). PASSIVE never waits for the writer or readers; it copies what it can.
fn checkpointer_loop(conn: Connection, stop: std::sync::mpsc::Receiver<()>) {
    use std::sync::mpsc::RecvTimeoutError;
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "sqlite background checkpoint failed");
        }
    }
}

fn writer_gone() -> StoreError {
    StoreError::Backend("sqlite writer thread has stopped".into())
}

fn configure(conn: &Connection) -> StoreResult<()> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

impl Engine {
    /// Opens (creating if needed) the database, migrates it and starts the writer thread. Blocking.
    pub fn open(path: &Path) -> StoreResult<Engine> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Backend(format!("creating {}: {e}", dir.display())))?;
        }
        let mut writer =
            Connection::open(path).map_err(|e| StoreError::Backend(format!("opening {}: {e}", path.display())))?;
        configure(&writer)?;
        let mode: String = writer.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).map_err(db)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!("sqlite refused WAL mode (got {mode})")));
        }
        // FULL: the WAL is fsynced at every COMMIT, so an acknowledged write survives power loss
        // and kill -9 (NORMAL would only survive the latter).
        writer.pragma_update(None, "synchronous", "FULL").map_err(db)?;
        writer.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        writer.pragma_update(None, "temp_store", "MEMORY").map_err(db)?;
        writer.pragma_update(None, "cache_size", -WRITER_CACHE_KIB).map_err(db)?;
        writer.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES).map_err(db)?;
        // Keep the WAL file from staying huge after a burst once it has been checkpointed.
        writer.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024).map_err(db)?;
        let fk: i64 = writer.query_row("PRAGMA foreign_keys", [], |r| r.get(0)).map_err(db)?;
        if fk != 1 {
            return Err(StoreError::Backend("sqlite foreign keys could not be enabled".into()));
        }
        migrations::migrate(&mut writer)?;
        {
            let tx = writer.transaction().map_err(db)?;
            migrations::drain_fts_queue(&tx)?;
            tx.commit().map_err(db)?;
        }

        let checkpoint_conn = Connection::open(path).map_err(db)?;
        configure(&checkpoint_conn)?;
        // The checkpoint's fsync of the database file follows this connection's setting.
        checkpoint_conn.pragma_update(None, "synchronous", "FULL").map_err(db)?;

        let mut idle = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
            let conn = Connection::open_with_flags(path, flags).map_err(db)?;
            configure(&conn)?;
            conn.pragma_update(None, "cache_size", -READER_CACHE_KIB).map_err(db)?;
            idle.push(conn);
        }
        let readers = Arc::new(Readers { idle: Mutex::new(idle), permits: Arc::new(Semaphore::new(READERS)) });

        let (stop_checkpoints, stop_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("chorus-sqlite-checkpoint".into())
            .spawn(move || checkpointer_loop(checkpoint_conn, stop_rx))
            .map_err(|e| StoreError::Backend(format!("starting sqlite checkpointer thread: {e}")))?;
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("chorus-sqlite-writer".into())
            .spawn(move || writer_loop(writer, rx))
            .map_err(|e| StoreError::Backend(format!("starting sqlite writer thread: {e}")))?;
        Ok(Engine { queue, readers, _checkpointer: stop_checkpoints })
    }

    /// Runs `op` in the writer's next group; resolves after the group's COMMIT (durable) or failure.
    pub async fn write<R, F>(&self, op: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Pending { op: Some(Box::new(op) as WriteOp<R>), result: None, reply };
        self.queue.send(Job::Tx(Box::new(job))).await.map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }

    /// Runs `op` on the write connection outside any transaction, after everything queued before it.
    pub async fn write_raw<R, F>(&self, op: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<R> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: RawOp = Box::new(move |conn| {
            let _ = reply.send(op(conn));
        });
        self.queue.send(Job::Raw(job)).await.map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }

    /// Runs `op` on a read-only connection on the blocking pool.
    pub async fn read<R, F>(&self, op: F) -> StoreResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    {
        let permit = Arc::clone(&self.readers.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Backend("sqlite reader pool closed".into()))?;
        let readers = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = readers.idle.lock().pop();
            let checkout = Checkout { pool: &readers, conn };
            match &checkout.conn {
                Some(conn) => op(conn),
                // The semaphore has as many permits as connections, so this means a lost connection.
                None => Err(StoreError::Backend("no idle sqlite reader connection".into())),
            }
        })
        .await
        .map_err(|e| StoreError::Backend(format!("sqlite read task failed: {e}")))?
    }
}
