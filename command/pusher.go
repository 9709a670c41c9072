// Package command pushes operators' requests to meters: future tariffs,
// top-up tokens, clock corrections (queued for meters drifting past a
// threshold) and flags. Each request is already durable in the database; the
// pusher claims due ones under a lease, writes, reads back and verifies,
// and records every write in the audit log. A process that dies mid-push
// leaves its lease to expire; the next one resumes: a tariff is pushed
// again (the writes are idempotent), a top-up first checks the meter's
// transaction count against the one recorded before the send, so a token
// is never sent twice once it has been applied.
package command

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/meterop"
	"github.com/flows-energy/flows/postgres"
	"github.com/shopspring/decimal"
)

// Config configures a Pusher.
type Config struct {
	Store       *postgres.Store
	Meters      meterop.Meters
	Workers     int           // requests pushed at once (8)
	PollEvery   time.Duration // how often to look for due requests (1 s)
	Lease       time.Duration // how long a claimed request is ours (5 min)
	MaxAttempts int           // then a request fails for good (10)
	RetryBase   time.Duration // first retry delay, doubling, at most an hour (30 s)
	Now         func() time.Time
	Logger      *slog.Logger
	// FailPoint, for crash tests, is called at named points of a push; an
	// error there stops the push as a crash would.
	FailPoint func(point string) error
	// ClockThreshold is the drift beyond which a meter's clock is set
	// (20 s); 0 keeps the default, negative turns clock correction off.
	ClockThreshold time.Duration
}

