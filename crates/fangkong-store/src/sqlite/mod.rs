//! The embedded SQLite backend.
//!
//! SQLite allows one writer at a time, so instead of letting connections fight over the
//! write lock, every write is a closure sent to **one writer thread**. The thread takes
//! whatever writes have queued up, runs each inside its own savepoint of one transaction
//! and commits once: one fsync acknowledges many writers (group commit), while each write
//! still succeeds or fails on its own and never leaves half its rows behind.
//!
//! Reads run on a small pool of read-only connections on tokio's blocking threads; WAL mode
//! lets them proceed while the writer commits.
//!
//! Durability: `journal_mode=WAL` with `synchronous=FULL` syncs the WAL on every commit, so a
//! write is on disk before its caller hears it succeeded and survives a power cut.

mod audit;
mod codes;
mod dispatch;
mod forces;
mod identity;
mod outbox;
mod positions;
mod registry;
mod registry_keys;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::{Semaphore, oneshot};

use crate::migrate::{self, AppliedMigration, Migration, MigrationReport};
use crate::{StoreError, wall_clock_millis};

/// Most writes committed together; bounds the latency one commit adds to the first writer.
const MAX_GROUP: usize = 512;
/// Writes that may wait for the writer thread at once; one more waits up to
/// [`WRITER_QUEUE_WAIT`] for a place and is then refused ([`StoreError::Busy`], `503` on the
/// API), so memory stays bounded when the disk cannot keep up.
const WRITER_QUEUE: usize = 16_384;
const WRITER_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// Read-only connections kept open.
const READERS: usize = 4;

#[derive(Debug)]
pub struct SqliteStore {
    writer: Mutex<Option<Writer>>,
    /// Room in the writer's queue: a write takes a place before it is queued and gives it
    /// back once the writer has run it, so at most [`WRITER_QUEUE`] writes wait.
    queue: Arc<tokio::sync::Semaphore>,
    /// How long a write waits for a place before it is refused with [`StoreError::Busy`].
    queue_wait: std::time::Duration,
    readers: Arc<ReaderPool>,
    /// Checkpoints asked for and done, for [`SqliteStore::checkpoint_settled`].
    checkpoints: Arc<CheckpointCount>,
}

