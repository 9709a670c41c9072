package syncer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Profile collection.
//
// The daily SyncerProfileLogs run reads what profile logs 1 and 2 hold
// that Flows has not stored, over the last ProfileDailyWindow before the
// last complete half hour; gaps older than that (a new meter, a meter back
// from an outage) are left to a backfill job per meter, at low priority in
// a queue of its own, so it never takes a worker from the hourly set. A
// backfill run reads for at most backfillRun, writes what it read in one
// transaction, and comes back until the meter is complete or has said,
// MaxHoleAttempts times, that it holds nothing for what is missing.
//
// Reads follow the reference downloader's chunks: log 1 two hours a
// request (four records; a response carries five), log 2 one and a half
// hours on single-element meters and one hour on twin-element ones. A
// meter answers with the next records it has, which may be later than
// asked (even months): the half hours it skipped are holes, the chunk
// moves on from what it returned, and a meter that returned fewer
// records than a chunk is asked again from its last one.

// ProfileDailyWindow is how far back the daily profile run reads.
const ProfileDailyWindow = 26 * time.Hour

// ProfileQueue is the River queue of profile backfills.
const ProfileQueue = "profile_backfill"

// backfillRun is how long one backfill run keeps asking a meter: bounded
// by time rather than by records, so the meter's lease is back for its
// hourly read within about a minute whatever its latency, while a meter
// that answers fast gives its whole backlog in one run (at 20 ms a
// request a minute is 30 days of both logs; at a cellular second and a 2 s
// gap, about 16 hours).
//
// It is Config.BackfillRun's default.
const backfillRun = time.Minute

// chunk is the span of one profile-log request.
func chunk(log int, twin bool) time.Duration {
	switch {
	case log == flows.ProfileLogImports:
		return 2 * time.Hour
	case twin:
		return time.Hour
	}
	return 90 * time.Minute
}

// lastComplete is the newest half hour whose record a meter has written.
func lastComplete(now time.Time) time.Time { return now.UTC().Truncate(30 * time.Minute) }

// profileRead is what reading a meter's profile gathered.
type profileRead struct {
	recs    []flows.ProfileRecord
	holes   []flows.ProfileHole
	dropped []string
	// refused names chunks the meter answered with a malformed answer:
	// skipped (their half hours counted as asked), the reading goes on.
	refused []string
	reached bool
	// cut says reading stopped early, to finish within the caller's
	// deadline or its until; the rest is left for the backfill.
	cut   bool
	until time.Time
}

// liveEdge is how recent a half hour must be for an empty answer not to
// count as a hole: a meter whose clock is a little slow has not written it
// yet.
const liveEdge = time.Hour

// deadlineMargin is how long before its context's deadline a profile read
// stops asking, so what it read is still written in time.
const deadlineMargin = 45 * time.Second

// stopAsking says a read must not start another request: its context's
// deadline is within deadlineMargin (what it read must still be written),
// or until, when not zero, has passed.
func stopAsking(ctx context.Context, until time.Time) bool {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < deadlineMargin {
		return true
	}
	return !until.IsZero() && time.Now().After(until)
}

