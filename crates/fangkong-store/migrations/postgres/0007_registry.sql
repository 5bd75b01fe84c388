-- The residence and rental-housing registry (流动人口和出租屋).
-- Identity numbers and phones are sealed by the engine (ChaCha20-Poly1305) and found by
-- keyed blind indexes (truncated HMAC-SHA256); the plain numbers never reach this file.
-- Every table carries the community (社区) its record belongs to, for scoping.

CREATE TABLE registry_workstations (
    code TEXT PRIMARY KEY,
    community TEXT NOT NULL,
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE registry_buildings (
    code TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    grid TEXT NOT NULL,
    community TEXT NOT NULL,
    lon DOUBLE PRECISION NOT NULL,
    lat DOUBLE PRECISION NOT NULL,
    kind TEXT NOT NULL,
    floors BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX registry_buildings_by_community ON registry_buildings (community, address);

CREATE TABLE registry_landlords (
    code TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    -- phone and safety person's phone, sealed together
    contact_sealed BYTEA,
    safety_person TEXT NOT NULL,
    pledge_signed BIGINT,
    pledge_expires BIGINT,
    community TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX registry_landlords_by_community ON registry_landlords (community, pledge_expires);

CREATE TABLE registry_units (
    code TEXT PRIMARY KEY,
    building TEXT NOT NULL REFERENCES registry_buildings (code),
    floor BIGINT NOT NULL,
    area_m2 DOUBLE PRECISION NOT NULL,
    rooms BIGINT NOT NULL,
    usage TEXT NOT NULL,
    rent_yuan BIGINT,
    rental BOOLEAN NOT NULL,
    landlord TEXT REFERENCES registry_landlords (code),
    community TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX registry_units_by_building ON registry_units (building);

CREATE TABLE registry_residents (
    id BIGSERIAL PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    document TEXT NOT NULL,
    -- identity number and phone, sealed together and bound to the row's code
    sealed BYTEA NOT NULL,
    id_index BYTEA NOT NULL,
    phone_index BYTEA,
    name TEXT NOT NULL,
    sex TEXT NOT NULL,
    birth BIGINT NOT NULL,
    origin_province TEXT,
    origin_city TEXT,
    employer TEXT,
    unit TEXT REFERENCES registry_units (code),
    grid TEXT NOT NULL,
    community TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX registry_residents_by_id ON registry_residents (id_index);
CREATE INDEX registry_residents_by_phone ON registry_residents (phone_index) WHERE phone_index IS NOT NULL;
CREATE INDEX registry_residents_by_name ON registry_residents (community, name);

CREATE TABLE registry_tenancies (
    code TEXT PRIMARY KEY,
    unit TEXT NOT NULL REFERENCES registry_units (code),
    landlord TEXT REFERENCES registry_landlords (code),
    lessee TEXT NOT NULL REFERENCES registry_residents (code),
    move_in BIGINT NOT NULL,
    move_out BIGINT,
    community TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    CHECK (move_out IS NULL OR move_out >= move_in)
);
CREATE INDEX registry_tenancies_by_unit ON registry_tenancies (unit);

CREATE TABLE registry_tenancy_members (
    tenancy TEXT NOT NULL REFERENCES registry_tenancies (code),
    resident TEXT NOT NULL REFERENCES registry_residents (code),
    PRIMARY KEY (tenancy, resident)
);
CREATE INDEX registry_tenancy_members_by_resident ON registry_tenancy_members (resident);

CREATE TABLE registry_permits (
    resident TEXT PRIMARY KEY REFERENCES registry_residents (code),
    kind TEXT NOT NULL,
    issued BIGINT NOT NULL,
    expires BIGINT NOT NULL,
    endorsed BIGINT,
    community TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    CHECK (expires > issued)
);
CREATE INDEX registry_permits_by_expiry ON registry_permits (community, expires);

CREATE TABLE registry_visits (
    id BIGSERIAL PRIMARY KEY,
    unit TEXT NOT NULL REFERENCES registry_units (code),
    community TEXT NOT NULL,
    day BIGINT NOT NULL,
    by_user TEXT NOT NULL,
    outcome TEXT NOT NULL,
    occupants BIGINT,
    note TEXT NOT NULL
);
CREATE INDEX registry_visits_by_unit ON registry_visits (unit, day);

CREATE TABLE registry_sightings (
    id BIGSERIAL PRIMARY KEY,
    resident TEXT NOT NULL REFERENCES registry_residents (code),
    unit TEXT NOT NULL REFERENCES registry_units (code),
    community TEXT NOT NULL,
    day BIGINT NOT NULL,
    by_user TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX registry_sightings_by_community ON registry_sightings (community, day);

-- The change stream: one row per change (one per import), read by subscribers after a
-- sequence number. It names records by code and community, never by personal data.
CREATE TABLE registry_changes (
    seq BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    entity TEXT NOT NULL,
    code TEXT NOT NULL,
    community TEXT NOT NULL,
    change TEXT NOT NULL,
    actor TEXT NOT NULL
);
