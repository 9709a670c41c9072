-- Half-hourly interval data. meter_profile keeps what the meters' profile
-- logs report, raw, one row per meter and half hour (UTC): cumulative
-- register readings in Wh (log 1: import A/B; log 2: export A/B) and the
-- record status with its flags decoded. register_interval_hh is derived
-- from it per register, in kWh per half hour, labelled with the half
-- hour's start; only from two consecutive records that are both valid
-- (valid_data set; no reset, power failure, major time error or comms
-- error) and that do not go backwards: a counter reset, a non-monotonic
-- reading or a record flagged invalid never makes a negative or invented
-- interval: such records stay here, raw, and make no interval. Re-reading
-- a half hour is idempotent.
CREATE TABLE flows.meter_profile (
    meter_id         uuid NOT NULL REFERENCES flows.meter_registry (id) ON DELETE CASCADE,
    "timestamp"      timestamptz NOT NULL,
    status           integer NOT NULL CONSTRAINT meter_profile_status_range CHECK (status BETWEEN 0 AND 65535),
    import_a_wh      bigint CONSTRAINT meter_profile_import_a_range CHECK (import_a_wh >= 0),
    import_b_wh      bigint CONSTRAINT meter_profile_import_b_range CHECK (import_b_wh >= 0),
    export_a_wh      bigint CONSTRAINT meter_profile_export_a_range CHECK (export_a_wh >= 0),
    export_b_wh      bigint CONSTRAINT meter_profile_export_b_range CHECK (export_b_wh >= 0),
    valid_data       boolean GENERATED ALWAYS AS ((status & 32768) <> 0) STORED,
    reset            boolean GENERATED ALWAYS AS ((status & 1) <> 0) STORED,
    power_fail       boolean GENERATED ALWAYS AS ((status & 16384) <> 0) STORED,
    minor_time_error boolean GENERATED ALWAYS AS ((status & 8192) <> 0) STORED,
    major_time_error boolean GENERATED ALWAYS AS ((status & 4096) <> 0) STORED,
    comms_error      boolean GENERATED ALWAYS AS ((status & 2048) <> 0) STORED,
    read_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (meter_id, "timestamp"),
    CONSTRAINT meter_profile_half_hour CHECK (extract(epoch FROM "timestamp")::bigint % 1800 = 0)
);
COMMENT ON TABLE flows.meter_profile IS 'Raw profile-log records per meter and UTC half hour: cumulative Wh and the record status (flags decoded).';

CREATE TABLE flows.register_interval_hh (
    register_id uuid NOT NULL REFERENCES flows.meter_registers (register_id) ON DELETE CASCADE,
    "timestamp" timestamptz NOT NULL,
    kwh         numeric NOT NULL CONSTRAINT register_interval_hh_kwh_nonnegative CHECK (kwh >= 0),
    CONSTRAINT register_interval_hh_register_timestamp_key UNIQUE (register_id, "timestamp")
);
CREATE INDEX register_interval_hh_timestamp_idx ON flows.register_interval_hh ("timestamp" DESC);
COMMENT ON TABLE flows.register_interval_hh IS 'kWh per register per half hour (labelled by its start, UTC), derived from meter_profile.';

-- Derives the intervals of one meter's registers whose half hour starts in
-- [from, to): element A (or SINGLE) from the A readings, B from the B
-- readings; a reversed register counts the element's export readings.
CREATE FUNCTION flows.derive_register_intervals(m uuid, from_ts timestamptz, to_ts timestamptz) RETURNS integer
LANGUAGE sql AS $$
    WITH series AS (
        SELECT r.register_id, p."timestamp",
               CASE WHEN r.element = 'B' THEN (CASE WHEN r.direction_reversed THEN p.export_b_wh ELSE p.import_b_wh END)
                    ELSE (CASE WHEN r.direction_reversed THEN p.export_a_wh ELSE p.import_a_wh END) END AS wh,
               p.valid_data AND NOT (p.reset OR p.power_fail OR p.major_time_error OR p.comms_error) AS usable
        FROM flows.meter_registers r JOIN flows.meter_profile p ON p.meter_id = r.meter_id
        WHERE r.meter_id = m AND r.status = 'enabled'
          AND p."timestamp" >= from_ts AND p."timestamp" <= to_ts + interval '30 minutes'),
    -- A reading below the one before it (a glitch or a reset the meter did
    -- not flag) spoils both intervals it would bound.
    checked AS (
        SELECT register_id, "timestamp", wh,
               usable AND (lag(wh) OVER w IS NULL OR wh IS NULL OR wh >= lag(wh) OVER w) AS usable
        FROM series WINDOW w AS (PARTITION BY register_id ORDER BY "timestamp")),
    pairs AS (
        SELECT register_id, "timestamp" AS end_ts, wh, usable,
               lag("timestamp") OVER w AS start_ts, lag(wh) OVER w AS prev_wh, lag(usable) OVER w AS prev_usable
        FROM checked WINDOW w AS (PARTITION BY register_id ORDER BY "timestamp")),
    ins AS (
        INSERT INTO flows.register_interval_hh (register_id, "timestamp", kwh)
        SELECT register_id, start_ts, round((wh - prev_wh)::numeric / 1000, 3) -- Wh are whole: kWh exact to 3 places
        FROM pairs
        WHERE start_ts = end_ts - interval '30 minutes' AND start_ts >= from_ts AND start_ts < to_ts
          AND usable AND prev_usable AND wh IS NOT NULL AND prev_wh IS NOT NULL AND wh >= prev_wh
        ON CONFLICT (register_id, "timestamp") DO UPDATE SET kwh = EXCLUDED.kwh
        RETURNING 1)
    SELECT count(*)::integer FROM ins
$$;

-- Per enabled register per UTC day over the last year: 48 half hours
-- expected, how many are derived, how many missing (the reference's view).
CREATE VIEW flows.register_interval_hh_missing AS
SELECT r.register_id, r.meter_id, d.day::date AS day, 48 AS expected,
       count(i.*)::integer AS record_count, 48 - count(i.*)::integer AS missing_count
FROM flows.meter_registers r
CROSS JOIN generate_series((now() AT TIME ZONE 'UTC')::date - 365, (now() AT TIME ZONE 'UTC')::date - 1, interval '1 day') AS d(day)
LEFT JOIN flows.register_interval_hh i ON i.register_id = r.register_id
     AND i."timestamp" >= (d.day AT TIME ZONE 'UTC') AND i."timestamp" < ((d.day + interval '1 day') AT TIME ZONE 'UTC')
WHERE r.status = 'enabled'
GROUP BY r.register_id, r.meter_id, d.day;
