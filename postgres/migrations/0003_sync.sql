-- Sync engine state.

-- When each value group of a shadow was last read from the meter
-- ({"balance": "2026-...Z", "csq": ...}); a value older than twice its
-- group's interval is stale.
ALTER TABLE flows.meter_shadows ADD COLUMN synced_at jsonb NOT NULL DEFAULT '{}';

-- Per meter: when each frequency's sync is next due, failures in a row
-- (for backoff), and a lease so that two flows processes never sync one
-- meter at the same time.
CREATE TABLE flows.meter_sync_state (
    meter_id             uuid PRIMARY KEY REFERENCES flows.meter_registry (id) ON DELETE CASCADE,
    last_attempt_at      timestamptz,
    last_success_at      timestamptz,
    consecutive_failures integer NOT NULL DEFAULT 0,
    last_error           text,
    lease_owner          text,
    lease_until          timestamptz,
    syncs                bigint NOT NULL DEFAULT 0
);

-- Durable outbox of shadow updates of active meters, for replica databases
-- where the same meters are passive. Each replica keeps its own cursor.
CREATE TABLE flows.shadow_outbox (
    id         bigserial PRIMARY KEY,
    serial     text NOT NULL,
    changes    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE flows.replica_cursor (
    replica    text PRIMARY KEY,
    last_id    bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The job queue (River) lives in its own schema.
CREATE SCHEMA IF NOT EXISTS flows_queue;

-- When each frequency last ran for a meter ({"hourly": ts, ...}), so the
-- scheduler queues each slot once.
ALTER TABLE flows.meter_sync_state ADD COLUMN last_run jsonb NOT NULL DEFAULT '{}';
