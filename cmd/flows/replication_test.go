package main_test

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/sim"
	"github.com/flows-energy/flows/syncer"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/shopspring/decimal"
)

// replicatedShadow is every shadow column the outbox carries, as text.
const replicatedShadow = `SELECT coalesce(balance::text, '-') || '|' || coalesce(emergency_credit::text, '-') || '|' || coalesce(voltage::text, '-') ||
	'|' || coalesce(import_a::text, '-') || '|' || coalesce(export_a::text, '-') || '|' || coalesce(import_b::text, '-') || '|' || coalesce(export_b::text, '-') ||
	'|' || coalesce(tariffs_active::text, '-') || '|' || coalesce(tariffs_future::text, '-') || '|' || coalesce(csq::text, '-') ||
	'|' || coalesce(network_operator::text, '-') || '|' || coalesce(health::text, '-') || '|' || coalesce(health_details, '-') ||
	'|' || coalesce(clock_time_diff_seconds::text, '-') || '|' || coalesce(backlight, '-') || '|' || coalesce(load_switch, '-')
	FROM flows.meter_shadows s JOIN flows.meter_registry r ON r.id = s.id WHERE r.serial = $1`

// history is a meter's balance and signal history, in order, as text.
const history = `SELECT coalesce(string_agg(h, ' ' ORDER BY h), '') FROM (
	SELECT 'b' || to_char(b."timestamp" AT TIME ZONE 'UTC', 'HH24:MI:SS.US') || '=' || b.balance AS h FROM flows.meter_prepay_balance b
		JOIN flows.meter_registry r ON r.id = b.meter_id WHERE r.serial = $1
	UNION ALL SELECT 'c' || to_char(c."timestamp" AT TIME ZONE 'UTC', 'HH24:MI:SS.US') || '=' || coalesce(c.csq::text, 'null') FROM flows.meter_csq c
		JOIN flows.meter_registry r ON r.id = c.meter_id WHERE r.serial = $1) x`

