package command

import (
	"context"
	"sync"
	"time"
)

// meterHolds keeps the push leases of the meters this pusher is writing
// to (Store.LeaseMeterForPush): a meter's requests keep its minimum gap
// only while one process talks to it, since the per-meter turn that
// orders them is in-process. The first push to a meter takes its lease,
// waiting while another node is syncing or pushing to it; later pushes to
// the same meter share it; the last to end gives it back. The heartbeat
// renews them with the claims.
type meterHolds struct {
	p       *Pusher
	owner   string // node/push
	mu      sync.Mutex
	held    map[string]*meterHold
	next    uint64    // names the pushes in meterHold.pushes
	renewed time.Time // when the leases were last renewed
}

type meterHold struct {
	mu sync.Mutex // held while the lease is taken, renewed or given back
	// pushes are the pushes to the meter running now, each by the cancel
	// of its context: a lease lost stops them.
	pushes map[uint64]context.CancelFunc
	taken  time.Time // when the lease was taken
	serial string    // the meter's, for the log
}

// retryEvery is how often a push waiting for a meter another node holds
// asks again: about once a meter's request at 20 ms, a fraction of one at
// cellular latency.
const retryEvery = 250 * time.Millisecond

func newMeterHolds(p *Pusher) *meterHolds {
	return &meterHolds{p: p, owner: p.cfg.Node + "/push", held: map[string]*meterHold{}}
}

// hold takes meterID for a push, waiting (until ctx ends) while another
// node holds it. The push runs in the returned context, cancelled if the
// lease is lost; the returned func gives the meter back.
func (h *meterHolds) hold(ctx context.Context, meterID, serial string) (context.Context, func(), error) {
	for {
		h.mu.Lock()
		m, ok := h.held[meterID]
		if !ok {
			m = &meterHold{pushes: map[uint64]context.CancelFunc{}, serial: serial}
			h.held[meterID] = m
		}
		h.next++
		id := h.next
		h.mu.Unlock()
		m.mu.Lock()
		if !h.current(meterID, m) {
			// Given back and dropped while this push waited for it: the
			// map's entry (or a new one) is the meter's now.
			m.mu.Unlock()
			continue
		}
		if len(m.pushes) == 0 {
			if err := h.take(ctx, meterID); err != nil {
				h.forget(meterID, m)
				m.mu.Unlock()
				return nil, nil, err
			}
			m.taken = time.Now()
		}
		pctx, cancel := context.WithCancel(ctx)
		m.pushes[id] = cancel
		m.mu.Unlock()
		return pctx, func() { cancel(); h.give(meterID, m, id) }, nil
	}
}

func (h *meterHolds) current(meterID string, m *meterHold) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held[meterID] == m
}

// take leases a meter, asking every retryEvery while another node has it.
func (h *meterHolds) take(ctx context.Context, meterID string) error {
	t := time.NewTicker(retryEvery)
	defer t.Stop()
	for {
		ok, err := h.p.cfg.Store.LeaseMeterForPush(ctx, meterID, h.owner, h.p.cfg.Lease)
		switch {
		case err != nil:
			return err
		case ok:
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (h *meterHolds) give(meterID string, m *meterHold, id uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.pushes, id)
	if len(m.pushes) > 0 {
		return
	}
	// Bounded: a release that fails leaves the lease to expire.
	ctx, cancel := context.WithTimeout(context.Background(), h.p.cfg.Lease/3)
	defer cancel()
	if err := h.p.cfg.Store.ReleasePushLease(ctx, meterID, h.owner); err != nil {
		h.p.cfg.Logger.Warn("releasing a push lease", "meter_serial", m.serial, "error", err)
	}
	h.forget(meterID, m)
}

// renew renews the leases held, at most every quarter of a lease (every
// pass's heartbeat calls it). A meter whose lease was not renewed, with
// the database answering, may be another node's now: its pushes stop, as
// a push whose claim is lost does.
func (h *meterHolds) renew(ctx context.Context) {
	h.mu.Lock()
	if time.Since(h.renewed) < h.p.cfg.Lease/4 {
		h.mu.Unlock()
		return
	}
	h.renewed = time.Now()
	ids := make([]string, 0, len(h.held))
	holds := make(map[string]*meterHold, len(h.held))
	for id, m := range h.held {
		ids, holds[id] = append(ids, id), m
	}
	h.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	asked := time.Now()
	rctx, cancel := context.WithTimeout(ctx, h.p.cfg.Lease/3)
	renewed, err := h.p.cfg.Store.ExtendPushLeases(rctx, ids, h.owner, h.p.cfg.Lease)
	cancel()
	if err != nil {
		h.p.cfg.Logger.Warn("renewing meter push leases", "error", err)
		return // the claims' heartbeat stops the pushes if this goes on
	}
	for id, m := range holds {
		if renewed[id] {
			continue
		}
		m.mu.Lock()
		// Still held, and taken before it was asked to renew (not
		// given back, nor taken again meanwhile)?
		if len(m.pushes) > 0 && h.current(id, m) && m.taken.Before(asked) {
			h.p.cfg.Logger.Warn("meter push lease lost; its pushes stop", "meter_serial", m.serial)
			for _, stop := range m.pushes {
				stop()
			}
		}
		m.mu.Unlock()
	}
}

// forget drops an idle meter from the map (m.mu held, m.n 0). A push that
// found m before it was dropped sees so under m.mu and starts again, so
// one meter never has two holds.
func (h *meterHolds) forget(meterID string, m *meterHold) {
	h.mu.Lock()
	if h.held[meterID] == m {
		delete(h.held, meterID)
	}
	h.mu.Unlock()
}
