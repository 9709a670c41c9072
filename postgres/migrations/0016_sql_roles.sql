-- SQL access for analysts and BI tools (issue 19): database roles for the
-- people and tools that query the flows schema directly, and each ESCO's
-- meter data kept to that ESCO's logins by row-level security.
--
-- The role model:
--  * The owner: the role that runs the migrations and that the services
--    connect as. It owns every object here and row-level security is not
--    FORCEd, so no policy is ever evaluated for it: the services see and
--    write everything exactly as before (the sync engine's write path is
--    unchanged). Superusers bypass the policies too.
--  * flows_readonly (NOLOGIN group): SELECT on the seed's tables and views,
--    the history, intervals, events, requests and top-ups (not the
--    top-up tokens). Nothing on dashboard sessions, the meter write audit,
--    the replica outbox and cursors, the migrations table or the job
--    queue (schema flows_queue).
--  * flows_operator (NOLOGIN group): what flows_readonly reads, and the
--    seed's tariff update (UPDATE flows.meter_shadows SET tariffs_future),
--    which the trigger of 0005 validates and records as a request.
--  * flows_all_escos (NOLOGIN group, no privileges): marks a login of every
--    ESCO, for the policies (see below).
--  * Logins (`flows db grant`) are members of flows_readonly or
--    flows_operator (and flows_all_escos when not limited to an ESCO), and
--    have a row in flows.sql_logins naming their ESCO (NULL: every ESCO).
--    Any other role, a member of the groups or not, sees no meter data.
--
-- Roles belong to the cluster, not to a database: the group roles are
-- shared by every Flows database on a cluster (their privileges are
-- granted database by database, here). They are created only when missing,
-- and a database migrating at the same moment as another (the tests make
-- many at once) takes the other's role. A login's ESCO is recorded per
-- database and matched on the role's oid as well as its name: a login
-- granted in one database sees no meter data in another (flows_all_escos
-- included: its policies ask this database's flows.sql_logins too), and a
-- role dropped and made again under the same name has no access until
-- granted again.
--
-- Two policies per table. esco_scope (every role): the row belongs to a
-- meter of the role's ESCO. every_esco (members of flows_all_escos only):
-- the role may see every ESCO here. PostgreSQL applies only the policies
-- of the caller's roles, so an ESCO's login gets the first alone, a plain
-- "esco = $1" on meter_registry that an index answers; the history
-- tables' "its meter is visible" then costs one small hash of the ESCO's
-- meter ids per query (or one index probe per row, as the planner finds
-- cheaper), not a scan of the registry.
--
-- Partitioned history tables (0014): the policies are on the partitioned
-- parents and apply to every query through them. The partitions get no
-- privileges at all (partition maintenance makes new ones the same way),
-- so a login cannot read a partition directly, around the policy.
--
-- For the authors of later migrations: a new table holding meter data
-- needs ENABLE ROW LEVEL SECURITY and a policy before it is granted; a
-- view replaced with CREATE OR REPLACE VIEW loses security_invoker (set it
-- again, or the view reads as its owner, past the policies); a function
-- replaced with CREATE OR REPLACE loses SECURITY DEFINER (see
-- tariffs_future_request below). postgres/roles_test.go checks all three.

DO $$
DECLARE
    r text;
    g pg_roles;
BEGIN
    FOREACH r IN ARRAY ARRAY['flows_readonly', 'flows_operator', 'flows_all_escos'] LOOP
        SELECT * INTO g FROM pg_roles WHERE rolname = r;
        IF NOT FOUND THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN
                    NULL; -- made by a database migrating at the same time
                WHEN insufficient_privilege THEN
                    RAISE EXCEPTION 'role %: this migration creates the NOLOGIN group roles flows_readonly, flows_operator and flows_all_escos; run it as a role with CREATEROLE, or create them first', r
                        USING ERRCODE = 'insufficient_privilege';
            END;
        ELSIF g.rolcanlogin OR g.rolsuper OR g.rolbypassrls THEN
            RAISE EXCEPTION 'role % exists and is not a NOLOGIN group role without SUPERUSER or BYPASSRLS: Flows grants it access to meter data', r
                USING ERRCODE = 'invalid_role_specification';
        END IF;
    END LOOP;
END $$;

-- Who may see which ESCO's meters in this database: one row per login.
CREATE TABLE flows.sql_logins (
    role_name  name PRIMARY KEY,
    role_oid   oid NOT NULL,
    access     text NOT NULL CONSTRAINT sql_logins_access_check CHECK (access IN ('readonly', 'operator')),
    esco       uuid REFERENCES flows.escos (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE flows.sql_logins IS 'Database logins for people and tools (flows db grant): access level and ESCO (NULL: every ESCO). A role without a row sees no meter data.';
ALTER TABLE flows.sql_logins ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_row ON flows.sql_logins FOR SELECT
    USING (role_name = current_user AND role_oid = pg_catalog.to_regrole(pg_catalog.quote_ident(current_user))::oid);

-- The current role's scope: sql_scope_all, the role may see every ESCO's
-- meters; sql_scope_esco, the one ESCO it may see (NULL for none, or for
-- all). Both read flows.sql_logins as the caller, through its policy: the
-- role's own row, made for this very role. The policies below inline the
-- same subqueries (PostgreSQL runs an uncorrelated subquery once per
-- query, and a function call costs more than the query it guards).
CREATE FUNCTION flows.sql_scope_all() RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN coalesce((SELECT l.esco IS NULL FROM flows.sql_logins l WHERE l.role_name = current_user), false);
END $$;
CREATE FUNCTION flows.sql_scope_esco() RETURNS uuid
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN (SELECT l.esco FROM flows.sql_logins l WHERE l.role_name = current_user);
END $$;

GRANT USAGE ON SCHEMA flows TO flows_readonly, flows_operator;
GRANT SELECT ON flows.sql_logins TO flows_readonly, flows_operator;

-- Turns row-level security on for tbl with its two read policies:
-- esco_scope (visible is the row's test of belonging to the role's ESCO)
-- and every_esco; grants SELECT unless withheld. (every_esco is named to
-- come first in the OR PostgreSQL makes of the two, for a login of every
-- ESCO: then the other is not evaluated.)
CREATE FUNCTION flows.sql_scope_table_0016(tbl text, visible text, grant_select boolean) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
    every_esco constant text := 'EXISTS (SELECT 1 FROM flows.sql_logins l WHERE l.role_name = current_user AND l.esco IS NULL)';
BEGIN
    EXECUTE format('ALTER TABLE flows.%I ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('CREATE POLICY esco_scope ON flows.%I FOR SELECT USING (%s)', tbl, visible);
    EXECUTE format('CREATE POLICY every_esco ON flows.%I FOR SELECT TO flows_all_escos USING (%s)', tbl, every_esco);
    IF grant_select THEN
        EXECUTE format('GRANT SELECT ON flows.%I TO flows_readonly, flows_operator', tbl);
    END IF;
END $fn$;

-- The root of every policy: the meters of the role's ESCO. The index
-- gives a history query its ESCO's meter ids from the index alone.
CREATE INDEX meter_registry_esco_id_idx ON flows.meter_registry (esco, id);
SELECT flows.sql_scope_table_0016('meter_registry', 'esco = (SELECT l.esco FROM flows.sql_logins l WHERE l.role_name = current_user)', true);
SELECT flows.sql_scope_table_0016('escos', 'id = (SELECT l.esco FROM flows.sql_logins l WHERE l.role_name = current_user)', true);
SELECT flows.sql_scope_table_0016('feeder_registry', 'esco = (SELECT l.esco FROM flows.sql_logins l WHERE l.role_name = current_user)', true);

-- Everything else follows its meter: a row is visible when its meter is
-- (the subqueries read meter_registry as the caller, through its policy).
-- Every table with a meter_id or (but meter_registers) a register_id
-- column, generically, so the tables of 0013-0015 are covered too.
-- Readable unless withheld; row-level security on the withheld ones all
-- the same, so that a grant made later by hand is still kept to the ESCO.
SELECT flows.sql_scope_table_0016(c.relname,
           CASE WHEN a.attname = 'meter_id'
                THEN format('EXISTS (SELECT 1 FROM flows.meter_registry mr WHERE mr.id = %I.meter_id)', c.relname)
                ELSE format('EXISTS (SELECT 1 FROM flows.meter_registers r WHERE r.register_id = %I.register_id)', c.relname) END,
           c.relname NOT IN ('meter_write_audit', 'topups'))
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL (
    SELECT a.attname FROM pg_attribute a
    WHERE a.attrelid = c.oid AND a.attname IN ('meter_id', 'register_id') AND a.atttypid = 'uuid'::regtype AND NOT a.attisdropped
    ORDER BY a.attname LIMIT 1) a  -- meter_id before register_id (meter_registers has both)
WHERE n.nspname = 'flows' AND c.relkind IN ('r', 'p') AND NOT c.relispartition;

SELECT flows.sql_scope_table_0016('meter_shadows', 'EXISTS (SELECT 1 FROM flows.meter_registry mr WHERE mr.id = meter_shadows.id)', true);
SELECT flows.sql_scope_table_0016('service_head_meter', 'EXISTS (SELECT 1 FROM flows.meter_registry mr WHERE mr.id = service_head_meter.meter)', true);
SELECT flows.sql_scope_table_0016('service_head_registry', 'EXISTS (SELECT 1 FROM flows.feeder_registry f WHERE f.id = service_head_registry.feeder)', true);
-- A rollout is visible with any of its requests.
SELECT flows.sql_scope_table_0016('tariff_rollouts', 'EXISTS (SELECT 1 FROM flows.tariff_requests r WHERE r.rollout_id = tariff_rollouts.id)', true);
DROP FUNCTION flows.sql_scope_table_0016(text, text, boolean);

-- Top-ups without their tokens (a token not yet pushed is money): every
-- other column of the ledger.
DO $$
BEGIN
    EXECUTE format('GRANT SELECT (%s) ON flows.topups TO flows_readonly, flows_operator',
        (SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
         WHERE attrelid = 'flows.topups'::regclass AND attnum > 0 AND NOT attisdropped AND attname <> 'token'));
END $$;

-- Reference tables, readable as they are.
GRANT SELECT ON flows.meter_event_log_type, flows.meter_metrics TO flows_readonly, flows_operator;

-- Withheld, and closed to every role but the owner even if granted:
-- sessions, the replica outbox, cursors and quarantine.
ALTER TABLE flows.dashboard_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE flows.shadow_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE flows.replica_cursor ENABLE ROW LEVEL SECURITY;
ALTER TABLE flows.replica_quarantine ENABLE ROW LEVEL SECURITY;

-- Views read their tables as the caller (security_invoker), so the
-- policies apply through them; every view of the schema is readable.
DO $$
DECLARE
    v text;
BEGIN
    FOR v IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'flows' AND c.relkind = 'v' ORDER BY 1 LOOP
        EXECUTE format('ALTER VIEW flows.%I SET (security_invoker = true)', v);
        EXECUTE format('GRANT SELECT ON flows.%I TO flows_readonly, flows_operator', v);
    END LOOP;
END $$;

-- The operator's write: the seed's tariff update, on its ESCO's meters.
GRANT UPDATE (tariffs_future) ON flows.meter_shadows TO flows_operator;
CREATE POLICY esco_scope_tariff ON flows.meter_shadows FOR UPDATE TO flows_operator
    USING (EXISTS (SELECT 1 FROM flows.meter_registry mr WHERE mr.id = meter_shadows.id))
    WITH CHECK (EXISTS (SELECT 1 FROM flows.meter_registry mr WHERE mr.id = meter_shadows.id));
CREATE POLICY every_esco_tariff ON flows.meter_shadows FOR UPDATE TO flows_all_escos
    USING (EXISTS (SELECT 1 FROM flows.sql_logins l WHERE l.role_name = current_user AND l.esco IS NULL))
    WITH CHECK (EXISTS (SELECT 1 FROM flows.sql_logins l WHERE l.role_name = current_user AND l.esco IS NULL));

-- The trigger that validates the tariff and records the request runs as
-- the owner, so an operator needs no write privilege on tariff_requests
-- (where it could write a request no trigger has validated). The request
-- names who asked: the login (session_user), not the function's owner.
ALTER FUNCTION flows.tariffs_future_request() SECURITY DEFINER SET search_path = pg_catalog, flows, pg_temp;
ALTER TABLE flows.tariff_requests ALTER COLUMN requested_by SET DEFAULT session_user;

-- A login's tariff update: the services' markers are theirs alone
-- (flows.writer = 'sync' or 'replica' stores a tariff as if the meter had
-- reported it, unvalidated and never pushed; flows.rollout_id attaches it
-- to a rollout), and an update by an ESCO-scoped login that changed no
-- meter is refused, naming the scope: another ESCO's meter is invisible
-- to it, and UPDATE 0 alone would not say why. The triggers fire only
-- for roles the policies apply to (never for the owner).
CREATE FUNCTION flows.sql_login_tariff_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF current_setting('flows.writer', true) IN ('sync', 'replica') OR coalesce(current_setting('flows.rollout_id', true), '') <> '' THEN
        RAISE EXCEPTION 'tariffs_future: flows.writer and flows.rollout_id are for the Flows services; unset them'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM set_config('flows.sql_tariff_rows', 'some', true);
    RETURN NEW;
END $$;
CREATE TRIGGER meter_shadows_05_sql_login BEFORE UPDATE OF tariffs_future ON flows.meter_shadows
    FOR EACH ROW WHEN (row_security_active('flows.meter_shadows'::regclass))
    EXECUTE FUNCTION flows.sql_login_tariff_row();

CREATE FUNCTION flows.sql_login_tariff_statement() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    code text;
BEGIN
    IF coalesce(current_setting('flows.sql_tariff_rows', true), '') <> '' THEN
        PERFORM set_config('flows.sql_tariff_rows', '', true);
        RETURN NULL;
    END IF;
    IF flows.sql_scope_all() THEN
        RETURN NULL; -- a login of every ESCO: no meter matched, as for anyone
    END IF;
    SELECT e.code INTO code FROM flows.escos e WHERE e.id = flows.sql_scope_esco();
    IF code IS NULL THEN
        RAISE EXCEPTION 'tariffs_future: role % has no access to this database''s meters (flows db grant gives it)', current_user
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RAISE EXCEPTION 'tariffs_future: no meter changed: login % may change only the meters of ESCO %', current_user, code
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'A meter of another ESCO is not visible to this login, like a meter that does not exist.';
END $$;
CREATE TRIGGER meter_shadows_sql_login_scope AFTER UPDATE OF tariffs_future ON flows.meter_shadows
    FOR EACH STATEMENT WHEN (row_security_active('flows.meter_shadows'::regclass))
    EXECUTE FUNCTION flows.sql_login_tariff_statement();
