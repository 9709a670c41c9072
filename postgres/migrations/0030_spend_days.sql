-- The credit forecast from each meter's spending per UTC day, kept as the
-- balances are written (issue 18's goal: every forecast recomputed in
-- under 10 s at 100,000 meters). Migration 0029 reads each meter's last
-- 7 days of readings for its forecast: run for every meter that is 95 s at
-- 100,000 meters, and a single window pass over those readings (16.9 M
-- rows) still 140 s on this machine, a bare ordered read of them alone
-- 4.5 s. The forecast needs far less: per meter and UTC day, what the
-- balance fell by over its steps and how long those steps took, and the
-- day's newest reading. flows.meter_spend_days holds that, one row a
-- meter-day, refreshed from the history for the day a balance is written
-- (and the next, should an older reading land between two); the forecast,
-- for one meter or the whole fleet, reads those rows: 8 a meter.
--
-- A step is as in 0029: two consecutive readings, the balance fell or
-- held, under 6 hours apart; it counts on the UTC day of its later
-- reading. The forecast's window is the 7 UTC days up to the day of the
-- newest reading (that day included, partial). Readings loaded into the
-- history directly (an import, a benchmark's generator) are counted by
-- flows.rebuild_spend_days(), one pass over the last 14 days of history,
-- or flows.rebuild_spend_days(id) for one meter.
CREATE TABLE flows.meter_spend_days (
    meter_id     uuid NOT NULL REFERENCES flows.meter_registry (id) ON DELETE CASCADE,
    day          date NOT NULL,
    spent        numeric(14, 5) NOT NULL,
    secs         numeric(14, 3) NOT NULL,
    last_at      timestamptz NOT NULL,
    last_balance numeric(14, 5) NOT NULL,
    PRIMARY KEY (meter_id, day)
);
COMMENT ON TABLE flows.meter_spend_days IS 'Per meter and UTC day: GBP the balance fell over its steps (consecutive readings under 6 h apart, falling or flat), the seconds they cover, and the day''s newest reading. The credit forecast reads these.';
ALTER TABLE flows.meter_spend_days ENABLE ROW LEVEL SECURITY;
CREATE POLICY esco_scope ON flows.meter_spend_days FOR SELECT
    USING (EXISTS (SELECT 1 FROM flows.meter_registry mr WHERE mr.id = meter_spend_days.meter_id));
CREATE POLICY every_esco ON flows.meter_spend_days FOR SELECT TO flows_all_escos
    USING (EXISTS (SELECT 1 FROM flows.sql_logins l WHERE l.role_name = current_user AND l.esco IS NULL));
GRANT SELECT ON flows.meter_spend_days TO flows_readonly, flows_operator;

-- Meter m's row for UTC day d, again from the history (removed when the
-- day has no reading).
CREATE FUNCTION flows.refresh_spend_day(m uuid, d date) RETURNS void LANGUAGE plpgsql
SET enable_seqscan = off AS $$
DECLARE
    from_t timestamptz := d::timestamp AT TIME ZONE 'UTC';
BEGIN
    WITH pts AS (
        SELECT "timestamp" AS t, balance AS b, lag("timestamp") OVER w AS pt, lag(balance) OVER w AS pb
        FROM flows.meter_prepay_balance
        WHERE meter_id = m AND balance IS NOT NULL AND "timestamp" >= from_t - interval '6 hours' AND "timestamp" < from_t + interval '1 day'
        WINDOW w AS (ORDER BY "timestamp")
    ), s AS (
        SELECT t, b, CASE WHEN pb IS NOT NULL AND b <= pb AND t > pt AND t - pt <= interval '6 hours' THEN pb - b END AS spent,
               CASE WHEN pb IS NOT NULL AND b <= pb AND t > pt AND t - pt <= interval '6 hours' THEN extract(epoch FROM t - pt) END AS secs
        FROM pts WHERE t >= from_t
    ), agg AS (
        SELECT coalesce(sum(spent), 0) AS spent, coalesce(sum(secs), 0) AS secs, max(t) AS last_at,
               (array_agg(b ORDER BY t DESC))[1] AS last_balance
        FROM s HAVING count(*) > 0
    ), gone AS (
        DELETE FROM flows.meter_spend_days WHERE meter_id = m AND day = d AND NOT EXISTS (SELECT 1 FROM agg)
    )
    INSERT INTO flows.meter_spend_days (meter_id, day, spent, secs, last_at, last_balance)
    SELECT m, d, spent, secs, last_at, last_balance FROM agg
    ON CONFLICT (meter_id, day) DO UPDATE SET spent = EXCLUDED.spent, secs = EXCLUDED.secs, last_at = EXCLUDED.last_at,
        last_balance = EXCLUDED.last_balance;