// Pusher pushes requests. Start/Stop run it in the background; RunOnce
// does one pass (tests, tools).
type Pusher struct {
	cfg    Config
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a pusher.
func New(cfg Config) *Pusher {
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.PollEvery <= 0 {
		cfg.PollEvery = time.Second
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 5 * time.Minute
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 10
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ClockThreshold == 0 {
		cfg.ClockThreshold = 20 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Pusher{cfg: cfg}
}

// Start pushes in the background until Stop.
func (p *Pusher) Start(ctx context.Context) {
	ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTicker(p.cfg.PollEvery)
		defer t.Stop()
		for {
			ictx, cancel := context.WithTimeout(ctx, p.cfg.Lease)
			if _, err := p.RunOnce(ictx); err != nil && ctx.Err() == nil {
				p.cfg.Logger.Warn("pushing requests", "error", err)
			}
			cancel()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Stop stops pushing and waits for the current pass.
func (p *Pusher) Stop() {
	if p.cancel != nil {
		p.cancel()
		<-p.done
	}
}

// RunOnce pushes every request due now and checks verified tariffs for
// activation. It returns how many items it worked on.
func (p *Pusher) RunOnce(ctx context.Context) (int, error) {
	n := 0
	// Only what was due when the pass began: a retry scheduled during the
	// pass waits for the next one.
	if p.cfg.ClockThreshold > 0 {
		if _, err := p.cfg.Store.QueueClockCorrections(ctx, p.cfg.ClockThreshold); err != nil {
			return n, err
		}
	}
	passStart := time.Now()
	for {
		trs, err := p.cfg.Store.ClaimTariffRequests(ctx, p.cfg.Workers, p.cfg.Lease, passStart)
		if err != nil {
			return n, err
		}
		tus, err := p.cfg.Store.ClaimTopups(ctx, p.cfg.Workers, p.cfg.Lease, passStart)
		if err != nil {
			return n, err
		}
		cmds, err := p.cfg.Store.ClaimMeterCommands(ctx, p.cfg.Workers, p.cfg.Lease, passStart)
		if err != nil {
			return n, err
		}
		if len(trs)+len(tus)+len(cmds) == 0 {
			break
		}
		var wg sync.WaitGroup
		for _, r := range trs {
			wg.Add(1)
			go func() { defer wg.Done(); p.pushTariff(ctx, r) }()
		}
		for _, t := range tus {
			wg.Add(1)
			go func() { defer wg.Done(); p.pushTopup(ctx, t) }()
		}
		for _, c := range cmds {
			wg.Add(1)
			go func() { defer wg.Done(); p.pushCommand(ctx, c) }()
		}
		wg.Wait()
		n += len(trs) + len(tus) + len(cmds)
	}
	if err := p.cfg.Store.SettleRollouts(ctx); err != nil {
		return n, err
	}
	due, err := p.cfg.Store.TariffRequestsAwaitingActivation(ctx, p.cfg.Now(), 100)
	if err != nil {
		return n, err
	}
	for _, r := range due {
		p.checkActivation(ctx, r)
	}
	return n + len(due), nil
}

func (p *Pusher) fail(point string) error {
	if p.cfg.FailPoint == nil {
		return nil
	}
	return p.cfg.FailPoint(point)
}

// retryAt schedules the next attempt in real (database) time.
func (p *Pusher) retryAt(attempts int) time.Time {
	d := p.cfg.RetryBase << min(attempts-1, 10)
	return time.Now().Add(min(d, time.Hour))
}

// target finds a meter's address; passive meters and meters without one
// cannot take writes.
func (p *Pusher) target(ctx context.Context, meterID string) (*flows.Meter, meterconn.Target, error) {
	m, err := p.cfg.Store.MeterByID(ctx, meterID)
	if err != nil {
		return nil, meterconn.Target{}, err
	}
	if m.Mode != flows.ModeActive || m.IPAddress == nil {
		return m, meterconn.Target{}, flows.Errorf(flows.EINVALID, "meter %s has no hardware to write to (passive or no address)", m.Serial)
	}
	return m, meterconn.Target{Serial: m.Serial, Addr: net.JoinHostPort(m.IPAddress.String(), strconv.Itoa(m.Port))}, nil
}

// outcome names a write's result for the audit log and notes.
func outcome(err error) (string, string) {
	var nak *emop.NakError
	switch {
	case err == nil:
		return "ok", ""
	case errors.As(err, &nak) && !isComm(err):
		return "nak", fmt.Sprintf("NAK %d (%s)", nak.Code, emop.NakMeaning(nak.Code))
	}
	return "error", meterconn.Detail(err)
}

func isComm(err error) bool {
	var ce *meterconn.CommError
	var pe *meterconn.ProtocolError
	return errors.As(err, &ce) || errors.As(err, &pe) || errors.Is(err, meterconn.ErrBusy) || errors.Is(err, context.DeadlineExceeded)
}

func (p *Pusher) audit(ctx context.Context, e flows.AuditEntry) {
	if err := p.cfg.Store.Audit(context.WithoutCancel(ctx), e); err != nil {
		p.cfg.Logger.Error("writing the audit log", "meter_id", e.MeterID, "error", err)
	}
}

// pushTariff writes a future tariff, reads it back and verifies it.
func (p *Pusher) pushTariff(ctx context.Context, r flows.TariffRequest) {
	log := p.cfg.Logger.With("request_id", r.ID, "meter_serial", r.Serial)
	retry := func(err error) {
		kind, detail := outcome(err)
		to, next := flows.RequestPending, p.retryAt(r.Attempts)
		if kind == "nak" || !isComm(err) || r.Attempts >= p.cfg.MaxAttempts {
			to, next = flows.RequestFailed, time.Time{}
		}
		if detail == "" {
			detail = err.Error()
		}
		if _, err := p.cfg.Store.MoveTariffRequest(ctx, r.ID, flows.RequestSending, to, detail, next); err != nil {
			log.Error("recording a failed push", "error", err)
		}
	}
	m, t, err := p.target(ctx, r.MeterID)
	if err != nil {
		retry(err)
		return
	}
	f, err := futureTariff(r, m.DaylightSavingsCorrectionEnabled)
	if err != nil {
		retry(err)
		return
	}
	writes, err := meterop.FutureTariffWrites(f)
	if err != nil {
		retry(err)
		return
	}
	for _, w := range writes {
		// A request superseded meanwhile is not pushed any further.
		if st, err := p.cfg.Store.TariffRequestStatus(ctx, r.ID); err != nil || st != flows.RequestSending {
			log.Info("tariff push stopped", "status", st)
			return
		}
		werr := p.cfg.Meters.Write(ctx, t, w.Object, w.Payload)
		o, _ := emop.Lookup(w.Object)
		kind, detail := outcome(werr)
		p.audit(ctx, flows.AuditEntry{MeterID: r.MeterID, RequestKind: "tariff", RequestID: r.ID, RequestedBy: r.RequestedBy,
			Object: o.Name, Value: hex.EncodeToString(w.Payload), Outcome: kind, Detail: detail})
		if werr != nil {
			retry(werr)
			return
		}
	}
	if err := p.fail("tariff_sent"); err != nil {
		return // a crash after the writes: the lease runs out, the next process pushes again
	}
	if ok, err := p.cfg.Store.MoveTariffRequest(ctx, r.ID, flows.RequestSending, flows.RequestSent, "", time.Time{}); err != nil || !ok {
		return
	}
	back, err := meterop.ReadTariff(ctx, p.cfg.Meters, t, true)
	if err != nil {
		p.moveOrLog(ctx, r, flows.RequestSent, flows.RequestPending, "read back failed: "+meterconn.Detail(err), p.retryAt(r.Attempts))
		return
	}
	if diff := tariffDiff(f, back, true); diff != "" {
		p.moveOrLog(ctx, r, flows.RequestSent, flows.RequestPending, "read back differs: "+diff, p.retryAt(r.Attempts))
		return
	}
	if ok, _ := p.cfg.Store.MoveTariffRequest(ctx, r.ID, flows.RequestSent, flows.RequestVerified, "", r.ActivationAt); ok {
		if err := p.cfg.Store.UpdateShadow(ctx, r.MeterID, flows.ShadowUpdate{TariffsFuture: back, At: p.cfg.Now()}); err != nil {
			log.Warn("updating the shadow's future tariff", "error", err)
		}
	}
}

func (p *Pusher) moveOrLog(ctx context.Context, r flows.TariffRequest, from, to flows.RequestStatus, msg string, at time.Time) {
	if r.Attempts >= p.cfg.MaxAttempts {
		to, at = flows.RequestFailed, time.Time{}
	}
	if _, err := p.cfg.Store.MoveTariffRequest(ctx, r.ID, from, to, msg, at); err != nil {
		p.cfg.Logger.Error("moving tariff request", "request_id", r.ID, "error", err)
	}
}

// checkActivation confirms that a verified tariff became the meter's
// active tariff once its activation time passed.
func (p *Pusher) checkActivation(ctx context.Context, r flows.TariffRequest) {
	_, t, err := p.target(ctx, r.MeterID)
	if err != nil {
		return
	}
	f, _ := futureTariff(r, false)
	active, err := meterop.ReadTariff(ctx, p.cfg.Meters, t, false)
	if err == nil && tariffDiff(f, active, false) == "" {
		if ok, _ := p.cfg.Store.MoveTariffRequest(ctx, r.ID, flows.RequestVerified, flows.RequestActive, "", time.Time{}); ok {
			if err := p.cfg.Store.UpdateShadow(ctx, r.MeterID, flows.ShadowUpdate{TariffsActive: active, At: p.cfg.Now()}); err != nil {
				p.cfg.Logger.Warn("updating the shadow's active tariff", "error", err)
			}
		}
		return
	}
	msg := "not active yet on the meter"
	if err != nil {
		msg = "active tariff read failed: " + meterconn.Detail(err)
	}
	if p.cfg.Now().Sub(r.ActivationAt) > 48*time.Hour {
		_, _ = p.cfg.Store.MoveTariffRequest(ctx, r.ID, flows.RequestVerified, flows.RequestFailed, "meter did not activate the tariff within 48 hours: "+msg, time.Time{})
		return
	}
	_, _ = p.cfg.Store.MoveTariffRequest(ctx, r.ID, flows.RequestVerified, flows.RequestVerified, msg, p.cfg.Now().Add(time.Minute))
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
