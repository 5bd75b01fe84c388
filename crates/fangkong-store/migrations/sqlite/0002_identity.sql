-- 0002 identity (SQLite): jurisdictions, accounts, sessions, devices and the audit trail.

-- The jurisdiction tree: city → district → sub-district → community → grid, and
-- district → police station → police district. Geometry arrives in a later migration.
CREATE TABLE jurisdictions (
    code       TEXT PRIMARY KEY NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('city', 'district', 'subdistrict', 'community', 'grid',
                                             'police_station', 'police_district')),
    parent     TEXT REFERENCES jurisdictions (code),
    name_zh    TEXT NOT NULL,
    name_en    TEXT,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX jurisdictions_parent ON jurisdictions (parent);

-- User accounts. Never deleted (disabled instead), so audit records keep their meaning;
-- AUTOINCREMENT so an id is never reused either.
CREATE TABLE users (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    username            TEXT NOT NULL UNIQUE,
    display_name        TEXT NOT NULL,
    role                TEXT NOT NULL,
    jurisdiction        TEXT NOT NULL REFERENCES jurisdictions (code),
    password_hash       TEXT NOT NULL,          -- Argon2id, PHC string
    password_changed_at INTEGER NOT NULL,
    totp_secret         BLOB,                   -- encrypted (nonce ‖ ciphertext); NULL: no second factor
    totp_pending        INTEGER NOT NULL CHECK (totp_pending IN (0, 1)),
    totp_last_step      INTEGER,                -- last accepted TOTP step (replay guard)
    failed_logins       INTEGER NOT NULL,
    locked_until        INTEGER,
    disabled            INTEGER NOT NULL CHECK (disabled IN (0, 1)),
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
) STRICT;

-- Sessions: only the SHA-256 of the bearer token is stored.
CREATE TABLE sessions (
    token_hash   BLOB PRIMARY KEY NOT NULL,
    user_id      INTEGER NOT NULL REFERENCES users (id),
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    revoked_at   INTEGER,
    ip           TEXT
) STRICT, WITHOUT ROWID;
CREATE INDEX sessions_user ON sessions (user_id);

-- Devices with their own credentials; only a keyed hash of the secret is stored.
CREATE TABLE devices (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    unique_id    TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL CHECK (kind IN ('tracker', 'alarm_point', 'checkpoint')),
    unit         TEXT,
    jurisdiction TEXT NOT NULL REFERENCES jurisdictions (code),
    secret_hash  BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    last_seen_at INTEGER
) STRICT;

-- The audit trail: append-only and hash-chained (see fangkong_core::audit).
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY NOT NULL,
    at          INTEGER NOT NULL,
    actor_kind  TEXT NOT NULL,
    actor_id    TEXT,
    actor_name  TEXT NOT NULL,
    actor_role  TEXT,
    action      TEXT NOT NULL,
    target_kind TEXT,
    target_id   TEXT,
    outcome     TEXT NOT NULL CHECK (outcome IN ('allowed', 'denied', 'failed')),
    ip          TEXT,
    purpose     TEXT,
    detail      TEXT,
    prev_hash   BLOB NOT NULL,
    hash        BLOB NOT NULL
) STRICT;
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_actor ON audit_log (actor_name, at);

-- The chain's tip, updated with every append, with a keyed tag over (seq, hash): removing
-- records from the end and pointing the head at an earlier record needs the key (or a tag
-- saved from when the head was there). The empty trail's tag is all zeros.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB NOT NULL,
    tag  BLOB NOT NULL
) STRICT;
INSERT INTO audit_head (id, seq, hash, tag) VALUES (1, 0, zeroblob(32), zeroblob(32));

-- What retention left of purged records: the last purged record's number and hash, keyed.
CREATE TABLE audit_seals (
    through_seq  INTEGER PRIMARY KEY NOT NULL,
    through_hash BLOB NOT NULL,
    sealed_at    INTEGER NOT NULL,
    purged       INTEGER NOT NULL,
    tag          BLOB NOT NULL
) STRICT;

-- The application never changes or deletes audit records, except that retention deletes
-- records a seal already covers. These triggers hold the database to that; someone who
-- drops them can still be caught by `fangkong audit verify`.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;
CREATE TRIGGER audit_log_no_unsealed_delete BEFORE DELETE ON audit_log
WHEN OLD.seq > (SELECT COALESCE(MAX(through_seq), 0) FROM audit_seals)
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only; only sealed records may be purged');
END;
