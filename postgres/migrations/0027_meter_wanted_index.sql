-- A node that holds a meter for background reads (a group sync, a profile
-- backfill) asks every quarter second which of its meters another node
-- wants for operator work (issue 16: operator work first, across nodes),
-- and hands them over after the request in progress. The question reads
-- the few live wants by this index, never the fleet's sync state.
CREATE INDEX meter_sync_state_wanted ON flows.meter_sync_state (wanted_until) WHERE wanted_until IS NOT NULL;
COMMENT ON COLUMN flows.meter_sync_state.wanted_by IS 'The operator work (a push lease owner host:pid/…, or a node''s on-demand sync host:pid) waiting for the meter another node holds: it goes next, and a node holding the meter for background reads hands it over after its request in progress.';