// readProfile reads gaps from a meter's profile logs, oldest first, until
// done, about limit half hours of a log have been asked for (half hours
// the meter says it does not have cost nothing), or, when until is not
// zero, no request may start after until (the read is then cut). It
// returns what it gathered even when a request fails (the error says
// which).
func readProfile(ctx context.Context, meters Meters, c *call, gaps []flows.ProfileGap, limit int, until time.Time) (*profileRead, error) {
	out := &profileRead{until: until}
	twin := emop.IsTwinElement(c.meter.Hardware)
	budget := map[int]int{flows.ProfileLogImports: limit, flows.ProfileLogExports: limit}
	newest := lastComplete(c.now)
	for _, g := range gaps {
		b := budget[g.Log]
		if b <= 0 {
			continue
		}
		err := out.readGap(ctx, meters, c, g.Log, g.From, g.To, twin, newest, &b)
		budget[g.Log] = b
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// readGap reads one log over [from, to), spending budget on the half
// hours it asks for.
func (p *profileRead) readGap(ctx context.Context, meters Meters, c *call, log int, from, to time.Time, twin bool, newest time.Time, budget *int) error {
	step := chunk(log, twin)
	for t := from; t.Before(to) && *budget > 0; {
		if stopAsking(ctx, p.until) {
			p.cut = true
			return nil
		}
		recs, err := p.request(ctx, meters, c, log, t, twin, newest)
		if flows.ErrorCode(err) == flows.EINVALID {
			// A malformed answer: skip its chunk, counting its half hours
			// as asked once more, and go on (the meter is answering).
			p.refused = append(p.refused, flows.ErrorMessage(err))
			end := minTime(t.Add(step), to)
			p.hole(log, t, end)
			*budget -= int(end.Sub(t) / (30 * time.Minute))
			t = end
			continue
		}
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			// Nothing from t on; not yet, near now.
			p.hole(log, t, minTime(to, newest.Add(-liveEdge)))
			return nil
		}
		first, last := recs[0].At, recs[len(recs)-1].At
		p.hole(log, t, minTime(first, to))
		for i := 1; i < len(recs); i++ {
			// Half hours an answer skipped are not on the meter either.
			p.hole(log, recs[i-1].At.Add(30*time.Minute), minTime(recs[i].At, to))
		}
		p.recs = append(p.recs, recs...)
		if !first.Before(to) {
			return nil // its next data is past this gap
		}
		next := minTime(t.Add(step), last.Add(30*time.Minute))
		if !next.After(first) {
			next = first.Add(30 * time.Minute)
		}
		*budget -= int(next.Sub(first) / (30 * time.Minute))
		t = next
	}
	return nil
}

// request asks one chunk of a log from t and returns its usable records,
// naming what it keeps out: records out of order, not on a half hour,
// before what was asked, or after the newest complete half hour.
func (p *profileRead) request(ctx context.Context, meters Meters, c *call, log int, t time.Time, twin bool, newest time.Time) ([]flows.ProfileRecord, error) {
	format := emop.FormatProfileLog1
	if log == flows.ProfileLogExports {
		format = emop.FormatProfileLog2
	}
	req, err := emop.ProfileLogRequest(format, t)
	if err != nil {
		return nil, err
	}
	resp, err := meters.Raw(ctx, c.target, req)
	if err != nil {
		return nil, fmt.Errorf("profile log %d from %s: %w", log, t.Format(time.RFC3339), err)
	}
	p.reached = true
	recs, err := decodeProfile(log, resp, twin)
	if err != nil {
		return nil, flows.Errorf(flows.EINVALID, "profile log %d from %s: malformed answer (%s)", log, t.Format(time.RFC3339),
			strings.TrimPrefix(err.Error(), "emop: "))
	}
	kept, bad := screen(recs, t, newest)
	if len(bad) > 0 {
		p.dropped = append(p.dropped, fmt.Sprintf("profile log %d record %s", log, strings.Join(bad, ", ")))
	}
	return kept, nil
}

// screen keeps the records of an answer to a request from t that Flows can
// store, in order, and names the others: not on a half hour, before what
// was asked, after the newest complete half hour, or out of order.
func screen(recs []flows.ProfileRecord, t, newest time.Time) (kept []flows.ProfileRecord, bad []string) {
	for _, r := range recs {
		switch {
		case !r.At.Equal(r.At.Truncate(30 * time.Minute)):
			bad = append(bad, r.At.Format(time.RFC3339)+" not a half hour")
		case r.At.Before(t):
			bad = append(bad, r.At.Format(time.RFC3339)+" before the "+t.Format(time.RFC3339)+" asked for")
		case r.At.After(newest):
			bad = append(bad, r.At.Format(time.RFC3339)+" in the future")
		case len(kept) > 0 && !r.At.After(kept[len(kept)-1].At):
			bad = append(bad, r.At.Format(time.RFC3339)+" out of order")
		default:
			kept = append(kept, r)
		}
	}
	return kept, bad
}

// decodeProfile turns a profile-log response into records.
func decodeProfile(log int, resp []byte, twin bool) ([]flows.ProfileRecord, error) {
	var out []flows.ProfileRecord
	if log == flows.ProfileLogImports {
		_, recs, err := emop.ParseProfileLog1Response(resp)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			ia, ib := r.ImportA, r.ImportB
			rec := flows.ProfileRecord{At: r.Timestamp.UTC(), Status: r.Status, ImportA: &ia}
			if twin {
				rec.ImportB = &ib
			}
			out = append(out, rec)
		}
		return out, nil
	}
	_, recs, err := emop.ParseProfileLog2Response(resp, twin)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		ea, v, q := r.ActiveExportA, r.VoltageTenths, r.ReactiveImportA
		rec := flows.ProfileRecord{At: r.Timestamp.UTC(), Status: r.Status, ExportA: &ea, Voltage: &v, Reactive: &q}
		if twin {
			eb := r.ActiveExportB
			rec.ExportB = &eb
		}
		out = append(out, rec)
	}
	return out, nil
}

