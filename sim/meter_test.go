package sim_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/sim"
	"github.com/shopspring/decimal"
)

var d = decimal.RequireFromString

const key = "00112233445566778899aabbccddeeff"

func spec(serial, layout string) sim.Spec {
	s := sim.Spec{Serial: serial, Layout: layout, Hardware: "EMA1.w", Key: key, LoadA: 600, Mode: "active", StartBalance: d("100")}
	if layout == "twin" {
		s.Hardware, s.LoadB = "C1.w", 2000
	}
	return s
}

// A week of consumption lowers the balance by exactly what the registers
// recorded times the unit rates, plus seven standing charges.
func TestWeekOfConsumptionIsBilledExactly(t *testing.T) {
	for _, layout := range []string{"single", "twin"} {
		t0 := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
		s := spec("EML1000000001", layout)
		s.StartBalance = d("500")
		m := sim.NewMeter(s, t0)
		before := m.State(t0)
		end := t0.Add(7 * 24 * time.Hour)
		// Read at irregular moments along the way, as a sync would.
		for at := t0; at.Before(end); at = at.Add(97 * time.Minute) {
			m.Balance(at)
		}
		after := m.State(end)
		whA := decimal.NewFromInt((after.ImportJ[0] - before.ImportJ[0]) / 3600)
		whB := decimal.NewFromInt((after.ImportJ[1] - before.ImportJ[1]) / 3600)
		rateA, rateB := d("0.28430"), d("0.28430")
		if layout == "twin" {
			rateB = d("0.15000")
		}
		want := whA.Mul(rateA).Add(whB.Mul(rateB)).Div(decimal.NewFromInt(1000)).Add(d("0.58680").Mul(decimal.NewFromInt(7)))
		got := decimal.New(before.Balance-after.Balance, -5)
		if got.Sub(want).Abs().GreaterThanOrEqual(d("0.01")) {
			t.Errorf("%s: balance fell by %s, want %s (consumption %s Wh A, %s Wh B)", layout, got, want, whA, whB)
		}
		if whA.IsZero() || (layout == "twin") != whB.IsPositive() {
			t.Errorf("%s: consumption A %s B %s", layout, whA, whB)
		}
	}
}

func futureWall(t *testing.T, m *sim.Meter, now time.Time, wall time.Time) {
	t.Helper()
	p, err := emop.EncodeEpoch(wall)
	if err != nil {
		t.Fatal(err)
	}
	rate, _ := emop.EncodeMoney(d("0.99999"))
	for _, w := range []struct {
		id emop.ObjectID
		p  []byte
	}{{emop.ObjFutureBlock8Rate1, rate}, {emop.ObjFutureActivation, p}} {
		resp := m.Handle(emop.Frame{Control: 1, Data: emop.WriteRequest(w.id, w.p)}, now)
		if resp.AckNak() != 0 {
			t.Fatalf("write %s: NAK %d", w.id, resp.AckNak())
		}
	}
}

func activeRate(m *sim.Meter, now time.Time) decimal.Decimal {
	resp := m.Handle(emop.Frame{Control: 1, Data: emop.ReadRequest(emop.ObjActivePrice)}, now)
	rec, _ := emop.ParseRecord(resp.Data)
	v, _ := emop.DecodeMoney(rec.Payload)
	return v
}

// The future tariff becomes active when the meter's clock reaches its
// activation time: UTC wall time, or UK local time with daylight-savings
// correction, including across the clock changes.
func TestFutureTariffActivation(t *testing.T) {
	for _, c := range []struct {
		name string
		dst  bool
		wall time.Time // activation as written (meter wall clock)
		at   time.Time // the UTC instant it must activate
	}{
		{"UTC meter on the March change day", false, time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC), time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)},
		{"DST meter, first BST hour", true, time.Date(2026, 3, 29, 3, 0, 0, 0, time.UTC), time.Date(2026, 3, 29, 2, 0, 0, 0, time.UTC)},
		{"DST meter, midnight in summer", true, time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 6, 30, 23, 0, 0, 0, time.UTC)},
		{"DST meter, before the October change", true, time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC), time.Date(2026, 10, 24, 23, 30, 0, 0, time.UTC)},
		{"DST meter, after the October change", true, time.Date(2026, 10, 25, 3, 0, 0, 0, time.UTC), time.Date(2026, 10, 25, 3, 0, 0, 0, time.UTC)},
		{"UTC meter on the October change day", false, time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC), time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC)},
	} {
		start := c.at.Add(-36 * time.Hour)
		s := spec("EML1000000002", "single")
		s.DST = c.dst
		m := sim.NewMeter(s, start)
		futureWall(t, m, start, c.wall)
		if r := activeRate(m, c.at.Add(-time.Second)); !r.Equal(d("0.2843")) {
			t.Errorf("%s: active rate %s one second before %v", c.name, r, c.at)
		}
		if r := activeRate(m, c.at); !r.Equal(d("0.99999")) {
			t.Errorf("%s: active rate %s at %v, want the future rate", c.name, r, c.at)
		}
		evs := m.State(c.at).Events
		if last := evs[len(evs)-1]; last.EventID != sim.EventTariffActivated || !last.Timestamp.Equal(c.at) {
			t.Errorf("%s: last event %+v, want tariff activated at %v", c.name, last, c.at)
		}
	}
}

