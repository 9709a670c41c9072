-- Alerts (issue 18): rules per ESCO, each firing once per episode (a
-- meter entering the rule's condition) and resolving when the episode
-- ends; every change is delivered to the rule's webhook, if it has one,
-- through a durable outbox (flows.alert_deliveries, one row per episode
-- and event, delivered by River jobs inserted in the same transaction).
--
-- Kinds and their threshold:
--   low_balance        balance under threshold GBP (prepayment meters)
--   losing_supply      forecast supply cut within threshold hours
--   self_disconnected  off supply for lack of credit now (no threshold)
--   offline            last online more than threshold hours ago
--   clock_drift        clock more than threshold seconds off
--   push_failed        the meter's newest top-up or tariff push failed (no
--                      threshold); resolves when a newer one succeeds
CREATE TABLE flows.alert_rules (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    esco           uuid NOT NULL REFERENCES flows.escos (id) ON DELETE CASCADE,
    name           text NOT NULL CHECK (name <> '' AND length(name) <= 200),
    kind           text NOT NULL CHECK (kind IN ('low_balance', 'losing_supply', 'self_disconnected', 'offline', 'clock_drift', 'push_failed')),
    threshold      numeric(14, 5),
    webhook_url    text CHECK (webhook_url ~ '^https?://'),
    webhook_secret text,
    enabled        boolean NOT NULL DEFAULT true,
    created_by     text NOT NULL DEFAULT current_user,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT alert_rules_threshold CHECK (CASE WHEN kind IN ('self_disconnected', 'push_failed') THEN threshold IS NULL
                                                 ELSE threshold IS NOT NULL AND threshold > 0 END),
    CONSTRAINT alert_rules_secret CHECK ((webhook_url IS NULL) = (webhook_secret IS NULL) AND (webhook_secret IS NULL OR length(webhook_secret) >= 16))
);
COMMENT ON TABLE flows.alert_rules IS 'Alert rules per ESCO: a condition on each of its meters, and where to deliver its episodes.';

CREATE TABLE flows.alert_episodes (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    rule_id         uuid NOT NULL REFERENCES flows.alert_rules (id) ON DELETE CASCADE,
    meter_id        uuid NOT NULL REFERENCES flows.meter_registry (id) ON DELETE CASCADE,
    started_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    detail          text NOT NULL,
    acknowledged_at timestamptz,
    acknowledged_by text
);
COMMENT ON TABLE flows.alert_episodes IS 'One episode a meter spent in a rule''s condition: fired at started_at, resolved at resolved_at (NULL: firing).';
CREATE UNIQUE INDEX alert_episodes_firing ON flows.alert_episodes (rule_id, meter_id) WHERE resolved_at IS NULL;
CREATE INDEX alert_episodes_meter ON flows.alert_episodes (meter_id, started_at);

