-- Bulk tariff rollouts: one tariff to many meters, each a tariff request.
CREATE TABLE flows.tariff_rollouts (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tariff            jsonb NOT NULL,
    status            text NOT NULL DEFAULT 'running' CONSTRAINT tariff_rollouts_status_check CHECK (status IN ('running', 'completed', 'aborted')),
    abort_failure_pct integer NOT NULL DEFAULT 20 CONSTRAINT tariff_rollouts_abort_failure_pct_range CHECK (abort_failure_pct BETWEEN 1 AND 100),
    min_sample        integer NOT NULL DEFAULT 20,
    rate_per_minute   integer CONSTRAINT tariff_rollouts_rate_per_minute_positive CHECK (rate_per_minute > 0),
    requested_by      text NOT NULL DEFAULT current_user,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    note              text
);
ALTER TABLE flows.tariff_requests ADD COLUMN rollout_id uuid REFERENCES flows.tariff_rollouts (id);
CREATE INDEX tariff_requests_rollout_idx ON flows.tariff_requests (rollout_id, status);

-- The request trigger records which rollout a request belongs to.
CREATE OR REPLACE FUNCTION flows.tariffs_future_request() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    m flows.meter_registry;
    at timestamptz;
BEGIN
    IF current_setting('flows.writer', true) = 'sync' OR NEW.tariffs_future IS NULL
       OR NEW.tariffs_future IS NOT DISTINCT FROM OLD.tariffs_future THEN
        RETURN NEW;
    END IF;
    SELECT * INTO m FROM flows.meter_registry WHERE id = NEW.id;
    IF m.mode <> 'active' THEN
        RAISE EXCEPTION 'tariffs_future: meter % is passive; set its tariff where it is active', m.serial USING ERRCODE = 'check_violation';
    END IF;
    IF m.hardware IN ('P1.ax', 'P1.cx', 'THREE_PHASE_UNKNOWN') THEN
        RAISE EXCEPTION 'tariffs_future: meter % (%) does not take prepayment tariffs', m.serial, m.hardware USING ERRCODE = 'check_violation';
    END IF;
    PERFORM flows.tariff_check(NEW.tariffs_future, 'tariffs_future');
    at := flows.activation_instant(NEW.tariffs_future ->> 'activation_datetime', m.daylight_savings_correction_enabled);
    IF at <= now() THEN
        RAISE EXCEPTION 'tariffs_future.activation_datetime: % is not in the future', NEW.tariffs_future ->> 'activation_datetime'
            USING ERRCODE = 'check_violation';
    END IF;
    IF at < now() + interval '24 hours' THEN
        RAISE WARNING 'tariffs_future.activation_datetime: less than 24 hours ahead; the meter may not be reached in time';
    END IF;
    UPDATE flows.tariff_requests SET status = 'superseded', updated_at = now()
    WHERE meter_id = NEW.id AND status IN ('pending', 'sending', 'sent', 'verified');
    INSERT INTO flows.tariff_requests (meter_id, tariff, activation_at, source, rollout_id, next_attempt_at)
    VALUES (NEW.id, NEW.tariffs_future, at, coalesce(nullif(current_setting('flows.request_source', true), ''), 'sql'),
            nullif(current_setting('flows.rollout_id', true), '')::uuid,
            coalesce(nullif(current_setting('flows.not_before', true), '')::timestamptz, now()));
    RETURN NEW;
END $$;
