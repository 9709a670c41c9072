package command_test

import (
	"context"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/command"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
)

func rolloutTariff(start time.Time) flows.Tariff {
	act := start.Add(96 * time.Hour).Format("2006-01-02T15:04:05")
	return flows.Tariff{StandingCharge: ptr("0.52"), UnitRateElementA: ptr("0.27"), UnitRateElementB: ptr("0.14"),
		PrepaymentEmergencyCredit: ptr("15"), PrepaymentECreditAvailability: ptr("10"), PrepaymentDebtRecoveryRate: ptr("0.25"), ActivationDatetime: &act}
}

// A rollout to 200 meters, a tenth of them offline: progress per meter,
// the offline ones retried until they take it. (Three-phase meters take
// no tariffs: they are not among the 200.)
func TestRolloutWithOfflineMeters(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	r := newRigN(t, 230, start, "127.103")
	ctx := context.Background()
	var serials, offline []string
	for _, m := range r.fleet.Meters() {
		if m.Spec.Mode != "active" || emop.IsThreePhase(m.Spec.Hardware) || len(serials) == 200 {
			continue
		}
		serials = append(serials, m.Spec.Serial)
		if len(serials)%10 == 0 {
			offline = append(offline, m.Spec.Serial)
			_ = r.fleet.SetOffline(m.Spec.Serial, true)
		}
	}
	ro, err := r.store.CreateRollout(ctx, flows.RolloutTargets{Serials: serials}, rolloutTariff(start), 20, 0, "frank")
	if err != nil {
		t.Fatal(err)
	}
	if ro.Meters != 200 || ro.Progress["pending"] != 200 {
		t.Fatalf("new rollout: %+v", ro)
	}
	// No takeover here: a lease a loaded machine does not let lapse
	// mid-pass (CI saw 7 pushes stop "sending" at 200 ms).
	const lease = 2 * time.Second
	p := r.pusherLease(t, nil, lease)
	runOnce(t, p)
	ro, _ = r.store.Rollout(ctx, ro.ID)
	if ro.Progress["verified"] != 180 || ro.Progress["pending"] != 20 || ro.Status != "running" {
		t.Fatalf("after the first pass: %v %s", ro.Progress, ro.Status)
	}
	var retried int
	_ = r.store.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.tariff_requests q JOIN flows.meter_registry m ON m.id = q.meter_id
		WHERE q.rollout_id = $1 AND q.status = 'pending' AND q.attempts = 1 AND q.last_error IN ('unreachable', 'timeout') AND m.serial = ANY($2)`, ro.ID, offline).Scan(&retried)
	// Unreachable, or (on a loaded machine, the connection not refused in
	// time) a timeout: either way retried, saying why.
	if retried != 20 {
		var got []string
		rows, _ := r.store.Pool().Query(ctx, `SELECT q.status || ' ' || q.attempts || ' ' || coalesce(q.last_error, '') FROM flows.tariff_requests q
			JOIN flows.meter_registry m ON m.id = q.meter_id WHERE q.rollout_id = $1 AND m.serial = ANY($2)`, ro.ID, offline)
		for rows.Next() {
			var s string
			_ = rows.Scan(&s)
			got = append(got, s)
		}
		rows.Close()
		t.Errorf("%d offline meters waiting to retry with their reason, want 20: %q", retried, got)
	}
	for _, s := range offline {
		_ = r.fleet.SetOffline(s, false)
	}
	time.Sleep(5 * time.Millisecond)
	runOnce(t, p)
	ro, _ = r.store.Rollout(ctx, ro.ID)
	// On a loaded machine a push can still lose its lease mid-pass and
	// stop ("sending" until the lease expires); the next pass resumes it,
	// as after a crash. Give it those passes.
	for i := 0; i < 5 && ro.Status != "completed"; i++ {
		time.Sleep(lease + 100*time.Millisecond)
		runOnce(t, p)
		ro, _ = r.store.Rollout(ctx, ro.ID)
	}
	if ro.Progress["verified"] != 200 || ro.Status != "completed" {
		t.Errorf("after they came back: %v %s", ro.Progress, ro.Status)
	}
}

// A rollout stops when more than its threshold of meters fail.
func TestRolloutAborts(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	r := newRigN(t, 12, start, "127.104")
	ctx := context.Background()
	var serials []string
	for i, m := range r.fleet.Meters() {
		if m.Spec.Mode == "active" {
			serials = append(serials, m.Spec.Serial)
			if i%2 == 0 {
				_ = r.fleet.SetOffline(m.Spec.Serial, true)
			}
		}
	}
	ro, err := r.store.CreateRollout(ctx, flows.RolloutTargets{Serials: serials}, rolloutTariff(start), 30, 0, "frank")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := meterconn.New(meterconn.Config{Attempts: 1, ReadTimeout: time.Second})
	p := command.New(command.Config{Store: r.store, Meters: c, Now: r.clock.Now, MaxAttempts: 1, Workers: 2})
	runOnce(t, p)
	ro, _ = r.store.Rollout(ctx, ro.ID)
	if ro.Status != "aborted" || ro.Note == "" {
		t.Errorf("rollout %s (%q), progress %v: want aborted", ro.Status, ro.Note, ro.Progress)
	}
	if ro.Progress["pending"] != 0 {
		t.Errorf("requests still pending after the abort: %v", ro.Progress)
	}
	for _, bad := range []struct {
		pct, rate int
		field     string
	}{{0, 0, "abort_failure_pct"}, {20, -1, "rate_per_minute"}} {
		if _, err := r.store.CreateRollout(ctx, flows.RolloutTargets{Serials: serials}, rolloutTariff(start), bad.pct, bad.rate, "x"); flows.ErrorField(err) != bad.field {
			t.Errorf("bad %s: %v", bad.field, err)
		}
	}
	if _, err := r.store.CreateRollout(ctx, flows.RolloutTargets{ESCOCode: "NOPE"}, rolloutTariff(start), 20, 0, "x"); flows.ErrorField(err) != "meters" {
		t.Errorf("no meters: %v", err)
	}
}

// With a rate, requests are spread: only the first is due at once.
func TestRolloutRateLimit(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	r := newRigN(t, 6, start, "127.105")
	ctx := context.Background()
	var serials []string
	for _, m := range r.fleet.Meters() {
		serials = append(serials, m.Spec.Serial)
	}
	ro, err := r.store.CreateRollout(ctx, flows.RolloutTargets{Serials: serials}, rolloutTariff(start), 20, 2, "frank")
	if err != nil {
		t.Fatal(err)
	}
	runOnce(t, r.pusher(t, nil))
	ro, _ = r.store.Rollout(ctx, ro.ID)
	if ro.Progress["verified"] != 1 || ro.Progress["pending"] != 5 {
		t.Errorf("2 a minute: %v, want one pushed now and five waiting their turn", ro.Progress)
	}
}
