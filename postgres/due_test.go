package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/flows-energy/flows"
)

// A sync in the half period before a meter's slot stands for that slot (a
// meter caught up just before its slot is not read twice in a minute); an
// older one does not.
func TestSyncJustBeforeSlotStandsForIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	now := time.Now().UTC().Truncate(time.Second)
	slotOf := func(id string, at time.Time) (time.Time, bool) {
		due, err := s.DueSyncs(ctx, flows.Hourly, at, at.Add(2*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range due {
			if d.MeterID == id {
				return d.Slot, true
			}
		}
		return time.Time{}, false
	}
	for i, c := range []struct {
		before time.Duration
		due    bool
	}{{10 * time.Minute, false}, {40 * time.Minute, true}} {
		m, err := s.CreateMeter(ctx, flows.NewMeter{Serial: "EML100000004" + string(rune('0'+i)), IPAddress: "127.92.1." + string(rune('1'+i))})
		if err != nil {
			t.Fatal(err)
		}
		slot, ok := slotOf(m.ID, now)
		if !ok {
			t.Fatal("a never-synced meter is not due")
		}
		if slot.Before(now) {
			slot = slot.Add(time.Hour) // the next one
		}
		at := slot.Add(-c.before)
		if err := s.ApplySync(ctx, flows.SyncResult{MeterID: m.ID, At: at, Reached: true, TouchHealth: true, Groups: []string{"csq"}}, string(flows.Hourly), ""); err != nil {
			t.Fatal(err)
		}
		if _, got := slotOf(m.ID, slot.Add(-time.Second)); got != c.due {
			t.Errorf("synced %v before its slot: due at the slot %v, want %v", c.before, got, c.due)
		}
	}
}
