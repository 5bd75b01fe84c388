-- 0006 dispatch (PostgreSQL): incidents, the units sent to them, their append-only timelines,
-- units' dispatch statuses, units' capabilities, and the area class (urban/suburban) of
-- jurisdictions that sets the arrival target.

-- What a unit is trained and equipped for beyond patrol (`traffic`, `fire`…), one per line.
ALTER TABLE force_units ADD COLUMN capabilities text NOT NULL DEFAULT '';

-- Urban or suburban ground, set on any node and inherited by the nodes below it (the
-- nearest setting up the chain wins; urban where none is set).
CREATE TABLE area_classes (
    code       text PRIMARY KEY NOT NULL REFERENCES jurisdictions (code),
    area_class text NOT NULL CHECK (area_class IN ('urban', 'suburban')),
    updated_at bigint NOT NULL
);

-- An incident (警情). The location's chain is kept a column per level so that scoping and
-- measures are plain indexed filters. `cell_r7` is the H3 cell at resolution 7 (~5 km²)
-- whatever the configured resolution: prior-history queries look in a few of them. The
-- caller's name and phone are sealed together (ChaCha20-Poly1305 under the personal-data
-- key, bound to `uid`); only the phone's last four digits are in the clear.
-- `idempotency_key` (per creating user) makes a retried POST return the first incident.
CREATE TABLE incidents (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uid                  text NOT NULL UNIQUE,
    source               text NOT NULL,
    type_code            text NOT NULL,
    priority             bigint NOT NULL CHECK (priority BETWEEN 1 AND 4),
    status               text NOT NULL CHECK (status IN ('new', 'dispatched', 'en_route', 'on_scene', 'resolved',
                                                          'closed', 'cancelled')),
    disposition          text,
    lat                  double precision NOT NULL,
    lon                  double precision NOT NULL,
    address              text NOT NULL,
    h3                   bigint,
    cell_r7              bigint NOT NULL,
    city                 text,
    district             text,
    subdistrict          text,
    community            text,
    grid                 text,
    station              text,
    police_district      text,
    description          text NOT NULL,
    caller_sealed        bytea,
    caller_phone_masked  text,
    possible_duplicates  text NOT NULL DEFAULT '',
    merged_into          bigint REFERENCES incidents (id),
    area_class           text NOT NULL CHECK (area_class IN ('urban', 'suburban')),
    arrival_target_s     bigint NOT NULL,
    created_by           text NOT NULL,
    created_at           bigint NOT NULL,
    updated_at           bigint NOT NULL,
    revision             bigint NOT NULL,
    dispatched_at        bigint,
    arrived_at           bigint,
    resolved_at          bigint,
    closed_at            bigint,
    idempotency_key      text,
    idempotency_hash     bytea,
    UNIQUE (created_by, idempotency_key)
);
CREATE INDEX incidents_open ON incidents (status) WHERE status NOT IN ('closed', 'cancelled');
CREATE INDEX incidents_created ON incidents (created_at);
CREATE INDEX incidents_cell ON incidents (cell_r7, created_at);

-- Units sent to incidents: one row per sending (a unit recalled and sent again has two).
CREATE TABLE incident_units (
    incident_id   bigint NOT NULL REFERENCES incidents (id),
    unit          text NOT NULL REFERENCES force_units (code),
    dispatched_at bigint NOT NULL,
    status        text NOT NULL,
    en_route_at   bigint,
    on_scene_at   bigint,
    cleared_at    bigint,
    PRIMARY KEY (incident_id, unit, dispatched_at)
);

-- Every step of every incident, with who took it and when. Append-only.
CREATE TABLE incident_timeline (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id bigint NOT NULL REFERENCES incidents (id),
    at          bigint NOT NULL,
    actor       text NOT NULL,
    kind        text NOT NULL,
    unit        text,
    detail      text NOT NULL
);
CREATE INDEX incident_timeline_incident ON incident_timeline (incident_id, id);
CREATE FUNCTION incident_timeline_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'incident timelines are append-only';
END;
$$;
CREATE TRIGGER incident_timeline_no_change BEFORE UPDATE OR DELETE ON incident_timeline
    FOR EACH ROW EXECUTE FUNCTION incident_timeline_append_only();

-- Each unit's dispatch status and since when (a unit without a row is off duty).
CREATE TABLE unit_statuses (
    unit        text PRIMARY KEY NOT NULL REFERENCES force_units (code),
    status      text NOT NULL CHECK (status IN ('available', 'dispatched', 'en_route', 'on_scene', 'returning',
                                                'off_duty', 'out_of_service')),
    since       bigint NOT NULL,
    incident_id bigint REFERENCES incidents (id)
);
