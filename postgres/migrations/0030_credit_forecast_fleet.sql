-- The whole fleet's credit forecasts in one pass (issue 18's goal: under
-- 10 s for 100,000 meters). refresh_credit_forecast(id) is the path a
-- sync takes, one meter by index; run for every meter it cost about a
-- millisecond each (95 s at 100,000). After a migration, an import of
-- history or a change to how forecasts are made, call
-- flows.refresh_credit_forecasts() instead: one ordered read of the last
-- 14 days of balances (the primary key's order, no sort), the steps and
-- each day's rate from window functions, the same rules as the one-meter
-- function, and one upsert. Meters whose newest balance is older than 7
-- days (not read for a week, or never) are left to the one-meter function,
-- called for each of them: their readings lie outside the pass.
--
-- Days are UTC days in both (the one-meter function took the session's
-- time zone before).
CREATE OR REPLACE FUNCTION flows.refresh_credit_forecast(m uuid) RETURNS void LANGUAGE plpgsql
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
        GROUP BY date_trunc('day', t, 'UTC') HAVING sum(secs) >= 6 * 3600
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

-- Every meter's forecast; returns how many meters have one afterwards.
-- The pass's own rules are the one-meter function's, step for step:
-- readings in (newest − 7 days, newest]; a step is a pair of consecutive
-- readings both in that window where the balance fell or held, under 6
-- hours apart; the rate is the steps' spend over their time; the band is
-- the 10th and 90th percentiles of the UTC days with 6 hours of steps.
CREATE FUNCTION flows.refresh_credit_forecasts() RETURNS bigint LANGUAGE plpgsql
-- The pass groups about 8 UTC days a meter in memory (800,000 groups at
-- 100,000 meters), rather than in batches on disk.
SET work_mem = '256MB' AS $$
DECLARE
    n bigint;
BEGIN
    WITH r AS (
        SELECT meter_id, "timestamp" AS t, balance AS b,
               lag("timestamp") OVER w AS pt, lag(balance) OVER w AS pb,
               last_value("timestamp") OVER wa AS last_t, last_value(balance) OVER wa AS last_b
        FROM flows.meter_prepay_balance
        WHERE balance IS NOT NULL AND "timestamp" > now() - interval '14 days'
        WINDOW w AS (PARTITION BY meter_id ORDER BY "timestamp"),
               wa AS (w ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
    ), d AS (
        -- Each meter's UTC days of steps (and a day with none, so every
        -- meter of the pass has a row).
        SELECT meter_id, last_t, last_b, date_trunc('day', t, 'UTC') AS day,
               sum(pb - b) FILTER (WHERE step) AS spent,
               sum(extract(epoch FROM t - pt)) FILTER (WHERE step) AS secs
        FROM (SELECT r.*, pb IS NOT NULL AND pt > last_t - interval '7 days' AND b <= pb AND t > pt
                          AND t - pt <= interval '6 hours' AS step
              FROM r WHERE last_t > now() - interval '7 days' AND t > last_t - interval '7 days') s
        GROUP BY meter_id, last_t, last_b, date_trunc('day', t, 'UTC')
    ), f AS (
        SELECT meter_id, last_t, last_b,
               sum(spent) * 86400 / nullif(sum(secs), 0) AS rate,
               coalesce(sum(secs), 0) / 86400 AS days,
               percentile_cont(0.1) WITHIN GROUP (ORDER BY spent * 86400 / secs) FILTER (WHERE secs >= 6 * 3600) AS lo,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY spent * 86400 / secs) FILTER (WHERE secs >= 6 * 3600) AS hi
        FROM d GROUP BY meter_id, last_t, last_b
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
    -- The rest, one at a time: not read for a week (their forecast from
    -- their last readings), or without a balance (their forecast gone).
    PERFORM flows.refresh_credit_forecast(mr.id) FROM flows.meter_registry mr
    WHERE NOT EXISTS (SELECT 1 FROM flows.meter_credit_forecast fc WHERE fc.meter_id = mr.id AND fc.computed_at = now());
    SELECT count(*) INTO n FROM flows.meter_credit_forecast;
    RETURN n;
END $$;
COMMENT ON FUNCTION flows.refresh_credit_forecasts() IS 'Recomputes every meter''s credit forecast (one pass over the last 14 days of balances); returns the meters with one.';

-- The forecasts made before, again with UTC days.
SELECT flows.refresh_credit_forecasts();
