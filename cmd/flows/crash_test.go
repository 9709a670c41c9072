package main_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/sim"
	"github.com/shopspring/decimal"
)

// The real process dies in the middle of a push (FLOWS_CRASH_AT exits it)
// and a restarted one finishes the job: the token is credited once, the
// tariff is not lost.
func TestCrashAndRestart(t *testing.T) {
	ctx := context.Background()
	url := pgtest.EmptyDB(t)
	pool, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := postgres.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	store := postgres.NewStore(pool)
	clock := sim.NewScaledClock(time.Now(), 1)
	specs := sim.GenerateFleet(2, sim.FleetOptions{AddressPrefix: "127.107", Secret: []byte("crash")})
	var ms []*sim.Meter
	for _, s := range specs {
		ms = append(ms, sim.NewMeter(s, clock.Now()))
	}
	fleet := sim.NewFleet(ms, clock, nil)
	if err := fleet.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer fleet.Stop()
	m := fleet.Meters()[1]
	meter, err := store.CreateMeter(ctx, flows.NewMeter{Serial: m.Spec.Serial, IPAddress: m.Spec.IPAddress, Port: m.Spec.Port, Hardware: m.Spec.Hardware})
	if err != nil {
		t.Fatal(err)
	}
	serve := func(crashAt string) *exec.Cmd {
		cmd := exec.Command(flowsBin, "serve", "--components", "commands", "--database-url", url, "--meter-gap", "0", "--command-lease", "1s")
		cmd.Env = append(os.Environ(), "FLOWS_CRASH_AT="+crashAt)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	waitExit := func(cmd *exec.Cmd) {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 70 {
				t.Fatalf("serve ended with %v, want the crash hook's 70", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("serve did not reach the crash point")
		}
	}

	for _, point := range []string{"topup_after_send", "topup_before_send"} {
		tok, _ := sim.VendToken(m.Spec.Serial, m.Spec.Key, decimal.RequireFromString("4.25"))
		before := m.State(clock.Now())
		tu, err := store.CreateTopup(ctx, meter.ID, tok, nil, "", "test")
		if err != nil {
			t.Fatal(err)
		}
		waitExit(serve(point))
		restarted := serve("")
		var got *flows.Topup
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if got, _ = store.Topup(ctx, tu.ID); got.Status != flows.TopupWaiting {
				break
			}
		}
		_ = restarted.Process.Kill()
		_ = restarted.Wait()
		after := m.State(clock.Now())
		if got.Status != flows.TopupCompleted {
			t.Errorf("%s: after restart %s %q", point, got.Status, got.Notes)
		}
		if after.TxCount != before.TxCount+1 {
			t.Errorf("%s: the meter applied %d tokens, want exactly 1", point, after.TxCount-before.TxCount)
		}
	}

	act := time.Now().UTC().Add(72 * time.Hour).Format("2006-01-02T15:04:05")
	d := func(s string) *decimal.Decimal { v := decimal.RequireFromString(s); return &v }
	req, err := store.SetFutureTariff(ctx, meter.ID, flows.Tariff{StandingCharge: d("0.5"), UnitRateElementA: d("0.2345"), UnitRateElementB: d("0.2345"),
		PrepaymentEmergencyCredit: d("15"), PrepaymentECreditAvailability: d("10"), PrepaymentDebtRecoveryRate: d("0.25"), ActivationDatetime: &act}, "test", "test")
	if err != nil {
		t.Fatal(err)
	}
	waitExit(serve("tariff_sent"))
	restarted := serve("")
	var st flows.RequestStatus
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if st, _ = store.TariffRequestStatus(ctx, req.ID); st == flows.RequestVerified {
			break
		}
	}
	_ = restarted.Process.Kill()
	final := m.State(clock.Now())
	if st != flows.RequestVerified || final.Future.RateA() != 23450 {
		t.Errorf("tariff after the crash and restart: %s, meter future rate %d", st, final.Future.RateA())
	}
}
