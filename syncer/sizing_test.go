package syncer

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/flows-energy/flows"
)

// The meters in flight follow Little's law for the fleet and stop at the
// first bound that applies, naming it.
func TestInFlight(t *testing.T) {
	// 100,000 meters; an hourly set of five requests at 1 s latency and a
	// 2 s gap takes 15 s; fresh within 15 minutes: 1,667 in flight, 2,084
	// with headroom.
	hourly := []Load{{Meters: 100_000, SetTime: 15 * time.Second}}
	for _, c := range []struct {
		name  string
		loads []Load
		b     Bounds
		want  int
		bound string
	}{
		{"load", hourly, Bounds{Floor: 50, Ceiling: 5000}, 2084, "load"},
		{"two frequencies add", append(hourly, Load{Meters: 100_000, SetTime: 45 * time.Second}), Bounds{Floor: 50, Ceiling: 20000}, 8334, "load"},
		{"ceiling", hourly, Bounds{Floor: 50, Ceiling: 1000}, 1000, "ceiling"},
		{"open files", hourly, Bounds{Floor: 50, Ceiling: 5000, Files: 1024, Reserved: 300}, 724, "open files"},
		{"memory", hourly, Bounds{Floor: 50, Ceiling: 5000, Memory: 64 << 20, PerMeter: 64 << 10}, 1024, "memory"},
		{"a small fleet keeps the floor", []Load{{Meters: 200, SetTime: time.Second}}, Bounds{Floor: 50, Ceiling: 5000}, 50, "floor"},
		{"nothing measured yet", []Load{{Meters: 100_000}}, Bounds{Floor: 50, Ceiling: 5000}, 50, "floor"},
		{"a bound below the floor wins", hourly, Bounds{Floor: 500, Ceiling: 5000, Files: 400, Reserved: 300}, 100, "open files"},
	} {
		got, bound := InFlight(c.loads, 15*time.Minute, c.b)
		if got != c.want || bound != c.bound {
			t.Errorf("%s: %d (%s), want %d (%s)", c.name, got, bound, c.want, c.bound)
		}
	}
}

// A limiter's limit can be lowered while its slots are held: no new slot
// is given until the held ones fall below it; raising it wakes waiters.
func TestLimiterResize(t *testing.T) {
	l := newLimiter(2)
	ctx := context.Background()
	for range 2 {
		if err := l.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	l.setLimit(1)
	l.release() // one held, limit 1: still full
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := l.acquire(short); err == nil {
		t.Fatal("a slot was given above the lowered limit")
	}
	got := make(chan error, 1)
	go func() { got <- l.acquire(ctx) }()
	select {
	case <-got:
		t.Fatal("acquired while full")
	case <-time.After(20 * time.Millisecond):
	}
	l.setLimit(3) // raising wakes the waiter
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("raising the limit did not wake a waiter")
	}
	if limit, used := l.state(); limit != 3 || used != 2 {
		t.Errorf("limit %d, used %d; want 3, 2", limit, used)
	}
}

// An engine measures its meters' set times and raises the meters in
// flight above its floor when the fleet needs it, up to its ceiling.
func TestEngineSizesFromMeasuredSets(t *testing.T) {
	e := &Engine{reads: newLimiter(2), bound: "floor", bounds: Bounds{Floor: 2, Ceiling: 8}, cfg: Config{FreshWithin: time.Second}}
	e.cfg.Store = sizingStore{meters: 40}
	e.cfg.Logger = slog.New(slog.DiscardHandler)
	if err := e.resize(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := e.Sizing(); s.InFlight != 2 || s.Bound != "floor" {
		t.Fatalf("before any set was measured: %+v", s)
	}
	for range 10 {
		e.setTime.observe("hourly", 100*time.Millisecond)
	}
	if err := e.resize(context.Background()); err != nil {
		t.Fatal(err)
	}
	// 40 meters × 0.1 s ÷ 1 s × 1.25 = 5.
	if s := e.Sizing(); s.InFlight != 5 || s.Bound != "load" {
		t.Fatalf("after 0.1 s sets: %+v", s)
	}
	for range 200 {
		e.setTime.observe("hourly", time.Second)
	}
	if err := e.resize(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := e.Sizing(); s.InFlight != 8 || s.Bound != "ceiling" {
		t.Fatalf("after 1 s sets: %+v", s)
	}
}

// sizingStore isolates resize from the database: the fleet's size and one
// hourly syncer (the other methods are not called).
type sizingStore struct {
	Store
	meters int
}

func (s sizingStore) SyncedMeters(context.Context) (int, error) { return s.meters, nil }
func (s sizingStore) SyncerFrequencies(context.Context) (map[string]flows.Frequency, error) {
	return map[string]flows.Frequency{"SyncerPrepayBalance": flows.Hourly, "SyncerCsq": flows.Hourly}, nil
}
