package main_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/mediator"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/sim"
	"github.com/shopspring/decimal"
)

// startMediated serves a small simulated fleet through a mediator.
func startMediated(t *testing.T) (*sim.Fleet, string) {
	t.Helper()
	fleet, addr, _ := startMediatedFleet(t, sim.GenerateFleet(3, sim.FleetOptions{AddressPrefix: "127.87", Secret: []byte("cli")}))
	return fleet, addr
}

// startMediatedFleet serves specs through a mediator.
func startMediatedFleet(t *testing.T, specs []sim.Spec) (*sim.Fleet, string, *postgres.Store) {
	t.Helper()
	ctx := context.Background()
	store := postgres.NewStore(pgtest.NewPool(t))
	clock := sim.NewManualClock(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	var ms []*sim.Meter
	for _, s := range specs {
		ms = append(ms, sim.NewMeter(s, clock.Now()))
	}
	fleet := sim.NewFleet(ms, clock, nil)
	if err := fleet.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fleet.Stop)
	var nm []flows.NewMeter
	for _, m := range fleet.Meters() {
		nm = append(nm, flows.NewMeter{Serial: m.Spec.Serial, IPAddress: m.Spec.IPAddress, Port: m.Spec.Port, Hardware: m.Spec.Hardware})
	}
	if _, err := store.ImportMeters(ctx, "", nm, nil); err != nil {
		t.Fatal(err)
	}
	transport, _ := meterconn.New(meterconn.Config{Attempts: 1})
	srv := mediator.New(mediator.Config{Addr: "127.0.0.1:0", Store: store, Meters: transport})
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	return fleet, srv.Addr(), store
}

