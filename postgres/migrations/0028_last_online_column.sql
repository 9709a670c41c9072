-- The fleet page sorted by last online (issue 17: 100,000 meters, first
-- page < 300 ms). meter_last_online finds each meter's newest non-NULL csq
-- row, one probe per meter across every history partition: about a second
-- for the whole fleet, every time the page is sorted by it. The shadow now
-- keeps that instant as the csq history is written (the history trigger
-- writes the row at NEW.updated_at, and only it writes meter_csq), so the
-- page reads and sorts a column, as it sorts by balance (a top-N sort of
-- the joined fleet, tens of milliseconds: no index is needed, and none
-- costs every sync a write). The spec's views still read the history.
ALTER TABLE flows.meter_shadows ADD COLUMN last_online_at timestamptz;
COMMENT ON COLUMN flows.meter_shadows.last_online_at IS 'When the meter last answered: the newest non-NULL csq written (meter_last_online''s rule), kept as the csq history is written.';

CREATE FUNCTION flows.meter_shadows_last_online() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.csq IS NOT NULL THEN
        -- greatest ignores NULL: the first answer sets it; an older
        -- observation (a replica catching up out of order) does not move
        -- it back.
        NEW.last_online_at := greatest(OLD.last_online_at, NEW.updated_at);
    END IF;
    RETURN NEW;
END $$;
-- After meter_shadows_10_updated_at (BEFORE triggers fire in name order).
CREATE TRIGGER meter_shadows_35_last_online BEFORE UPDATE OF csq ON flows.meter_shadows
    FOR EACH ROW EXECUTE FUNCTION flows.meter_shadows_last_online();

-- Filled from the history, leaving updated_at (the last observation)
-- alone: the trigger that stamps it is off for the fill.
ALTER TABLE flows.meter_shadows DISABLE TRIGGER meter_shadows_10_updated_at;
UPDATE flows.meter_shadows ms SET last_online_at = lo.last_online
FROM flows.meter_last_online lo WHERE lo.id = ms.id AND lo.last_online IS NOT NULL;
ALTER TABLE flows.meter_shadows ENABLE TRIGGER meter_shadows_10_updated_at;
