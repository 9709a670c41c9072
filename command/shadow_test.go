package command_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/sim"
	"github.com/shopspring/decimal"
)

// What a push confirms is in the shadow at once, as a sync's reads are:
// a completed top-up's balance (with its history row), a verified
// tariff's read-back, an activated tariff, with their freshness.
func TestPushesReachTheShadow(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	r := newRig(t, start, "127.113")
	ctx := context.Background()
	m := r.fleet.Meters()[1] // not DST-corrected
	id := r.ids[m.Spec.Serial]
	p := r.pusher(t, nil)

	tok, _ := sim.VendToken(m.Spec.Serial, m.Spec.Key, d("20"))
	tu, err := r.store.CreateTopup(ctx, id, tok, ptr("20"), "payment", "carol")
	if err != nil {
		t.Fatal(err)
	}
	runOnce(t, p)
	got, _ := r.store.Topup(ctx, tu.ID)
	if got.Status != flows.TopupCompleted || got.BalanceAfter == nil {
		t.Fatalf("top-up %s %q", got.Status, got.Notes)
	}
	st, _ := r.store.MeterStatus(ctx, m.Spec.Serial)
	if st.Shadow.Balance == nil || !st.Shadow.Balance.Equal(*got.BalanceAfter) {
		t.Errorf("shadow balance %v, the top-up confirmed %s", st.Shadow.Balance, got.BalanceAfter)
	}
	if _, ok := st.Shadow.SyncedAt["balance"]; !ok {
		t.Errorf("the confirmed balance did not refresh the balance group: %v", st.Shadow.SyncedAt)
	}
	var latest decimal.Decimal
	if err := r.store.Pool().QueryRow(ctx, `SELECT balance FROM flows.meter_prepay_balance WHERE meter_id = $1 ORDER BY "timestamp" DESC LIMIT 1`, id).Scan(&latest); err != nil {
		t.Fatal(err)
	}
	if !latest.Equal(*got.BalanceAfter) {
		t.Errorf("latest balance history %s, the top-up confirmed %s", latest, got.BalanceAfter)
	}

	act := start.Add(2 * time.Hour).Truncate(time.Hour)
	if _, err := r.store.Pool().Exec(ctx, tariffSQL, m.Spec.Serial, "0.61234", "0.33", act.Format("2006-01-02T15:04:05")); err != nil {
		t.Fatal(err)
	}
	runOnce(t, p)
	if req := r.latestRequest(t, m.Spec.Serial); req.Status != flows.RequestVerified {
		t.Fatalf("tariff %s (%s)", req.Status, req.LastError)
	}
	var future, active []byte
	if err := r.store.Pool().QueryRow(ctx, `SELECT tariffs_future, tariffs_active FROM flows.meter_shadows WHERE id = $1`, id).Scan(&future, &active); err != nil {
		t.Fatal(err)
	}
	var f flows.Tariff
	if err := json.Unmarshal(future, &f); err != nil || f.UnitRateElementA == nil || !f.UnitRateElementA.Equal(d("0.33")) {
		t.Errorf("tariffs_future after verification: %s", future)
	}
	r.clock.Advance(3 * time.Hour)
	runOnce(t, p)
	if req := r.latestRequest(t, m.Spec.Serial); req.Status != flows.RequestActive {
		t.Fatalf("tariff after activation %s (%s)", req.Status, req.LastError)
	}
	st, _ = r.store.MeterStatus(ctx, m.Spec.Serial)
	if st.Shadow.TariffsActive == nil || st.Shadow.TariffsActive.UnitRateElementA == nil || !st.Shadow.TariffsActive.UnitRateElementA.Equal(d("0.33")) {
		t.Errorf("tariffs_active after activation: %+v", st.Shadow.TariffsActive)
	}
}