impl SqliteStore {
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let path = path.to_path_buf();
        let checkpoints = Arc::new(CheckpointCount::default());
        let writer = tokio::task::spawn_blocking({
            let (path, checkpoints) = (path.clone(), Arc::clone(&checkpoints));
            move || Writer::start(&path, checkpoints)
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))??;
        Ok(SqliteStore {
            readers: Arc::new(ReaderPool::new(path)),
            writer: Mutex::new(Some(writer)),
            queue: Arc::new(tokio::sync::Semaphore::new(WRITER_QUEUE)),
            queue_wait: WRITER_QUEUE_WAIT,
            checkpoints,
        })
    }

    /// Waits until no background checkpoint is running (one follows every bulk write; see
    /// [`SqliteStore::write_alone`]).
    pub async fn checkpoint_settled(&self) {
        while !self.checkpoints.settled() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Runs `operation` on the writer thread inside its own savepoint and returns its
    /// result once the transaction holding it is durably committed. If `operation` fails,
    /// everything it wrote is rolled back and the error is returned.
    pub async fn write<T, F>(&self, operation: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(operation, false).await
    }

    /// Like [`SqliteStore::write`], but in a transaction of its own with no savepoint: for
    /// a bulk write (an import) that would otherwise copy every page it touches to the
    /// savepoint's sub-journal. Writes queued before it commit first; those after it wait.
    /// Its commit does not checkpoint: the caller hears of the commit once the WAL is
    /// synced, and a background thread then copies the (large) WAL into the database file
    /// while writes go on.
    pub async fn write_alone<T, F>(&self, operation: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit(operation, true).await
    }

    async fn submit<T, F>(&self, operation: F, alone: bool) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let place = match tokio::time::timeout(self.queue_wait, Arc::clone(&self.queue).acquire_owned()).await {
            Ok(Ok(place)) => place,
            Ok(Err(_)) => return Err(StoreError::Closed),
            Err(_) => return Err(StoreError::Busy),
        };
        let (reply, result) = oneshot::channel();
        let job = Box::new(WriteJob { operation, reply, alone, _place: place });
        {
            let writer = self.writer.lock().expect("writer lock");
            let writer = writer.as_ref().ok_or(StoreError::Closed)?;
            writer.jobs.send(job).map_err(|_| StoreError::Closed)?;
        }
        result.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `query` on a read-only connection.
    pub async fn read<T, F>(&self, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if self.writer.lock().expect("writer lock").is_none() {
            return Err(StoreError::Closed);
        }
        ReaderPool::read(&self.readers, query).await
    }

    /// Runs `query` on an idle read-only connection on the calling thread, for point
    /// queries that take less time than a hop to a blocking thread would; when every
    /// connection is busy it waits like [`SqliteStore::read`].
    pub async fn read_inline<T, F>(&self, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if self.writer.lock().expect("writer lock").is_none() {
            return Err(StoreError::Closed);
        }
        let idle = match self.readers.permits.try_acquire() {
            Ok(permit) => self.readers.idle.lock().expect("reader pool lock").pop().map(|conn| (permit, conn)),
            Err(_) => None,
        };
        match idle {
            Some((_permit, conn)) => {
                let result = query(&conn);
                self.readers.idle.lock().expect("reader pool lock").push(conn);
                result
            }
            None => ReaderPool::read(&self.readers, query).await,
        }
    }

    pub async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        self.write(|conn| {
            let applied = applied_migrations(conn)?;
            let pending = migrate::plan(migrate::SQLITE, &applied)?;
            let mut report = MigrationReport { applied: Vec::new(), version: migrate::current_version(&applied) };
            for migration in pending {
                apply_migration(conn, migration)?;
                report.applied.push((migration.version, migration.name));
                report.version = migration.version;
            }
            // Work a migration left for code (SQL cannot compute it), in the same transaction.
            if conn
                .query_row("SELECT 1 FROM meta WHERE key = 'registry_keys_rebuild'", [], |_| Ok(()))
                .optional()?
                .is_some()
            {
                registry_keys::rebuild(conn)?;
                conn.execute("DELETE FROM meta WHERE key = 'registry_keys_rebuild'", [])?;
            }
            Ok(report)
        })
        .await
    }

    pub async fn pending_migrations(&self) -> Result<Vec<&'static Migration>, StoreError> {
        self.read(|conn| {
            let applied = if table_exists(conn, "schema_migrations")? { read_applied(conn)? } else { Vec::new() };
            migrate::plan(migrate::SQLITE, &applied)
        })
        .await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| Ok(conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0)).map(|_| ())?)).await
    }

    pub async fn close(&self) {
        let writer = self.writer.lock().expect("writer lock").take();
        if let Some(writer) = writer {
            // Dropping the sender lets the thread drain what is queued, commit and exit.
            let Writer { jobs, thread } = writer;
            drop(jobs);
            let joined = tokio::task::spawn_blocking(move || thread.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::error!("the SQLite writer thread ended abnormally");
            }
        }
        self.readers.clear();
    }

    pub async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_string();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
                .query_row([key], |row| row.get(0))
                .optional()?)
        })
        .await
    }

    pub async fn meta_set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let (key, value) = (key.to_string(), value.to_string());
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![key, value])?;
            Ok(())
        })
        .await
    }
}

/// Opens a connection with the settings every connection of ours uses.
fn open_connection(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA cache_size = -16000;")?;
    Ok(conn)
}

// ---- the writer thread ------------------------------------------------------------------

#[derive(Debug)]
struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
    thread: JoinHandle<()>,
}

/// A write waiting for the writer thread. `run` executes it and returns what must happen
/// once the enclosing transaction's outcome is known.
trait Job: Send {
    fn run(self: Box<Self>, conn: &Connection) -> (bool, Box<dyn Completion>);
    fn abort(self: Box<Self>, error: StoreError);
    /// Runs in a transaction of its own, without a savepoint (see [`SqliteStore::write_alone`]).
    fn alone(&self) -> bool {
        false
    }
}

trait Completion: Send {
    fn complete(self: Box<Self>, commit: Result<(), StoreError>);
}

