package sim_test

import (
	"testing"
	"time"

	"github.com/flows-energy/flows/sim"
	"github.com/shopspring/decimal"
)

// A meter started a week in the past carries its history into its
// present: readings every half hour, top-ups when the credit ran low, each
// one an applied token, and the last reading is the meter's state now.
func TestMeterWithPast(t *testing.T) {
	now := time.Date(2026, 6, 8, 12, 0, 0, 0, time.UTC)
	spec := sim.GenerateFleet(1, sim.FleetOptions{AddressPrefix: "127.93", Secret: []byte("past")})[0]
	spec.StartBalance = decimal.NewFromInt(7)
	m, h, err := sim.NewMeterWithPast(spec, now, 7*24*time.Hour, 30*time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Readings) != 7*48 {
		t.Fatalf("%d readings, want %d", len(h.Readings), 7*48)
	}
	last := h.Readings[len(h.Readings)-1]
	if !last.At.Equal(now) || !last.Balance.Equal(m.Balance(now)) {
		t.Errorf("last reading %v £%s, the meter now £%s", last.At, last.Balance, m.Balance(now))
	}
	if len(h.Topups) == 0 {
		t.Fatal("a meter starting at £7 was never topped up in a week")
	}
	st := m.State(now)
	if int(st.TxCount) != len(h.Topups) {
		t.Errorf("meter counted %d transactions, the history %d top-ups", st.TxCount, len(h.Topups))
	}
	for i := 1; i < len(h.Readings); i++ {
		a, b := h.Readings[i-1], h.Readings[i]
		if b.ImportA.LessThan(a.ImportA) {
			t.Fatalf("import register went back at %v", b.At)
		}
		if b.Balance.GreaterThan(a.Balance) && !toppedUpBetween(h, a.At, b.At) {
			t.Errorf("balance rose %s -> %s at %v without a top-up", a.Balance, b.Balance, b.At)
		}
	}
	for _, tu := range h.Topups {
		if !tu.BalanceAfter.GreaterThan(tu.BalanceBefore) {
			t.Errorf("top-up at %v: %s -> %s", tu.At, tu.BalanceBefore, tu.BalanceAfter)
		}
	}
}

func toppedUpBetween(h sim.History, from, to time.Time) bool {
	for _, tu := range h.Topups {
		if tu.At.After(from) && !tu.At.After(to) {
			return true
		}
	}
	return false
}
