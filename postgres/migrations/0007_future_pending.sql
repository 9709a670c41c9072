-- A meter with no tariff change scheduled still reports a future tariff:
-- its last one, or zeros with the EMOP epoch (2000-01-01T00:00:00) as its
-- activation. The shadow keeps what the meter reports; this column says
-- whether that is a change still to come. The seed's columns are unchanged
-- (listed, as 0001's ms.* expanded to), future_pending is added at the end.
CREATE OR REPLACE VIEW flows.meter_shadows_tariffs AS
SELECT ms.id, ms.balance, ms.emergency_credit, ms.balance_updated_at, ms.tariffs_active, ms.tariffs_future,
       ms.csq, ms.network_operator, ms.health, ms.health_details, ms.last_healthy_at, ms.clock_time_diff_seconds,
       ms.clock_time_diff_synced_at, ms.voltage, ms."3p_voltage_l1", ms."3p_voltage_l2", ms."3p_voltage_l3",
       ms.import_a, ms.import_b, ms.export_a, ms.export_b, ms.backlight, ms.load_switch, ms.created_at, ms.updated_at,
       mr.serial,
       mr.name,
       mr.esco,
       flows.tariff_amount(ms.tariffs_active, 'standing_charge')                 AS active_standing_charge,
       flows.tariff_amount(ms.tariffs_active, 'unit_rate_element_a')             AS active_unit_rate_a,
       flows.tariff_amount(ms.tariffs_active, 'unit_rate_element_b')             AS active_unit_rate_b,
       flows.tariff_amount(ms.tariffs_active, 'prepayment_ecredit_availability') AS active_ecredit_availability,
       flows.tariff_amount(ms.tariffs_active, 'prepayment_debt_recovery_rate')   AS active_debt_recovery_rate,
       flows.tariff_amount(ms.tariffs_active, 'prepayment_emergency_credit')     AS active_emergency_credit,
       flows.tariff_amount(ms.tariffs_future, 'standing_charge')                 AS future_standing_charge,
       flows.tariff_amount(ms.tariffs_future, 'unit_rate_element_a')             AS future_unit_rate_a,
       flows.tariff_amount(ms.tariffs_future, 'unit_rate_element_b')             AS future_unit_rate_b,
       flows.tariff_amount(ms.tariffs_future, 'prepayment_ecredit_availability') AS future_ecredit_availability,
       flows.tariff_amount(ms.tariffs_future, 'prepayment_debt_recovery_rate')   AS future_debt_recovery_rate,
       flows.tariff_amount(ms.tariffs_future, 'prepayment_emergency_credit')     AS future_emergency_credit,
       flows.activation_instant(ms.tariffs_future ->> 'activation_datetime', mr.daylight_savings_correction_enabled)
           AT TIME ZONE (CASE WHEN mr.daylight_savings_correction_enabled THEN 'Europe/London' ELSE 'UTC' END)
                                                                                 AS future_activation_datetime,
       flows.activation_instant(ms.tariffs_future ->> 'activation_datetime', mr.daylight_savings_correction_enabled)
                                                                                 AS future_activation_at,
       coalesce(flows.activation_instant(ms.tariffs_future ->> 'activation_datetime', mr.daylight_savings_correction_enabled) > now(), false)
                                                                                 AS future_pending
FROM flows.meter_shadows ms
JOIN flows.meter_registry mr ON mr.id = ms.id;
COMMENT ON COLUMN flows.meter_shadows_tariffs.future_pending IS 'True when the future tariff the meter reports activates after now: a change is scheduled. False for the last change (already active) or the EMOP epoch a meter reports when none is.';
