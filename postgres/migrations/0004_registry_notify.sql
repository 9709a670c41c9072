-- Tell listeners (mediators) when a meter is added, removed, or changes
-- address, mode or ESCO, so they serve the new registry at once.
CREATE FUNCTION flows.meter_registry_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('flows_registry', coalesce(NEW.serial, OLD.serial));
    RETURN NULL;
END $$;
CREATE TRIGGER meter_registry_notify AFTER INSERT OR DELETE OR UPDATE OF serial, ip_address, port, mode, esco
    ON flows.meter_registry FOR EACH ROW EXECUTE FUNCTION flows.meter_registry_notify();
