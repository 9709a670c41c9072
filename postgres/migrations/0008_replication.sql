-- Replication: the shipper's writes to a replica are what meters reported
-- where they are active, not an operator's request. Marked
-- flows.writer = 'replica', they pass the tariffs_future trigger as the
-- sync engine's own writes do (before this, the first future tariff a
-- replica received was refused as a request on a passive meter, and
-- shipping stalled there).
CREATE OR REPLACE FUNCTION flows.tariffs_future_request() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    m flows.meter_registry;
    at timestamptz;
BEGIN
    IF current_setting('flows.writer', true) IN ('sync', 'replica') OR NEW.tariffs_future IS NULL
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

-- A replica that refuses an entry: the cursor stops at it while it is
-- retried (so each meter's updates stay in order), and after a bounded
-- number of attempts it is moved here, with the reason, and shipping goes
-- on. Quarantined entries are kept for an operator (flows replica status).
ALTER TABLE flows.replica_cursor
    ADD COLUMN failing_id       bigint,
    ADD COLUMN failing_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN last_error       text;
CREATE TABLE flows.replica_quarantine (
    replica        text NOT NULL,
    outbox_id      bigint NOT NULL,
    serial         text NOT NULL,
    changes        jsonb NOT NULL,
    error          text NOT NULL,
    attempts       integer NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (replica, outbox_id)
);
