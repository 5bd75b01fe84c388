-- 0009 device sites (PostgreSQL): where a fixed device stands and what people call the place —
-- an alarm point (报警点) in a shop or petrol station, a checkpoint (卡口) terminal — so the
-- board can draw them and show which have stopped reporting. Trackers leave these empty.
ALTER TABLE devices ADD COLUMN name TEXT;
ALTER TABLE devices ADD COLUMN lat DOUBLE PRECISION CHECK (lat IS NULL OR (lat BETWEEN -90 AND 90));
ALTER TABLE devices ADD COLUMN lon DOUBLE PRECISION CHECK (lon IS NULL OR (lon BETWEEN -180 AND 180));