END $$;

-- Every meter's days again from the last 14 days of history (after an
-- import); returns the meter-days it wrote. Days older than that are
-- left as they are.
CREATE FUNCTION flows.rebuild_spend_days() RETURNS bigint LANGUAGE plpgsql
SET work_mem = '256MB' AS $$
DECLARE
    since timestamptz := date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '14 days';
    n bigint;
BEGIN
    DELETE FROM flows.meter_spend_days WHERE day >= (since AT TIME ZONE 'UTC')::date;
    WITH pts AS (
        SELECT meter_id, "timestamp" AS t, balance AS b, lag("timestamp") OVER w AS pt, lag(balance) OVER w AS pb
        FROM flows.meter_prepay_balance
        WHERE balance IS NOT NULL AND "timestamp" >= since - interval '6 hours'
        WINDOW w AS (PARTITION BY meter_id ORDER BY "timestamp")
    ), s AS (
        SELECT meter_id, t, b, (t AT TIME ZONE 'UTC')::date AS day,
               CASE WHEN pb IS NOT NULL AND b <= pb AND t > pt AND t - pt <= interval '6 hours' THEN pb - b END AS spent,
               CASE WHEN pb IS NOT NULL AND b <= pb AND t > pt AND t - pt <= interval '6 hours' THEN extract(epoch FROM t - pt) END AS secs
        FROM pts WHERE t >= since
    ), ins AS (
        INSERT INTO flows.meter_spend_days (meter_id, day, spent, secs, last_at, last_balance)
        SELECT meter_id, day, coalesce(sum(spent), 0), coalesce(sum(secs), 0), max(t), (array_agg(b ORDER BY t DESC))[1]
        FROM s GROUP BY meter_id, day
        RETURNING 1
    )
    SELECT count(*) INTO n FROM ins;
    RETURN n;
END $$;

-- One meter's days again from all its history (after loading its
-- readings straight into the history); returns the days it has.
CREATE FUNCTION flows.rebuild_spend_days(m uuid) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    DELETE FROM flows.meter_spend_days WHERE meter_id = m;
    PERFORM flows.refresh_spend_day(m, d)
    FROM (SELECT DISTINCT ("timestamp" AT TIME ZONE 'UTC')::date AS d FROM flows.meter_prepay_balance
          WHERE meter_id = m AND balance IS NOT NULL) days;
    SELECT count(*) INTO n FROM flows.meter_spend_days WHERE meter_id = m;
    RETURN n;
END $$;

-- One meter's forecast from its days (the rules of 0029 otherwise).
CREATE OR REPLACE FUNCTION flows.refresh_credit_forecast(m uuid) RETURNS void LANGUAGE plpgsql
SET enable_seqscan = off AS $$
DECLARE
    last_day date;
    last_t timestamptz;
    last_b numeric;
    prepay boolean;
    threshold numeric;
    ec numeric;