struct WriteJob<F, T> {
    operation: F,
    reply: oneshot::Sender<Result<T, StoreError>>,
    alone: bool,
    /// Its place in the queue, given back when the job has run (or is aborted).
    _place: tokio::sync::OwnedSemaphorePermit,
}

struct Finished<T> {
    outcome: Result<T, StoreError>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<F, T> Job for WriteJob<F, T>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> (bool, Box<dyn Completion>) {
        // A panicking operation must not take the writer thread (and every later write)
        // down with it: it fails alone and its savepoint is rolled back.
        let operation = self.operation;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| operation(conn)))
            .unwrap_or_else(|_| Err(StoreError::backend(std::io::Error::other("a write operation panicked"))));
        (outcome.is_ok(), Box::new(Finished { outcome, reply: self.reply }))
    }

    fn abort(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }

    fn alone(&self) -> bool {
        self.alone
    }
}

impl<T: Send> Completion for Finished<T> {
    fn complete(self: Box<Self>, commit: Result<(), StoreError>) {
        let result = match (self.outcome, commit) {
            (Ok(value), Ok(())) => Ok(value),
            (Err(error), _) | (Ok(_), Err(error)) => Err(error),
        };
        // The caller may have gone away (e.g. its request was cancelled); the write stands.
        let _ = self.reply.send(result);
    }
}

impl Writer {
    fn start(path: &Path, checkpoints: Arc<CheckpointCount>) -> Result<Writer, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(StoreError::Unavailable(format!("{}: directory does not exist", parent.display())));
        }
        let read_write =
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = open_connection(path, read_write)?;
        // A new database gets PAGE_SIZE pages (an existing one keeps its own: in WAL mode
        // the size is fixed once the file has content).
        conn.execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE};"))?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unavailable(format!("{}: cannot switch to WAL mode (got {mode})", path.display())));
        }
        // FULL: the WAL is synced at every commit, so an acknowledged write survives a power
        // cut. NORMAL would only survive an application crash.
        // The writer keeps the pages it touches hot (the position history inserts at as
        // many places as there are trackers: 10,000 trackers are ~40 MB of leaf pages).
        // Checkpoints every ~200 MB of WAL instead of every 4 MB: the position history
        // rewrites the same hot pages batch after batch, and a checkpoint then copies each
        // of them once, not once per batch.
        // Statement journals (each insert into an indexed table may need to undo itself)
        // live in memory: on a temporary file each first touch of a page is a write(2).
        // A WAL that grew past WAL_KEEP_BYTES (a bulk import's, gigabytes) is cut back to it
        // when it next restarts, so it does not keep the page cache from the database.
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0))?;
        let autocheckpoint = AUTOCHECKPOINT_BYTES / page_size;
        conn.execute_batch(&format!(
            "PRAGMA synchronous = FULL; PRAGMA cache_size = -{WRITER_CACHE_KIB}; \
             PRAGMA wal_autocheckpoint = {autocheckpoint}; PRAGMA temp_store = MEMORY; \
             PRAGMA journal_size_limit = {WAL_KEEP_BYTES};"
        ))?;
        let checkpointer = Checkpointer::start(path, checkpoints, WARM_AFTER_BYTES / page_size)?;
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, queue, checkpointer, autocheckpoint))
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Writer { jobs, thread })
    }
}

fn writer_loop(conn: Connection, queue: mpsc::Receiver<Box<dyn Job>>, checkpointer: Checkpointer, autocheckpoint: i64) {
    let mut next = None;
    while let Some(first) = next.take().or_else(|| queue.recv().ok()) {
        if first.alone() {
            checkpointer.expect();
            run_alone(&conn, first, autocheckpoint);
            checkpointer.request();
            continue;
        }
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) if job.alone() => {
                    next = Some(job);
                    break;
                }
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        commit_group(&conn, group);
    }
    // Every sender is gone and the queue is drained: checkpoint so the database file is
    // complete on its own, then close.
    let database_file = checkpointer.stop();
    if let Err(error) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
        tracing::warn!(%error, "WAL checkpoint at close failed; the WAL file will be replayed on next open");
    }
    // The checkpointer's descriptor of the database file is closed after this connection
    // (see `Checkpointer::start`).
    drop(conn);
    drop(database_file);
}

