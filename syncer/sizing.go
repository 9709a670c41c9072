package syncer

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"
)

// Sizing: how many meters a process keeps in flight.
//
// A meter's set is a few requests one after another, each a round trip of
// the meter's latency followed by its minimum gap, so at cellular latency
// a process spends nearly all of a sync waiting. Little's law gives the
// meters in flight a schedule needs: every frequency's meters × the time
// one meter's set takes ÷ the time the fleet is to be fresh within. The
// engine measures the set times it sees and keeps the limit there, with
// headroom, between a floor (Config.Workers) and the smallest of its
// bounds: the configured ceiling, the open files the process may hold (a
// request is one TCP connection), and a memory budget.

// Load is one frequency's share of the work.
type Load struct {
	Meters  int           // meters synced at this frequency
	SetTime time.Duration // one meter's set, measured (latency + gap per request)
}

// Bounds limit the meters in flight whatever the load needs.
type Bounds struct {
	Floor   int // at least this many (Config.Workers)
	Ceiling int // at most this many (Config.MaxInFlight)
	// Files is the soft open-file limit (0: unknown); Reserved of them are
	// kept for the database pool, the listeners and logs.
	Files, Reserved int
	// Memory is the budget in bytes for meters in flight (0: none);
	// PerMeter what one costs.
	Memory, PerMeter int64
}

// sizingHeadroom covers the jitter of set times and a wave of meters that
// all fell due at once (after a restart or an outage).
const sizingHeadroom = 1.25

// InFlight returns how many meters to keep in flight so that loads are
// done within fresh, and which bound decided it ("load", "floor",
// "ceiling", "open files", "memory").
func InFlight(loads []Load, fresh time.Duration, b Bounds) (int, string) {
	var need float64
	for _, l := range loads {
		if l.Meters > 0 && l.SetTime > 0 && fresh > 0 {
			need += float64(l.Meters) * l.SetTime.Seconds() / fresh.Seconds()
		}
	}
	n, why := int(math.Ceil(need*sizingHeadroom)), "load"
	if n < b.Floor {
		n, why = b.Floor, "floor"
	}
	limit, lwhy := b.Ceiling, "ceiling"
	if b.Files > 0 {
		if f := b.Files - b.Reserved; f < limit || limit <= 0 {
			limit, lwhy = max(f, 1), "open files"
		}
	}
	if b.Memory > 0 && b.PerMeter > 0 {
		if m := int(b.Memory / b.PerMeter); m < limit || limit <= 0 {
			limit, lwhy = max(m, 1), "memory"
		}
	}
	if limit > 0 && n > limit {
		n, why = limit, lwhy
	}
	return n, why
}

// Sizing describes the engine's current limit, for logs, metrics and
// flows serve's status.
type Sizing struct {
	InFlight int    // the limit
	Bound    string // what decided it
	Busy     int    // meters being read now
	// SetTime is the measured time of one meter's set per frequency.
	SetTime map[string]time.Duration
}

// limiter is a counting semaphore whose limit can change while it is held.
type limiter struct {
	mu    sync.Mutex
	limit int
	used  int
	wake  chan struct{} // closed and replaced when a slot may be free
}

func newLimiter(n int) *limiter { return &limiter{limit: max(n, 1), wake: make(chan struct{})} }

// acquire takes a slot, waiting until one is free or ctx is done.
func (l *limiter) acquire(ctx context.Context) error {
	for {
		l.mu.Lock()
		if l.used < l.limit {
			l.used++
			l.mu.Unlock()
			return nil
		}
		wake := l.wake
		l.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release gives a slot back.
func (l *limiter) release() {
	l.mu.Lock()
	l.used--
	l.signal()
	l.mu.Unlock()
}

// setLimit changes the limit; slots held above a lower limit are kept
// until released.
func (l *limiter) setLimit(n int) {
	l.mu.Lock()
	l.limit = max(n, 1)
	l.signal()
	l.mu.Unlock()
}

func (l *limiter) signal() {
	close(l.wake)
	l.wake = make(chan struct{})
}

func (l *limiter) state() (limit, used int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit, l.used
}

// setTimes keeps a moving average of a meter's set time per frequency.
type setTimes struct {
	mu  sync.Mutex
	avg map[string]time.Duration
}

// observe folds one set's duration in (weight 1/32: a few hundred sets
// settle it; one slow meter does not swing it).
func (s *setTimes) observe(freq string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.avg == nil {
		s.avg = map[string]time.Duration{}
	}
	if a, ok := s.avg[freq]; ok {
		s.avg[freq] = a + (d-a)/32
	} else {
		s.avg[freq] = d
	}
}

func (s *setTimes) snapshot() map[string]time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]time.Duration, len(s.avg))
	for k, v := range s.avg {
		out[k] = v
	}
	return out
}

// resize recomputes the limit from the fleet and the measured set times.
func (e *Engine) resize(ctx context.Context) error {
	meters, err := e.cfg.Store.SyncedMeters(ctx)
	if err != nil {
		return err
	}
	freqs, err := e.cfg.Store.SyncerFrequencies(ctx)
	if err != nil {
		return err
	}
	times := e.setTime.snapshot()
	var loads []Load
	seen := map[string]bool{}
	for _, f := range freqs {
		if !seen[string(f)] {
			seen[string(f)] = true
			loads = append(loads, Load{Meters: meters, SetTime: times[string(f)]})
		}
	}
	n, why := InFlight(loads, e.cfg.FreshWithin, e.bounds)
	old, _ := e.reads.state()
	e.reads.setLimit(n)
	if n != old {
		e.cfg.Logger.Info("meters in flight", "limit", n, "bound", why, "meters", meters, "set_times", fmt.Sprint(times))
	}
	e.mu.Lock()
	e.bound = why
	e.mu.Unlock()
	return nil
}

// Sizing returns the engine's current in-flight limit and what decided it.
func (e *Engine) Sizing() Sizing {
	limit, used := e.reads.state()
	e.mu.Lock()
	why := e.bound
	e.mu.Unlock()
	return Sizing{InFlight: limit, Bound: why, Busy: used, SetTime: e.setTime.snapshot()}
}
