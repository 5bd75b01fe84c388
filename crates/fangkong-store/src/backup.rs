//! A SQLite database's files as an operator handles them: an online snapshot while a server
//! writes, SQLite's own integrity check, and whether a server holds the file.
//!
//! These work on paths, not on an open [`crate::Store`]: the server that owns the database
//! is another process (`fangkong backup` runs beside it), and a copy is checked before any
//! store opens it. PostgreSQL has its own tools for this (`pg_dump`, `pg_basebackup`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::StoreError;

/// How long a snapshot waits for the writer to let go of a lock it needs (a checkpoint
/// that truncates the WAL, or recovery after a crash); a reader otherwise never waits.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The `-wal` and `-shm` files that belong to the database at `path`.
pub fn sqlite_companions(path: &Path) -> [PathBuf; 2] {
    let with = |suffix: &str| {
        let mut name = path.as_os_str().to_os_string();
        name.push(suffix);
        PathBuf::from(name)
    };
    [with("-wal"), with("-shm")]
}

/// Writes a consistent copy of the database at `source` to `dest` (which must not exist)
/// while other connections read and write it: `VACUUM INTO` on a read-only connection
/// reads one snapshot of the WAL, so the copy holds exactly the transactions committed when
/// it began, as one compact file without a WAL. The copy is synced before this returns.
pub fn sqlite_snapshot(source: &Path, dest: &Path) -> Result<(), StoreError> {
    if !source.is_file() {
        return Err(StoreError::Unavailable(format!("no database at {}", source.display())));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(source, flags)
        .map_err(|e| StoreError::Unavailable(format!("{}: {e}", source.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let dest_text =
        dest.to_str().ok_or_else(|| StoreError::Unavailable(format!("{}: the path is not UTF-8", dest.display())))?;
    conn.execute("VACUUM INTO ?1", [dest_text])
        .map_err(|e| StoreError::Unavailable(format!("copying {} to {}: {e}", source.display(), dest.display())))?;
    drop(conn);
    // VACUUM INTO does not sync what it wrote.
    std::fs::File::open(dest).and_then(|file| file.sync_all()).map_err(StoreError::backend)?;
    Ok(())
}

/// Runs `PRAGMA integrity_check` on the database at `path` (read only). A damaged or
/// truncated file, or one that is not a database, is [`StoreError::Corrupt`] naming the
/// first problems SQLite found.
pub fn sqlite_integrity_check(path: &Path) -> Result<(), StoreError> {
    let corrupt = |e: rusqlite::Error| StoreError::Corrupt(format!("{}: {e}", path.display()));
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(corrupt)?;
    let mut statement = conn.prepare("PRAGMA integrity_check(20)").map_err(corrupt)?;
    let problems: Vec<String> = statement
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(corrupt)?
        .collect::<Result<_, _>>()
        .map_err(corrupt)?;
    if problems == ["ok"] {
        return Ok(());
    }
    Err(StoreError::Corrupt(format!("{}: {}", path.display(), problems.join("; "))))
}

/// Whether another connection — a running server — has the database at `path` open.
///
/// A connection in WAL mode holds a shared lock on the database file for as long as it is
/// open; asking for the file exclusively (`locking_mode = EXCLUSIVE`, then a read) fails at
/// once while any such connection exists. When nobody holds it, the exclusive connection
/// opens and closes it as a server's clean start and stop would (replaying a WAL a crash
/// left behind into the file). A missing file is not in use.
pub fn sqlite_in_use(path: &Path) -> Result<bool, StoreError> {
    if !path.exists() {
        return Ok(false);
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
    conn.busy_timeout(Duration::ZERO)?;
    let held = conn
        .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; SELECT count(*) FROM sqlite_schema; COMMIT;");
    match held {
        Ok(()) => Ok(false),
        Err(rusqlite::Error::SqliteFailure(error, _))
            if matches!(error.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) =>
        {
            Ok(true)
        }
        Err(error) => Err(StoreError::Unavailable(format!("{}: {error}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(dir: &Path) -> (PathBuf, Connection) {
        let path = dir.join("fk.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1), (2);")
            .unwrap();
        (path, conn)
    }

    #[test]
    fn a_snapshot_holds_what_was_committed_while_the_source_stays_open() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = database(dir.path());
        // Committed to the WAL, not yet checkpointed into the file.
        conn.execute("INSERT INTO t VALUES (3)", []).unwrap();
        let copy = dir.path().join("copy.db");
        sqlite_snapshot(&path, &copy).unwrap();
        sqlite_integrity_check(&copy).unwrap();
        let copied = Connection::open(&copy).unwrap();
        assert_eq!(copied.query_row("SELECT sum(n) FROM t", [], |r| r.get::<_, i64>(0)).unwrap(), 6);
        assert!(sqlite_snapshot(&path, &copy).is_err(), "an existing file is never overwritten");
        assert!(sqlite_snapshot(&dir.path().join("none.db"), &dir.path().join("x.db")).is_err());
    }

    #[test]
    fn an_open_database_is_in_use_and_a_closed_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = database(dir.path());
        assert!(sqlite_in_use(&path).unwrap());
        drop(conn);
        assert!(!sqlite_in_use(&path).unwrap());
        assert!(!sqlite_in_use(&dir.path().join("none.db")).unwrap());
    }

    #[test]
    fn a_truncated_or_foreign_file_fails_the_integrity_check() {
        let dir = tempfile::tempdir().unwrap();
        let (path, conn) = database(dir.path());
        // Enough pages that half the file cuts through the table.
        for _ in 0..200 {
            conn.execute("INSERT INTO t VALUES (randomblob(1000))", []).unwrap();
        }
        let copy = dir.path().join("copy.db");
        sqlite_snapshot(&path, &copy).unwrap();
        let bytes = std::fs::read(&copy).unwrap();
        std::fs::write(&copy, &bytes[..bytes.len() / 2]).unwrap();
        let error = sqlite_integrity_check(&copy).unwrap_err();
        assert!(matches!(error, StoreError::Corrupt(_)), "{error}");
        std::fs::write(dir.path().join("text.db"), "not a database, just text that is long enough".repeat(20)).unwrap();
        assert!(matches!(sqlite_integrity_check(&dir.path().join("text.db")), Err(StoreError::Corrupt(_))));
    }
}
