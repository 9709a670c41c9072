package http

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/smip"
	"github.com/shopspring/decimal"
)

// intervalPanel is the meter page's interval data: daily consumption over
// the last 30 complete UTC days, the half hours of one day (the page's
// ?day=, default yesterday), the day's SMIP files and the completeness.
type intervalPanel struct {
	Day, PrevDay, NextDay string // YYYY-MM-DD; NextDay is "" past today
	PrevHref, NextHref    string // the page with the day before or after, the rest of its query kept
	Completeness          flows.Completeness
	Daily, Profile        chartData
	Missing               int // half hours of the day, so far, without an import
	CSV                   []csvLink
	// ThreePhase: the meter's files are the three-phase interval files
	// (flows export intervals), not SMIP's.
	ThreePhase bool
}

// chartData is what charts.js draws bars (daily) or lines (half hours)
// from: a series per element and direction, one value per bucket, null
// where nothing could be derived (drawn as a gap, never as zero).
type chartData struct {
	Labels []string    `json:"labels"` // bucket starts, RFC 3339
	Series []chartLine `json:"series"`
	// Until is how many buckets have ended (the rest of today is not
	// missing, just not yet).
	Until int `json:"until"`
}

type chartLine struct {
	Name      string    `json:"name"`
	Kind      string    `json:"kind"` // import or export
	Values    []*string `json:"values"`
	HalfHours []int     `json:"half_hours"` // derived per bucket
	Expected  []int     `json:"expected"`   // half hours expected per bucket (0: before commissioning)
}

type csvLink struct{ Name, Href string }

// intervalPanel reads the meter page's interval data.
func (s *Server) intervalPanel(ctx context.Context, m *flows.Meter, q url.Values) (*intervalPanel, error) {
	now := s.cfg.Now().UTC()
	day, err := pastDay(q.Get("day"), now)
	if err != nil {
		return nil, err
	}
	today := flows.UTCDay(now)
	p := &intervalPanel{Day: flows.FormatDay(day), PrevDay: flows.FormatDay(day.AddDate(0, 0, -1))}
	if next := day.AddDate(0, 0, 1); !next.After(today) {
		p.NextDay = flows.FormatDay(next)
	}
	dayHref := func(d string) string {
		return pageLink("/meters/"+url.PathEscape(m.Serial), q, map[string]string{"day": d})
	}
	p.PrevHref = dayHref(p.PrevDay)
	if p.NextDay != "" {
		p.NextHref = dayHref(p.NextDay)
	}
	if p.Completeness, err = s.meterCompleteness(ctx, m.ID); err != nil {
		return nil, err
	}
	daily, err := s.cfg.Store.Intervals(ctx, m.ID, today.Add(-defaultDaySpan), today, flows.BucketDay)
	if err != nil {
		return nil, err
	}
	hh, err := s.cfg.Store.Intervals(ctx, m.ID, day, day.Add(24*time.Hour), flows.BucketHalfHour)
	if err != nil {
		return nil, err
	}
	p.Daily, p.Profile = chartOf(daily, 24*time.Hour, now), chartOf(hh, 30*time.Minute, now)
	for i := range p.Profile.Until {
		for _, l := range p.Profile.Series {
			if l.Kind == "import" && l.Values[i] == nil && l.Expected[i] > 0 {
				p.Missing++
				break
			}
		}
	}
	if p.ThreePhase = emop.IsThreePhase(m.Hardware); p.ThreePhase {
		return p, nil // its half hours are in the three-phase files, not SMIP's
	}
	twin := emop.IsTwinElement(m.Hardware)
	for _, e := range smip.Elements(twin) {
		v := url.Values{"day": {p.Day}}
		if twin {
			v.Set("element", e)
		}
		p.CSV = append(p.CSV, csvLink{Name: smip.FileName(m.Serial, e, twin, day), Href: "/meters/" + url.PathEscape(m.Serial) + "/intervals.csv?" + v.Encode()})
	}
	return p, nil
}

// chartOf turns the store's points (ordered by element, then start) into
// chart series: import per element, export per element where it is not
// all zero or missing (most meters export nothing).
func chartOf(pts []flows.IntervalPoint, step time.Duration, now time.Time) chartData {
	var elements []string
	by := map[string][]flows.IntervalPoint{}
	for _, p := range pts {
		if by[p.Element] == nil {
			elements = append(elements, p.Element)
		}
		by[p.Element] = append(by[p.Element], p)
	}
	d := chartData{Labels: []string{}, Series: []chartLine{}}
	if len(elements) == 0 {
		return d
	}
	for _, p := range by[elements[0]] {
		d.Labels = append(d.Labels, p.Start.Format(time.RFC3339))
		if !p.Start.Add(step).After(now) {
			d.Until++
		}
	}
	for _, kind := range []string{"import", "export"} {
		for _, e := range elements {
			l := chartLine{Name: kind, Kind: kind}
			if len(elements) > 1 {
				l.Name += " " + e
			}
			shown := kind == "import"
			for _, p := range by[e] {
				v := p.ImportKWh
				if kind == "export" {
					v = p.ExportKWh
				}
				l.Values = append(l.Values, decimalString(v))
				l.HalfHours = append(l.HalfHours, p.HalfHours)
				l.Expected = append(l.Expected, p.Expected)
				shown = shown || (v != nil && !v.IsZero())
			}
			if shown {
				d.Series = append(d.Series, l)
			}
		}
	}
	return d
}

func decimalString(d *decimal.Decimal) *string {
	if d == nil {
		return nil
	}
	s := d.String()
	return &s
}

// smipDownload serves the meter page's SMIP links: the API's file, for
// the dashboard's session.
func (s *Server) smipDownload(w http.ResponseWriter, r *http.Request, c *Claims) error {
	m, err := s.meterFor(r, c)
	if err != nil {
		return err
	}
	return s.writeSMIP(w, r, m)
}
