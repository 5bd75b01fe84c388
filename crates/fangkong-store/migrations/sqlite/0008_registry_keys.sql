-- The registry at a city's scale: lookup keys in hash buckets, the permit in its resident's
-- row, and residents found by unit.
--
-- Measured on a 20 M-resident registry: every B-tree index on a random key (identity and
-- phone blind indexes, names within a community) costs each inserted resident one descent
-- and, once the index outgrows the page cache, a read; with four of them a city-wide import
-- ran at ~20,000 residents/s. The keys that are looked up but never ranged over now live in
-- `registry_keys`: one row per hash bucket (the kind of key and the top 20 bits of the key),
-- holding that bucket's entries (16-byte key ‖ resident rowid, sorted), maintained by the
-- store's code (`sqlite/registry_keys.rs`). A single registration rewrites a few hundred
-- bytes; an import sorts its keys and writes each bucket once.
-- The kinds: 1 identity number (blind index, unique), 2 phone (blind index), 3 name within
-- its community (SHA-256 of community and name; names are not secret, the key only spreads
-- them over the buckets).

CREATE TABLE registry_keys (
    bucket INTEGER PRIMARY KEY,
    entries BLOB NOT NULL
);

DROP INDEX registry_residents_by_id;
DROP INDEX registry_residents_by_phone;
DROP INDEX registry_residents_by_name;

-- A resident holds at most one residence permit (居住证): its fields join the resident's
-- row, so an import writes one row per person instead of two.
ALTER TABLE registry_residents ADD COLUMN permit_kind TEXT;
ALTER TABLE registry_residents ADD COLUMN permit_issued INTEGER;
ALTER TABLE registry_residents ADD COLUMN permit_expires INTEGER;
ALTER TABLE registry_residents ADD COLUMN permit_endorsed INTEGER;
UPDATE registry_residents
SET (permit_kind, permit_issued, permit_expires, permit_endorsed) =
    (SELECT kind, issued, expires, endorsed FROM registry_permits p WHERE p.resident = registry_residents.code)
WHERE code IN (SELECT resident FROM registry_permits);
DROP TABLE registry_permits;

-- Permits due for renewal, by community (the alert list).
CREATE INDEX registry_residents_permits_due ON registry_residents (community, permit_expires)
    WHERE permit_expires IS NOT NULL;
-- Who lives in a unit (a property's card).
CREATE INDEX registry_residents_by_unit ON registry_residents (unit) WHERE unit IS NOT NULL;

-- The store fills `registry_keys` from the residents already registered right after this
-- migration (in the same transaction), then removes this mark.
INSERT INTO meta (key, value) VALUES ('registry_keys_rebuild', '1')
    ON CONFLICT (key) DO UPDATE SET value = excluded.value;
