package syncer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/postgres"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// A replica that is down while the primary syncs receives every update, in
// order, when it comes back; the primary never waits for it.
func TestReplicaReceivesEverythingInOrder(t *testing.T) {
	ctx := context.Background()
	const serial = "EML2137580826"
	rr := newReplicaRig(t, serial, 50*time.Millisecond, 0)
	primary, replica, replicaPool, replicaURL := rr.primary, rr.replica, rr.replicaPool, rr.replicaURL
	pm := &flows.Meter{ID: rr.meterID}

	t0 := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	apply := func(i int, bal string) {
		t.Helper()
		b := decimal.RequireFromString(bal)
		csq := 10 + i
		tar := decimal.RequireFromString("0.2843")
		res := flows.SyncResult{MeterID: pm.ID, At: t0.Add(time.Duration(i) * time.Hour), Reached: true, TouchHealth: true,
			Shadow: flows.ShadowUpdate{Balance: &b, CSQ: &csq, TariffsActive: &flows.Tariff{UnitRateElementA: &tar}}, Groups: []string{"balance", "csq"}}
		start := time.Now()
		if err := primary.ApplySync(ctx, res, "hourly", ""); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("the primary waited %v for the replica", d)
		}
	}
	waitBalance := func(want string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if m, err := replica.MeterStatus(ctx, serial); err == nil && m.Shadow.Balance != nil && m.Shadow.Balance.Equal(decimal.RequireFromString(want)) {
				return
			}
		}
		st, _ := replica.MeterStatus(ctx, serial)
		t.Fatalf("replica balance %v, want %s", st.Shadow.Balance, want)
	}
	apply(0, "10")
	waitBalance("10")

	// Take the replica down: no connections allowed, existing ones ended.
	cfg, _ := pgx.ParseConfig(replicaURL)
	admin, err := pgx.Connect(ctx, pgtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	db := pgx.Identifier{cfg.Database}.Sanitize()
	replicaPool.Close()
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+db+" ALLOW_CONNECTIONS false"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", cfg.Database); err != nil {
		t.Fatal(err)
	}
	for i, b := range []string{"9.5", "8.25", "7.125", "6"} {
		apply(i+1, b)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+db+" ALLOW_CONNECTIONS true"); err != nil {
		t.Fatal(err)
	}
	replicaPool, err = postgres.Open(ctx, replicaURL)
	if err != nil {
		t.Fatal(err)
	}
	defer replicaPool.Close()
	replica = postgres.NewStore(replicaPool)
	waitBalance("6")

	rows, err := replicaPool.Query(ctx, `SELECT b."timestamp", b.balance::text FROM flows.meter_prepay_balance b
		JOIN flows.meter_registry r ON r.id = b.meter_id WHERE r.serial = $1 ORDER BY b."timestamp"`, serial)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var ts time.Time
		var b string
		_ = rows.Scan(&ts, &b)
		got = append(got, ts.UTC().Format("15:04")+"="+b)
	}
	if want := "10:00=10.00000 11:00=9.50000 12:00=8.25000 13:00=7.12500 14:00=6.00000"; strings.Join(got, " ") != want {
		t.Errorf("replica balance history:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	st, _ := replica.MeterStatus(ctx, serial)
	if st.Shadow.CSQ == nil || *st.Shadow.CSQ != 14 || st.Shadow.TariffsActive == nil || *st.Shadow.Health != flows.HealthHealthy {
		t.Errorf("replica shadow: %+v", st.Shadow)
	}
	// Shipped entries are pruned from the primary's outbox.
	var left int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		_ = primary.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.shadow_outbox`).Scan(&left)
		if left == 0 {
			break
		}
	}
	if left != 0 {
		t.Errorf("%d outbox entries left after shipping", left)
	}
}
