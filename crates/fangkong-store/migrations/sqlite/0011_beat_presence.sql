-- 0011 beat presence (SQLite): which minutes of each hour a unit was inside each beat (巡区),
-- recorded as fixes arrive so that the coverage report reads a row per beat, hour and unit
-- instead of every tracker's history (the report had scanned every fix of every unit on
-- duty: two minutes of server work for a district).
--
-- `hour` is the hour's start in Unix milliseconds; bit m of `minutes` (0–59) is set when,
-- at the middle of minute m, a fix of one of the unit's trackers held it inside the beat.
-- Rows are merged with a bitwise OR, so writers on any node only ever add minutes. They are
-- derived from the tracks and purged with them.
CREATE TABLE beat_presence (
    beat    text NOT NULL,
    hour    INTEGER NOT NULL,
    unit    text NOT NULL,
    minutes INTEGER NOT NULL CHECK (minutes >= 0 AND minutes < 1152921504606846976),
    PRIMARY KEY (beat, hour, unit)
) WITHOUT ROWID;

CREATE INDEX beat_presence_by_hour ON beat_presence (hour);
