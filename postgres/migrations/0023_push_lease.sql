-- A meter's push lease (issue 16: work shared across nodes). A meter's
-- requests must keep its minimum gap, and the per-meter turn that keeps it
-- lives in one process: a top-up pushed by one node while another node
-- syncs the same meter broke the gap. So a push takes the meter too, in
-- columns of its own beside the sync lease: a node may push to a meter
-- its own sync engine is reading (its turn orders the two), never to one
-- another node is reading, and no node syncs a meter another node is
-- pushing to. An owner is host:pid, with a /suffix for the holder within
-- the process (…/backfill, …/push): the node is what comes before the
-- first '/'.
ALTER TABLE flows.meter_sync_state ADD COLUMN push_owner text, ADD COLUMN push_until timestamptz;
COMMENT ON COLUMN flows.meter_sync_state.push_owner IS 'The command pusher (host:pid/push) writing to the meter now, if any; renewed while it pushes.';
COMMENT ON COLUMN flows.meter_sync_state.push_until IS 'When push_owner''s lease ends unless renewed: a node that died mid-push holds the meter no longer than that.';
