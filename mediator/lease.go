package mediator

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/meterconn"
)

// A meter keeps its minimum gap only while one process talks to it: the
// per-meter turn that orders requests is in-process. A Flows node that
// reaches meters through this mediator (mediator.Shards) already holds
// the meter (its sync or push lease) and says so with leaseKey; any other
// caller — the emop CLI, the reference's scripts — is served under a push
// lease the mediator takes for the request (Store.LeaseMeterForPush, owner
// node/mediator), waiting while another node syncs or pushes to the meter.

// leaseKey is the gRPC metadata a Flows node sends ("held") with calls
// for meters it holds the lease of.
const leaseKey = "flows-lease"

// Defaults of Config.LeaseWait and the lease a request holds.
const (
	defaultLeaseWait = 30 * time.Second
	// requestLease outlasts any one relayed request (the transport's
	// attempts and timeouts): a mediator that dies mid-request leaves the
	// meter to others after it.
	requestLease = 5 * time.Minute
	leaseRetry   = 250 * time.Millisecond
)

// errNodeBusy is a request that waited LeaseWait for a meter another node
// kept: the meter is busy (meterconn.ErrBusy), and says why.
var errNodeBusy = fmt.Errorf("another Flows node is talking to the meter: %w", meterconn.ErrBusy)

// withLease marks an outgoing call as made under the caller's lease.
func withLease(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, leaseKey, "held")
}

// callerHolds reports whether the caller said it holds the meter. With
// mutual TLS only a Flows node's certificate (role internal) may say so.
func (s *Server) callerHolds(ctx context.Context) bool {
	if s.cfg.TLS != nil {
		if cert, err := clientCert(ctx); err != nil || roleOf(cert) != "internal" {
			return false
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get(leaseKey) {
		if v == "held" {
			return true
		}
	}
	return false
}

// holds counts the requests of this mediator in flight per meter: the
// first takes the meter's lease, the last gives it back.
type holds struct {
	s     *Server
	owner string
	mu    sync.Mutex
	by    map[string]*hold
}

type hold struct {
	mu   sync.Mutex // held while the lease is taken or given back
	refs int        // requests waiting for or holding the meter
	n    int        // requests holding it
}

func newHolds(s *Server) *holds {
	return &holds{s: s, owner: s.cfg.Node + "/mediator", by: map[string]*hold{}}
}

// holdFor holds m for one relayed request, unless the caller said it
// holds it (held: callerHolds).
func (s *Server) holdFor(ctx context.Context, m flows.Meter, held bool) (func(), error) {
	if held {
		return func() {}, nil
	}
	return s.holds.take(ctx, m.ID, m.Serial)
}

// take holds meterID for a request, waiting at most Config.LeaseWait while
// another node has it; release gives it back.
func (h *holds) take(ctx context.Context, meterID, serial string) (release func(), err error) {
	h.mu.Lock()
	m := h.by[meterID]
	if m == nil {
		m = &hold{}
		h.by[meterID] = m
	}
	m.refs++
	h.mu.Unlock()
	done := func() {
		h.mu.Lock()
		if m.refs--; m.refs == 0 {
			delete(h.by, meterID)
		}
		h.mu.Unlock()
	}
	m.mu.Lock()
	if m.n == 0 {
		if err := h.lease(ctx, meterID); err != nil {
			m.mu.Unlock()
			done()
			return nil, err
		}
	}
	m.n++
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		if m.n--; m.n == 0 {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if err := h.s.cfg.Store.ReleasePushLease(rctx, meterID, h.owner); err != nil {
				h.s.cfg.Logger.Warn("releasing a meter's lease", "meter_serial", serial, "error", err)
			}
			cancel()
		}
		m.mu.Unlock()
		done()
	}, nil
}

// lease takes the meter's push lease, asking every leaseRetry until it is
// free, ctx ends or LeaseWait passes (then the meter is busy: try again).
func (h *holds) lease(ctx context.Context, meterID string) error {
	wctx, cancel := context.WithTimeout(ctx, h.s.cfg.LeaseWait)
	defer cancel()
	t := time.NewTicker(leaseRetry)
	defer t.Stop()
	for {
		ok, err := h.s.cfg.Store.LeaseMeterForPush(wctx, meterID, h.owner, requestLease)
		switch {
		case ok:
			return nil
		case err != nil && ctx.Err() == nil && wctx.Err() != nil:
			return errNodeBusy
		case err != nil:
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wctx.Done():
			return errNodeBusy
		case <-t.C:
		}
	}
}
