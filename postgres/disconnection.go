package postgres

import (
	"context"
	"sort"
	"time"

	"github.com/flows-energy/flows"
	"github.com/shopspring/decimal"
)

// SelfDisconnectionReport reports the self-disconnections (migration
// 0031) that overlap [from, to), of one ESCO's meters or (escoCode empty)
// every ESCO's: each period, newest first, with its whole length; the
// totals count the hours within [from, to) (a period still going, to
// now).
func (s *Store) SelfDisconnectionReport(ctx context.Context, from, to time.Time, escoCode string) (*flows.SelfDisconnectionReport, error) {
	if !from.Before(to) {
		return nil, flows.FieldError("from", "%s is not before to (%s)", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	}
	now := s.now()
	rows, err := s.pool.Query(ctx, `
		SELECT d.serial, coalesce(d.name, ''), d.started_at, d.ended_at, d.source,
		       extract(epoch FROM coalesce(d.ended_at, $3) - d.started_at)::bigint,
		       greatest(extract(epoch FROM least(coalesce(d.ended_at, $3), $2) - greatest(d.started_at, $1)), 0)::bigint
		FROM flows.meters_self_disconnections d LEFT JOIN flows.escos e ON e.id = d.esco
		WHERE d.started_at < $2 AND coalesce(d.ended_at, 'infinity') > $1 AND ($4 = '' OR lower(e.code) = lower($4))
		ORDER BY d.started_at DESC, d.serial`, from, to, now, escoCode)
	if err != nil {
		return nil, translate(err, "self-disconnections")
	}
	defer rows.Close()
	r := &flows.SelfDisconnectionReport{ESCO: escoCode, From: from.UTC(), To: to.UTC(), Periods: []flows.SelfDisconnection{}, Repeated: []flows.RepeatedDisconnections{}}
	type meter struct {
		name    string
		n       int
		seconds int64
	}
	meters := map[string]*meter{}
	var order []string
	var within int64
	for rows.Next() {
		var p flows.SelfDisconnection
		var in int64
		if err := rows.Scan(&p.Serial, &p.Name, &p.StartedAt, &p.EndedAt, &p.Source, &p.Seconds, &in); err != nil {
			return nil, translate(err, "self-disconnections")
		}
		inUTC(&p.StartedAt, p.EndedAt)
		r.Periods = append(r.Periods, p)
		within += in
		if p.EndedAt == nil {
			r.Ongoing++
		}
		if r.Longest == nil || p.Seconds > r.Longest.Seconds {
			l := p
			r.Longest = &l
		}
		m := meters[p.Serial]
		if m == nil {
			m = &meter{name: p.Name}
			meters[p.Serial] = m
			order = append(order, p.Serial)
		}
		m.n++
		m.seconds += in
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err, "self-disconnections")
	}
	r.Disconnections, r.Meters = len(r.Periods), len(meters)
	r.TotalHours = hours(within)
	for _, serial := range order {
		if m := meters[serial]; m.n > 1 {
			r.Repeated = append(r.Repeated, flows.RepeatedDisconnections{Serial: serial, Name: m.name, Disconnections: m.n, Hours: hours(m.seconds)})
		}
	}
	sort.SliceStable(r.Repeated, func(i, j int) bool { return r.Repeated[i].Disconnections > r.Repeated[j].Disconnections })
	return r, nil
}

// hours is seconds as hours to two places.
func hours(seconds int64) decimal.Decimal {
	return decimal.NewFromInt(seconds).Div(decimal.NewFromInt(3600)).Round(2)
}
