package http_test

import (
	"context"
	"testing"

	flowshttp "github.com/flows-energy/flows/http"
)

// fuzzBody sends arbitrary bytes as the JSON body of one route: the API
// never answers 5xx, and a 4xx answer writes nothing. The seeds are the
// corpus (run longer with go test -fuzz=FuzzX -fuzztime 60s ./http).
func fuzzBody(f *testing.F, method, path string, role flowshttp.Role, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	a := newAPI(f)
	tok := token(f, role, "")
	ctx := context.Background()
	counts := func() [5]int {
		var out [5]int
		for i, table := range []string{"meter_registry", "topups", "tariff_requests", "meter_commands", "tariff_rollouts"} {
			if err := a.store.Pool().QueryRow(ctx, "SELECT count(*) FROM flows."+table).Scan(&out[i]); err != nil {
				f.Fatal(err)
			}
		}
		return out
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		a.t = t
		before := counts()
		status, p := a.do(method, path, tok, string(body))
		if status >= 500 {
			t.Fatalf("%s %s %q: %d %v", method, path, body, status, p["detail"])
		}
		if status >= 400 && counts() != before {
			t.Fatalf("%s %s %q: %d, but something was written", method, path, body, status)
		}
	})
}

const seedTariff = `{"standing_charge": "0.5868", "unit_rate_element_a": "0.2843", "unit_rate_element_b": 0.15,
	"prepayment_ecredit_availability": 10, "prepayment_debt_recovery_rate": 0.25, "prepayment_emergency_credit": 15,
	"activation_datetime": "2099-01-01T00:00:00Z"}`

func FuzzFutureTariffBody(f *testing.F) {
	fuzzBody(f, "PUT", "/api/v1/meters/EML1100000001/tariffs/future", flowshttp.RoleOperator,
		seedTariff, `{"standing_charge": true}`, `[]`, `{"Standing_Charge": "0.5"}`, `{"prepayment_emergency_credit": "1e30"}`, `null`, `{`)
}

func FuzzTokenBody(f *testing.F) {
	fuzzBody(f, "POST", "/api/v1/meters/EML1100000001/tokens", flowshttp.RoleOperator,
		`{"token": "12345678901234567890", "amount": "1e20"}`, `{"token": "12345678901234567890", "amount": "1.234"}`,
		`{"token": "1234", "source": "gift"}`, `{"token": 12345678901234567890}`, `"x"`)
}

func FuzzCommandBody(f *testing.F) {
	fuzzBody(f, "POST", "/api/v1/meters/EML1100000001/commands", flowshttp.RoleOperator,
		`{"kind": "backlight", "value": "always_on_sp"}`, `{"kind": 1}`, `{"kind": "clock", "value": "x"}`, `{"kind": "prepay_enabled", "value": "maybe"}`)
}

func FuzzCreateMeterBody(f *testing.F) {
	fuzzBody(f, "POST", "/api/v1/meters", flowshttp.RoleAdmin,
		`{"serial": "EML3300000009", "ip_address": "fe80::1%eth0"}`, `{"serial": "EML3300000009", "ip_address": "169.254.169.254"}`,
		`{"serial": "bad"}`, `{"serial": "EML3300000009", "port": 70000}`, `{"serial": "EML3300000009", "name": "\u0000"}`)
}

func FuzzPatchMeterBody(f *testing.F) {
	fuzzBody(f, "PATCH", "/api/v1/meters/EML1100000001", flowshttp.RoleAdmin,
		`{"name": "x"}`, `{"ip_address": "0.0.0.0"}`, `{"mode": "sideways"}`, `{"port": -1}`)
}

func FuzzRolloutBody(f *testing.F) {
	fuzzBody(f, "POST", "/api/v1/rollouts", flowshttp.RoleOperator,
		`{"tariff": `+seedTariff+`, "serials": ["EML1100000001"]}`, `{"tariff": {}, "esco": "NOPE"}`, `{"abort_failure_pct": 0}`, `{"serials": "x"}`)
}
