-- The credit forecast of a sync batch's meters in one statement, not one
-- function call a balance written (flows bench sync: the per-row refresh
-- was 4.4 s of the hourly set's 12.3 s of PostgreSQL at 9,500 meters, a
-- balance UPDATE 0.83 ms against 0.34 ms without it).
--
-- 1. refresh_credit_forecasts(ids): 0033's fleet pass (the statement
--    restated) for the meters ids names, by their indexes as the
--    one-meter function reads (enable_seqscan off: a sync batch is tens
--    of meters of a fleet's tables; the fleet pass, which reads them
--    whole, is left as 0033 made it). TestFleetForecastPassMatchesThe-
--    OneMeterFunction holds the three equal.
-- 2. A balance written after the newest of its day (every sync's, in
--    time order) adds its step to the day (flows.balance_written): the
--    day's rule of 0030, kept by one step, not recounted from every
--    reading of the day (a window over them, 0.1 ms of the 0.8 ms a
--    meter-sync wrote). Any other (a reading into the past, one replacing
--    the newest at its instant) recounts the day as before.
--    TestSpendDaysKeptStepByStepMatchTheRebuild holds the two equal.
-- 3. The shadow's balance trigger leaves the refresh to its writer when
--    the transaction says flows.defer_forecast = on: Store.ApplySyncs sets
--    it and refreshes the batch's meters with (1) before it commits, so a
--    sync's forecast is as fresh as before. Every other writer (a push's
--    read-back, a replica, an UPDATE by hand) refreshes per row as before.

CREATE FUNCTION flows.refresh_credit_forecasts(ids uuid[]) RETURNS bigint LANGUAGE plpgsql
SET enable_seqscan = off AS $$
DECLARE
    n bigint;
BEGIN
    WITH newest AS (
        SELECT DISTINCT ON (meter_id) meter_id, day AS last_day, last_at AS last_t, last_balance AS last_b
        FROM flows.meter_spend_days WHERE meter_id = ANY(ids) ORDER BY meter_id, day DESC
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
    DELETE FROM flows.meter_credit_forecast fc WHERE fc.meter_id = ANY(ids)
        AND NOT EXISTS (SELECT 1 FROM flows.meter_spend_days d WHERE d.meter_id = fc.meter_id);
    SELECT count(*) INTO n FROM flows.meter_credit_forecast WHERE meter_id = ANY(ids);
    RETURN n;
END $$;

-- 0031's trigger, the refresh left to a writer that defers it.
CREATE OR REPLACE FUNCTION flows.meter_shadows_credit_forecast() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    floor_at numeric := -coalesce(flows.tariff_amount(NEW.tariffs_active, 'prepayment_emergency_credit'), 0);
BEGIN
    IF NEW.balance IS NOT NULL AND NEW.updated_at IS NOT NULL THEN
        PERFORM flows.balance_written(NEW.id, NEW.updated_at);
    END IF;
    IF coalesce(current_setting('flows.defer_forecast', true), '') <> 'on' THEN
        PERFORM flows.refresh_credit_forecast(NEW.id);
    END IF;
    IF NEW.balance <= floor_at OR OLD.balance <= floor_at THEN
        PERFORM flows.detect_self_disconnections(NEW.id, coalesce(NEW.updated_at, now()) - interval '1 day');
    END IF;
    RETURN NULL;
END $$;

-- (2): 0030's, with the step for a reading after the day's newest.
CREATE OR REPLACE FUNCTION flows.balance_written(m uuid, at timestamptz) RETURNS void LANGUAGE plpgsql
SET enable_seqscan = off AS $$
DECLARE
    d date := (at AT TIME ZONE 'UTC')::date;
    from_t timestamptz := d::timestamp AT TIME ZONE 'UTC';
    dayrow flows.meter_spend_days;
    b numeric;
    pt timestamptz;
    pb numeric;
    stepped boolean;
BEGIN
    SELECT * INTO dayrow FROM flows.meter_spend_days WHERE meter_id = m AND day = d;
    SELECT balance INTO b FROM flows.meter_prepay_balance WHERE meter_id = m AND "timestamp" = at;
    -- The reading before it, as 0030's window finds it (from 6 hours
    -- before the day).
    SELECT "timestamp", balance INTO pt, pb FROM flows.meter_prepay_balance
    WHERE meter_id = m AND balance IS NOT NULL AND "timestamp" < at AND "timestamp" >= from_t - interval '6 hours'
    ORDER BY "timestamp" DESC LIMIT 1;
    IF b IS NOT NULL
       AND (CASE WHEN dayrow.meter_id IS NULL THEN pt IS NULL OR pt < from_t -- the day's first reading
                 ELSE pt = dayrow.last_at END)                                -- after the day's newest, nothing between
       AND NOT EXISTS (SELECT 1 FROM flows.meter_spend_days x WHERE x.meter_id = m AND x.day > d) THEN
        stepped := pb IS NOT NULL AND b <= pb AND at - pt <= interval '6 hours';
        INSERT INTO flows.meter_spend_days (meter_id, day, spent, secs, last_at, last_balance)
        VALUES (m, d, CASE WHEN stepped THEN pb - b ELSE 0 END, CASE WHEN stepped THEN extract(epoch FROM at - pt) ELSE 0 END, at, b)
        ON CONFLICT (meter_id, day) DO UPDATE SET spent = meter_spend_days.spent + EXCLUDED.spent,
            secs = meter_spend_days.secs + EXCLUDED.secs, last_at = EXCLUDED.last_at, last_balance = EXCLUDED.last_balance;
        IF dayrow.meter_id IS NOT NULL THEN
            RETURN; -- a day already kept: the days older than 14 went when it began
        END IF;
    ELSE
        PERFORM flows.refresh_spend_day(m, d);
        IF EXISTS (SELECT 1 FROM flows.meter_spend_days WHERE meter_id = m AND day = d + 1) THEN
            PERFORM flows.refresh_spend_day(m, d + 1);
        END IF;
    END IF;
    DELETE FROM flows.meter_spend_days WHERE meter_id = m AND day < d - 14;
END $$;
