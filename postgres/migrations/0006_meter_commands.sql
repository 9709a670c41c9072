-- Clock corrections and flag changes, with the same lifecycle as tariff
-- requests: pending → sending → sent → verified, or failed, or superseded.
CREATE TYPE flows.meter_command_kind AS ENUM ('clock', 'prepay_enabled', 'daylight_savings_correction', 'backlight', 'load_switch');
CREATE TABLE flows.meter_commands (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    meter_id        uuid NOT NULL REFERENCES flows.meter_registry (id) ON DELETE CASCADE,
    kind            flows.meter_command_kind NOT NULL,
    value           text NOT NULL DEFAULT '',
    status          flows.request_status NOT NULL DEFAULT 'pending',
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    last_error      text,
    requested_by    text NOT NULL DEFAULT current_user,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    verified_at     timestamptz
);
CREATE INDEX meter_commands_work_idx ON flows.meter_commands (status, next_attempt_at);
CREATE INDEX meter_commands_meter_idx ON flows.meter_commands (meter_id, kind, created_at DESC);
