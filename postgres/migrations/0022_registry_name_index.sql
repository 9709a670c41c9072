-- The fleet page and GET /api/v1/meters list meters by name, then serial,
-- a page at a time. Without an index PostgreSQL sorts every meter for
-- each page (about 40 ms at 100,000 meters); with it, the first page is
-- read from the index's start.
CREATE INDEX meter_registry_name_serial_idx ON flows.meter_registry (name, serial);
