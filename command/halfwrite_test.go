package command_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/command"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/meterop"
)

// nakNth passes everything to a real transport but answers NAK to the
// n-th write it is asked for.
type nakNth struct {
	meterop.Meters
	n      int32
	writes atomic.Int32
}

func (m *nakNth) Write(ctx context.Context, t meterconn.Target, id emop.ObjectID, p []byte) error {
	if m.writes.Add(1) == m.n {
		return &emop.NakError{Code: 3}
	}
	return m.Meters.Write(ctx, t, id, p)
}

// A future-tariff sequence the meter refuses at any write leaves the meter
// holding the tariff it held before, never a mix of two requests, and the
// request says how far it got.
func TestRefusedWriteNeverHalfWritesATariff(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	r := newRig(t, start, "127.115")
	ctx := context.Background()
	m := r.fleet.Meters()[1]
	id := r.ids[m.Spec.Serial]
	held := m.State(r.clock.Now()).Future
	client, err := meterconn.New(meterconn.Config{Attempts: 1, ReadTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	d := func(s string) *string { return &s }
	for n := int32(1); n <= 11; n++ {
		act := start.Add(time.Duration(48+n) * time.Hour).Format("2006-01-02T15:04:05")
		tar := flows.Tariff{StandingCharge: ptr("0.61"), UnitRateElementA: ptr("0.41"), UnitRateElementB: ptr("0.21"),
			PrepaymentEmergencyCredit: ptr("20"), PrepaymentECreditAvailability: ptr("8"), PrepaymentDebtRecoveryRate: ptr("0.2"), ActivationDatetime: d(act)}
		req, err := r.store.SetFutureTariff(ctx, id, tar, "test", "test")
		if err != nil {
			t.Fatal(err)
		}
		meters := &nakNth{Meters: client, n: n}
		p := command.New(command.Config{Store: r.store, Meters: meters, Now: r.clock.Now, ClockThreshold: -1})
		if _, err := p.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		got, _ := r.store.TariffRequest(ctx, req.ID)
		if got.Status != flows.RequestFailed || !strings.Contains(got.LastError, "NAK 3") {
			t.Errorf("NAK at write %d: request %s %q", n, got.Status, got.LastError)
		}
		if n > 1 && !strings.Contains(got.LastError, "restored") {
			t.Errorf("NAK at write %d: %q does not say the previous tariff was restored", n, got.LastError)
		}
		if now := m.State(r.clock.Now()).Future; now != held {
			t.Errorf("NAK at write %d: the meter holds %+v, not the tariff it held (%+v)", n, now, held)
		}
	}
}

// A refused sequence on a meter whose future tariff already activated puts
// its amounts back with no change scheduled: re-arming a past activation
// would make the meter activate it at once.
func TestRestoreNeverRearmsAPastActivation(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	r := newRig(t, start, "127.116")
	ctx := context.Background()
	m := r.fleet.Meters()[1]
	id := r.ids[m.Spec.Serial]
	client, err := meterconn.New(meterconn.Config{Attempts: 1, ReadTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	d := func(s string) *string { return &s }
	tariff := func(rate string, act time.Time) flows.Tariff {
		return flows.Tariff{StandingCharge: ptr("0.61"), UnitRateElementA: ptr(rate), UnitRateElementB: ptr(rate),
			PrepaymentEmergencyCredit: ptr("20"), PrepaymentECreditAvailability: ptr("8"), PrepaymentDebtRecoveryRate: ptr("0.2"),
			ActivationDatetime: d(act.Format("2006-01-02T15:04:05"))}
	}
	// A tariff pushed and activated: the meter's future tariff now holds a
	// past activation.
	if _, err := r.store.SetFutureTariff(ctx, id, tariff("0.33", start.Add(time.Hour)), "test", "test"); err != nil {
		t.Fatal(err)
	}
	runOnce(t, r.pusher(t, nil))
	r.clock.Advance(2 * time.Hour)
	runOnce(t, r.pusher(t, nil))
	active := m.State(r.clock.Now()).Active
	if active.RateA() != 33000 {
		t.Fatalf("the first tariff did not activate: rate %d", active.RateA())
	}
	// A new request the meter refuses at its seventh write.
	if _, err := r.store.SetFutureTariff(ctx, id, tariff("0.44", r.clock.Now().Add(72*time.Hour)), "test", "test"); err != nil {
		t.Fatal(err)
	}
	p := command.New(command.Config{Store: r.store, Meters: &nakNth{Meters: client, n: 7}, Now: r.clock.Now, ClockThreshold: -1})
	if _, err := p.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(time.Minute)
	st := m.State(r.clock.Now())
	if st.Active.RateA() != 33000 {
		t.Errorf("the restore changed the active tariff: rate %d", st.Active.RateA())
	}
	if st.Future.Activation != 0 {
		t.Errorf("the restored future tariff is armed (activation %d), want the epoch: no change scheduled", st.Future.Activation)
	}
}
