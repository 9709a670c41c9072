package command

import (
	"context"
	"sync"
	"time"

	"github.com/flows-energy/flows"
)

// heartbeat keeps the leases of the requests a pass is pushing: it renews
// them every quarter of the lease (each renewal bounded by a third), and a
// claim not renewed for half a lease is given up well before it expires, so a lease can be short (a dead
// process's half-done push is taken over within one lease) while a slow
// push keeps its own. A claim that could not be renewed in time may be
// another process's now: its push is cancelled, so that no request is
// ever pushed by two processes at once.
type heartbeat struct {
	p      *Pusher
	mu     sync.Mutex
	claims map[string]heldClaim
}

type heldClaim struct {
	kind    string // tariff, topup, command
	claim   flows.Claim
	cancel  context.CancelFunc
	renewed time.Time // when the lease was last taken or renewed
}

func newHeartbeat(p *Pusher) *heartbeat { return &heartbeat{p: p, claims: map[string]heldClaim{}} }

// hold registers a claim taken now and returns the context its push runs
// in: cancelled when the claim is lost.
func (h *heartbeat) hold(ctx context.Context, kind string, c flows.Claim) context.Context {
	ctx, cancel := context.WithCancel(ctx)
	h.mu.Lock()
	h.claims[c.ID] = heldClaim{kind: kind, claim: c, cancel: cancel, renewed: time.Now()}
	h.mu.Unlock()
	return ctx
}

// release forgets a claim whose push is over (before its outcome is
// recorded, which ends the lease).
func (h *heartbeat) release(id string) {
	h.mu.Lock()
	if c, ok := h.claims[id]; ok {
		c.cancel()
		delete(h.claims, id)
	}
	h.mu.Unlock()
}

// run renews the held leases until ctx ends.
func (h *heartbeat) run(ctx context.Context) {
	t := time.NewTicker(h.p.cfg.Lease / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.renew(ctx)
		}
	}
}

func (h *heartbeat) renew(ctx context.Context) {
	h.p.holds.renew(ctx)
	h.mu.Lock()
	var tariffs, topups, commands []flows.Claim
	for _, c := range h.claims {
		switch c.kind {
		case "tariff":
			tariffs = append(tariffs, c.claim)
		case "topup":
			topups = append(topups, c.claim)
		default:
			commands = append(commands, c.claim)
		}
	}
	h.mu.Unlock()
	if len(tariffs)+len(topups)+len(commands) == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, h.p.cfg.Lease/3)
	renewed, err := h.p.cfg.Store.ExtendLeases(rctx, h.p.cfg.Lease, tariffs, topups, commands)
	cancel()
	if err != nil {
		h.p.cfg.Logger.Warn("renewing push leases", "error", err)
	}
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, c := range h.claims {
		switch {
		case renewed[id]:
			c.renewed = now
			h.claims[id] = c
		case err == nil || now.Sub(c.renewed) > h.p.cfg.Lease/2:
			// Lost (or about to be, with the database unreachable): stop
			// before another process may take it.
			h.p.cfg.Logger.Warn("push lease lost; the push stops", "request_kind", c.kind, "request_id", id)
			c.cancel()
			delete(h.claims, id)
		}
	}
}
