package command

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/meterop"
	"github.com/shopspring/decimal"
)

func tariffPushed(r flows.TariffRequest) pushed {
	return pushed{kind: "tariff", id: r.ID, meterID: r.MeterID, serial: r.Serial, attempts: r.Attempts}
}

// pushTariff writes a future tariff, reads it back and verifies it.
func (p *Pusher) pushTariff(ctx context.Context, r flows.TariffRequest) outcome {
	req := tariffPushed(r)
	m, t, err := p.target(ctx, r.MeterID)
	if err != nil {
		return p.noTarget(req, err)
	}
	f, err := futureTariff(r, m.DaylightSavingsCorrectionEnabled)
	if err != nil {
		return failed(err.Error())
	}
	writes, err := meterop.FutureTariffWrites(f)
	if err != nil {
		return failed(err.Error())
	}
	// What the meter holds now, so that a sequence the meter refuses
	// part-way can be undone: the meter must always hold a tariff somebody
	// asked for, never a mix of two.
	before, err := p.heldFuture(ctx, t)
	if c := meterconn.Classify(err); c.Unreached() || c == meterconn.FailureCanceled {
		return fromError("", err) // the meter did not answer: retry the whole push later
	}
	for i, w := range writes {
		// A request superseded meanwhile is not pushed any further.
		st, err := p.cfg.Store.TariffRequestStatus(ctx, r.ID)
		if err != nil {
			return p.storeFailed(req, "reading the request's status", err)
		}
		if st != flows.RequestSending {
			p.cfg.Logger.Info("tariff push stopped", "request_id", r.ID, "status", st)
			return stopped()
		}
		if err := p.write(ctx, t, req, r.RequestedBy, w, hex.EncodeToString(w.Payload)); err != nil {
			o := fromError(fmt.Sprintf("wrote %d of %d objects, then %s", i, len(writes), objectName(w.Object)), err)
			if o.result == resultFailed && i > 0 {
				// Refused part-way: retrying gets the same refusal, so the
				// meter goes back to what it held. (A communication failure
				// is retried instead, and the next push writes it all.)
				o.detail += "; " + p.restoreFuture(ctx, t, req, r.RequestedBy, p.safeRestore(ctx, m, before))
			}
			return o
		}
	}
	if err := p.fail("tariff_sent"); err != nil {
		return stopped() // a crash after the writes: the lease runs out, the next process pushes again
	}
	ok, err := p.cfg.Store.MoveTariffRequest(ctx, r.ID, flows.RequestSending, flows.RequestSent, "", time.Time{}, r.Attempts)
	if err != nil {
		return p.storeFailed(req, "recording the tariff sent", err)
	}
	if !ok {
		return stopped() // superseded after the last write
	}
	return p.verifyTariff(ctx, r, t, f).at(flows.RequestSent)
}

// heldFuture reads the future tariff the meter holds, as a write sequence
// can put it back. An error that is not the meter's (an amount that
// cannot be written back) leaves it nil.
func (p *Pusher) heldFuture(ctx context.Context, t meterconn.Target) (*meterop.FutureTariff, error) {
	held, err := meterop.ReadTariff(ctx, p.cfg.Meters, t, true)
	if err != nil {
		return nil, err
	}
	if held.StandingCharge == nil || held.UnitRateElementA == nil || held.UnitRateElementB == nil || held.PrepaymentEmergencyCredit == nil ||
		held.PrepaymentECreditAvailability == nil || held.PrepaymentDebtRecoveryRate == nil || held.ActivationDatetime == nil {
		return nil, nil
	}
	wall, err := time.Parse("2006-01-02T15:04:05", *held.ActivationDatetime)
	if err != nil {
		return nil, nil
	}
	return &meterop.FutureTariff{StandingCharge: *held.StandingCharge, UnitRateA: *held.UnitRateElementA, UnitRateB: *held.UnitRateElementB,
		EmergencyCredit: *held.PrepaymentEmergencyCredit, ECreditAvailability: *held.PrepaymentECreditAvailability,
		DebtRecoveryRate: *held.PrepaymentDebtRecoveryRate, ActivationWall: wall}, nil
}

