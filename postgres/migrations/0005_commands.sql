-- Commands: every write to a meter starts as a durable request here, is
-- pushed, read back, verified and audited.

CREATE TYPE flows.request_status AS ENUM ('pending', 'sending', 'sent', 'verified', 'active', 'failed', 'superseded');

-- Future tariffs. Setting meter_shadows.tariffs_future with plain SQL (as
-- the seed's "Update Meter Tariff" says) records a request through the
-- trigger below; the sync engine's own writes of what the meter reports
-- (flows.writer = 'sync') do not.
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

CREATE TABLE flows.tariff_requests (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    meter_id        uuid NOT NULL REFERENCES flows.meter_registry (id) ON DELETE CASCADE,
    tariff          jsonb NOT NULL,
    activation_at   timestamptz NOT NULL,
    status          flows.request_status NOT NULL DEFAULT 'pending',
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    last_error      text,
    requested_by    text NOT NULL DEFAULT current_user,
    source          text NOT NULL DEFAULT 'sql',
    rollout_id      uuid REFERENCES flows.tariff_rollouts (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    verified_at     timestamptz,
    activated_at    timestamptz
);
CREATE INDEX tariff_requests_work_idx ON flows.tariff_requests (status, next_attempt_at);
CREATE INDEX tariff_requests_meter_idx ON flows.tariff_requests (meter_id, created_at DESC);
CREATE INDEX tariff_requests_rollout_idx ON flows.tariff_requests (rollout_id, status);

-- Rejects a tariff a meter cannot hold, naming the field.
CREATE FUNCTION flows.tariff_check(t jsonb, prefix text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    k text;
    v numeric;
BEGIN
    FOREACH k IN ARRAY ARRAY['standing_charge', 'unit_rate_element_a', 'unit_rate_element_b',
                             'prepayment_emergency_credit', 'prepayment_ecredit_availability', 'prepayment_debt_recovery_rate'] LOOP
        v := flows.tariff_amount(t, k);
        IF v IS NULL THEN
            RAISE EXCEPTION '%.%: required (a decimal amount)', prefix, k USING ERRCODE = 'check_violation';
        END IF;
        IF v < 0 THEN
            RAISE EXCEPTION '%.%: must not be negative', prefix, k USING ERRCODE = 'check_violation';
        END IF;
        IF scale(v) > 5 AND v <> round(v, 5) THEN
            RAISE EXCEPTION '%.%: % has more than 5 decimal places', prefix, k, v USING ERRCODE = 'check_violation';
        END IF;
        IF k IN ('standing_charge', 'unit_rate_element_a', 'unit_rate_element_b') AND v > 1 THEN
            RAISE EXCEPTION '%.%: % is above the meter maximum of 1.00000', prefix, k, v USING ERRCODE = 'check_violation';
        END IF;
    END LOOP;
    IF t ->> 'activation_datetime' IS NULL THEN
        RAISE EXCEPTION '%.activation_datetime: required', prefix USING ERRCODE = 'check_violation';
    END IF;
END $$;

-- Records an operator's future tariff as a request (with its rollout and
-- earliest push time when a rollout sets them).
CREATE FUNCTION flows.tariffs_future_request() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER meter_shadows_40_tariffs_future_request BEFORE UPDATE OF tariffs_future ON flows.meter_shadows
    FOR EACH ROW EXECUTE FUNCTION flows.tariffs_future_request();

-- Top-ups: the ledger of tokens to push. A token is accepted once.
CREATE TYPE flows.topup_status_enum AS ENUM ('wait_token_push', 'completed', 'failed_token_push');
CREATE TYPE flows.topup_source_enum AS ENUM ('payment', 'gift', 'solar_credit', 'adjustment');
CREATE TABLE flows.topups (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    meter_id        uuid NOT NULL REFERENCES flows.meter_registry (id) ON DELETE CASCADE,
    amount          numeric(10, 2) CONSTRAINT topups_amount_range CHECK (amount > 0 AND amount <= 1000),
    token           text NOT NULL CONSTRAINT topups_token_key UNIQUE
                    CONSTRAINT topups_token_format CHECK (token ~ '^[0-9]{20}$'),
    source          flows.topup_source_enum NOT NULL DEFAULT 'payment',
    status          flows.topup_status_enum NOT NULL DEFAULT 'wait_token_push',
    notes           text,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    -- Set just before the token is sent: a restart that finds them knows a
    -- send may have happened and checks the meter before sending again.
    push_started_at timestamptz,
    balance_before  numeric(14, 5),
    tx_count_before integer,
    balance_after   numeric(14, 5),
    requested_by    text NOT NULL DEFAULT current_user,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    used_at         timestamptz
);
CREATE INDEX topups_work_idx ON flows.topups (status, next_attempt_at);

-- Every write to a meter, with who asked, what, for which request, and
-- how it went. Tokens are stored redacted here.
CREATE TABLE flows.meter_write_audit (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    meter_id     uuid NOT NULL REFERENCES flows.meter_registry (id) ON DELETE CASCADE,
    request_kind text NOT NULL,
    request_id   uuid,
    requested_by text,
    object       text NOT NULL,
    value        text,
    outcome      text NOT NULL,
    detail       text
);
CREATE INDEX meter_write_audit_meter_idx ON flows.meter_write_audit (meter_id, at DESC);
