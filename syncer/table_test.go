package syncer

import (
	"testing"

	"github.com/flows-energy/flows"
)

// Every syncer of the domain's table has an implementation here, and
// nothing is implemented that the table (and so meter_metrics) lacks.
func TestEverySyncerHasARun(t *testing.T) {
	for _, s := range flows.Syncers {
		if runs[s.Name] == nil {
			t.Errorf("%s is in flows.Syncers but has no run", s.Name)
		}
	}
	if len(runs) != len(flows.Syncers) {
		t.Errorf("%d runs for %d syncers", len(runs), len(flows.Syncers))
	}
}
