-- 0006 dispatch (SQLite): incidents, the units sent to them, their append-only timelines,
-- units' dispatch statuses, units' capabilities, and the area class (urban/suburban) of
-- jurisdictions that sets the arrival target.

-- What a unit is trained and equipped for beyond patrol (`traffic`, `fire`…), one per line.
ALTER TABLE force_units ADD COLUMN capabilities TEXT NOT NULL DEFAULT '';

-- Urban or suburban ground, set on any node and inherited by the nodes below it (the
-- nearest setting up the chain wins; urban where none is set).
CREATE TABLE area_classes (
    code       TEXT PRIMARY KEY NOT NULL REFERENCES jurisdictions (code),
    area_class TEXT NOT NULL CHECK (area_class IN ('urban', 'suburban')),
    updated_at INTEGER NOT NULL
) STRICT;

-- An incident (警情). The location's chain is kept a column per level so that scoping and
-- measures are plain indexed filters. `cell_r7` is the H3 cell at resolution 7 (~5 km²)
-- whatever the configured resolution: prior-history queries look in a few of them. The
-- caller's name and phone are sealed together (ChaCha20-Poly1305 under the personal-data
-- key, bound to `uid`); only the phone's last four digits are in the clear.
-- `idempotency_key` (per creating user) makes a retried POST return the first incident.
CREATE TABLE incidents (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    uid                  TEXT NOT NULL UNIQUE,
    source               TEXT NOT NULL,
    type_code            TEXT NOT NULL,
    priority             INTEGER NOT NULL CHECK (priority BETWEEN 1 AND 4),
    status               TEXT NOT NULL CHECK (status IN ('new', 'dispatched', 'en_route', 'on_scene', 'resolved',
                                                          'closed', 'cancelled')),
    disposition          TEXT,
    lat                  REAL NOT NULL,
    lon                  REAL NOT NULL,
    address              TEXT NOT NULL,
    h3                   INTEGER,
    cell_r7              INTEGER NOT NULL,
    city                 TEXT,
    district             TEXT,
    subdistrict          TEXT,
    community            TEXT,
    grid                 TEXT,
    station              TEXT,
    police_district      TEXT,
    description          TEXT NOT NULL,
    caller_sealed        BLOB,
    caller_phone_masked  TEXT,
    possible_duplicates  TEXT NOT NULL DEFAULT '',
    merged_into          INTEGER REFERENCES incidents (id),
    area_class           TEXT NOT NULL CHECK (area_class IN ('urban', 'suburban')),
    arrival_target_s     INTEGER NOT NULL,
    created_by           TEXT NOT NULL,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    revision             INTEGER NOT NULL,
    dispatched_at        INTEGER,
    arrived_at           INTEGER,
    resolved_at          INTEGER,
    closed_at            INTEGER,
    idempotency_key      TEXT,
    idempotency_hash     BLOB,
    UNIQUE (created_by, idempotency_key)
) STRICT;
CREATE INDEX incidents_open ON incidents (status) WHERE status NOT IN ('closed', 'cancelled');
CREATE INDEX incidents_created ON incidents (created_at);
CREATE INDEX incidents_cell ON incidents (cell_r7, created_at);

-- Units sent to incidents: one row per sending (a unit recalled and sent again has two).
CREATE TABLE incident_units (
    incident_id   INTEGER NOT NULL REFERENCES incidents (id),
    unit          TEXT NOT NULL REFERENCES force_units (code),
    dispatched_at INTEGER NOT NULL,
    status        TEXT NOT NULL,
    en_route_at   INTEGER,
    on_scene_at   INTEGER,
    cleared_at    INTEGER,
    PRIMARY KEY (incident_id, unit, dispatched_at)
) STRICT;

-- Every step of every incident, with who took it and when. Append-only.
CREATE TABLE incident_timeline (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents (id),
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    unit        TEXT,
    detail      TEXT NOT NULL
) STRICT;
CREATE INDEX incident_timeline_incident ON incident_timeline (incident_id, id);
CREATE TRIGGER incident_timeline_no_update BEFORE UPDATE ON incident_timeline
BEGIN
    SELECT RAISE(ABORT, 'incident timelines are append-only');
END;
CREATE TRIGGER incident_timeline_no_delete BEFORE DELETE ON incident_timeline
BEGIN
    SELECT RAISE(ABORT, 'incident timelines are append-only');
END;

-- Each unit's dispatch status and since when (a unit without a row is off duty).
CREATE TABLE unit_statuses (
    unit        TEXT PRIMARY KEY NOT NULL REFERENCES force_units (code),
    status      TEXT NOT NULL CHECK (status IN ('available', 'dispatched', 'en_route', 'on_scene', 'returning',
                                                'off_duty', 'out_of_service')),
    since       INTEGER NOT NULL,
    incident_id INTEGER REFERENCES incidents (id)
) STRICT;
