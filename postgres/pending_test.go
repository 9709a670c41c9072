package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/flows-energy/flows"
)

// A future tariff activating at the EMOP epoch (a meter with no change
// scheduled) or in the past is not pending; one activating later is, in
// the view and in the meter's status alike.
func TestFuturePending(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := newStore(t)
	m, err := store.CreateMeter(ctx, flows.NewMeter{Serial: "EML1000000009", IPAddress: "127.91.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		activation string
		want       bool
	}{
		{"2000-01-01T00:00:00", false},
		{time.Now().UTC().Add(-time.Hour).Format("2006-01-02T15:04:05"), false},
		{time.Now().UTC().Add(48 * time.Hour).Format("2006-01-02T15:04:05"), true},
	} {
		act := c.activation
		if err := store.UpdateShadow(ctx, m.ID, flows.ShadowUpdate{TariffsFuture: &flows.Tariff{ActivationDatetime: &act}}); err != nil {
			t.Fatal(err)
		}
		var inView bool
		if err := store.Pool().QueryRow(ctx, `SELECT future_pending FROM flows.meter_shadows_tariffs WHERE id = $1`, m.ID).Scan(&inView); err != nil {
			t.Fatal(err)
		}
		st, err := store.MeterStatus(ctx, m.Serial)
		if err != nil {
			t.Fatal(err)
		}
		if inView != c.want || st.FuturePending != c.want {
			t.Errorf("activation %s: view says pending=%v, status %v; want %v", act, inView, st.FuturePending, c.want)
		}
	}
}
