package http

import (
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/shopspring/decimal"
)

// A forecast made from a balance read days ago can put the e-credit
// threshold or the supply cut in the past: the panel says how long ago,
// never "in 0 h 0 min".
func TestForecastTimesPassedSayHowLongAgo(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	d := decimal.RequireFromString
	spend, threshold, ec := d("2.40"), d("10"), d("15")
	ecreditAt, cutAt := now.Add(-15*time.Hour-30*time.Minute), now.Add(-2*time.Hour)
	rows := forecastRows(&flows.CreditForecast{BalanceAt: now.Add(-96 * time.Hour), Balance: d("18.1"), DaysObserved: d("5"), SpendFrom: "balance",
		SpendPerDay: &spend, ECreditThreshold: &threshold, EmergencyCredit: &ec, ECreditAt: &ecreditAt, SupplyCutAt: &cutAt}, now)
	got := map[string]string{}
	for _, r := range rows {
		got[r.ID] = r.Value
	}
	if want := "about 2026-12-03 20:30Z, 15 h 30 min ago"; got["forecast-ecredit"] != want {
		t.Errorf("threshold passed: %q, want %q", got["forecast-ecredit"], want)
	}
	if want := "may be off supply since 2026-12-04 10:00Z"; got["forecast-cut"] != want {
		t.Errorf("supply cut passed: %q, want %q", got["forecast-cut"], want)
	}
}