// Below the e-credit availability threshold emergency credit is used down
// to minus its amount; then the supply is cut and use stops. A top-up
// reconnects and the debt is recovered daily.
func TestEmergencyCreditDisconnectAndDebtRecovery(t *testing.T) {
	t0 := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	s := spec("EML1000000003", "single")
	s.LoadA, s.StartBalance = 3000, d("3")
	m := sim.NewMeter(s, t0)
	st := m.State(t0.Add(time.Minute))
	if !st.ECActive || !st.Connected {
		t.Fatalf("under £10 emergency credit is active and supply on: %+v", st)
	}
	var cut time.Time
	for at := t0; at.Before(t0.Add(5 * 24 * time.Hour)); at = at.Add(10 * time.Minute) {
		if st := m.State(at); !st.Connected {
			cut = at
			break
		}
	}
	if cut.IsZero() {
		t.Fatal("never disconnected")
	}
	st = m.State(cut)
	if b := decimal.New(st.Balance, -5); b.GreaterThan(d("-15")) || b.LessThan(d("-15.50")) {
		t.Errorf("disconnected at balance %s, want just past -15.00", b)
	}
	later := m.State(cut.Add(6 * time.Hour))
	if later.ImportJ != st.ImportJ {
		t.Errorf("consumption continued while disconnected")
	}
	if later.Balance >= st.Balance {
		t.Errorf("standing charge stopped while disconnected")
	}

	tok, err := sim.VendToken(s.Serial, key, d("20"))
	if err != nil {
		t.Fatal(err)
	}
	at := cut.Add(6 * time.Hour)
	debtBefore := -m.State(at).Balance
	if _, err := m.ApplyToken(tok, at); err != nil {
		t.Fatal(err)
	}
	st = m.State(at)
	if !st.Connected || st.Balance != 2_000_000 || st.Debt != debtBefore {
		t.Errorf("after £20 top-up: connected %v balance %d debt %d (want 2000000 and %d)", st.Connected, st.Balance, st.Debt, debtBefore)
	}
	evs := st.Events
	if evs[len(evs)-2].EventID != sim.EventCreditTokenApplied || evs[len(evs)-1].EventID != sim.EventSupplyReconnected {
		t.Errorf("events %+v", evs[len(evs)-3:])
	}

	// With no load, a day costs the standing charge plus the debt recovery.
	s2 := spec("EML1000000004", "single")
	s2.LoadA, s2.StartBalance = 0, d("-5")
	m2 := sim.NewMeter(s2, t0)
	tok2, _ := sim.VendToken(s2.Serial, key, d("10"))
	if _, err := m2.ApplyToken(tok2, t0); err != nil {
		t.Fatal(err)
	}
	st = m2.State(t0.Add(24 * time.Hour))
	if b := decimal.New(st.Balance, -5); !b.Equal(d("9.1632")) || st.Debt != 475_000 {
		t.Errorf("a day later: balance %s debt %d, want 9.16320 (10 - 0.5868 - 0.25) and 475000", b, st.Debt)
	}
}

