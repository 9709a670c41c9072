package sim_test

import (
	"testing"
	"time"

	"github.com/flows-energy/flows/sim"
	"github.com/shopspring/decimal"
)

// habitRun is a single-element meter of a habit, 500 W, starting at
// £25, watched every half hour for days: its balance's low point, its
// top-ups and its disconnections and reconnections.
type habitRun struct {
	low                 decimal.Decimal
	topUps              []time.Time
	cuts, reconnections []time.Time
}

func runHabit(t *testing.T, habit string, days int) habitRun {
	t.Helper()
	t0 := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	spec := sim.GenerateFleet(1, sim.FleetOptions{Secret: []byte("habit")})[0]
	spec.Habit, spec.Layout, spec.Hardware, spec.LoadA, spec.LoadB, spec.SolarPeak = habit, "single", "B1.w", 500, 0, 0
	spec.StartBalance = decimal.NewFromInt(25)
	m := sim.NewMeter(spec, t0)
	r := habitRun{low: spec.StartBalance}
	prev := m.State(t0)
	for at := t0; at.Before(t0.Add(time.Duration(days) * 24 * time.Hour)); at = at.Add(30 * time.Minute) {
		st := m.State(at)
		if st.TxCount > prev.TxCount {
			r.topUps = append(r.topUps, at)
		}
		if b := m.Balance(at); b.LessThan(r.low) {
			r.low = b
		}
		prev = st
	}
	for _, e := range prev.Events {
		switch e.EventID {
		case sim.EventSupplyDisconnected:
			r.cuts = append(r.cuts, e.Timestamp)
		case sim.EventSupplyReconnected:
			r.reconnections = append(r.reconnections, e.Timestamp)
		}
	}
	return r
}

// Each habit tops up as its customer would, on its own in simulated time:
// weekly once a week and never cut; late only after supply is cut, 6 to
// 30 hours later; ration £5 whenever under £2, never cut; holiday weekly
// except for 10 days away in every five weeks; none never.
func TestCustomerHabits(t *testing.T) {
	t.Parallel()
	if err := sim.ValidHabit("sometimes"); err == nil {
		t.Error(`habit "sometimes" accepted`)
	}
	weekly := runHabit(t, sim.HabitWeekly, 28)
	if n := len(weekly.topUps); n < 3 || n > 5 || len(weekly.cuts) != 0 {
		t.Errorf("weekly over 4 weeks: %d top-ups, %d cuts; want about 4 and none", n, len(weekly.cuts))
	}
	late := runHabit(t, sim.HabitLate, 35)
	if len(late.cuts) < 2 || len(late.reconnections) < len(late.cuts)-1 {
		t.Fatalf("late over 5 weeks: cut %d times, reconnected %d", len(late.cuts), len(late.reconnections))
	}
	for i, back := range late.reconnections {
		if off := back.Sub(late.cuts[i]); off < 6*time.Hour || off > 31*time.Hour {
			t.Errorf("late: cut at %v, back %v later; want 6 to 30 hours", late.cuts[i], off)
		}
	}
	ration := runHabit(t, sim.HabitRation, 28)
	if len(ration.topUps) < 4 || len(ration.cuts) != 0 || ration.low.LessThan(decimal.NewFromInt(1)) {
		t.Errorf("ration over 4 weeks: %d top-ups, %d cuts, low £%s; want frequent £5 top-ups, never under £1", len(ration.topUps), len(ration.cuts), ration.low)
	}
	holiday := runHabit(t, sim.HabitHoliday, 70) // a whole holiday inside, wherever it falls
	var longest time.Duration
	for i := 1; i < len(holiday.topUps); i++ {
		longest = max(longest, holiday.topUps[i].Sub(holiday.topUps[i-1]))
	}
	if longest < 9*24*time.Hour || len(holiday.topUps) < 3 {
		t.Errorf("holiday over 10 weeks: %d top-ups, longest without %v; want the 10 days away without", len(holiday.topUps), longest)
	}
	if none := runHabit(t, sim.HabitNone, 14); len(none.topUps) != 0 || len(none.cuts) != 1 {
		t.Errorf("no habit over 2 weeks: %d top-ups, %d cuts; want none and one", len(none.topUps), len(none.cuts))
	}
}