// hole notes half hours [from, to) of a log the meter has no record for.
func (p *profileRead) hole(log int, from, to time.Time) {
	for t := from; t.Before(to); t = t.Add(30 * time.Minute) {
		p.holes = append(p.holes, flows.ProfileHole{Log: log, At: t})
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// syncProfile is SyncerProfileLogs: the daily window's gaps; older gaps
// are flagged for the backfill.
func syncProfile(ctx context.Context, c *call) error {
	newest := lastComplete(c.now)
	gaps, err := c.profileGaps(newest.Add(-ProfileDailyWindow), newest.Add(30*time.Minute))
	if err != nil {
		return err
	}
	older, err := c.profileGaps(time.Time{}, newest.Add(-ProfileDailyWindow))
	if err != nil {
		return err
	}
	c.res.ProfileBacklog = len(older) > 0
	p, err := readProfile(ctx, c, c, gaps, int(ProfileDailyWindow/(30*time.Minute))+1, time.Time{})
	c.res.Profile, c.res.ProfileHoles = p.recs, p.holes
	if p.cut {
		// A slow meter in a group running out of time: the backfill,
		// with a deadline of its own, reads the rest.
		c.res.ProfileBacklog = true
	}
	c.res.Dropped = append(c.res.Dropped, p.dropped...)
	for _, r := range p.refused {
		c.res.Refused = append(c.res.Refused, "SyncerProfileLogs: "+r)
	}
	if p.reached {
		c.res.Reached = true
	}
	return err
}

// Raw implements Meters for readProfile within a sync.
func (c *call) Raw(ctx context.Context, t meterconn.Target, data []byte) ([]byte, error) {
	return c.meters.Raw(ctx, t, data)
}

// profileArgs is a backfill of one meter's profile.
type profileArgs struct {
	MeterID string `json:"meter_id" river:"unique"`
}

func (profileArgs) Kind() string { return "flows_profile_backfill" }

// queueBackfill queues a meter's profile backfill (once: the job is
// unique per meter while it waits, runs or retries; not once completed,
// or a meter's next outage would wait a day for River to prune the last).
func (e *Engine) queueBackfill(ctx context.Context, meterID, serial string) {
	_, err := e.client.Insert(ctx, profileArgs{MeterID: meterID}, &river.InsertOpts{Queue: ProfileQueue, Priority: 4, MaxAttempts: 3,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending,
			rivertype.JobStateRunning, rivertype.JobStateScheduled, rivertype.JobStateRetryable}}})
	if err != nil {
		e.cfg.Logger.Warn("queueing a profile backfill", "meter_serial", serial, "error", err)
	}
}

