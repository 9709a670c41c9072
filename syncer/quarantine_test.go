package syncer_test

import (
	"context"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/syncer"
	"github.com/shopspring/decimal"
)

// A future tariff ships to a replica like any other value (the
// replication is not mistaken for an operator's request on a passive
// meter), and an entry the replica keeps refusing is quarantined after a
// bounded number of attempts while later updates flow on, in order.
func TestReplicaShipsTariffsAndQuarantinesRefusals(t *testing.T) {
	ctx := context.Background()
	primary := postgres.New(postgres.Config{Pool: pgtest.NewPool(t), Replicate: true})
	replicaURL := pgtest.NewDB(t)
	replicaPool, err := postgres.Open(ctx, replicaURL)
	if err != nil {
		t.Fatal(err)
	}
	defer replicaPool.Close()
	replica := postgres.NewStore(replicaPool)
	const serial = "EML2137580827"
	pm, err := primary.CreateMeter(ctx, flows.NewMeter{Serial: serial, IPAddress: "127.84.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replica.CreateMeter(ctx, flows.NewMeter{Serial: serial, Mode: flows.ModePassive}); err != nil {
		t.Fatal(err)
	}
	name, _ := postgres.ReplicaName(replicaURL)
	rep, err := syncer.NewReplicator(syncer.ReplicatorConfig{Primary: primary, Name: name, Interval: 10 * time.Millisecond, MaxAttempts: 3,
		Open: func(ctx context.Context) (syncer.Replica, error) { return postgres.OpenReplica(ctx, replicaURL) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rep.Stop(ctx) }()

	at := time.Now().UTC().Truncate(time.Second)
	d := func(s string) *decimal.Decimal { v := decimal.RequireFromString(s); return &v }
	act := at.Add(72 * time.Hour).Format("2006-01-02T15:04:05")
	future := &flows.Tariff{StandingCharge: d("0.5"), UnitRateElementA: d("0.31"), ActivationDatetime: &act}
	if err := primary.ApplySync(ctx, flows.SyncResult{MeterID: pm.ID, At: at, Reached: true, TouchHealth: true,
		Groups: []string{"tariffs_future", "balance"}, Shadow: flows.ShadowUpdate{TariffsFuture: future, Balance: d("20")}}, "12hourly", ""); err != nil {
		t.Fatal(err)
	}
	// An entry the replica cannot take (csq outside 0-31), then a good one.
	if _, err := primary.Pool().Exec(ctx, `INSERT INTO flows.shadow_outbox (serial, changes) VALUES ($1, '{"csq": 99}')`, serial); err != nil {
		t.Fatal(err)
	}
	if err := primary.ApplySync(ctx, flows.SyncResult{MeterID: pm.ID, At: at.Add(time.Hour), Reached: true, TouchHealth: true,
		Groups: []string{"balance"}, Shadow: flows.ShadowUpdate{Balance: d("19.5")}}, "hourly", ""); err != nil {
		t.Fatal(err)
	}
	var st *flows.MeterStatus
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if st, err = replica.MeterStatus(ctx, serial); err == nil && st.Shadow.Balance != nil && st.Shadow.Balance.Equal(*d("19.5")) {
			break
		}
	}
	if st == nil || st.Shadow.Balance == nil || !st.Shadow.Balance.Equal(*d("19.5")) {
		t.Fatalf("the update after the refused entry never arrived: %+v", st)
	}
	if st.Shadow.TariffsFuture == nil || st.Shadow.TariffsFuture.UnitRateElementA == nil || !st.Shadow.TariffsFuture.UnitRateElementA.Equal(*d("0.31")) {
		t.Errorf("replica future tariff %+v", st.Shadow.TariffsFuture)
	}
	var requests int
	_ = replicaPool.QueryRow(ctx, `SELECT count(*) FROM flows.tariff_requests`).Scan(&requests)
	if requests != 0 {
		t.Errorf("the replicated tariff made %d tariff requests on the replica", requests)
	}
	statuses, err := primary.ReplicaStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(statuses) != 1 || statuses[0].Quarantined != 1 || statuses[0].Backlog != 0 || statuses[0].FailingID != nil {
		t.Errorf("replica status %+v, want one quarantined entry and nothing waiting", statuses)
	}
	var reason string
	var attempts int
	if err := primary.Pool().QueryRow(ctx, `SELECT error, attempts FROM flows.replica_quarantine`).Scan(&reason, &attempts); err != nil {
		t.Fatal(err)
	}
	if attempts != 3 || reason == "" {
		t.Errorf("quarantined after %d attempts (%q), want 3 with the reason", attempts, reason)
	}
}
