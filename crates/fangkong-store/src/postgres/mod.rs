//! The PostgreSQL backend, for deployments that outgrow one machine's disk.
//!
//! A deadpool pool of tokio-postgres connections (16, or `?pool_max_size=N` on the URL:
//! as many as the callers that write at once, within the server's `max_connections`).
//! PostgreSQL's default
//! `synchronous_commit = on` makes every commit durable before it is acknowledged, the same
//! promise the SQLite backend keeps. Plain SQL strings live in the method that owns them;
//! the conformance suite decides whether they mean the same as their SQLite twins.

mod audit;
mod codes;
mod dispatch;
mod forces;
mod identity;
mod outbox;
mod positions;
mod registry;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::migrate::{self, AppliedMigration, Migration, MigrationReport};
use crate::url::redact;
use crate::{StoreError, wall_clock_millis};

/// An arbitrary, fixed key for the advisory lock that serialises concurrent migrators
/// (several server nodes starting at once).
const MIGRATION_LOCK_KEY: i64 = 0x66616e676b6f6e67; // "fangkong"
/// Connections in the pool unless the URL says otherwise (`?pool_max_size=N`).
const POOL_SIZE: usize = 16;
/// The most a URL may ask for (PostgreSQL's own default `max_connections` is 100).
const MAX_POOL_SIZE: usize = 512;

/// Takes `pool_max_size` out of a URL's query (tokio-postgres refuses options it does not
/// know): the URL without it, and the size.
pub(crate) fn pool_size_of(url: &str) -> Result<(String, usize), String> {
    let Some((base, query)) = url.split_once('?') else { return Ok((url.to_string(), POOL_SIZE)) };
    let mut size = POOL_SIZE;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("pool_max_size", value)) => {
                size = value.parse::<usize>().ok().filter(|n| (1..=MAX_POOL_SIZE).contains(n)).ok_or_else(|| {
                    format!("pool_max_size={value}: a number of connections from 1 to {MAX_POOL_SIZE}")
                })?;
            }
            _ => kept.push(pair),
        }
    }
    Ok((if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) }, size))
}

pub struct PgStore {
    pool: Pool,
    display_url: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("url", &self.display_url).finish_non_exhaustive()
    }
}

impl PgStore {
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        let display_url = redact(url);
        let (url, pool_size) = pool_size_of(url).map_err(|e| StoreError::InvalidUrl(format!("{display_url}: {e}")))?;
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e| StoreError::InvalidUrl(format!("{display_url}: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_application_name().is_none() {
            config.application_name("fangkong");
        }
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(10)))
            .wait_timeout(Some(Duration::from_secs(30)))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("{display_url}: {e}")))?;
        // Connect now, so that a wrong host or database fails at start, not at first use.
        let client = pool.get().await.map_err(|e| {
            StoreError::Unavailable(format!(
                "PostgreSQL at {} refused or did not answer: {}",
                endpoint(&url),
                describe(&e)
            ))
        })?;
        client.simple_query("SELECT 1").await?;
        Ok(PgStore { pool, display_url })
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        if self.pool.is_closed() {
            return Err(StoreError::Closed);
        }
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Closed => StoreError::Closed,
            e => StoreError::Unavailable(format!("{}: {}", self.display_url, describe(&e))),
        })
    }

    pub async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY]).await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version    INTEGER PRIMARY KEY,
                name       TEXT NOT NULL,
                checksum   TEXT NOT NULL,
                applied_at BIGINT NOT NULL
            )",
        )
        .await?;
        let applied = read_applied(&tx).await?;
        let pending = migrate::plan(migrate::POSTGRES, &applied)?;
        let mut report = MigrationReport { applied: Vec::new(), version: migrate::current_version(&applied) };
        for migration in pending {
            tx.batch_execute(migration.sql).await.map_err(|e| {
                StoreError::Migration(format!(
                    "applying {:04}_{} failed: {}",
                    migration.version,
                    migration.name,
                    describe(&e)
                ))
            })?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)",
                &[&(migration.version as i32), &migration.name, &migration.checksum(), &wall_clock_millis()],
            )
            .await?;
            tracing::info!(version = migration.version, name = migration.name, "applied PostgreSQL migration");
            report.applied.push((migration.version, migration.name));
            report.version = migration.version;
        }
        tx.commit().await?;
        Ok(report)
    }

    pub async fn pending_migrations(&self) -> Result<Vec<&'static Migration>, StoreError> {
        let client = self.client().await?;
        let exists: bool = client.query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[]).await?.get(0);
        let applied = if exists { read_applied(&client).await? } else { Vec::new() };
        migrate::plan(migrate::POSTGRES, &applied)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client().await?.simple_query("SELECT 1").await?;
        Ok(())
    }

    pub async fn close(&self) {
        // Closing the pool refuses new checkouts; connections in use finish their work and
        // are dropped when returned.
        self.pool.close();
    }

    pub async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached("SELECT value FROM meta WHERE key = $1").await?;
        Ok(client.query_opt(&statement, &[&key]).await?.map(|row| row.get(0)))
    }

    pub async fn meta_set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .await?;
        client.execute(&statement, &[&key, &value]).await?;
        Ok(())
    }
}

async fn read_applied(client: &impl deadpool_postgres::GenericClient) -> Result<Vec<AppliedMigration>, StoreError> {
    let rows = client.query("SELECT version, name, checksum FROM schema_migrations ORDER BY version", &[]).await?;
    Ok(rows
        .iter()
        .map(|row| AppliedMigration { version: row.get::<_, i32>(0) as u32, name: row.get(1), checksum: row.get(2) })
        .collect())
}

/// `host:port/database` of a URL, for messages (never the password).
fn endpoint(url: &str) -> String {
    let Ok(config) = url.parse::<tokio_postgres::Config>() else { return redact(url) };
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or(""))
}

/// The most useful line of an error chain: tokio-postgres puts the server's message or the
/// IO cause in the source, not in the top-level text.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    // deadpool wraps the real cause in a generic sentence; the cause says it better.
    if text.starts_with("Error occurred while creating a new object")
        && let Some(cause) = error.source()
    {
        return describe(cause);
    }
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_size_comes_out_of_the_url() {
        let url = "postgres://u@h:5432/db";
        assert_eq!(pool_size_of(url).unwrap(), (url.to_string(), POOL_SIZE));
        assert_eq!(pool_size_of(&format!("{url}?pool_max_size=64")).unwrap(), (url.to_string(), 64));
        assert_eq!(
            pool_size_of(&format!("{url}?sslmode=disable&pool_max_size=8&application_name=x")).unwrap(),
            (format!("{url}?sslmode=disable&application_name=x"), 8)
        );
        for bad in ["0", "513", "many", ""] {
            assert!(pool_size_of(&format!("{url}?pool_max_size={bad}")).unwrap_err().contains("1 to 512"), "{bad}");
        }
    }
}
