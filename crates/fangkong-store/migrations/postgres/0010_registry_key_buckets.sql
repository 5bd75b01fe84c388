-- 0010 (PostgreSQL): nothing changes. On SQLite this migration re-files the registry's
-- lookup keys into fewer, larger hash buckets; PostgreSQL keeps B-tree indexes for them.
SELECT 1;
