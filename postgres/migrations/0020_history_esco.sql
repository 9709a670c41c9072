-- The ESCO of each history row, on the row (issue 19's read cost).
--
-- 0016 kept the history tables to a login's ESCO by a policy that asks, for
-- every row, whether its meter is one of the ESCO's meters. PostgreSQL
-- answers that by hashing all the ESCO's meter ids, once per monthly
-- partition the query touches: a cost that grows with the ESCO, not with
-- the query. One meter's week of balances took 1.4x the owner's time for an
-- ESCO of 500 meters and 4.4x for one of 5,000; at 50,000 it would be
-- tens of milliseconds for a query of a third of one.
--
-- So the time-series tables carry the ESCO of their meter in an esco
-- column, and their policy compares it with the login's ESCO: one
-- comparison a row, whatever the ESCO's size. The column is kept right by
-- the database, not by its writers:
--  * on insert, a row without an ESCO gets its meter's (trigger
--    history_esco_fill, only when esco IS NULL: the services' bulk paths,
--    profile records and derived intervals, supply it in the statement and
--    skip the trigger);
--  * an update of a row's meter, register or ESCO takes its meter's again;
--  * a meter moved to another ESCO (meter_registry.esco updated, as
--    flows meter import may do) takes its history with it.
-- Tables with a few rows per meter (requests, top-ups, commands, holes)
-- keep 0016's policy through meter_registry; so do the meters themselves.

