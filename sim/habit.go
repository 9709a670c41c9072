package sim

import (
	"fmt"
	"time"

	"github.com/flows-energy/flows/emop"
)

// Customer habits: how a simulated meter's customer tops up, so credit
// forecasts, self-disconnections and alerts happen in a demo on their
// own, at any --speed. A habit acts in simulated time as the meter
// advances: the customer keys credit in at the meter (a top-up Flows did
// not send: it sees the balance rise, a CREDIT_TOKEN_APPLIED event and the
// last transaction, as it would for a shop-bought top-up).
const (
	// HabitNone: the customer never tops up (the meter runs its credit
	// down; what tests and benchmarks that count pence expect).
	HabitNone = ""
	// HabitWeekly tops up once a week, on the meter's own day and hour,
	// with a week and a half of its typical spend: rarely low.
	HabitWeekly = "weekly"
	// HabitLate waits until supply is cut and tops up 6 to 30 hours
	// later: a self-disconnection most weeks.
	HabitLate = "late"
	// HabitRation tops up £5 whenever the balance falls under £2: often
	// low, seldom cut.
	HabitRation = "ration"
	// HabitHoliday is weekly, but every fifth week goes away for 10 days:
	// a tenth of the load and no top-ups (the balance may run out while
	// away), a top-up on return.
	HabitHoliday = "holiday"
)

// Habits are the habits a spec may name.
var Habits = []string{HabitNone, HabitWeekly, HabitLate, HabitRation, HabitHoliday}

// ValidHabit says whether h is one of Habits (an error naming it if not).
func ValidHabit(h string) error {
	for _, x := range Habits {
		if h == x {
			return nil
		}
	}
	return fmt.Errorf("habit %q is not one of weekly, late, ration, holiday (or empty: none)", h)
}

const (
	habitWeek    = 7 * 24 * time.Hour
	holidayEvery = 5 // weeks
	holidayFor   = 10 * 24 * time.Hour
)

// weeklyTopUp is a week and a half of the meter's typical spend, in whole
// pounds (at least £10), in 1e-5 GBP.
func (m *Meter) weeklyTopUp() int64 {
	t := &m.st.Active
	kwhDay := int64(m.Spec.LoadA+m.Spec.LoadB/4) * 24 / 1000 // the daily shape averages about its load
	for _, l := range m.Spec.PhaseLoads {
		kwhDay += int64(l) * 24 / 1000
	}
	day := kwhDay*t.RateA() + t.StandingCharge
	pounds := max(10, (day*21/2+99999)/100000)
	return pounds * 100000
}

// habitPhase is the meter's own moment of the week (seconds into it).
func (m *Meter) habitPhase() time.Duration {
	return time.Duration(m.seed%uint64(habitWeek/time.Second)) * time.Second
}

// away says whether a holidaying customer is away at t.
func (m *Meter) away(t time.Time) bool {
	if m.Spec.Habit != HabitHoliday {
		return false
	}
	since := t.Sub(emop.Epoch.Add(m.habitPhase()))
	cycle := time.Duration(holidayEvery) * habitWeek
	return since >= 0 && since%cycle < holidayFor
}

// habit lets the customer act at simulated time t (the end of a segment
// the meter has just advanced to).
func (m *Meter) habit(from, t time.Time) {
	switch m.Spec.Habit {
	case HabitWeekly, HabitHoliday:
		// Once a week at the meter's phase: the week boundary crossed in
		// (from, t].
		week := func(x time.Time) int64 { return int64(x.Sub(emop.Epoch.Add(m.habitPhase())) / habitWeek) }
		if week(t) > week(from) && !m.away(t) {
			m.credit(m.weeklyTopUp(), t)
		}
		if m.Spec.Habit == HabitHoliday && m.away(from) && !m.away(t) {
			m.credit(m.weeklyTopUp(), t) // home again
		}
	case HabitLate:
		if m.st.Connected {
			m.st.HabitCutAt = time.Time{}
			return
		}
		if m.st.HabitCutAt.IsZero() {
			m.st.HabitCutAt = t
		}
		wait := 6*time.Hour + time.Duration(m.seed%25)*time.Hour
		if !t.Before(m.st.HabitCutAt.Add(wait)) {
			m.credit(m.weeklyTopUp(), t)
			m.st.HabitCutAt = time.Time{}
		}
	case HabitRation:
		if m.st.Balance < 2*100000 {
			m.credit(5*100000, t)
		}
	}
}

// credit adds amount (1e-5 GBP) to the balance at now as a top-up does:
// debt run up on emergency credit kept for daily recovery, emergency
// credit ended above its threshold, supply restored above zero. The
// meter must have advanced to now.
func (m *Meter) credit(amount int64, now time.Time) {
	if m.st.Balance < 0 {
		// The debt run up on emergency credit is recovered daily from
		// now on; the top-up is credited whole.
		m.st.Debt += -m.st.Balance
		m.st.Balance = amount
	} else {
		m.st.Balance += amount
	}
	m.st.TxCount++
	m.st.LastTx = emop.Transaction{PaymentTime: m.meterTime(now), PaymentValue: money(amount)}
	if m.st.Balance >= m.st.Active.ECreditAvailability {
		m.st.ECActive = false
	}
	m.event(now, EventCreditTokenApplied)
	if !m.st.Connected && m.st.Balance > 0 {
		m.st.Connected = true
		m.event(now, EventSupplyReconnected)
	}
}
