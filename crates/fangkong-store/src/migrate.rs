//! Schema migrations: numbered SQL files per backend, embedded in the binary, applied in
//! order on start and by `fangkong migrate`.
//!
//! Append-only is enforced twice: at run time, a database whose applied migration no
//! longer matches the file's checksum (someone edited a released file) or that has a
//! migration this binary does not know (an older binary on a newer database) is refused;
//! at build time, `migrations/released.txt` pins the checksum of every released file and a
//! test fails if one changes.
//!
//! The runner keeps its own bookkeeping table, `schema_migrations`, which no migration
//! touches.

use sha2::{Digest, Sha256};

use crate::StoreError;

/// One migration file.
#[derive(Debug)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    /// SHA-256 of the file's text, hex-encoded.
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }
}

/// SQLite migrations, in order. Versions are contiguous from 1.
pub static SQLITE: &[Migration] = &[
    Migration { version: 1, name: "foundation", sql: include_str!("../migrations/sqlite/0001_foundation.sql") },
    Migration { version: 2, name: "identity", sql: include_str!("../migrations/sqlite/0002_identity.sql") },
    Migration { version: 3, name: "geometry", sql: include_str!("../migrations/sqlite/0003_geometry.sql") },
    Migration { version: 4, name: "positions", sql: include_str!("../migrations/sqlite/0004_positions.sql") },
    Migration { version: 5, name: "forces", sql: include_str!("../migrations/sqlite/0005_forces.sql") },
    Migration { version: 6, name: "dispatch", sql: include_str!("../migrations/sqlite/0006_dispatch.sql") },
    Migration { version: 7, name: "registry", sql: include_str!("../migrations/sqlite/0007_registry.sql") },
    Migration { version: 8, name: "registry_keys", sql: include_str!("../migrations/sqlite/0008_registry_keys.sql") },
    Migration { version: 9, name: "device_sites", sql: include_str!("../migrations/sqlite/0009_device_sites.sql") },
    Migration {
        version: 10,
        name: "registry_key_buckets",
        sql: include_str!("../migrations/sqlite/0010_registry_key_buckets.sql"),
    },
    Migration { version: 11, name: "beat_presence", sql: include_str!("../migrations/sqlite/0011_beat_presence.sql") },
    Migration {
        version: 12,
        name: "unit_revisions",
        sql: include_str!("../migrations/sqlite/0012_unit_revisions.sql"),
    },
    Migration { version: 13, name: "outbox", sql: include_str!("../migrations/sqlite/0013_outbox.sql") },
];

/// PostgreSQL migrations, in order, with the same versions and meaning as [`SQLITE`].
pub static POSTGRES: &[Migration] = &[
    Migration { version: 1, name: "foundation", sql: include_str!("../migrations/postgres/0001_foundation.sql") },
    Migration { version: 2, name: "identity", sql: include_str!("../migrations/postgres/0002_identity.sql") },
    Migration { version: 3, name: "geometry", sql: include_str!("../migrations/postgres/0003_geometry.sql") },
    Migration { version: 4, name: "positions", sql: include_str!("../migrations/postgres/0004_positions.sql") },
    Migration { version: 5, name: "forces", sql: include_str!("../migrations/postgres/0005_forces.sql") },
    Migration { version: 6, name: "dispatch", sql: include_str!("../migrations/postgres/0006_dispatch.sql") },
    Migration { version: 7, name: "registry", sql: include_str!("../migrations/postgres/0007_registry.sql") },
    Migration { version: 8, name: "registry_keys", sql: include_str!("../migrations/postgres/0008_registry_keys.sql") },
    Migration { version: 9, name: "device_sites", sql: include_str!("../migrations/postgres/0009_device_sites.sql") },
    Migration {
        version: 10,
        name: "registry_key_buckets",
        sql: include_str!("../migrations/postgres/0010_registry_key_buckets.sql"),
    },
    Migration {
        version: 11,
        name: "beat_presence",
        sql: include_str!("../migrations/postgres/0011_beat_presence.sql"),
    },
    Migration {
        version: 12,
        name: "unit_revisions",
        sql: include_str!("../migrations/postgres/0012_unit_revisions.sql"),
    },
    Migration { version: 13, name: "outbox", sql: include_str!("../migrations/postgres/0013_outbox.sql") },
];

/// A row of `schema_migrations`.
#[derive(Clone, Debug)]
pub struct AppliedMigration {
    pub version: u32,
    pub name: String,
    pub checksum: String,
}

/// What a call to `migrate` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationReport {
    /// Migrations applied by this call, as `(version, name)`.
    pub applied: Vec<(u32, &'static str)>,
    /// The schema version after the call.
    pub version: u32,
}

/// Decides which known migrations still have to run, or why the database must be refused.
/// Pure, so that both backends refuse exactly the same databases.
pub fn plan(known: &'static [Migration], applied: &[AppliedMigration]) -> Result<Vec<&'static Migration>, StoreError> {
    for row in applied {
        let Some(migration) = known.iter().find(|m| m.version == row.version) else {
            let newest = known.last().map_or(0, |m| m.version);
            return Err(StoreError::Migration(format!(
                "the database has migration {} ({}) but this binary knows migrations up to {newest}: \
                 it was written by a newer Fangkong; upgrade this binary",
                row.version, row.name
            )));
        };
        if migration.checksum() != row.checksum {
            return Err(StoreError::Migration(format!(
                "migration {:04}_{} differs from the one applied to this database (checksum {} ≠ {}): \
                 released migrations must never be edited; add a new migration instead",
                migration.version,
                migration.name,
                &migration.checksum()[..12],
                &row.checksum[..row.checksum.len().min(12)]
            )));
        }
    }
    Ok(known.iter().filter(|m| !applied.iter().any(|row| row.version == m.version)).collect())
}

/// The schema version a database is at after `applied`.
pub fn current_version(applied: &[AppliedMigration]) -> u32 {
    applied.iter().map(|row| row.version).max().unwrap_or(0)
}

#[cfg(test)]
mod tests;
