package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/shopspring/decimal"
)

// One meter's bad result never holds back its group: a value that cannot
// be stored is dropped and named, a serial that clashes or a meter deleted
// meanwhile is skipped, and every other meter is written in the same run.
func TestApplySyncsIsolatesEachMeter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := newStore(t)
	mk := func(serial, ip string) string {
		t.Helper()
		m, err := store.CreateMeter(ctx, flows.NewMeter{Serial: serial, IPAddress: ip})
		if err != nil {
			t.Fatal(err)
		}
		return m.ID
	}
	good, badRate, clash, gone := mk("EML1000000001", "127.90.0.1"), mk("EML1000000002", "127.90.0.2"),
		mk("EML1000000003", "127.90.0.3"), mk("EML1000000004", "127.90.0.4")
	if _, err := store.Pool().Exec(ctx, `DELETE FROM flows.meter_registry WHERE id = $1`, gone); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	d := func(s string) *decimal.Decimal { v := decimal.RequireFromString(s); return &v }
	csq := 17
	ok := func(id string) flows.SyncResult {
		return flows.SyncResult{MeterID: id, At: at, Reached: true, TouchHealth: true, Groups: []string{"balance", "csq", "tariffs_active"},
			Shadow: flows.ShadowUpdate{Balance: d("12.5"), CSQ: &csq, TariffsActive: &flows.Tariff{UnitRateElementA: d("0.28")}}}
	}
	bad := ok(badRate)
	bad.Shadow.TariffsActive = &flows.Tariff{UnitRateElementA: d("1.00001")}
	taken := "EML1000000001"
	clashing := ok(clash)
	clashing.Registry.Serial = &taken

	skipped, err := store.ApplySyncs(ctx, []flows.SyncResult{ok(good), bad, clashing, ok(gone)}, "hourly", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 2 || skipped[0].MeterID != clash || skipped[1].MeterID != gone {
		t.Errorf("skipped %+v, want the clashing and the deleted meter", skipped)
	}
	st, err := store.MeterStatus(ctx, "EML1000000001")
	if err != nil {
		t.Fatal(err)
	}
	if st.Shadow.Balance == nil || !st.Shadow.Balance.Equal(decimal.RequireFromString("12.5")) || *st.Shadow.Health != flows.HealthHealthy {
		t.Errorf("healthy meter not written: balance %v health %v", st.Shadow.Balance, st.Shadow.Health)
	}
	st, _ = store.MeterStatus(ctx, "EML1000000002")
	if *st.Shadow.Health != flows.HealthUnhealthy || !strings.Contains(st.Shadow.HealthDetails, "tariffs_active.unit_rate_element_a") {
		t.Errorf("bad rate: health %v %q, want unhealthy naming the field", *st.Shadow.Health, st.Shadow.HealthDetails)
	}
	if st.Shadow.Balance == nil || st.Shadow.TariffsActive != nil || st.Shadow.CSQ == nil || *st.Shadow.CSQ != 17 {
		t.Errorf("bad rate: its other values must be kept and the bad tariff dropped: %+v", st.Shadow)
	}
	var failures int
	var lastError string
	for _, id := range []string{badRate, clash} {
		if err := store.Pool().QueryRow(ctx, `SELECT consecutive_failures, coalesce(last_error, '') FROM flows.meter_sync_state WHERE meter_id = $1`, id).Scan(&failures, &lastError); err != nil {
			t.Fatal(err)
		}
		if failures != 1 || lastError == "" {
			t.Errorf("meter %s: %d failures, last error %q; want one failure with its reason", id, failures, lastError)
		}
	}
	if st, _ := store.MeterStatus(ctx, "EML1000000003"); st.Meter.Serial != "EML1000000003" || !strings.Contains(st.Shadow.HealthDetails, "not stored") {
		t.Errorf("clashing meter: serial %s, details %q", st.Meter.Serial, st.Shadow.HealthDetails)
	}
}
