-- The credit forecast's spending rate from interval data where a meter
-- has it (issue 18), the balance's slope otherwise.
--
-- The balance's slope (0029, 0030) knows what the meter took but only
-- between readings that bracket no top-up, and only while the meter was
-- read: a meter synced rarely, topped up often, or offline for a day has
-- few steps. Its half-hourly profile log, collected daily and backfilled
-- after an outage (0012, 0013), covers every half hour; priced at the
-- active tariff's unit rates it is what the meter charged for energy.
--
-- The rate from intervals, per day, over the same window as the slope
-- (the 7 UTC days up to the newest balance reading's):
--   energy    Σ over the meter's registers of kWh × the element's unit
--             rate (A and SINGLE: unit_rate_element_a; B:
--             unit_rate_element_b), per half hour covered × 48;
--   + the standing charge (0 when the tariff has none);
--   + debt recovery: the one charge the intervals cannot see (whether a
--             debt is outstanding is not read from the meter). It shows as
--             the balance falling faster than energy and standing charge
--             alone: that excess, at most the tariff's recovery rate, and
--             none when the slope is unknown.
-- It is used when the window holds at least a day (48 half hours) of
-- intervals and every register with intervals has its element's unit
-- rate in the active tariff; otherwise the balance's slope, as before.
-- Registers counted: enabled and not direction_reversed (a reversed
-- register counts the element's export, which the meter does not charge
-- for). Three-phase meters' intervals (meter_3p_interval) are not priced:
-- the fleets seen run them in credit mode, never cut. The band: the 10th
-- and 90th percentiles of the days' own rates (days with 12 half hours or
-- more), the same debt recovery added. days_observed is then the days of
-- half hours the rate is from, and spend_from says which it was.
ALTER TABLE flows.meter_credit_forecast ADD COLUMN spend_from text NOT NULL DEFAULT 'balance'
    CONSTRAINT meter_credit_forecast_spend_from CHECK (spend_from IN ('balance', 'intervals'));
COMMENT ON COLUMN flows.meter_credit_forecast.spend_from IS 'Where spend_per_day is from: intervals (half hours priced at the active tariff, with its standing charge and the debt recovery the balance shows) or balance (its falling steps).';

-- Meter m's energy cost per day from its intervals in (last_day - 7,
-- last_day] at tariff t: the rate, its band and the days of half hours
-- (no row: not enough intervals, or a rate missing).
CREATE FUNCTION flows.interval_spend(m uuid, last_day date, t jsonb)
RETURNS TABLE (energy numeric, energy_low numeric, energy_high numeric, days numeric)
LANGUAGE sql STABLE AS $$
    WITH d AS (
        SELECT i.day, sum(i.kwh * CASE WHEN r.element = 'B' THEN flows.tariff_amount(t, 'unit_rate_element_b')
                                        ELSE flows.tariff_amount(t, 'unit_rate_element_a') END) AS cost,
               max(i.half_hours) AS hh,
               bool_and(CASE WHEN r.element = 'B' THEN flows.tariff_amount(t, 'unit_rate_element_b')
                             ELSE flows.tariff_amount(t, 'unit_rate_element_a') END IS NOT NULL) AS priced
        FROM flows.meter_registers r JOIN flows.register_interval_day i ON i.register_id = r.register_id
        WHERE r.meter_id = m AND r.status = 'enabled' AND NOT r.direction_reversed
          AND i.day > last_day - 7 AND i.day <= last_day AND i.half_hours > 0
        GROUP BY i.day
    )
    SELECT sum(cost) * 48 / sum(hh),
           percentile_cont(0.1) WITHIN GROUP (ORDER BY cost * 48 / hh) FILTER (WHERE hh >= 12),
           percentile_cont(0.9) WITHIN GROUP (ORDER BY cost * 48 / hh) FILTER (WHERE hh >= 12),
           sum(hh)::numeric / 48
    FROM d
    HAVING sum(hh) >= 48 AND bool_and(priced)
$$;