-- The outbox: what each rule's webhook is owed, in order per meter (seq).
CREATE TABLE flows.alert_deliveries (
    seq          bigserial PRIMARY KEY,
    episode_id   uuid NOT NULL REFERENCES flows.alert_episodes (id) ON DELETE CASCADE,
    event        text NOT NULL CHECK (event IN ('fired', 'resolved')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    attempts     integer NOT NULL DEFAULT 0,
    last_attempt_at timestamptz,
    last_status  integer,
    last_error   text,
    delivered_at timestamptz,
    UNIQUE (episode_id, event)
);
COMMENT ON TABLE flows.alert_deliveries IS 'Webhook deliveries owed and made: one per episode and event, each attempt counted.';
CREATE INDEX alert_deliveries_pending ON flows.alert_deliveries (seq) WHERE delivered_at IS NULL;

-- Which meters are in rule r's condition now, with what to say of each.
CREATE FUNCTION flows.alert_condition(r flows.alert_rules) RETURNS TABLE (meter_id uuid, detail text) LANGUAGE sql STABLE AS $$
    SELECT mr.id, CASE r.kind
        WHEN 'low_balance' THEN format('balance £%s, under £%s', round(ms.balance, 2), round(r.threshold, 2))
        WHEN 'losing_supply' THEN format('supply forecast to be cut at %s (within %s h)', to_char(f.supply_cut_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI"Z"'), r.threshold::float8)
        WHEN 'self_disconnected' THEN format('off supply for lack of credit since %s', to_char(d.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI"Z"'))
        WHEN 'offline' THEN format('last online %s (over %s h ago)', to_char(ms.last_online_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI"Z"'), r.threshold::float8)
        WHEN 'clock_drift' THEN format('clock %s s off (over %s s)', ms.clock_time_diff_seconds, r.threshold::float8)
        WHEN 'push_failed' THEN p.what
        END
    FROM flows.meter_registry mr
    JOIN flows.meter_shadows ms ON ms.id = mr.id
    LEFT JOIN flows.meter_credit_forecast f ON r.kind = 'losing_supply' AND f.meter_id = mr.id
    LEFT JOIN LATERAL (SELECT d.started_at FROM flows.meter_self_disconnections d
                       WHERE r.kind = 'self_disconnected' AND d.meter_id = mr.id AND d.ended_at IS NULL LIMIT 1) d ON true
    LEFT JOIN LATERAL (
        SELECT x.what FROM (
            (SELECT t.status = 'failed_token_push' AS failed, t.updated_at AS at, format('top-up %s failed: %s', t.id, coalesce(t.notes, '')) AS what
             FROM flows.topups t WHERE t.meter_id = mr.id ORDER BY t.created_at DESC LIMIT 1)
            UNION ALL
            (SELECT q.status = 'failed', q.updated_at, format('tariff push %s failed: %s', q.id, coalesce(q.last_error, ''))
             FROM flows.tariff_requests q WHERE q.meter_id = mr.id AND q.status <> 'superseded' ORDER BY q.created_at DESC LIMIT 1)
        ) x WHERE r.kind = 'push_failed' AND x.failed ORDER BY x.at DESC LIMIT 1) p ON true
    WHERE mr.esco = r.esco AND CASE r.kind
        WHEN 'low_balance' THEN coalesce(mr.prepay_enabled, true) AND ms.balance < r.threshold
        -- From the newest reading when it is ahead of the database's
        -- clock (a simulated fleet at --speed), else from now; only a
        -- forecast learnt from a day of spending or more (hours of an
        -- evening peak alone would cry wolf).
        WHEN 'losing_supply' THEN f.days_observed >= 1
                                  AND f.supply_cut_at < greatest(now(), f.balance_at) + make_interval(secs => (r.threshold * 3600)::float8)
        WHEN 'self_disconnected' THEN d.started_at IS NOT NULL
        WHEN 'offline' THEN ms.last_online_at < now() - make_interval(secs => (r.threshold * 3600)::float8)
        WHEN 'clock_drift' THEN abs(ms.clock_time_diff_seconds) > r.threshold
        WHEN 'push_failed' THEN p.what IS NOT NULL
        END
$$;

-- One evaluation of every rule: episodes opened for meters that entered
-- an enabled rule's condition, resolved for those that left it (every
-- episode of a disabled rule), each change owed to the rule's webhook.
-- Returns the deliveries it created, for the caller to queue in the same
-- transaction.
CREATE FUNCTION flows.evaluate_alerts() RETURNS SETOF bigint LANGUAGE plpgsql AS $$
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
            WHERE e.rule_id = r.id AND e.resolved_at IS NULL AND NOT EXISTS (SELECT 1 FROM now_in n WHERE n.meter_id = e.meter_id)
            RETURNING e.id, 'resolved' AS event
        ), fired AS (
            INSERT INTO flows.alert_episodes (rule_id, meter_id, detail)
            SELECT r.id, n.meter_id, n.detail FROM now_in n
            WHERE NOT EXISTS (SELECT 1 FROM flows.alert_episodes e WHERE e.rule_id = r.id AND e.meter_id = n.meter_id AND e.resolved_at IS NULL)
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

-- Rules, episodes and deliveries are an ESCO's: an ESCO's SQL login sees
-- its own (the rules' secrets are never granted).
ALTER TABLE flows.alert_rules ENABLE ROW LEVEL SECURITY;
CREATE POLICY esco_scope ON flows.alert_rules FOR SELECT
    USING (esco = (SELECT l.esco FROM flows.sql_logins l WHERE l.role_name = current_user));
CREATE POLICY every_esco ON flows.alert_rules FOR SELECT TO flows_all_escos
    USING (EXISTS (SELECT 1 FROM flows.sql_logins l WHERE l.role_name = current_user AND l.esco IS NULL));
ALTER TABLE flows.alert_episodes ENABLE ROW LEVEL SECURITY;
CREATE POLICY esco_scope ON flows.alert_episodes FOR SELECT
    USING (EXISTS (SELECT 1 FROM flows.meter_registry mr WHERE mr.id = alert_episodes.meter_id));
CREATE POLICY every_esco ON flows.alert_episodes FOR SELECT TO flows_all_escos
    USING (EXISTS (SELECT 1 FROM flows.sql_logins l WHERE l.role_name = current_user AND l.esco IS NULL));
GRANT SELECT (id, esco, name, kind, threshold, webhook_url, enabled, created_by, created_at) ON flows.alert_rules TO flows_readonly, flows_operator;
-- An operator's SQL login configures its own ESCO's rules in SQL, as the
-- API does (created_by is its login; the secret it may set, not read).
GRANT INSERT (esco, name, kind, threshold, webhook_url, webhook_secret, enabled) ON flows.alert_rules TO flows_operator;
GRANT UPDATE (name, threshold, webhook_url, webhook_secret, enabled) ON flows.alert_rules TO flows_operator;
CREATE POLICY esco_scope_write ON flows.alert_rules FOR INSERT TO flows_operator
    WITH CHECK (esco = (SELECT l.esco FROM flows.sql_logins l WHERE l.role_name = current_user));
CREATE POLICY every_esco_write ON flows.alert_rules FOR INSERT TO flows_all_escos
    WITH CHECK (EXISTS (SELECT 1 FROM flows.sql_logins l WHERE l.role_name = current_user AND l.esco IS NULL));
CREATE POLICY esco_scope_change ON flows.alert_rules FOR UPDATE TO flows_operator
    USING (esco = (SELECT l.esco FROM flows.sql_logins l WHERE l.role_name = current_user))
    WITH CHECK (esco = (SELECT l.esco FROM flows.sql_logins l WHERE l.role_name = current_user));
CREATE POLICY every_esco_change ON flows.alert_rules FOR UPDATE TO flows_all_escos
    USING (EXISTS (SELECT 1 FROM flows.sql_logins l WHERE l.role_name = current_user AND l.esco IS NULL))
    WITH CHECK (EXISTS (SELECT 1 FROM flows.sql_logins l WHERE l.role_name = current_user AND l.esco IS NULL));
GRANT SELECT ON flows.alert_episodes TO flows_readonly, flows_operator;