BEGIN
    SELECT day, last_at, last_balance INTO last_day, last_t, last_b FROM flows.meter_spend_days
    WHERE meter_id = m ORDER BY day DESC LIMIT 1;
    IF last_day IS NULL THEN
        DELETE FROM flows.meter_credit_forecast WHERE meter_id = m;
        RETURN;
    END IF;
    SELECT coalesce(mr.prepay_enabled, true), flows.tariff_amount(ms.tariffs_active, 'prepayment_ecredit_availability'),
           coalesce(flows.tariff_amount(ms.tariffs_active, 'prepayment_emergency_credit'), 0)
    INTO prepay, threshold, ec
    FROM flows.meter_registry mr JOIN flows.meter_shadows ms ON ms.id = mr.id WHERE mr.id = m;
    WITH f AS (
        SELECT sum(spent) * 86400 / nullif(sum(secs), 0) AS rate, sum(secs) / 86400 AS days,
               percentile_cont(0.1) WITHIN GROUP (ORDER BY spent * 86400 / nullif(secs, 0)) FILTER (WHERE secs >= 6 * 3600) AS lo,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY spent * 86400 / nullif(secs, 0)) FILTER (WHERE secs >= 6 * 3600) AS hi
        FROM flows.meter_spend_days WHERE meter_id = m AND day > last_day - 7
    )
    INSERT INTO flows.meter_credit_forecast AS fc (meter_id, balance_at, balance, days_observed, spend_per_day, spend_per_day_low,
        spend_per_day_high, ecredit_threshold, emergency_credit, ecredit_at, supply_cut_at, supply_cut_earliest, supply_cut_latest, computed_at)
    SELECT m, last_t, last_b, round(f.days, 3), round(f.rate, 5), round(coalesce(f.lo, f.rate)::numeric, 5), round(coalesce(f.hi, f.rate)::numeric, 5),
           threshold, ec,
           CASE WHEN prepay AND last_b > threshold THEN flows.credit_runs_out(last_t, last_b - threshold, f.rate) END,
           CASE WHEN prepay THEN flows.credit_runs_out(last_t, last_b + ec, f.rate) END,
           CASE WHEN prepay THEN flows.credit_runs_out(last_t, last_b + ec, greatest(coalesce(f.hi, f.rate)::numeric, f.rate)) END,
           CASE WHEN prepay THEN flows.credit_runs_out(last_t, last_b + ec, least(coalesce(f.lo, f.rate)::numeric, f.rate)) END,
           now()
    FROM f
    ON CONFLICT (meter_id) DO UPDATE SET balance_at = EXCLUDED.balance_at, balance = EXCLUDED.balance, days_observed = EXCLUDED.days_observed,
        spend_per_day = EXCLUDED.spend_per_day, spend_per_day_low = EXCLUDED.spend_per_day_low, spend_per_day_high = EXCLUDED.spend_per_day_high,
        ecredit_threshold = EXCLUDED.ecredit_threshold, emergency_credit = EXCLUDED.emergency_credit, ecredit_at = EXCLUDED.ecredit_at,
        supply_cut_at = EXCLUDED.supply_cut_at, supply_cut_earliest = EXCLUDED.supply_cut_earliest, supply_cut_latest = EXCLUDED.supply_cut_latest,
        computed_at = EXCLUDED.computed_at;
END $$;

-- The whole fleet's forecasts from the days, in one statement; returns
-- the meters with one. A meter without days has none.
CREATE FUNCTION flows.refresh_credit_forecasts() RETURNS bigint LANGUAGE plpgsql
SET work_mem = '256MB' AS $$
DECLARE
    n bigint;