/// One job in its own transaction: committed if it succeeds, rolled back if not. The
/// commit does not checkpoint (the background checkpointer does, afterwards).
///
/// Tried and dropped (2026-12-06): syncing the WAL from a helper thread every 250 ms while
/// the job runs, so that the commit's sync finds less to write. At 10 M residents the
/// import was no faster (227.5 k vs 235.4 k rows/s) and its commit took 3.8 s.
fn run_alone(conn: &Connection, job: Box<dyn Job>, autocheckpoint: i64) {
    if let Err(error) = conn.execute_batch("BEGIN IMMEDIATE") {
        job.abort(error.into());
        return;
    }
    let (ok, completion) = job.run(conn);
    if ok {
        let started = std::time::Instant::now();
        let commit = conn
            .execute_batch("PRAGMA wal_autocheckpoint = 0; COMMIT;")
            .and_then(|()| conn.execute_batch(&format!("PRAGMA wal_autocheckpoint = {autocheckpoint}")))
            .map_err(StoreError::from);
        tracing::info!(seconds = started.elapsed().as_secs_f64(), ok = commit.is_ok(), "bulk write committed");
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        completion.complete(commit);
    } else {
        let _ = conn.execute_batch("ROLLBACK");
        completion.complete(Ok(()));
    }
}

fn commit_group(conn: &Connection, group: Vec<Box<dyn Job>>) {
    if let Err(error) = conn.execute_batch("BEGIN IMMEDIATE") {
        let error = StoreError::from(error);
        for job in group {
            job.abort(error.clone());
        }
        return;
    }
    let mut completions = Vec::with_capacity(group.len());
    let mut jobs = group.into_iter();
    while let Some(job) = jobs.next() {
        if let Err(error) = conn.execute_batch("SAVEPOINT job") {
            job.abort(error.into());
            continue;
        }
        let (ok, completion) = job.run(conn);
        let end = if ok { "RELEASE job" } else { "ROLLBACK TO job; RELEASE job" };
        match conn.execute_batch(end) {
            Ok(()) => completions.push(completion),
            Err(error) => {
                // The savepoint could not be closed: the whole transaction is suspect. Every
                // write in it, done or not yet run, gets a real error (not "closed").
                completion.complete(Err(error.into()));
                let _ = conn.execute_batch("ROLLBACK");
                let rolled_back =
                    || StoreError::backend(std::io::Error::other("transaction rolled back after a failed savepoint"));
                for completion in completions {
                    completion.complete(Err(rolled_back()));
                }
                for job in jobs {
                    job.abort(rolled_back());
                }
                return;
            }
        }
    }
    let commit = conn.execute_batch("COMMIT").map_err(StoreError::from);
    if commit.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for completion in completions {
        completion.complete(commit.clone());
    }
}

/// The page size of a new database. Measured on a bulk insert of 2 M registry rows (a
/// table and two indexes, one transaction, WAL): 8 KiB pages committed in half the time of
/// 4 KiB ones (half the WAL frames, each an unaligned write of page + 24-byte header), and
/// the whole insert ran ~20 % faster; 16 KiB gained nothing more. PostgreSQL's is 8 KiB too.
const PAGE_SIZE: i64 = 8192;

/// The writer's page cache (256 MiB; a bulk import sets its own while it runs).
pub(super) const WRITER_CACHE_KIB: i64 = 262_144;

/// WAL size after which a commit of the writer checkpoints (~200 MB; see `Writer::start`).
const AUTOCHECKPOINT_BYTES: i64 = 200 << 20;

/// How long the checkpointer may wait for readers and the writer to empty the WAL file.
const TRUNCATE_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// The WAL kept on disk after it restarts (the autocheckpoint's ~200 MB, with room).
const WAL_KEEP_BYTES: i64 = 256 << 20;

/// Bytes copied by a checkpoint after which the database file is read back into the page
/// cache (an import, not a registration).
const WARM_AFTER_BYTES: i64 = 100 << 20;

/// Memory the page cache must still leave to everything else after warming.
const WARM_RESERVE_BYTES: u64 = 2 << 30;