-- The day's rate from energy (NULL: none), standing charge sc, debt
-- recovery rate dr and the balance's slope.
CREATE FUNCTION flows.spend_rate(energy numeric, sc numeric, dr numeric, slope numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN energy IS NULL THEN slope
                ELSE energy + coalesce(sc, 0) + least(greatest(coalesce(slope, 0) - energy - coalesce(sc, 0), 0), coalesce(dr, 0)) END
$$;

-- One meter's forecast (0030's, with the rate from intervals where there
-- are enough).
CREATE OR REPLACE FUNCTION flows.refresh_credit_forecast(m uuid) RETURNS void LANGUAGE plpgsql
SET enable_seqscan = off AS $$
DECLARE
    last_day date;
    last_t timestamptz;
    last_b numeric;
    prepay boolean;
    tariff jsonb;
    threshold numeric;
    ec numeric;
BEGIN
    SELECT day, last_at, last_balance INTO last_day, last_t, last_b FROM flows.meter_spend_days
    WHERE meter_id = m ORDER BY day DESC LIMIT 1;
    IF last_day IS NULL THEN
        DELETE FROM flows.meter_credit_forecast WHERE meter_id = m;
        RETURN;
    END IF;
    SELECT coalesce(mr.prepay_enabled, true), ms.tariffs_active INTO prepay, tariff
    FROM flows.meter_registry mr JOIN flows.meter_shadows ms ON ms.id = mr.id WHERE mr.id = m;
    threshold := flows.tariff_amount(tariff, 'prepayment_ecredit_availability');
    ec := coalesce(flows.tariff_amount(tariff, 'prepayment_emergency_credit'), 0);
    WITH s AS (
        SELECT sum(spent) * 86400 / nullif(sum(secs), 0) AS rate, sum(secs) / 86400 AS days,
               percentile_cont(0.1) WITHIN GROUP (ORDER BY spent * 86400 / nullif(secs, 0)) FILTER (WHERE secs >= 6 * 3600) AS lo,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY spent * 86400 / nullif(secs, 0)) FILTER (WHERE secs >= 6 * 3600) AS hi
        FROM flows.meter_spend_days WHERE meter_id = m AND day > last_day - 7
    ), e AS (
        SELECT * FROM flows.interval_spend(m, last_day, tariff)
    ), f AS (
        SELECT CASE WHEN e.energy IS NULL THEN 'balance' ELSE 'intervals' END AS spend_from,
               coalesce(e.days, s.days) AS days,
               flows.spend_rate(e.energy, flows.tariff_amount(tariff, 'standing_charge'),
                                flows.tariff_amount(tariff, 'prepayment_debt_recovery_rate'), s.rate) AS rate,
               CASE WHEN e.energy IS NULL THEN coalesce(s.lo, s.rate)::numeric
                    ELSE flows.spend_rate(e.energy, flows.tariff_amount(tariff, 'standing_charge'),
                                          flows.tariff_amount(tariff, 'prepayment_debt_recovery_rate'), s.rate)
                         - e.energy + coalesce(e.energy_low, e.energy)::numeric END AS lo,
               CASE WHEN e.energy IS NULL THEN coalesce(s.hi, s.rate)::numeric
                    ELSE flows.spend_rate(e.energy, flows.tariff_amount(tariff, 'standing_charge'),
                                          flows.tariff_amount(tariff, 'prepayment_debt_recovery_rate'), s.rate)
                         - e.energy + coalesce(e.energy_high, e.energy)::numeric END AS hi
        FROM s LEFT JOIN e ON true
    )
    INSERT INTO flows.meter_credit_forecast AS fc (meter_id, balance_at, balance, days_observed, spend_per_day, spend_per_day_low,
        spend_per_day_high, ecredit_threshold, emergency_credit, ecredit_at, supply_cut_at, supply_cut_earliest, supply_cut_latest,
        spend_from, computed_at)
    SELECT m, last_t, last_b, round(f.days, 3), round(f.rate, 5), round(f.lo, 5), round(f.hi, 5),
           threshold, ec,
           CASE WHEN prepay AND last_b > threshold THEN flows.credit_runs_out(last_t, last_b - threshold, f.rate) END,
           CASE WHEN prepay THEN flows.credit_runs_out(last_t, last_b + ec, f.rate) END,
           CASE WHEN prepay THEN flows.credit_runs_out(last_t, last_b + ec, greatest(f.hi, f.rate)) END,
           CASE WHEN prepay THEN flows.credit_runs_out(last_t, last_b + ec, least(f.lo, f.rate)) END,
           f.spend_from, now()
    FROM f
    ON CONFLICT (meter_id) DO UPDATE SET balance_at = EXCLUDED.balance_at, balance = EXCLUDED.balance, days_observed = EXCLUDED.days_observed,
        spend_per_day = EXCLUDED.spend_per_day, spend_per_day_low = EXCLUDED.spend_per_day_low, spend_per_day_high = EXCLUDED.spend_per_day_high,
        ecredit_threshold = EXCLUDED.ecredit_threshold, emergency_credit = EXCLUDED.emergency_credit, ecredit_at = EXCLUDED.ecredit_at,
        supply_cut_at = EXCLUDED.supply_cut_at, supply_cut_earliest = EXCLUDED.supply_cut_earliest, supply_cut_latest = EXCLUDED.supply_cut_latest,
        spend_from = EXCLUDED.spend_from, computed_at = EXCLUDED.computed_at;