func TestTokensCreditOnce(t *testing.T) {
	t0 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	s := spec("EML1000000005", "single")
	s.LoadA = 0
	m := sim.NewMeter(s, t0)
	tok, err := sim.VendToken(s.Serial, key, d("12.34"))
	if err != nil {
		t.Fatal(err)
	}
	b0 := m.Balance(t0)
	if tk, err := m.ApplyToken(tok, t0); err != nil || !tk.Amount().Equal(d("12.34")) {
		t.Fatalf("apply: %v %v", tk, err)
	}
	if b := m.Balance(t0); !b.Sub(b0).Equal(d("12.34")) {
		t.Errorf("balance rose by %s", b.Sub(b0))
	}
	if _, err := m.ApplyToken(tok, t0); !errors.Is(err, sim.ErrTokenUsed) {
		t.Errorf("replay: %v", err)
	}
	other, _ := sim.VendToken("EML1000000006", key, d("5"))
	if _, err := m.ApplyToken(other, t0); !errors.Is(err, sim.ErrTokenInvalid) {
		t.Errorf("another meter's token: %v", err)
	}
	tampered := []byte(tok)
	tampered[19] = '0' + (tampered[19]-'0'+1)%10
	if _, err := m.ApplyToken(string(tampered), t0); !errors.Is(err, sim.ErrTokenInvalid) && !errors.Is(err, sim.ErrTokenMalformed) {
		t.Errorf("tampered token: %v", err)
	}
	for _, bad := range []string{"1234", "abcdefghijabcdefghij", "99999999999999999999"} {
		if _, err := m.ApplyToken(bad, t0); !errors.Is(err, sim.ErrTokenMalformed) {
			t.Errorf("malformed %q: %v", bad, err)
		}
	}
	if b := m.Balance(t0); !b.Sub(b0).Equal(d("12.34")) {
		t.Errorf("rejected tokens changed the balance: +%s", b.Sub(b0))
	}
	st := m.State(t0)
	if st.TxCount != 1 || !st.LastTx.PaymentValue.Equal(d("12.34")) {
		t.Errorf("transaction count %d, last %+v", st.TxCount, st.LastTx)
	}
	if _, err := sim.VendToken(s.Serial, key, d("0.001")); err == nil {
		t.Errorf("fractional pence vended")
	}
	if _, err := sim.VendToken(s.Serial, key, d("2000")); err == nil {
		t.Errorf("£2000 vended")
	}
}

func TestClockDriftAndSet(t *testing.T) {
	t0 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	s := spec("EML1000000007", "single")
	s.DriftPPM = 100 // 8.64 s a day fast
	s.ClockOffset = 30 * time.Second
	m := sim.NewMeter(s, t0)
	if got := m.MeterTime(t0.Add(24 * time.Hour)).Sub(t0.Add(24 * time.Hour)); got < 38*time.Second || got > 39*time.Second {
		t.Errorf("after a day the clock is %v ahead, want 30 s + 8.64 s", got)
	}
	now := t0.Add(24 * time.Hour)
	p, _ := emop.EncodeClock(now)
	if resp := m.Handle(emop.Frame{Control: 2, Data: emop.WriteRequest(emop.ObjTime, p)}, now); resp.AckNak() != 0 {
		t.Fatalf("clock write NAK %d", resp.AckNak())
	}
	if got := m.MeterTime(now); !got.Equal(now) {
		t.Errorf("after setting, meter time %v, want %v", got, now)
	}
	evs := m.State(now).Events
	if evs[len(evs)-1].EventID != sim.EventClockSet {
		t.Errorf("no clock-set event")
	}
}

