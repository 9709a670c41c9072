// Package syncer keeps meter_shadows true for every active meter.
//
// Every meter has a slot in each period of each frequency, derived from its
// id, so a fleet's hourly work is spread over the hour. A scheduler (a River
// periodic job, run by the elected leader of all flows processes sharing
// the database, and once at start) queues one job per frequency and slot
// minute; a meter that missed its previous slot (never synced, or the
// process was down) is due at once. When a group job runs it leases, in
// one statement, the meters of its minute that are still due, reads them in
// parallel, and writes all their results in one transaction: per-meter
// database work is what limits a fleet sync on a small machine. Jobs are
// unique per frequency, minute and failing flag and members are chosen
// when the job runs, so no meter is synced twice in a run; the per-meter
// lease stops two processes (or an on-demand sync, which is a per-meter
// job) from talking to one meter at the same time, and a group that found
// members busy snoozes and comes back for them. Meters that keep failing
// are grouped apart at a lower priority so they do not hold up healthy
// ones; they are still tried once per slot.
//
// A sync runs the frequency's syncers (meter_metrics) in one sequence over
// the transport (which keeps the meter's gap), and applies everything it
// read in one transaction: shadow values (history through triggers),
// freshness, registry fields that changed, new events. A failure to reach
// the meter marks it unhealthy with csq NULL and keeps what was read.
package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/internal/riverlog"
	"github.com/flows-energy/flows/meterconn"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Queue is the River queue of sync jobs.
const Queue = "sync"

// OnDemand is the frequency of an on-demand sync: every enabled syncer.
const OnDemand = "on_demand"

// Store is what the engine needs of the database (postgres.Store).
type Store interface {
	MeterByID(ctx context.Context, id string) (*flows.Meter, error)
	SyncerFrequencies(ctx context.Context) (map[string]flows.Frequency, error)
	// SyncedMeters counts the meters scheduled syncs read (active, with an
	// address): the load the engine sizes its meters in flight for.
	SyncedMeters(ctx context.Context) (int, error)
	DueSyncs(ctx context.Context, f flows.Frequency, now, horizon time.Time) ([]flows.DueSync, error)
	LeaseMeter(ctx context.Context, meterID, owner string, ttl time.Duration) (*flows.Meter, bool, error)
	LeaseDueGroup(ctx context.Context, f flows.Frequency, minute, now, since time.Time, failing bool, owner string, ttl time.Duration, limit int) (meters []flows.Meter, left, waiting int, err error)
	ReleaseSyncLease(ctx context.Context, meterID, owner string) error
	// WantMeter records that owner's node waits for a meter another node
	// holds (operator work goes next); WantedFrom returns the meters node
	// holds that another node wants (handover.go).
	WantMeter(ctx context.Context, meterID, owner string) error
	WantedFrom(ctx context.Context, node string) ([]string, error)
	// ApplySync(s) write results and release owner's leases with them.
	ApplySync(ctx context.Context, r flows.SyncResult, freq, owner string) error
	// ApplySyncs writes what it can and returns the meters it could not.
	ApplySyncs(ctx context.Context, rs []flows.SyncResult, freq, owner string) ([]flows.SkippedSync, error)
	LastEventTime(ctx context.Context, meterID string) (time.Time, error)
	// ProfileGaps returns the half hours in [from, to) a meter's profile
	// logs have not given (clipped to its commissioning), except holes
	// asked for MaxHoleAttempts times.
	ProfileGaps(ctx context.Context, meterID string, from, to time.Time) ([]flows.ProfileGap, error)
	// StoreProfileRead stores profile records and holes read outside a
	// sync (the backfill) and derives the intervals they complete.
	StoreProfileRead(ctx context.Context, meterID string, recs []flows.ProfileRecord, holes []flows.ProfileHole) (int, error)
	// ThreePhaseGaps and StoreThreePhaseRead are their siblings for
	// three-phase interval profiles.
	ThreePhaseGaps(ctx context.Context, meterID string, from, to time.Time) ([]flows.ProfileGap, error)
	StoreThreePhaseRead(ctx context.Context, meterID string, ivs []flows.ThreePhaseInterval, holes []flows.ProfileHole) (int, error)
}

// JobQueue is the job queue the engine works: a River client
// (postgres.NewQueueClient).
type JobQueue interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	InsertMany(ctx context.Context, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
}