END $$;

-- The whole fleet's forecasts in one statement (0030's, with the rate
-- from intervals where there are enough); returns the meters with one.
CREATE OR REPLACE FUNCTION flows.refresh_credit_forecasts() RETURNS bigint LANGUAGE plpgsql
SET work_mem = '256MB' AS $$
DECLARE
    n bigint;
BEGIN
    WITH newest AS (
        SELECT DISTINCT ON (meter_id) meter_id, day AS last_day, last_at AS last_t, last_balance AS last_b
        FROM flows.meter_spend_days ORDER BY meter_id, day DESC
    ), s AS (
        SELECT n.meter_id, n.last_day, n.last_t, n.last_b,
               sum(d.spent) * 86400 / nullif(sum(d.secs), 0) AS rate, sum(d.secs) / 86400 AS days,
               percentile_cont(0.1) WITHIN GROUP (ORDER BY d.spent * 86400 / nullif(d.secs, 0)) FILTER (WHERE d.secs >= 6 * 3600) AS lo,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY d.spent * 86400 / nullif(d.secs, 0)) FILTER (WHERE d.secs >= 6 * 3600) AS hi
        FROM newest n JOIN flows.meter_spend_days d ON d.meter_id = n.meter_id AND d.day > n.last_day - 7
        GROUP BY n.meter_id, n.last_day, n.last_t, n.last_b
    ), p AS (
        SELECT s.*, coalesce(mr.prepay_enabled, true) AS prepay, ms.tariffs_active AS tariff,
               flows.tariff_amount(ms.tariffs_active, 'unit_rate_element_a') AS rate_a,
               flows.tariff_amount(ms.tariffs_active, 'unit_rate_element_b') AS rate_b,
               flows.tariff_amount(ms.tariffs_active, 'standing_charge') AS sc,
               flows.tariff_amount(ms.tariffs_active, 'prepayment_debt_recovery_rate') AS dr,
               flows.tariff_amount(ms.tariffs_active, 'prepayment_ecredit_availability') AS threshold,
               coalesce(flows.tariff_amount(ms.tariffs_active, 'prepayment_emergency_credit'), 0) AS ec
        FROM s JOIN flows.meter_registry mr ON mr.id = s.meter_id JOIN flows.meter_shadows ms ON ms.id = s.meter_id
    ), ed AS (
        -- As flows.interval_spend, for every meter at once.
        SELECT p.meter_id, i.day, sum(i.kwh * CASE WHEN r.element = 'B' THEN p.rate_b ELSE p.rate_a END) AS cost,
               max(i.half_hours) AS hh, bool_and(CASE WHEN r.element = 'B' THEN p.rate_b ELSE p.rate_a END IS NOT NULL) AS priced
        FROM p JOIN flows.meter_registers r ON r.meter_id = p.meter_id AND r.status = 'enabled' AND NOT r.direction_reversed
        JOIN flows.register_interval_day i ON i.register_id = r.register_id AND i.day > p.last_day - 7 AND i.day <= p.last_day AND i.half_hours > 0
        GROUP BY p.meter_id, i.day
    ), e AS (
        SELECT meter_id, sum(cost) * 48 / sum(hh) AS energy,
               percentile_cont(0.1) WITHIN GROUP (ORDER BY cost * 48 / hh) FILTER (WHERE hh >= 12) AS energy_low,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY cost * 48 / hh) FILTER (WHERE hh >= 12) AS energy_high,
               sum(hh)::numeric / 48 AS days
        FROM ed GROUP BY meter_id HAVING sum(hh) >= 48 AND bool_and(priced)
    ), f AS (
        SELECT p.meter_id, p.last_t, p.last_b, p.prepay, p.threshold, p.ec,
               CASE WHEN e.energy IS NULL THEN 'balance' ELSE 'intervals' END AS spend_from,
               coalesce(e.days, p.days) AS days,
               flows.spend_rate(e.energy, p.sc, p.dr, p.rate) AS rate,
               CASE WHEN e.energy IS NULL THEN coalesce(p.lo, p.rate)::numeric
                    ELSE flows.spend_rate(e.energy, p.sc, p.dr, p.rate) - e.energy + coalesce(e.energy_low, e.energy)::numeric END AS lo,
               CASE WHEN e.energy IS NULL THEN coalesce(p.hi, p.rate)::numeric
                    ELSE flows.spend_rate(e.energy, p.sc, p.dr, p.rate) - e.energy + coalesce(e.energy_high, e.energy)::numeric END AS hi
        FROM p LEFT JOIN e ON e.meter_id = p.meter_id
    )
    INSERT INTO flows.meter_credit_forecast AS fc (meter_id, balance_at, balance, days_observed, spend_per_day, spend_per_day_low,
        spend_per_day_high, ecredit_threshold, emergency_credit, ecredit_at, supply_cut_at, supply_cut_earliest, supply_cut_latest,
        spend_from, computed_at)
    SELECT meter_id, last_t, last_b, round(days, 3), round(rate, 5), round(lo, 5), round(hi, 5),
           threshold, ec,
           CASE WHEN prepay AND last_b > threshold THEN flows.credit_runs_out(last_t, last_b - threshold, rate) END,
           CASE WHEN prepay THEN flows.credit_runs_out(last_t, last_b + ec, rate) END,
           CASE WHEN prepay THEN flows.credit_runs_out(last_t, last_b + ec, greatest(hi, rate)) END,
           CASE WHEN prepay THEN flows.credit_runs_out(last_t, last_b + ec, least(lo, rate)) END,
           spend_from, now()
    FROM f
    ON CONFLICT (meter_id) DO UPDATE SET balance_at = EXCLUDED.balance_at, balance = EXCLUDED.balance, days_observed = EXCLUDED.days_observed,
        spend_per_day = EXCLUDED.spend_per_day, spend_per_day_low = EXCLUDED.spend_per_day_low, spend_per_day_high = EXCLUDED.spend_per_day_high,
        ecredit_threshold = EXCLUDED.ecredit_threshold, emergency_credit = EXCLUDED.emergency_credit, ecredit_at = EXCLUDED.ecredit_at,
        supply_cut_at = EXCLUDED.supply_cut_at, supply_cut_earliest = EXCLUDED.supply_cut_earliest, supply_cut_latest = EXCLUDED.supply_cut_latest,
        spend_from = EXCLUDED.spend_from, computed_at = EXCLUDED.computed_at;
    DELETE FROM flows.meter_credit_forecast fc WHERE NOT EXISTS (SELECT 1 FROM flows.meter_spend_days d WHERE d.meter_id = fc.meter_id);
    SELECT count(*) INTO n FROM flows.meter_credit_forecast;
    RETURN n;
END $$;

-- The view gains where the rate is from (appended: the columns before it
-- keep their places).
CREATE OR REPLACE VIEW flows.meters_credit_forecast WITH (security_invoker = true) AS
SELECT mr.id, mr.serial, mr.name, mr.esco, f.balance, f.balance_at, f.spend_per_day, f.spend_per_day_low, f.spend_per_day_high,
       f.days_observed, f.ecredit_threshold, f.emergency_credit, f.ecredit_at, f.supply_cut_at, f.supply_cut_earliest, f.supply_cut_latest,
       f.computed_at, f.spend_from
FROM flows.meter_credit_forecast f JOIN flows.meter_registry mr ON mr.id = f.meter_id
ORDER BY f.supply_cut_at NULLS LAST;

SELECT flows.refresh_credit_forecasts();
