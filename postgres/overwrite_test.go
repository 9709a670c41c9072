package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/shopspring/decimal"
)

// A top-up's confirmed balance recorded while a sync of the same meter
// was under way (the push went to the meter between two of the sync's
// requests) is not put back by the sync's older balance: the shadow, its
// history and the balance's synced_at keep the top-up's; the sync's other
// groups are written, and the next sync's balance is.
func TestSyncDoesNotWriteOverANewerTopupBalance(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	m, err := s.CreateMeter(ctx, flows.NewMeter{Serial: "EML3100000001", IPAddress: "127.96.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	d := decimal.RequireFromString
	t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	sync := func(readAt, at time.Time, balance string, csq int) {
		t.Helper()
		b := d(balance)
		r := flows.SyncResult{MeterID: m.ID, At: at, Reached: true, TouchHealth: true, Shadow: flows.ShadowUpdate{Balance: &b, CSQ: &csq},
			Groups: []string{"balance", "csq"}, ReadAt: map[string]time.Time{"balance": readAt, "csq": readAt}}
		if skipped, err := s.ApplySyncs(ctx, []flows.SyncResult{r}, string(flows.Hourly), ""); err != nil || len(skipped) > 0 {
			t.Fatalf("sync: %v %v", skipped, err)
		}
	}
	sync(t0, t0.Add(10*time.Second), "4.70", 15)
	// The sync of t0+30 s reads the balance at once; the top-up goes in
	// after that read and is recorded at t0+40 s; the sync ends at t0+50 s.
	after := d("14.70")
	if err := s.ApplyObservation(ctx, flows.SyncResult{MeterID: m.ID, At: t0.Add(40 * time.Second), Reached: true, TouchHealth: true,
		Shadow: flows.ShadowUpdate{Balance: &after}, Groups: []string{"balance"}}); err != nil {
		t.Fatal(err)
	}
	sync(t0.Add(30*time.Second), t0.Add(50*time.Second), "4.70", 16)

	st, err := s.MeterStatus(ctx, "EML3100000001")
	if err != nil {
		t.Fatal(err)
	}
	if st.Shadow.Balance == nil || !st.Shadow.Balance.Equal(after) {
		t.Errorf("balance %v after the top-up and a sync that read before it, want the top-up's 14.70", st.Shadow.Balance)
	}
	if st.Shadow.CSQ == nil || *st.Shadow.CSQ != 16 {
		t.Errorf("csq %v: the sync's other groups must be written", st.Shadow.CSQ)
	}
	if f := st.Freshness["balance"]; f.SyncedAt == nil || !f.SyncedAt.Equal(t0.Add(40*time.Second)) {
		t.Errorf("balance synced at %v, want the top-up's record, %v", f.SyncedAt, t0.Add(40*time.Second))
	}
	hist, err := s.BalanceHistory(ctx, m.ID, t0.Add(-time.Minute), t0.Add(time.Hour), flows.BucketRaw)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range hist {
		if p.Timestamp.After(t0.Add(40*time.Second)) && p.Balance != nil && p.Balance.Equal(d("4.70")) {
			t.Errorf("history has the stale 4.70 at %v, after the top-up's 14.70", p.Timestamp)
		}
	}

	// The next sync read after the top-up: its balance is the meter's.
	sync(t0.Add(60*time.Second), t0.Add(70*time.Second), "14.65", 16)
	if st, _ := s.MeterStatus(ctx, "EML3100000001"); st.Shadow.Balance == nil || !st.Shadow.Balance.Equal(d("14.65")) {
		t.Errorf("balance %v after a sync that read after the top-up, want 14.65", st.Shadow.Balance)
	}
	// The batch's forecast refresh (migration 0035) ran in the sync's
	// transaction: the forecast starts from the balance just written.
	if f, err := s.CreditForecast(ctx, m.ID); err != nil || f == nil || !f.Balance.Equal(d("14.65")) || !f.BalanceAt.Equal(t0.Add(70*time.Second)) {
		t.Errorf("forecast after the sync: %+v %v, want it from 14.65 at %v", f, err, t0.Add(70*time.Second))
	}
}