// Config configures an Engine.
type Config struct {
	Store Store
	// NewQueue builds the engine's queue client from the River
	// configuration the engine makes (its workers, queues, periodic job).
	NewQueue func(cfg *river.Config) (JobQueue, error)
	Meters   Meters
	// Workers is the fewest meters this process keeps in flight in
	// scheduled syncs, and its on-demand syncs at once (50).
	Workers int
	// MaxInFlight is the most meters in flight in scheduled syncs (5000):
	// the engine sizes itself between Workers and this from the fleet and
	// the set times it measures (see InFlight).
	MaxInFlight int
	// FreshWithin is how soon a wave of due meters is to be read (15 min).
	FreshWithin time.Duration
	// FileLimit is the process's soft open-file limit (0: not bounded by
	// it); each meter in flight holds one connection.
	FileLimit int
	Owner     string // this process's name in leases (hostname:pid)
	// ScheduleEvery is how often the scheduler queues due syncs (30 s); it
	// looks this far ahead too.
	ScheduleEvery time.Duration
	// SyncTimeout bounds one meter's sync (3 min).
	SyncTimeout time.Duration
	// BackfillDays is how far back a meter's profile is collected (30):
	// a new meter is backfilled from then, or from its commissioning
	// (its earliest enabled register's start_time) when that is later.
	BackfillDays int
	// BackfillWorkers is how many meters' profile backfills run at once
	// (Workers): in a queue of their own, so they never take a worker
	// from the syncs that keep the fleet fresh.
	BackfillWorkers int
	// BackfillRun is how long one backfill run keeps asking a meter (1
	// min) before it writes what it read and lets the meter's scheduled
	// syncs in.
	BackfillRun time.Duration
	// BackfillPause is how long a backfill waits between runs (10 s):
	// longer than a group sync that found the meter busy waits, so the
	// meter's scheduled read goes first.
	BackfillPause time.Duration
	Now           func() time.Time
	Logger        *slog.Logger
}

// Engine runs scheduled and on-demand syncs.
type Engine struct {
	cfg    Config
	client JobQueue
	// OnSynced, when set before Start, is called after each applied sync
	// with the meter id and the failure detail ("" when it succeeded), for
	// metrics and tests.
	OnSynced func(meterID, failure string)

	// reads holds a slot per meter being read by a group sync, shared by
	// every group job, so a slot minute of many meters can use them all
	// and many small groups run side by side; resize sets its limit.
	reads *limiter
	// groups counts the group jobs running in this process: a chunk is
	// their share of the meters in flight, three times over.
	groups  atomic.Int64
	setTime setTimes
	// handovers are the meters held for background reads that another
	// node's operator work may want (handover.go).
	handovers handovers
	bounds    Bounds
	bound     string // what decided the limit (under mu)
	stop      chan struct{}
	stopOnce  sync.Once
	done      sync.WaitGroup

	mu      sync.Mutex
	freqs   map[string]flows.Frequency
	freqsAt time.Time
}

// syncArgs is a sync job: one meter, one frequency, one slot.
type syncArgs struct {
	MeterID   string `json:"meter_id" river:"unique"`
	Frequency string `json:"frequency" river:"unique"`
	Slot      int64  `json:"slot" river:"unique"` // unix seconds; 0 for on-demand
}

func (syncArgs) Kind() string { return "flows_sync_meter" }

// groupArgs is a scheduled sync of every meter due at one frequency whose
// slot falls in one minute: its members are found, and leased, when it
// runs, so the same minute queued twice syncs nobody twice.
type groupArgs struct {
	Frequency string `json:"frequency" river:"unique"`
	Minute    int64  `json:"minute" river:"unique"` // unix seconds of the slot minute
	Failing   bool   `json:"failing" river:"unique"`
}

func (groupArgs) Kind() string { return "flows_sync_group" }

// GroupQueue is the River queue of scheduled group syncs.
const GroupQueue = "sync_group"

type scheduleArgs struct{}

func (scheduleArgs) Kind() string { return "flows_sync_schedule" }

