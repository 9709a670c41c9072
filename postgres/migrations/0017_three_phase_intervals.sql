-- Three-phase interval profiles (issue 15, item 3): collected daily by
-- SyncerThreePhaseIntervals (older gaps by the profile backfill job), kept
-- raw in meter_3p_interval, and derived into register_interval_hh and
-- register_interval_day by the single-phase rule.
INSERT INTO flows.meter_metrics (name, run_frequency, notes) VALUES
 ('SyncerThreePhaseIntervals', 'daily', 'three-phase interval profile into meter_3p_interval and register_interval_hh; older gaps backfilled at low priority');

-- One row per meter and half hour (labelled by its start, UTC): a column
-- per channel the reference names (emop.ThreePhaseChannels), scaled by the
-- meter type (kW for the demand channels, the interval's mean; kWh, kvarh,
-- kVAh for the energy channels, the cumulative register at the interval's
-- end), NULL for a channel the meter did not send; a channel id Flows has
-- no column for goes into other_channels ({"hex id": "value"}). The status
-- word with its flags decoded into columns. One row per interval rather
-- than one per channel: 14 values of an interval are read, stored and
-- exported together, and a row each would cost the row overhead 14 times
-- (about 5x the space for a fleet's year).
CREATE TABLE flows.meter_3p_interval (
    meter_id                          uuid NOT NULL REFERENCES flows.meter_registry (id) ON DELETE CASCADE,
    "timestamp"                       timestamptz NOT NULL,
    status                            integer NOT NULL CONSTRAINT meter_3p_interval_status_range CHECK (status BETWEEN 0 AND 65535),
    active_import_demand              numeric,
    active_export_demand              numeric,
    reactive_import_demand            numeric,
    reactive_export_demand            numeric,
    reactive_energy_quadrant_1_demand numeric,
    reactive_energy_quadrant_2_demand numeric,
    reactive_energy_quadrant_3_demand numeric,
    reactive_energy_quadrant_4_demand numeric,
    total_active_energy_import        numeric CONSTRAINT meter_3p_interval_import_range CHECK (total_active_energy_import >= 0),
    total_active_energy_export        numeric CONSTRAINT meter_3p_interval_export_range CHECK (total_active_energy_export >= 0),
    total_reactive_energy_import      numeric,
    total_reactive_energy_export      numeric,
    total_apparent_energy_import      numeric,
    total_apparent_energy_export      numeric,
    other_channels                    jsonb,
    valid_data                        boolean GENERATED ALWAYS AS ((status & 1) <> 0) STORED,
    power_fail                        boolean GENERATED ALWAYS AS ((status & 2) <> 0) STORED,
    phase_1_voltage_failure           boolean GENERATED ALWAYS AS ((status & 4) <> 0) STORED,
    phase_2_voltage_failure           boolean GENERATED ALWAYS AS ((status & 8) <> 0) STORED,
    phase_3_voltage_failure           boolean GENERATED ALWAYS AS ((status & 16) <> 0) STORED,
    security_access                   boolean GENERATED ALWAYS AS ((status & 32) <> 0) STORED,
    md_reset                          boolean GENERATED ALWAYS AS ((status & 64) <> 0) STORED,
    time_update                       boolean GENERATED ALWAYS AS ((status & 128) <> 0) STORED,
    log_reset                         boolean GENERATED ALWAYS AS ((status & 256) <> 0) STORED,
    read_at                           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (meter_id, "timestamp"),
    CONSTRAINT meter_3p_interval_half_hour CHECK (extract(epoch FROM "timestamp")::bigint % 1800 = 0)
) PARTITION BY RANGE ("timestamp");
COMMENT ON TABLE flows.meter_3p_interval IS 'Raw three-phase interval profile per meter and UTC half hour (its start): a scaled value per channel (kW demand, kWh/kvarh/kVAh cumulative registers) and the status flags.';
COMMENT ON COLUMN flows.meter_3p_interval.other_channels IS 'Channels the meter sent that have no column here: {"<hex id>": "<scaled value>"}.';

-- Monthly partitions like the history tables of 0014 (maintained with
-- them: postgres.PartitionedTables): the current month and three ahead,
-- gap partitions around them.
SELECT count(*) FROM flows.create_month_partitions('meter_3p_interval',
    ARRAY(SELECT generate_series(date_trunc('month', now() AT TIME ZONE 'UTC'),
                                 date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months', interval '1 month')::date));

-- Meter data: kept to the role's ESCO as 0016 keeps the other tables.
ALTER TABLE flows.meter_3p_interval ENABLE ROW LEVEL SECURITY;
CREATE POLICY esco_scope ON flows.meter_3p_interval FOR SELECT
    USING (EXISTS (SELECT 1 FROM flows.meter_registry mr WHERE mr.id = meter_3p_interval.meter_id));
CREATE POLICY every_esco ON flows.meter_3p_interval FOR SELECT TO flows_all_escos
    USING (EXISTS (SELECT 1 FROM flows.sql_logins l WHERE l.role_name = current_user AND l.esco IS NULL));
GRANT SELECT ON flows.meter_3p_interval TO flows_readonly, flows_operator;

-- Half hours a three-phase meter holds no interval for are counted in
-- meter_profile_hole as log 3, like profile logs 1 and 2.
ALTER TABLE flows.meter_profile_hole DROP CONSTRAINT meter_profile_hole_log,
    ADD CONSTRAINT meter_profile_hole_log CHECK (log IN (1, 2, 3));
COMMENT ON COLUMN flows.meter_profile_hole.log IS '1, 2: profile logs 1 and 2; 3: the three-phase interval profile.';

-- The single-phase rule (flows.profile_deltas) for three-phase meters: the
-- kWh of the half hour starting at t is the difference between the active
-- energy registers at the ends of intervals t and t - 30 min, both stored,
-- both usable (valid data; no power failure, phase voltage failure, time
-- update or log reset; no register below the stored interval before it)
-- and not going backwards. NULL where no interval can be derived.
CREATE FUNCTION flows.three_phase_deltas(m uuid, from_ts timestamptz, to_ts timestamptz)
RETURNS TABLE ("timestamp" timestamptz, import_kwh numeric, export_kwh numeric)
LANGUAGE sql STABLE AS $$
    WITH recs AS (
        SELECT p."timestamp", p.total_active_energy_import AS imp, p.total_active_energy_export AS exp,
               p.valid_data AND NOT (p.power_fail OR p.phase_1_voltage_failure OR p.phase_2_voltage_failure
                                     OR p.phase_3_voltage_failure OR p.time_update OR p.log_reset) AS flags_ok
        FROM flows.meter_3p_interval p
        WHERE p.meter_id = m AND p."timestamp" < to_ts
          -- From the stored interval before the range: a register below it
          -- spoils the first interval.
          AND p."timestamp" >= coalesce((SELECT max(q."timestamp") FROM flows.meter_3p_interval q
                                         WHERE q.meter_id = m AND q."timestamp" < from_ts - interval '30 minutes'),
                                        from_ts - interval '30 minutes')),
    checked AS (
        SELECT "timestamp", imp, exp,
               flags_ok AND coalesce(imp >= lag(imp) OVER w, true) AND coalesce(exp >= lag(exp) OVER w, true) AS usable
        FROM recs WINDOW w AS (ORDER BY "timestamp")),
    pairs AS (
        SELECT "timestamp", imp, exp, usable, lag("timestamp") OVER w AS prev_ts, lag(usable) OVER w AS prev_usable,
               lag(imp) OVER w AS pimp, lag(exp) OVER w AS pexp
        FROM checked WINDOW w AS (ORDER BY "timestamp"))
    SELECT "timestamp", CASE WHEN imp >= pimp THEN imp - pimp END, CASE WHEN exp >= pexp THEN exp - pexp END
    FROM pairs
    WHERE prev_ts = "timestamp" - interval '30 minutes' AND "timestamp" >= from_ts AND usable AND prev_usable
$$;
COMMENT ON FUNCTION flows.three_phase_deltas IS 'kWh imported and exported per half hour starting in [from, to) of a three-phase meter, NULL where no interval can be derived.';

-- derive_register_intervals (0013) for three-phase meters: the intervals
-- of the meter's enabled SINGLE (or A) registers whose half hour starts in
-- [from, to), from three_phase_deltas (import; a reversed register counts
-- the export), none outside a register's start_time/end_time; intervals in
-- the range that can no longer be derived removed; those days' totals in
-- register_interval_day recounted. The range reaches on to the interval
-- after the first stored one past it: a filled gap changes what the two
-- after it may derive.
CREATE FUNCTION flows.derive_three_phase_intervals(m uuid, from_ts timestamptz, to_ts timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
    next_ts timestamptz;
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
        INSERT INTO flows.register_interval_hh (register_id, "timestamp", kwh)
        SELECT register_id, "timestamp", kwh FROM d WHERE kwh IS NOT NULL
        ON CONFLICT (register_id, "timestamp") DO UPDATE SET kwh = EXCLUDED.kwh
        WHERE register_interval_hh.kwh IS DISTINCT FROM EXCLUDED.kwh
        RETURNING 1)
    SELECT (SELECT count(*) FROM d WHERE kwh IS NOT NULL)::integer INTO n;

    -- The days touched, recounted from the derived table (as 0013 does).
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
