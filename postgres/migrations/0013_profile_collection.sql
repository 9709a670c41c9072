-- Profile collection: the profile syncer's row, the flag for readings that
-- go backwards, the half hours a meter said it does not have (so a gap is
-- asked for a bounded number of times), per-day totals kept with the
-- derived intervals, and one rule for what makes an interval, shared by
-- the derived table and the API.

INSERT INTO flows.meter_metrics (name, run_frequency, notes) VALUES
 ('SyncerProfileLogs', 'daily', 'half-hourly profile logs 1 and 2 into meter_profile and register_interval_hh; older gaps backfilled at low priority');

-- A reading below the stored reading before it (a counter reset the meter
-- did not flag, a glitch): kept raw, flagged, and left out of intervals.
ALTER TABLE flows.meter_profile ADD COLUMN non_monotonic boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN flows.meter_profile.non_monotonic IS 'A reading is below the stored record before it: no interval is derived across it.';

-- Half hours a meter answered for with a later record ("next available"):
-- it has no record there. attempts counts the answers; the backfill stops
-- asking after three.
CREATE TABLE flows.meter_profile_hole (
    meter_id    uuid NOT NULL REFERENCES flows.meter_registry (id) ON DELETE CASCADE,
    log         smallint NOT NULL CONSTRAINT meter_profile_hole_log CHECK (log IN (1, 2)),
    "timestamp" timestamptz NOT NULL,
    attempts    integer NOT NULL DEFAULT 1,
    last_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (meter_id, log, "timestamp")
);
COMMENT ON TABLE flows.meter_profile_hole IS 'Half hours a meter reported it has no profile record for (it answered with later data).';

-- Per register per UTC day: how many half hours are derived and their
-- total, kept by derive_register_intervals (daily totals and completeness
-- without reading every half hour).
CREATE TABLE flows.register_interval_day (
    register_id uuid NOT NULL REFERENCES flows.meter_registers (register_id) ON DELETE CASCADE,
    day         date NOT NULL,
    half_hours  integer NOT NULL CONSTRAINT register_interval_day_half_hours CHECK (half_hours BETWEEN 0 AND 50),
    kwh         numeric NOT NULL CONSTRAINT register_interval_day_kwh_nonnegative CHECK (kwh >= 0),
    PRIMARY KEY (register_id, day)
);
CREATE INDEX register_interval_day_day_idx ON flows.register_interval_day (day);
COMMENT ON TABLE flows.register_interval_day IS 'Derived half hours and kWh per register per UTC day (kept with register_interval_hh).';

-- The one rule for an interval: per element, the difference between two
-- stored records half an hour apart, both usable (valid data; no reset,
-- power failure, major time error or comms error; not non-monotonic) and
-- not going backwards. NULL where no interval can be derived. The half
-- hour is labelled by its start.
CREATE FUNCTION flows.profile_deltas(m uuid, from_ts timestamptz, to_ts timestamptz)
RETURNS TABLE (element text, "timestamp" timestamptz, import_wh bigint, export_wh bigint)
LANGUAGE sql STABLE AS $$
    WITH recs AS (
        SELECT p."timestamp",
               p.valid_data AND NOT (p.reset OR p.power_fail OR p.major_time_error OR p.comms_error OR p.non_monotonic) AS usable,
               p.import_a_wh, p.export_a_wh, p.import_b_wh, p.export_b_wh
        FROM flows.meter_profile p
        WHERE p.meter_id = m AND p."timestamp" >= from_ts AND p."timestamp" <= to_ts + interval '30 minutes'),
    pairs AS (
        SELECT "timestamp" AS end_ts, usable, import_a_wh, export_a_wh, import_b_wh, export_b_wh,
               lag("timestamp") OVER w AS start_ts, lag(usable) OVER w AS prev_usable,
               lag(import_a_wh) OVER w AS pia, lag(export_a_wh) OVER w AS pea,
               lag(import_b_wh) OVER w AS pib, lag(export_b_wh) OVER w AS peb
        FROM recs WINDOW w AS (ORDER BY "timestamp")),
    ok AS (
        SELECT * FROM pairs
        WHERE start_ts = end_ts - interval '30 minutes' AND start_ts >= from_ts AND start_ts < to_ts
          AND usable AND prev_usable)
    SELECT 'A', start_ts,
           CASE WHEN import_a_wh >= pia THEN import_a_wh - pia END,
           CASE WHEN export_a_wh >= pea THEN export_a_wh - pea END
    FROM ok
    UNION ALL
    SELECT 'B', start_ts,
           CASE WHEN import_b_wh >= pib THEN import_b_wh - pib END,
           CASE WHEN export_b_wh >= peb THEN export_b_wh - peb END
    FROM ok WHERE import_b_wh IS NOT NULL OR export_b_wh IS NOT NULL
$$;
COMMENT ON FUNCTION flows.profile_deltas IS 'Wh imported and exported per element per half hour starting in [from, to), NULL where no interval can be derived.';

