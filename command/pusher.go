// Package command pushes operators' requests to meters: future tariffs,
// top-up tokens, clock corrections (queued for meters drifting past a
// threshold) and flags. Each request is already durable in the database; the
// pusher claims due ones under a lease, writes, reads back and verifies,
// and records every write in the audit log. A process that dies mid-push
// leaves its lease to expire; the next one resumes: a tariff is pushed
// again (the writes are idempotent), a top-up first checks the meter's
// transaction count against the one recorded before the send, so a token
// is never sent twice once it has been applied.
//
// Every push returns one outcome (done, wait, retry, failed), and one
// recorder applies it: what the meter reported goes to the shadow, then
// the request moves on under the one retry policy (a refusal fails at
// once; an unreachable meter is retried with a doubling backoff until the
// attempts run out).
package command

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/internal/lifecycle"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/meterop"
	"github.com/shopspring/decimal"
)

// Store is what the pusher needs of the database (postgres.Store).
type Store interface {
	MeterByID(ctx context.Context, id string) (*flows.Meter, error)
	QueueClockCorrections(ctx context.Context, threshold time.Duration) (int, error)
	ClaimTariffRequests(ctx context.Context, n int, lease time.Duration, dueBy time.Time) ([]flows.TariffRequest, error)
	ClaimTopups(ctx context.Context, n int, lease time.Duration, dueBy time.Time) ([]flows.Topup, error)
	ClaimMeterCommands(ctx context.Context, n int, lease time.Duration, dueBy time.Time) ([]flows.MeterCommand, error)
	SettleRollouts(ctx context.Context) error
	TariffRequestsAwaitingActivation(ctx context.Context, now time.Time, n int) ([]flows.TariffRequest, error)
	TariffRequestStatus(ctx context.Context, id string) (flows.RequestStatus, error)
	LastConfirmedTariffRequest(ctx context.Context, meterID string) (*flows.TariffRequest, error)
	// The writes of a claimed request take the claim's attempt number (0:
	// unclaimed) and report false when the claim is no longer theirs.
	MoveTariffRequest(ctx context.Context, id string, from, to flows.RequestStatus, lastError string, retryAt time.Time, attempt int) (bool, error)
	MarkTopupPushing(ctx context.Context, id string, balance decimal.Decimal, txCount, attempt int) (bool, error)
	FinishTopup(ctx context.Context, id string, status flows.TopupStatus, notes string, after *decimal.Decimal, retryAt time.Time, clearPush bool, attempt int) (bool, error)
	MoveMeterCommand(ctx context.Context, id string, from, to flows.RequestStatus, lastError string, retryAt time.Time, attempt int) (bool, error)
	// ExtendLeases renews the leases of claims still being pushed and
	// returns the ids it renewed.
	ExtendLeases(ctx context.Context, lease time.Duration, tariffs, topups, commands []flows.Claim) (map[string]bool, error)
	// ApplyObservation records what a push read back from a meter, as a
	// sync's reads are recorded.
	ApplyObservation(ctx context.Context, r flows.SyncResult) error
	Audit(ctx context.Context, e flows.AuditEntry) error
	// A push holds its meter (postgres.Store.LeaseMeterForPush): no other
	// node syncs or pushes to it meanwhile.
	LeaseMeterForPush(ctx context.Context, meterID, owner string, ttl time.Duration) (bool, error)
	ExtendPushLeases(ctx context.Context, meterIDs []string, owner string, ttl time.Duration) (map[string]bool, error)
	ReleasePushLease(ctx context.Context, meterID, owner string) error
}

// Config configures a Pusher.
type Config struct {
	Store  Store
	Meters meterop.Meters
	// Workers is how many requests are pushed at once (64): a push is a
	// handful of requests to one meter, nearly all of it waiting on the
	// meter's latency and gap.
	Workers   int
	PollEvery time.Duration // how often to look for due requests (1 s)
	// Lease is how long a claim lasts without renewal (30 s): a push renews
	// it every third of it, so a dead process's half-done push is taken
	// over within a lease.
	Lease time.Duration
	// PassTimeout bounds one pass over the due requests (10 min).
	PassTimeout time.Duration
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
	// Node names this process in meter leases, as the sync engine's Owner
	// does (host:pid, the default): pushes and syncs of one node share
	// its per-meter turn, another node's wait for the meter.
	Node string
}

// Pusher pushes requests. Start/Stop run it in the background; RunOnce
// does one pass (tests, tools).
type Pusher struct {
	cfg   Config
	rec   recorder
	loop  lifecycle.Loop
	holds *meterHolds
	// claimed counts the requests claimed and not yet recorded, across
	// passes: at most Workers. A pass claims only what is left, so a
	// top-up claimed a second later is not queued behind a backlog of
	// earlier claims (100,000 meters: thousands of clock corrections).
	claimed atomic.Int64
}

