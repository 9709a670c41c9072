-- Monthly range partitioning of the fast-growing history tables
-- (meter_prepay_balance, meter_csq, meter_voltage, meter_3p_voltage,
-- meter_health_history, register_import, register_export, meter_profile,
-- register_interval_hh), on "timestamp", native declarative partitioning.
--
-- * One partition per UTC calendar month, named <table>_pYYYYMM (e.g.
--   meter_csq_p202612), holding [first instant of the month, first
--   instant of the next) in UTC.
-- * The months between and beyond them are covered by gap partitions,
--   <table>_gap_<from>_<to> (YYYYMM, "min" or "max": meter_csq_gap_min_202612
--   holds everything before December 2026, meter_csq_gap_202704_max
--   everything from April 2027), so no write ever fails for want of a
--   partition: a meter's far-past profile record, a clock far ahead.
--   Maintenance (flows serve, daily: postgres.Store.MaintainPartitions)
--   gives rows found in a gap partition their month's own partition (the
--   gap is split around it), makes the months ahead, and drops the months
--   past a table's retention.
-- * Not a DEFAULT partition: with one, PostgreSQL cannot read the
--   partitions in time order (any could have rows in the default), so a
--   "newest row" lookup probes every partition (meter_last_online, which
--   the dashboard and the seed's offline views read for every meter: 40x
--   slower with three years of months). Range partitions up to MINVALUE and
--   MAXVALUE keep the order, and the lookup reads the newest month first.
-- * Every key already includes "timestamp", as a partitioned table's keys
--   must: the ON CONFLICT (meter_id | register_id, "timestamp") of the
--   history triggers, StoreProfile and derive_register_intervals are
--   unchanged, as is every name the seed and the code use (tables,
--   columns, constraints, indexes, views).
--
-- The existing rows are copied into the new tables (monthly partitions for
-- every month that holds data, plus the current month and three ahead)
-- inside this migration's transaction: the tables are locked while it
-- runs, and nothing is lost or half-converted if it fails.

-- The history table tbl (schema flows) when it is range-partitioned on
-- "timestamp"; otherwise an error naming it. Every helper below starts
-- here, so none of them can be pointed at another table.
CREATE FUNCTION flows.history_parent(tbl text) RETURNS regclass
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    parent regclass;
BEGIN
    SELECT c.oid::regclass INTO parent
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_partitioned_table p ON p.partrelid = c.oid
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = p.partattrs[0]
    WHERE n.nspname = 'flows' AND c.relname = tbl AND p.partstrat = 'r' AND p.partnatts = 1 AND a.attname = 'timestamp';
    IF parent IS NULL THEN
        RAISE EXCEPTION 'table %: not a history table partitioned by month', tbl USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN parent;
END $$;

-- The columns a copy of rel's rows writes (all but the generated ones), as
-- a select list.
CREATE FUNCTION flows.history_columns(rel regclass) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum)
    FROM pg_attribute
    WHERE attrelid = rel AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
$$;

-- The name of tbl's partition for the month holding day: <tbl>_pYYYYMM.
CREATE FUNCTION flows.month_partition_name(tbl text, day date) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT tbl || '_p' || to_char(day, 'YYYYMM')
$$;

-- The partitions of history table tbl in time order, with their bounds
-- (lower NULL: MINVALUE; upper NULL: MAXVALUE) and whether each is a gap
-- partition. A bound reads FOR VALUES FROM ('...') TO ('...'): in this
-- function's TimeZone and DateStyle it casts back exactly.
CREATE FUNCTION flows.history_partitions(tbl text)
RETURNS TABLE (part regclass, name text, lower timestamptz, upper timestamptz, gap boolean)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp SET "TimeZone" = 'UTC' SET "DateStyle" = 'ISO, YMD' AS $$
    SELECT c.oid::regclass, c.relname::text, nullif(b[1], 'MINVALUE')::timestamptz, nullif(b[2], 'MAXVALUE')::timestamptz,
           starts_with(c.relname, tbl || '_gap_')
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid), '^FOR VALUES FROM \(''?([^'')]+)''?\) TO \(''?([^'')]+)''?\)$') AS b
    WHERE i.inhparent = flows.history_parent(tbl)
    ORDER BY 3 NULLS FIRST
$$;

-- Makes gap partitions for every range of time no partition of tbl covers
-- (before the first, between two, after the last; all of time when there
-- is none) and returns their names.
CREATE FUNCTION flows.fill_partition_gaps(tbl text) RETURNS SETOF text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET "TimeZone" = 'UTC' SET "DateStyle" = 'ISO, YMD' AS $$
DECLARE
    parent regclass := flows.history_parent(tbl);
    g      record;
    name   text;
