//! The one error type of the store. Callers match on the variants that mean something to a
//! user (a conflict, a missing row, an unreachable database); everything else is a
//! [`StoreError::Backend`] that the server logs and reports as an internal error.

use std::sync::Arc;

#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The `--db` URL could not be understood. The message names the problem.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// The database could not be opened or reached.
    #[error("cannot open the database: {0}")]
    Unavailable(String),
    /// The schema could not be brought up to date (or must not be, e.g. it is newer).
    #[error("database schema: {0}")]
    Migration(String),
    /// A unique key is taken.
    #[error("{entity} {key} already exists")]
    Conflict { entity: &'static str, key: String },
    /// The record changed since the change was read (another server, or another
    /// command, wrote it first): nothing was stored; read it again and retry.
    #[error("{entity} {key} was changed by someone else meanwhile; nothing was stored")]
    Stale { entity: &'static str, key: String },
    #[error("{entity} {key} not found")]
    NotFound { entity: &'static str, key: String },
    /// A record of an import was refused; nothing of the import was stored. `row` is the
    /// record's row in its source file.
    #[error("row {row}: {message}")]
    Rejected { row: u64, field: &'static str, message: String },
    /// A stored row does not decode into a valid domain value.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The writer's queue stayed full for the whole wait: nothing was stored; retry shortly.
    #[error("the database is busy; nothing was stored, retry shortly")]
    Busy,
    /// The store was closed (the server is shutting down).
    #[error("the store is closed")]
    Closed,
    /// Anything else the database reported. Logged, never shown to clients.
    #[error("database error: {0}")]
    Backend(Arc<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    pub(crate) fn backend(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::Backend(Arc::new(error))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> StoreError {
        StoreError::backend(error)
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> StoreError {
        StoreError::backend(error)
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(error: deadpool_postgres::PoolError) -> StoreError {
        StoreError::Unavailable(error.to_string())
    }
}

/// Whether a SQLite error is a violated PRIMARY KEY or UNIQUE constraint.
pub(crate) fn is_sqlite_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

/// Whether a SQLite error is a violated FOREIGN KEY or CHECK constraint.
pub(crate) fn is_sqlite_reference_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
                || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_CHECK
    )
}

/// Whether a PostgreSQL error is a violated FOREIGN KEY or CHECK constraint.
pub(crate) fn is_postgres_reference_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION)
        || error.code() == Some(&tokio_postgres::error::SqlState::CHECK_VIOLATION)
}

/// Whether a PostgreSQL error is a violated PRIMARY KEY or UNIQUE constraint.
pub(crate) fn is_postgres_unique_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}
