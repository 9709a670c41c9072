package flows

import (
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Tariff is a meter tariff in the JSON shape of meter_shadows.tariffs_active
// and tariffs_future (the seed's shape, plus the threshold fields meters
// report). Amounts are GBP decimals; they marshal as decimal strings, and
// unmarshal from strings or numbers.
type Tariff struct {
	StandingCharge                *decimal.Decimal `json:"standing_charge"`
	UnitRateElementA              *decimal.Decimal `json:"unit_rate_element_a"`
	UnitRateElementB              *decimal.Decimal `json:"unit_rate_element_b"`
	PrepaymentECreditAvailability *decimal.Decimal `json:"prepayment_ecredit_availability"`
	PrepaymentDebtRecoveryRate    *decimal.Decimal `json:"prepayment_debt_recovery_rate"`
	PrepaymentEmergencyCredit     *decimal.Decimal `json:"prepayment_emergency_credit"`
	// ActivationDatetime is RFC 3339, or without an offset
	// ("2024-10-01T00:00:00") meaning the meter's own clock time.
	ActivationDatetime *string        `json:"activation_datetime,omitempty"`
	ThresholdMask      map[string]int `json:"threshold_mask,omitempty"`
	ThresholdValues    map[string]int `json:"threshold_values,omitempty"`
	BlockRate          *int           `json:"block_rate,omitempty"`
	ElementBTouRate    *int           `json:"element_b_tou_rate,omitempty"`
}

// MaxRate is the largest unit rate or standing charge a meter accepts (£1),
// as the reference's valid_rate check enforces.
var MaxRate = decimal.NewFromInt(1)

// MoneyPlaces is the number of decimal places a meter stores (GBP × 100 000).
const MoneyPlaces = 5

// ValidateRate returns an EINVALID error naming field when d is negative,
// above £1 or has more than 5 decimal places.
func ValidateRate(field string, d decimal.Decimal) error {
	if d.IsNegative() {
		return FieldError(field, "must not be negative")
	}
	if d.GreaterThan(MaxRate) {
		return FieldError(field, "%s is above the meter maximum of 1.00000", d.String())
	}
	return ValidatePlaces(field, d)
}

// ValidatePlaces returns an EINVALID error naming field when d has more than
// 5 decimal places (a meter cannot store it exactly).
func ValidatePlaces(field string, d decimal.Decimal) error {
	if !d.Equal(d.Truncate(MoneyPlaces)) {
		return FieldError(field, "%s has more than %d decimal places", d.String(), MoneyPlaces)
	}
	return nil
}

// ValidateAmounts checks the money fields of t: rates and standing charge at
// most £1 with 5 decimal places; emergency-credit amounts non-negative with 5
// places. prefix is prepended to the field name ("tariffs_future.").
func (t *Tariff) ValidateAmounts(prefix string) error {
	if prefix != "" && !strings.HasSuffix(prefix, ".") {
		prefix += "."
	}
	for _, r := range []struct {
		name string
		v    *decimal.Decimal
	}{
		{"standing_charge", t.StandingCharge},
		{"unit_rate_element_a", t.UnitRateElementA},
		{"unit_rate_element_b", t.UnitRateElementB},
	} {
		if r.v != nil {
			if err := ValidateRate(prefix+r.name, *r.v); err != nil {
				return err
			}
		}
	}
	for _, r := range []struct {
		name string
		v    *decimal.Decimal
	}{
		{"prepayment_ecredit_availability", t.PrepaymentECreditAvailability},
		{"prepayment_debt_recovery_rate", t.PrepaymentDebtRecoveryRate},
		{"prepayment_emergency_credit", t.PrepaymentEmergencyCredit},
	} {
		if r.v != nil {
			if r.v.IsNegative() {
				return FieldError(prefix+r.name, "must not be negative")
			}
			if err := ValidatePlaces(prefix+r.name, *r.v); err != nil {
				return err
			}
		}
	}
	if t.ActivationDatetime != nil {
		if _, _, err := ParseActivation(*t.ActivationDatetime); err != nil {
			return FieldError(prefix+"activation_datetime", "%v", err)
		}
	}
	return nil
}

// ParseActivation parses an activation datetime. It returns the time and
// whether it carried an offset: without one ("2024-10-01T00:00:00") the
// value is the meter's clock time, to be interpreted with MeterClockZone.
func ParseActivation(s string) (t time.Time, hasOffset bool, err error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		// Real offsets lie within ±14:00 (PostgreSQL refuses past ±15:59).
		if _, off := t.Zone(); off > 14*3600 || off < -14*3600 {
			return time.Time{}, false, Errorf(EINVALID, "%q has an offset beyond ±14:00", s)
		}
		return t.UTC(), true, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, false, nil
		}
	}
	return time.Time{}, false, Errorf(EINVALID, "%q is not an RFC 3339 datetime", s)
}