/// Reads the whole file once, so the kernel holds its pages (as PostgreSQL's `pg_prewarm`
/// does for a relation), if it fits in `available` memory with [`WARM_RESERVE_BYTES`] to
/// spare; pages already cached cost a copy, not a disk read. The bytes read, or `None` if
/// it does not fit or the memory is unknown.
fn warm_page_cache(file: &std::fs::File, available: Option<u64>) -> std::io::Result<Option<u64>> {
    use std::os::unix::fs::FileExt;
    let size = file.metadata()?.len();
    match available {
        Some(available) if size.saturating_add(WARM_RESERVE_BYTES) <= available => {}
        _ => return Ok(None),
    }
    let mut buffer = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < size {
        match file.read_at(&mut buffer, at)? {
            0 => break,
            read => at += read as u64,
        }
    }
    Ok(Some(at))
}

/// `MemAvailable` of `/proc/meminfo` (Linux): free memory plus the page cache the kernel
/// can reclaim.
fn mem_available_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|line| line.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A thread with a connection of its own that checkpoints when asked (after a bulk write),
/// so that copying a large WAL into the database file holds up neither the writer that
/// made it nor the writes after it.
struct Checkpointer {
    requests: mpsc::Sender<()>,
    /// Gives back the database file it read through, to be closed last.
    thread: JoinHandle<Option<std::fs::File>>,
    count: Arc<CheckpointCount>,
}

/// Bulk writes running (each will ask for a checkpoint), checkpoints asked for, and the
/// last one asked for that has been done.
#[derive(Debug, Default)]
struct CheckpointCount {
    running: std::sync::atomic::AtomicU64,
    asked: std::sync::atomic::AtomicU64,
    done: std::sync::atomic::AtomicU64,
}

impl CheckpointCount {
    fn settled(&self) -> bool {
        use std::sync::atomic::Ordering::Acquire;
        self.running.load(Acquire) == 0 && self.done.load(Acquire) >= self.asked.load(Acquire)
    }
}

impl Checkpointer {
    fn start(path: &Path, count: Arc<CheckpointCount>, warm_after_pages: i64) -> Result<Checkpointer, StoreError> {
        let conn = open_connection(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        // Opened once and closed only after the connections: closing any descriptor of a
        // file drops every POSIX lock the process holds on it, SQLite's included, and then
        // another process (a second server, `fangkong restore`, the sqlite3 shell closing
        // as if it were the last user and deleting the WAL) no longer sees this one.
        let file =
            std::fs::File::open(path).map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
        let (requests, received) = mpsc::channel::<()>();
        let counts = Arc::clone(&count);
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while received.recv().is_ok() {
                    while received.try_recv().is_ok() {}
                    // Everything asked for until now is covered by this checkpoint.
                    let asked = counts.asked.load(std::sync::atomic::Ordering::Acquire);
                    let started = std::time::Instant::now();
                    // PASSIVE copies what it can without waiting for readers or the writer.
                    let outcome = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                    });
                    // Everything copied: empty the WAL file too, if no reader or writer is on it
                    // right now. A bulk import leaves gigabytes of WAL that are dead once
                    // copied (8 GB for 20 M residents); while the file keeps them they take
                    // disk and page cache the database could use. Waits at most
                    // TRUNCATE_WAIT for others (it holds new writes back meanwhile);
                    // otherwise the next restart cuts the WAL back to WAL_KEEP_BYTES.
                    let truncated = match outcome {
                        Ok((log, copied)) if log == copied => {
                            let _ = conn.busy_timeout(TRUNCATE_WAIT);
                            let busy = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0));
                            let _ = conn.busy_timeout(std::time::Duration::from_secs(10));
                            matches!(busy, Ok(0))
                        }
                        _ => false,
                    };
                    let checkpoint_s = started.elapsed().as_secs_f64();
                    // A write this large has pushed pages of the database out of the page
                    // cache (its WAL took their place): read the file back while it fits,
                    // so lookups after it do not each wait for the disk.
                    let warmed = match outcome {
                        Ok((_, copied)) if copied >= warm_after_pages => {
                            let began = std::time::Instant::now();
                            match warm_page_cache(&file, mem_available_bytes()) {
                                Ok(Some(bytes)) => Some((bytes, began.elapsed().as_secs_f64())),
                                Ok(None) => None,
                                Err(error) => {
                                    tracing::warn!(%error, "reading the database back into the page cache failed");
                                    None
                                }
                            }
                        }
                        _ => None,
                    };
                    counts.done.store(asked, std::sync::atomic::Ordering::Release);
                    match outcome {
                        Ok((log, copied)) => tracing::info!(
                            wal_pages = log,
                            copied_pages = copied,
                            truncated,
                            seconds = checkpoint_s,
                            warmed_bytes = warmed.map(|(bytes, _)| bytes),
                            warming_s = warmed.map(|(_, s)| s),
                            "checkpointed after a bulk write"
                        ),
                        Err(error) => tracing::warn!(%error, "background checkpoint failed; the next will retry"),
                    }
                }
                drop(conn);
                Some(file)
            })
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Checkpointer { requests, thread, count })
    }

    /// Marks a checkpoint as due before the write that needs it is acknowledged, so that
    /// whoever waits for it after the acknowledgement waits.
    fn expect(&self) {
        self.count.running.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    fn request(&self) {
        use std::sync::atomic::Ordering::AcqRel;
        self.count.asked.fetch_add(1, AcqRel);
        self.count.running.fetch_sub(1, AcqRel);
        let _ = self.requests.send(());
    }

    /// Ends the thread; returns the database file it held open.
    fn stop(self) -> Option<std::fs::File> {
        drop(self.requests);
        self.thread.join().unwrap_or_else(|_| {
            tracing::error!("the SQLite checkpoint thread ended abnormally");
            None
        })
    }
}

