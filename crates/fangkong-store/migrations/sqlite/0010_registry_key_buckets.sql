-- 0010 (SQLite): the registry's key buckets are chosen by the first 18 bits of a key
-- instead of 20 (2^18 buckets per kind, ~76 entries each at 20 M residents): an import
-- writes each bucket as one row, and at 20 M residents writing 3 × 2^20 rows took 8.4 s of
-- the import's writer thread. Bucket numbers change meaning, so the buckets are filed
-- anew from the residents by the store right after this migration (the mark below, as
-- migration 0008 did).
DELETE FROM registry_keys;
INSERT INTO meta (key, value) VALUES ('registry_keys_rebuild', '1')
    ON CONFLICT (key) DO UPDATE SET value = excluded.value;