// safeRestore decides what to put back after a refused sequence: the
// tariff the meter held, armed with its activation only when it is a
// change still to come that the meter confirmed for some request (so a
// mix left by an earlier cut-off push is never armed); otherwise the held
// amounts with the EMOP epoch as activation — no change scheduled, the
// active tariff untouched. Re-arming a past activation would make the
// meter activate it at once.
func (p *Pusher) safeRestore(ctx context.Context, m *flows.Meter, before *meterop.FutureTariff) *meterop.FutureTariff {
	if before == nil {
		return nil
	}
	w := p.cfg.Now().In(flows.MeterClockZone(m.DaylightSavingsCorrectionEnabled))
	wallNow := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), 0, time.UTC)
	restore := *before
	if before.ActivationWall.After(wallNow) {
		last, err := p.cfg.Store.LastConfirmedTariffRequest(ctx, m.ID)
		if err == nil && last != nil {
			if f, err := futureTariff(*last, m.DaylightSavingsCorrectionEnabled); err == nil && sameFuture(f, *before) {
				return &restore // a pending change somebody asked for
			}
		}
	}
	restore.ActivationWall = emop.Epoch
	return &restore
}

// sameFuture reports whether two future tariffs are the same write.
func sameFuture(a, b meterop.FutureTariff) bool {
	return a.StandingCharge.Equal(b.StandingCharge) && a.UnitRateA.Equal(b.UnitRateA) && a.UnitRateB.Equal(b.UnitRateB) &&
		a.EmergencyCredit.Equal(b.EmergencyCredit) && a.ECreditAvailability.Equal(b.ECreditAvailability) &&
		a.DebtRecoveryRate.Equal(b.DebtRecoveryRate) && a.ActivationWall.Equal(b.ActivationWall)
}

// restoreFuture writes back the future tariff the meter held before a
// push it refused part-way, and says how that went.
func (p *Pusher) restoreFuture(ctx context.Context, t meterconn.Target, req pushed, requestedBy string, before *meterop.FutureTariff) string {
	if before == nil {
		return "the meter's previous future tariff could not be read, so it was not restored: the next request for this meter rewrites it"
	}
	writes, err := meterop.FutureTariffWrites(*before)
	if err != nil {
		return "the meter's previous future tariff cannot be written back (" + err.Error() + "): the next request for this meter rewrites it"
	}
	for _, w := range writes {
		if err := p.write(ctx, t, req, requestedBy, w, hex.EncodeToString(w.Payload)); err != nil {
			return fmt.Sprintf("restoring the previous future tariff failed at %s: %s; the next request for this meter rewrites it", objectName(w.Object), meterconn.Detail(err))
		}
	}
	if before.ActivationWall.Equal(emop.Epoch) {
		return "the meter's previous future tariff was restored with no change scheduled"
	}
	return "the meter's previous future tariff was restored"
}

// objectName names an object id for notes.
func objectName(id emop.ObjectID) string {
	if o, ok := emop.Lookup(id); ok {
		return o.Name
	}
	return id.String()
}

// verifyTariff reads the future tariff back: verified when it is what was
// written, then checked for activation at the activation time.
func (p *Pusher) verifyTariff(ctx context.Context, r flows.TariffRequest, t meterconn.Target, f meterop.FutureTariff) outcome {
	back, err := meterop.ReadTariff(ctx, p.cfg.Meters, t, true)
	if err != nil {
		o := fromError("read back failed", err)
		if o.result == resultFailed {
			o.result = resultRetry // the writes were accepted: reading again may well work
		}
		return o
	}
	if diff := tariffDiff(f, back, true); diff != "" {
		return retry("read back differs: " + diff)
	}
	o := done(flows.RequestVerified, "")
	o.next = r.ActivationAt
	o.saw("tariffs_future", flows.ShadowUpdate{TariffsFuture: back, At: p.cfg.Now()})
	return o
}