// ---- readers ----------------------------------------------------------------------------

#[derive(Debug)]
struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl ReaderPool {
    fn new(path: PathBuf) -> ReaderPool {
        ReaderPool { path, idle: Mutex::new(Vec::new()), permits: Semaphore::new(READERS) }
    }

    async fn read<T, F>(pool: &Arc<ReaderPool>, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let _permit = pool.permits.acquire().await.map_err(|_| StoreError::Closed)?;
        let pool = Arc::clone(pool);
        tokio::task::spawn_blocking(move || {
            let conn = match pool.idle.lock().expect("reader pool lock").pop() {
                Some(conn) => conn,
                None => {
                    open_connection(&pool.path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?
                }
            };
            let result = query(&conn);
            pool.idle.lock().expect("reader pool lock").push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::backend(std::io::Error::other(e.to_string())))?
    }

    fn clear(&self) {
        self.idle.lock().expect("reader pool lock").clear();
        self.permits.close();
    }
}

// ---- migrations -------------------------------------------------------------------------

fn table_exists(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn
        .query_row("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1", [name], |_| Ok(()))
        .optional()?
        .is_some())
}

fn applied_migrations(conn: &Connection) -> Result<Vec<AppliedMigration>, StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    INTEGER PRIMARY KEY NOT NULL,
            name       TEXT NOT NULL,
            checksum   TEXT NOT NULL,
            applied_at INTEGER NOT NULL
        ) STRICT",
    )?;
    read_applied(conn)
}