BEGIN
    EXECUTE format('LOCK TABLE %s IN SHARE UPDATE EXCLUSIVE MODE', parent);
    FOR g IN
        WITH p AS (
            SELECT lower, upper, lag(upper) OVER w AS prev_upper, row_number() OVER w AS n, count(*) OVER () AS total
            FROM flows.history_partitions(tbl) WINDOW w AS (ORDER BY lower NULLS FIRST))
        SELECT NULL::timestamptz AS lo, lower AS hi FROM p WHERE n = 1 AND lower IS NOT NULL
        UNION ALL
        SELECT prev_upper, lower FROM p WHERE n > 1 AND prev_upper < lower
        UNION ALL
        SELECT upper, NULL FROM p WHERE n = total AND upper IS NOT NULL
        UNION ALL
        SELECT NULL, NULL WHERE NOT EXISTS (SELECT 1 FROM p)
    LOOP
        name := format('%s_gap_%s_%s', tbl, coalesce(to_char(g.lo, 'YYYYMM'), 'min'), coalesce(to_char(g.hi, 'YYYYMM'), 'max'));
        EXECUTE format('CREATE TABLE flows.%I PARTITION OF %s FOR VALUES FROM (%s) TO (%s)', name, parent,
            coalesce(quote_literal(g.lo), 'MINVALUE'), coalesce(quote_literal(g.hi), 'MAXVALUE'));
        RETURN NEXT name;
    END LOOP;
END $$;

-- Creates tbl's partitions for the (UTC) months holding days, but those
-- that exist, and returns their names. A gap partition covering one of
-- the months is split: detached, replaced by the months' partitions and
-- gap partitions around them, and its rows put back through the table
-- (once, however many months it gives up; those of the new months land in
-- their partitions: moved counts them), in this transaction. Detaching
-- locks the table (ACCESS EXCLUSIVE) until commit; gap partitions hold
-- few rows, if any, so that is brief.
CREATE FUNCTION flows.create_month_partitions(tbl text, days date[])
RETURNS TABLE (partition_name text, moved bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET "TimeZone" = 'UTC' SET "DateStyle" = 'ISO, YMD' AS $$
DECLARE
    parent regclass := flows.history_parent(tbl);
    months date[];
    covers regclass[];
    cover  record;
    month  date;
    cols   text;
BEGIN
    -- Conflicts with itself, not with reads and writes: two maintenance
    -- runs take turns per table.
    EXECUTE format('LOCK TABLE %s IN SHARE UPDATE EXCLUSIVE MODE', parent);
    SELECT array_agg(DISTINCT date_trunc('month', d)::date) INTO months
    FROM unnest(days) AS d
    WHERE NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = parent
                        AND i.inhrelid = to_regclass(format('flows.%I', flows.month_partition_name(tbl, d))));
    IF months IS NULL THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(months) AS m WHERE to_regclass(format('flows.%I', flows.month_partition_name(tbl, m))) IS NOT NULL) THEN
        RAISE EXCEPTION 'table %: a table named as one of its month partitions exists but is not one', parent USING ERRCODE = 'duplicate_table';
    END IF;
    FOR cover IN
        SELECT DISTINCT p.part, p.name, p.gap, p.lower, p.upper
        FROM flows.history_partitions(tbl) p JOIN unnest(months) AS m ON (p.lower IS NULL OR p.lower <= m::timestamp AT TIME ZONE 'UTC')
                                                                      AND (p.upper IS NULL OR p.upper > m::timestamp AT TIME ZONE 'UTC')
    LOOP
        -- Every bound is a month's start, so a gap holding a month's start
        -- holds the whole month.
        IF NOT cover.gap THEN
            RAISE EXCEPTION 'table %: partition % holds one of the months, and is not a gap partition', parent, cover.name
                USING ERRCODE = 'object_in_use';
        END IF;
        EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', parent, cover.part);
        covers := covers || cover.part;
    END LOOP;
    FOREACH month IN ARRAY months LOOP
        EXECUTE format('CREATE TABLE flows.%I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)', flows.month_partition_name(tbl, month), parent,
            month::timestamp AT TIME ZONE 'UTC', (month + interval '1 month')::timestamp AT TIME ZONE 'UTC');
    END LOOP;
    PERFORM flows.fill_partition_gaps(tbl);
    cols := flows.history_columns(parent);
    FOR i IN 1 .. coalesce(array_length(covers, 1), 0) LOOP
        EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM %s', parent, cols, cols, covers[i]);
        EXECUTE format('DROP TABLE %s', covers[i]);
    END LOOP;
    FOREACH month IN ARRAY months LOOP
        partition_name := flows.month_partition_name(tbl, month);
        moved := 0;
        IF covers IS NOT NULL THEN
            EXECUTE format('SELECT count(*) FROM flows.%I', partition_name) INTO moved;
        END IF;
        RETURN NEXT;
    END LOOP;
