-- 0005 forces (PostgreSQL): patrol units, beats, the roster and the members of the force.

-- A beat (巡区): the ground a unit patrols, under a police station, with its shape
-- (WKB, WGS84).
CREATE TABLE beats (
    code       text PRIMARY KEY NOT NULL,
    station    text NOT NULL REFERENCES jurisdictions (code),
    name       text NOT NULL,
    shape      bytea NOT NULL,
    updated_at bigint NOT NULL
);

-- A unit (team) of one category on one mode of duty, at a police station. Its devices are
-- the trackers whose `unit` is its code.
CREATE TABLE force_units (
    code       text PRIMARY KEY NOT NULL,
    call_sign  text NOT NULL,
    station    text NOT NULL REFERENCES jurisdictions (code),
    category   text NOT NULL CHECK (category IN ('police', 'security_guard', 'internal_guard', 'volunteer')),
    mode       text NOT NULL CHECK (mode IN ('foot', 'vehicle', 'bicycle', 'plain_clothes', 'fixed_post', 'checkpoint')),
    equipment  text NOT NULL DEFAULT '',
    beat       text REFERENCES beats (code),
    updated_at bigint NOT NULL
);

-- The roster: a unit on a beat for a time slot (half-open, Unix ms).
CREATE TABLE shifts (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    unit      text NOT NULL REFERENCES force_units (code),
    beat      text NOT NULL REFERENCES beats (code),
    starts_at bigint NOT NULL,
    ends_at   bigint NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX shifts_time ON shifts (starts_at);
CREATE INDEX shifts_unit ON shifts (unit, starts_at);

-- Members: personal data. Name, identity number and phone are sealed (ChaCha20-Poly1305
-- under the personal-data key, bound to the member's id); `id_number_index` is a keyed
-- blind index (HMAC) for finding a member by identity number without decrypting.
CREATE TABLE force_members (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    category         text NOT NULL CHECK (category IN ('police', 'security_guard', 'internal_guard', 'volunteer')),
    station          text NOT NULL REFERENCES jurisdictions (code),
    unit             text REFERENCES force_units (code),
    name_sealed      bytea NOT NULL,
    id_number_sealed bytea NOT NULL,
    id_number_index  bytea NOT NULL UNIQUE,
    phone_sealed     bytea,
    active           boolean NOT NULL DEFAULT true,
    created_at       bigint NOT NULL,
    updated_at       bigint NOT NULL
);
CREATE INDEX force_members_unit ON force_members (unit);
