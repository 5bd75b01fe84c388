-- 0004 positions (SQLite): the history of tracker fixes, and the fixes the screen refused.
--
-- Keyed by device and fix time, without a rowid: a unit's day is one contiguous range of
-- the table, so a track query reads only its own rows. Times are Unix milliseconds; speed
-- m/s, course degrees, altitude and accuracy metres, battery percent; `h3` the fix's H3
-- cell at the engine's resolution; `attributes` a JSON object of everything else the device
-- sent. Retention deletes by device and time range through the same key.
CREATE TABLE positions (
    device_id   INTEGER NOT NULL,
    fixed_at    INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    lat         REAL NOT NULL,
    lon         REAL NOT NULL,
    speed       REAL,
    course      REAL,
    altitude    REAL,
    accuracy    REAL,
    battery     REAL,
    h3          INTEGER,
    attributes  TEXT,
    PRIMARY KEY (device_id, fixed_at)
) STRICT, WITHOUT ROWID;

CREATE TABLE position_rejections (
    device_id   INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    fixed_at    INTEGER NOT NULL,
    lat         REAL NOT NULL,
    lon         REAL NOT NULL,
    reason      TEXT NOT NULL CHECK (reason IN ('invalid', 'null_island', 'duplicate', 'out_of_order',
                                                'in_future', 'impossible_speed'))
) STRICT;
CREATE INDEX position_rejections_device ON position_rejections (device_id, received_at);