END $$;
COMMENT ON FUNCTION flows.create_month_partitions IS 'Creates a history table''s partitions <table>_pYYYYMM for the UTC months holding days, but those that exist, splitting the gap partitions that held them.';

-- The (UTC) months that have rows in tbl's gap partitions. Like every
-- maintenance step, it locks the table against other maintenance before
-- it reads: a run that read a gap partition and then waited for another
-- run would deadlock with that run's detaching it.
CREATE FUNCTION flows.gap_partition_months(tbl text) RETURNS SETOF date
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET "TimeZone" = 'UTC' AS $$
DECLARE
    parent regclass := flows.history_parent(tbl);
    p      record;
BEGIN
    EXECUTE format('LOCK TABLE %s IN SHARE UPDATE EXCLUSIVE MODE', parent);
    FOR p IN SELECT * FROM flows.history_partitions(tbl) WHERE gap LOOP
        RETURN QUERY EXECUTE format('SELECT DISTINCT date_trunc(''month'', "timestamp")::date FROM %s', p.part);
    END LOOP;
END $$;

-- Drops tbl's partitions that hold nothing at or after cutoff (upper bound
-- <= cutoff), monthly and (unless empty) gap partitions alike, oldest
-- first, returns their names, and covers the time before the oldest
-- remaining one with a gap partition again. Dropping a partition locks
-- the table (ACCESS EXCLUSIVE) until commit.
CREATE FUNCTION flows.drop_month_partitions(tbl text, cutoff timestamptz) RETURNS SETOF text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    parent regclass := flows.history_parent(tbl);
    parts   regclass[];
    names   text[];
    held    boolean;
    dropped boolean := false;
BEGIN
    EXECUTE format('LOCK TABLE %s IN SHARE UPDATE EXCLUSIVE MODE', parent);
    SELECT array_agg(part ORDER BY upper), array_agg(name ORDER BY upper) INTO parts, names
    FROM flows.history_partitions(tbl) WHERE upper <= cutoff;
    FOR i IN 1 .. coalesce(array_length(parts, 1), 0) LOOP
        -- An empty gap partition stays: it would only be made again.
        IF starts_with(names[i], tbl || '_gap_') THEN
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', parts[i]) INTO held;
            CONTINUE WHEN NOT held;
        END IF;
        EXECUTE format('DROP TABLE %s', parts[i]);
        dropped := true;
        RETURN NEXT names[i];
    END LOOP;
    IF dropped THEN
        PERFORM flows.fill_partition_gaps(tbl);
    END IF;
END $$;
COMMENT ON FUNCTION flows.drop_month_partitions IS 'Drops a history table''s partitions wholly before cutoff; returns their names.';

-- The conversion. Views over the history tables (the seed's
-- meter_last_online and the views on it, register_interval_hh_missing, any
-- an operator added) are bound to the table they were made on, not to its
-- name: they are saved here, dropped, and made again from their own
-- definitions once the tables are replaced, with their options, owner,
-- grants and comments.
CREATE TEMP TABLE history_views_0014 ON COMMIT DROP AS
WITH RECURSIVE dep(view, depth) AS (
    SELECT r.ev_class, 1
    FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
    WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND r.ev_class <> d.refobjid
      AND d.refobjid IN ('flows.meter_prepay_balance'::regclass, 'flows.meter_csq'::regclass, 'flows.meter_voltage'::regclass,
                         'flows.meter_3p_voltage'::regclass, 'flows.meter_health_history'::regclass, 'flows.register_import'::regclass,
                         'flows.register_export'::regclass, 'flows.meter_profile'::regclass, 'flows.register_interval_hh'::regclass)
    UNION ALL
    SELECT r.ev_class, dep.depth + 1
    FROM dep
    JOIN pg_depend d ON d.refobjid = dep.view AND d.refclassid = 'pg_class'::regclass AND d.classid = 'pg_rewrite'::regclass
    JOIN pg_rewrite r ON r.oid = d.objid
    WHERE r.ev_class <> dep.view)
