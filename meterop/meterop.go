// Package meterop holds operations on one meter that take several EMOP
// requests: reading a tariff, the future-tariff write sequence, sending a
// token. The sync engine, the emop command line and the command pushers
// share them, over any transport (in-process or through a mediator).
package meterop

import (
	"context"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
	"github.com/shopspring/decimal"
)

// Meters reaches meters: meterconn.Client, or a mediator client.
type Meters interface {
	Read(ctx context.Context, t meterconn.Target, id emop.ObjectID) ([]byte, error)
	Write(ctx context.Context, t meterconn.Target, id emop.ObjectID, payload []byte) error
	Raw(ctx context.Context, t meterconn.Target, data []byte) ([]byte, error)
}

// Reader is the read-only part of Meters.
type Reader interface {
	Read(ctx context.Context, t meterconn.Target, id emop.ObjectID) ([]byte, error)
}

// Money reads a u32 amount.
func Money(ctx context.Context, m Reader, t meterconn.Target, id emop.ObjectID) (*decimal.Decimal, error) {
	p, err := m.Read(ctx, t, id)
	if err != nil {
		return nil, err
	}
	d, err := emop.DecodeMoney(p)
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// U8 reads a one-byte value.
func U8(ctx context.Context, m Reader, t meterconn.Target, id emop.ObjectID) (uint8, error) {
	p, err := m.Read(ctx, t, id)
	if err != nil {
		return 0, err
	}
	return emop.DecodeU8(p)
}

type tariffIDs struct{ sc, mask, values, rateA, rateB, ec, eca, drr emop.ObjectID }

var (
	activeIDs = tariffIDs{emop.ObjActiveStandingCharge, emop.ObjActiveThresholdMask, emop.ObjActiveThresholdValues, emop.ObjActivePrice,
		emop.ObjActiveElementBPrice, emop.ObjActiveEmergencyCredit, emop.ObjActiveECreditAvailability, emop.ObjActiveDebtRecoveryRate}
	futureIDs = tariffIDs{emop.ObjFutureStandingCharge, emop.ObjFutureThresholdMask, emop.ObjFutureThresholdValues, emop.ObjFutureBlock8Rate1,
		emop.ObjFutureElementBTouRate1, emop.ObjFutureEmergencyCredit, emop.ObjFutureECreditAvailability, emop.ObjFutureDebtRecoveryRate}
)

// ReadTariff reads the active or future tariff into the seed's JSON shape.
// A future tariff's activation_datetime is the meter's clock time without
// an offset, as the reference writes it.
func ReadTariff(ctx context.Context, m Reader, t meterconn.Target, future bool) (*flows.Tariff, error) {
	ids := activeIDs
	if future {
		ids = futureIDs
	}
	var tf flows.Tariff
	var err error
	for _, f := range []struct {
		id  emop.ObjectID
		dst **decimal.Decimal
	}{{ids.sc, &tf.StandingCharge}, {ids.rateA, &tf.UnitRateElementA}, {ids.rateB, &tf.UnitRateElementB},
		{ids.ec, &tf.PrepaymentEmergencyCredit}, {ids.eca, &tf.PrepaymentECreditAvailability}, {ids.drr, &tf.PrepaymentDebtRecoveryRate}} {
		if *f.dst, err = Money(ctx, m, t, f.id); err != nil {
			return nil, err
		}
	}
	p, err := m.Read(ctx, t, ids.mask)
	if err != nil {
		return nil, err
	}
	mask, err := emop.DecodeThresholdMask(p)
	if err != nil {
		return nil, err
	}
	tf.ThresholdMask = mask.Map()
	if p, err = m.Read(ctx, t, ids.values); err != nil {
		return nil, err
	}
	vals, err := emop.DecodeThresholdValues(p)
	if err != nil {
		return nil, err
	}
	tf.ThresholdValues = vals.Map()
	if future {
		p, err := m.Read(ctx, t, emop.ObjFutureActivation)
		if err != nil {
			return nil, err
		}
		at, err := emop.DecodeEpoch(p)
		if err != nil {
			return nil, err
		}
		s := at.Format("2006-01-02T15:04:05")
		tf.ActivationDatetime = &s
		return &tf, nil
	}
	if v, err := U8(ctx, m, t, emop.ObjActiveBlockRate); err == nil {
		n := int(v)
		tf.BlockRate = &n
	}
	if v, err := U8(ctx, m, t, emop.ObjActiveElementBTouRate); err == nil {
		n := int(v)
		tf.ElementBTouRate = &n
	}
	return &tf, nil
}

// FutureTariff is what the future-tariff write sets. Every amount is
// required; ActivationWall is the activation in the meter's own clock
// (UTC, or UK local time for DST-corrected meters): convert an instant
// with flows.MeterClockZone first.
type FutureTariff struct {
	StandingCharge      decimal.Decimal
	UnitRateA           decimal.Decimal
	UnitRateB           decimal.Decimal
	EmergencyCredit     decimal.Decimal
	ECreditAvailability decimal.Decimal
	DebtRecoveryRate    decimal.Decimal
	ActivationWall      time.Time
}

// Validate checks every amount before anything is sent: rates and standing
// charge at most £1 with 5 decimal places; emergency-credit amounts not
// negative, 5 places. Errors are EINVALID naming the field.
func (f FutureTariff) Validate() error {
	for _, r := range []struct {
		name string
		v    decimal.Decimal
	}{{"standing_charge", f.StandingCharge}, {"unit_rate_element_a", f.UnitRateA}, {"unit_rate_element_b", f.UnitRateB}} {
		if err := flows.ValidateRate(r.name, r.v); err != nil {
			return err
		}
	}
	for _, r := range []struct {
		name string
		v    decimal.Decimal
	}{{"prepayment_emergency_credit", f.EmergencyCredit}, {"prepayment_ecredit_availability", f.ECreditAvailability}, {"prepayment_debt_recovery_rate", f.DebtRecoveryRate}} {
		if r.v.IsNegative() {
			return flows.FieldError(r.name, "must not be negative")
		}
		if err := flows.ValidatePlaces(r.name, r.v); err != nil {
			return err
		}
	}
	if _, err := emop.EncodeEpoch(f.ActivationWall); err != nil {
		return flows.FieldError("activation_datetime", "%v", err)
	}
	return nil
}

// Write is one step of a write sequence.
type Write struct {
	Object  emop.ObjectID
	Payload []byte
}

// FutureTariffWrites returns the reference's future-tariff write sequence
// (emop-protocol.md A.13), with element B's rate written separately.
func FutureTariffWrites(f FutureTariff) ([]Write, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	// Every object is encoded before the first is sent: a value that
	// cannot be encoded must not leave the meter half-written.
	enc := map[string][]byte{}
	for _, a := range []struct {
		field string
		v     decimal.Decimal
	}{{"unit_rate_element_a", f.UnitRateA}, {"unit_rate_element_b", f.UnitRateB}, {"prepayment_emergency_credit", f.EmergencyCredit},
		{"prepayment_ecredit_availability", f.ECreditAvailability}, {"prepayment_debt_recovery_rate", f.DebtRecoveryRate},
		{"standing_charge", f.StandingCharge}} {
		b, err := emop.EncodeMoney(a.v)
		if err != nil {
			return nil, flows.FieldError(a.field, "%v", err)
		}
		enc[a.field] = b
	}
	act, err := emop.EncodeEpoch(f.ActivationWall)
	if err != nil {
		return nil, flows.FieldError("activation_datetime", "%v", err)
	}
	return []Write{
		{emop.ObjFutureThresholdMask, []byte{0}},
		{emop.ObjFutureThresholdValues, make([]byte, 14)},
		{emop.ObjFutureTouFlag, []byte{0}},
		{emop.ObjFutureBlock8Rate1, enc["unit_rate_element_a"]},
		{emop.ObjFutureElementBTouRate1, enc["unit_rate_element_b"]},
		{emop.ObjFutureEmergencyCredit, enc["prepayment_emergency_credit"]},
		{emop.ObjFutureECreditAvailability, enc["prepayment_ecredit_availability"]},
		{emop.ObjFutureDebtRecoveryRate, enc["prepayment_debt_recovery_rate"]},
		{emop.ObjFutureGas, make([]byte, 4)},
		{emop.ObjFutureStandingCharge, enc["standing_charge"]},
		{emop.ObjFutureActivation, act},
	}, nil
}

// WriteFutureTariff validates f and writes the sequence.
func WriteFutureTariff(ctx context.Context, m Meters, t meterconn.Target, f FutureTariff) error {
	ws, err := FutureTariffWrites(f)
	if err != nil {
		return err
	}
	for _, w := range ws {
		if err := m.Write(ctx, t, w.Object, w.Payload); err != nil {
			return err
		}
	}
	return nil
}

// SendToken validates and sends a 20-digit top-up token.
func SendToken(ctx context.Context, m Meters, t meterconn.Target, token string) error {
	p, err := emop.EncodeToken(token)
	if err != nil {
		return flows.FieldError("token", "must be 20 digits")
	}
	return m.Write(ctx, t, emop.ObjTokenSend, p)
}

// Balance reads the prepay balance.
func Balance(ctx context.Context, m Reader, t meterconn.Target) (decimal.Decimal, error) {
	p, err := m.Read(ctx, t, emop.ObjPrepayBalance)
	if err != nil {
		return decimal.Decimal{}, err
	}
	return emop.DecodeBalance(p)
}
