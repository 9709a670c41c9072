package syncer

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
)

// Operator work first, across nodes. Within one process the transport's
// per-meter turn puts an operator's request (a top-up, an on-demand sync)
// before the next request of a scheduled read; across processes the sync
// lease decides, and a node reading a meter for its slot (a set of a dozen
// requests at cellular latency, then the rest of its chunk) would keep an
// operator on another node waiting for all of it. So a node whose operator
// work is refused a meter records that it wants it (postgres.Store's
// WantMeter; pushes do so as they are refused), and the node holding the
// meter for background reads — a group sync or a profile backfill — asks
// every wantPoll which of its meters are wanted and hands each over after
// the request in progress: the lease is given back and the meter, still
// due, is read again in full once the operator's work is done (the
// wanting node keeps it until then). What a cut read gathered is not
// stored: syncers that carry on past a refused object would record the
// handover as the meter's answer (a blank hardware read, a tariff without
// its optional parts).

// wantPoll is how often a node asks which of the meters it holds for
// background reads another node wants: well inside a want's life (2 s)
// and a meter's request cycle (latency and gap, seconds at cellular
// latency), and one indexed statement a quarter second per node.
const wantPoll = 250 * time.Millisecond

// wantRetry is how often an on-demand sync refused a meter asks again
// (renewing its want), and wantWait how long it keeps asking before its
// job snoozes and gives the worker back.
const (
	wantRetry = 250 * time.Millisecond
	wantWait  = 30 * time.Second
)

// errHandedOver ends a background read of a meter another node wants: it
// stops before its next request.
var errHandedOver = errors.New("handed over to another node's operator work")

// cutShort says a read's error is the read being stopped — shutdown, or
// the meter handed over — not the meter refusing: a syncer that carries
// on past a failed object (three-phase phases and totals) must stop, not
// record it as refused.
func cutShort(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, errHandedOver)
}

// handovers are the meters this process holds for background reads, each
// with what to do when another node wants it.
type handovers struct {
	mu   sync.Mutex
	held map[string][]*holder
}

// holder is one background read's hold of a meter.
type holder struct {
	meterID  string
	told     bool // onWanted called (under handovers.mu)
	onWanted func()
}

// hold registers a background read of meterID: onWanted is called once,
// from wantLoop, if another node wants the meter before drop. It must not
// block (it starts any database work in a goroutine it accounts for).
func (h *handovers) hold(meterID string, onWanted func()) *holder {
	ho := &holder{meterID: meterID, onWanted: onWanted}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held == nil {
		h.held = map[string][]*holder{}
	}
	h.held[meterID] = append(h.held[meterID], ho)
	return ho
}

// drop ends a hold: once it returns, its onWanted is not called.
func (h *handovers) drop(ho *holder) {
	h.mu.Lock()
	defer h.mu.Unlock()
	hs := h.held[ho.meterID]
	for i, x := range hs {
		if x == ho {
			hs = append(hs[:i], hs[i+1:]...)
			break
		}
	}
	if len(hs) == 0 {
		delete(h.held, ho.meterID)
	} else {
		h.held[ho.meterID] = hs
	}
}

// any says whether a background read is registered.
func (h *handovers) any() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.held) > 0
}

// want tells the reads of meterIDs held here to hand their meters over,
// once each, and returns how many it told now (not those told before).
func (h *handovers) want(meterIDs []string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, id := range meterIDs {
		for _, ho := range h.held[id] {
			if !ho.told {
				ho.told = true
				ho.onWanted()
				n++
			}
		}
	}
	return n
}

// wantLoop asks every wantPoll, while this process holds meters for
// background reads, which of them another node wants, until Stop.
func (e *Engine) wantLoop(ctx context.Context) {
	defer e.done.Done()
	t := time.NewTicker(wantPoll)
	defer t.Stop()
	for e.next(ctx, t) {
		if !e.handovers.any() {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ids, err := e.cfg.Store.WantedFrom(qctx, e.cfg.Owner)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				e.cfg.Logger.Warn("asking which meters other nodes want", "error", err)
			}
			continue
		}
		if n := e.handovers.want(ids); n > 0 {
			e.cfg.Logger.Debug("handing meters over to other nodes' operator work", "meters", n)
		}
	}
}

// yielding is the way to a meter for a background read: it refuses to
// start a request once the meter is wanted elsewhere (the request in
// progress finishes), and remembers that it did, so a read a syncer
// carried on past (an optional object, a flaky phase) is still known to be
// cut.
type yielding struct {
	Meters
	wanted <-chan struct{}
	cut    atomic.Bool
}

func (y *yielding) handedOver() bool {
	select {
	case <-y.wanted:
		y.cut.Store(true)
		return true
	default:
		return false
	}
}

func (y *yielding) Read(ctx context.Context, t meterconn.Target, id emop.ObjectID) ([]byte, error) {
	if y.handedOver() {
		return nil, errHandedOver
	}
	return y.Meters.Read(ctx, t, id)
}

func (y *yielding) Raw(ctx context.Context, t meterconn.Target, data []byte) ([]byte, error) {
	if y.handedOver() {
		return nil, errHandedOver
	}
	return y.Meters.Raw(ctx, t, data)
}
