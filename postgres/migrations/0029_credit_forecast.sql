-- Credit forecast (issue 18): when each prepayment meter is expected to
-- reach its emergency-credit threshold and to lose supply, from what it
-- has been spending. Refreshed as the shadow records each balance, so it
-- is as fresh as the shadow.
--
-- The spending rate is the balance's own slope over the last 7 days of
-- readings before the newest: every step between consecutive readings
-- where the balance fell or held, less than 6 hours apart, counts (a rise
-- is a top-up, and what was spent across it is unknown; a longer step is a
-- meter that was not read). That slope already holds what the meter takes
-- — units at the tariff's rates, the standing charge, debt recovery — so
-- no rate is assumed. The band is the 10th and 90th percentiles of the
-- days' own rates (days with 6 hours of steps or more): the earliest cut
-- spends at the high rate, the latest at the low.
--
-- Supply is cut when the balance falls to minus the emergency credit (the
-- meter's active tariff; 0 when it has none) — the simulator's rule and
-- the meter's: emergency credit is taken once the balance falls below the
-- tariff's availability threshold (ecredit_at). A meter in credit mode
-- (prepay_enabled false) is never cut: no forecast times.
CREATE TABLE flows.meter_credit_forecast (
    meter_id            uuid PRIMARY KEY REFERENCES flows.meter_registry (id) ON DELETE CASCADE,
    balance_at          timestamptz NOT NULL,
    balance             numeric(14, 5) NOT NULL,
    days_observed       numeric(8, 3) NOT NULL,
    spend_per_day       numeric(14, 5),
    spend_per_day_low   numeric(14, 5),
    spend_per_day_high  numeric(14, 5),
    ecredit_threshold   numeric(14, 5),
    emergency_credit    numeric(14, 5),
    ecredit_at          timestamptz,
    supply_cut_at       timestamptz,
    supply_cut_earliest timestamptz,
    supply_cut_latest   timestamptz,
    computed_at         timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE flows.meter_credit_forecast IS 'When each prepayment meter is expected to reach its emergency-credit threshold and lose supply, from its balance''s slope over the last 7 days; refreshed on each balance reading.';
COMMENT ON COLUMN flows.meter_credit_forecast.spend_per_day IS 'GBP a day the balance fell, over the falling steps of the last 7 days (NULL: none seen).';
COMMENT ON COLUMN flows.meter_credit_forecast.supply_cut_at IS 'When the balance reaches minus the emergency credit at spend_per_day: supply cut (NULL: not spending, credit mode, or beyond 10 years).';
CREATE INDEX meter_credit_forecast_cut_idx ON flows.meter_credit_forecast (supply_cut_at) WHERE supply_cut_at IS NOT NULL;

-- The instant amount runs out at rate a day from t (NULL when it never
-- does, or not within 10 years).
CREATE FUNCTION flows.credit_runs_out(t timestamptz, amount numeric, rate numeric) RETURNS timestamptz LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN amount <= 0 THEN t
                WHEN rate > 0 AND amount / rate <= 3650 THEN t + make_interval(secs => (amount / rate * 86400)::double precision)
           END
$$;

CREATE FUNCTION flows.refresh_credit_forecast(m uuid) RETURNS void LANGUAGE plpgsql
-- By index, whatever the statistics say: its plans are cached for the
-- session, and a plan made while the history looked small (a new
-- database, before ANALYZE) read it whole for every meter — quadratic in
-- one UPDATE of many shadows. (Planning each call instead cost 2 ms of
-- PostgreSQL a sync.)
SET enable_seqscan = off AS $$
DECLARE
    last_t timestamptz;
    last_b numeric;
    prepay boolean;
    threshold numeric;
    ec numeric;
BEGIN
    SELECT "timestamp", balance INTO last_t, last_b FROM flows.meter_prepay_balance
    WHERE meter_id = m AND balance IS NOT NULL ORDER BY "timestamp" DESC LIMIT 1;
    IF last_t IS NULL THEN
        DELETE FROM flows.meter_credit_forecast WHERE meter_id = m;
        RETURN;
    END IF;
    SELECT coalesce(mr.prepay_enabled, true), flows.tariff_amount(ms.tariffs_active, 'prepayment_ecredit_availability'),
           coalesce(flows.tariff_amount(ms.tariffs_active, 'prepayment_emergency_credit'), 0)
    INTO prepay, threshold, ec
    FROM flows.meter_registry mr JOIN flows.meter_shadows ms ON ms.id = mr.id WHERE mr.id = m;
    WITH pts AS (
        SELECT "timestamp" AS t, balance AS b, lag("timestamp") OVER w AS pt, lag(balance) OVER w AS pb
        FROM flows.meter_prepay_balance
        WHERE meter_id = m AND balance IS NOT NULL AND "timestamp" > last_t - interval '7 days' AND "timestamp" <= last_t
        WINDOW w AS (ORDER BY "timestamp")
    ), steps AS (
        SELECT t, pb - b AS spent, extract(epoch FROM t - pt) AS secs FROM pts
        WHERE pb IS NOT NULL AND b <= pb AND t > pt AND t - pt <= interval '6 hours'
    ), days AS (
        SELECT sum(spent) * 86400 / sum(secs) AS rate FROM steps
        GROUP BY date_trunc('day', t) HAVING sum(secs) >= 6 * 3600
    ), f AS (
        SELECT (SELECT sum(spent) * 86400 / nullif(sum(secs), 0) FROM steps) AS rate,
               (SELECT coalesce(sum(secs), 0) / 86400 FROM steps) AS days,
               (SELECT percentile_cont(0.1) WITHIN GROUP (ORDER BY rate) FROM days) AS lo,
               (SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY rate) FROM days) AS hi
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

-- After each balance the shadow records (a sync, a top-up's read-back, a
-- replica's copy, an UPDATE by hand), once its history row is written:
-- AFTER row triggers fire in name order, meter_shadows_balance_history
-- first. A row trigger on the shadow, not a statement trigger on the
-- history with a transition table: fired inside the shadow's own row
-- triggers, one statement a reading, that grew with the square of the
-- rows one UPDATE of many shadows wrote (16,000: 25 s). Readings loaded
-- into the history directly (an import, a benchmark's generator) refresh
-- nothing until the meter's next balance; SELECT
-- flows.refresh_credit_forecast(id) refreshes any meter at once.
CREATE FUNCTION flows.meter_shadows_credit_forecast() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM flows.refresh_credit_forecast(NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER meter_shadows_credit_forecast AFTER UPDATE OF balance, emergency_credit ON flows.meter_shadows
    FOR EACH ROW EXECUTE FUNCTION flows.meter_shadows_credit_forecast();

-- Existing meters, from the history already kept.
SELECT flows.refresh_credit_forecast(id) FROM flows.meter_registry;

-- The spec's shape: one row a meter, named, with its ESCO, soonest cut
-- first; read through the caller's row security (security_invoker).
CREATE VIEW flows.meters_credit_forecast WITH (security_invoker = true) AS
SELECT mr.id, mr.serial, mr.name, mr.esco, f.balance, f.balance_at, f.spend_per_day, f.spend_per_day_low, f.spend_per_day_high,
       f.days_observed, f.ecredit_threshold, f.emergency_credit, f.ecredit_at, f.supply_cut_at, f.supply_cut_earliest, f.supply_cut_latest,
       f.computed_at
FROM flows.meter_credit_forecast f JOIN flows.meter_registry mr ON mr.id = f.meter_id
ORDER BY f.supply_cut_at NULLS LAST;

-- Meter data: kept to the role's ESCO as 0016 keeps the other tables.
ALTER TABLE flows.meter_credit_forecast ENABLE ROW LEVEL SECURITY;
CREATE POLICY esco_scope ON flows.meter_credit_forecast FOR SELECT
    USING (EXISTS (SELECT 1 FROM flows.meter_registry mr WHERE mr.id = meter_credit_forecast.meter_id));
CREATE POLICY every_esco ON flows.meter_credit_forecast FOR SELECT TO flows_all_escos
    USING (EXISTS (SELECT 1 FROM flows.sql_logins l WHERE l.role_name = current_user AND l.esco IS NULL));
GRANT SELECT ON flows.meter_credit_forecast, flows.meters_credit_forecast TO flows_readonly, flows_operator;