-- A row's esco from its meter (TG_ARGV[0]: the row's key, meter_id or
-- register_id). Neither SECURITY DEFINER nor SET search_path (the names
-- are qualified): only the owner writes these tables, and a SET clause
-- costs every call a configuration save and restore (with one, a sync's
-- write took 1.22x as long as without the trigger; without, 1.07x).
CREATE FUNCTION flows.history_esco_fill() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_ARGV[0] = 'meter_id' THEN
        NEW.esco := (SELECT mr.esco FROM flows.meter_registry mr WHERE mr.id = NEW.meter_id);
    ELSIF TG_ARGV[0] = 'id' THEN
        NEW.esco := (SELECT mr.esco FROM flows.meter_registry mr WHERE mr.id = NEW.id);
    ELSE
        NEW.esco := (SELECT mr.esco FROM flows.meter_registers r JOIN flows.meter_registry mr ON mr.id = r.meter_id
                     WHERE r.register_id = NEW.register_id);
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION flows.history_esco_0020(tbl text, key text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE format('ALTER TABLE flows.%I ADD COLUMN esco uuid', tbl);
    EXECUTE format('COMMENT ON COLUMN flows.%I.esco IS %L', tbl,
        'The ESCO of the row''s meter, kept by the database (trigger history_esco_fill): what row-level security scopes the row by.');
    IF key = 'meter_id' THEN
        EXECUTE format('UPDATE flows.%I t SET esco = mr.esco FROM flows.meter_registry mr WHERE mr.id = t.meter_id AND mr.esco IS NOT NULL', tbl);
    ELSE
        EXECUTE format('UPDATE flows.%I t SET esco = mr.esco FROM flows.meter_registers r JOIN flows.meter_registry mr ON mr.id = r.meter_id
                        WHERE r.register_id = t.register_id AND mr.esco IS NOT NULL', tbl);
    END IF;
    EXECUTE format('CREATE TRIGGER history_esco_fill_insert BEFORE INSERT ON flows.%I FOR EACH ROW WHEN (NEW.esco IS NULL)
                    EXECUTE FUNCTION flows.history_esco_fill(%L)', tbl, key);
    EXECUTE format('CREATE TRIGGER history_esco_fill_update BEFORE UPDATE OF %I, esco ON flows.%I FOR EACH ROW
                    EXECUTE FUNCTION flows.history_esco_fill(%L)', key, tbl, key);
    EXECUTE format('DROP POLICY esco_scope ON flows.%I', tbl);
    EXECUTE format('CREATE POLICY esco_scope ON flows.%I FOR SELECT
                    USING (esco = (SELECT l.esco FROM flows.sql_logins l WHERE l.role_name = current_user))', tbl);
END $fn$;

SELECT flows.history_esco_0020(t, 'meter_id')
FROM unnest(ARRAY['meter_prepay_balance', 'meter_csq', 'meter_voltage', 'meter_3p_voltage', 'meter_health_history',
                  'meter_event_log', 'meter_profile', 'meter_3p_interval']) AS t;
SELECT flows.history_esco_0020(t, 'register_id')
FROM unnest(ARRAY['register_import', 'register_export', 'register_interval_hh', 'register_interval_day']) AS t;
DROP FUNCTION flows.history_esco_0020(text, text);

-- The shadow carries its meter's ESCO too, for its history and register
-- triggers to write on their rows (a lookup there, in each of the five
-- or so triggers a sync fires, cost 12-14 % of a sync's write).
ALTER TABLE flows.meter_shadows ADD COLUMN esco uuid;
COMMENT ON COLUMN flows.meter_shadows.esco IS 'The ESCO of the meter, kept by the database (trigger history_esco_fill), for the history triggers.';
UPDATE flows.meter_shadows s SET esco = mr.esco FROM flows.meter_registry mr WHERE mr.id = s.id AND mr.esco IS NOT NULL;
CREATE TRIGGER history_esco_fill_insert BEFORE INSERT ON flows.meter_shadows FOR EACH ROW WHEN (NEW.esco IS NULL)
    EXECUTE FUNCTION flows.history_esco_fill('id');
CREATE TRIGGER history_esco_fill_update BEFORE UPDATE OF id, esco ON flows.meter_shadows FOR EACH ROW
    EXECUTE FUNCTION flows.history_esco_fill('id');

-- A meter moved to another ESCO takes its history with it (each UPDATE
-- below sets esco, so history_esco_fill_update reads it back from the
-- registry, which already says the new ESCO).
CREATE FUNCTION flows.meter_registry_rescope_history() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, flows, pg_temp AS $$
DECLARE
    t text;
BEGIN
    UPDATE flows.meter_shadows SET esco = NEW.esco WHERE id = NEW.id AND esco IS DISTINCT FROM NEW.esco;
    FOREACH t IN ARRAY ARRAY['meter_prepay_balance', 'meter_csq', 'meter_voltage', 'meter_3p_voltage', 'meter_health_history',
                             'meter_event_log', 'meter_profile', 'meter_3p_interval'] LOOP
        EXECUTE format('UPDATE flows.%I SET esco = $1 WHERE meter_id = $2 AND esco IS DISTINCT FROM $1', t) USING NEW.esco, NEW.id;
    END LOOP;
    FOREACH t IN ARRAY ARRAY['register_import', 'register_export', 'register_interval_hh', 'register_interval_day'] LOOP
        EXECUTE format('UPDATE flows.%I SET esco = $1 WHERE register_id IN (SELECT register_id FROM flows.meter_registers WHERE meter_id = $2)
                        AND esco IS DISTINCT FROM $1', t) USING NEW.esco, NEW.id;
    END LOOP;
    RETURN NULL;
END
$$;
CREATE TRIGGER meter_registry_rescope_history AFTER UPDATE OF esco ON flows.meter_registry
    FOR EACH ROW WHEN (OLD.esco IS DISTINCT FROM NEW.esco) EXECUTE FUNCTION flows.meter_registry_rescope_history();

-- The derivations of 0019 and 0017, unchanged but for the ESCO supplied
-- once per statement (a month's intervals would otherwise fire the fill
-- trigger for each of their rows), and the days they touch recounted by
-- one function both call.
CREATE FUNCTION flows.recount_register_days(m uuid, from_ts timestamptz, to_ts timestamptz, e uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- The days of [from, to) touched, recounted from the derived table.
    DELETE FROM flows.register_interval_day t
    USING flows.meter_registers r
    WHERE r.meter_id = m AND r.status = 'enabled' AND t.register_id = r.register_id
      AND t.day >= (from_ts AT TIME ZONE 'UTC')::date AND t.day <= ((to_ts - interval '1 microsecond') AT TIME ZONE 'UTC')::date;
    INSERT INTO flows.register_interval_day (register_id, day, half_hours, kwh, esco)
    SELECT i.register_id, (i."timestamp" AT TIME ZONE 'UTC')::date, count(*), sum(i.kwh), e
    FROM flows.register_interval_hh i JOIN flows.meter_registers r ON r.register_id = i.register_id
    WHERE r.meter_id = m AND r.status = 'enabled'
      AND i."timestamp" >= ((from_ts AT TIME ZONE 'UTC')::date AT TIME ZONE 'UTC')
      AND i."timestamp" < ((((to_ts - interval '1 microsecond') AT TIME ZONE 'UTC')::date + 1) AT TIME ZONE 'UTC')
    GROUP BY 1, 2;
END
$$;
CREATE OR REPLACE FUNCTION flows.derive_register_intervals(m uuid, from_ts timestamptz, to_ts timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
    next_ts timestamptz;
    e uuid := (SELECT mr.esco FROM flows.meter_registry mr WHERE mr.id = m);
BEGIN
    SELECT min(q."timestamp") INTO next_ts FROM flows.meter_profile q
    WHERE q.meter_id = m AND q."timestamp" >= to_ts;
    IF next_ts IS NOT NULL THEN
        to_ts := next_ts + interval '30 minutes';
    END IF;

    -- Compare each record with the stored record before it, wherever that
    -- is: one reading-less half hour does not hide a counter going back.
    -- Only the records whose flag changes are joined back (usually none):
    -- probing every record of a month for nothing was a tenth of a write.
    WITH seq AS (
        SELECT p."timestamp", p.non_monotonic AS was,
               coalesce(p.import_a_wh < lag(p.import_a_wh) OVER w OR p.export_a_wh < lag(p.export_a_wh) OVER w
                     OR p.import_b_wh < lag(p.import_b_wh) OVER w OR p.export_b_wh < lag(p.export_b_wh) OVER w, false) AS backwards
        FROM flows.meter_profile p
        WHERE p.meter_id = m
          AND p."timestamp" >= coalesce((SELECT max(q."timestamp") FROM flows.meter_profile q WHERE q.meter_id = m AND q."timestamp" < from_ts), from_ts)
          AND p."timestamp" <= to_ts + interval '30 minutes'
        WINDOW w AS (ORDER BY p."timestamp")),
    changed AS (
        SELECT "timestamp", backwards FROM seq WHERE "timestamp" >= from_ts AND was IS DISTINCT FROM backwards)
    UPDATE flows.meter_profile p SET non_monotonic = changed.backwards
    FROM changed
    WHERE p.meter_id = m AND p."timestamp" = changed."timestamp"
      AND p."timestamp" >= from_ts AND p."timestamp" <= to_ts + interval '30 minutes';

    WITH d AS (
        SELECT r.register_id, x."timestamp",
               round((CASE WHEN r.direction_reversed THEN x.export_wh ELSE x.import_wh END)::numeric / 1000, 3) AS kwh
        FROM flows.meter_registers r
        JOIN flows.profile_deltas(m, from_ts, to_ts) x ON x.element = (CASE WHEN r.element = 'B' THEN 'B' ELSE 'A' END)
        WHERE r.meter_id = m AND r.status = 'enabled'
          AND (r.start_time IS NULL OR x."timestamp" >= r.start_time)
          AND (r.end_time IS NULL OR x."timestamp" < r.end_time)),
    del AS (
        DELETE FROM flows.register_interval_hh i
        USING flows.meter_registers r
        WHERE r.meter_id = m AND r.status = 'enabled' AND i.register_id = r.register_id
          AND i."timestamp" >= from_ts AND i."timestamp" < to_ts
          AND NOT EXISTS (SELECT 1 FROM d WHERE d.register_id = i.register_id AND d."timestamp" = i."timestamp" AND d.kwh IS NOT NULL)),
    ins AS (
        INSERT INTO flows.register_interval_hh (register_id, "timestamp", kwh, esco)
        SELECT register_id, "timestamp", kwh, e FROM d WHERE kwh IS NOT NULL
        ON CONFLICT (register_id, "timestamp") DO UPDATE SET kwh = EXCLUDED.kwh
        WHERE register_interval_hh.kwh IS DISTINCT FROM EXCLUDED.kwh
        RETURNING 1)
    SELECT (SELECT count(*) FROM d WHERE kwh IS NOT NULL)::integer INTO n;

    PERFORM flows.recount_register_days(m, from_ts, to_ts, e);
    RETURN n;
END
$$;

CREATE OR REPLACE FUNCTION flows.derive_three_phase_intervals(m uuid, from_ts timestamptz, to_ts timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
    next_ts timestamptz;
    e uuid := (SELECT mr.esco FROM flows.meter_registry mr WHERE mr.id = m);
BEGIN
    SELECT min(q."timestamp") INTO next_ts FROM flows.meter_3p_interval q
    WHERE q.meter_id = m AND q."timestamp" >= to_ts;
    IF next_ts IS NOT NULL THEN
        to_ts := next_ts + interval '1 hour';
    END IF;

    WITH d AS (
        SELECT r.register_id, x."timestamp", CASE WHEN r.direction_reversed THEN x.export_kwh ELSE x.import_kwh END AS kwh
        FROM flows.meter_registers r
        CROSS JOIN flows.three_phase_deltas(m, from_ts, to_ts) x
        WHERE r.meter_id = m AND r.status = 'enabled' AND r.element IN ('SINGLE', 'A')
          AND (r.start_time IS NULL OR x."timestamp" >= r.start_time)
          AND (r.end_time IS NULL OR x."timestamp" < r.end_time)),
    del AS (
        DELETE FROM flows.register_interval_hh i
        USING flows.meter_registers r
        WHERE r.meter_id = m AND r.status = 'enabled' AND i.register_id = r.register_id
          AND i."timestamp" >= from_ts AND i."timestamp" < to_ts
          AND NOT EXISTS (SELECT 1 FROM d WHERE d.register_id = i.register_id AND d."timestamp" = i."timestamp" AND d.kwh IS NOT NULL)),
    ins AS (
        INSERT INTO flows.register_interval_hh (register_id, "timestamp", kwh, esco)
        SELECT register_id, "timestamp", kwh, e FROM d WHERE kwh IS NOT NULL
        ON CONFLICT (register_id, "timestamp") DO UPDATE SET kwh = EXCLUDED.kwh
        WHERE register_interval_hh.kwh IS DISTINCT FROM EXCLUDED.kwh
        RETURNING 1)
    SELECT (SELECT count(*) FROM d WHERE kwh IS NOT NULL)::integer INTO n;

    PERFORM flows.recount_register_days(m, from_ts, to_ts, e);
    RETURN n;
END
$$;

-- The shadow's history and register triggers of 0001, unchanged but for
-- the shadow's ESCO written on the row (the fill trigger is not called).
CREATE OR REPLACE FUNCTION flows.meter_shadows_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    CASE TG_ARGV[0]
    WHEN 'balance' THEN
        IF NEW.balance IS NOT NULL OR NEW.emergency_credit IS NOT NULL THEN
            INSERT INTO flows.meter_prepay_balance (meter_id, "timestamp", balance, emergency_credit, esco)
            VALUES (NEW.id, NEW.updated_at, NEW.balance, NEW.emergency_credit, NEW.esco)
            ON CONFLICT (meter_id, "timestamp") DO UPDATE
                SET balance = EXCLUDED.balance, emergency_credit = EXCLUDED.emergency_credit;
        END IF;
    WHEN 'csq' THEN
        INSERT INTO flows.meter_csq (meter_id, "timestamp", csq, esco)
        VALUES (NEW.id, NEW.updated_at, NEW.csq, NEW.esco)
        ON CONFLICT (meter_id, "timestamp") DO UPDATE SET csq = EXCLUDED.csq;
    WHEN 'voltage' THEN
        INSERT INTO flows.meter_voltage (meter_id, "timestamp", voltage, esco)
        VALUES (NEW.id, NEW.updated_at, NEW.voltage, NEW.esco)
        ON CONFLICT (meter_id, "timestamp") DO UPDATE SET voltage = EXCLUDED.voltage;
    WHEN '3p_voltage' THEN
        INSERT INTO flows.meter_3p_voltage (meter_id, "timestamp", voltage_l1, voltage_l2, voltage_l3, esco)
        VALUES (NEW.id, NEW.updated_at, NEW."3p_voltage_l1", NEW."3p_voltage_l2", NEW."3p_voltage_l3", NEW.esco)
        ON CONFLICT (meter_id, "timestamp") DO UPDATE
            SET voltage_l1 = EXCLUDED.voltage_l1, voltage_l2 = EXCLUDED.voltage_l2, voltage_l3 = EXCLUDED.voltage_l3;
    WHEN 'health' THEN
        IF NEW.health IS NOT NULL THEN
            INSERT INTO flows.meter_health_history (meter_id, "timestamp", health, health_details, esco)
            VALUES (NEW.id, NEW.updated_at, NEW.health, NEW.health_details, NEW.esco)
            ON CONFLICT (meter_id, "timestamp") DO UPDATE
                SET health = EXCLUDED.health, health_details = EXCLUDED.health_details;
        END IF;
    END CASE;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION flows.meter_shadows_register_read() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    elem      text := TG_ARGV[0];        -- 'A' or 'B'
    direction text := TG_ARGV[1];        -- 'import' or 'export'
    val       numeric;
    reg       flows.meter_registers;
BEGIN
    val := CASE elem || direction
        WHEN 'Aimport' THEN NEW.import_a WHEN 'Aexport' THEN NEW.export_a
        WHEN 'Bimport' THEN NEW.import_b ELSE NEW.export_b END;
    IF val IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT * INTO reg FROM flows.meter_registers r
    WHERE r.meter_id = NEW.id AND r.status = 'enabled'
      AND (r.element::text = elem OR (elem = 'A' AND r.element = 'SINGLE'))
    ORDER BY (r.element::text = elem) DESC
    LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;  -- no register configured for this element: nothing to track
    END IF;
    IF reg.direction_reversed THEN
        direction := CASE direction WHEN 'import' THEN 'export' ELSE 'import' END;
    END IF;
    IF direction = 'import' THEN
        INSERT INTO flows.register_import (register_id, "timestamp", read, esco)
        VALUES (reg.register_id, NEW.updated_at, val, NEW.esco)
        ON CONFLICT (register_id, "timestamp") DO UPDATE SET read = EXCLUDED.read;
    ELSE
        INSERT INTO flows.register_export (register_id, "timestamp", read, esco)
        VALUES (reg.register_id, NEW.updated_at, val, NEW.esco)
        ON CONFLICT (register_id, "timestamp") DO UPDATE SET read = EXCLUDED.read;
    END IF;
    RETURN NULL;
END $$;
