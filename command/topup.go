package command

import (
	"context"
	"fmt"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/meterop"
	"github.com/shopspring/decimal"
)

// creditTokenApplied is the event type meters log when they credit a token.
const creditTokenApplied = 48

func topupPushed(tu flows.Topup) pushed {
	return pushed{kind: "topup", id: tu.ID, meterID: tu.MeterID, serial: tu.Serial, attempts: tu.Attempts}
}

// finishTopup writes a decision to the top-up ledger, in its own status
// names: waiting (to retry), completed, failed.
func (p *Pusher) finishTopup(tu flows.Topup) writeFunc {
	return func(ctx context.Context, _ flows.RequestStatus, d decision) (bool, error) {
		status, note := flows.TopupFailed, d.detail
		switch d.to {
		case flows.RequestPending:
			status, note = flows.TopupWaiting, "Meter unreachable, will retry: "+d.detail
		case flows.RequestVerified:
			status = flows.TopupCompleted
		}
		return p.cfg.Store.FinishTopup(ctx, tu.ID, status, note, d.balance, d.next, false, tu.Attempts)
	}
}

// meterCounts are the meter's own records of credit, read around a send.
type meterCounts struct {
	balance decimal.Decimal
	txCount int
	// tokenSet is the newest credit-token event's set number in the latest
	// event-log block (0 when none); eventErr says it could not be read;
	// eventsRead says it was asked for.
	tokenSet   int
	eventErr   error
	eventsRead bool
}

// readCounts reads the balance and the transaction count, and the newest
// credit-token event when events is set.
func (p *Pusher) readCounts(ctx context.Context, t meterconn.Target, events bool) (meterCounts, error) {
	var c meterCounts
	var err error
	if c.balance, err = meterop.Balance(ctx, p.cfg.Meters, t); err != nil {
		return c, err
	}
	if c.txCount, err = txCount(ctx, p.cfg.Meters, t); err != nil {
		return c, err
	}
	if events {
		c.readEvents(ctx, p.cfg.Meters, t)
	}
	return c, nil
}

func (c *meterCounts) readEvents(ctx context.Context, m meterop.Meters, t meterconn.Target) {
	c.tokenSet, c.eventErr = lastCreditTokenSet(ctx, m, t)
	c.eventsRead = true
}

// pushTopup sends a token and confirms it by the meter's transaction
// count and balance. A top-up whose earlier push may have reached the
// meter is checked before anything is sent again.
func (p *Pusher) pushTopup(ctx context.Context, tu flows.Topup) outcome {
	_, t, err := p.target(ctx, tu.MeterID)
	if err != nil {
		o := p.noTarget(topupPushed(tu), err)
		if o.result == resultFailed {
			o.detail = "Error: " + o.detail
		}
		return o
	}
	if tu.PushStartedAt != nil && tu.TxCountBefore != nil {
		if o, applied := p.resumeTopup(ctx, t, tu); applied {
			return o
		}
	}
	before, err := p.readCounts(ctx, t, true)
	if err != nil {
		return topupError("failed to check initial balance", err)
	}
	if before.eventErr != nil {
		return topupError("", before.eventErr)
	}
	marked, err := p.cfg.Store.MarkTopupPushing(ctx, tu.ID, before.balance, before.txCount, tu.Attempts)
	if err != nil {
		return p.storeFailed(topupPushed(tu), "recording the push start", err)
	}
	if !marked {
		return stopped() // the claim is another process's now: it must not be sent twice
	}
	if err := p.fail("topup_before_send"); err != nil {
		return stopped()
	}
	return p.sendToken(ctx, t, tu, before)
}

// resumeTopup asks the meter whether an earlier attempt, which got as far
// as sending (maybe further), had the token applied, before it is sent
// again: the transaction count decides. The balance is read for the
// ledger and the shadow when it can be; a token the meter applied is
// completed even when it cannot, so it is never credited twice.
func (p *Pusher) resumeTopup(ctx context.Context, t meterconn.Target, tu flows.Topup) (outcome, bool) {
	n, err := txCount(ctx, p.cfg.Meters, t)
	if err != nil {
		return topupError("", err), true
	}
	if n <= *tu.TxCountBefore {
		return outcome{}, false
	}
	b, err := meterop.Balance(ctx, p.cfg.Meters, t)
	if err != nil {
		note := fmt.Sprintf("Token applied (confirmed by the transaction count after an interrupted push; balance unread: %s)", meterconn.Detail(err))
		return done(flows.RequestVerified, note), true
	}
	note := fmt.Sprintf("Token applied (confirmed after an interrupted push): %s -> %s", tu.BalanceBefore.StringFixed(2), b.StringFixed(2))
	return credited(note, b), true
}

