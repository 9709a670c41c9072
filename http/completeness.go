package http

import (
	"context"
	"html/template"
	"strings"
	"sync"
	"time"

	"github.com/flows-energy/flows"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"
)

// pageCompletenessLimit is the most meters whose completeness a page asks
// for by id (50-120 ms for 1,000 here: one API page). A longer page — the
// whole fleet page — reads the fleet's answer, kept for fleetCompletenessAge.
const pageCompletenessLimit = 1000

// fleetCompletenessAge bounds how old the fleet's answer may be. Reading
// it costs 0.2-0.5 s for 10,000 meters (330,000 day rows), as much as the
// rest of the fleet page or more; completeness counts complete UTC days,
// which change when the daily profile sync stores a day, so a minute-old
// answer says the same. It is never kept past the UTC day it was read on.
const fleetCompletenessAge = time.Minute

// fleetCompleteness keeps the fleet's answer for the fleet page and the
// metric, and, while it is fresh, for any other page. Requests that find
// it old wait for one read.
type fleetCompleteness struct {
	mu sync.Mutex
	at time.Time
	m  map[string]flows.MeterCompleteness
}

func (f *fleetCompleteness) get(ctx context.Context, now time.Time, read func(context.Context) (map[string]flows.MeterCompleteness, error)) (map[string]flows.MeterCompleteness, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.freshLocked(now) {
		return f.m, nil
	}
	m, err := read(ctx)
	if err != nil {
		return nil, err
	}
	f.m, f.at = m, now
	return m, nil
}

// fresh returns the fleet's answer if it is fresh, else nil; it never
// reads.
func (f *fleetCompleteness) fresh(now time.Time) map[string]flows.MeterCompleteness {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.freshLocked(now) {
		return f.m
	}
	return nil
}

func (f *fleetCompleteness) freshLocked(now time.Time) bool {
	return f.m != nil && now.Sub(f.at) < fleetCompletenessAge && flows.UTCDay(now).Equal(flows.UTCDay(f.at))
}

// completenessOf returns the completeness of some meters (by id): from
// the fleet's answer while it is fresh (a scrape of /metrics or the fleet
// page read it in the last minute), else read for them when there are at
// most pageCompletenessLimit, else from the fleet's answer, read now.
// Meters of which nothing is expected are absent.
func (s *Server) completenessOf(ctx context.Context, ids []string) (map[string]flows.MeterCompleteness, error) {
	if m := s.fleetCompleteness.fresh(s.cfg.Now()); m != nil {
		return m, nil
	}
	if len(ids) <= pageCompletenessLimit {
		return s.cfg.Store.CompletenessOf(ctx, ids)
	}
	return s.fleetCompleteness.get(ctx, s.cfg.Now(), s.cfg.Store.CompletenessOfAll)
}

// meterCompleteness is one meter's completeness, both shares nil when
// nothing is expected of it. It asks as for a page of one meter (or takes
// the fleet's fresh answer): the view flows.meter_interval_completeness
// (Store.Completeness) computes every meter's before it picks one, three
// to four times as long with 10,000 meters.
func (s *Server) meterCompleteness(ctx context.Context, meterID string) (flows.Completeness, error) {
	m, err := s.completenessOf(ctx, []string{meterID})
	return m[meterID].Completeness, err
}

// completenessCollector reports the fleet's interval completeness: per
// window, the mean share of expected half hours derived over the active
// meters half hours are expected of, and how many meters that is.
type completenessCollector struct {
	s             *Server
	ratio, meters *prometheus.Desc
}

func newCompletenessCollector(s *Server) *completenessCollector {
	l := []string{"window"}
	return &completenessCollector{s: s,
		ratio: prometheus.NewDesc("flows_interval_completeness_ratio",
			"Mean share (0-1) of expected half hours derived over the last 7 or 30 complete UTC days, over the active meters with an enabled register.", l, nil),
		meters: prometheus.NewDesc("flows_interval_completeness_meters", "Active meters the completeness ratio averages.", l, nil)}
}

func (c *completenessCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.ratio; ch <- c.meters }

func (c *completenessCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	all, err := c.s.fleetCompleteness.get(ctx, c.s.cfg.Now(), c.s.cfg.Store.CompletenessOfAll)
	if err != nil {
		c.s.cfg.Logger.Warn("interval completeness for metrics", "error", err)
		return
	}
	var sum7, sum30 float64
	var n7, n30 int
	for _, m := range all {
		if !m.Active {
			continue
		}
		if m.Last7Days != nil {
			sum7 += m.Last7Days.InexactFloat64()
			n7++
		}
		if m.Last30Days != nil {
			sum30 += m.Last30Days.InexactFloat64()
			n30++
		}
	}
	for _, w := range []struct {
		name string
		sum  float64
		n    int
	}{{"7d", sum7, n7}, {"30d", sum30, n30}} {
		ch <- prometheus.MustNewConstMetric(c.meters, prometheus.GaugeValue, float64(w.n), w.name)
		if w.n > 0 { // no meter, no mean: an absent series, not a fleet at 0
			ch <- prometheus.MustNewConstMetric(c.ratio, prometheus.GaugeValue, w.sum/float64(w.n), w.name)
		}
	}
}

// meterRow is a meter list row with its interval completeness (both nil
// when nothing is expected of the meter: no enabled register).
type meterRow struct {
	flows.MeterRow
	IntervalCompleteness flows.Completeness `json:"interval_completeness"`
}

// withCompleteness adds their completeness to the rows of a list.
func (s *Server) withCompleteness(ctx context.Context, rows []flows.MeterRow) ([]meterRow, error) {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	comp, err := s.completenessOf(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]meterRow, len(rows))
	for i, r := range rows {
		out[i] = meterRow{MeterRow: r, IntervalCompleteness: comp[r.ID].Completeness}
	}
	return out, nil
}

// percent shows a share (0-1) as a percentage to a tenth ("97.9%",
// "100%"), "–" when there is none.
func percent(d *decimal.Decimal) string {
	if d == nil {
		return "–"
	}
	return strings.TrimSuffix(d.Shift(2).StringFixed(1), ".0") + "%"
}

// completenessCells renders the fleet page's two completeness cells of
// each row, ahead of the template: 10,000 rows of two more fields and
// function calls through the template's reflection cost more than the
// page's completeness read.
func (s *Server) completenessCells(ctx context.Context, rows []flows.MeterRow) ([]template.HTML, error) {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	comp, err := s.completenessOf(ctx, ids)
	if err != nil {
		return nil, err
	}
	cells := make([]template.HTML, len(rows))
	for i, r := range rows {
		c := comp[r.ID]
		// Digits, ".", "%" and "–" only: nothing to escape.
		cells[i] = template.HTML("<td>" + percent(c.Last7Days) + "</td><td>" + percent(c.Last30Days) + "</td>")
	}
	return cells, nil
}
