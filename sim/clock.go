package sim

import (
	"sync"
	"time"
)

// Clock tells simulated time. Meters use it for consumption, tariff
// activation and their own (drifting) clocks.
type Clock interface {
	Now() time.Time
}

// ScaledClock runs Speed times faster than real time from the moment it is
// made: at speed 60 a simulated hour passes each real minute.
type ScaledClock struct {
	start time.Time // real time at creation
	base  time.Time // simulated time at creation
	speed float64
}

// NewScaledClock returns a clock starting at base and running speed times
// faster than real time.
func NewScaledClock(base time.Time, speed float64) *ScaledClock {
	return &ScaledClock{start: time.Now(), base: base.UTC(), speed: speed}
}

// Now returns the simulated time.
func (c *ScaledClock) Now() time.Time {
	return c.base.Add(time.Duration(float64(time.Since(c.start)) * c.speed))
}

// ManualClock is a clock moved only by Set and Advance (for tests).
type ManualClock struct {
	mu sync.Mutex
	t  time.Time
}

// NewManualClock returns a clock at t.
func NewManualClock(t time.Time) *ManualClock { return &ManualClock{t: t.UTC()} }

// Now returns the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Set moves the clock to t.
func (c *ManualClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t.UTC()
	c.mu.Unlock()
}