func TestEventLogBlocks(t *testing.T) {
	t0 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	s := spec("EML1000000008", "single")
	s.LoadA = 0
	m := sim.NewMeter(s, t0)
	for i := range 14 {
		tok, _ := sim.VendToken(s.Serial, key, d("1"))
		if _, err := m.ApplyToken(tok, t0.Add(time.Duration(i+1)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	get := func(idx uint8) []emop.Event {
		req, _ := emop.EventLogRequest(idx)
		resp := m.Handle(emop.Frame{Control: 3, Data: req}, t0.Add(time.Hour))
		_, evs, err := emop.ParseEventLogResponse(resp.Data)
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	b0, b1, b2 := get(0), get(1), get(2)
	if len(b0) != 10 || len(b1) != 5 || len(b2) != 0 {
		t.Fatalf("blocks of %d, %d, %d events; want 10, 5 (14 tokens + power up), 0", len(b0), len(b1), len(b2))
	}
	if b0[0].EventID != 48 || b0[0].EventSet != 14 || !b0[0].Timestamp.After(b0[1].Timestamp) {
		t.Errorf("block 0 starts %+v %+v; want the newest token event first", b0[0], b0[1])
	}
	if last := b1[len(b1)-1]; last.EventID != sim.EventPowerUp {
		t.Errorf("oldest event %+v, want power up", last)
	}
}

// The simulator's own event ids are named by migration 0002; keep the two
// in step.
func TestSimulatorEventIDsAreNamedByMigration(t *testing.T) {
	b, err := os.ReadFile("../postgres/migrations/0002_simulator_event_types.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int{sim.EventClockSet, sim.EventTariffActivated, sim.EventEmergencyCredit, sim.EventSupplyDisconnected, sim.EventSupplyReconnected} {
		if !strings.Contains(string(b), "("+strconv.Itoa(id)+", 'SIM_") {
			t.Errorf("event id %d has no name in migration 0002", id)
		}
	}
}

// The profile log holds, at every half hour, what the registers read then;
// it keeps ProfileDays of records; a request for a time before its first
// record (or inside a power cut) is answered with the next records it has.
func TestProfileLogAgreesWithRegistersAndIsFinite(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	s := spec("EML1000000009", "twin")
	s.ProfileDays = 2
	m := sim.NewMeter(s, t0)
	regs := map[time.Time][2]uint32{}
	for now := t0; !now.After(t0.Add(4 * 24 * time.Hour)); now = now.Add(30 * time.Minute) {
		st := m.State(now)
		regs[now] = [2]uint32{uint32(st.ImportJ[0] / 3600), uint32(st.ImportJ[1] / 3600)}
	}
	end := t0.Add(4 * 24 * time.Hour)
	for at, want := range regs {
		rec, ok := m.ProfileRecord(end, at)
		switch {
		case at.Before(end.Add(-3*24*time.Hour)) && ok:
			t.Errorf("%s: still held after more than ProfileDays", at)
		case at.After(end.Add(-2*24*time.Hour)) && !ok:
			t.Errorf("%s: not held within ProfileDays", at)
		case ok && (rec.ImportA != want[0] || rec.ImportB != want[1] || rec.Status != emop.StatusValidData):
			t.Errorf("%s: record %+v, registers read %v", at, rec, want)
		}
	}
	// Asking from the first day: the answer starts at the oldest record held.
	req, _ := emop.ProfileLogRequest(emop.FormatProfileLog1, t0)
	resp := m.Handle(emop.Frame{Control: emop.Control(0, 0), Data: req}, end)
	_, recs, err := emop.ParseProfileLog1Response(resp.Data)
	if err != nil || len(recs) != emop.ProfileLog1PerResponse || !recs[0].Timestamp.After(end.Add(-3*24*time.Hour)) {
		t.Errorf("a request before the log's start: %v %v", recs, err)
	}
	// A power cut: no records during it, the first after it flagged.
	cut := end.Add(time.Hour)
	m.PowerCut(cut, 90*time.Minute)
	after := cut.Add(3 * time.Hour)
	req, _ = emop.ProfileLogRequest(emop.FormatProfileLog1, cut.Add(30*time.Minute))
	resp = m.Handle(emop.Frame{Control: emop.Control(0, 0), Data: req}, after)
	_, recs, err = emop.ParseProfileLog1Response(resp.Data)
	if err != nil || len(recs) == 0 || !recs[0].Timestamp.Equal(cut.Add(90*time.Minute)) || recs[0].Status != emop.StatusValidData|emop.StatusPowerFail {
		t.Errorf("after a power cut from %s: %+v %v", cut.Format("15:04"), recs, err)
	}
}

// A state file keeps the profile log: a restored meter answers the same
// records, voltages included.
func TestStateFileKeepsProfileLog(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	end := t0.Add(50 * time.Hour)
	s := spec("EML1000000010", "twin")
	s.ProfileDays = 1
	m := sim.NewMeter(s, t0)
	m.PowerCut(t0.Add(30*time.Hour), time.Hour)
	m.ResetCounters(t0.Add(40 * time.Hour))
	path := filepath.Join(t.TempDir(), "state.json")
	if err := sim.NewFleet([]*sim.Meter{m}, sim.NewManualClock(end), nil).SaveState(path); err != nil {
		t.Fatal(err)
	}
	back, _, err := sim.LoadMeters([]sim.Spec{s}, path, end)
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for at := t0; !at.After(end); at = at.Add(30 * time.Minute) {
		a, okA := m.ProfileRecord(end, at)
		b, okB := back[0].ProfileRecord(end, at)
		if a != b || okA != okB {
			t.Errorf("%s: restored %+v %v, was %+v %v", at, b, okB, a, okA)
		}
		if okA {
			held++
		}
	}
	if held < 48 {
		t.Errorf("only %d records held", held)
	}
}
