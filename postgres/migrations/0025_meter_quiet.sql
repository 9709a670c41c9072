-- A meter's gap across nodes (issue 16: work shared across nodes). A
-- meter refuses a request that comes within its minimum gap of the last,
-- and the per-meter turn that keeps the gap lives in one process: when a
-- meter passed from one node to another (a sync ends, and the other node's
-- pusher takes the meter for the clock correction that sync queued), the
-- second node's first request could follow the first node's last by
-- milliseconds. So a node that gives a meter back (its sync or push lease
-- released) records until when the meter must rest, and no other node
-- takes the meter before then. The release follows the node's last
-- request to the meter, so the rest is counted from a moment at or after
-- that request's end: never short. The node that released it is not kept
-- waiting: its own turn keeps the gap.
ALTER TABLE flows.meter_sync_state ADD COLUMN quiet_until timestamptz, ADD COLUMN released_by text;
COMMENT ON COLUMN flows.meter_sync_state.quiet_until IS 'The meter''s minimum gap after a node last gave it back: no other node takes the meter before then.';
COMMENT ON COLUMN flows.meter_sync_state.released_by IS 'The lease owner (host:pid[/holder]) that last gave the meter back; its node is not held by quiet_until.';

-- And a push waiting for a meter another node holds goes next (operator
-- work first, across nodes as within one): a node whose push lease is
-- refused records that it wants the meter, and while that want is fresh
-- (renewed by its retries) no other node's sync or push takes the meter;
-- the first node to want it keeps the want until it takes the meter. Before,
-- a top-up waiting on one node watched the other node's sync give the
-- meter back and its pusher take it straight again for the clock
-- correction that sync queued.
ALTER TABLE flows.meter_sync_state ADD COLUMN wanted_by text, ADD COLUMN wanted_until timestamptz;
COMMENT ON COLUMN flows.meter_sync_state.wanted_by IS 'The push lease owner (host:pid/…) waiting for the meter another node holds: it goes next.';
COMMENT ON COLUMN flows.meter_sync_state.wanted_until IS 'When wanted_by''s want lapses unless its retries renew it.';

-- And a sync lease is shared within a node, counted: another frequency's
-- group, or the node's on-demand sync, may read a meter one of the node's
-- groups is reading (its turn orders the reads), and the lease then ends
-- when the last of them gives it back. Before, the second holder
-- overwrote the owner and the first to finish ended the lease while the
-- other still read the meter.
ALTER TABLE flows.meter_sync_state ADD COLUMN lease_holders integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN flows.meter_sync_state.lease_holders IS 'How many of lease_owner''s node''s syncs share the live sync lease; the last to give it back ends it.';
