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