// Everything a sync or a command writes to a shadow reaches a replica
// where the meter is passive — both tariffs included — although the
// replica is down for part of the run and flows serve is restarted while
// it is: afterwards the replica's shadow equals the primary's and its
// history holds every row the primary recorded, in order.
func TestReplicationThroughRestarts(t *testing.T) {
	ctx := context.Background()
	primaryURL, replicaURL := pgtest.NewDB(t), pgtest.NewDB(t)
	ppool, err := postgres.Open(ctx, primaryURL)
	if err != nil {
		t.Fatal(err)
	}
	defer ppool.Close()
	primary := postgres.NewStore(ppool)
	rpool, err := postgres.Open(ctx, replicaURL)
	if err != nil {
		t.Fatal(err)
	}
	replica := postgres.NewStore(rpool)
	clock := sim.NewScaledClock(time.Now(), 1)
	spec := sim.GenerateFleet(1, sim.FleetOptions{AddressPrefix: "127.108", Secret: []byte("replica")})[0]
	m := sim.NewMeter(spec, clock.Now())
	fleet := sim.NewFleet([]*sim.Meter{m}, clock, nil)
	if err := fleet.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer fleet.Stop()
	spec = fleet.Meters()[0].Spec
	pm, err := primary.CreateMeter(ctx, flows.NewMeter{Serial: spec.Serial, IPAddress: spec.IPAddress, Port: spec.Port, Hardware: spec.Hardware})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replica.CreateMeter(ctx, flows.NewMeter{Serial: spec.Serial, Mode: flows.ModePassive, Hardware: spec.Hardware}); err != nil {
		t.Fatal(err)
	}
	serve := func() *exec.Cmd {
		cmd := exec.Command(flowsBin, "serve", "--components", "sync,commands", "--database-url", primaryURL, "--meter-gap", "0",
			"--replica-database-url", replicaURL)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(40 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if ok() {
				return
			}
		}
		t.Fatalf("timed out waiting for %s", what)
	}
	text := func(pool interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}, q string) string {
		var s string
		if err := pool.QueryRow(ctx, q, spec.Serial).Scan(&s); err != nil {
			return "error: " + err.Error()
		}
		return s
	}

	first := serve()
	// The first sync (a new meter is due at once) fills the shadow; both
	// tariffs included.
	waitFor("the first sync to reach the replica", func() bool {
		return strings.Contains(text(rpool, replicatedShadow), "unit_rate_element_a")
	})

	// The replica goes away; meanwhile a top-up, a future tariff and an
	// on-demand sync happen, and flows serve is restarted.
	admin, err := pgx.Connect(ctx, pgtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	cfg, _ := pgx.ParseConfig(replicaURL)
	db := pgx.Identifier{cfg.Database}.Sanitize()
	rpool.Close()
	for _, q := range []string{"ALTER DATABASE " + db + " ALLOW_CONNECTIONS false",
		fmt.Sprintf("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s'", cfg.Database)} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	tok, _ := sim.VendToken(spec.Serial, spec.Key, decimal.RequireFromString("7.5"))
	tu, err := primary.CreateTopup(ctx, pm.ID, tok, nil, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	d := func(s string) *decimal.Decimal { v := decimal.RequireFromString(s); return &v }
	act := time.Now().UTC().Add(72 * time.Hour).Format("2006-01-02T15:04:05")
	req, err := primary.SetFutureTariff(ctx, pm.ID, flows.Tariff{StandingCharge: d("0.5"), UnitRateElementA: d("0.2345"), UnitRateElementB: d("0.2345"),
		PrepaymentEmergencyCredit: d("15"), PrepaymentECreditAvailability: d("10"), PrepaymentDebtRecoveryRate: d("0.25"), ActivationDatetime: &act}, "test", "test")
	if err != nil {
		t.Fatal(err)
	}
	waitFor("the top-up and the tariff to be confirmed", func() bool {
		got, _ := primary.Topup(ctx, tu.ID)
		st, _ := primary.TariffRequestStatus(ctx, req.ID)
		return got.Status == flows.TopupCompleted && st == flows.RequestVerified
	})
	_ = first.Process.Kill()
	_ = first.Wait()
	second := serve()
	defer func() { _ = second.Process.Kill() }()
	eng, err := syncer.New(syncer.Config{Store: primary, NewQueue: func(c *river.Config) (syncer.JobQueue, error) { return primary.NewQueueClient(c) }})
	if err != nil {
		t.Fatal(err)
	}
	var syncs int64
	_ = ppool.QueryRow(ctx, `SELECT syncs FROM flows.meter_sync_state WHERE meter_id = $1`, pm.ID).Scan(&syncs)
	if err := eng.SyncNow(ctx, pm.ID); err != nil {
		t.Fatal(err)
	}
	waitFor("the on-demand sync", func() bool {
		var n int64
		_ = ppool.QueryRow(ctx, `SELECT syncs FROM flows.meter_sync_state WHERE meter_id = $1`, pm.ID).Scan(&n)
		return n > syncs
	})

	if _, err := admin.Exec(ctx, "ALTER DATABASE "+db+" ALLOW_CONNECTIONS true"); err != nil {
		t.Fatal(err)
	}
	if rpool, err = postgres.Open(ctx, replicaURL); err != nil {
		t.Fatal(err)
	}
	defer rpool.Close()
	caughtUp := func() bool {
		return text(rpool, replicatedShadow) == text(ppool, replicatedShadow) && text(rpool, history) == text(ppool, history)
	}
	for deadline := time.Now().Add(40 * time.Second); !caughtUp() && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
	}
	if !caughtUp() {
		t.Fatalf("the replica did not catch up:\nprimary shadow %s\nreplica shadow %s\nprimary history %s\nreplica history %s",
			text(ppool, replicatedShadow), text(rpool, replicatedShadow), text(ppool, history), text(rpool, history))
	}
	if got := text(rpool, replicatedShadow); !strings.Contains(got, `"unit_rate_element_a": "0.2345"`) {
		t.Errorf("the replica's shadow lacks the verified future tariff: %s", got)
	}
	var requests int
	_ = rpool.QueryRow(ctx, `SELECT count(*) FROM flows.tariff_requests`).Scan(&requests)
	if requests != 0 {
		t.Errorf("replication made %d tariff requests on the replica", requests)
	}
}
