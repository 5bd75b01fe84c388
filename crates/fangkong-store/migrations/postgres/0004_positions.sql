-- 0004 positions (PostgreSQL): the history of tracker fixes, and the fixes the screen refused.
--
-- Keyed by device and fix time, so a unit's day is one index range. Times are Unix
-- milliseconds; speed m/s, course degrees, altitude and accuracy metres, battery percent;
-- `h3` the fix's H3 cell at the engine's resolution; `attributes` a JSON object of
-- everything else the device sent.
CREATE TABLE positions (
    device_id   bigint NOT NULL,
    fixed_at    bigint NOT NULL,
    received_at bigint NOT NULL,
    lat         double precision NOT NULL,
    lon         double precision NOT NULL,
    speed       double precision,
    course      double precision,
    altitude    double precision,
    accuracy    double precision,
    battery     double precision,
    h3          bigint,
    attributes  text,
    PRIMARY KEY (device_id, fixed_at)
);

CREATE TABLE position_rejections (
    device_id   bigint NOT NULL,
    received_at bigint NOT NULL,
    fixed_at    bigint NOT NULL,
    lat         double precision NOT NULL,
    lon         double precision NOT NULL,
    reason      text NOT NULL CHECK (reason IN ('invalid', 'null_island', 'duplicate', 'out_of_order',
                                                'in_future', 'impossible_speed'))
);
CREATE INDEX position_rejections_device ON position_rejections (device_id, received_at);
