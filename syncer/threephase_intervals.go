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
	"github.com/shopspring/decimal"
)

// Three-phase interval profiles.
//
// SyncerThreePhaseIntervals reads, once a day, the half hours of the last
// ProfileDailyWindow a three-phase meter's interval profile holds that
// Flows has not stored, as the reference's fetch does: the hardware
// configuration first (its meter type scales every value; an unknown type
// stops the read), then requests of at most emop.MaxIntervalWindow (4 h)
// each. A response carries what fits in one frame from the window's
// start; the next request starts at the end of its last interval. Half
// hours a response skips are holes (counted in meter_profile_hole as log
// 3, asked for at most MaxHoleAttempts times). Older gaps go to the same
// backfill job as single-phase profiles (workBackfill dispatches on the
// meter's kind). Screening keeps out, naming them, intervals that are not
// half hours, start before what was asked, are not over yet, or come out
// of order; a malformed answer skips its window (counted as asked once)
// and is named.

// threePhaseConfig reads the hardware configuration and checks that its
// meter type scales.
func threePhaseConfig(ctx context.Context, c *call) (emop.ThreePhaseConfig, error) {
	p, err := c.read(ctx, emop.ObjThreePhaseHardwareConfig)
	if err != nil {
		return emop.ThreePhaseConfig{}, err
	}
	cfg, err := emop.DecodeThreePhaseConfig(p)
	if err != nil {
		return cfg, err
	}
	_, err = cfg.Scale()
	return cfg, err
}

// syncThreePhaseIntervals is SyncerThreePhaseIntervals: the daily
// window's gaps; older gaps are flagged for the backfill.
func syncThreePhaseIntervals(ctx context.Context, c *call) error {
	cfg, err := threePhaseConfig(ctx, c)
	if err != nil {
		return err
	}
	newest := lastComplete(c.now)
	gaps, err := c.threePhaseGaps(newest.Add(-ProfileDailyWindow), newest)
	if err != nil {
		return err
	}
	older, err := c.threePhaseGaps(time.Time{}, newest.Add(-ProfileDailyWindow))
	if err != nil {
		return err
	}
	c.res.ProfileBacklog = len(older) > 0
	p, err := readThreePhase(ctx, c, c, cfg, gaps, int(ProfileDailyWindow/(30*time.Minute)), time.Time{})
	c.res.ThreePhaseIntervals = p.ivs
	c.res.ProfileHoles = append(c.res.ProfileHoles, p.holes...)
	if p.cut {
		c.res.ProfileBacklog = true
	}
	c.res.Dropped = append(c.res.Dropped, p.dropped...)
	for _, r := range p.refused {
		c.res.Refused = append(c.res.Refused, "SyncerThreePhaseIntervals: "+r)
	}
	return err
}

// threePhaseRead is what reading a three-phase interval profile gathered.
type threePhaseRead struct {
	ivs     []flows.ThreePhaseInterval
	holes   []flows.ProfileHole
	dropped []string
	refused []string
	cut     bool
	until   time.Time
}

// readThreePhase reads gaps of a three-phase meter's interval profile,
// oldest first, until done, limit requests have been made, or until (when
// not zero) has passed (the read is then cut). Requests, not
// half hours, are what a run spends (each takes a meter's gap, 2 s): a
// window the meter holds nothing for costs one request however long, and
// every request moves on by at least a half hour, so limit requests always
// read limit half hours. It returns what it gathered even when a request
// fails.
func readThreePhase(ctx context.Context, meters Meters, c *call, cfg emop.ThreePhaseConfig, gaps []flows.ProfileGap, limit int, until time.Time) (*threePhaseRead, error) {
	out := &threePhaseRead{until: until}
	newest := lastComplete(c.now)
	for _, g := range gaps {
		if limit <= 0 {
			break
		}
		if err := out.readGap(ctx, meters, c, cfg, g.From, g.To, newest, &limit); err != nil {
			return out, err
		}
	}
	return out, nil
}

