package mediator_test

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/mediator"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/sim"
)

type rig struct {
	store  *postgres.Store
	fleet  *sim.Fleet
	server *mediator.Server
}

// rigOptions shape a rig beyond newRig's arguments.
type rigOptions struct {
	n         int
	prefix    string
	transport meterconn.Config
	tls       *tls.Config
	escos     []string // the meters' ESCOs, in turn (default one, MED)
	serve     string   // mediator.Config.ESCO
	logger    *slog.Logger
	wrap      func(*postgres.Store) mediator.Store // the store the mediator uses (default the rig's)
}

// newRig: n simulated meters registered in a fresh database, served by a
// mediator on a free port (tlsCfg nil: plaintext).
func newRig(t testing.TB, n int, prefix string, transport meterconn.Config, tlsCfg *tls.Config) *rig {
	t.Helper()
	return newRigWith(t, rigOptions{n: n, prefix: prefix, transport: transport, tls: tlsCfg})
}

func newRigWith(t testing.TB, o rigOptions) *rig {
	t.Helper()
	ctx := context.Background()
	store := postgres.NewStore(pgtest.NewPool(t))
	clock := sim.NewScaledClock(time.Now(), 1)
	specs := sim.GenerateFleet(o.n, sim.FleetOptions{AddressPrefix: o.prefix, Secret: []byte("med")})
	var ms []*sim.Meter
	for i := range specs {
		ms = append(ms, sim.NewMeter(specs[i], clock.Now()))
	}
	fleet := sim.NewFleet(ms, clock, nil)
	if err := fleet.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fleet.Stop)
	if len(o.escos) == 0 {
		o.escos = []string{"MED"}
	}
	nm := make([][]flows.NewMeter, len(o.escos))
	for i, m := range fleet.Meters() {
		s := m.Spec
		nm[i%len(o.escos)] = append(nm[i%len(o.escos)], flows.NewMeter{Serial: s.Serial, IPAddress: s.IPAddress, Port: s.Port, Hardware: s.Hardware, Mode: flows.Mode(s.Mode)})
	}
	for i, code := range o.escos {
		if _, err := store.CreateESCO(ctx, code, "ESCO "+code); err != nil {
			t.Fatal(err)
		}
		if _, err := store.ImportMeters(ctx, code, nm[i], nil); err != nil {
			t.Fatal(err)
		}
	}
	client, err := meterconn.New(o.transport)
	if err != nil {
		t.Fatal(err)
	}
	var served mediator.Store = store
	if o.wrap != nil {
		served = o.wrap(store)
	}
	srv := mediator.New(mediator.Config{Addr: "127.0.0.1:0", Store: served, Meters: client, TLS: o.tls, ESCO: o.serve, Logger: o.logger})
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	return &rig{store: store, fleet: fleet, server: srv}
}

