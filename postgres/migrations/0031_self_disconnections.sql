-- Self-disconnection (issue 18): periods when a prepayment meter cut its
-- customer's supply because the credit and emergency credit ran out.
--
-- From the meter's own event log first: a supply-disconnected event opens
-- a period and the next supply-reconnected event closes it. Which event
-- ids mean that is a table (flows.supply_event_types), seeded with the
-- simulator's (49, 50): the reference's list names no such event, and a
-- fleet of real meters whose firmware logs one adds its id there. Where
-- the events are missing (a meter whose log has none, or not read yet —
-- the event log is read daily), from the balance: a reading at or below
-- minus the emergency credit (the active tariff's; what the meter cuts
-- at) opens a period and the first reading above it closes it. The
-- balance's start is put where the slope between the last reading above
-- the floor and the first at it crosses the floor, its end at the first
-- reading above — each within one sync interval of the truth. A period
-- from events whose reconnection is not read yet ends at the balance's
-- recovery until it is.
CREATE TABLE flows.supply_event_types (
    event_type integer PRIMARY KEY,
    effect     text NOT NULL CHECK (effect IN ('disconnected', 'reconnected'))
);
COMMENT ON TABLE flows.supply_event_types IS 'Event-log ids that say a meter cut its supply for lack of credit (disconnected) or restored it (reconnected).';
INSERT INTO flows.supply_event_types (event_type, effect) VALUES (49, 'disconnected'), (50, 'reconnected');

CREATE TABLE flows.meter_self_disconnections (
    meter_id   uuid NOT NULL REFERENCES flows.meter_registry (id) ON DELETE CASCADE,
    started_at timestamptz NOT NULL,
    ended_at   timestamptz CHECK (ended_at >= started_at),
    source     text NOT NULL CHECK (source IN ('events', 'balance')),
    duration   interval GENERATED ALWAYS AS (ended_at - started_at) STORED,
    PRIMARY KEY (meter_id, started_at)
);
COMMENT ON TABLE flows.meter_self_disconnections IS 'Periods a prepayment meter was off supply for lack of credit; ended_at NULL while it still is.';
COMMENT ON COLUMN flows.meter_self_disconnections.source IS 'events: from the meter''s event log; balance: from its balance at the emergency-credit floor (no events seen).';
CREATE INDEX meter_self_disconnections_started_idx ON flows.meter_self_disconnections (started_at);
CREATE INDEX meter_self_disconnections_open_idx ON flows.meter_self_disconnections (meter_id) WHERE ended_at IS NULL;

-- Derives meter m's periods again from since on (widened to the start of
-- a period in progress then): what is recorded from since is replaced.
CREATE FUNCTION flows.detect_self_disconnections(m uuid, since timestamptz) RETURNS void LANGUAGE plpgsql
SET enable_seqscan = off AS $$
DECLARE
    prepay boolean;
    floor_at numeric;
