package http

import "testing"

// The meter page's audit trail shows what was written as an operator
// reads it, not the payload's hex.
func TestAuditValuesRead(t *testing.T) {
	for _, c := range []struct{ object, value, want string }{
		{"tariff_future_standing_charge", "38e50000", "£0.58680"},                // 58680 × 1e-5
		{"tariff_future_activation_datetime", "00bfa432", "2026-12-04 00:00:00"}, // the meter's clock
		{"prepay_token_send", "…7890", "…7890"},                                  // redacted: as recorded
		{"tariff_future_standing_charge", "zz", "zz"},                            // not hex: as recorded
		{"no_such_object", "01", "01"},
	} {
		if got := auditValue(c.object, c.value); got != c.want {
			t.Errorf("%s %s: %q, want %q", c.object, c.value, got, c.want)
		}
	}
}

// A tariff's activation reads as the page's other times do, and the
// meter's "none" is said as such.
func TestActivationText(t *testing.T) {
	for in, want := range map[string]string{
		"2026-12-04T00:00:00":       "2026-12-04 00:00:00 (the meter's clock)",
		"2000-01-01T00:00:00":       "none set",
		"2026-12-04T00:00:00Z":      "2026-12-04 00:00:00Z",
		"2026-12-04T01:00:00+01:00": "2026-12-04 00:00:00Z",
		"soon":                      "soon",
	} {
		if got := activationText(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}
