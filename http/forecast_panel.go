package http

import (
	"fmt"
	"time"

	"github.com/flows-energy/flows"
)

// forecastTime is how the panel writes an instant: to the minute, UTC.
const forecastTime = "2006-01-02 15:04Z"

// forecastRow is a line of the meter page's credit forecast panel.
type forecastRow struct {
	ID, Label, Value string
}

// forecastRows says a meter's credit forecast as an operator reads it:
// what it spends a day and from what, when it falls below its e-credit
// threshold, and when it loses supply (with the band the days' own rates
// give), each time with how far away it is. Nil when there is no
// forecast (no balance read yet).
func forecastRows(f *flows.CreditForecast, now time.Time) []forecastRow {
	if f == nil {
		return nil
	}
	spend := "nothing spent seen"
	if f.SpendPerDay != nil {
		spend = "£" + f.SpendPerDay.StringFixed(2) + " a day"
		if f.SpendPerDayLow != nil && f.SpendPerDayHigh != nil && !f.SpendPerDayLow.Equal(*f.SpendPerDayHigh) {
			spend += fmt.Sprintf(" (£%s–£%s)", f.SpendPerDayLow.StringFixed(2), f.SpendPerDayHigh.StringFixed(2))
		}
	}
	from := "the falling balance"
	if f.SpendFrom == "intervals" {
		from = "half hours at the active tariff"
	}
	rows := []forecastRow{
		{"forecast-spend", "spending", spend},
		{"forecast-from", "from", fmt.Sprintf("%s, %s days", from, f.DaysObserved.Round(1).StringFixed(1))},
		{"forecast-balance", "balance", fmt.Sprintf("£%s at %s", f.Balance.StringFixed(2), f.BalanceAt.UTC().Format(forecastTime))},
	}
	if f.ECreditThreshold != nil {
		v := "not at this rate"
		switch {
		case f.ECreditAt != nil:
			v = "about " + when(*f.ECreditAt, now)
		case f.Balance.LessThan(*f.ECreditThreshold):
			v = "below it now"
		}
		rows = append(rows, forecastRow{"forecast-ecredit", "under the £" + f.ECreditThreshold.StringFixed(2) + " e-credit threshold", v})
	}
	cut := "not forecast"
	switch {
	case f.SupplyCutAt != nil && !f.SupplyCutAt.After(now):
		cut = "may be off supply since " + f.SupplyCutAt.UTC().Format(forecastTime)
	case f.SupplyCutAt != nil:
		cut = "about " + when(*f.SupplyCutAt, now)
		if f.SupplyCutEarliest != nil && f.SupplyCutLatest != nil && !f.SupplyCutEarliest.Equal(*f.SupplyCutLatest) {
			cut += fmt.Sprintf("; between %s and %s", f.SupplyCutEarliest.UTC().Format(forecastTime), f.SupplyCutLatest.UTC().Format(forecastTime))
		}
	case f.SpendPerDay != nil && f.SpendPerDay.IsPositive():
		cut = "more than ten years away"
	}
	at := " (at £0.00)" // no emergency credit: supply goes at zero
	if f.EmergencyCredit != nil && f.EmergencyCredit.IsPositive() {
		at = " (at −£" + f.EmergencyCredit.StringFixed(2) + ")"
	}
	return append(rows, forecastRow{"forecast-cut", "supply cut" + at, cut})
}

// when is an instant with how far away it is ("2026-12-05 14:00Z, in 1 d
// 3 h"), or how long ago for one passed (a forecast from a balance read
// before it: "…, 20 h 5 min ago").
func when(t, now time.Time) string {
	if t.Before(now) {
		return t.UTC().Format(forecastTime) + ", " + span(now.Sub(t)) + " ago"
	}
	return t.UTC().Format(forecastTime) + ", in " + span(t.Sub(now))
}

// span is a duration as days and hours, or hours and minutes under a day.
func span(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	if d < 24*time.Hour {
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
	h := int(d.Hours())
	return fmt.Sprintf("%d d %d h", h/24, h%24)
}
