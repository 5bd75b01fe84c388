-- The registry at a city's scale. On SQLite this migration moves the lookup keys of
-- residents into hash buckets and the permit into its resident's row (see the SQLite file
-- for why). PostgreSQL keeps its B-tree indexes and its permits table, which it maintains
-- well during bulk loads; it gains the index both backends need for a property's card:
-- who lives in a unit.

CREATE INDEX registry_residents_by_unit ON registry_residents (unit) WHERE unit IS NOT NULL;