// Every read command returns the simulator's true state; writes change it.
func TestEmopThroughMediator(t *testing.T) {
	fleet, addr := startMediated(t)
	m := fleet.Meters()[1] // twin element
	now := fleet.Clock().Now()
	run := func(args ...string) string {
		t.Helper()
		out, stderr, err := runEmop(t, append([]string{"--mediator", addr, "-s", m.Spec.Serial}, args...)...)
		if err != nil {
			t.Fatalf("emop %v: %v\n%s", args, err, stderr)
		}
		return strings.TrimSpace(out)
	}
	truth := m.State(now)
	for cmd, want := range map[string]string{
		"prepay_balance":                      decimal.New(truth.Balance, -5).StringFixed(5),
		"serial_read":                         m.Spec.Serial,
		"hardware":                            "C1.w",
		"firmware_version":                    "3_02_8",
		"prepay_enabled":                      "true",
		"daylight_savings_correction_enabled": map[bool]string{true: "true", false: "false"}[m.Spec.DST],
		"clock_time_read":                     m.MeterTime(now).Format(time.RFC3339),
		"backlight":                           "normal_sp_or_always_off_3p",
		"prepay_transaction_count":            "0",
	} {
		if got := run(cmd); got != cmd+"="+want {
			t.Errorf("%s printed %q, want %s=%s", cmd, got, cmd, want)
		}
	}
	var read struct {
		A emop.Reading  `json:"element_a"`
		B *emop.Reading `json:"element_b"`
	}
	if err := json.Unmarshal([]byte(run("read")), &read); err != nil || read.A.ImportActive != uint32(truth.ImportJ[0]/3600) || read.B == nil {
		t.Errorf("read: %+v %v", read, err)
	}
	var active flows.Tariff
	if err := json.Unmarshal([]byte(run("tariffs_active_read")), &active); err != nil || !active.UnitRateElementA.Equal(decimal.New(truth.Active.RateA(), -5)) {
		t.Errorf("tariffs_active_read: %+v %v", active, err)
	}

	// tariffs_future_write, then tariffs_future_read, round-trips.
	activation := time.Now().UTC().AddDate(0, 1, 0).Truncate(time.Hour).Format("2006-01-02T15:04:05")
	run("tariffs_future_write", "--from-ts", activation, "--unit-rate", "0.31234", "--unit-rate-b", "0.12",
		"--standing-charge", "0.61", "--emergency-credit", "20", "--ecredit-availability", "8", "--debt-recovery-rate", "0.2")
	var future flows.Tariff
	if err := json.Unmarshal([]byte(run("tariffs_future_read")), &future); err != nil {
		t.Fatal(err)
	}
	d := decimal.RequireFromString
	if !future.UnitRateElementA.Equal(d("0.31234")) || !future.UnitRateElementB.Equal(d("0.12")) || !future.StandingCharge.Equal(d("0.61")) ||
		!future.PrepaymentEmergencyCredit.Equal(d("20")) || !future.PrepaymentECreditAvailability.Equal(d("8")) ||
		!future.PrepaymentDebtRecoveryRate.Equal(d("0.2")) || *future.ActivationDatetime != activation {
		t.Errorf("future tariff read back: %+v (activation %v)", future, *future.ActivationDatetime)
	}
	// Bad rates are refused before anything is sent.
	_, stderr, err := runEmop(t, "--mediator", addr, "-s", m.Spec.Serial, "tariffs_future_write", "--from-ts", activation,
		"--unit-rate", "1.5", "--standing-charge", "0.5")
	if err == nil || !strings.Contains(stderr, "unit_rate_element_a") {
		t.Errorf("rate 1.5: %v %s", err, stderr)
	}
	if _, stderr, err := runEmop(t, "--mediator", addr, "-s", m.Spec.Serial, "tariffs_future_write", "--from-ts", activation,
		"--unit-rate", "0.123456", "--standing-charge", "0.5"); err == nil || !strings.Contains(stderr, "decimal places") {
		t.Errorf("six decimal places: %v %s", err, stderr)
	}
	// So is an activation in the past, which Flows' API, CLI and SQL refuse too.
	if _, stderr, err := runEmop(t, "--mediator", addr, "-s", m.Spec.Serial, "tariffs_future_write", "--from-ts", "2020-01-01T00:00:00",
		"--unit-rate", "0.2", "--standing-charge", "0.5"); err == nil || !strings.Contains(stderr, "--from-ts") || !strings.Contains(stderr, "not in the future") {
		t.Errorf("a past activation: %v %s", err, stderr)
	}
	if st := m.State(now); !decimal.New(st.Future.RateA(), -5).Equal(d("0.31234")) {
		t.Errorf("a refused write changed the meter")
	}

	// A vended token raises the balance; the same token again is refused.
	tok, _ := sim.VendToken(m.Spec.Serial, m.Spec.Key, d("15"))
	before := decimal.New(m.State(now).Balance, -5)
	run("prepay_send_token", tok)
	if after := decimal.New(m.State(now).Balance, -5); !after.Sub(before).Equal(d("15")) {
		t.Errorf("balance %s → %s after a £15 token", before, after)
	}
	_, stderr, err = runEmop(t, "--mediator", addr, "-s", m.Spec.Serial, "prepay_send_token", tok)
	if err == nil || !strings.Contains(stderr, "NAK 6") {
		t.Errorf("replayed token: %v %q, want a refusal naming NAK 6", err, stderr)
	}
	if after := decimal.New(m.State(now).Balance, -5); !after.Sub(before).Equal(d("15")) {
		t.Errorf("the replay credited again: %s", after)
	}
	var evs []emop.Event
	if err := json.Unmarshal([]byte(run("event_log", "0")), &evs); err != nil || evs[0].EventID != 48 {
		t.Errorf("event_log 0: %+v %v", evs, err)
	}
	if out := run("obis_read", "ffc802"); !strings.Contains(out, `"object_name": "prepay_balance"`) {
		t.Errorf("obis_read: %s", out)
	}
	run("backlight_write", "always_on_sp")
	if got := run("backlight"); got != "backlight=always_on_sp" {
		t.Errorf("backlight after write: %s", got)
	}

	// Errors explain what failed.
	if _, stderr, err := runEmop(t, "--mediator", addr, "-s", "EML9999999999", "csq"); err == nil || !strings.Contains(stderr, "unknown meter") {
		t.Errorf("unknown meter: %q", stderr)
	}
	_ = fleet.SetOffline(fleet.Meters()[2].Spec.Serial, true)
	if _, stderr, err := runEmop(t, "--mediator", addr, "-s", fleet.Meters()[2].Spec.Serial, "csq"); err == nil || !strings.Contains(stderr, "unreachable") {
		t.Errorf("offline meter: %q", stderr)
	}
	if out, _, err := runEmop(t, "--mediator", addr, "list"); err != nil || !strings.Contains(out, m.Spec.Serial) {
		t.Errorf("list: %v\n%s", err, out)
	}
	if out, _, err := runEmop(t, "--mediator", addr, "--serials", fleet.Meters()[0].Spec.Serial+","+m.Spec.Serial, "csq"); err != nil || strings.Count(out, "csq=") != 2 {
		t.Errorf("--serials: %v\n%s", err, out)
	}
	// And directly, without a mediator.
	direct := m.Spec.IPAddress + ":" + itoa(m.Spec.Port)
	if out, _, err := runEmop(t, "--direct", direct, "--gap", "0", "-s", m.Spec.Serial, "serial_read"); err != nil || strings.TrimSpace(out) != "serial_read="+m.Spec.Serial {
		t.Errorf("--direct: %v %q", err, out)
	}
	if _, stderr, err := runEmop(t, "-s", m.Spec.Serial, "csq"); err == nil || !strings.Contains(stderr, "--mediator") {
		t.Errorf("no route: %q", stderr)
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