SELECT c.oid, c.relkind, d.depth, format('%I.%I', n.nspname, c.relname) AS name,
       pg_get_viewdef(c.oid) AS def, c.reloptions, c.relowner, c.relacl, obj_description(c.oid, 'pg_class') AS comment,
       (SELECT array_agg(format('COMMENT ON COLUMN %I.%I.%I IS %L', n.nspname, c.relname, a.attname, col_description(c.oid, a.attnum)))
        FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND col_description(c.oid, a.attnum) IS NOT NULL) AS column_comments
FROM (SELECT view, max(depth) AS depth FROM dep GROUP BY view) d
JOIN pg_class c ON c.oid = d.view JOIN pg_namespace n ON n.oid = c.relnamespace;

-- Grants acl (as saved from pg_class.relacl) on rel again; the owner's
-- own rights come with ownership.
CREATE FUNCTION flows.regrant_0014(rel text, acl aclitem[], owner oid) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    g record;
BEGIN
    FOR g IN SELECT * FROM aclexplode(acl) WHERE grantee <> owner LOOP
        EXECUTE format('GRANT %s ON %s TO %s%s', g.privilege_type, rel,
            CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END,
            CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
END $$;

DO $$
DECLARE
    v record;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_temp.history_views_0014 WHERE relkind <> 'v') THEN
        RAISE EXCEPTION 'materialized view % reads a history table: drop it before this upgrade, and make it again after',
            (SELECT name FROM pg_temp.history_views_0014 WHERE relkind <> 'v' LIMIT 1);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_trigger t JOIN pg_temp.history_views_0014 hv ON hv.oid = t.tgrelid) THEN
        RAISE EXCEPTION 'a view over a history table has triggers: drop them before this upgrade, and make them again after';
    END IF;
    FOR v IN SELECT name FROM pg_temp.history_views_0014 ORDER BY depth DESC, name LOOP
        EXECUTE 'DROP VIEW ' || v.name;
    END LOOP;
END $$;

