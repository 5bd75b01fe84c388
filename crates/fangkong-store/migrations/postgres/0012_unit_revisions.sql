-- 0012 unit revisions (PostgreSQL): each unit's dispatch status carries the revision it was
-- written at, as incidents do. A change is stored only if the row is still at the revision
-- the change was read at (optimistic concurrency): two servers on one database can never
-- both send the same unit, and the one that read a stale status gets a conflict.
ALTER TABLE unit_statuses ADD COLUMN revision bigint NOT NULL DEFAULT 1 CHECK (revision >= 1);
