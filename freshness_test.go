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
	}, now.Add(-30*24*time.Hour), freqs, now)
	if got["balance"].Stale || !got["tariffs_active"].Stale || !got["csq"].Stale || got["csq"].SyncedAt != nil {
		t.Errorf("freshness %+v", got)
	}
	if _, ok := got[""]; ok || len(got) != 3 {
		t.Errorf("registry-only syncers have no value group: %+v", got)
	}
}

// A value never read is stale only once the meter has missed its chance:
// a meter registered a minute ago (a fresh demo before its first round)
// is not late; one registered three hours ago and never read hourly is.
func TestStaleNeverReadWaitsForItsChance(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	if flows.Stale(nil, now.Add(-time.Minute), flows.Hourly, now) {
		t.Error("a meter registered a minute ago is stale before its first read")
	}
	if !flows.Stale(nil, now.Add(-3*time.Hour), flows.Hourly, now) {
		t.Error("a meter registered three hours ago, never read hourly, is not stale")
	}
	read := now.Add(-3 * time.Hour)
	if !flows.Stale(&read, now.Add(-time.Minute), flows.Hourly, now) {
		t.Error("a read three hours old is not stale")
	}
}