// readGap reads [from, to) in windows of at most 4 hours.
func (p *threePhaseRead) readGap(ctx context.Context, meters Meters, c *call, cfg emop.ThreePhaseConfig, from, to, newest time.Time, budget *int) error {
	for t := from; t.Before(to) && *budget > 0; {
		if stopAsking(ctx, p.until) {
			p.cut = true
			return nil
		}
		end := minTime(t.Add(emop.MaxIntervalWindow), to)
		ivs, err := p.request(ctx, meters, c, cfg, t, end, newest)
		if flows.ErrorCode(err) == flows.EINVALID {
			p.refused = append(p.refused, flows.ErrorMessage(err))
			p.hole(t, end)
			*budget--
			t = end
			continue
		}
		if err != nil {
			return err
		}
		if len(ivs) == 0 {
			// Nothing in the window; not yet, near now.
			p.hole(t, minTime(end, newest.Add(-liveEdge)))
			*budget--
			t = end
			continue
		}
		p.hole(t, minTime(ivs[0].At, to))
		for i := 1; i < len(ivs); i++ {
			p.hole(ivs[i-1].At.Add(30*time.Minute), minTime(ivs[i].At, to))
		}
		p.ivs = append(p.ivs, ivs...)
		if !ivs[0].At.Before(to) {
			return nil // its next data is past this gap
		}
		*budget--
		t = ivs[len(ivs)-1].At.Add(30 * time.Minute)
	}
	return nil
}

// request asks for the window [t, end) and returns its usable intervals.
func (p *threePhaseRead) request(ctx context.Context, meters Meters, c *call, cfg emop.ThreePhaseConfig, t, end, newest time.Time) ([]flows.ThreePhaseInterval, error) {
	req, err := emop.ThreePhaseIntervalsRequest(emop.ProfileZero, t, end)
	if err != nil {
		return nil, err
	}
	resp, err := meters.Raw(ctx, c.target, req)
	if err != nil {
		return nil, fmt.Errorf("three-phase intervals from %s: %w", t.Format(time.RFC3339), err)
	}
	c.res.Reached = true
	rows, err := decodeThreePhase(resp)
	if err != nil {
		return nil, flows.Errorf(flows.EINVALID, "three-phase intervals from %s: malformed answer (%s)", t.Format(time.RFC3339),
			strings.TrimPrefix(err.Error(), "emop: "))
	}
	kept, bad := screenThreePhase(rows, cfg, t, newest)
	if len(bad) > 0 {
		p.dropped = append(p.dropped, "three-phase interval "+strings.Join(bad, ", "))
	}
	return kept, nil
}

// decodeThreePhase turns a three-phase interval response into its
// intervals, blocks joined (emop.ThreePhaseIntervals.Rows).
func decodeThreePhase(resp []byte) ([]emop.IntervalRow, error) {
	r, err := emop.ParseThreePhaseIntervals(resp)
	if err != nil {
		return nil, err
	}
	return r.Rows()
}