-- Replaces flows.<tbl> by a table partitioned by month with the same
-- columns (defaults, generated columns, NOT NULL, checks, comments, order),
-- keys, foreign keys, indexes, triggers, owner and grants, and its rows.
CREATE FUNCTION flows.partition_by_month_0014(tbl text, ahead integer) RETURNS void
LANGUAGE plpgsql SET "TimeZone" = 'UTC' SET "DateStyle" = 'ISO, YMD' AS $fn$
DECLARE
    old      regclass := format('flows.%I', tbl)::regclass;
    ddl      text[];     -- to run on the new table once it holds the rows
    owner    oid;
    acl      aclitem[];
    cols     text;
    months   date[];
    copied   bigint;
    had      bigint;
    s        text;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_constraint WHERE confrelid = old) THEN
        RAISE EXCEPTION 'table flows.%: a foreign key references it; drop it before this upgrade', tbl;
    END IF;
    SELECT relowner, relacl INTO owner, acl FROM pg_class WHERE oid = old;
    -- Taken before the rename: pg_get_indexdef and pg_get_triggerdef name
    -- the table as it is called now, which is what the new one is called.
    -- Keys first (before the foreign keys, to build once on the rows).
    SELECT array_agg(x ORDER BY ord) INTO ddl FROM (
        SELECT 1 AS ord, format('ALTER TABLE flows.%I ADD CONSTRAINT %I %s', tbl, conname, pg_get_constraintdef(oid)) AS x
        FROM pg_constraint WHERE conrelid = old AND contype IN ('p', 'u', 'x')
        UNION ALL
        SELECT 2, format('ALTER TABLE flows.%I ADD CONSTRAINT %I %s', tbl, conname, pg_get_constraintdef(oid))
        FROM pg_constraint WHERE conrelid = old AND contype = 'f'
        UNION ALL
        SELECT 3, pg_get_indexdef(i.indexrelid)
        FROM pg_index i WHERE i.indrelid = old AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = old)
        UNION ALL
        SELECT 4, pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = old AND NOT tgisinternal
        UNION ALL
        -- Comments LIKE does not copy: the table's, the keys' and the indexes'.
        SELECT 5, format('COMMENT ON TABLE flows.%I IS %L', tbl, obj_description(old, 'pg_class'))
        WHERE obj_description(old, 'pg_class') IS NOT NULL
        UNION ALL
        SELECT 5, format('COMMENT ON CONSTRAINT %I ON flows.%I IS %L', conname, tbl, obj_description(oid, 'pg_constraint'))
        FROM pg_constraint WHERE conrelid = old AND contype IN ('p', 'u', 'x', 'f') AND obj_description(oid, 'pg_constraint') IS NOT NULL
        UNION ALL
        SELECT 5, format('COMMENT ON INDEX flows.%I IS %L', c.relname, obj_description(c.oid, 'pg_class'))
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = old AND obj_description(c.oid, 'pg_class') IS NOT NULL
        UNION ALL
        SELECT 6, format('ALTER PUBLICATION %I ADD TABLE flows.%I', p.pubname, tbl)
        FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid WHERE r.prrelid = old
    ) d;

    EXECUTE format('ALTER TABLE flows.%I RENAME TO %I', tbl, tbl || '_unpartitioned');
    -- Free the key and index names for the new table.
    FOR s IN SELECT conname FROM pg_constraint WHERE conrelid = old AND contype IN ('p', 'u', 'x') LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', old, s);
    END LOOP;
    FOR s IN SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = old LOOP
        EXECUTE 'DROP INDEX ' || s;
    END LOOP;
    EXECUTE format('CREATE TABLE flows.%I (LIKE %s INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING CONSTRAINTS INCLUDING COMMENTS'
        ' INCLUDING STORAGE INCLUDING COMPRESSION INCLUDING STATISTICS) PARTITION BY RANGE ("timestamp")', tbl, old);
    EXECUTE format('SELECT array_agg(m) FROM (SELECT DISTINCT date_trunc(''month'', "timestamp")::date FROM %s
            UNION SELECT generate_series(date_trunc(''month'', now()), date_trunc(''month'', now()) + make_interval(months => $1), interval ''1 month'')::date) AS x(m)',
        old) INTO months USING ahead;
    PERFORM flows.create_month_partitions(tbl, months);

    cols := flows.history_columns(old);
    EXECUTE format('INSERT INTO flows.%I (%s) SELECT %s FROM %s', tbl, cols, cols, old);
    GET DIAGNOSTICS copied = ROW_COUNT;
    EXECUTE 'SELECT count(*) FROM ' || old INTO had;
    IF copied <> had THEN
        RAISE EXCEPTION 'table flows.%: copied % of % rows', tbl, copied, had;
    END IF;
    FOREACH s IN ARRAY coalesce(ddl, '{}') LOOP
        EXECUTE s;
    END LOOP;
    EXECUTE format('ALTER TABLE flows.%I OWNER TO %I', tbl, pg_get_userbyid(owner));
    PERFORM flows.regrant_0014(format('flows.%I', tbl), acl, owner);
    -- Without CASCADE: anything else still bound to the old table (a
    -- function's row type, a BEGIN ATOMIC body) stops the upgrade here.
    EXECUTE 'DROP TABLE ' || old;
    -- Autovacuum never analyzes a partitioned table itself (its
    -- partitions, yes): the planner has statistics from the start.
    EXECUTE format('ANALYZE flows.%I', tbl);
END $fn$;

SELECT flows.partition_by_month_0014(t, 3)
FROM unnest(ARRAY['meter_prepay_balance', 'meter_csq', 'meter_voltage', 'meter_3p_voltage', 'meter_health_history',
                  'register_import', 'register_export', 'meter_profile', 'register_interval_hh']) AS t;

DO $$
DECLARE
    v record;
    s text;
BEGIN
    FOR v IN SELECT * FROM pg_temp.history_views_0014 ORDER BY depth, name LOOP
        EXECUTE format('CREATE VIEW %s%s AS %s', v.name,
            CASE WHEN v.reloptions IS NULL THEN '' ELSE ' WITH (' || array_to_string(v.reloptions, ', ') || ')' END, v.def);
        EXECUTE format('ALTER VIEW %s OWNER TO %I', v.name, pg_get_userbyid(v.relowner));
        PERFORM flows.regrant_0014(v.name, v.relacl, v.relowner);
        IF v.comment IS NOT NULL THEN
            EXECUTE format('COMMENT ON VIEW %s IS %L', v.name, v.comment);
        END IF;
        FOREACH s IN ARRAY coalesce(v.column_comments, '{}') LOOP
            EXECUTE s;
        END LOOP;
    END LOOP;
END $$;

DROP FUNCTION flows.partition_by_month_0014(text, integer);
DROP FUNCTION flows.regrant_0014(text, aclitem[], oid);
DROP TABLE pg_temp.history_views_0014;
