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
	// observed is what the push read back from the meter; only values
	// that were read are set.
	observed *flows.ShadowUpdate
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

// fromError classifies a failed step: a meter that cannot be reached (or
// a push interrupted by shutdown) is retried; a refusal, or anything that
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
		return retry("interrupted before the meter answered")
	case meterconn.FailureComm:
		return retry(detail)
	}
	return failed(detail)
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
func (r *recorder) record(ctx context.Context, req pushed, o outcome, write func(ctx context.Context, from flows.RequestStatus, d decision) error) {
	if o.result == resultStopped {
		return
	}
	ctx = context.WithoutCancel(ctx) // a push that ended is recorded, even at shutdown
	log := r.log.With("request_kind", req.kind, "request_id", req.id)
	r.observe(ctx, req.meterID, o, log)
	d := r.policy.decide(o, req.attempts, r.now())
	from := o.from
	if from == "" {
		from = flows.RequestSending
	}
	if err := write(ctx, from, d); err != nil {
		log.Error("recording a push", "status", d.to, "detail", d.detail, "error", err)
		return
	}
	if d.to == flows.RequestFailed {
		log.Warn("request failed", "detail", d.detail)
	}
}

// observe writes what a push read back to the shadow and the registry.
func (r *recorder) observe(ctx context.Context, meterID string, o outcome, log *slog.Logger) {
	if o.observed != nil {
		if err := r.store.UpdateShadow(ctx, meterID, *o.observed); err != nil {
			log.Error("recording what the meter reported", "error", err)
		}
	}
	if o.prepay != nil || o.dst != nil {
		if err := r.store.SetRegistryFlags(ctx, meterID, o.prepay, o.dst); err != nil {
			log.Error("recording the meter's flags", "error", err)
		}
	}
}

// moveFunc is a store's conditional status change of one kind of request
// (MoveTariffRequest, MoveMeterCommand).
type moveFunc func(ctx context.Context, id string, from, to flows.RequestStatus, lastError string, retryAt time.Time) (bool, error)

// writeWith writes decisions to request id with move.
func writeWith(move moveFunc, id string) func(ctx context.Context, from flows.RequestStatus, d decision) error {
	return func(ctx context.Context, from flows.RequestStatus, d decision) error {
		_, err := move(ctx, id, from, d.to, d.detail, d.next)
		return err
	}
}
