// Package lifecycle is the one shape of Flows' long-running parts: each
// has Start(ctx) error, which returns at once, and Stop(ctx) error, which
// waits (bounded by ctx). Loop runs a part's background goroutine; Group
// starts parts in order and stops them in reverse, also when one of them
// fails to start.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Service is a long-running part of a process.
type Service interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Loop runs one background goroutine between Start and Stop.
type Loop struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// Start runs fn in the background with a context that Stop cancels. The
// caller's ctx only carries values: its cancellation does not stop fn, so
// a service stops when its owner says so, in order. Start on a running
// loop does nothing.
func (l *Loop) Start(ctx context.Context, fn func(ctx context.Context)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel != nil {
		return
	}
	ctx, l.cancel = context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	l.done = done
	go func() {
		defer close(done)
		fn(ctx)
	}()
}

// Stop cancels the goroutine and waits for it to return, or for ctx.
func (l *Loop) Stop(ctx context.Context) error {
	l.mu.Lock()
	cancel, done := l.cancel, l.done
	l.cancel = nil
	l.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Group owns a process's services: it starts them in the order added and
// stops them in reverse.
type Group struct {
	// StopTimeout bounds each service's Stop on its own (30 s), so one
	// slow service does not use up the time of those stopped after it.
	StopTimeout time.Duration
	started     []named
}

type named struct {
	name string
	svc  Service
}

// Start starts svc, named for errors. When it fails, every service the
// group already started is stopped, in reverse, and the error names svc.
func (g *Group) Start(ctx context.Context, name string, svc Service) error {
	if err := svc.Start(ctx); err != nil {
		if serr := g.Stop(context.WithoutCancel(ctx)); serr != nil {
			err = errors.Join(err, serr)
		}
		return fmt.Errorf("starting %s: %w", name, err)
	}
	g.started = append(g.started, named{name, svc})
	return nil
}

// Stop stops every started service in reverse order, each bounded by
// StopTimeout (and ctx), and returns their errors joined.
func (g *Group) Stop(ctx context.Context) error {
	timeout := g.StopTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	var errs []error
	for i := len(g.started) - 1; i >= 0; i-- {
		sctx, cancel := context.WithTimeout(ctx, timeout)
		if err := g.started[i].svc.Stop(sctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping %s: %w", g.started[i].name, err))
		}
		cancel()
	}
	g.started = nil
	return errors.Join(errs...)
}

// NodeName names this process in meter leases: host:pid. The sync engine,
// the command pusher and the mediator of one process use it alike, so a
// lease one of them holds is the process's (a node's), and the others of
// that process share the meter with it.
func NodeName() string {
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	return fmt.Sprintf("%s:%d", host, os.Getpid())
}
