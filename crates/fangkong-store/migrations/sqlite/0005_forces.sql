-- 0005 forces (SQLite): patrol units, beats, the roster and the members of the force.

-- A beat (巡区): the ground a unit patrols, under a police station, with its shape
-- (WKB, WGS84).
CREATE TABLE beats (
    code       TEXT PRIMARY KEY NOT NULL,
    station    TEXT NOT NULL REFERENCES jurisdictions (code),
    name       TEXT NOT NULL,
    shape      BLOB NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- A unit (team) of one category on one mode of duty, at a police station. Its devices are
-- the trackers whose `unit` is its code.
CREATE TABLE force_units (
    code       TEXT PRIMARY KEY NOT NULL,
    call_sign  TEXT NOT NULL,
    station    TEXT NOT NULL REFERENCES jurisdictions (code),
    category   TEXT NOT NULL CHECK (category IN ('police', 'security_guard', 'internal_guard', 'volunteer')),
    mode       TEXT NOT NULL CHECK (mode IN ('foot', 'vehicle', 'bicycle', 'plain_clothes', 'fixed_post', 'checkpoint')),
    equipment  TEXT NOT NULL DEFAULT '',
    beat       TEXT REFERENCES beats (code),
    updated_at INTEGER NOT NULL
) STRICT;

-- The roster: a unit on a beat for a time slot (half-open, Unix ms).
CREATE TABLE shifts (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    unit      TEXT NOT NULL REFERENCES force_units (code),
    beat      TEXT NOT NULL REFERENCES beats (code),
    starts_at INTEGER NOT NULL,
    ends_at   INTEGER NOT NULL,
    CHECK (ends_at > starts_at)
) STRICT;
CREATE INDEX shifts_time ON shifts (starts_at);
CREATE INDEX shifts_unit ON shifts (unit, starts_at);

-- Members: personal data. Name, identity number and phone are sealed (ChaCha20-Poly1305
-- under the personal-data key, bound to the member's id); `id_number_index` is a keyed
-- blind index (HMAC) for finding a member by identity number without decrypting.
CREATE TABLE force_members (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    category         TEXT NOT NULL CHECK (category IN ('police', 'security_guard', 'internal_guard', 'volunteer')),
    station          TEXT NOT NULL REFERENCES jurisdictions (code),
    unit             TEXT REFERENCES force_units (code),
    name_sealed      BLOB NOT NULL,
    id_number_sealed BLOB NOT NULL,
    id_number_index  BLOB NOT NULL UNIQUE,
    phone_sealed     BLOB,
    active           INTEGER NOT NULL DEFAULT 1,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;
CREATE INDEX force_members_unit ON force_members (unit);
