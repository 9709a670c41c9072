-- One evaluation of every alert rule in time proportional to the fleet,
-- not its square, and each rule reading only what its kind needs
-- (BenchmarkAlertEvaluationAt100k: 100,000 meters, a rule of each kind;
-- the commands component evaluates every 30 s).
--
-- 1. 0032's evaluation found the episodes to resolve with NOT EXISTS
--    against the rule's condition, a CTE the planner guesses at 1,000
--    rows (a function's default): it chose a nested loop, and with
--    126,000 episodes open one evaluation took 218 s of PostgreSQL. NOT
--    IN over the condition's meter ids is a hashed subplan whatever the
--    estimate (the ids are never NULL).
-- 2. 0032's condition was one query for every kind: each rule joined
--    the shadows, the forecasts, and for every meter looked up its open
--    self-disconnection and its newest top-up and tariff push (the
--    top-ups by a scan: no index by meter), 0.6 s a rule and 2.4 s for
--    push_failed. Now a branch per kind, the others skipped by their
--    one-time filter; push_failed looks only at meters with a failed
--    push, by index.
CREATE INDEX topups_meter_idx ON flows.topups (meter_id, created_at DESC);

CREATE OR REPLACE FUNCTION flows.alert_condition(r flows.alert_rules) RETURNS TABLE (meter_id uuid, detail text) LANGUAGE sql STABLE AS $$
    SELECT mr.id, format('balance £%s, under £%s', round(ms.balance, 2), round(r.threshold, 2))
    FROM flows.meter_registry mr JOIN flows.meter_shadows ms ON ms.id = mr.id
    WHERE r.kind = 'low_balance' AND mr.esco = r.esco AND coalesce(mr.prepay_enabled, true) AND ms.balance < r.threshold
    UNION ALL
    -- From the newest reading when it is ahead of the database's clock (a
    -- simulated fleet at --speed), else from now; only a forecast learnt
    -- from a day of spending or more (hours of an evening peak alone
    -- would cry wolf).
    SELECT mr.id, format('supply forecast to be cut at %s (within %s h)', to_char(f.supply_cut_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI"Z"'), r.threshold::float8)
    FROM flows.meter_registry mr JOIN flows.meter_credit_forecast f ON f.meter_id = mr.id
    WHERE r.kind = 'losing_supply' AND mr.esco = r.esco AND f.days_observed >= 1
      AND f.supply_cut_at < greatest(now(), f.balance_at) + make_interval(secs => (r.threshold * 3600)::float8)
    UNION ALL
    SELECT mr.id, format('off supply for lack of credit since %s', to_char(d.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI"Z"'))
    FROM flows.meter_registry mr JOIN flows.meter_self_disconnections d ON d.meter_id = mr.id AND d.ended_at IS NULL
    WHERE r.kind = 'self_disconnected' AND mr.esco = r.esco
    UNION ALL
    SELECT mr.id, format('last online %s (over %s h ago)', to_char(ms.last_online_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI"Z"'), r.threshold::float8)
    FROM flows.meter_registry mr JOIN flows.meter_shadows ms ON ms.id = mr.id
    WHERE r.kind = 'offline' AND mr.esco = r.esco AND ms.last_online_at < now() - make_interval(secs => (r.threshold * 3600)::float8)
    UNION ALL
    SELECT mr.id, format('clock %s s off (over %s s)', ms.clock_time_diff_seconds, r.threshold::float8)
    FROM flows.meter_registry mr JOIN flows.meter_shadows ms ON ms.id = mr.id
    WHERE r.kind = 'clock_drift' AND mr.esco = r.esco AND abs(ms.clock_time_diff_seconds) > r.threshold
    UNION ALL
    -- The newest top-up or tariff push failed: only meters with a failed
    -- one are looked at.
    SELECT mr.id, p.what
    FROM flows.meter_registry mr
    JOIN LATERAL (
        SELECT x.what FROM (
            (SELECT t.status = 'failed_token_push' AS failed, t.updated_at AS at, format('top-up %s failed: %s', t.id, coalesce(t.notes, '')) AS what
             FROM flows.topups t WHERE t.meter_id = mr.id ORDER BY t.created_at DESC LIMIT 1)
            UNION ALL
            (SELECT q.status = 'failed', q.updated_at, format('tariff push %s failed: %s', q.id, coalesce(q.last_error, ''))
             FROM flows.tariff_requests q WHERE q.meter_id = mr.id AND q.status <> 'superseded' ORDER BY q.created_at DESC LIMIT 1)
        ) x WHERE x.failed ORDER BY x.at DESC LIMIT 1) p ON true
    WHERE r.kind = 'push_failed' AND mr.esco = r.esco
      AND mr.id IN (SELECT t.meter_id FROM flows.topups t WHERE t.status = 'failed_token_push'
                    UNION SELECT q.meter_id FROM flows.tariff_requests q WHERE q.status = 'failed')
$$;

CREATE OR REPLACE FUNCTION flows.evaluate_alerts() RETURNS SETOF bigint LANGUAGE plpgsql AS $$
DECLARE
    r flows.alert_rules;
BEGIN
    -- One node at a time (every node running commands evaluates): the
    -- second waits and finds the first's episodes.
    PERFORM pg_advisory_xact_lock(hashtext('flows.evaluate_alerts'));
    FOR r IN SELECT * FROM flows.alert_rules ORDER BY id LOOP
        -- Resolutions first (seq order): a meter's episode that ended and
        -- one that began in the same evaluation are owed in that order.
        RETURN QUERY
        WITH now_in AS (
            SELECT DISTINCT ON (c.meter_id) c.meter_id, c.detail FROM flows.alert_condition(r) c WHERE r.enabled
        ), resolved AS (
            UPDATE flows.alert_episodes e SET resolved_at = now()
            WHERE e.rule_id = r.id AND e.resolved_at IS NULL AND e.meter_id NOT IN (SELECT n.meter_id FROM now_in n)
            RETURNING e.id, 'resolved' AS event
        ), fired AS (
            INSERT INTO flows.alert_episodes (rule_id, meter_id, detail)
            SELECT r.id, n.meter_id, n.detail FROM now_in n
            WHERE n.meter_id NOT IN (SELECT e.meter_id FROM flows.alert_episodes e WHERE e.rule_id = r.id AND e.resolved_at IS NULL)
            ON CONFLICT (rule_id, meter_id) WHERE resolved_at IS NULL DO NOTHING
            RETURNING id, 'fired' AS event
        ), owed AS (
            INSERT INTO flows.alert_deliveries (episode_id, event)
            SELECT x.id, x.event FROM (SELECT * FROM resolved UNION ALL SELECT * FROM fired) x
            WHERE r.webhook_url IS NOT NULL
            ORDER BY x.event DESC, x.id
            RETURNING seq
        )
        SELECT seq FROM owed;
    END LOOP;
END $$;
COMMENT ON FUNCTION flows.evaluate_alerts() IS 'Evaluates every enabled alert rule once: opens and resolves episodes and returns the webhook deliveries owed for them.';
