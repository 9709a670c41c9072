package sim_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/sim"
)

// startFleet serves specs on 127.0.0.1 with free ports.
func startFleet(t *testing.T, clock sim.Clock, specs ...sim.Spec) *sim.Fleet {
	t.Helper()
	var ms []*sim.Meter
	for _, s := range specs {
		s.IPAddress, s.Port = "127.0.0.1", 0
		ms = append(ms, sim.NewMeter(s, clock.Now()))
	}
	f := sim.NewFleet(ms, clock, nil)
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	return f
}

func target(m *sim.Meter) meterconn.Target {
	return meterconn.Target{Serial: m.Spec.Serial, Addr: "127.0.0.1:" + itoa(m.Spec.Port)}
}

func itoa(n int) string { return strconv.Itoa(n) }

func client(t *testing.T) *meterconn.Client {
	c, err := meterconn.New(meterconn.Config{Attempts: 2, Backoff: 10 * time.Millisecond, ReadTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sample builds a valid payload to write to o.
func sample(t *testing.T, o emop.Object) []byte {
	switch o.Type {
	case emop.TypeMoney:
		b, _ := emop.EncodeMoney(d("0.12345"))
		return b
	case emop.TypeEpoch:
		b, _ := emop.EncodeEpoch(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
		return b
	case emop.TypeClock:
		b, _ := emop.EncodeClock(time.Date(2026, 5, 5, 5, 5, 5, 0, time.UTC))
		return b
	case emop.TypeU8:
		return []byte{1}
	case emop.TypeU32:
		return []byte{7, 0, 0, 0}
	case emop.TypeThresholdMask:
		return []byte{0x21}
	case emop.TypeThresholdValues:
		return emop.ThresholdValues{1, 2, 3, 4, 5, 6, 7}.Encode()
	case emop.TypeRaw:
		b := make([]byte, o.Size)
		b[0] = 0x42
		return b
	}
	t.Fatalf("no sample for writable %s", o.Name)
	return nil
}

// Every object of the codec is answered over TCP: readable ones with a
// payload of the right size, writable ones accept a write that reads back,
// read-only ones refuse writes with NAK 6, unknown ones answer NAK 5.
func TestEveryObjectOverTCP(t *testing.T) {
	clock := sim.NewManualClock(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	f := startFleet(t, clock, spec("EML1000000101", "twin"))
	m := f.Meters()[0]
	c := client(t)
	ctx := context.Background()
	threePhase := map[emop.ObjectID]bool{0xD7FF10: true, 0xD70A0C: true, 0xD7060A: true, 0x200700: true, 0x340700: true, 0x480700: true,
		0x030800: true, 0x040800: true, 0x090800: true, 0x100800: true, emop.ObjThreePhaseHardwareConfig: true, emop.ObjEventLog: true}
	for _, o := range emop.All() {
		p, err := c.Read(ctx, target(m), o.ID)
		var nak *emop.NakError
		if o.ID == emop.ObjTokenSend {
			if !errors.As(err, &nak) || nak.Code != emop.NakSecurity {
				t.Errorf("reading the write-only token object: %v, want NAK 6", err)
			}
			continue
		}
		if threePhase[o.ID] {
			if !errors.As(err, &nak) || nak.Code != emop.NakUnknownObject {
				t.Errorf("%s on a single-phase meter: %v, want NAK 5", o.Name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("read %s: %v", o.Name, err)
			continue
		}
		if _, err := emop.DecodeValue(&o, p); err != nil {
			t.Errorf("read %s: payload % x does not decode: %v", o.Name, p, err)
		}
		if !o.Writable {
			if err := c.Write(ctx, target(m), o.ID, p); !errors.As(err, &nak) || nak.Code != emop.NakSecurity {
				t.Errorf("write to read-only %s: %v, want NAK 6", o.Name, err)
			}
			continue
		}
		w := sample(t, o)
		if o.ID == emop.ObjPrepayEnabled || o.ID == emop.ObjDSTFlag {
			w = p // keep the meter's mode
		}
		if err := c.Write(ctx, target(m), o.ID, w); err != nil {
			t.Errorf("write %s: %v", o.Name, err)
			continue
		}
		back, err := c.Read(ctx, target(m), o.ID)
		if o.ID == emop.ObjTime {
			continue // the clock moves on; checked below
		}
		if err != nil || string(back) != string(w) {
			t.Errorf("%s: wrote % x, read back % x (%v)", o.Name, w, back, err)
		}
	}
	var nak *emop.NakError
	if _, err := c.Read(ctx, target(m), 0x800309); !errors.As(err, &nak) || nak.Code != 5 {
		t.Errorf("unknown object: %v, want NAK 5", err)
	}
	if err := c.Write(ctx, target(m), emop.ObjFutureStandingCharge, []byte{1, 2}); !errors.As(err, &nak) || nak.Code != emop.NakLength {
		t.Errorf("short write: %v, want NAK 3", err)
	}
	p, _ := c.Read(ctx, target(m), emop.ObjTime)
	if tm, _ := emop.DecodeClock(p); !tm.Equal(time.Date(2026, 5, 5, 5, 5, 5, 0, time.UTC)) {
		t.Errorf("clock after write: %v", tm)
	}
}

func TestTokensAndPrepayOverTCP(t *testing.T) {
	clock := sim.NewManualClock(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	s := spec("EML1000000102", "single")
	s.LoadA, s.StartBalance = 0, d("4")
	f := startFleet(t, clock, s)
	m := f.Meters()[0]
	c := client(t)
	ctx := context.Background()
	var nak *emop.NakError
	// Credit mode first, then enabling prepay under £10 is refused.
	if err := c.Write(ctx, target(m), emop.ObjPrepayEnabled, []byte{0}); err != nil {
		t.Fatal(err)
	}
	if err := c.Write(ctx, target(m), emop.ObjPrepayEnabled, []byte{1}); !errors.As(err, &nak) || nak.Code != emop.NakSecurity {
		t.Errorf("enable prepay at £4: %v, want NAK 6", err)
	}
	tok, _ := sim.VendToken(s.Serial, key, d("10"))
	if err := c.Write(ctx, target(m), emop.ObjTokenSend, []byte(tok)); err != nil {
		t.Fatal(err)
	}
	p, _ := c.Read(ctx, target(m), emop.ObjPrepayBalance)
	if b, _ := emop.DecodeBalance(p); !b.Equal(d("14")) {
		t.Errorf("balance after £10 token: %s, want 14", b)
	}
	if err := c.Write(ctx, target(m), emop.ObjTokenSend, []byte(tok)); !errors.As(err, &nak) || nak.Code != emop.NakSecurity {
		t.Errorf("replayed token: %v, want NAK 6", err)
	}
	if err := c.Write(ctx, target(m), emop.ObjTokenSend, []byte("1234567890123456789x")); !errors.As(err, &nak) || nak.Code != emop.NakFormat {
		t.Errorf("malformed token: %v, want NAK 2", err)
	}
	if err := c.Write(ctx, target(m), emop.ObjPrepayEnabled, []byte{1}); err != nil {
		t.Errorf("enable prepay at £14: %v", err)
	}
	p, _ = c.Read(ctx, target(m), emop.ObjTransactionCount)
	if n, _ := emop.DecodeU16(p); n != 1 {
		t.Errorf("transaction count %d", n)
	}
	req, _ := emop.EventLogRequest(0)
	resp, err := c.Raw(ctx, target(m), req)
	if err != nil {
		t.Fatal(err)
	}
	if _, evs, err := emop.ParseEventLogResponse(resp); err != nil || evs[0].EventID != 48 {
		t.Errorf("event log: %+v %v", evs, err)
	}
	clock.Advance(3 * time.Hour)
	req, _ = emop.ProfileLogRequest(emop.FormatProfileLog1, time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	resp, err = c.Raw(ctx, target(m), req)
	if err != nil {
		t.Fatal(err)
	}
	if _, recs, err := emop.ParseProfileLog1Response(resp); err != nil || len(recs) != 5 || !recs[0].Timestamp.Equal(time.Date(2026, 5, 1, 12, 30, 0, 0, time.UTC)) {
		t.Errorf("profile log 1: %+v %v", recs, err)
	}
}

func TestFaultInjection(t *testing.T) {
	clock := sim.NewManualClock(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	f := startFleet(t, clock, spec("EML1000000201", "single"), spec("EML1000000202", "single"), spec("EML1000000203", "single"), spec("EML1000000204", "single"))
	ms := f.Meters()
	ms[1].SetFaults(sim.Faults{Silent: true})
	ms[2].SetFaults(sim.Faults{CorruptRate: 1})
	ms[3].SetFaults(sim.Faults{NakRate: 1})
	c, _ := meterconn.New(meterconn.Config{Attempts: 2, Backoff: time.Millisecond, ReadTimeout: 300 * time.Millisecond})
	ctx := context.Background()
	for i, want := range []string{"", "timeout", "CRC errors", "CRC errors"} {
		_, err := c.Read(ctx, target(ms[i]), emop.ObjPrepayBalance)
		if got := meterconn.Detail(err); got != want {
			t.Errorf("meter %d: %v (detail %q), want %q", i, err, got, want)
		}
	}
	tg := target(ms[0])
	if err := f.SetOffline(ms[0].Spec.Serial, true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(ctx, tg, emop.ObjPrepayBalance); meterconn.Detail(err) != "unreachable" {
		t.Errorf("offline meter: %v", err)
	}
	if err := f.SetOffline(ms[0].Spec.Serial, false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(ctx, target(ms[0]), emop.ObjPrepayBalance); err != nil {
		t.Errorf("back online: %v", err)
	}
	// A meter that refuses back-to-back requests: the client's gap avoids it.
	ms[0].SetFaults(sim.Faults{MinGap: 200 * time.Millisecond})
	fast, _ := meterconn.New(meterconn.Config{Attempts: 1})
	_, _ = fast.Read(ctx, target(ms[0]), emop.ObjPrepayBalance)
	if _, err := fast.Read(ctx, target(ms[0]), emop.ObjPrepayBalance); err == nil {
		t.Errorf("a request straight after another was answered despite MinGap")
	}
	polite, _ := meterconn.New(meterconn.Config{Attempts: 1, Gap: 250 * time.Millisecond})
	_, _ = polite.Read(ctx, target(ms[0]), emop.ObjPrepayBalance)
	if _, err := polite.Read(ctx, target(ms[0]), emop.ObjPrepayBalance); err != nil {
		t.Errorf("with the gap respected: %v", err)
	}
}

// A gap-enforcing meter refuses and counts a request sooner than its gap,
// or during another request, and answers one after it; drops and timeouts
// come at their rates and are counted.
func TestGapDropsAndTimeoutsCounted(t *testing.T) {
	clock := sim.NewManualClock(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	f := startFleet(t, clock, spec("EML1000000211", "single"), spec("EML1000000212", "single"), spec("EML1000000213", "single"))
	ms := f.Meters()
	ctx := context.Background()
	ms[0].SetFaults(sim.Faults{MinGap: 200 * time.Millisecond, LatencyMin: 100 * time.Millisecond, LatencyMax: 100 * time.Millisecond})
	fast, _ := meterconn.New(meterconn.Config{Attempts: 1, ReadTimeout: time.Second})
	if _, err := fast.Read(ctx, target(ms[0]), emop.ObjPrepayBalance); err != nil {
		t.Fatal(err)
	}
	if _, err := fast.Read(ctx, target(ms[0]), emop.ObjPrepayBalance); err == nil {
		t.Error("a request straight after another was answered")
	}
	time.Sleep(250 * time.Millisecond)
	// Two clients at once (each keeps its own gap, not each other's): the
	// second connection comes during the first request.
	other, _ := meterconn.New(meterconn.Config{Attempts: 1, ReadTimeout: time.Second})
	errs := make(chan error, 2)
	go func() { _, err := fast.Read(ctx, target(ms[0]), emop.ObjPrepayBalance); errs <- err }()
	time.Sleep(30 * time.Millisecond)
	go func() { _, err := other.Read(ctx, target(ms[0]), emop.ObjPrepayBalance); errs <- err }()
	var failed int
	for range 2 {
		if <-errs != nil {
			failed++
		}
	}
	if failed != 1 {
		t.Errorf("%d of two overlapping requests failed, want 1", failed)
	}
	time.Sleep(250 * time.Millisecond)
	polite, _ := meterconn.New(meterconn.Config{Attempts: 1, Gap: 250 * time.Millisecond})
	for range 2 {
		if _, err := polite.Read(ctx, target(ms[0]), emop.ObjPrepayBalance); err != nil {
			t.Errorf("with the gap kept: %v", err)
		}
	}
	if s := ms[0].Stats(); s.GapViolations != 2 || s.Answered != 4 {
		t.Errorf("stats %+v, want 2 gap violations and 4 answered", s)
	}
	// Each is described: the first came straight after an answer (its
	// handler may not have finished), the second while another request
	// was being served.
	if vs := f.Violations(); len(vs) != 2 || vs[0].Serial != "EML1000000211" || vs[0].Since >= 200*time.Millisecond || !vs[1].During {
		t.Errorf("violations described as %+v", vs)
	}

	ms[1].SetFaults(sim.Faults{DropRate: 0.5})
	ms[2].SetFaults(sim.Faults{TimeoutRate: 1})
	for range 200 {
		_, _ = fast.Read(ctx, target(ms[1]), emop.ObjPrepayBalance)
	}
	short, _ := meterconn.New(meterconn.Config{Attempts: 1, ReadTimeout: 50 * time.Millisecond})
	for range 3 {
		if _, err := short.Read(ctx, target(ms[2]), emop.ObjPrepayBalance); meterconn.Detail(err) != "timeout" {
			t.Errorf("a request left unanswered: %v", err)
		}
	}
	// 200 tries at 0.5: below 60 or above 140 once in about 10^8 runs.
	if s := ms[1].Stats(); s.Dropped < 60 || s.Dropped > 140 || s.Dropped+s.Answered != 200 {
		t.Errorf("drops at 0.5 of 200: %+v", s)
	}
	if s := ms[2].Stats(); s.TimedOut != 3 || s.Answered != 0 {
		t.Errorf("timeouts: %+v", s)
	}
	// Both at once, each a quarter: the meter's seeded rolls decide, so
	// the counts do not depend on timing (a slow answer the short client
	// gives up on is still counted answered by the meter).
	ms[2].SetFaults(sim.Faults{DropRate: 0.25, TimeoutRate: 0.25})
	before := ms[2].Stats()
	for range 200 {
		_, _ = short.Read(ctx, target(ms[2]), emop.ObjPrepayBalance)
	}
	s := ms[2].Stats()
	dropped, timedOut, answered := s.Dropped-before.Dropped, s.TimedOut-before.TimedOut, s.Answered-before.Answered
	if dropped < 25 || dropped > 75 || timedOut < 25 || timedOut > 75 || dropped+timedOut+answered != 200 {
		t.Errorf("a quarter dropped and a quarter left unanswered of 200: %d dropped, %d unanswered, %d answered", dropped, timedOut, answered)
	}
	if s := f.Stats(); s.GapViolations != 2 || s.TimedOut != 3+timedOut || s.Dropped != ms[1].Stats().Dropped+dropped {
		t.Errorf("fleet stats %+v", s)
	}
}

// Shared listeners serve every meter on its own loopback address from one
// socket: each answers as itself, an offline meter's connections and
// those to an address no meter has are reset, and it comes back online.
func TestSharedListeners(t *testing.T) {
	clock := sim.NewManualClock(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	single := 0.0 // all answer the balance
	specs := sim.GenerateFleet(30, sim.FleetOptions{AddressPrefix: "127.94", Secret: []byte("shared"), ThreePhaseShare: &single})
	var ms []*sim.Meter
	for _, s := range specs {
		ms = append(ms, sim.NewMeter(s, clock.Now()))
	}
	ms[3].SetFaults(sim.Faults{Offline: true})
	f := sim.NewFleet(ms, clock, nil)
	f.SetShared(true)
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	c := client(t)
	ctx := context.Background()
	port := ms[0].Spec.Port
	for i, m := range ms {
		if m.Spec.Mode == "passive" {
			continue
		}
		if m.Spec.Port != port || port == 0 {
			t.Fatalf("meter %d on port %d, meter 0 on %d: one free port for all", i, m.Spec.Port, port)
		}
		tg := meterconn.Target{Serial: m.Spec.Serial, Addr: m.Spec.IPAddress + ":" + itoa(port)}
		p, err := c.Read(ctx, tg, emop.ObjPrepayBalance)
		if i == 3 {
			if err == nil {
				t.Errorf("offline meter %s answered", m.Spec.Serial)
			}
			continue
		}
		if b, _ := emop.DecodeBalance(p); err != nil || !b.Equal(m.Balance(clock.Now())) {
			t.Errorf("meter %d at %s: balance %s (%v), the meter holds %s", i, tg.Addr, b, err, m.Balance(clock.Now()))
		}
	}
	if _, err := c.Read(ctx, meterconn.Target{Serial: "EML0000000000", Addr: "127.94.9.9:" + itoa(port)}, emop.ObjPrepayBalance); err == nil {
		t.Error("an address no meter has was answered")
	}
	if err := f.SetOffline(ms[3].Spec.Serial, false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(ctx, meterconn.Target{Serial: ms[3].Spec.Serial, Addr: ms[3].Spec.IPAddress + ":" + itoa(port)}, emop.ObjPrepayBalance); err != nil {
		t.Errorf("back online: %v", err)
	}
	if _, most := f.Connections(); most < 1 {
		t.Errorf("connections: most %d", most)
	}

	// Two meters on one address cannot be told apart.
	dup := []*sim.Meter{sim.NewMeter(specs[0], clock.Now()), sim.NewMeter(specs[1], clock.Now())}
	dup[1].Spec.IPAddress = dup[0].Spec.IPAddress
	g := sim.NewFleet(dup, clock, nil)
	g.SetShared(true)
	if err := g.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "both have address") {
		t.Errorf("two meters on one address: %v", err)
	}
}

// Meter addresses stay unique past the 64,000 a prefix holds.
func TestMeterAddressesBeyondOnePrefix(t *testing.T) {
	specs := sim.GenerateFleet(100000, sim.FleetOptions{AddressPrefix: "127.77", Secret: []byte("x")})
	seen := map[string]bool{}
	for _, s := range specs {
		if s.Mode == "passive" {
			continue
		}
		if seen[s.IPAddress] || net.ParseIP(s.IPAddress) == nil {
			t.Fatalf("%s: address %q repeated or invalid", s.Serial, s.IPAddress)
		}
		seen[s.IPAddress] = true
	}
	if got := sim.MeterAddress("127.77", 63999); got != "127.77.255.250" {
		t.Errorf("meter 63,999 at %s", got)
	}
	if got := sim.MeterAddress("127.77", 64000); got != "127.78.0.1" {
		t.Errorf("meter 64,000 at %s", got)
	}
	if got := sim.PrefixRoom("127.255"); got != 64000 {
		t.Errorf("room under 127.255: %d", got)
	}
}

// The open-file limit decides how a fleet listens.
func TestPlanListening(t *testing.T) {
	need := sim.FilesPerMeter(10000)
	for _, c := range []struct {
		mode         sim.Listening
		served, lim  int
		shared, warn bool
		err          string
	}{
		{sim.ListenAuto, 10000, need, false, false, ""},
		{sim.ListenAuto, 10000, need - 1, true, false, ""},
		{"", 100000, 20000, true, false, ""},
		{sim.ListenAuto, 100000, 1024, true, true, ""},
		{sim.ListenPerMeter, 10000, need, false, false, ""},
		{sim.ListenPerMeter, 100000, 20000, false, false, "needs 104160 open files and the limit is 20000"},
		{sim.ListenShared, 10, 1 << 20, true, false, ""},
		{sim.ListenAuto, 50, 1024, false, false, ""}, // a small fleet under a small limit: half of it left
		{sim.ListenPerMeter, 50, 1024, false, false, ""},
		{sim.ListenPerMeter, 600, 1024, false, false, "needs 1328 open files and the limit is 1024"},
		{"many", 10, 1 << 20, false, false, "not auto, per-meter or shared"},
	} {
		shared, warn, err := sim.PlanListening(c.mode, c.served, c.lim)
		if shared != c.shared || (warn != "") != c.warn || (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q, %d meters, limit %d: shared %v, warning %q, %v", c.mode, c.served, c.lim, shared, warn, err)
		}
	}
}
