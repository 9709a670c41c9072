package postgres_test

import (
	"context"
	"testing"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/postgres"
)

// The migrations seed meter_metrics with exactly the syncers of the
// domain's table, at the table's default frequencies.
func TestMigrationSyncerDefaultsAgreeWithTable(t *testing.T) {
	store := postgres.NewStore(pgtest.NewPool(t))
	got, err := store.SyncerFrequencies(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range flows.Syncers {
		f, ok := got[s.Name]
		if !ok {
			t.Errorf("%s: not an enabled row of meter_metrics", s.Name)
		} else if f != s.Default {
			t.Errorf("%s: meter_metrics runs it %s, the table says %s", s.Name, f, s.Default)
		}
	}
	if len(got) != len(flows.Syncers) {
		t.Errorf("meter_metrics has %d enabled syncers, the table %d", len(got), len(flows.Syncers))
	}
}