-- Flags readings that go backwards, then derives the intervals of one
-- meter's enabled registers whose half hour starts in [from, to) (element
-- A or SINGLE from the A readings, B from the B readings; a reversed
-- register counts the element's export; none before a register's
-- start_time or from its end_time), removes its enabled registers'
-- intervals in the range that can no longer be derived (a replaced
-- register keeps its history), and refreshes those days' totals. The
-- range reaches on to the first stored record after it: a record filled
-- into a gap changes the backwards flag of the one that follows.
CREATE OR REPLACE FUNCTION flows.derive_register_intervals(m uuid, from_ts timestamptz, to_ts timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
    next_ts timestamptz;
BEGIN
    SELECT min(q."timestamp") INTO next_ts FROM flows.meter_profile q
    WHERE q.meter_id = m AND q."timestamp" >= to_ts;
    IF next_ts IS NOT NULL THEN
        to_ts := next_ts + interval '30 minutes';
    END IF;

    -- Compare each record with the stored record before it, wherever that
    -- is: one reading-less half hour does not hide a counter going back.
    WITH seq AS (
        SELECT p."timestamp",
               p.import_a_wh < lag(p.import_a_wh) OVER w OR p.export_a_wh < lag(p.export_a_wh) OVER w
            OR p.import_b_wh < lag(p.import_b_wh) OVER w OR p.export_b_wh < lag(p.export_b_wh) OVER w AS backwards
        FROM flows.meter_profile p
        WHERE p.meter_id = m
          AND p."timestamp" >= coalesce((SELECT max(q."timestamp") FROM flows.meter_profile q WHERE q.meter_id = m AND q."timestamp" < from_ts), from_ts)
          AND p."timestamp" <= to_ts + interval '30 minutes'
        WINDOW w AS (ORDER BY p."timestamp"))
    UPDATE flows.meter_profile p SET non_monotonic = coalesce(seq.backwards, false)
    FROM seq
    WHERE p.meter_id = m AND p."timestamp" = seq."timestamp" AND seq."timestamp" >= from_ts
      AND p.non_monotonic IS DISTINCT FROM coalesce(seq.backwards, false);

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
        INSERT INTO flows.register_interval_hh (register_id, "timestamp", kwh)
        SELECT register_id, "timestamp", kwh FROM d WHERE kwh IS NOT NULL
        ON CONFLICT (register_id, "timestamp") DO UPDATE SET kwh = EXCLUDED.kwh
        WHERE register_interval_hh.kwh IS DISTINCT FROM EXCLUDED.kwh
        RETURNING 1)
    SELECT (SELECT count(*) FROM d WHERE kwh IS NOT NULL)::integer INTO n;

    -- The days touched, recounted from the derived table.
    DELETE FROM flows.register_interval_day t
    USING flows.meter_registers r
    WHERE r.meter_id = m AND r.status = 'enabled' AND t.register_id = r.register_id
      AND t.day >= (from_ts AT TIME ZONE 'UTC')::date AND t.day <= ((to_ts - interval '1 microsecond') AT TIME ZONE 'UTC')::date;
    INSERT INTO flows.register_interval_day (register_id, day, half_hours, kwh)
    SELECT i.register_id, (i."timestamp" AT TIME ZONE 'UTC')::date, count(*), sum(i.kwh)
    FROM flows.register_interval_hh i JOIN flows.meter_registers r ON r.register_id = i.register_id
    WHERE r.meter_id = m AND r.status = 'enabled'
      AND i."timestamp" >= ((from_ts AT TIME ZONE 'UTC')::date AT TIME ZONE 'UTC')
      AND i."timestamp" < ((((to_ts - interval '1 microsecond') AT TIME ZONE 'UTC')::date + 1) AT TIME ZONE 'UTC')
    GROUP BY 1, 2;
    RETURN n;
END
$$;

-- When a register's half hours start being expected: its start_time
-- (commissioning) rounded up to a half hour; -infinity when unknown.
CREATE FUNCTION flows.register_expected_from(start_time timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(date_bin('30 minutes', start_time - interval '1 microsecond', timestamptz '2000-01-01 00:00:00+00') + interval '30 minutes',
                    '-infinity')
$$;

-- Per meter: the share of expected half hours derived over the last 7 and
-- 30 complete UTC days: per enabled register, the half hours from the
-- window's start, or from flows.register_expected_from(start_time) when
-- that is later, to the start of today; NULL when none is expected yet.
-- Written so that a filter on meter_id reaches meter_registers (one meter
-- is a few index lookups); postgres.Store.CompletenessOf computes the same
-- rule for many meters in one pass (a test holds them equal).
CREATE VIEW flows.meter_interval_completeness AS
SELECT g.meter_id,
       round(sum(coalesce(p.n7, 0)) / nullif(sum(g.e7), 0), 4) AS complete_7d,
       round(sum(coalesce(p.n30, 0)) / nullif(sum(g.e30), 0), 4) AS complete_30d
FROM (
    SELECT r.meter_id, r.register_id, t.day, flows.register_expected_from(r.start_time) AS expected_from,
           greatest(extract(epoch FROM t.start - greatest(t.start - interval '7 days', flows.register_expected_from(r.start_time))) / 1800, 0) AS e7,
           greatest(extract(epoch FROM t.start - greatest(t.start - interval '30 days', flows.register_expected_from(r.start_time))) / 1800, 0) AS e30
    FROM flows.meter_registers r
    CROSS JOIN (SELECT ((now() AT TIME ZONE 'UTC')::date AT TIME ZONE 'UTC') AS start, (now() AT TIME ZONE 'UTC')::date AS day) t
    WHERE r.status = 'enabled') g
LEFT JOIN LATERAL (
    SELECT sum(d.half_hours) FILTER (WHERE d.day >= g.day - 7) AS n7, sum(d.half_hours) AS n30
    FROM flows.register_interval_day d
    WHERE d.register_id = g.register_id AND d.day >= g.day - 30 AND d.day < g.day
      AND d.day >= (g.expected_from AT TIME ZONE 'UTC')::date) p ON true
GROUP BY g.meter_id;
COMMENT ON VIEW flows.meter_interval_completeness IS 'Share (0-1) of expected half hours derived per meter over the last 7 and 30 complete UTC days, from commissioning.';