// checkActivation confirms that a verified tariff became the meter's
// active tariff once its activation time passed.
func (p *Pusher) checkActivation(ctx context.Context, r flows.TariffRequest) outcome {
	_, t, err := p.target(ctx, r.MeterID)
	if err != nil {
		// Made passive or lost its address since: look again later.
		return outcome{result: resultWait, to: flows.RequestVerified, detail: err.Error(), next: p.cfg.Now().Add(time.Minute)}
	}
	f, err := futureTariff(r, false)
	if err != nil {
		return failed(err.Error())
	}
	active, err := meterop.ReadTariff(ctx, p.cfg.Meters, t, false)
	if meterconn.Classify(err) == meterconn.FailureCanceled {
		return stopped() // shutting down: look again next time
	}
	if err == nil && tariffDiff(f, active, false) == "" {
		o := done(flows.RequestActive, "")
		o.saw("tariffs_active", flows.ShadowUpdate{TariffsActive: active, At: p.cfg.Now()})
		return o
	}
	msg := "not active yet on the meter"
	if err != nil {
		msg = "active tariff read failed: " + meterconn.Detail(err)
	}
	if p.cfg.Now().Sub(r.ActivationAt) > 48*time.Hour {
		return failed("meter did not activate the tariff within 48 hours: " + msg)
	}
	return outcome{result: resultWait, to: flows.RequestVerified, detail: msg, next: p.cfg.Now().Add(time.Minute)}
}

// futureTariff converts a request into the meter's write: the activation
// instant shown in the meter's clock zone.
func futureTariff(r flows.TariffRequest, dst bool) (meterop.FutureTariff, error) {
	t := r.Tariff
	if t.StandingCharge == nil || t.UnitRateElementA == nil || t.PrepaymentEmergencyCredit == nil ||
		t.PrepaymentECreditAvailability == nil || t.PrepaymentDebtRecoveryRate == nil {
		return meterop.FutureTariff{}, flows.Errorf(flows.EINVALID, "tariff request %s lacks an amount", r.ID)
	}
	b := t.UnitRateElementA
	if t.UnitRateElementB != nil {
		b = t.UnitRateElementB
	}
	w := r.ActivationAt.In(flows.MeterClockZone(dst))
	return meterop.FutureTariff{
		StandingCharge: *t.StandingCharge, UnitRateA: *t.UnitRateElementA, UnitRateB: *b,
		EmergencyCredit: *t.PrepaymentEmergencyCredit, ECreditAvailability: *t.PrepaymentECreditAvailability,
		DebtRecoveryRate: *t.PrepaymentDebtRecoveryRate,
		ActivationWall:   time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), 0, time.UTC),
	}, nil
}

// tariffDiff names the first field where the meter's tariff differs from
// what was written ("" when every field matches).
func tariffDiff(f meterop.FutureTariff, got *flows.Tariff, withActivation bool) string {
	eq := func(a decimal.Decimal, b *decimal.Decimal) bool { return b != nil && a.Equal(*b) }
	switch {
	case !eq(f.StandingCharge, got.StandingCharge):
		return "standing_charge"
	case !eq(f.UnitRateA, got.UnitRateElementA):
		return "unit_rate_element_a"
	case !eq(f.UnitRateB, got.UnitRateElementB):
		return "unit_rate_element_b"
	case !eq(f.EmergencyCredit, got.PrepaymentEmergencyCredit):
		return "prepayment_emergency_credit"
	case !eq(f.ECreditAvailability, got.PrepaymentECreditAvailability):
		return "prepayment_ecredit_availability"
	case !eq(f.DebtRecoveryRate, got.PrepaymentDebtRecoveryRate):
		return "prepayment_debt_recovery_rate"
	case withActivation && (got.ActivationDatetime == nil || *got.ActivationDatetime != f.ActivationWall.Format("2006-01-02T15:04:05")):
		return "activation_datetime"
	}
	return ""
}
