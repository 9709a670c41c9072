package http

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/flows-energy/flows"
)

// summaryAge is how old the fleet page's counts (meters, healthy,
// offline, stale, low balance per ESCO) may be. Counting them is a scan of
// the fleet (about 150 ms at 100,000 meters, half the page's budget, where
// the page's rows cost 15). The counts move with the hourly syncs, so the
// page shows counts at most summaryAge old and refreshes them in the
// background; only the first page after a start, or after an ESCO's
// counts were last asked for summaryAge × 10 ago, waits for the scan. The
// API's /fleet always counts afresh.
const summaryAge = 15 * time.Second

// summaries keeps the fleet counts per ESCO scope ("" for all).
type summaries struct {
	mu sync.Mutex
	by map[string]*summaryEntry
}

type summaryEntry struct {
	at         time.Time
	v          []flows.FleetSummary
	refreshing bool
}

// get returns scope's counts: fresh ones, or ones at most summaryAge × 10
// old while a refresh runs in the background, or read now.
func (c *summaries) get(ctx context.Context, scope string, now time.Time, read func(context.Context, string) ([]flows.FleetSummary, error)) ([]flows.FleetSummary, error) {
	key := strings.ToLower(scope)
	c.mu.Lock()
	if c.by == nil {
		c.by = map[string]*summaryEntry{}
	}
	e := c.by[key]
	switch {
	case e != nil && now.Sub(e.at) < summaryAge:
		v := e.v
		c.mu.Unlock()
		return v, nil
	case e != nil && now.Sub(e.at) < 10*summaryAge:
		v := e.v
		if !e.refreshing {
			e.refreshing = true
			go c.refresh(context.WithoutCancel(ctx), key, scope, now, read)
		}
		c.mu.Unlock()
		return v, nil
	}
	c.mu.Unlock()
	v, err := read(ctx, scope)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.by[key] = &summaryEntry{at: now, v: v}
	c.mu.Unlock()
	return v, nil
}

func (c *summaries) refresh(ctx context.Context, key, scope string, now time.Time, read func(context.Context, string) ([]flows.FleetSummary, error)) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := read(ctx, scope)
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.by[key]
	if err != nil {
		e.refreshing = false // the next page tries again
		return
	}
	c.by[key] = &summaryEntry{at: now, v: v}
}
