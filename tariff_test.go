package flows_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/shopspring/decimal"
)

func TestValidateRate(t *testing.T) {
	for _, c := range []struct {
		in   string
		ok   bool
		what string
	}{
		{"0.28430", true, ""}, {"1", true, ""}, {"1.00000", true, ""}, {"0", true, ""},
		{"0.000001", false, "decimal places"}, {"1.00001", false, "maximum"}, {"-0.1", false, "negative"},
	} {
		err := flows.ValidateRate("unit_rate_element_a", decimal.RequireFromString(c.in))
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok=%v", c.in, err, c.ok)
		}
		if err != nil && flows.ErrorField(err) != "unit_rate_element_a" {
			t.Errorf("%s: error does not name the field: %v", c.in, err)
		}
	}
}

func TestTariffJSONAcceptsSeedShapeAndNamesBadField(t *testing.T) {
	seed := `{"standing_charge": 0.5868, "unit_rate_element_a": 0.2843, "unit_rate_element_b": 0.1500,
		"prepayment_ecredit_availability": 10.00, "prepayment_debt_recovery_rate": 0.25,
		"prepayment_emergency_credit": 15.00, "activation_datetime": "2024-10-01T00:00:00"}`
	var tf flows.Tariff
	if err := json.Unmarshal([]byte(seed), &tf); err != nil {
		t.Fatal(err)
	}
	if err := tf.ValidateAmounts("tariffs_future"); err != nil {
		t.Fatalf("seed tariff rejected: %v", err)
	}
	if !tf.StandingCharge.Equal(decimal.RequireFromString("0.5868")) {
		t.Errorf("standing charge %s", tf.StandingCharge)
	}
	neg := decimal.RequireFromString("-1")
	tf.PrepaymentEmergencyCredit = &neg
	if err := tf.ValidateAmounts("tariffs_future"); flows.ErrorField(err) != "tariffs_future.prepayment_emergency_credit" {
		t.Errorf("negative emergency credit: %v", err)
	}
	bad := "tomorrow"
	tf.PrepaymentEmergencyCredit, tf.ActivationDatetime = nil, &bad
	if err := tf.ValidateAmounts(""); flows.ErrorField(err) != "activation_datetime" {
		t.Errorf("bad activation: %v", err)
	}
}

// An activation time without an offset is the meter's clock time: UK local
// for DST-corrected meters (so BST shifts it by an hour in summer only), UTC
// otherwise. One with an offset is an instant whatever the meter.
func TestActivationInstant(t *testing.T) {
	utc := func(s string) time.Time { v, _ := time.Parse(time.RFC3339, s); return v }
	for _, c := range []struct {
		in   string
		dst  bool
		want time.Time
	}{
		{"2024-10-01T00:00:00", false, utc("2024-10-01T00:00:00Z")},
		{"2024-10-01T00:00:00", true, utc("2024-09-30T23:00:00Z")}, // BST
		{"2024-12-01T00:00:00", true, utc("2024-12-01T00:00:00Z")}, // GMT
		{"2024-03-31T02:30:00", true, utc("2024-03-31T01:30:00Z")}, // the skipped hour resolves forward
		{"2024-03-31T00:30:00", true, utc("2024-03-31T00:30:00Z")}, // before the spring change
		{"2024-10-27T00:30:00", true, utc("2024-10-26T23:30:00Z")}, // before the autumn change
		{"2024-10-01T00:00:00+01:00", false, utc("2024-09-30T23:00:00Z")},
		{"2024-10-01T00:00:00Z", true, utc("2024-10-01T00:00:00Z")},
	} {
		got, err := flows.ActivationInstant(c.in, c.dst)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("ActivationInstant(%s, dst=%v) = %v, %v; want %v", c.in, c.dst, got, err, c.want)
		}
	}
}

func TestValidateSerial(t *testing.T) {
	for s, ok := range map[string]bool{
		"EML2137580826": true, "EML1234567": true, "EML1234567890123": true,
		"eml2137580826": false, "EML 2137580826": false, "EML123456": false, "": false, "EML2137580826\n": false, "EMLA137580826": false,
	} {
		if err := flows.ValidateSerial(s); (err == nil) != ok {
			t.Errorf("ValidateSerial(%q) = %v, want ok=%v", s, err, ok)
		}
	}
}

func TestErrorHelpers(t *testing.T) {
	err := flows.FieldError("csq", "%d is outside 0-31", 40)
	wrapped := jsonErr{err}
	if flows.ErrorCode(wrapped) != flows.EINVALID || flows.ErrorField(wrapped) != "csq" || flows.ErrorMessage(wrapped) != "csq: 40 is outside 0-31" {
		t.Errorf("through a wrapper: code %q field %q message %q", flows.ErrorCode(wrapped), flows.ErrorField(wrapped), flows.ErrorMessage(wrapped))
	}
	plain := json.Unmarshal([]byte("{"), &struct{}{})
	if flows.ErrorCode(plain) != flows.EINTERNAL || flows.ErrorMessage(plain) != "internal error" {
		t.Errorf("foreign errors are internal and do not leak: %q", flows.ErrorMessage(plain))
	}
}

type jsonErr struct{ err error }

func (e jsonErr) Error() string { return "wrapped: " + e.err.Error() }
func (e jsonErr) Unwrap() error { return e.err }