// workBackfill reads a meter's oldest missing profile for up to
// BackfillRun and comes back (snoozes) while more is missing and the meter
// gave some.
func (e *Engine) workBackfill(ctx context.Context, job *river.Job[profileArgs]) error {
	// An owner of its own: a lease is re-entrant for its owner, and the
	// backfill must not share one with this process's syncs of the meter.
	owner := e.cfg.Owner + "/backfill"
	m, ok, err := e.cfg.Store.LeaseMeter(ctx, job.Args.MeterID, owner, e.cfg.SyncTimeout+30*time.Second)
	if flows.ErrorCode(err) == flows.ENOTFOUND {
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	if !ok {
		return river.JobSnooze(e.cfg.BackfillPause) // syncing now: the scheduled read goes first
	}
	// Another node's operator work wanting the meter stops the run before
	// its next request (handover.go); what it read is stored, and it comes
	// back after BackfillPause. (Released after the hold is dropped: a
	// want seen in between does nothing.)
	wanted := make(chan struct{})
	hold := e.handovers.hold(m.ID, func() { close(wanted) })
	defer func() {
		e.handovers.drop(hold)
		if err := e.cfg.Store.ReleaseSyncLease(context.WithoutCancel(ctx), m.ID, owner); err != nil {
			e.cfg.Logger.Warn("releasing sync lease", "meter_serial", m.Serial, "error", err)
		}
	}()
	target, err := meterconn.TargetOf(m)
	if err != nil {
		return river.JobCancel(err) // passive: fed by its active database
	}
	now := e.cfg.Now().UTC()
	c := &call{meters: &yielding{Meters: e.cfg.Meters, wanted: wanted}, target: target, meter: m, now: now, res: &flows.SyncResult{MeterID: m.ID}}
	if emop.IsThreePhase(m.Hardware) {
		return e.backfillThreePhase(ctx, c) // its interval profile, not profile logs 1 and 2
	}
	// The last hour is the daily run's: a meter may not have written it.
	gaps, err := e.profileGaps(ctx, m.ID, now)(time.Time{}, lastComplete(now).Add(-liveEdge))
	if err != nil {
		return err
	}
	if len(gaps) == 0 {
		return nil
	}
	// Every half hour of the window may be asked for; the run's length
	// bounds it.
	p, readErr := readProfile(ctx, c.meters, c, gaps, (e.cfg.BackfillDays+1)*48, time.Now().Add(e.cfg.BackfillRun))
	if _, err := e.cfg.Store.StoreProfileRead(context.WithoutCancel(ctx), m.ID, p.recs, p.holes); err != nil {
		return err
	}
	if bad := append(p.dropped, p.refused...); len(bad) > 0 {
		e.cfg.Logger.Info("profile records kept out", "meter_serial", m.Serial, "detail", strings.Join(bad, "; "))
	}
	if errors.Is(readErr, errHandedOver) {
		return river.JobSnooze(e.cfg.BackfillPause) // another node's operator work goes first
	}
	if readErr != nil {
		return fmt.Errorf("profile backfill of %s: %w", m.Serial, readErr) // retried with backoff, at most MaxAttempts
	}
	if len(p.recs) == 0 && len(p.holes) == 0 {
		return nil
	}
	// Asked at a fresh now: a gap that opened while this run read (the
	// meter's next outage, whose backfill found this job still running)
	// is this job's too.
	now = e.cfg.Now().UTC()
	more, err := e.profileGaps(ctx, m.ID, now)(time.Time{}, lastComplete(now).Add(-liveEdge))
	if err != nil {
		return err
	}
	if len(more) > 0 || p.cut {
		// Longer than a busy group waits (5 s): the meter's scheduled
		// sync takes the lease first.
		return river.JobSnooze(e.cfg.BackfillPause)
	}
	return nil
}

// profileGaps returns a meter's missing half hours in [from, to), never
// older than BackfillDays before now's UTC day (the store also clips them
// to the meter's commissioning).
func (e *Engine) profileGaps(ctx context.Context, meterID string, now time.Time) func(from, to time.Time) ([]flows.ProfileGap, error) {
	return e.gapsWithin(ctx, meterID, now, e.cfg.Store.ProfileGaps)
}

// gapsWithin clips a store's gap query (profile logs or three-phase
// intervals) to the backfill window.
func (e *Engine) gapsWithin(ctx context.Context, meterID string, now time.Time,
	gaps func(ctx context.Context, meterID string, from, to time.Time) ([]flows.ProfileGap, error)) func(from, to time.Time) ([]flows.ProfileGap, error) {
	oldest := now.UTC().Truncate(24*time.Hour).AddDate(0, 0, -e.cfg.BackfillDays)
	return func(from, to time.Time) ([]flows.ProfileGap, error) {
		if from.Before(oldest) {
			from = oldest
		}
		if !to.After(from) {
			return nil, nil
		}
		return gaps(ctx, meterID, from, to)
	}
}
