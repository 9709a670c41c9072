package command

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/meterconn"
	"github.com/shopspring/decimal"
)

// result is how one push of a request ended.
type result int

const (
	// resultDone: the push reached a status (sent, verified, active).
	resultDone result = iota
	// resultWait: nothing went wrong, but the meter has not done it yet
	// (a verified tariff not active yet); look again at next.
	resultWait
	// resultRetry: a failure that may pass (the meter unreachable):
	// try again after a backoff, until the attempts run out.
	resultRetry
	// resultFailed: a failure that will not pass (the meter refused, the
	// request cannot be written): fail now.
	resultFailed
	// resultStopped: the push stopped without an outcome to record (the
	// request was superseded, or the process is crashing on purpose).
	resultStopped
)

// outcome is what one push of a request came to: the one value every
// push (tariff, top-up, clock, flag) returns, and the recorder applies.
type outcome struct {
	result result
	// from is the status the push holds the request in ("" = sending).
	from flows.RequestStatus
	// to is the status reached, for resultDone and resultWait.
	to flows.RequestStatus
	// detail is the note (done) or the error (retry, failed).
	detail string
	// next is when to look again, for resultDone and resultWait (zero:
	// never).
	next time.Time
	// observed is what the push read back from the meter (only values
	// that were read are set), and group the value group it fills.
	observed *flows.ShadowUpdate
	group    string
	// prepay and dst are registry flags read back.
	prepay, dst *bool
	// balance is a top-up's confirmed balance after the credit.
	balance *decimal.Decimal
}

func done(to flows.RequestStatus, note string) outcome {
	return outcome{result: resultDone, to: to, detail: note}
}

func retry(detail string) outcome  { return outcome{result: resultRetry, detail: detail} }
func failed(detail string) outcome { return outcome{result: resultFailed, detail: detail} }
func stopped() outcome             { return outcome{result: resultStopped} }

// fromError classifies a failed step: a meter that cannot be reached, or
// a mediator on the way to it that is down (or a push interrupted by
// shutdown) is retried; a refusal, or anything that
// is not the meter's doing, fails at once. what, when set, says which
// step failed ("read back failed").
func fromError(what string, err error) outcome {
	detail := meterconn.Detail(err)
	class := meterconn.Classify(err)
	if class == meterconn.FailureOther {
		detail = err.Error() // an input we could not encode, a store error: say what
	}
	if what != "" {
		detail = what + ": " + detail
	}
	switch class {
	case meterconn.FailureCanceled:
		// Shutting down: nothing is known about the meter. The lease runs
		// out and the next pass resumes the push, as after a crash, without
		// using up an attempt.
		return stopped()
	case meterconn.FailureComm, meterconn.FailureDependency:
		// A meter not answering, or the way to it down (a mediator):
		// the request is kept and retried with backoff.
		return retry(detail)
	}
	return failed(detail)
}

// saw notes a value the push read back from the meter.
func (o *outcome) saw(group string, u flows.ShadowUpdate) {
	o.observed, o.group = &u, group
}

// at returns o moved to the from-status from.
func (o outcome) at(from flows.RequestStatus) outcome { o.from = from; return o }

// policy is the one retry rule of meter writes.
type policy struct {
	maxAttempts int           // a retry after this many attempts fails
	retryBase   time.Duration // first retry delay; it doubles, to at most an hour
}

// decision is what to write to a request's row.
type decision struct {
	to        flows.RequestStatus
	detail    string
	next      time.Time
	exhausted bool             // failed because the attempts ran out
	balance   *decimal.Decimal // a top-up's balance after, when read
}

