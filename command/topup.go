package command

import (
	"context"
	"fmt"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/meterop"
)

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
	req, _ := emop.EventLogRequest(0)
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

// creditTokenApplied is the event type meters log when they credit a token.
const creditTokenApplied = 48

// pushTopup sends a token and confirms it by the meter's transaction
// count and balance. A top-up whose earlier push may have reached the
// meter is checked before anything is sent again.
func (p *Pusher) pushTopup(ctx context.Context, tu flows.Topup) {
	log := p.cfg.Logger.With("topup_id", tu.ID, "meter_serial", tu.Serial, "token", emop.RedactToken(tu.Token))
	retryOrFail := func(err error, clearPush bool) {
		_, detail := outcome(err)
		if detail == "" {
			detail = err.Error()
		}
		if isComm(err) && tu.Attempts < p.cfg.MaxAttempts {
			if err := p.cfg.Store.FinishTopup(ctx, tu.ID, flows.TopupWaiting, "Meter unreachable, will retry: "+detail, nil, p.retryAt(tu.Attempts), clearPush); err != nil {
				log.Error("recording a failed push", "error", err)
			}
			return
		}
		note := "Error: " + detail
		if isComm(err) {
			note = fmt.Sprintf("Gave up after %d attempts: %s", tu.Attempts, detail)
		}
		if err := p.cfg.Store.FinishTopup(ctx, tu.ID, flows.TopupFailed, note, nil, time.Time{}, false); err != nil {
			log.Error("recording a failed push", "error", err)
		}
	}
	_, t, err := p.target(ctx, tu.MeterID)
	if err != nil {
		retryOrFail(err, false)
		return
	}
	if tu.PushStartedAt != nil && tu.TxCountBefore != nil {
		// An earlier attempt got as far as sending, maybe further: ask the
		// meter whether the token was applied before sending it again.
		n, err := txCount(ctx, p.cfg.Meters, t)
		if err != nil {
			retryOrFail(err, false)
			return
		}
		if n > *tu.TxCountBefore {
			b, _ := meterop.Balance(ctx, p.cfg.Meters, t)
			note := fmt.Sprintf("Token applied (confirmed after an interrupted push): %s -> %s", tu.BalanceBefore.StringFixed(2), b.StringFixed(2))
			if err := p.cfg.Store.FinishTopup(ctx, tu.ID, flows.TopupCompleted, note, &b, time.Time{}, false); err != nil {
				log.Error("recording a completed push", "error", err)
			}
			return
		}
	}
	b0, err := meterop.Balance(ctx, p.cfg.Meters, t)
	if err != nil {
		retryOrFail(fmt.Errorf("failed to check initial balance: %w", err), false)
		return
	}
	n0, err := txCount(ctx, p.cfg.Meters, t)
	if err != nil {
		retryOrFail(err, false)
		return
	}
	set0, err := lastCreditTokenSet(ctx, p.cfg.Meters, t)
	if err != nil {
		retryOrFail(err, false)
		return
	}
	if err := p.cfg.Store.MarkTopupPushing(ctx, tu.ID, b0, n0); err != nil {
		log.Error("recording the push start", "error", err)
		return
	}
	if err := p.fail("topup_before_send"); err != nil {
		return
	}
	serr := meterop.SendToken(ctx, p.cfg.Meters, t, tu.Token)
	kind, detail := outcome(serr)
	p.audit(ctx, flows.AuditEntry{MeterID: tu.MeterID, RequestKind: "topup", RequestID: tu.ID, RequestedBy: tu.RequestedBy,
		Object: "prepay_token_send", Value: emop.RedactToken(tu.Token), Outcome: kind, Detail: detail})
	if serr != nil {
		if kind == "nak" {
			if err := p.cfg.Store.FinishTopup(ctx, tu.ID, flows.TopupFailed, "Meter refused the token: "+detail, nil, time.Time{}, false); err != nil {
				log.Error("recording a refused token", "error", err)
			}
			return
		}
		retryOrFail(serr, false) // it may have arrived: the next attempt checks first
		return
	}
	if err := p.fail("topup_after_send"); err != nil {
		return
	}
	b1, err := meterop.Balance(ctx, p.cfg.Meters, t)
	if err != nil {
		retryOrFail(fmt.Errorf("failed to check updated balance: %w", err), false)
		return
	}
	n1, err := txCount(ctx, p.cfg.Meters, t)
	if err != nil {
		retryOrFail(err, false)
		return
	}
	// Confirmed by the balance increase and the meter's own record of the
	// credit: its credit-token event (type 48), or its transaction count
	// when the event log cannot be read.
	set1, evErr := lastCreditTokenSet(ctx, p.cfg.Meters, t)
	eventSeen := evErr == nil && set1 > set0
	if !b1.GreaterThan(b0) || !(eventSeen || n1 > n0) {
		note := fmt.Sprintf("Balance did not increase: %s -> %s", b0.StringFixed(2), b1.StringFixed(2))
		if b1.GreaterThan(b0) {
			note = fmt.Sprintf("Balance increased (%s -> %s) but the meter recorded no credit", b0.StringFixed(2), b1.StringFixed(2))
		}
		if err := p.cfg.Store.FinishTopup(ctx, tu.ID, flows.TopupFailed, note, &b1, time.Time{}, false); err != nil {
			log.Error("recording a failed push", "error", err)
		}
		return
	}
	note := fmt.Sprintf("Balance increased: %s -> %s", b0.StringFixed(2), b1.StringFixed(2))
	if eventSeen {
		note += fmt.Sprintf("; credit-token event %d (set %d) logged", creditTokenApplied, set1)
	} else {
		note += "; transaction count rose (event log unreadable)"
	}
	if err := p.cfg.Store.FinishTopup(ctx, tu.ID, flows.TopupCompleted, note, &b1, time.Time{}, false); err != nil {
		log.Error("recording a completed push", "error", err)
	}
}
