package sim

import (
	"fmt"
	"time"

	"github.com/flows-energy/flows/emop"
	"github.com/shopspring/decimal"
)

// Reading is one observation of a meter's simulated past: what a sync at
// that moment would have read.
type Reading struct {
	At              time.Time
	Balance         decimal.Decimal
	EmergencyCredit decimal.Decimal // the active tariff's emergency credit, as SyncerPrepayBalance reads it
	CSQ             int
	NetworkOperator int
	Voltage         decimal.Decimal // volts
	ImportA         decimal.Decimal // kWh
	ExportA         decimal.Decimal
	ImportB         decimal.Decimal
	ExportB         decimal.Decimal
	// ThreePhase readings carry no balance, tariff or single-phase
	// voltage (three-phase meters are credit meters): Voltages3P holds
	// L1..L3 and ImportA/ExportA the active totals, scaled to kWh.
	ThreePhase bool
	Voltages3P [3]decimal.Decimal
}

// PastTopup is a top-up the simulated customer made.
type PastTopup struct {
	At            time.Time
	Amount        decimal.Decimal
	Token         string
	BalanceBefore decimal.Decimal
	BalanceAfter  decimal.Decimal
}

// History is a meter's simulated past, oldest first.
type History struct {
	Readings []Reading
	Topups   []PastTopup
}

// NewMeterWithPast makes a meter whose model starts `past` before now and
// runs forward to now, reading it every step and topping up the simulated
// customer's credit as a household on prepayment does: when the balance
// falls below the meter's own threshold (between £2 and £6), by £10, £20
// or £30. The balance, consumption, top-ups (with their credit-token
// events and transaction count), clock drift and profile snapshots form
// one continuous history that the meter's present carries on. An offline
// meter's readings stop offlineFor before now: it has not answered since.
func NewMeterWithPast(spec Spec, now time.Time, past, step, offlineFor time.Duration) (*Meter, History, error) {
	return runPast(spec, now, past, step, offlineFor, true)
}

// RunPast is NewMeterWithPast without the History: the same meter, its
// past lived (registers, profile log, events, top-ups) but not kept as
// readings, which for a large fleet weigh far more than the meters.
func RunPast(spec Spec, now time.Time, past, step time.Duration) (*Meter, error) {
	m, _, err := runPast(spec, now, past, step, 0, false)
	return m, err
}

func runPast(spec Spec, now time.Time, past, step, offlineFor time.Duration, record bool) (*Meter, History, error) {
	start := now.Add(-past).Truncate(step)
	m := NewMeter(spec, start)
	var h History
	threshold := units(decimal.NewFromInt(int64(2 + m.seed%5)))
	amounts := []int64{10, 20, 30}
	for t := start.Add(step); !t.After(now); t = t.Add(step) {
		m.advance(t)
		if bal := m.st.Balance; bal < threshold && m.st.PrepayOn {
			amount := decimal.NewFromInt(amounts[(m.seed>>8+uint64(len(h.Topups)))%3])
			tok, err := VendToken(spec.Serial, spec.Key, amount)
			if err != nil {
				return nil, History{}, fmt.Errorf("simulated top-up of %s: %w", spec.Serial, err)
			}
			if _, err := m.applyToken(tok, t); err != nil {
				return nil, History{}, fmt.Errorf("simulated top-up of %s: %w", spec.Serial, err)
			}
			h.Topups = append(h.Topups, PastTopup{At: t, Amount: amount, Token: tok, BalanceBefore: money(bal), BalanceAfter: money(m.st.Balance)})
		}
		if !record || spec.Faults.Offline && now.Sub(t) < offlineFor {
			continue
		}
		h.Readings = append(h.Readings, m.reading(t))
	}
	m.advance(now)
	return m, h, nil
}

// reading is what a sync would read at t (the state advanced to t).
func (m *Meter) reading(t time.Time) Reading {
	sig := m.csq(t)
	kwh := func(j int64) decimal.Decimal { return decimal.New(j/3600, -3) }
	r := Reading{At: t, Balance: money(m.st.Balance), EmergencyCredit: money(m.st.Active.EmergencyCredit), CSQ: sig.CSQ,
		NetworkOperator: sig.NetworkOperator, Voltage: decimal.New(int64(m.voltage(t)), -1),
		ImportA: kwh(m.st.ImportJ[0]), ExportA: kwh(m.st.ExportJ[0])}
	if m.threePhase() {
		tp := m.threePhaseReading(t)
		return Reading{At: t, CSQ: sig.CSQ, NetworkOperator: sig.NetworkOperator, ThreePhase: true,
			Voltages3P: tp.Voltages, ImportA: tp.Totals[0], ExportA: tp.Totals[1]}
	}
	if emop.IsTwinElement(m.Spec.Hardware) { // as the syncer reads element B
		r.ImportB, r.ExportB = kwh(m.st.ImportJ[1]), kwh(m.st.ExportJ[1])
	}
	return r
}