BEGIN
    WITH newest AS (
        SELECT DISTINCT ON (meter_id) meter_id, day AS last_day, last_at AS last_t, last_balance AS last_b
        FROM flows.meter_spend_days ORDER BY meter_id, day DESC
    ), f AS (
        SELECT n.meter_id, n.last_t, n.last_b,
               sum(d.spent) * 86400 / nullif(sum(d.secs), 0) AS rate, sum(d.secs) / 86400 AS days,
               percentile_cont(0.1) WITHIN GROUP (ORDER BY d.spent * 86400 / nullif(d.secs, 0)) FILTER (WHERE d.secs >= 6 * 3600) AS lo,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY d.spent * 86400 / nullif(d.secs, 0)) FILTER (WHERE d.secs >= 6 * 3600) AS hi
        FROM newest n JOIN flows.meter_spend_days d ON d.meter_id = n.meter_id AND d.day > n.last_day - 7
        GROUP BY n.meter_id, n.last_t, n.last_b
    ), p AS (
        SELECT f.*, coalesce(mr.prepay_enabled, true) AS prepay,
               flows.tariff_amount(ms.tariffs_active, 'prepayment_ecredit_availability') AS threshold,
               coalesce(flows.tariff_amount(ms.tariffs_active, 'prepayment_emergency_credit'), 0) AS ec
        FROM f JOIN flows.meter_registry mr ON mr.id = f.meter_id JOIN flows.meter_shadows ms ON ms.id = f.meter_id
    )
    INSERT INTO flows.meter_credit_forecast AS fc (meter_id, balance_at, balance, days_observed, spend_per_day, spend_per_day_low,
        spend_per_day_high, ecredit_threshold, emergency_credit, ecredit_at, supply_cut_at, supply_cut_earliest, supply_cut_latest, computed_at)
    SELECT meter_id, last_t, last_b, round(days, 3), round(rate, 5), round(coalesce(lo, rate)::numeric, 5), round(coalesce(hi, rate)::numeric, 5),
           threshold, ec,
           CASE WHEN prepay AND last_b > threshold THEN flows.credit_runs_out(last_t, last_b - threshold, rate) END,
           CASE WHEN prepay THEN flows.credit_runs_out(last_t, last_b + ec, rate) END,
           CASE WHEN prepay THEN flows.credit_runs_out(last_t, last_b + ec, greatest(coalesce(hi, rate)::numeric, rate)) END,
           CASE WHEN prepay THEN flows.credit_runs_out(last_t, last_b + ec, least(coalesce(lo, rate)::numeric, rate)) END,
           now()
    FROM p
    ON CONFLICT (meter_id) DO UPDATE SET balance_at = EXCLUDED.balance_at, balance = EXCLUDED.balance, days_observed = EXCLUDED.days_observed,
        spend_per_day = EXCLUDED.spend_per_day, spend_per_day_low = EXCLUDED.spend_per_day_low, spend_per_day_high = EXCLUDED.spend_per_day_high,
        ecredit_threshold = EXCLUDED.ecredit_threshold, emergency_credit = EXCLUDED.emergency_credit, ecredit_at = EXCLUDED.ecredit_at,
        supply_cut_at = EXCLUDED.supply_cut_at, supply_cut_earliest = EXCLUDED.supply_cut_earliest, supply_cut_latest = EXCLUDED.supply_cut_latest,
        computed_at = EXCLUDED.computed_at;
    DELETE FROM flows.meter_credit_forecast fc WHERE NOT EXISTS (SELECT 1 FROM flows.meter_spend_days d WHERE d.meter_id = fc.meter_id);
    SELECT count(*) INTO n FROM flows.meter_credit_forecast;
    RETURN n;
END $$;

-- A balance written at "at": its day again (and the next: an older
-- reading changes the step after it); days more than two weeks before it
-- go.
CREATE FUNCTION flows.balance_written(m uuid, at timestamptz) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    d date := (at AT TIME ZONE 'UTC')::date;
BEGIN
    PERFORM flows.refresh_spend_day(m, d);
    IF EXISTS (SELECT 1 FROM flows.meter_spend_days WHERE meter_id = m AND day = d + 1) THEN
        PERFORM flows.refresh_spend_day(m, d + 1);
    END IF;
    DELETE FROM flows.meter_spend_days WHERE meter_id = m AND day < d - 14;
END $$;

-- As each balance is written: its days, then the forecast (0031 adds
-- the self-disconnections).
CREATE OR REPLACE FUNCTION flows.meter_shadows_credit_forecast() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.balance IS NOT NULL AND NEW.updated_at IS NOT NULL THEN
        PERFORM flows.balance_written(NEW.id, NEW.updated_at);
    END IF;
    PERFORM flows.refresh_credit_forecast(NEW.id);
    RETURN NULL;
END $$;

-- The days of the history already kept, and every forecast from them.
SELECT flows.rebuild_spend_days();
SELECT flows.refresh_credit_forecasts();