// New builds an engine; Start runs it.
func New(cfg Config) (*Engine, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = 50
	}
	if cfg.ScheduleEvery <= 0 {
		cfg.ScheduleEvery = 30 * time.Second
	}
	if cfg.SyncTimeout <= 0 {
		cfg.SyncTimeout = 3 * time.Minute
	}
	if cfg.BackfillDays <= 0 {
		cfg.BackfillDays = 30
	}
	if cfg.BackfillWorkers <= 0 {
		cfg.BackfillWorkers = cfg.Workers
	}
	if cfg.BackfillRun <= 0 {
		cfg.BackfillRun = backfillRun
	}
	if cfg.BackfillPause <= 0 {
		cfg.BackfillPause = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 5000
	}
	cfg.MaxInFlight = max(cfg.MaxInFlight, cfg.Workers)
	if cfg.FreshWithin <= 0 {
		cfg.FreshWithin = 15 * time.Minute
	}
	e := &Engine{cfg: cfg, reads: newLimiter(cfg.Workers), stop: make(chan struct{}), bound: "floor",
		bounds: Bounds{Floor: cfg.Workers, Ceiling: cfg.MaxInFlight, Files: cfg.FileLimit,
			// The database pool, listeners, on-demand syncs, backfills and
			// commands hold files too.
			Reserved: 256 + cfg.Workers + cfg.BackfillWorkers,
			Memory:   memoryBudget, PerMeter: perMeterCost}}
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(e.workSync))
	river.AddWorker(workers, river.WorkFunc(e.workSchedule))
	river.AddWorker(workers, river.WorkFunc(e.workGroup))
	river.AddWorker(workers, river.WorkFunc(e.workBackfill))
	if cfg.Store == nil || cfg.NewQueue == nil {
		return nil, flows.Errorf(flows.EINVALID, "sync engine: Store and NewQueue are required")
	}
	client, err := cfg.NewQueue(&river.Config{
		Queues: map[string]river.QueueConfig{Queue: {MaxWorkers: cfg.Workers}, GroupQueue: {MaxWorkers: groupJobs(cfg.Workers)},
			// Backfills read for minutes per meter, apart from the workers
			// that keep the fleet fresh.
			ProfileQueue:       {MaxWorkers: cfg.BackfillWorkers},
			river.QueueDefault: {MaxWorkers: 2}},
		Workers: workers,
		PeriodicJobs: []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(cfg.ScheduleEvery),
			func() (river.JobArgs, *river.InsertOpts) { return scheduleArgs{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true, ID: "flows_sync_schedule"})},
		JobTimeout:                  cfg.SyncTimeout,
		MaxAttempts:                 1, // a failed sync waits for its next slot
		CompletedJobRetentionPeriod: 25 * time.Hour,
		FetchCooldown:               20 * time.Millisecond,
		FetchPollInterval:           500 * time.Millisecond,
		Logger:                      riverlog.Logger(cfg.Logger),
	})
	if err != nil {
		return nil, fmt.Errorf("sync engine: %w", err)
	}
	e.client = client
	return e, nil
}

// Start starts working jobs; it returns at once. It also queues due syncs
// straight away rather than waiting for this process to be elected the
// scheduler (job uniqueness makes a second scheduler harmless).
func (e *Engine) Start(ctx context.Context) error {
	if err := e.client.Start(ctx); err != nil {
		return err
	}
	go func() {
		if err := e.schedule(ctx); err != nil && ctx.Err() == nil {
			e.cfg.Logger.Warn("initial sync scheduling", "error", err)
		}
	}()
	e.done.Add(2)
	go e.sizeLoop(ctx)
	go e.wantLoop(ctx)
	return nil
}

// sizeLoop resizes the meters in flight every ScheduleEvery until Stop.
func (e *Engine) sizeLoop(ctx context.Context) {
	defer e.done.Done()
	t := time.NewTicker(e.cfg.ScheduleEvery)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, e.cfg.ScheduleEvery)
		if err := e.resize(rctx); err != nil && ctx.Err() == nil {
			e.cfg.Logger.Warn("sizing meters in flight", "error", err)
		}
		cancel()
		if !e.next(ctx, t) {
			return
		}
	}
}

// next waits for t's next tick: false once the engine stops or ctx ends.
func (e *Engine) next(ctx context.Context, t *time.Ticker) bool {
	select {
	case <-t.C:
		return true
	case <-e.stop:
		return false
	case <-ctx.Done():
		return false
	}
}

// Stop lets running syncs finish (bounded by ctx) and stops.
func (e *Engine) Stop(ctx context.Context) error {
	e.stopOnce.Do(func() { close(e.stop) })
	err := e.client.Stop(ctx)
	e.done.Wait()
	return err
}

// SyncNow queues an immediate sync of one meter ahead of scheduled work.
// It works on an engine that was built but not started (a process that
// serves the API and leaves syncing to others): the job waits in the
// shared queue for whichever process works it.
func (e *Engine) SyncNow(ctx context.Context, meterID string) error {
	_, err := e.client.Insert(ctx, syncArgs{MeterID: meterID, Frequency: OnDemand, Slot: e.cfg.Now().Unix()},
		// One attempt: a sync that fails is a result (the meter's health),
		// not a job to repeat.
		&river.InsertOpts{Queue: Queue, Priority: 1, MaxAttempts: 1})
	if err != nil {
		return fmt.Errorf("queue a sync of meter %s: %w", meterID, err)
	}
	return nil
}

