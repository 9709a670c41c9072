package http_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	flowshttp "github.com/flows-energy/flows/http"
	"github.com/golang-jwt/jwt/v5"
)

// Each input a careless integrator or an attacker sent is refused, naming
// what was wrong, and nothing is written.
func TestInputsRefused(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()
	admin, op := token(t, flowshttp.RoleAdmin, ""), token(t, flowshttp.RoleOperator, "")
	count := func(table string) int {
		var n int
		if err := a.store.Pool().QueryRow(ctx, "SELECT count(*) FROM flows."+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	meters, topups, requests, commands := count("meter_registry"), count("topups"), count("tariff_requests"), count("meter_commands")
	tariff := func(k string, v any) map[string]any {
		b := futureTariff(time.Now().Add(72 * time.Hour))
		b[k] = v
		return b
	}
	big := `{"name": "` + strings.Repeat("x", 2<<20) + `"}`
	for _, c := range []struct {
		name, method, path, tok string
		body                    any
		status                  int
		field                   string
	}{
		{"amount beyond the ledger", "POST", "/api/v1/meters/EML1100000001/tokens", op, map[string]any{"token": "12345678901234567890", "amount": "1e20"}, 400, "amount"},
		{"amount in fractions of a penny", "POST", "/api/v1/meters/EML1100000001/tokens", op, map[string]any{"token": "12345678901234567891", "amount": "1.234"}, 400, "amount"},
		{"NUL in a search", "GET", "/api/v1/meters?q=%00", op, nil, 400, "q"},
		{"invalid UTF-8 in a search", "GET", "/api/v1/meters?q=%ff%fe", op, nil, 400, "q"},
		{"limit 0 to lift the cap", "GET", "/api/v1/meters?limit=0", op, nil, 400, "limit"},
		{"a boolean for a money amount", "PUT", "/api/v1/meters/EML1100000001/tariffs/future", op, tariff("standing_charge", true), 400, "standing_charge"},
		{"an array for a tariff", "PUT", "/api/v1/meters/EML1100000001/tariffs/future", op, []any{}, 400, "body"},
		{"a number for a command kind", "POST", "/api/v1/meters/EML1100000001/commands", op, map[string]any{"kind": 1}, 400, "kind"},
		{"a field name in the wrong case", "PUT", "/api/v1/meters/EML1100000001/tariffs/future", op, map[string]any{"Standing_Charge": "0.5"}, 400, "Standing_Charge"},
		{"an address with a zone", "POST", "/api/v1/meters", admin, map[string]any{"serial": "EML3300000001", "ip_address": "fe80::1%eth0"}, 400, "ip_address"},
		{"the unspecified address", "POST", "/api/v1/meters", admin, map[string]any{"serial": "EML3300000002", "ip_address": "0.0.0.0"}, 400, "ip_address"},
		{"the cloud metadata address", "POST", "/api/v1/meters", admin, map[string]any{"serial": "EML3300000003", "ip_address": "169.254.169.254"}, 400, "ip_address"},
		{"10,000 characters of hardware", "POST", "/api/v1/meters", admin, map[string]any{"serial": "EML3300000004", "hardware": strings.Repeat("h", 10000)}, 400, "hardware"},
		{"a body of 2 MiB", "PATCH", "/api/v1/meters/EML1100000001", admin, big, 413, ""},
	} {
		status, p := a.do(c.method, c.path, c.tok, c.body)
		if status != c.status || (c.field != "" && p["field"] != c.field) {
			t.Errorf("%s: %d field %v (%v), want %d naming %q", c.name, status, p["field"], p["detail"], c.status, c.field)
		}
		if d, _ := p["detail"].(string); strings.Contains(d, "flows.") || strings.Contains(d, "json:") {
			t.Errorf("%s: the detail shows decoder internals: %q", c.name, d)
		}
	}
	if meters != count("meter_registry") || topups != count("topups") || requests != count("tariff_requests") || commands != count("meter_commands") {
		t.Errorf("a refused request wrote something")
	}
	// A query parameter the operation does not take is refused, naming it
	// and what it takes, not ignored.
	if code, p := a.do("GET", "/api/v1/meters/EML1100000001/balance?limit=2", admin, nil); code != 400 || p["field"] != "limit" ||
		!strings.Contains(fmt.Sprint(p["detail"]), "it takes: from, to, bucket") {
		t.Errorf("an unknown query parameter: %d %v, want 400 naming limit and what the operation takes", code, p)
	}
	if code, p := a.do("GET", "/api/v1/fleet?verbose=1", admin, nil); code != 400 || p["field"] != "verbose" {
		t.Errorf("an unknown query parameter: %d %v, want 400 naming verbose", code, p)
	}
	// A wrong method on a resource that exists is 405, naming what is allowed.
	req, _ := http.NewRequest("DELETE", a.base+"/api/v1/meters", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || !strings.Contains(resp.Header.Get("Allow"), "GET") {
		t.Errorf("DELETE /api/v1/meters: %d Allow %q, want 405 with GET, POST", resp.StatusCode, resp.Header.Get("Allow"))
	}
	// A token that does not say who it is for is refused.
	noSub, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"role": "admin", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(secret)
	if status, _ := a.do("GET", "/api/v1/meters", noSub, nil); status != 401 {
		t.Errorf("a token with no sub: %d, want 401", status)
	}
}

// A tariff a meter cannot hold, or an operator cannot mean, is refused
// before anything is recorded: nothing is ever pushed half-written.
func TestTariffBeyondLimitsRefused(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()
	op := token(t, flowshttp.RoleOperator, "")
	for _, c := range []struct {
		field string
		value any
	}{
		{"prepayment_emergency_credit", "50000"},
		{"prepayment_emergency_credit", "1e30"},
		{"prepayment_ecredit_availability", "42949.67296"},
		{"prepayment_debt_recovery_rate", "99999"},
		{"activation_datetime", "2300-01-01T00:00:00Z"},
	} {
		b := futureTariff(time.Now().Add(72 * time.Hour))
		b[c.field] = c.value
		status, p := a.do("PUT", "/api/v1/meters/EML1100000001/tariffs/future", op, b)
		if status != 400 || (p["field"] != c.field && p["field"] != "tariffs_future."+c.field) {
			t.Errorf("%s = %v: %d %v (%v), want 400 naming it", c.field, c.value, status, p["field"], p["detail"])
		}
	}
	var n int
	_ = a.store.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.tariff_requests`).Scan(&n)
	if n != 0 {
		t.Errorf("%d tariff requests recorded from refused tariffs", n)
	}
	// Plain SQL meets the same limits in the trigger.
	_, err := a.store.Pool().Exec(ctx, `UPDATE flows.meter_shadows s SET tariffs_future = jsonb_build_object('standing_charge', 0.5,
		'unit_rate_element_a', 0.3, 'unit_rate_element_b', 0.3, 'prepayment_ecredit_availability', 10, 'prepayment_debt_recovery_rate', 0.25,
		'prepayment_emergency_credit', 50000, 'activation_datetime', '2030-01-01T00:00:00')
		FROM flows.meter_registry r WHERE r.id = s.id AND r.serial = 'EML1100000001'`)
	if err == nil || !strings.Contains(err.Error(), "prepayment_emergency_credit") {
		t.Errorf("plain SQL with £50,000 emergency credit: %v", err)
	}
}

// A value taken in another ESCO (a serial, an address: one meter, one SIM)
// is refused, naming only the field: the answer says the value is taken,
// never where, whose, or anything of that meter, and nothing is written.
func TestConflictsRevealNothingOfAnotherESCO(t *testing.T) {
	a := newAPI(t)
	adminA := token(t, flowshttp.RoleAdmin, "AAA")
	before := 0
	_ = a.store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM flows.meter_registry`).Scan(&before)
	for _, body := range []map[string]any{
		{"serial": "EML2200000001"},                              // BBB's meter
		{"serial": "EML3300000077", "ip_address": "127.110.1.1"}, // BBB's meter's address
	} {
		status, p := a.do("POST", "/api/v1/meters", adminA, body)
		detail, _ := p["detail"].(string)
		if status != 409 || (p["field"] != "serial" && p["field"] != "ip_address") {
			t.Errorf("%v: %d %v, want 409 naming the field", body, status, p)
		}
		for _, leak := range []string{"BBB", "B one", "EML2200000001 ", "esco"} {
			if strings.Contains(detail, leak) {
				t.Errorf("%v: the answer %q tells of %q", body, detail, leak)
			}
		}
	}
	after := 0
	_ = a.store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM flows.meter_registry`).Scan(&after)
	if after != before {
		t.Errorf("a refused meter was written")
	}
}
