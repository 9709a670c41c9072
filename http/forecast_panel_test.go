package http_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	flowshttp "github.com/flows-energy/flows/http"
)

// The meter page says the meter's credit forecast: what it spends a day
// and from what, when it goes under the e-credit threshold and when it
// loses supply, with how far away each is; a meter with no balance read
// says it has none.
func TestMeterPageShowsTheCreditForecast(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()
	m, err := a.store.MeterBySerial(ctx, "EML1100000001")
	if err != nil {
		t.Fatal(err)
	}
	// £2.40 a day for 5 days from £30, the last reading half an hour
	// ago: £18.10, so under the £10 threshold 81 h after it, off supply
	// (−£15) 331 h after it.
	last := time.Now().UTC().Add(-30 * time.Minute).Truncate(time.Second)
	for _, q := range []string{
		`UPDATE flows.meter_shadows SET tariffs_active = '{"prepayment_ecredit_availability": 10, "prepayment_emergency_credit": 15, "standing_charge": 0.5, "unit_rate_element_a": 0.25}' WHERE id = $1`,
		`DELETE FROM flows.meter_prepay_balance WHERE meter_id = $1`,
		`INSERT INTO flows.meter_prepay_balance (meter_id, "timestamp", balance)
			SELECT $1, $2::timestamptz - (119 - h) * interval '1 hour', 30 - 0.1 * h FROM generate_series(0, 119) h`,
		`SELECT flows.rebuild_spend_days($1)`,
		`SELECT flows.refresh_credit_forecast($1)`,
	} {
		args := []any{m.ID}
		if strings.Contains(q, "$2") {
			args = append(args, last)
		}
		if _, err := a.store.Pool().Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	ro := token(t, flowshttp.RoleReadonly, "")
	code, body := a.page("/meters/EML1100000001", ro)
	if code != 200 {
		t.Fatalf("meter page: %d", code)
	}
	cell := func(id string) string {
		return strings.TrimSuffix(strings.TrimPrefix(between(body, `id="`+id+`">`, "</td>"), `id="`+id+`">`), "</td>")
	}
	day := func(d float64) string {
		return last.Add(time.Duration(d * 24 * float64(time.Hour))).Format("2006-01-02 15:04Z")
	}
	for id, want := range map[string]string{
		"forecast-spend":   "£2.40 a day",
		"forecast-from":    "the falling balance, 5.0 days",
		"forecast-balance": "£18.10 at " + last.Format("2006-01-02 15:04Z"),
		"forecast-ecredit": "about " + day(8.1/2.4) + ", in 3 d 8 h",    // 80.5 h from now
		"forecast-cut":     "about " + day(33.1/2.4) + ", in 13 d 18 h", // 330.5 h
	} {
		if got := cell(id); got != want {
			t.Errorf("%s reads %q, want %q", id, got, want)
		}
	}
	if !strings.Contains(body, "supply cut (at −£15.00)") || !strings.Contains(body, "under the £10.00 e-credit threshold") {
		t.Errorf("the forecast's labels do not name the emergency credit and threshold:\n%s", between(body, `id="forecast"`, "</div>"))
	}
	if _, err := a.store.CreateMeter(ctx, flows.NewMeter{Serial: "EML1100000077", IPAddress: "127.110.0.77", ESCOCode: "AAA"}); err != nil {
		t.Fatal(err)
	}
	_, body = a.page("/meters/EML1100000077", ro)
	if !strings.Contains(body, `id="no-forecast"`) {
		t.Errorf("a meter with no balance history shows a forecast:\n%s", between(body, `id="forecast"`, "</div>"))
	}
	// Values never read are a dash, without a unit.
	if !strings.Contains(body, `<td id="voltage">–</td>`) || !strings.Contains(body, `<th>clock drift</th><td>–</td>`) {
		t.Errorf("a meter not read yet: %s", between(body, "<th>voltage</th>", "</tr>")+between(body, "<th>clock drift</th>", "</tr>"))
	}
}