// workSchedule queues the syncs that fall due before the next run.
func (e *Engine) workSchedule(ctx context.Context, job *river.Job[scheduleArgs]) error {
	return e.schedule(ctx)
}

func (e *Engine) schedule(ctx context.Context) error {
	now := e.cfg.Now().UTC()
	horizon := now.Add(e.cfg.ScheduleEvery)
	freqs, err := e.cfg.Store.SyncerFrequencies(ctx)
	if err != nil {
		return err
	}
	scheduled := map[flows.Frequency]bool{}
	for _, f := range freqs {
		scheduled[f] = true
	}
	var params []river.InsertManyParams
	for _, f := range []flows.Frequency{flows.Hourly, flows.TwelveHour, flows.Daily} {
		if !scheduled[f] {
			continue // no enabled syncer runs at this frequency
		}
		due, err := e.cfg.Store.DueSyncs(ctx, f, now, horizon)
		if err != nil {
			return err
		}
		// One job per slot minute (and failing or not): the meters of a
		// minute are synced together and their results written at once.
		type key struct {
			minute  int64
			failing bool
		}
		runAt := map[key]time.Time{}
		for _, d := range due {
			k := key{d.Slot.Truncate(time.Minute).Unix(), d.Failures >= flows.FailingAfter}
			if at, ok := runAt[k]; !ok || d.RunAt.Before(at) {
				runAt[k] = d.RunAt
			}
		}
		for k, at := range runAt {
			prio := 2
			if k.failing {
				prio = 4 // keep trying, behind the healthy meters
			}
			opts := &river.InsertOpts{Queue: GroupQueue, Priority: prio, UniqueOpts: river.UniqueOpts{ByArgs: true}}
			if at.After(now) {
				// A future slot; one due now is inserted ready to run
				// (a past ScheduledAt waits for River's scheduler).
				opts.ScheduledAt = at
			}
			params = append(params, river.InsertManyParams{
				Args:       groupArgs{Frequency: string(f), Minute: k.minute, Failing: k.failing},
				InsertOpts: opts,
			})
		}
	}
	// Not cut short by shutdown: River notifies the queue's listeners
	// after the insert, and a notification cancelled with the context is
	// logged as an error (the jobs are in either way).
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for len(params) > 0 {
		n := min(len(params), 1000)
		if _, err := e.client.InsertMany(ictx, params[:n]); err != nil {
			return fmt.Errorf("queue syncs: %w", err)
		}
		params = params[n:]
	}
	return nil
}

