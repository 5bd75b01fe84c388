-- 0003 geometry (SQLite): the shape of each jurisdiction.
--
-- OGC Well-Known Binary, a little-endian MultiPolygon in WGS84 longitude/latitude
-- (fangkong_geo::wkb). NULL for a node whose boundary has not been imported: such a node
-- is in the tree, but no point is looked up into it.
ALTER TABLE jurisdictions ADD COLUMN shape BLOB;
