-- Three-phase meters (P1.ax whole current, P1.cx CT-operated; issue 15).
--
-- Their own syncers: L1..L3 voltages into "3p_voltage_l1..3" (history in
-- meter_3p_voltage through the trigger of 0001) and the active import and
-- export totals into import_a / export_a (the reference wrote export into
-- import_b). The syncers that read single-phase objects skip them, by the
-- syncer table (flows.Syncers), as these skip single-phase meters.
INSERT INTO flows.meter_metrics (name, run_frequency, notes) VALUES
 ('SyncerThreePhaseVoltage', 'hourly', 'three-phase L1, L2, L3 voltages'),
 ('SyncerThreePhaseReads', 'hourly', 'three-phase active import and export totals (kWh, scaled by the meter type)');

COMMENT ON COLUMN flows.meter_shadows."3p_voltage_l1" IS 'Volts, L1 of a three-phase meter, one decimal place.';
COMMENT ON COLUMN flows.meter_shadows."3p_voltage_l2" IS 'Volts, L2 of a three-phase meter; kept from the last good read when a read of L2 fails.';
COMMENT ON COLUMN flows.meter_shadows."3p_voltage_l3" IS 'Volts, L3 of a three-phase meter; kept from the last good read when a read of L3 fails.';

-- Tariffs on three-phase meters: the reference reads neither the active
-- nor the future tariff, nor the balance or the prepay flag, of a
-- three-phase meter, and flips only single-phase meters to credit mode:
-- three-phase meters are credit meters. So Flows refuses a future tariff
-- on one, saying why, rather than queueing a push the meter would refuse.
-- The function is 0008's with that message (and the reference's older
-- hardware codes AX and CX).
CREATE OR REPLACE FUNCTION flows.tariffs_future_request() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    m flows.meter_registry;
    at timestamptz;
BEGIN
    IF current_setting('flows.writer', true) IN ('sync', 'replica') OR NEW.tariffs_future IS NULL
       OR NEW.tariffs_future IS NOT DISTINCT FROM OLD.tariffs_future THEN
        RETURN NEW;
    END IF;
    SELECT * INTO m FROM flows.meter_registry WHERE id = NEW.id;
    IF m.mode <> 'active' THEN
        RAISE EXCEPTION 'tariffs_future: meter % is passive; set its tariff where it is active', m.serial USING ERRCODE = 'check_violation';
    END IF;
    IF m.hardware IN ('P1.ax', 'P1.cx', 'AX', 'CX', 'THREE_PHASE_UNKNOWN') THEN
        RAISE EXCEPTION 'tariffs_future: meter % is a three-phase meter (%): three-phase meters are credit meters with no prepayment tariff to set (Flows, like the reference platform, neither reads nor writes tariffs on them)',
            m.serial, m.hardware USING ERRCODE = 'check_violation';
    END IF;
    PERFORM flows.tariff_check(NEW.tariffs_future, 'tariffs_future');
    at := flows.activation_instant(NEW.tariffs_future ->> 'activation_datetime', m.daylight_savings_correction_enabled);
    IF at <= now() THEN
        RAISE EXCEPTION 'tariffs_future.activation_datetime: % is not in the future', NEW.tariffs_future ->> 'activation_datetime'
            USING ERRCODE = 'check_violation';
    END IF;
    IF at < now() + interval '24 hours' THEN
        RAISE WARNING 'tariffs_future.activation_datetime: less than 24 hours ahead; the meter may not be reached in time';
    END IF;
    UPDATE flows.tariff_requests SET status = 'superseded', updated_at = now()
    WHERE meter_id = NEW.id AND status IN ('pending', 'sending', 'sent', 'verified');
    INSERT INTO flows.tariff_requests (meter_id, tariff, activation_at, source, rollout_id, next_attempt_at)
    VALUES (NEW.id, NEW.tariffs_future, at, coalesce(nullif(current_setting('flows.request_source', true), ''), 'sql'),
            nullif(current_setting('flows.rollout_id', true), '')::uuid,
            coalesce(nullif(current_setting('flows.not_before', true), '')::timestamptz, now()));
    RETURN NEW;
END $$;
