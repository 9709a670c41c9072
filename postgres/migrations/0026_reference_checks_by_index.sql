-- The statement-level reference checks of 0019 (meter_profile → meter
-- registry) and 0024 (register_interval_hh → meter_registers) look their
-- referenced rows up one by one by primary key, same meaning (issue 16:
-- the hot statements checked for whole-table reads).
--
-- Written as a join of the statement's transition table with the whole
-- referenced table, they were planned without statistics for the
-- transition table and read the registry whole: two sequential scans of
-- meter_registry for every sync that stored a profile, which at 100,000
-- meters is most of a sync's database time. A statement writes one
-- meter's or a few registers' rows, so a loop of index probes is the
-- plan; each probe checks and locks (FOR KEY SHARE, as the foreign key
-- did) in one, in id order so two writers lock in the same order.

CREATE OR REPLACE FUNCTION flows.meter_profile_meter_exists() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, flows, pg_temp AS $$
DECLARE
    m uuid;
BEGIN
    FOR m IN SELECT DISTINCT meter_id FROM new_rows ORDER BY 1 LOOP
        PERFORM 1 FROM flows.meter_registry r WHERE r.id = m FOR KEY SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'insert or update on table "meter_profile" violates foreign key constraint "meter_profile_meter_id_fkey"'
                USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'meter_profile_meter_id_fkey', TABLE = 'meter_profile', SCHEMA = 'flows',
                      DETAIL = format('Key (meter_id)=(%s) is not present in table "meter_registry".', m);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION flows.register_interval_hh_register_exists() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, flows, pg_temp AS $$
DECLARE
    reg uuid;
BEGIN
    FOR reg IN SELECT DISTINCT register_id FROM new_rows ORDER BY 1 LOOP
        PERFORM 1 FROM flows.meter_registers r WHERE r.register_id = reg FOR KEY SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'insert or update on table "register_interval_hh" violates foreign key constraint "register_interval_hh_register_id_fkey"'
                USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'register_interval_hh_register_id_fkey',
                      TABLE = 'register_interval_hh', SCHEMA = 'flows',
                      DETAIL = format('Key (register_id)=(%s) is not present in table "meter_registers".', reg);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;