// decide turns the outcome of a request's attempts-th push at now into
// its next status: a retry is pending again after a doubling backoff,
// until the attempt limit, when it fails and says so.
func (p policy) decide(o outcome, attempts int, now time.Time) decision {
	switch o.result {
	case resultDone, resultWait:
		return decision{to: o.to, detail: o.detail, next: o.next, balance: o.balance}
	case resultRetry:
		if attempts >= p.maxAttempts {
			return decision{to: flows.RequestFailed, detail: fmt.Sprintf("Gave up after %d attempts: %s", attempts, o.detail), exhausted: true}
		}
		d := min(p.retryBase<<min(max(attempts, 1)-1, 10), time.Hour)
		return decision{to: flows.RequestPending, detail: o.detail, next: now.Add(d)}
	}
	return decision{to: flows.RequestFailed, detail: o.detail, balance: o.balance}
}

// pushed names a request for the recorder.
type pushed struct {
	kind     string // tariff, topup, or the command kind
	id       string
	meterID  string
	serial   string // the meter's, for the log: what an operator searches for
	attempts int
}

// recorder applies outcomes: it writes what the meter reported, then the
// request's new status, and logs every error it cannot record.
type recorder struct {
	policy policy
	store  Store
	now    func() time.Time // database time, for next attempts
	log    *slog.Logger
}

// record applies o to the request req, writing the decision with write.
func (r *recorder) record(ctx context.Context, req pushed, o outcome, write writeFunc) {
	if o.result == resultStopped {
		return
	}
	ctx = context.WithoutCancel(ctx) // a push that ended is recorded, even at shutdown
	log := r.log.With("meter_serial", req.serial, "request_kind", req.kind, "request_id", req.id)
	if !r.observe(ctx, req.meterID, o, log) {
		return
	}
	d := r.policy.decide(o, req.attempts, r.now())
	from := o.from
	if from == "" {
		from = flows.RequestSending
	}
	moved, err := write(ctx, from, d)
	if err != nil {
		log.Error("recording a push", "status", d.to, "detail", d.detail, "error", err)
		return
	}
	if !moved {
		log.Info("request moved on meanwhile (superseded?); outcome not recorded", "status", d.to)
		return
	}
	if d.to == flows.RequestFailed {
		log.Warn("request failed", "detail", d.detail)
	}
}

// observe records what a push read back exactly as a sync's reads are
// (flows.SyncResult through the store's one observation path): history,
// the value group's freshness, health (the meter answered), the registry
// flags and the replica outbox. It reports false when that could not be
// written: then the request is not moved on either, so that no request
// says done while Flows does not show what the meter confirmed.
func (r *recorder) observe(ctx context.Context, meterID string, o outcome, log *slog.Logger) bool {
	if o.observed == nil && o.prepay == nil && o.dst == nil {
		return true
	}
	res := flows.SyncResult{MeterID: meterID, At: r.now().UTC(), Reached: true, TouchHealth: true,
		Registry: flows.RegistryUpdate{PrepayEnabled: o.prepay, DaylightSavingsCorrectionEnabled: o.dst}}
	if o.observed != nil {
		res.Shadow = *o.observed
		if !o.observed.At.IsZero() {
			res.At = o.observed.At.UTC()
		}
		res.Groups = []string{o.group}
	}
	if err := r.store.ApplyObservation(ctx, res); err != nil {
		log.Error("recording what the meter reported; the request stays as it is until the push is resumed", "error", err)
		return flows.ErrorCode(err) == flows.EINVALID // a value that can never be stored must not hold the request forever
	}
	return true
}

// moveFunc is a store's conditional status change of one kind of request
// (MoveTariffRequest, MoveMeterCommand).
type moveFunc func(ctx context.Context, id string, from, to flows.RequestStatus, lastError string, retryAt time.Time, attempt int) (bool, error)

// writeFunc writes a decision to a request held in status from; false
// when the request was no longer in from (moved on by someone else).
type writeFunc func(ctx context.Context, from flows.RequestStatus, d decision) (bool, error)

// writeWith writes decisions to request id, as claim attempt (0: not
// claimed), with move.
func writeWith(move moveFunc, id string, attempt int) writeFunc {
	return func(ctx context.Context, from flows.RequestStatus, d decision) (bool, error) {
		return move(ctx, id, from, d.to, d.detail, d.next, attempt)
	}
}
