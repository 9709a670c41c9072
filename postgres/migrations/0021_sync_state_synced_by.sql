-- Which process last synced each meter (issue 16: work shared across
-- nodes). flows serve names itself host:pid; an operator sees from here
-- which node reads a meter, and a benchmark how evenly two nodes share a
-- fleet. NULL until the meter's next sync.
ALTER TABLE flows.meter_sync_state ADD COLUMN last_synced_by text;
COMMENT ON COLUMN flows.meter_sync_state.last_synced_by IS 'The sync engine (flows serve: host:pid) that recorded the last sync, successful or not.';
