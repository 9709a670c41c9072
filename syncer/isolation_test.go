package syncer_test

import (
	"context"
	"encoding/binary"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/sim"
	"github.com/flows-energy/flows/syncer"
)

// misreporting passes reads to a real transport, except that one meter
// reports an active unit rate of £1.00001, above what a meter may hold.
type misreporting struct {
	syncer.Meters
	serial string
}

func (m misreporting) Read(ctx context.Context, t meterconn.Target, id emop.ObjectID) ([]byte, error) {
	if t.Serial == m.serial && id == emop.ObjActivePrice {
		return binary.LittleEndian.AppendUint32(nil, 100001), nil
	}
	return m.Meters.Read(ctx, t, id)
}

// A meter that reports a value Flows cannot store, in the same slot group
// as healthy meters: the healthy ones are written in that run; the bad one
// is unhealthy, naming the field, keeps its other values, and after
// repeated failures is synced with the failing meters.
func TestBadValueIsolatedInItsGroup(t *testing.T) {
	t0 := time.Now().UTC().Truncate(time.Second)
	r := newRig(t, 6, t0, sim.Faults{})
	ctx := context.Background()
	var bad sim.Spec
	active := 0
	for _, m := range r.fleet.Meters() {
		if m.Spec.Mode == "active" {
			active++
			bad = m.Spec
		}
	}
	// One frequency, so that every meter is in one group per slot minute
	// and no other run's verdict follows the one under test.
	if _, err := r.store.Pool().Exec(ctx, `UPDATE flows.meter_metrics SET enabled = (run_frequency = '12hourly' OR name = 'SyncerPrepayBalance'),
		run_frequency = '12hourly'`); err != nil {
		t.Fatal(err)
	}
	client, err := meterconn.New(meterconn.Config{Attempts: 1, ReadTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := syncer.New(syncer.Config{Store: r.store, NewQueue: queue(r.store), Meters: misreporting{client, bad.Serial}, Owner: "iso",
		Now: r.clock.Now, ScheduleEvery: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var synced atomic.Int64
	eng.OnSynced = func(string, string) { synced.Add(1) }
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = eng.Stop(context.Background()) }()
	for deadline := time.Now().Add(60 * time.Second); synced.Load() < int64(active) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	for _, m := range r.fleet.Meters() {
		if m.Spec.Mode != "active" {
			continue
		}
		st, err := r.store.MeterStatus(ctx, m.Spec.Serial)
		if err != nil {
			t.Fatal(err)
		}
		if m.Spec.Serial == bad.Serial {
			if st.Shadow.Health == nil || *st.Shadow.Health != flows.HealthUnhealthy || !strings.Contains(st.Shadow.HealthDetails, "tariffs_active.unit_rate_element_a") {
				t.Errorf("bad meter: health %v %q, want unhealthy naming the field", st.Shadow.Health, st.Shadow.HealthDetails)
			}
			if st.Shadow.Balance == nil || st.Shadow.TariffsFuture == nil || st.Shadow.TariffsActive != nil {
				t.Errorf("bad meter: its good values must be kept and the bad tariff dropped: %+v", st.Shadow)
			}
			continue
		}
		if st.Shadow.TariffsActive == nil || st.Shadow.Balance == nil || *st.Shadow.Health != flows.HealthHealthy {
			t.Errorf("%s: not written in the bad meter's run: %+v", m.Spec.Serial, st.Shadow)
		}
	}
	// Twelve-hourly syncs keep failing on the rate: after FailingAfter of
	// them the meter counts as failing.
	for range flows.FailingAfter {
		r.clock.Advance(13 * time.Hour)
		if _, err := eng.SyncMeter(ctx, r.ids[bad.Serial], "12hourly"); err != nil {
			t.Fatal(err)
		}
	}
	var failures int
	if err := r.store.Pool().QueryRow(ctx, `SELECT consecutive_failures FROM flows.meter_sync_state WHERE meter_id = $1`, r.ids[bad.Serial]).Scan(&failures); err != nil {
		t.Fatal(err)
	}
	if failures < flows.FailingAfter {
		t.Errorf("%d failures in a row, want at least %d (the failing group)", failures, flows.FailingAfter)
	}
}

// nakAll is a meter that answers every read with NAK 4.
type nakAll struct{ syncer.Meters }

func (nakAll) Read(context.Context, meterconn.Target, emop.ObjectID) ([]byte, error) {
	return nil, &emop.NakError{Code: 4}
}

func (nakAll) Raw(context.Context, meterconn.Target, []byte) ([]byte, error) {
	return nil, &emop.NakError{Code: 4}
}

// A meter that refuses every read is unhealthy, saying so, not "healthy".
func TestMeterRefusingEverythingIsUnhealthy(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	r := newRig(t, 1, t0, sim.Faults{})
	ctx := context.Background()
	m := r.fleet.Meters()[0]
	eng, err := syncer.New(syncer.Config{Store: r.store, NewQueue: queue(r.store), Meters: nakAll{}, Owner: "nak", Now: r.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.SyncMeter(ctx, r.ids[m.Spec.Serial], syncer.OnDemand); err != nil {
		t.Fatal(err)
	}
	st, err := r.store.MeterStatus(ctx, m.Spec.Serial)
	if err != nil {
		t.Fatal(err)
	}
	if st.Shadow.Health == nil || *st.Shadow.Health != flows.HealthUnhealthy || !strings.HasPrefix(st.Shadow.HealthDetails, "NAK 4") ||
		!strings.Contains(st.Shadow.HealthDetails, "on every read") {
		t.Errorf("health %v %q, want unhealthy: NAK 4 … on every read", st.Shadow.Health, st.Shadow.HealthDetails)
	}
	if st.Shadow.LastHealthyAt != nil {
		t.Errorf("last_healthy_at moved to %v for a meter that refused everything", st.Shadow.LastHealthyAt)
	}
}

// linkDrops answers the signal read, then the link fails.
type linkDrops struct{ syncer.Meters }

func (l linkDrops) Read(ctx context.Context, t meterconn.Target, id emop.ObjectID) ([]byte, error) {
	if id == emop.ObjCSQ {
		return l.Meters.Read(ctx, t, id)
	}
	return nil, &meterconn.CommError{Kind: "timeout", Attempts: 3, Err: context.DeadlineExceeded}
}

// A meter that answered its signal read before the link failed is
// unhealthy, but keeps the signal it reported: csq is written NULL (an
// offline period) only when the meter said nothing at all.
func TestLinkFailureAfterASignalKeepsTheSignal(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	r := newRig(t, 1, t0, sim.Faults{})
	ctx := context.Background()
	m := r.fleet.Meters()[0]
	client, err := meterconn.New(meterconn.Config{Attempts: 1, ReadTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := syncer.New(syncer.Config{Store: r.store, NewQueue: queue(r.store), Meters: linkDrops{client}, Owner: "drop", Now: r.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.SyncMeter(ctx, r.ids[m.Spec.Serial], syncer.OnDemand); err != nil {
		t.Fatal(err)
	}
	st, err := r.store.MeterStatus(ctx, m.Spec.Serial)
	if err != nil {
		t.Fatal(err)
	}
	if st.Shadow.Health == nil || *st.Shadow.Health != flows.HealthUnhealthy || st.Shadow.HealthDetails != "timeout" {
		t.Errorf("health %v %q, want unhealthy: timeout", st.Shadow.Health, st.Shadow.HealthDetails)
	}
	if st.Shadow.CSQ == nil || st.LastOnline == nil {
		t.Errorf("csq %v, last online %v: the signal the meter reported was thrown away", st.Shadow.CSQ, st.LastOnline)
	}
}

// A meter that refuses some reads stays healthy, and its health says
// which reads it refused.
func TestPartialRefusalNamesWhatWasRefused(t *testing.T) {
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	r := newRig(t, 1, t0, sim.Faults{})
	ctx := context.Background()
	m := r.fleet.Meters()[0]
	client, err := meterconn.New(meterconn.Config{Attempts: 1, ReadTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	meters := refusing{Meters: client, nak: map[emop.ObjectID]bool{emop.ObjVoltage: true}}
	eng, err := syncer.New(syncer.Config{Store: r.store, NewQueue: queue(r.store), Meters: meters, Owner: "partial", Now: r.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.SyncMeter(ctx, r.ids[m.Spec.Serial], syncer.OnDemand); err != nil {
		t.Fatal(err)
	}
	st, err := r.store.MeterStatus(ctx, m.Spec.Serial)
	if err != nil {
		t.Fatal(err)
	}
	if st.Shadow.Health == nil || *st.Shadow.Health != flows.HealthHealthy || !strings.Contains(st.Shadow.HealthDetails, "SyncerVoltage: NAK") {
		t.Errorf("health %v %q, want healthy naming the refused voltage read", st.Shadow.Health, st.Shadow.HealthDetails)
	}
}