// workSync syncs one meter.
func (e *Engine) workSync(ctx context.Context, job *river.Job[syncArgs]) error {
	a := job.Args
	m, ok, err := e.cfg.Store.LeaseMeter(ctx, a.MeterID, e.cfg.Owner, e.cfg.SyncTimeout+30*time.Second)
	if flows.ErrorCode(err) == flows.ENOTFOUND {
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	if !ok && a.Frequency == OnDemand {
		// Another node is talking to the meter: want it (that node hands
		// it over after its request in progress unless it is operator
		// work too) and ask again until it is free.
		m, ok, err = e.waitForMeter(ctx, a.MeterID)
		if flows.ErrorCode(err) == flows.ENOTFOUND {
			return river.JobCancel(err)
		}
		if err != nil {
			return err
		}
	}
	if !ok {
		return river.JobSnooze(5 * time.Second) // another process is talking to this meter
	}
	if a.Frequency == OnDemand {
		ctx = meterconn.Operator(ctx) // someone is waiting for it
	}
	res, err := e.syncMeter(ctx, m, a.Frequency)
	if res == nil {
		// Nothing applied (and so the lease not released with it).
		if err := e.cfg.Store.ReleaseSyncLease(context.WithoutCancel(ctx), a.MeterID, e.cfg.Owner); err != nil {
			e.cfg.Logger.Warn("releasing sync lease", "meter_serial", m.Serial, "error", err)
		}
	}
	if err != nil {
		switch flows.ErrorCode(err) {
		case flows.ENOTFOUND, flows.ECONFLICT, flows.EINVALID:
			// Recorded as the meter's failed sync: repeating it reads the
			// meter again for the same answer.
			return river.JobCancel(err)
		}
		return err
	}
	if res == nil {
		return nil
	}
	_, detail, ok := res.Verdict()
	e.synced(a.MeterID, m.Serial, detail, ok)
	return nil
}

// waitForMeter asks for a meter's lease for an on-demand sync every
// wantRetry for up to wantWait, renewing this node's want of it each time
// it is refused.
func (e *Engine) waitForMeter(ctx context.Context, meterID string) (*flows.Meter, bool, error) {
	give := time.NewTimer(wantWait)
	defer give.Stop()
	t := time.NewTicker(wantRetry)
	defer t.Stop()
	for {
		if err := e.cfg.Store.WantMeter(ctx, meterID, e.cfg.Owner); err != nil {
			return nil, false, err
		}
		select {
		case <-t.C:
		case <-give.C:
			return nil, false, nil
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
		m, ok, err := e.cfg.Store.LeaseMeter(ctx, meterID, e.cfg.Owner, e.cfg.SyncTimeout+30*time.Second)
		if err != nil || ok {
			return m, ok, err
		}
	}
}

// synced logs a failed sync (by serial: what an operator searches for)
// and tells OnSynced.
func (e *Engine) synced(meterID, serial, detail string, ok bool) {
	if !ok {
		if detail == "" {
			detail = "no answer"
		}
		e.cfg.Logger.Info("sync failed", "meter_serial", serial, "detail", detail)
	} else {
		detail = ""
	}
	if e.OnSynced != nil {
		e.OnSynced(meterID, detail)
	}
}

// groupOwner names a frequency's group jobs in leases (host:pid/group-
// hourly): a meter one of them is reading is not leased by another of the
// same frequency (at a period's turn the new period's groups run while the
// old period's reads are on their way), while another frequency's group
// of the same process may read it too, its turn ordering the two.
func groupOwner(node, freq string) string { return node + "/group-" + freq }

// groupJobs is how many group syncs one process runs at once: a quarter
// of its floor of meters in flight (Workers), at least 8 and at most 500.
// Their reads share Engine.reads, whose limit may rise far above that; a
// group holds as many meters as its slot minute has. Not the ceiling: a
// process running hundreds of group jobs takes every slot minute before a
// second process polls, and the work is no longer shared.
func groupJobs(workers int) int { return min(max(8, workers/4), 500) }

// DBConns says how many database connections an engine with workers and
// backfillWorkers (0: workers, as New defaults it) may use. Most is what
// it can hold at once: each River worker holds at most one at a time (a
// lease, a chunk's transaction, a lookup during a read) — on-demand
// syncs, group jobs, backfills and the default queue's two — and River
// itself three (its LISTEN connection, the producers' fetches, the
// elected leader's maintenance). Most workers spend nearly all their time
// waiting for meters, so that many are rarely busy at once. Least is what
// the fleet's writes need: every group job writing its chunk's
// transaction at once, and River's own; with fewer, chunks wait for a
// connection while their meters' leases run.
func DBConns(workers, backfillWorkers int) (most, least int) {
	if backfillWorkers == 0 {
		backfillWorkers = workers
	}
	least = groupJobs(workers) + 3
	return least + workers + backfillWorkers + 2, least
}

// memoryBudget and perMeterCost bound the meters in flight by memory: a
// meter being read holds its goroutine, connection buffers and results
// (measured well under 64 KiB); a gibibyte of them leaves the rest of a
// 2 GiB node to the process.
const (
	memoryBudget = 1 << 30
	perMeterCost = 64 << 10
)

// workGroup syncs the meters of one slot minute, a chunk at a time: it
// leases a chunk, reads its meters in parallel and writes their results in
// one transaction, then the next, until none is due. A slot minute of a
// big fleet at cellular latency takes far longer than the job's timeout
// (100,000 meters: 1,667 a minute, each set about 20 s), so a run stops
// taking chunks after half the timeout and snoozes to come back for the
// rest. A chunk is three times the group's share of the meters in flight
// (the limit over the group jobs running): enough that the slots stay
// full while a chunk's slowest meters finish, few enough that a chunk
// ends well inside the timeout whatever the fleet.
func (e *Engine) workGroup(ctx context.Context, job *river.Job[groupArgs]) error {
	a := job.Args
	until := time.Now().Add(e.cfg.SyncTimeout / 2)
	e.groups.Add(1)
	defer e.groups.Add(-1)
	// A meter the group synced in an earlier chunk or run may still count
	// as due (synced before its slot's half period, as the first wave
	// does): the job's age on the engine's clock leaves those out.
	since := e.cfg.Now().Add(-time.Since(job.CreatedAt))
	for {
		limit, _ := e.reads.state()
		chunk := max(8, 3*limit/int(max(e.groups.Load(), 1)))
		meters, left, waiting, err := e.cfg.Store.LeaseDueGroup(ctx, flows.Frequency(a.Frequency), time.Unix(a.Minute, 0), e.cfg.Now().UTC(), since, a.Failing,
			groupOwner(e.cfg.Owner, a.Frequency), e.cfg.SyncTimeout+30*time.Second, chunk)
		if err != nil {
			return err
		}
		stored, err := e.syncChunk(ctx, meters, a.Frequency)
		if err != nil {
			return err
		}
		switch {
		case left == 0 && stored == len(meters):
			return nil
		case len(meters) == 0 && left == waiting:
			// The rest wait for the slot's minute (the group ran early for
			// a meter that missed its slot): come back then.
			return river.JobSnooze(max(time.Unix(a.Minute, 0).Sub(e.cfg.Now()), time.Second))
		case len(meters) == 0:
			// Held by other syncs: ask again shortly, not in a loop.
			return river.JobSnooze(5 * time.Second)
		case stored < len(meters) || ctx.Err() != nil:
			// The rest are held by other syncs, or could not be read or
			// stored (released, still due): come back for them.
			return river.JobSnooze(5 * time.Second)
		case time.Now().After(until):
			return river.JobSnooze(time.Second)
		}
	}
}

// A chunk member's progress, for handing it over to another node's
// operator work (handover.go) at any point: before it is read, part-way
// through its read, or read and waiting for the chunk's write.
const (
	memberWaiting int32 = iota // leased, waiting for a read slot
	memberReading
	memberRead   // read (or failed), waiting for the chunk's write
	memberChunk  // in the chunk's write, or released with it
	memberHanded // handed over
)

// syncChunk reads meters (leased) in parallel within the engine's limit on
// meters in flight, writes every result in one transaction, releases the
// leases of those it could not read, and returns how many it stored. A
// member another node wants is handed over at once, not at the chunk's
// end (handover.go).
func (e *Engine) syncChunk(ctx context.Context, meters []flows.Meter, freq string) (int, error) {
	owner := groupOwner(e.cfg.Owner, freq)
	results := make([]*flows.SyncResult, len(meters))
	states := make([]atomic.Int32, len(meters))
	wanted := make([]chan struct{}, len(meters))
	holds := make([]*holder, len(meters))
	var handing sync.WaitGroup // hand-overs' writes
	var handed atomic.Int64    // results stored by a hand-over
	handOver := func(i int) {
		handing.Add(1)
		go func() {
			defer handing.Done()
			if e.handOver(ctx, &meters[i], results[i], freq, owner) {
				handed.Add(1)
			}
		}()
	}
	for i := range meters {
		wanted[i] = make(chan struct{})
		holds[i] = e.handovers.hold(meters[i].ID, func() {
			close(wanted[i]) // a read in progress stops before its next request
			if states[i].CompareAndSwap(memberWaiting, memberHanded) || states[i].CompareAndSwap(memberRead, memberHanded) {
				handOver(i)
			}
		})
	}
	// Meters not read because the way to them is down: one log line for
	// the chunk, not one a meter (a dead mediator is thousands of them).
	var unreachedMu sync.Mutex
	var unreached []string
	var unreachedErr error
	var wg sync.WaitGroup
	for i := range meters {
		if states[i].Load() == memberHanded {
			continue
		}
		if e.reads.acquire(ctx) != nil {
			continue // not read: released below
		}
		if !states[i].CompareAndSwap(memberWaiting, memberReading) {
			e.reads.release() // handed over while it waited for the slot
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { e.reads.release(); wg.Done() }()
			t0 := time.Now()
			res, err := e.readMeter(ctx, &meters[i], freq, wanted[i])
			if errors.Is(err, errHandedOver) {
				states[i].Store(memberHanded)
				handOver(i) // results[i] stays nil: released
				return
			}
			e.setTime.observe(freq, time.Since(t0))
			if err != nil {
				switch {
				case ctx.Err() != nil: // at shutdown the read was cut short, not failed: it is due still
				case meterconn.Classify(err) == meterconn.FailureDependency:
					unreachedMu.Lock()
					unreached, unreachedErr = append(unreached, meters[i].Serial), err
					unreachedMu.Unlock()
				default:
					e.cfg.Logger.Warn("sync failed", "meter_serial", meters[i].Serial, "error", err)
				}
			}
			results[i] = res // nil when not read: released
			states[i].Store(memberRead)
			select {
			case <-wanted[i]: // wanted as its last request ended
				if states[i].CompareAndSwap(memberRead, memberHanded) {
					handOver(i)
				}
			default:
			}
		}()
	}
	wg.Wait()
	if len(unreached) > 0 {
		e.cfg.Logger.Warn("meters not read: the way to them is down; they stay due and are not marked unhealthy",
			"meters", len(unreached), "meter_serial", unreached[0], "error", unreachedErr)
	}
	var apply []flows.SyncResult
	var released []string
	for i := range meters {
		if !states[i].CompareAndSwap(memberRead, memberChunk) && !states[i].CompareAndSwap(memberWaiting, memberChunk) {
			continue // handed over
		}
		if results[i] == nil {
			released = append(released, meters[i].ID)
			continue
		}
		apply = append(apply, *results[i])
	}
	for _, h := range holds {
		e.handovers.drop(h)
	}
	skipped, err := e.cfg.Store.ApplySyncs(context.WithoutCancel(ctx), apply, freq, owner)
	if err != nil {
		handing.Wait()
		return 0, err
	}
	serial := make(map[string]string, len(meters))
	for _, m := range meters {
		serial[m.ID] = m.Serial
	}
	notStored := map[string]string{}
	for _, sk := range skipped {
		e.cfg.Logger.Warn("sync result not stored", "meter_serial", serial[sk.MeterID], "error", sk.Err)
		notStored[sk.MeterID] = flows.ErrorMessage(sk.Err)
	}
	for _, id := range released {
		if err := e.cfg.Store.ReleaseSyncLease(context.WithoutCancel(ctx), id, owner); err != nil {
			e.cfg.Logger.Warn("releasing sync lease", "meter_serial", serial[id], "error", err)
		}
	}
	for _, r := range apply {
		if r.ProfileBacklog {
			e.queueBackfill(context.WithoutCancel(ctx), r.MeterID, serial[r.MeterID])
		}
		_, detail, ok := r.Verdict()
		if msg, bad := notStored[r.MeterID]; bad {
			detail, ok = "not stored: the sync result: "+msg, false
		}
		e.synced(r.MeterID, serial[r.MeterID], detail, ok)
	}
	handing.Wait()
	return len(apply) - len(skipped) + int(handed.Load()), nil
}

// handOver gives back a meter of a group's chunk that another node wants:
// a complete result is written with its lease, as the chunk would have
// (a result the store skips is recorded as the meter's failed sync, its
// lease released with it); with no result (not read yet, failed, or cut
// short) the lease is released and the meter stays due. It says whether a sync was stored.
func (e *Engine) handOver(ctx context.Context, m *flows.Meter, res *flows.SyncResult, freq, owner string) bool {
	ctx = context.WithoutCancel(ctx)
	if res != nil {
		skipped, err := e.cfg.Store.ApplySyncs(ctx, []flows.SyncResult{*res}, freq, owner)
		if err == nil {
			if len(skipped) > 0 {
				e.cfg.Logger.Warn("sync result not stored", "meter_serial", m.Serial, "error", skipped[0].Err)
				e.synced(m.ID, m.Serial, "not stored: the sync result: "+flows.ErrorMessage(skipped[0].Err), false)
				return false
			}
			if res.ProfileBacklog {
				e.queueBackfill(ctx, m.ID, m.Serial)
			}
			_, detail, ok := res.Verdict()
			e.synced(m.ID, m.Serial, detail, ok)
			return true
		}
		e.cfg.Logger.Warn("sync result not stored", "meter_serial", m.Serial, "error", err)
	}
	if err := e.cfg.Store.ReleaseSyncLease(ctx, m.ID, owner); err != nil {
		e.cfg.Logger.Warn("releasing sync lease", "meter_serial", m.Serial, "error", err)
	}
	e.cfg.Logger.Debug("meter handed over to another node's operator work", "meter_serial", m.Serial, "read", res != nil)
	return false
}

// SyncMeter runs one frequency's syncers against a meter and applies the
// result. It returns nil (and does nothing) for passive meters and meters
// without an address.
func (e *Engine) SyncMeter(ctx context.Context, meterID, freq string) (*flows.SyncResult, error) {
	m, err := e.cfg.Store.MeterByID(ctx, meterID)
	if err != nil {
		return nil, err
	}
	return e.syncMeter(ctx, m, freq)
}

func (e *Engine) syncMeter(ctx context.Context, m *flows.Meter, freq string) (*flows.SyncResult, error) {
	res, err := e.readMeter(ctx, m, freq, nil)
	if err != nil || res == nil {
		return res, err
	}
	if err := e.cfg.Store.ApplySync(context.WithoutCancel(ctx), *res, freq, e.cfg.Owner); err != nil {
		return nil, err
	}
	if res.ProfileBacklog {
		e.queueBackfill(context.WithoutCancel(ctx), m.ID, m.Serial)
	}
	return res, nil
}

// readMeter runs a frequency's syncers against a meter and returns what
// they read, without writing it (nil for meters that are not synced).
// Once wanted (nil: never) is closed it starts no more requests and
// returns errHandedOver, and nothing, if any request was refused.
func (e *Engine) readMeter(ctx context.Context, m *flows.Meter, freq string, wanted <-chan struct{}) (*flows.SyncResult, error) {
	target, err := meterconn.TargetOf(m)
	if err != nil {
		return nil, nil // passive twins are fed from their active database, never polled
	}
	freqs, err := e.syncerFrequencies(ctx)
	if err != nil {
		return nil, err
	}
	res := &flows.SyncResult{MeterID: m.ID}
	var meters Meters = e.cfg.Meters
	var y *yielding
	if wanted != nil {
		y = &yielding{Meters: e.cfg.Meters, wanted: wanted}
		meters = y
	}
	c := &call{
		meters: meters,
		target: target,
		meter:  m,
		res:    res,
		lastEvent: func() (time.Time, error) {
			return e.cfg.Store.LastEventTime(ctx, m.ID)
		},
		profileGaps:    e.profileGaps(ctx, m.ID, e.cfg.Now()),
		threePhaseGaps: e.threePhaseGaps(ctx, m.ID, e.cfg.Now()),
	}
	asked := 0 // syncers run: none of a frequency may apply to a meter's kind
	for _, s := range flows.Syncers {
		if f, ok := freqs[s.Name]; !ok || (freq != OnDemand && string(f) != freq) {
			continue
		}
		if !s.AppliesTo(emop.IsThreePhase(m.Hardware)) || s.ScheduledOnly && freq == OnDemand {
			continue
		}
		asked++
		if !s.RegistryOnly() {
			res.TouchHealth = true
		}
		c.now = e.cfg.Now().UTC()
		err := runs[s.Name](ctx, c)
		if err == nil {
			if !s.RegistryOnly() {
				res.Groups = append(res.Groups, s.Group)
				if res.ReadAt == nil {
					res.ReadAt = map[string]time.Time{}
				}
				res.ReadAt[s.Group] = c.now
			}
			continue
		}
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return nil, err // shutting down: the next slot will do it
		}
		if errors.Is(err, errHandedOver) {
			return nil, err // nothing of a cut read is stored (handover.go)
		}
		class := meterconn.Classify(err)
		if class == meterconn.FailureDependency {
			// A mediator (or the database) between Flows and the meter is
			// down: nothing is recorded against the meter, which stays due
			// and is read again once the way to it is back.
			return nil, err
		}
		if class == meterconn.FailureComm {
			res.Failure = meterconn.Detail(err)
			break // the meter is not answering: do not keep knocking
		}
		// Refused or garbled: the stored value stays, the meter says what.
		res.Refused = append(res.Refused, s.Name+": "+meterconn.Detail(err))
		e.cfg.Logger.Debug("syncer refused", "meter_serial", m.Serial, "syncer", s.Name, "error", err)
	}
	if y != nil && y.cut.Load() {
		// A syncer carried on past a request the handover refused: what
		// it recorded for it is not the meter's.
		return nil, errHandedOver
	}
	res.At = e.cfg.Now().UTC()
	// Nothing to ask (a three-phase meter's 12-hourly slot) is not a
	// meter that did not answer.
	res.Reached = res.Reached || asked == 0
	// One complete, validated update per meter: a value it cannot store
	// is dropped here and named, the rest is written.
	res.Invalid = append(res.Invalid, res.Shadow.DropInvalid()...)
	return res, nil
}

// syncerFrequencies returns meter_metrics, re-read at most every 30 s.
func (e *Engine) syncerFrequencies(ctx context.Context) (map[string]flows.Frequency, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.freqs != nil && time.Since(e.freqsAt) < 30*time.Second {
		return e.freqs, nil
	}
	f, err := e.cfg.Store.SyncerFrequencies(ctx)
	if err != nil {
		return nil, err
	}
	e.freqs, e.freqsAt = f, time.Now()
	return f, nil
}
