-- register_interval_hh's reference to its register, checked per statement
-- (issue 14's backfill rate), same meaning.
--
-- A backfill derives a month of a meter's half hours in one statement, and
-- the per-row foreign-key check (an index probe and a row lock on the same
-- register for each of ~1,440 rows) was a quarter of a meter-month's
-- derivation. As 0019 did for meter_profile: a statement trigger checks
-- that every register the statement wrote exists, with the constraint's
-- name and message, and locks them FOR KEY SHARE as the foreign key did (a
-- register cannot be deleted under a write); deleting a register, or its
-- meter, still deletes its intervals; changing a register's id while it
-- has intervals is refused, as the foreign key's NO ACTION did.

ALTER TABLE flows.register_interval_hh DROP CONSTRAINT register_interval_hh_register_id_fkey;

CREATE FUNCTION flows.register_interval_hh_register_exists() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, flows, pg_temp AS $$
DECLARE
    missing uuid;
BEGIN
    SELECT n.register_id INTO missing FROM (SELECT DISTINCT register_id FROM new_rows) n
    WHERE NOT EXISTS (SELECT 1 FROM flows.meter_registers r WHERE r.register_id = n.register_id)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'insert or update on table "register_interval_hh" violates foreign key constraint "register_interval_hh_register_id_fkey"'
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'register_interval_hh_register_id_fkey',
                  TABLE = 'register_interval_hh', SCHEMA = 'flows',
                  DETAIL = format('Key (register_id)=(%s) is not present in table "meter_registers".', missing);
    END IF;
    PERFORM 1 FROM flows.meter_registers r WHERE r.register_id IN (SELECT DISTINCT register_id FROM new_rows) FOR KEY SHARE;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION flows.register_interval_hh_register_exists IS 'register_interval_hh.register_id references meter_registers(register_id), checked once per statement.';

CREATE TRIGGER register_interval_hh_register_exists_insert AFTER INSERT ON flows.register_interval_hh
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION flows.register_interval_hh_register_exists();
CREATE TRIGGER register_interval_hh_register_exists_update AFTER UPDATE ON flows.register_interval_hh
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION flows.register_interval_hh_register_exists();

-- ON DELETE CASCADE, kept (a meter's deletion cascades to its registers,
-- and from them here).
CREATE FUNCTION flows.meter_registers_delete_intervals() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, flows, pg_temp AS $$
BEGIN
    DELETE FROM flows.register_interval_hh i USING old_rows o WHERE i.register_id = o.register_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER meter_registers_delete_intervals AFTER DELETE ON flows.meter_registers
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION flows.meter_registers_delete_intervals();

-- ON UPDATE NO ACTION, kept: a register's id does not change under its
-- intervals.
CREATE FUNCTION flows.meter_registers_keep_interval_ids() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, flows, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM flows.register_interval_hh i WHERE i.register_id = OLD.register_id) THEN
        RAISE EXCEPTION 'update or delete on table "meter_registers" violates foreign key constraint "register_interval_hh_register_id_fkey" on table "register_interval_hh"'
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'register_interval_hh_register_id_fkey',
                  TABLE = 'meter_registers', SCHEMA = 'flows',
                  DETAIL = format('Key (register_id)=(%s) is still referenced from table "register_interval_hh".', OLD.register_id);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER meter_registers_keep_interval_ids AFTER UPDATE OF register_id ON flows.meter_registers
    FOR EACH ROW WHEN (OLD.register_id IS DISTINCT FROM NEW.register_id) EXECUTE FUNCTION flows.meter_registers_keep_interval_ids();