// New returns a pusher.
func New(cfg Config) *Pusher {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 10
	}
	def(&cfg.PollEvery, time.Second)
	def(&cfg.Lease, 30*time.Second)
	def(&cfg.PassTimeout, 10*time.Minute)
	def(&cfg.RetryBase, 30*time.Second)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ClockThreshold == 0 {
		cfg.ClockThreshold = 20 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Node == "" {
		cfg.Node = lifecycle.NodeName()
	}
	// Next attempts are compared with the database's clock, so they are
	// set in real time, not the injected clock's.
	rec := recorder{policy: policy{maxAttempts: cfg.MaxAttempts, retryBase: cfg.RetryBase}, store: cfg.Store, now: time.Now, log: cfg.Logger}
	p := &Pusher{cfg: cfg, rec: rec}
	p.holds = newMeterHolds(p)
	return p
}

// Start pushes in the background until Stop; it returns at once.
func (p *Pusher) Start(ctx context.Context) error {
	p.loop.Start(ctx, p.run)
	return nil
}

// Stop stops pushing and waits for the current pass (bounded by ctx).
func (p *Pusher) Stop(ctx context.Context) error { return p.loop.Stop(ctx) }

// run starts a pass every PollEvery without waiting for the last to end:
// a top-up submitted while earlier pushes are still talking to their
// meters is claimed within PollEvery (when a slot is free), not after
// them. The passes share the Workers pushes at once.
func (p *Pusher) run(ctx context.Context) {
	t := time.NewTicker(p.cfg.PollEvery)
	defer t.Stop()
	var passes sync.WaitGroup
	defer passes.Wait() // Stop returns once every push has been recorded
	for {
		ictx, cancel := context.WithTimeout(ctx, p.cfg.PassTimeout)
		done, err := p.pass(ictx, new(atomic.Int64), false)
		if err != nil && ctx.Err() == nil {
			p.cfg.Logger.Warn("pushing requests", "error", err)
		}
		passes.Go(func() { <-done; cancel() })
		sctx, cancelSettle := context.WithTimeout(ctx, p.cfg.PassTimeout)
		if _, err := p.settle(sctx); err != nil && ctx.Err() == nil {
			p.cfg.Logger.Warn("settling requests", "error", err)
		}
		cancelSettle()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunOnce pushes every request due now and checks verified tariffs for
// activation, waiting for the pushes. It returns how many requests it
// pushed and tariffs it checked.
func (p *Pusher) RunOnce(ctx context.Context) (int, error) {
	var n atomic.Int64
	done, err := p.pass(ctx, &n, true)
	<-done
	if err != nil {
		return int(n.Load()), err
	}
	due, err := p.settle(ctx)
	return int(n.Load()) + due, err
}

// settle settles rollouts and checks verified tariffs for activation.
func (p *Pusher) settle(ctx context.Context) (int, error) {
	if err := p.cfg.Store.SettleRollouts(ctx); err != nil {
		return 0, err
	}
	due, err := p.cfg.Store.TariffRequestsAwaitingActivation(ctx, p.cfg.Now(), 100)
	if err != nil {
		return 0, err
	}
	for _, r := range due {
		p.rec.record(ctx, tariffPushed(r), p.checkActivation(ctx, r).at(flows.RequestVerified), writeWith(p.cfg.Store.MoveTariffRequest, r.ID, 0))
	}
	return len(due), nil
}

// pass queues clock corrections and starts pushing what is due; done is
// closed when its pushes are recorded.
func (p *Pusher) pass(ctx context.Context, n *atomic.Int64, drain bool) (<-chan struct{}, error) {
	if p.cfg.ClockThreshold > 0 {
		if _, err := p.cfg.Store.QueueClockCorrections(ctx, p.cfg.ClockThreshold); err != nil {
			c := make(chan struct{})
			close(c)
			return c, err
		}
	}
	return p.pushDue(ctx, n, drain)
}

// pushDue claims due requests while fewer than Workers are claimed and
// pushes them (with drain, until none is due);
// done is closed when every push it started has been recorded. Only what
// was due when the pass began is claimed: a retry scheduled during the
// pass waits for a later one. Pushes are counted in n as they start.
func (p *Pusher) pushDue(ctx context.Context, n *atomic.Int64, drain bool) (<-chan struct{}, error) {
	// An operator asked for every push: the meter's next turn is its.
	ctx = meterconn.Operator(ctx)
	passStart := time.Now()
	hb := newHeartbeat(p)
	hctx, stopHeartbeat := context.WithCancel(ctx)
	go hb.run(hctx)
	var wg sync.WaitGroup
	done := make(chan struct{})
	finish := func() {
		go func() {
			wg.Wait()
			stopHeartbeat()
			close(done)
		}()
	}
	push := func(id string, attempt int, kind, meterID, serial string, run func(ctx context.Context)) {
		pctx := hb.hold(ctx, kind, flows.Claim{ID: id, Attempt: attempt})
		n.Add(1)
		p.claimed.Add(1)
		wg.Go(func() {
			defer p.claimed.Add(-1)
			mctx, release, err := p.holds.hold(pctx, meterID, serial)
			if err != nil {
				// Nothing was sent: the claim's lease runs out and a
				// later pass (here or elsewhere) takes it up.
				hb.release(id)
				p.storeFailed(pushed{kind: kind, id: id, meterID: meterID, serial: serial}, "waiting for the meter", err)
				return
			}
			defer release()
			run(mctx)
		})
	}
	for {
		free := p.cfg.Workers - int(p.claimed.Load())
		if free <= 0 {
			finish()
			return done, nil
		}
		trs, err := p.cfg.Store.ClaimTariffRequests(ctx, free, p.cfg.Lease, passStart)
		if err != nil {
			finish()
			return done, err
		}
		var tus []flows.Topup
		if free > len(trs) {
			if tus, err = p.cfg.Store.ClaimTopups(ctx, free-len(trs), p.cfg.Lease, passStart); err != nil {
				finish()
				return done, err
			}
		}
		var cmds []flows.MeterCommand
		if free > len(trs)+len(tus) {
			if cmds, err = p.cfg.Store.ClaimMeterCommands(ctx, free-len(trs)-len(tus), p.cfg.Lease, passStart); err != nil {
				finish()
				return done, err
			}
		}
		for _, r := range trs {
			push(r.ID, r.Attempts, "tariff", r.MeterID, r.Serial, func(pctx context.Context) {
				o := p.pushTariff(pctx, r)
				hb.release(r.ID)
				p.rec.record(ctx, tariffPushed(r), o, writeWith(p.cfg.Store.MoveTariffRequest, r.ID, r.Attempts))
			})
		}
		for _, t := range tus {
			push(t.ID, t.Attempts, "topup", t.MeterID, t.Serial, func(pctx context.Context) {
				o := p.pushTopup(pctx, t)
				hb.release(t.ID)
				p.rec.record(ctx, topupPushed(t), o, p.finishTopup(t))
			})
		}
		for _, c := range cmds {
			push(c.ID, c.Attempts, "command", c.MeterID, c.Serial, func(pctx context.Context) {
				o := p.pushCommand(pctx, c)
				hb.release(c.ID)
				p.rec.record(ctx, commandPushed(c), o, writeWith(p.cfg.Store.MoveMeterCommand, c.ID, c.Attempts))
			})
		}
		if len(trs)+len(tus)+len(cmds) < free {
			finish() // nothing more was due
			return done, nil
		}
		// As many as there was room for: more may be due once pushes end.
		// RunOnce (drain) waits for them and claims again; the background
		// loop returns, and its next pass claims as room frees, so a
		// top-up never waits for a whole batch of pushes to end.
		if !drain {
			finish()
			return done, nil
		}
		wg.Wait()
	}
}

func (p *Pusher) fail(point string) error {
	if p.cfg.FailPoint == nil {
		return nil
	}
	return p.cfg.FailPoint(point)
}

// target finds where to write to a meter: flows.Meter.Address decides.
func (p *Pusher) target(ctx context.Context, meterID string) (*flows.Meter, meterconn.Target, error) {
	m, err := p.cfg.Store.MeterByID(ctx, meterID)
	if err != nil {
		return nil, meterconn.Target{}, err
	}
	t, err := meterconn.TargetOf(m)
	return m, t, err
}

// storeFailed is the outcome of a push the database interrupted: nothing
// is recorded (the database is what failed), so the request keeps its
// lease until it expires and the next pass resumes it, as after a crash.
func (p *Pusher) storeFailed(req pushed, what string, err error) outcome {
	if errors.Is(err, context.Canceled) {
		// Shutting down, or the lease was lost: not a fault of the store,
		// and a later pass (or the next start) resumes the push.
		p.cfg.Logger.Info("push stopped (shutting down, or its lease lost); a later pass resumes it", "meter_serial", req.serial, "request_kind", req.kind, "request_id", req.id)
		return stopped()
	}
	p.cfg.Logger.Error(what, "meter_serial", req.serial, "request_kind", req.kind, "request_id", req.id, "error", err)
	return stopped()
}

// noTarget is the outcome of a push whose meter cannot be written to:
// gone, passive or without an address fails the request; a database
// error leaves it to be resumed.
func (p *Pusher) noTarget(req pushed, err error) outcome {
	if flows.ErrorCode(err) == flows.EINTERNAL {
		return p.storeFailed(req, "looking up the meter", err)
	}
	return failed(err.Error())
}

// write writes one object and records it in the audit log.
func (p *Pusher) write(ctx context.Context, t meterconn.Target, req pushed, requestedBy string, w meterop.Write, shown string) error {
	err := p.cfg.Meters.Write(ctx, t, w.Object, w.Payload)
	o, _ := emop.Lookup(w.Object)
	kind := "ok"
	switch meterconn.Classify(err) {
	case meterconn.FailureNone:
	case meterconn.FailureRefused:
		kind = "nak"
	default:
		kind = "error"
	}
	e := flows.AuditEntry{MeterID: req.meterID, RequestKind: req.kind, RequestID: req.id, RequestedBy: requestedBy,
		Object: o.Name, Value: shown, Outcome: kind, Detail: meterconn.Detail(err)}
	if aerr := p.cfg.Store.Audit(context.WithoutCancel(ctx), e); aerr != nil {
		p.cfg.Logger.Error("writing the audit log", "meter_serial", req.serial, "error", aerr)
	}
	return err
}