func dial(t testing.TB, addr string, tlsCfg *tls.Config) *mediator.Client {
	t.Helper()
	c, err := mediator.Dial(addr, tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRelayAndStatusCodes(t *testing.T) {
	r := newRig(t, 21, "127.83", meterconn.Config{Attempts: 2, Backoff: 10 * time.Millisecond, ReadTimeout: 500 * time.Millisecond}, nil)
	c := dial(t, r.server.Addr(), nil)
	ctx := context.Background()
	m := r.fleet.Meters()[1]
	tg := meterconn.Target{Serial: m.Spec.Serial}

	p, err := c.Read(ctx, tg, emop.ObjPrepayBalance)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := emop.DecodeBalance(p)
	if truth := m.Balance(r.fleet.Clock().Now()); truth.Sub(b).Abs().GreaterThan(flows.MaxRate) {
		t.Errorf("balance through the mediator %s, simulator %s", b, truth)
	}
	tok, _ := sim.VendToken(m.Spec.Serial, m.Spec.Key, flows.MaxRate.Mul(flows.MaxRate).Add(flows.MaxRate)) // £2
	if err := c.Write(ctx, tg, emop.ObjTokenSend, []byte(tok)); err != nil {
		t.Fatalf("write through the mediator: %v", err)
	}
	req, _ := emop.EventLogRequest(0)
	resp, err := c.Raw(ctx, tg, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, evs, err := emop.ParseEventLogResponse(resp); err != nil || evs[0].EventID != 48 {
		t.Errorf("raw event log through the mediator: %+v %v", evs, err)
	}

	var nak *emop.NakError
	if _, err := c.Read(ctx, tg, 0x800309); !errors.As(err, &nak) || nak.Code != 5 {
		t.Errorf("unknown object: %v, want NAK 5 back as *emop.NakError", err)
	}
	if err := c.Write(ctx, tg, emop.ObjTokenSend, []byte(tok)); !errors.As(err, &nak) || nak.Code != 6 {
		t.Errorf("replayed token: %v, want NAK 6", err)
	}
	if _, err := c.Read(ctx, meterconn.Target{Serial: "EML9999999999"}, emop.ObjCSQ); flows.ErrorCode(err) != flows.ENOTFOUND || !strings.Contains(err.Error(), "not known") {
		t.Errorf("unknown meter: %v", err)
	}
	if _, err := c.Read(ctx, meterconn.Target{}, emop.ObjCSQ); flows.ErrorCode(err) != flows.EINVALID || !strings.Contains(err.Error(), "serial not specified") {
		t.Errorf("missing serial: %v", err)
	}
	passive := r.fleet.Meters()[19]
	if _, err := c.Read(ctx, meterconn.Target{Serial: passive.Spec.Serial}, emop.ObjCSQ); flows.ErrorCode(err) != flows.EINVALID || !strings.Contains(err.Error(), "passive") {
		t.Errorf("passive meter: %v", err)
	}
	off := r.fleet.Meters()[2]
	_ = r.fleet.SetOffline(off.Spec.Serial, true)
	var ce *meterconn.CommError
	if _, err := c.Read(ctx, meterconn.Target{Serial: off.Spec.Serial}, emop.ObjCSQ); !errors.As(err, &ce) || ce.Kind != "unreachable" || ce.Attempts < 1 || strings.Count(err.Error(), "attempts") != 1 {
		t.Errorf("offline meter: %v, want a CommError (UNAVAILABLE) saying unreachable, with the mediator's attempts once", err)
	}
	silent := r.fleet.Meters()[3]
	silent.SetFaults(sim.Faults{Silent: true})
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.Read(dctx, meterconn.Target{Serial: silent.Spec.Serial}, emop.ObjCSQ); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("silent meter with a 200 ms deadline: %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("the caller's deadline was not respected")
	}

	info, err := c.Info(ctx, m.Spec.Serial)
	if err != nil || !strings.Contains(info, `"registry"`) || !strings.Contains(info, `"shadow"`) || !strings.Contains(info, m.Spec.Serial) {
		t.Errorf("GetInfo: %v\n%s", err, info)
	}
	list, err := c.Meters(ctx, "med")
	if err != nil || strings.Count(list, `"serial"`) != 20 {
		t.Errorf("GetMeters lists %d meters (want the 20 active): %v", strings.Count(list, `"serial"`), err)
	}

	// A new meter is served as soon as it is registered (LISTEN/NOTIFY).
	extra := sim.NewMeter(sim.Spec{Serial: "EML3000000001", IPAddress: "127.83.9.9", Mode: "active", Key: "00", Hardware: "EMA1.w", LoadA: 100}, time.Now())
	f2 := sim.NewFleet([]*sim.Meter{extra}, sim.NewScaledClock(time.Now(), 1), nil)
	if err := f2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer f2.Stop()
	if _, err := r.store.CreateMeter(ctx, flows.NewMeter{Serial: "EML3000000001", IPAddress: "127.83.9.9", Port: extra.Spec.Port}); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, lastErr = c.Read(ctx, meterconn.Target{Serial: "EML3000000001"}, emop.ObjCSQ); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Errorf("newly registered meter not served: %v", lastErr)
	}
}

// Twenty callers on one meter never overlap on the wire and each succeeds
// or is told the meter is busy; 200 meters are served in parallel.
func TestConcurrency(t *testing.T) {
	r := newRig(t, 210, "127.84", meterconn.Config{Attempts: 1, BusyWait: 300 * time.Millisecond}, nil)
	c := dial(t, r.server.Addr(), nil)
	ctx := context.Background()
	one := r.fleet.Meters()[1]
	one.SetFaults(sim.Faults{LatencyMin: 40 * time.Millisecond, LatencyMax: 60 * time.Millisecond})
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, busy := 0, 0
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Read(ctx, meterconn.Target{Serial: one.Spec.Serial}, emop.ObjPrepayBalance)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, meterconn.ErrBusy):
				busy++
			default:
				t.Errorf("caller got %v, want success or busy", err)
			}
		}()
	}
	wg.Wait()
	if one.MaxConcurrent() != 1 || ok == 0 || busy == 0 {
		t.Errorf("one meter: %d at once on the wire, %d ok, %d busy", one.MaxConcurrent(), ok, busy)
	}
	var active []*sim.Meter
	for _, m := range r.fleet.Meters()[2:] {
		if m.Spec.Mode == "active" && len(active) < 200 {
			active = append(active, m)
		}
	}
	errs := make(chan error, len(active))
	for _, m := range active {
		go func() {
			_, err := c.Read(ctx, meterconn.Target{Serial: m.Spec.Serial}, emop.ObjCSQ)
			errs <- err
		}()
	}
	for range active {
		if err := <-errs; err != nil {
			t.Errorf("parallel read: %v", err)
		}
	}
}