// screenThreePhase keeps the intervals of an answer to a request from t
// that Flows can store, scaled, in order, and names the others: not a
// half hour (its length or its start), before what was asked, not over by
// newest, or out of order.
func screenThreePhase(rows []emop.IntervalRow, cfg emop.ThreePhaseConfig, t, newest time.Time) (kept []flows.ThreePhaseInterval, bad []string) {
	exp, err := cfg.Scale()
	if err != nil {
		for _, r := range rows {
			bad = append(bad, r.At.UTC().Format(time.RFC3339)+" not scaled (unknown meter type)")
		}
		return nil, bad
	}
	for _, r := range rows {
		at := r.At.UTC()
		name := at.Format(time.RFC3339)
		switch {
		case r.Minutes != 30:
			bad = append(bad, fmt.Sprintf("%s a %d-minute interval", name, r.Minutes))
		case !at.Equal(at.Truncate(30 * time.Minute)):
			bad = append(bad, name+" not a half hour")
		case at.Before(t):
			bad = append(bad, name+" before the "+t.Format(time.RFC3339)+" asked for")
		case at.Add(30 * time.Minute).After(newest):
			bad = append(bad, name+" in the future")
		case len(kept) > 0 && !at.After(kept[len(kept)-1].At):
			bad = append(bad, name+" out of order")
		default:
			iv := flows.ThreePhaseInterval{At: at, Status: r.Status,
				Channels: make([]uint32, len(r.Channels)), Values: make([]decimal.Decimal, len(r.Values))}
			for i, ch := range r.Channels {
				iv.Channels[i], iv.Values[i] = uint32(ch), decimal.New(int64(r.Values[i]), exp)
			}
			kept = append(kept, iv)
		}
	}
	return kept, bad
}

// hole notes half hours [from, to) the meter holds no interval for.
func (p *threePhaseRead) hole(from, to time.Time) {
	for t := from; t.Before(to); t = t.Add(30 * time.Minute) {
		p.holes = append(p.holes, flows.ProfileHole{Log: flows.ProfileLogThreePhase, At: t})
	}
}

// backfillThreePhase is workBackfill for a three-phase meter, the lease
// held: it reads the meter's oldest missing intervals for up to
// BackfillRun and comes back (snoozes) while more is missing.
func (e *Engine) backfillThreePhase(ctx context.Context, c *call) error {
	m := c.meter
	gaps, err := e.threePhaseGaps(ctx, m.ID, c.now)(time.Time{}, lastComplete(c.now).Add(-liveEdge))
	if err != nil || len(gaps) == 0 {
		return err
	}
	cfg, err := threePhaseConfig(ctx, c)
	if errors.Is(err, errHandedOver) {
		return river.JobSnooze(e.cfg.BackfillPause)
	}
	if err != nil {
		if meterconn.Classify(err).Unreached() {
			return fmt.Errorf("three-phase backfill of %s: %w", m.Serial, err) // retried with backoff
		}
		return river.JobCancel(fmt.Errorf("three-phase backfill of %s: %w", m.Serial, err)) // the next daily sync names it
	}
	p, readErr := readThreePhase(ctx, c.meters, c, cfg, gaps, (e.cfg.BackfillDays+1)*48, time.Now().Add(e.cfg.BackfillRun))
	if _, err := e.cfg.Store.StoreThreePhaseRead(context.WithoutCancel(ctx), m.ID, p.ivs, p.holes); err != nil {
		return err
	}
	if bad := append(p.dropped, p.refused...); len(bad) > 0 {
		e.cfg.Logger.Info("three-phase intervals kept out", "meter_serial", m.Serial, "detail", strings.Join(bad, "; "))
	}
	if errors.Is(readErr, errHandedOver) {
		return river.JobSnooze(e.cfg.BackfillPause) // another node's operator work goes first
	}
	if readErr != nil {
		return fmt.Errorf("three-phase backfill of %s: %w", m.Serial, readErr)
	}
	if len(p.ivs) == 0 && len(p.holes) == 0 {
		return nil
	}
	now := e.cfg.Now().UTC()
	more, err := e.threePhaseGaps(ctx, m.ID, now)(time.Time{}, lastComplete(now).Add(-liveEdge))
	if err != nil {
		return err
	}
	if len(more) > 0 || p.cut {
		return river.JobSnooze(e.cfg.BackfillPause)
	}
	return nil
}

// threePhaseGaps is profileGaps for three-phase meters.
func (e *Engine) threePhaseGaps(ctx context.Context, meterID string, now time.Time) func(from, to time.Time) ([]flows.ProfileGap, error) {
	return e.gapsWithin(ctx, meterID, now, e.cfg.Store.ThreePhaseGaps)
}
