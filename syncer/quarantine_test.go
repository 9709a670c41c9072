package syncer_test

import (
	"context"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/syncer"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"
)

// A future tariff ships to a replica like any other value (the
// replication is not mistaken for an operator's request on a passive
// meter), and an entry the replica keeps refusing is quarantined after a
// bounded number of attempts while later updates flow on, in order.
func TestReplicaShipsTariffsAndQuarantinesRefusals(t *testing.T) {
	ctx := context.Background()
	const serial = "EML2137580827"
	rr := newReplicaRig(t, serial, 10*time.Millisecond, 3)
	primary, replica, replicaPool, pm := rr.primary, rr.replica, rr.replicaPool, rr.meterID
	at := time.Now().UTC().Truncate(time.Second)
	d := func(s string) *decimal.Decimal { v := decimal.RequireFromString(s); return &v }
	act := at.Add(72 * time.Hour).Format("2006-01-02T15:04:05")
	future := &flows.Tariff{StandingCharge: d("0.5"), UnitRateElementA: d("0.31"), ActivationDatetime: &act}
	if err := primary.ApplySync(ctx, flows.SyncResult{MeterID: pm, At: at, Reached: true, TouchHealth: true,
		Groups: []string{"tariffs_future", "balance"}, Shadow: flows.ShadowUpdate{TariffsFuture: future, Balance: d("20")}}, "12hourly", ""); err != nil {
		t.Fatal(err)
	}
	// An entry the replica cannot take (csq outside 0-31), then a good one.
	if _, err := primary.Pool().Exec(ctx, `INSERT INTO flows.shadow_outbox (serial, changes) VALUES ($1, '{"csq": 99}')`, serial); err != nil {
		t.Fatal(err)
	}
	if err := primary.ApplySync(ctx, flows.SyncResult{MeterID: pm, At: at.Add(time.Hour), Reached: true, TouchHealth: true,
		Groups: []string{"balance"}, Shadow: flows.ShadowUpdate{Balance: d("19.5")}}, "hourly", ""); err != nil {
		t.Fatal(err)
	}
	var st *flows.MeterStatus
	var err error
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

// replicaRig is a primary that replicates, a replica database with the
// meter as a passive twin, and a running replicator between them.
type replicaRig struct {
	primary, replica *postgres.Store
	replicaPool      *pgxpool.Pool
	replicaURL       string
	meterID          string // on the primary
}

func newReplicaRig(t *testing.T, serial string, interval time.Duration, maxAttempts int) *replicaRig {
	t.Helper()
	ctx := context.Background()
	rr := &replicaRig{primary: postgres.New(postgres.Config{Pool: pgtest.NewPool(t), Replicate: true}), replicaURL: pgtest.NewDB(t)}
	var err error
	if rr.replicaPool, err = postgres.Open(ctx, rr.replicaURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rr.replicaPool.Close() })
	rr.replica = postgres.NewStore(rr.replicaPool)
	pm, err := rr.primary.CreateMeter(ctx, flows.NewMeter{Serial: serial, IPAddress: "127.84.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	rr.meterID = pm.ID
	if _, err := rr.replica.CreateMeter(ctx, flows.NewMeter{Serial: serial, Mode: flows.ModePassive}); err != nil {
		t.Fatal(err)
	}
	name, err := postgres.ReplicaName(rr.replicaURL)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := syncer.NewReplicator(syncer.ReplicatorConfig{Primary: rr.primary, Name: name, Interval: interval, MaxAttempts: maxAttempts,
		Open: func(ctx context.Context) (syncer.Replica, error) { return postgres.OpenReplica(ctx, rr.replicaURL) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rep.Stop(context.Background()) })
	return rr
}
