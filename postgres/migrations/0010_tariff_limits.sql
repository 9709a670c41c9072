-- Operator limits on a requested tariff (flows.Tariff.ValidateRequest
-- applies the same): emergency credit and its availability at most £250,
-- debt recovery at most £50 a day, activation at most five years ahead.
-- They sit below what a meter's u32 can carry (£42 949.67295): past them
-- an amount is a typing mistake, and a tariff that cannot be encoded must
-- never reach a meter half-written.
CREATE OR REPLACE FUNCTION flows.tariff_check(t jsonb, prefix text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    k text;
    v numeric;
BEGIN
    FOREACH k IN ARRAY ARRAY['standing_charge', 'unit_rate_element_a', 'unit_rate_element_b',
                             'prepayment_emergency_credit', 'prepayment_ecredit_availability', 'prepayment_debt_recovery_rate'] LOOP
        v := flows.tariff_amount(t, k);
        IF v IS NULL THEN
            RAISE EXCEPTION '%.%: required (a decimal amount)', prefix, k USING ERRCODE = 'check_violation';
        END IF;
        IF v < 0 THEN
            RAISE EXCEPTION '%.%: must not be negative', prefix, k USING ERRCODE = 'check_violation';
        END IF;
        IF scale(v) > 5 AND v <> round(v, 5) THEN
            RAISE EXCEPTION '%.%: % has more than 5 decimal places', prefix, k, v USING ERRCODE = 'check_violation';
        END IF;
        IF k IN ('standing_charge', 'unit_rate_element_a', 'unit_rate_element_b') AND v > 1 THEN
            RAISE EXCEPTION '%.%: % is above the meter maximum of 1.00000', prefix, k, v USING ERRCODE = 'check_violation';
        END IF;
        IF k IN ('prepayment_emergency_credit', 'prepayment_ecredit_availability') AND v > 250 THEN
            RAISE EXCEPTION '%.%: % is above the limit of 250', prefix, k, v USING ERRCODE = 'check_violation';
        END IF;
        IF k = 'prepayment_debt_recovery_rate' AND v > 50 THEN
            RAISE EXCEPTION '%.%: % is above the limit of 50', prefix, k, v USING ERRCODE = 'check_violation';
        END IF;
    END LOOP;
    IF t ->> 'activation_datetime' IS NULL THEN
        RAISE EXCEPTION '%.activation_datetime: required', prefix USING ERRCODE = 'check_violation';
    END IF;
    IF flows.activation_instant(t ->> 'activation_datetime', false) > now() + interval '5 years' THEN
        RAISE EXCEPTION '%.activation_datetime: % is more than five years ahead', prefix, t ->> 'activation_datetime'
            USING ERRCODE = 'check_violation';
    END IF;
END $$;
