-- 0003 geometry (PostgreSQL): the shape of each jurisdiction.
--
-- OGC Well-Known Binary, a little-endian MultiPolygon in WGS84 longitude/latitude
-- (fangkong_geo::wkb), so that a deployment with PostGIS can read it with
-- ST_GeomFromWKB(shape, 4326) without Fangkong needing the extension. NULL for a node whose
-- boundary has not been imported.
ALTER TABLE jurisdictions ADD COLUMN shape bytea;
