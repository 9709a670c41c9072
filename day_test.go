package flows_test

import (
	"testing"
	"time"

	"github.com/flows-energy/flows"
)

func TestDays(t *testing.T) {
	d, err := flows.ParseDay("day", "2024-02-29")
	if err != nil || !d.Equal(time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("2024-02-29: %v %v", d, err)
	}
	for _, bad := range []string{"2023-02-29", "2024-2-1", "20240201", "", "2024-02-01T00:00:00Z"} {
		if _, err := flows.ParseDay("--from", bad); flows.ErrorField(err) != "--from" {
			t.Errorf("%q: %v, want a refusal naming --from", bad, err)
		}
	}
	london, _ := time.LoadLocation("Europe/London")
	// 00:30 BST on 15 June is 23:30 UTC on the 14th.
	if got := flows.UTCDay(time.Date(2024, 6, 15, 0, 30, 0, 0, london)); !got.Equal(time.Date(2024, 6, 14, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("UTC day of 00:30 BST: %v", got)
	}
	for _, c := range []struct {
		from, to string
		n        int
	}{{"2024-01-01", "2024-01-01", 1}, {"2024-01-01", "2024-12-31", 366}, {"2024-01-02", "2024-01-01", 0}} {
		f, _ := flows.ParseDay("from", c.from)
		to, _ := flows.ParseDay("to", c.to)
		if n := flows.DaysBetween(f, to); n != c.n {
			t.Errorf("%s to %s: %d days, want %d", c.from, c.to, n, c.n)
		}
	}
}
