package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// Three-phase interval profiles: flows.meter_3p_interval (migration 0017)
// keeps a column per channel the reference names, in
// emop.ThreePhaseChannels' order; the column is the channel's name.
var threePhaseColumns = func() []string {
	out := make([]string, len(emop.ThreePhaseChannels))
	for i, c := range emop.ThreePhaseChannels {
		out[i] = emop.ChannelName(c)
	}
	return out
}()

// StoreThreePhaseRead stores what a three-phase backfill read: intervals
// (as a sync stores them, leaving out those it cannot keep) and the half
// hours the meter said it holds nothing for, each counted as one more
// attempt. It returns how many register intervals were derived.
func (s *Store) StoreThreePhaseRead(ctx context.Context, meterID string, ivs []flows.ThreePhaseInterval, holes []flows.ProfileHole) (int, error) {
	b := &pgx.Batch{}
	queueThreePhase(b, meterID, ivs, holes, s.now())
	if b.Len() == 0 {
		return 0, nil
	}
	return s.sendProfile(ctx, b)
}

// queueThreePhase adds to a batch the writes of one meter's three-phase
// intervals and holes (those of flows.ProfileLogThreePhase; the others
// are queueProfile's): intervals upserted per half hour (reading one
// again changes nothing; a flag raised stays raised), holes filled by an
// interval removed, the others counted, and last the derivation of the
// register intervals they bound. It returns the intervals it left out,
// named: not a half hour, not over yet, or values that do not match the
// channels.
func queueThreePhase(b *pgx.Batch, meterID string, ivs []flows.ThreePhaseInterval, holes []flows.ProfileHole, now time.Time) []string {
	var bad []string
	byAt := map[time.Time]int{}
	var kept []flows.ThreePhaseInterval
	for _, iv := range ivs {
		at := iv.At.UTC()
		switch {
		case at.IsZero() || !at.Equal(at.Truncate(30*time.Minute)):
			bad = append(bad, at.Format(time.RFC3339)+" not a half hour")
			continue
		case at.Add(30 * time.Minute).After(now):
			bad = append(bad, at.Format(time.RFC3339)+" in the future")
			continue
		case len(iv.Channels) != len(iv.Values):
			bad = append(bad, at.Format(time.RFC3339)+" values do not match its channels")
			continue
		}
		iv.At = at
		if i, ok := byAt[at]; ok {
			kept[i] = iv // a later read of the same half hour: the newer answer
			continue
		}
		byAt[at] = len(kept)
		kept = append(kept, iv)
	}
	var holeAt []time.Time
	seen := map[time.Time]bool{}
	for _, h := range holes {
		if h.Log != flows.ProfileLogThreePhase || seen[h.At.UTC()] {
			continue
		}
		seen[h.At.UTC()] = true
		holeAt = append(holeAt, h.At.UTC())
	}
	if len(kept) == 0 && len(holeAt) == 0 {
		return bad
	}
	if len(kept) > 0 {
		ts := make([]time.Time, len(kept))
		status := make([]int32, len(kept))
		cols := make([][]*string, len(threePhaseColumns))
		for k := range cols {
			cols[k] = make([]*string, len(kept))
		}
		other := make([]*string, len(kept))
		for i, iv := range kept {
			ts[i], status[i] = iv.At, int32(iv.Status)
			extra := map[string]string{}
			for j, ch := range iv.Channels {
				v := iv.Values[j].String()
				if k := slices.Index(emop.ThreePhaseChannels, emop.ObjectID(ch)); k >= 0 {
					cols[k][i] = &v
				} else {
					extra[emop.ObjectID(ch).String()] = v
				}
			}
			if len(extra) > 0 {
				js, _ := json.Marshal(extra) // a map of strings always marshals
				o := string(js)
				other[i] = &o
			}
		}
		args := []any{meterID, ts, status}
		var names, sel, params, set []string
		for k, c := range threePhaseColumns {
			names = append(names, c)
			sel = append(sel, fmt.Sprintf("c%d::numeric", k))
			params = append(params, fmt.Sprintf("$%d::text[]", k+4))
			set = append(set, fmt.Sprintf("%s = coalesce(EXCLUDED.%[1]s, meter_3p_interval.%[1]s)", c))
			args = append(args, cols[k])
		}
		aliases := make([]string, len(threePhaseColumns))
		for k := range aliases {
			aliases[k] = fmt.Sprintf("c%d", k)
		}
		args = append(args, other)
		// Column names come from emop's table, never from a meter.
		b.Queue(fmt.Sprintf(`INSERT INTO flows.meter_3p_interval (meter_id, "timestamp", status, %s, other_channels, esco)
			SELECT $1, t, s, %s, o::jsonb, (SELECT esco FROM flows.meter_registry WHERE id = $1) FROM unnest($2::timestamptz[], $3::int[], %s, $%d::text[]) AS x(t, s, %s, o)
			ON CONFLICT (meter_id, "timestamp") DO UPDATE SET read_at = now(),
				status = ((meter_3p_interval.status | EXCLUDED.status) & ~1) | (meter_3p_interval.status & EXCLUDED.status & 1),
				%s,
				other_channels = coalesce(EXCLUDED.other_channels, meter_3p_interval.other_channels)`,
			strings.Join(names, ", "), strings.Join(sel, ", "), strings.Join(params, ", "), len(threePhaseColumns)+4,
			strings.Join(aliases, ", "), strings.Join(set, ",\n\t\t\t\t")), args...)
		b.Queue(`DELETE FROM flows.meter_profile_hole WHERE meter_id = $1 AND log = 3 AND "timestamp" = ANY($2::timestamptz[])`, meterID, ts)
	}
	if len(holeAt) > 0 {
		b.Queue(`INSERT INTO flows.meter_profile_hole (meter_id, log, "timestamp")
			SELECT $1, 3, t FROM unnest($2::timestamptz[]) AS t
			WHERE NOT EXISTS (SELECT 1 FROM flows.meter_3p_interval p WHERE p.meter_id = $1 AND p."timestamp" = t)
			ON CONFLICT (meter_id, log, "timestamp") DO UPDATE SET attempts = meter_profile_hole.attempts + 1, last_at = now()`,
			meterID, holeAt)
	}
	if len(kept) == 0 {
		b.Queue(`SELECT 0`)
		return bad
	}
	first, last := kept[0].At, kept[0].At
	for _, iv := range kept {
		first, last = minTime(first, iv.At), maxTime(last, iv.At)
	}
	b.Queue(`SELECT flows.derive_three_phase_intervals($1, $2, $3)`, meterID, first, last.Add(30*time.Minute))
	return bad
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// ThreePhaseGaps returns the runs of half hours in [from, to) for which a
// three-phase meter's interval profile has given Flows nothing (as
// flows.ProfileGap of flows.ProfileLogThreePhase), from the meter's
// commissioning (its earliest enabled register's start_time) when that is
// later, leaving out half hours the meter has said MaxHoleAttempts times
// it holds nothing for. Oldest first.
func (s *Store) ThreePhaseGaps(ctx context.Context, meterID string, from, to time.Time) ([]flows.ProfileGap, error) {
	rows, err := s.pool.Query(ctx, `
		WITH bounds AS (
			SELECT greatest($2::timestamptz, coalesce((SELECT min(start_time) FROM flows.meter_registers
			       WHERE meter_id = $1 AND status = 'enabled'), '-infinity')) AS f),
		hh AS (
			SELECT h FROM bounds, generate_series(date_bin('30 minutes', f - interval '1 microsecond', timestamptz '2000-01-01 00:00:00+00') + interval '30 minutes',
			                                      $3::timestamptz - interval '30 minutes', interval '30 minutes') AS h),
		missing AS (
			SELECT hh.h FROM hh
			WHERE NOT EXISTS (SELECT 1 FROM flows.meter_3p_interval p WHERE p.meter_id = $1 AND p."timestamp" = hh.h
			                  AND p."timestamp" >= $2::timestamptz AND p."timestamp" < $3::timestamptz)
			  AND NOT EXISTS (SELECT 1 FROM flows.meter_profile_hole x WHERE x.meter_id = $1 AND x.log = 3 AND x."timestamp" = hh.h
			                  AND x."timestamp" >= $2::timestamptz AND x."timestamp" < $3::timestamptz AND x.attempts >= $4)),
		runs AS (SELECT h, h - (row_number() OVER (ORDER BY h)) * interval '30 minutes' AS grp FROM missing)
		SELECT min(h), max(h) + interval '30 minutes' FROM runs GROUP BY grp ORDER BY 1`,
		meterID, from.UTC(), to.UTC(), flows.MaxHoleAttempts)
	if err != nil {
		return nil, translate(err, "three-phase interval gaps")
	}
	return collect(rows, "three-phase interval gaps", func(row pgx.Row) (*flows.ProfileGap, error) {
		g := flows.ProfileGap{Log: flows.ProfileLogThreePhase}
		err := row.Scan(&g.From, &g.To)
		g.From, g.To = g.From.UTC(), g.To.UTC()
		return &g, err
	})
}

// ThreePhaseDay returns the intervals of one UTC day of a three-phase
// meter's profile that Flows holds, in time order, flagged ones included
// (the reference's interval CSV): each with the channels it has a value
// for, the named ones in emop.ThreePhaseChannels' order, then the others
// by id.
func (s *Store) ThreePhaseDay(ctx context.Context, meterID string, day time.Time) ([]flows.ThreePhaseInterval, error) {
	start := flows.UTCDay(day)
	sel := make([]string, len(threePhaseColumns))
	for k, c := range threePhaseColumns {
		sel[k] = c + "::text"
	}
	rows, err := s.pool.Query(ctx, fmt.Sprintf(`SELECT "timestamp", status, %s, other_channels::text FROM flows.meter_3p_interval
		WHERE meter_id = $1 AND "timestamp" >= $2 AND "timestamp" < $2 + interval '1 day' ORDER BY "timestamp"`, strings.Join(sel, ", ")),
		meterID, start)
	if err != nil {
		return nil, translate(err, "three-phase intervals")
	}
	return collect(rows, "three-phase intervals", func(row pgx.Row) (*flows.ThreePhaseInterval, error) {
		var iv flows.ThreePhaseInterval
		var status int32
		vals := make([]*string, len(threePhaseColumns))
		var other *string
		dst := []any{&iv.At, &status}
		for k := range vals {
			dst = append(dst, &vals[k])
		}
		if err := row.Scan(append(dst, &other)...); err != nil {
			return nil, err
		}
		iv.At, iv.Status = iv.At.UTC(), uint16(status)
		for k, v := range vals {
			if v == nil {
				continue
			}
			d, err := decimal.NewFromString(*v)
			if err != nil {
				return nil, err
			}
			iv.Channels, iv.Values = append(iv.Channels, uint32(emop.ThreePhaseChannels[k])), append(iv.Values, d)
		}
		if other != nil {
			var extra map[string]string
			if err := json.Unmarshal([]byte(*other), &extra); err != nil {
				return nil, err
			}
			ids := make([]string, 0, len(extra))
			for id := range extra {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			for _, id := range ids {
				var ch uint32
				d, err := decimal.NewFromString(extra[id])
				if _, serr := fmt.Sscanf(id, "%06x", &ch); serr != nil || err != nil {
					return nil, fmt.Errorf("other channel %q: %v %v", id, serr, err)
				}
				iv.Channels, iv.Values = append(iv.Channels, ch), append(iv.Values, d)
			}
		}
		return &iv, nil
	})
}
