-- 0013 outbox (SQLite): every event, in its serialised form (fangkong-wire), stored in the
-- transaction of the change it announces. Numbered in commit order without gaps (SQLite
-- writes are serialised), so a reader that has seen `seq` n has seen everything before
-- it. Another node or a replay rebuilds the live picture from it; rows older than the
-- retention are purged (the tables stay the record).
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX outbox_at ON outbox (at);
