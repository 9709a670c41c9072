package http

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flows-energy/flows"
)

// The fleet page's counts: read once, served while fresh, served stale
// while one background read refreshes them, read afresh when too old.
func TestSummariesKeptAndRefreshed(t *testing.T) {
	var reads atomic.Int32
	done := make(chan struct{}, 10)
	read := func(_ context.Context, scope string) ([]flows.FleetSummary, error) {
		n := reads.Add(1)
		defer func() { done <- struct{}{} }()
		return []flows.FleetSummary{{ESCO: scope, Meters: int(n)}}, nil
	}
	var c summaries
	ctx := context.Background()
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	meters := func(at time.Time) int {
		t.Helper()
		v, err := c.get(ctx, "AAA", at, read)
		if err != nil {
			t.Fatal(err)
		}
		return v[0].Meters
	}
	if m := meters(t0); m != 1 {
		t.Fatalf("first: %d", m)
	}
	<-done
	if m := meters(t0.Add(summaryAge / 2)); m != 1 || reads.Load() != 1 {
		t.Errorf("fresh: %d after %d reads", m, reads.Load())
	}
	// Stale: the old counts now, the new ones once the refresh is in.
	if m := meters(t0.Add(2 * summaryAge)); m != 1 {
		t.Errorf("stale: %d, want the kept counts at once", m)
	}
	<-done
	m := 0
	for range 100 { // the refresh stores its counts just after reading them
		if m = meters(t0.Add(2*summaryAge + time.Second)); m == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if m != 2 || reads.Load() != 2 {
		t.Errorf("after the refresh: %d, %d reads; want the new counts from one background read", m, reads.Load())
	}
	// Too old: read before answering. Another ESCO has counts of its own.
	if m := meters(t0.Add(30 * summaryAge)); m != 3 {
		t.Errorf("too old: %d", m)
	}
	<-done
	if v, _ := c.get(ctx, "BBB", t0.Add(30*summaryAge), read); v[0].ESCO != "BBB" {
		t.Errorf("BBB got %+v", v)
	}
}
