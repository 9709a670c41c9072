-- Event types the Flows meter simulator logs that the reference's list does
-- not name. They sit in the reference enum's gap (45-60), so they cannot
-- clash with types real meters report; the names say they are ours.
INSERT INTO flows.meter_event_log_type (id, name) VALUES
 (45, 'SIM_CLOCK_SET'),
 (46, 'SIM_TARIFF_ACTIVATED'),
 (47, 'SIM_EMERGENCY_CREDIT_ACTIVATED'),
 (49, 'SIM_SUPPLY_DISCONNECTED'),
 (50, 'SIM_SUPPLY_RECONNECTED');