// ukZone is the UK civil time zone, used for meters whose daylight-savings
// correction is enabled. Loaded once; the Go distribution embeds tzdata
// through the time/tzdata import in cmd/.
var ukZone = mustLoadUK()

func mustLoadUK() *time.Location {
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		// Without zone data we cannot convert BST safely; fail loudly at start.
		panic("flows: Europe/London time zone data missing: " + err.Error())
	}
	return loc
}

// MeterClockZone returns the zone a meter's clock runs in: UK local time when
// its daylight-savings correction is enabled, UTC otherwise.
func MeterClockZone(dstCorrection bool) *time.Location {
	if dstCorrection {
		return ukZone
	}
	return time.UTC
}

// ActivationInstant converts an activation datetime to a UTC instant for a
// meter: an offset-less value is read in the meter's clock zone.
func ActivationInstant(s string, dstCorrection bool) (time.Time, error) {
	t, hasOffset, err := ParseActivation(s)
	if err != nil {
		return time.Time{}, err
	}
	if hasOffset {
		return t, nil
	}
	wall := time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, MeterClockZone(dstCorrection))
	return wall.UTC(), nil
}

// Pending reports whether t, a future tariff as a meter reports it, is a
// change still to come at now: its activation lies ahead. A meter with no
// change scheduled reports its last one (already active) or the EMOP
// epoch, 2000-01-01T00:00:00; neither is pending.
func (t *Tariff) Pending(now time.Time, dstCorrection bool) bool {
	if t == nil || t.ActivationDatetime == nil {
		return false
	}
	at, err := ActivationInstant(*t.ActivationDatetime, dstCorrection)
	return err == nil && at.After(now)
}

// Operator limits on a requested tariff, below what the meter's u32
// encoding could carry (£42 949.67295): an amount past them is a typing
// mistake, not a tariff. Meters' own reports are not held to them.
var (
	// MaxEmergencyCredit bounds prepayment_emergency_credit and
	// prepayment_ecredit_availability (£250).
	MaxEmergencyCredit = decimal.NewFromInt(250)
	// MaxDebtRecoveryRate bounds prepayment_debt_recovery_rate (£50 a day).
	MaxDebtRecoveryRate = decimal.NewFromInt(50)
)

// ActivationHorizon is how far ahead a requested activation may be (five
// years): the meter can hold later dates, an operator does not mean them.
const ActivationHorizon = 5 * 365 * 24 * time.Hour

// ValidateRequest checks a tariff an operator asks for (API, dashboard,
// CLI, rollout; the SQL trigger applies the same limits): the amounts of
// ValidateAmounts, every amount present, the operator limits, and an
// activation after now and within ActivationHorizon, read in the meter's
// clock zone when it has no offset. EINVALID naming prefix.field.
func (t *Tariff) ValidateRequest(prefix string, dstCorrection bool, now time.Time) error {
	if err := t.ValidateAmounts(prefix); err != nil {
		return err
	}
	if prefix != "" && !strings.HasSuffix(prefix, ".") {
		prefix += "."
	}
	for _, r := range []struct {
		name string
		v    *decimal.Decimal
		max  decimal.Decimal
	}{
		{"standing_charge", t.StandingCharge, MaxRate},
		{"unit_rate_element_a", t.UnitRateElementA, MaxRate},
		{"prepayment_emergency_credit", t.PrepaymentEmergencyCredit, MaxEmergencyCredit},
		{"prepayment_ecredit_availability", t.PrepaymentECreditAvailability, MaxEmergencyCredit},
		{"prepayment_debt_recovery_rate", t.PrepaymentDebtRecoveryRate, MaxDebtRecoveryRate},
	} {
		switch {
		case r.v == nil:
			return FieldError(prefix+r.name, "required (a decimal amount)")
		case r.v.GreaterThan(r.max):
			return FieldError(prefix+r.name, "%s is above the limit of %s", r.v, r.max)
		}
	}
	if t.ActivationDatetime == nil {
		return FieldError(prefix+"activation_datetime", "required")
	}
	at, err := ActivationInstant(*t.ActivationDatetime, dstCorrection)
	switch {
	case err != nil:
		return FieldError(prefix+"activation_datetime", "%v", err)
	case !at.After(now):
		return FieldError(prefix+"activation_datetime", "%s is not in the future", *t.ActivationDatetime)
	case at.After(now.Add(ActivationHorizon)):
		return FieldError(prefix+"activation_datetime", "%s is more than five years ahead", *t.ActivationDatetime)
	}
	return nil
}
