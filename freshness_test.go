package flows_test

import (
	"testing"
	"time"

	"github.com/flows-energy/flows"
)

func TestFreshness(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	freqs := map[string]flows.Frequency{"SyncerPrepayBalance": flows.Hourly, "SyncerTariffsActive": flows.TwelveHour,
		"SyncerCsq": flows.Hourly, "SyncerHardware": flows.Daily}
	got := flows.Freshness(map[string]time.Time{
		"balance":        now.Add(-119 * time.Minute), // within twice an hour
		"tariffs_active": now.Add(-25 * time.Hour),    // over twice 12 hours
	}, freqs, now)
	if got["balance"].Stale || !got["tariffs_active"].Stale || !got["csq"].Stale || got["csq"].SyncedAt != nil {
		t.Errorf("freshness %+v", got)
	}
	if _, ok := got[""]; ok || len(got) != 3 {
		t.Errorf("registry-only syncers have no value group: %+v", got)
	}
}
