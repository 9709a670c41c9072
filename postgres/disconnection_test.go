package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/postgres"
	"github.com/shopspring/decimal"
)

// Where a meter's event log says nothing, its self-disconnection is found
// from its balance: opened where the slope crosses minus the emergency
// credit, closed at the first reading above it, as the shadow records
// each balance; a meter in credit mode at the same balance is never off
// supply; an event period whose reconnection is not read yet ends at the
// balance's recovery. The report counts the periods within its range.
func TestSelfDisconnectionFromTheBalance(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	store := postgres.NewStore(pool)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	tariff := `{"prepayment_ecredit_availability": 10, "prepayment_emergency_credit": 15}`
	meter := func(serial string, prepay bool) string {
		t.Helper()
		id := mustID(t, pool, `INSERT INTO flows.meter_registry (serial, prepay_enabled) VALUES ($1, $2) RETURNING id`, serial, prepay)
		mustExec(t, pool, `UPDATE flows.meter_shadows SET tariffs_active = $2 WHERE id = $1`, id, tariff)
		return id
	}
	balanceMeter, creditMeter, eventMeter := meter("EML1000000301", true), meter("EML1000000302", false), meter("EML1000000303", true)
	// Hourly balances written through the shadow, as syncs write them:
	// -13, -14, -15.5 (the floor crossed two thirds of the way from
	// the second to the third), -15.6, then a top-up read at +20.
	balances := []string{"-13", "-14", "-15.5", "-15.6", "20", "19"}
	for h, b := range balances {
		at := t0.Add(time.Duration(h) * time.Hour)
		for _, id := range []string{balanceMeter, creditMeter, eventMeter} {
			mustExec(t, pool, `UPDATE flows.meter_shadows SET balance = $2, updated_at = $3 WHERE id = $1`, id, b, at)
		}
		if h == 2 {
			var open int
			_ = pool.QueryRow(ctx, `SELECT count(*) FROM flows.meter_self_disconnections WHERE meter_id = $1 AND ended_at IS NULL`, balanceMeter).Scan(&open)
			if open != 1 {
				t.Errorf("at the floor, %d open self-disconnections recorded, want 1", open)
			}
		}
	}
	type period struct {
		start, end time.Time
		source     string
	}
	get := func(id string) []period {
		t.Helper()
		rows, err := pool.Query(ctx, `SELECT started_at, ended_at, source FROM flows.meter_self_disconnections WHERE meter_id = $1 ORDER BY started_at`, id)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var ps []period
		for rows.Next() {
			var p period
			if err := rows.Scan(&p.start, &p.end, &p.source); err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		return ps
	}
	crossed, topup := t0.Add(time.Hour+40*time.Minute), t0.Add(4*time.Hour)
	if ps := get(balanceMeter); len(ps) != 1 || ps[0].source != "balance" || ps[0].start.Sub(crossed).Abs() > time.Second || !ps[0].end.Equal(topup) {
		t.Errorf("from the balance: %+v, want one period %v to %v", ps, crossed, topup)
	}
	if ps := get(creditMeter); len(ps) != 0 {
		t.Errorf("a meter in credit mode: %+v, want none", ps)
	}

	// The event log read later says when it really was: the disconnection
	// event replaces the balance's guess; with no reconnection event yet,
	// the balance's recovery ends it.
	cut := t0.Add(time.Hour + 25*time.Minute)
	mustExec(t, pool, `INSERT INTO flows.meter_event_log (meter_id, "timestamp", event_type, event_set) VALUES ($1, $2, 49, 1)`, eventMeter, cut)
	mustExec(t, pool, `SELECT flows.detect_self_disconnections($1, $2)`, eventMeter, cut)
	if ps := get(eventMeter); len(ps) != 1 || ps[0].source != "events" || !ps[0].start.Equal(cut) || !ps[0].end.Equal(topup) {
		t.Errorf("from the event log: %+v, want one period %v to %v", ps, cut, topup)
	}
	back := topup.Add(-10 * time.Minute)
	mustExec(t, pool, `INSERT INTO flows.meter_event_log (meter_id, "timestamp", event_type, event_set) VALUES ($1, $2, 50, 1)`, eventMeter, back)
	mustExec(t, pool, `SELECT flows.detect_self_disconnections($1, $2)`, eventMeter, back)
	if ps := get(eventMeter); len(ps) != 1 || !ps[0].start.Equal(cut) || !ps[0].end.Equal(back) {
		t.Errorf("with the reconnection event: %+v, want one period %v to %v", ps, cut, back)
	}

	rep, err := store.SelfDisconnectionReport(ctx, t0, t0.Add(24*time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	want := (topup.Sub(crossed) + back.Sub(cut)).Hours()
	if rep.Disconnections != 2 || rep.Meters != 2 || rep.Ongoing != 0 || rep.TotalHours.InexactFloat64()-want > 0.01 || want-rep.TotalHours.InexactFloat64() > 0.01 {
		t.Errorf("report %+v, want 2 disconnections of 2 meters, %.2f hours", rep, want)
	}
	// A range that ends inside a period counts its hours to there.
	rep, err = store.SelfDisconnectionReport(ctx, t0, t0.Add(2*time.Hour), "")
	if err != nil || rep.Disconnections != 2 {
		t.Fatalf("report to 02:00: %+v %v", rep, err)
	}
	if want := (t0.Add(2*time.Hour).Sub(crossed) + t0.Add(2*time.Hour).Sub(cut)).Hours(); rep.TotalHours.Sub(decimal.NewFromFloat(want)).Abs().InexactFloat64() > 0.01 {
		t.Errorf("to 02:00 the report counts %s hours, want %.2f", rep.TotalHours, want)
	}
	if _, err := store.SelfDisconnectionReport(ctx, t0, t0, ""); err == nil {
		t.Error("an empty range was reported")
	}
}
