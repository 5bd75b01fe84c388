-- The residence and rental-housing registry (流动人口和出租屋).
-- Identity numbers and phones are sealed by the engine (ChaCha20-Poly1305) and found by
-- keyed blind indexes (truncated HMAC-SHA256); the plain numbers never reach this file.
-- Every table carries the community (社区) its record belongs to, for scoping.
-- The references of the bulk tables (units, residents, permits) are checked by the store's
-- code as each record is written, not declared (PostgreSQL declares them): on SQLite a
-- declared foreign key (or CHECK) makes every insert keep a statement journal, a copy of
-- each page it touches, which made an import several times slower.

CREATE TABLE registry_workstations (
    code TEXT PRIMARY KEY,
    community TEXT NOT NULL,
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE registry_buildings (
    code TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    grid TEXT NOT NULL,
    community TEXT NOT NULL,
    lon REAL NOT NULL,
    lat REAL NOT NULL,
    kind TEXT NOT NULL,
    floors INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX registry_buildings_by_community ON registry_buildings (community, address);

CREATE TABLE registry_landlords (
    code TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    -- phone and safety person's phone, sealed together
    contact_sealed BLOB,
    safety_person TEXT NOT NULL,
    pledge_signed INTEGER,
    pledge_expires INTEGER,
    community TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX registry_landlords_by_community ON registry_landlords (community, pledge_expires);

CREATE TABLE registry_units (
    code TEXT PRIMARY KEY,
    building TEXT NOT NULL,
    floor INTEGER NOT NULL,
    area_m2 REAL NOT NULL,
    rooms INTEGER NOT NULL,
    usage TEXT NOT NULL,
    rent_yuan INTEGER,
    rental INTEGER NOT NULL,
    landlord TEXT,
    community TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX registry_units_by_building ON registry_units (building);

CREATE TABLE registry_residents (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    document TEXT NOT NULL,
    -- identity number and phone, sealed together and bound to the row's code
    sealed BLOB NOT NULL,
    id_index BLOB NOT NULL,
    phone_index BLOB,
    name TEXT NOT NULL,
    sex TEXT NOT NULL,
    birth INTEGER NOT NULL,
    origin_province TEXT,
    origin_city TEXT,
    employer TEXT,
    unit TEXT,
    grid TEXT NOT NULL,
    community TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX registry_residents_by_id ON registry_residents (id_index);
CREATE INDEX registry_residents_by_phone ON registry_residents (phone_index) WHERE phone_index IS NOT NULL;
CREATE INDEX registry_residents_by_name ON registry_residents (community, name);

CREATE TABLE registry_tenancies (
    code TEXT PRIMARY KEY,
    unit TEXT NOT NULL REFERENCES registry_units (code),
    landlord TEXT REFERENCES registry_landlords (code),
    lessee TEXT NOT NULL REFERENCES registry_residents (code),
    move_in INTEGER NOT NULL,
    move_out INTEGER,
    community TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    CHECK (move_out IS NULL OR move_out >= move_in)
) WITHOUT ROWID;
CREATE INDEX registry_tenancies_by_unit ON registry_tenancies (unit);

CREATE TABLE registry_tenancy_members (
    tenancy TEXT NOT NULL REFERENCES registry_tenancies (code),
    resident TEXT NOT NULL REFERENCES registry_residents (code),
    PRIMARY KEY (tenancy, resident)
) WITHOUT ROWID;
CREATE INDEX registry_tenancy_members_by_resident ON registry_tenancy_members (resident);

CREATE TABLE registry_permits (
    resident TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    issued INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    endorsed INTEGER,
    community TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX registry_permits_by_expiry ON registry_permits (community, expires);

CREATE TABLE registry_visits (
    id INTEGER PRIMARY KEY,
    unit TEXT NOT NULL REFERENCES registry_units (code),
    community TEXT NOT NULL,
    day INTEGER NOT NULL,
    by_user TEXT NOT NULL,
    outcome TEXT NOT NULL,
    occupants INTEGER,
    note TEXT NOT NULL
);
CREATE INDEX registry_visits_by_unit ON registry_visits (unit, day);

CREATE TABLE registry_sightings (
    id INTEGER PRIMARY KEY,
    resident TEXT NOT NULL REFERENCES registry_residents (code),
    unit TEXT NOT NULL REFERENCES registry_units (code),
    community TEXT NOT NULL,
    day INTEGER NOT NULL,
    by_user TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX registry_sightings_by_community ON registry_sightings (community, day);

-- The change stream: one row per change (one per import), read by subscribers after a
-- sequence number. It names records by code and community, never by personal data.
CREATE TABLE registry_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    entity TEXT NOT NULL,
    code TEXT NOT NULL,
    community TEXT NOT NULL,
    change TEXT NOT NULL,
    actor TEXT NOT NULL
);
