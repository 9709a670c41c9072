package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/flows-energy/flows"
)

// An ESCO's daily totals sum its meters' derived half hours per UTC day
// and element (the single element counted as A), show every day of the
// range, and leave out other ESCOs' meters.
func TestESCODailyTotals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	for _, code := range []string{"TOT", "OTHER"} {
		if _, err := s.CreateESCO(ctx, code, code); err != nil {
			t.Fatal(err)
		}
	}
	newMeter := func(serial, ip, esco string, elements ...flows.Element) string {
		m, err := s.CreateMeter(ctx, flows.NewMeter{Serial: serial, IPAddress: ip, ESCOCode: esco})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range elements {
			if _, err := s.AddRegister(ctx, m.ID, e, false); err != nil {
				t.Fatal(err)
			}
		}
		return m.ID
	}
	twin := newMeter("EML1000000031", "127.93.0.1", "TOT", flows.ElementA, flows.ElementB)
	single := newMeter("EML1000000032", "127.93.0.2", "TOT", flows.ElementSingle)
	other := newMeter("EML1000000033", "127.93.0.3", "OTHER", flows.ElementSingle)

	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -3)
	u := func(v uint32) *uint32 { return &v }
	// records at day 00:00 … day+1 00:00 every half hour: the day's 48
	// intervals, import A rising by a Wh, import B by b Wh each.
	store := func(meterID string, a, b uint32, twin bool) {
		var recs []flows.ProfileRecord
		for i := range uint32(49) {
			r := flows.ProfileRecord{At: day.Add(time.Duration(i) * 30 * time.Minute), Status: flows.ProfileValidData, ImportA: u(1000 + a*i)}
			if twin {
				r.ImportB = u(500 + b*i)
			}
			recs = append(recs, r)
		}
		if _, _, err := s.StoreProfile(ctx, meterID, recs); err != nil {
			t.Fatal(err)
		}
	}
	store(twin, 100, 40, true)
	store(single, 250, 0, false)
	store(other, 999, 0, false)

	got, err := s.ESCODailyTotals(ctx, "tot", day.AddDate(0, 0, -1), day.AddDate(0, 0, 2))
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		day       time.Time
		element   string
		kwh       string
		halfHours int
		registers int
	}
	want := []row{
		{day.AddDate(0, 0, -1), "A", "", 0, 2}, {day.AddDate(0, 0, -1), "B", "", 0, 1},
		{day, "A", "16.8", 96, 2}, {day, "B", "1.92", 48, 1}, // 48 × (0.100 + 0.250) kWh; 48 × 0.040
		{day.AddDate(0, 0, 1), "A", "", 0, 2}, {day.AddDate(0, 0, 1), "B", "", 0, 1},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d totals %+v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		g := got[i]
		kwh := ""
		if g.KWh != nil {
			kwh = g.KWh.String()
		}
		if !g.Day.Equal(w.day) || g.Element != w.element || kwh != w.kwh || g.HalfHours != w.halfHours || g.Registers != w.registers {
			t.Errorf("total %d: got %s %s %q kWh, %d half hours, %d registers; want %s %s %q, %d, %d", i,
				g.Day.Format(time.DateOnly), g.Element, kwh, g.HalfHours, g.Registers, w.day.Format(time.DateOnly), w.element, w.kwh, w.halfHours, w.registers)
		}
	}

	if _, err := s.ESCODailyTotals(ctx, "NOPE", day, day.AddDate(0, 0, 1)); flows.ErrorCode(err) != flows.ENOTFOUND {
		t.Errorf("unknown ESCO: %v, want ENOTFOUND", err)
	}
	for _, c := range []struct {
		from, to time.Time
		field    string
	}{
		{day.Add(time.Hour), day.AddDate(0, 0, 1), "from"},
		{day, day.Add(36 * time.Hour), "to"},
		{day, day, "to"},
		{day.AddDate(-2, 0, 0), day, "to"},
	} {
		if _, err := s.ESCODailyTotals(ctx, "TOT", c.from, c.to); flows.ErrorCode(err) != flows.EINVALID || flows.ErrorField(err) != c.field {
			t.Errorf("%v – %v: %v, want EINVALID naming %s", c.from, c.to, err, c.field)
		}
	}
}
