-- 0002 identity (PostgreSQL): jurisdictions, accounts, sessions, devices and the audit trail.

-- The jurisdiction tree: city → district → sub-district → community → grid, and
-- district → police station → police district. Geometry arrives in a later migration.
CREATE TABLE jurisdictions (
    code       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('city', 'district', 'subdistrict', 'community', 'grid',
                                             'police_station', 'police_district')),
    parent     TEXT REFERENCES jurisdictions (code),
    name_zh    TEXT NOT NULL,
    name_en    TEXT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX jurisdictions_parent ON jurisdictions (parent);

-- User accounts. Never deleted (disabled instead), so audit records keep their meaning.
CREATE TABLE users (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username            TEXT NOT NULL UNIQUE,
    display_name        TEXT NOT NULL,
    role                TEXT NOT NULL,
    jurisdiction        TEXT NOT NULL REFERENCES jurisdictions (code),
    password_hash       TEXT NOT NULL,          -- Argon2id, PHC string
    password_changed_at BIGINT NOT NULL,
    totp_secret         BYTEA,                  -- encrypted (nonce ‖ ciphertext); NULL: no second factor
    totp_pending        BOOLEAN NOT NULL,
    totp_last_step      BIGINT,                 -- last accepted TOTP step (replay guard)
    failed_logins       INTEGER NOT NULL,
    locked_until        BIGINT,
    disabled            BOOLEAN NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

-- Sessions: only the SHA-256 of the bearer token is stored.
CREATE TABLE sessions (
    token_hash   BYTEA PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id),
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    revoked_at   BIGINT,
    ip           TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Devices with their own credentials; only a keyed hash of the secret is stored.
CREATE TABLE devices (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    unique_id    TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL CHECK (kind IN ('tracker', 'alarm_point', 'checkpoint')),
    unit         TEXT,
    jurisdiction TEXT NOT NULL REFERENCES jurisdictions (code),
    secret_hash  BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    last_seen_at BIGINT
);

-- The audit trail: append-only and hash-chained (see fangkong_core::audit).
CREATE TABLE audit_log (
    seq         BIGINT PRIMARY KEY,
    at          BIGINT NOT NULL,
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
    prev_hash   BYTEA NOT NULL,
    hash        BYTEA NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_actor ON audit_log (actor_name, at);

-- The chain's tip, updated with every append (and locked by it, which keeps appends in
-- chain order), with a keyed tag over (seq, hash): removing records from the end and
-- pointing the head at an earlier record needs the key (or a tag saved from when the head
-- was there). The empty trail's tag is all zeros.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    tag  BYTEA NOT NULL
);
INSERT INTO audit_head (id, seq, hash, tag) VALUES (1, 0, decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'));

-- What retention left of purged records: the last purged record's number and hash, keyed.
CREATE TABLE audit_seals (
    through_seq  BIGINT PRIMARY KEY,
    through_hash BYTEA NOT NULL,
    sealed_at    BIGINT NOT NULL,
    purged       BIGINT NOT NULL,
    tag          BYTEA NOT NULL
);

-- The application never changes or deletes audit records, except that retention deletes
-- records a seal already covers. This trigger holds the database to that; someone who
-- drops it can still be caught by `fangkong audit verify`.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'audit records are append-only';
    END IF;
    IF OLD.seq > (SELECT COALESCE(MAX(through_seq), 0) FROM audit_seals) THEN
        RAISE EXCEPTION 'audit records are append-only; only sealed records may be purged';
    END IF;
    RETURN OLD;
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