// sendToken sends the token and confirms it against before.
func (p *Pusher) sendToken(ctx context.Context, t meterconn.Target, tu flows.Topup, before meterCounts) outcome {
	payload, err := emop.EncodeToken(tu.Token)
	if err != nil {
		return failed("Error: the token is not 20 digits")
	}
	w := meterop.Write{Object: emop.ObjTokenSend, Payload: payload}
	if err := p.write(ctx, t, topupPushed(tu), tu.RequestedBy, w, emop.RedactToken(tu.Token)); err != nil {
		if meterconn.Classify(err) == meterconn.FailureRefused {
			return failed("Meter refused the token: " + meterconn.Detail(err))
		}
		return topupError("", err) // it may have arrived: the next attempt checks first
	}
	if err := p.fail("topup_after_send"); err != nil {
		return stopped()
	}
	// The balance and the transaction count after; the event log only
	// when the count did not rise. Each request is a second or more on a
	// cellular link, and a top-up is what an operator waits on: the count
	// rising is the meter's own record of the credit, as the event is.
	after, err := p.readCounts(ctx, t, false)
	if err != nil {
		return topupError("failed to check updated balance", err)
	}
	if after.txCount <= before.txCount {
		after.readEvents(ctx, p.cfg.Meters, t)
	}
	return confirmTopup(before, after)
}

// confirmTopup decides a sent token by the balance increase and the
// meter's own record of the credit: its transaction count rising, or its
// credit-token event (type 48) when the count did not.
func confirmTopup(before, after meterCounts) outcome {
	b0, b1 := before.balance.StringFixed(2), after.balance.StringFixed(2)
	eventSeen := after.eventsRead && after.eventErr == nil && before.eventErr == nil && after.tokenSet > before.tokenSet
	if !after.balance.GreaterThan(before.balance) || !(eventSeen || after.txCount > before.txCount) {
		note := fmt.Sprintf("Balance did not increase: %s -> %s", b0, b1)
		if after.balance.GreaterThan(before.balance) {
			note = fmt.Sprintf("Balance increased (%s -> %s) but the meter recorded no credit", b0, b1)
		}
		o := failed(note)
		o.balance = &after.balance
		o.saw("balance", flows.ShadowUpdate{Balance: &after.balance})
		return o
	}
	note := fmt.Sprintf("Balance increased: %s -> %s", b0, b1)
	if after.txCount > before.txCount {
		note += fmt.Sprintf("; transaction count %d -> %d", before.txCount, after.txCount)
	} else {
		note += fmt.Sprintf("; credit-token event %d (set %d) logged", creditTokenApplied, after.tokenSet)
	}
	return credited(note, after.balance)
}

// credited is a completed top-up: the confirmed balance goes to the
// ledger and to the shadow.
func credited(note string, balance decimal.Decimal) outcome {
	o := done(flows.RequestVerified, note)
	o.balance = &balance
	o.saw("balance", flows.ShadowUpdate{Balance: &balance})
	return o
}

// topupError is fromError in the ledger's words: a failure that is not
// the meter's refusal reads "Error: …".
func topupError(what string, err error) outcome {
	o := fromError(what, err)
	if o.result == resultFailed {
		o.detail = "Error: " + o.detail
	}
	return o
}

func txCount(ctx context.Context, m meterop.Meters, t meterconn.Target) (int, error) {
	p, err := m.Read(ctx, t, emop.ObjTransactionCount)
	if err != nil {
		return 0, err
	}
	n, err := emop.DecodeU16(p)
	return int(n), err
}

// lastCreditTokenSet returns the newest credit-token-applied event's set
// number in the meter's latest event-log block (0 when none).
func lastCreditTokenSet(ctx context.Context, m meterop.Meters, t meterconn.Target) (int, error) {
	req, err := emop.EventLogRequest(0)
	if err != nil {
		return 0, err
	}
	resp, err := m.Raw(ctx, t, req)
	if err != nil {
		return 0, err
	}
	_, evs, err := emop.ParseEventLogResponse(resp)
	if err != nil {
		return 0, err
	}
	set := 0
	for _, e := range evs {
		if e.EventID == creditTokenApplied && int(e.EventSet) > set {
			set = int(e.EventSet)
		}
	}
	return set, nil
}
