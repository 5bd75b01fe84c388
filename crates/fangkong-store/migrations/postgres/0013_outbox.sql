-- 0013 outbox (PostgreSQL): every event, in its serialised form (fangkong-wire), stored in
-- the transaction of the change it announces. Numbers come from `outbox_head`, whose row
-- each writing transaction holds until it commits: numbers are therefore given in commit
-- order and without gaps (a sequence would give them in start order, and a reader could
-- pass a number whose transaction had not yet committed). Rows older than the retention
-- are purged (the tables stay the record).
CREATE TABLE outbox_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO outbox_head (id, seq) VALUES (1, 0);
CREATE TABLE outbox (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    body JSONB NOT NULL
);
CREATE INDEX outbox_at ON outbox (at);