BEGIN
    SELECT coalesce(mr.prepay_enabled, true), -coalesce(flows.tariff_amount(ms.tariffs_active, 'prepayment_emergency_credit'), 0)
    INTO prepay, floor_at
    FROM flows.meter_registry mr JOIN flows.meter_shadows ms ON ms.id = mr.id WHERE mr.id = m;
    SELECT least(since, min(started_at)) INTO since FROM flows.meter_self_disconnections
    WHERE meter_id = m AND (ended_at IS NULL OR ended_at > since);
    DELETE FROM flows.meter_self_disconnections WHERE meter_id = m AND started_at >= since;
    IF NOT coalesce(prepay, false) THEN
        RETURN; -- credit mode: the meter never cuts supply
    END IF;
    INSERT INTO flows.meter_self_disconnections (meter_id, started_at, ended_at, source)
    WITH ev AS (
        SELECT e."timestamp" AS t, s.effect FROM flows.meter_event_log e JOIN flows.supply_event_types s ON s.event_type = e.event_type
        WHERE e.meter_id = m AND e."timestamp" >= since
    ), bal AS (
        SELECT "timestamp" AS t, balance AS b, lag("timestamp") OVER w AS pt, lag(balance) OVER w AS pb
        FROM flows.meter_prepay_balance
        WHERE meter_id = m AND balance IS NOT NULL AND "timestamp" >= since - interval '1 day'
        WINDOW w AS (ORDER BY "timestamp")
    ), evp AS (
        -- Each disconnection to the next reconnection; a second
        -- disconnection before it (a lost reconnect event) is the same
        -- period.
        SELECT min(t) AS started_at, ended_at FROM (
            SELECT d.t, (SELECT min(r.t) FROM ev r WHERE r.effect = 'reconnected' AND r.t > d.t) AS ended_at
            FROM ev d WHERE d.effect = 'disconnected') x
        GROUP BY ended_at
    ), edges AS (
        -- The readings where being at the floor changed, and the first.
        SELECT t, b <= floor_at AS off,
               CASE WHEN pb IS NOT NULL AND b <= floor_at AND pb > b
                    THEN pt + (t - pt) * ((pb - floor_at) / (pb - b))::double precision ELSE t END AS crossed
        FROM bal WHERE pb IS NULL OR (b <= floor_at) <> (pb <= floor_at)
    ), balp AS (
        SELECT crossed AS started_at, ended_at FROM (
            SELECT off, crossed, lead(t) OVER (ORDER BY t) AS ended_at FROM edges) x
        WHERE off AND crossed >= since
    )
    SELECT m, e.started_at, coalesce(e.ended_at, (SELECT min(t) FROM bal WHERE t > e.started_at AND b > floor_at)), 'events'
    FROM evp e
    UNION ALL
    SELECT m, b.started_at, b.ended_at, 'balance' FROM balp b
    WHERE NOT EXISTS (SELECT 1 FROM evp e WHERE tstzrange(e.started_at, e.ended_at, '[]') && tstzrange(b.started_at, b.ended_at, '[]'));
END $$;
COMMENT ON FUNCTION flows.detect_self_disconnections(uuid, timestamptz) IS 'Derives a meter''s self-disconnection periods again from the given time, from its event log and balances.';

-- The balance's part as each balance is written (after 0030's spend day
-- and forecast): only when the reading is at the floor, or leaves it (a
-- meter in credit pays nothing for it).
CREATE OR REPLACE FUNCTION flows.meter_shadows_credit_forecast() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    floor_at numeric := -coalesce(flows.tariff_amount(NEW.tariffs_active, 'prepayment_emergency_credit'), 0);
BEGIN
    IF NEW.balance IS NOT NULL AND NEW.updated_at IS NOT NULL THEN
        PERFORM flows.balance_written(NEW.id, NEW.updated_at);
    END IF;
    PERFORM flows.refresh_credit_forecast(NEW.id);
    IF NEW.balance <= floor_at OR OLD.balance <= floor_at THEN
        PERFORM flows.detect_self_disconnections(NEW.id, coalesce(NEW.updated_at, now()) - interval '1 day');
    END IF;
    RETURN NULL;
END $$;

-- Existing meters, from what they have logged and read.
SELECT flows.detect_self_disconnections(mr.id, '-infinity') FROM flows.meter_registry mr
WHERE EXISTS (SELECT 1 FROM flows.meter_event_log e JOIN flows.supply_event_types s ON s.event_type = e.event_type WHERE e.meter_id = mr.id)
   OR EXISTS (SELECT 1 FROM flows.meter_shadows ms WHERE ms.id = mr.id
              AND ms.balance <= -coalesce(flows.tariff_amount(ms.tariffs_active, 'prepayment_emergency_credit'), 0));

CREATE VIEW flows.meters_self_disconnections WITH (security_invoker = true) AS
SELECT mr.id, mr.serial, mr.name, mr.esco, d.started_at, d.ended_at, d.duration, d.source
FROM flows.meter_self_disconnections d JOIN flows.meter_registry mr ON mr.id = d.meter_id
ORDER BY d.started_at DESC;

ALTER TABLE flows.meter_self_disconnections ENABLE ROW LEVEL SECURITY;
CREATE POLICY esco_scope ON flows.meter_self_disconnections FOR SELECT
    USING (EXISTS (SELECT 1 FROM flows.meter_registry mr WHERE mr.id = meter_self_disconnections.meter_id));
CREATE POLICY every_esco ON flows.meter_self_disconnections FOR SELECT TO flows_all_escos
    USING (EXISTS (SELECT 1 FROM flows.sql_logins l WHERE l.role_name = current_user AND l.esco IS NULL));
GRANT SELECT ON flows.supply_event_types, flows.meter_self_disconnections, flows.meters_self_disconnections TO flows_readonly, flows_operator;
