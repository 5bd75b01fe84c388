-- 0001 foundation (SQLite): the tables every later feature stands on.
--
-- Migrations are append-only: once a file has been released it is never edited (the
-- runner refuses a database whose applied checksum differs, and `migrations/released.txt`
-- pins every released file). Change the schema by adding the next numbered file, for both
-- backends, with the same meaning.
--
-- Conventions for every table:
-- * instants are INTEGER milliseconds since the Unix epoch, UTC (`*_at` columns);
-- * booleans are INTEGER 0/1 with a CHECK;
-- * STRICT tables, so a value of the wrong type is an error instead of a silent coercion.

-- Small facts about this database itself: when it was created, which defaults have been
-- seeded, and (later) fingerprints of the keys the data was written with.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;

-- The administrator-editable code tables (代码表): incident types (six-digit AABBCC),
-- incident sources and dispositions. A code is never deleted, only retired (active = 0),
-- so that records written with it keep their meaning.
CREATE TABLE code_entries (
    kind       TEXT NOT NULL CHECK (kind IN ('incident_type', 'incident_source', 'disposition')),
    code       TEXT NOT NULL,
    name_zh    TEXT NOT NULL,
    name_en    TEXT NOT NULL,
    priority   INTEGER CHECK (priority BETWEEN 1 AND 4),
    active     INTEGER NOT NULL CHECK (active IN (0, 1)),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (kind, code)
) STRICT, WITHOUT ROWID;