fn read_applied(conn: &Connection) -> Result<Vec<AppliedMigration>, StoreError> {
    let mut statement = conn.prepare("SELECT version, name, checksum FROM schema_migrations ORDER BY version")?;
    let rows = statement
        .query_map([], |row| Ok(AppliedMigration { version: row.get(0)?, name: row.get(1)?, checksum: row.get(2)? }))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn apply_migration(conn: &Connection, migration: &Migration) -> Result<(), StoreError> {
    conn.execute_batch(migration.sql).map_err(|e| {
        StoreError::Migration(format!("applying {:04}_{} failed: {e}", migration.version, migration.name))
    })?;
    conn.execute(
        "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
        params![migration.version, migration.name, migration.checksum(), wall_clock_millis()],
    )?;
    tracing::info!(version = migration.version, name = migration.name, "applied SQLite migration");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_finds_the_queue_full_for_its_whole_wait_is_refused_as_busy() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("fk.db")).await.unwrap();
        store.queue = Arc::new(tokio::sync::Semaphore::new(1));
        store.queue_wait = std::time::Duration::from_millis(100);
        let store = Arc::new(store);
        // One write holds the only place while the writer runs it for 600 ms.
        let slow = tokio::spawn({
            let store = Arc::clone(&store);
            async move {
                store
                    .write(|_conn| {
                        std::thread::sleep(std::time::Duration::from_millis(600));
                        Ok(1)
                    })
                    .await
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let refused = store.write(|_conn| Ok(2)).await;
        assert!(matches!(refused, Err(StoreError::Busy)), "{refused:?}");
        assert_eq!(slow.await.unwrap().unwrap(), 1);
        // The place is given back once the slow write has run.
        assert_eq!(store.write(|_conn| Ok(3)).await.unwrap(), 3);
    }

    /// A store whose schema is as migration `version` left it, then `sql` run on it.
    async fn store_left_by_migration(path: &Path, version: u32, sql: &'static str) -> SqliteStore {
        let store = SqliteStore::open(path).await.unwrap();
        store
            .write(move |conn| {
                applied_migrations(conn)?;
                for migration in migrate::SQLITE.iter().take_while(|m| m.version <= version) {
                    apply_migration(conn, migration)?;
                }
                conn.execute_batch(sql)?;
                Ok(())
            })
            .await
            .unwrap();
        store
    }

    #[tokio::test]
    async fn a_registry_from_before_the_key_buckets_is_found_after_migrating() {
        let dir = tempfile::tempdir().unwrap();
        // The schema as migration 0007 left it, with two residents and a permit.
        let store = store_left_by_migration(
            &dir.path().join("fk.db"),
            7,
            "INSERT INTO registry_residents (code, document, sealed, id_index, phone_index, name, sex, birth,
                         grid, community, updated_at)
                     VALUES ('R1', 'resident_id', x'00', x'01010101010101010101010101010101',
                             x'02020202020202020202020202020202', '张伟', 'M', 7000, 'G1', 'C1', 0),
                            ('R2', 'resident_id', x'00', x'03030303030303030303030303030303', NULL, '张伟', 'F',
                             7000, 'G1', 'C1', 0);
                     INSERT INTO registry_permits (resident, kind, issued, expires, endorsed, community, updated_at)
                     VALUES ('R2', 'residence_permit', 19900, 20300, NULL, 'C1', 0);",
        )
        .await;
        let report = store.migrate().await.unwrap();
        assert_eq!(report.applied.first().map(|(v, _)| *v), Some(8));
        let r1 = store.resident_by_id_index([1; 16]).await.unwrap().unwrap();
        assert_eq!(r1.code, "R1");
        assert_eq!(store.residents_by_phone_index([2; 16], None, 10).await.unwrap()[0].code, "R1");
        assert_eq!(store.residents_by_name("张伟".into(), vec!["C1".into()], 10).await.unwrap().len(), 2);
        let permit = store.permit("R2".into()).await.unwrap().unwrap();
        assert_eq!((permit.issued, permit.expires), (19_900, 20_300));
        assert!(store.meta_get("registry_keys_rebuild").await.unwrap().is_none());
        store.close().await;
    }

    #[tokio::test]
    async fn keys_filed_in_buckets_of_twenty_bits_are_found_after_migrating() {
        let dir = tempfile::tempdir().unwrap();
        let id_index = [0xff, 0xff, 0xff, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1];
        // The schema as migration 0009 left it (0008's rebuild done), with a resident whose
        // identity key is filed where 2^20 buckets put it: bucket (1 << 20) | 0xfffff.
        let store = store_left_by_migration(
            &dir.path().join("fk.db"),
            9,
            "DELETE FROM meta WHERE key = 'registry_keys_rebuild';
             INSERT INTO registry_residents (id, code, document, sealed, id_index, name, sex, birth, grid,
                         community, updated_at)
                     VALUES (1, 'R1', 'resident_id', x'00', x'ffffff01010101010101010101010101', '张伟', 'M', 7000,
                             'G1', 'C1', 0);
                     INSERT INTO registry_keys (bucket, entries)
                     VALUES (2097151, x'ffffff01010101010101010101010101' || x'0100000000000000');",
        )
        .await;
        let report = store.migrate().await.unwrap();
        assert_eq!(report.applied.first().map(|(v, _)| *v), Some(10));
        assert_eq!(store.resident_by_id_index(id_index).await.unwrap().unwrap().code, "R1");
        assert_eq!(store.residents_by_name("张伟".into(), vec!["C1".into()], 10).await.unwrap().len(), 1);
        // Every bucket is numbered as 2^18 buckets per kind number them.
        let highest: i64 = store
            .read(|conn| Ok(conn.query_row("SELECT max(bucket) FROM registry_keys", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert!(highest < 4 << 18, "bucket {highest}");
        assert!(store.meta_get("registry_keys_rebuild").await.unwrap().is_none());
        store.close().await;
    }

    /// Another process must go on seeing this one's locks on the database file after a
    /// bulk write's checkpoint read the file back (closing a descriptor of a file drops
    /// all the process's POSIX locks on it): /proc/locks is what other processes see.
    #[cfg(target_os = "linux")]
    #[test]
    fn warming_after_a_checkpoint_keeps_the_locks_other_processes_see() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fk.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);").unwrap();
        let held = || {
            let needle = format!(":{} ", std::fs::metadata(&path).unwrap().ino());
            let pid = format!(" {} ", std::process::id());
            std::fs::read_to_string("/proc/locks").unwrap().lines().any(|l| l.contains(&needle) && l.contains(&pid))
        };
        assert!(held(), "an open WAL connection holds a shared lock");
        let count = Arc::new(CheckpointCount::default());
        // Warm after any checkpoint.
        let checkpointer = Checkpointer::start(&path, Arc::clone(&count), 0).unwrap();
        checkpointer.expect();
        checkpointer.request();
        while !count.settled() {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(held(), "the lock is still held after warming");
        drop(checkpointer.stop());
        drop(conn);
    }

    #[test]
    fn the_page_cache_is_warmed_only_with_memory_to_spare() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fk.db");
        // Larger than the read buffer, and not a multiple of it.
        std::fs::write(&path, vec![7u8; (1 << 20) + 12_345]).unwrap();
        let size = (1 << 20) + 12_345;
        let file = std::fs::File::open(&path).unwrap();
        assert_eq!(warm_page_cache(&file, Some(64 << 30)).unwrap(), Some(size));
        // Not if the file would leave less than the reserve, nor with the memory unknown.
        assert_eq!(warm_page_cache(&file, Some(WARM_RESERVE_BYTES + size - 1)).unwrap(), None);
        assert_eq!(warm_page_cache(&file, None).unwrap(), None);
        if cfg!(target_os = "linux") {
            assert!(mem_available_bytes().is_some_and(|bytes| bytes > 0));
        }
    }

    #[tokio::test]
    async fn a_new_database_gets_8_kib_pages_and_an_old_one_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        async fn page_size(store: &SqliteStore) -> Result<i64, StoreError> {
            store.read(|conn| Ok(conn.query_row("PRAGMA page_size", [], |r| r.get(0))?)).await
        }
        let new = SqliteStore::open(&dir.path().join("new.db")).await.unwrap();
        new.migrate().await.unwrap();
        assert_eq!(page_size(&new).await.unwrap(), PAGE_SIZE);
        new.close().await;
        // A file made with SQLite's default pages before this setting existed.
        let old_path = dir.path().join("old.db");
        let old = Connection::open(&old_path).unwrap();
        old.execute_batch("PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER);").unwrap();
        drop(old);
        let old = SqliteStore::open(&old_path).await.unwrap();
        old.migrate().await.unwrap();
        assert_eq!(page_size(&old).await.unwrap(), 4096);
        old.close().await;
    }

    #[tokio::test]
    async fn a_panicking_write_fails_alone_and_the_writer_keeps_working() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("fk.db")).await.unwrap();
        store.write(|conn| Ok(conn.execute_batch("CREATE TABLE t (x INTEGER)")?)).await.unwrap();
        let panicked = store
            .write(|conn| -> Result<(), StoreError> {
                conn.execute_batch("INSERT INTO t VALUES (1)")?;
                panic!("a bug in an operation");
            })
            .await;
        assert!(matches!(panicked, Err(StoreError::Backend(_))), "{panicked:?}");
        store.write(|conn| Ok(conn.execute_batch("INSERT INTO t VALUES (2)")?)).await.unwrap();
        let rows: Vec<i64> = store
            .read(|conn| {
                let mut statement = conn.prepare("SELECT x FROM t")?;
                Ok(statement.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?)
            })
            .await
            .unwrap();
        assert_eq!(rows, [2], "the panicking write left nothing behind");
        store.close().await;
    }
}
