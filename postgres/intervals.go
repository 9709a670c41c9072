package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/flows-energy/flows"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
)

// StoreProfile records a meter's profile-log records and derives the
// intervals they complete, in one transaction. A record merges with what
// is stored for its half hour (log 1 and log 2 fill different readings;
// reading a half hour again changes nothing). Records that cannot be kept
// (not a half hour, in the future) are left out and returned, named; the
// others are stored. It returns how many intervals were derived.
func (s *Store) StoreProfile(ctx context.Context, meterID string, recs []flows.ProfileRecord) (int, []string, error) {
	b := &pgx.Batch{}
	bad := queueProfile(b, meterID, recs, nil, s.now())
	if b.Len() == 0 {
		return 0, bad, nil
	}
	n, err := s.sendProfile(ctx, b)
	return n, bad, err
}

// StoreProfileRead stores what a profile backfill read: records (as
// StoreProfile, dropping those it cannot keep) and the half hours the
// meter said it holds nothing for, each counted as one more attempt.
func (s *Store) StoreProfileRead(ctx context.Context, meterID string, recs []flows.ProfileRecord, holes []flows.ProfileHole) (int, error) {
	b := &pgx.Batch{}
	queueProfile(b, meterID, recs, holes, s.now())
	if b.Len() == 0 {
		return 0, nil
	}
	return s.sendProfile(ctx, b)
}

// sendProfile runs a queueProfile batch in one transaction and returns the
// number of intervals derived (its last statement).
func (s *Store) sendProfile(ctx context.Context, b *pgx.Batch) (int, error) {
	var derived int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		br := tx.SendBatch(ctx, b)
		for range b.Len() - 1 {
			if _, err := br.Exec(); err != nil {
				br.Close()
				return err
			}
		}
		if err := br.QueryRow().Scan(&derived); err != nil {
			br.Close()
			return err
		}
		return br.Close()
	})
	if err != nil {
		return 0, translate(err, "profile records")
	}
	return derived, nil
}

// queueProfile adds to a batch the writes of profile records and holes
// for one meter: records merged per half hour (log 1 and log 2 of one
// read fill one row), holes filled by a record removed, the others
// counted, and last the derivation of the intervals the records bound.
// It returns the records it left out, named.
func queueProfile(b *pgx.Batch, meterID string, recs []flows.ProfileRecord, holes []flows.ProfileHole, now time.Time) []string {
	var bad []string
	merged := map[time.Time]*flows.ProfileRecord{}
	var order []time.Time
	for _, r := range recs {
		if err := r.Validate(now); err != nil {
			bad = append(bad, err.Error())
			continue
		}
		at := r.At.UTC()
		m, ok := merged[at]
		if !ok {
			c := r
			c.At = at
			merged[at] = &c
			order = append(order, at)
			continue
		}
		m.Status = mergeStatus(m.Status, r.Status)
		for _, f := range [][2]**uint32{{&m.ImportA, &r.ImportA}, {&m.ImportB, &r.ImportB}, {&m.ExportA, &r.ExportA}, {&m.ExportB, &r.ExportB}} {
			if *f[1] != nil {
				*f[0] = *f[1]
			}
		}
	}
	type key struct {
		log int
		at  time.Time
	}
	seen := map[key]bool{}
	var holeLogs []int16
	var holeAt []time.Time
	for _, h := range holes {
		k := key{h.Log, h.At.UTC()}
		if seen[k] || (h.Log != flows.ProfileLogImports && h.Log != flows.ProfileLogExports) {
			continue
		}
		seen[k] = true
		holeLogs, holeAt = append(holeLogs, int16(h.Log)), append(holeAt, k.at)
	}
	if len(order) == 0 && len(holeAt) == 0 {
		return bad
	}
	ts := make([]time.Time, len(order))
	status := make([]int32, len(order))
	ia, ib, ea, eb := make([]*int64, len(order)), make([]*int64, len(order)), make([]*int64, len(order)), make([]*int64, len(order))
	var first, last time.Time
	for i, at := range order {
		r := merged[at]
		ts[i], status[i] = at, int32(r.Status)
		ia[i], ib[i], ea[i], eb[i] = wh(r.ImportA), wh(r.ImportB), wh(r.ExportA), wh(r.ExportB)
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	if len(order) > 0 {
		// The meter's ESCO once for the statement (migration 0020: the
		// fill trigger would look it up for every record).
		b.Queue(`INSERT INTO flows.meter_profile (meter_id, "timestamp", status, import_a_wh, import_b_wh, export_a_wh, export_b_wh, esco)
			SELECT $1, t, s, ia, ib, ea, eb, (SELECT esco FROM flows.meter_registry WHERE id = $1) FROM unnest($2::timestamptz[], $3::int[], $4::int8[], $5::int8[], $6::int8[], $7::int8[]) AS x(t, s, ia, ib, ea, eb)
			-- Both logs' flags count; valid only if both say so.
			ON CONFLICT (meter_id, "timestamp") DO UPDATE SET read_at = now(),
				status = ((meter_profile.status | EXCLUDED.status) & ~32768) | (meter_profile.status & EXCLUDED.status & 32768),
				import_a_wh = coalesce(EXCLUDED.import_a_wh, meter_profile.import_a_wh),
				import_b_wh = coalesce(EXCLUDED.import_b_wh, meter_profile.import_b_wh),
				export_a_wh = coalesce(EXCLUDED.export_a_wh, meter_profile.export_a_wh),
				export_b_wh = coalesce(EXCLUDED.export_b_wh, meter_profile.export_b_wh)`,
			meterID, ts, status, ia, ib, ea, eb)
		b.Queue(`DELETE FROM flows.meter_profile_hole h USING flows.meter_profile p
			WHERE h.meter_id = $1 AND p.meter_id = $1 AND p."timestamp" = h."timestamp" AND p."timestamp" = ANY($2::timestamptz[])
			  AND (CASE WHEN h.log = 1 THEN p.import_a_wh ELSE p.export_a_wh END) IS NOT NULL`, meterID, ts)
	}
	if len(holeAt) > 0 {
		b.Queue(`INSERT INTO flows.meter_profile_hole (meter_id, log, "timestamp")
			SELECT $1, l, t FROM unnest($2::smallint[], $3::timestamptz[]) AS x(l, t)
			ON CONFLICT (meter_id, log, "timestamp") DO UPDATE SET attempts = meter_profile_hole.attempts + 1, last_at = now()`,
			meterID, holeLogs, holeAt)
	}
	if len(order) == 0 {
		b.Queue(`SELECT 0`)
		return bad
	}
	// The interval ending at the first record starts half an hour before;
	// the one starting at the last may end at a record already stored.
	b.Queue(`SELECT flows.derive_register_intervals($1, $2, $3)`, meterID, first.Add(-30*time.Minute), last.Add(30*time.Minute))
	return bad
}

// ProfileGaps returns, per log, the runs of half hours in [from, to) that
// no stored record covers (log 1: import A; log 2: export A), from the
// meter's commissioning (its earliest enabled register's start_time) when
// that is later, leaving out half hours the meter has said
// MaxHoleAttempts times it holds no record for. Oldest first.
//
// The planner answers the NOT EXISTS with one anti-join over the meter's
// records; the bounds on "timestamp" (which every half hour asked for is
// within) keep that to the window's partitions and index range rather
// than the meter's whole history.
func (s *Store) ProfileGaps(ctx context.Context, meterID string, from, to time.Time) ([]flows.ProfileGap, error) {
	rows, err := s.pool.Query(ctx, `
		WITH bounds AS (
			SELECT greatest($2::timestamptz, coalesce((SELECT min(start_time) FROM flows.meter_registers
			       WHERE meter_id = $1 AND status = 'enabled'), '-infinity')) AS f),
		hh AS (
			SELECT h FROM bounds, generate_series(date_bin('30 minutes', f - interval '1 microsecond', timestamptz '2000-01-01 00:00:00+00') + interval '30 minutes',
			                                      $3::timestamptz - interval '30 minutes', interval '30 minutes') AS h),
		missing AS (
			SELECT l.log, hh.h FROM hh CROSS JOIN (VALUES (1), (2)) AS l(log)
			WHERE NOT EXISTS (SELECT 1 FROM flows.meter_profile p WHERE p.meter_id = $1 AND p."timestamp" = hh.h
			                  AND p."timestamp" >= $2::timestamptz AND p."timestamp" < $3::timestamptz
			                  AND (CASE WHEN l.log = 1 THEN p.import_a_wh ELSE p.export_a_wh END) IS NOT NULL)
			  AND NOT EXISTS (SELECT 1 FROM flows.meter_profile_hole x WHERE x.meter_id = $1 AND x.log = l.log AND x."timestamp" = hh.h
			                  AND x."timestamp" >= $2::timestamptz AND x."timestamp" < $3::timestamptz AND x.attempts >= $4)),
		runs AS (
			SELECT log, h, h - (row_number() OVER (PARTITION BY log ORDER BY h)) * interval '30 minutes' AS grp FROM missing)
		SELECT log, min(h), max(h) + interval '30 minutes' FROM runs GROUP BY log, grp ORDER BY 2, 1`,
		meterID, from.UTC(), to.UTC(), flows.MaxHoleAttempts)
	if err != nil {
		return nil, translate(err, "profile gaps")
	}
	return collect(rows, "profile gaps", func(row pgx.Row) (*flows.ProfileGap, error) {
		var g flows.ProfileGap
		err := row.Scan(&g.Log, &g.From, &g.To)
		g.From, g.To = g.From.UTC(), g.To.UTC()
		return &g, err
	})
}

// mergeStatus combines two reports of one half hour's status (log 1's and
// log 2's, or a re-read): every flag either raised, valid data only if
// both say so. The store's upsert does the same.
func mergeStatus(a, b uint16) uint16 {
	return (a|b)&^flows.ProfileValidData | a&b&flows.ProfileValidData
}

func wh(v *uint32) *int64 {
	if v == nil {
		return nil
	}
	n := int64(*v)
	return &n
}

// SMIPDay returns the 48 half hours of one UTC day of a meter's profile
// for element "A" (or SINGLE) or "B", as the reference's downloader
// writes them: import from log 1, export from log 2, raw readings.
func (s *Store) SMIPDay(ctx context.Context, meterID, element string, day time.Time) ([]flows.HalfHourReading, error) {
	imp, exp := "import_a_wh", "export_a_wh"
	switch strings.ToUpper(element) {
	case "A", "SINGLE", "":
	case "B":
		imp, exp = "import_b_wh", "export_b_wh"
	default:
		return nil, flows.FieldError("element", "%q is not A, B or SINGLE", element)
	}
	start := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC)
	rows, err := s.pool.Query(ctx, fmt.Sprintf(`SELECT h, p.%s, p.%s
		FROM generate_series($2::timestamptz, $2::timestamptz + interval '23 hours 30 minutes', interval '30 minutes') AS h
		LEFT JOIN flows.meter_profile p ON p.meter_id = $1 AND p."timestamp" = h ORDER BY h`, imp, exp), meterID, start)
	if err != nil {
		return nil, translate(err, "profile")
	}
	return collect(rows, "profile", func(row pgx.Row) (*flows.HalfHourReading, error) {
		var r flows.HalfHourReading
		err := row.Scan(&r.At, &r.ImportWh, &r.ExportWh)
		r.At = r.At.UTC()
		return &r, err
	})
}

// Longest spans the intervals query serves in one call.
const (
	maxHalfHourSpan = 31 * 24 * time.Hour
	maxDaySpan      = 366 * 24 * time.Hour
)

// Intervals returns a meter's consumption per half hour or per UTC day in
// [from, to), for element A (the single element on single-element meters)
// and, where the meter reports it, B: every bucket of the range, with nil
// kWh where nothing could be derived, so gaps show. from and to must fall
// on the bucket's boundaries; EINVALID naming the field otherwise.
func (s *Store) Intervals(ctx context.Context, meterID string, from, to time.Time, bucket flows.Bucket) ([]flows.IntervalPoint, error) {
	step, span := 30*time.Minute, maxHalfHourSpan
	switch bucket {
	case flows.BucketHalfHour:
	case flows.BucketDay:
		step, span = 24*time.Hour, maxDaySpan
	default:
		return nil, flows.FieldError("bucket", "%q is not hh or day", bucket)
	}
	from, to = from.UTC(), to.UTC()
	switch {
	case !from.Equal(from.Truncate(step)):
		return nil, flows.FieldError("from", "%s does not start a %s", from.Format(time.RFC3339), bucketName(bucket))
	case !to.Equal(to.Truncate(step)):
		return nil, flows.FieldError("to", "%s does not start a %s", to.Format(time.RFC3339), bucketName(bucket))
	case !to.After(from):
		return nil, flows.FieldError("to", "must be after from")
	case to.Sub(from) > span:
		return nil, flows.FieldError("to", "at most %d days after from for bucket %s", int(span/(24*time.Hour)), bucket)
	}
	// The records and the B register, in one round trip; the deltas are
	// taken here (profileDeltas: flows.profile_deltas' rule, which a test
	// holds equal) — the SQL function's window, sort and join cost a
	// meter-month 13 ms against 1 ms for reading its records.
	b := &pgx.Batch{}
	b.Queue(`SELECT "timestamp", status, non_monotonic, import_a_wh, export_a_wh, import_b_wh, export_b_wh
		FROM flows.meter_profile WHERE meter_id = $1 AND "timestamp" >= $2 AND "timestamp" <= $3::timestamptz + interval '30 minutes'
		ORDER BY "timestamp"`, meterID, from, to)
	b.Queue(`SELECT element::text, start_time FROM flows.meter_registers WHERE meter_id = $1 AND status = 'enabled'`, meterID)
	// A three-phase meter's half hours come from its interval profile
	// (flows.three_phase_deltas, kWh), a meter having one or the other.
	b.Queue(`SELECT "timestamp", import_kwh, export_kwh FROM flows.three_phase_deltas($1, $2, $3)`, meterID, from, to)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	rows, err := br.Query()
	if err != nil {
		return nil, translate(err, "intervals")
	}
	recs, err := collect(rows, "intervals", func(row pgx.Row) (*storedRecord, error) {
		var r storedRecord
		err := row.Scan(&r.at, &r.status, &r.nonMonotonic, &r.importA, &r.exportA, &r.importB, &r.exportB)
		return &r, err
	})
	if err != nil {
		return nil, err
	}
	// Each element's half hours are expected from its register's
	// commissioning on (flows.register_expected_from, the completeness
	// rule); the zero time: from always (no start time, or no register).
	var expectedFrom [2]time.Time
	var registerB bool
	regs, err := br.Query()
	if err != nil {
		return nil, translate(err, "intervals")
	}
	seen := [2]bool{}
	for regs.Next() {
		var element string
		var start *time.Time
		if err := regs.Scan(&element, &start); err != nil {
			regs.Close()
			return nil, translate(err, "intervals")
		}
		e := 0
		if element == string(flows.ElementB) {
			e, registerB = 1, true
		}
		var since time.Time
		if start != nil {
			since = expectedFromOf(*start)
		}
		if !seen[e] || since.Before(expectedFrom[e]) {
			expectedFrom[e], seen[e] = since, true
		}
	}
	regs.Close()
	if err := regs.Err(); err != nil {
		return nil, translate(err, "intervals")
	}
	n := int(to.Sub(from) / step)
	type sum struct {
		imp, exp *decimal.Decimal
		n        int
	}
	sums := [2][]sum{make([]sum, n), make([]sum, n)}
	add := func(to **decimal.Decimal, v *decimal.Decimal) {
		switch {
		case v == nil:
		case *to == nil:
			*to = v
		default:
			t := (*to).Add(*v)
			*to = &t
		}
	}
	count := func(e int, start time.Time, imp, exp *decimal.Decimal) {
		k := int(start.Sub(from) / step)
		if k < 0 || k >= n {
			return
		}
		add(&sums[e][k].imp, imp)
		add(&sums[e][k].exp, exp)
		if imp != nil {
			sums[e][k].n++
		}
	}
	hasB := registerB
	for _, d := range profileDeltas(recs, from, to) {
		e := 0
		if d.element == "B" {
			e, hasB = 1, true
		}
		count(e, d.start, kwhOf(d.importWh), kwhOf(d.exportWh))
	}
	tp, err := br.Query()
	if err != nil {
		return nil, translate(err, "intervals")
	}
	for tp.Next() {
		var at time.Time
		var imp, exp *decimal.Decimal
		if err := tp.Scan(&at, &imp, &exp); err != nil {
			tp.Close()
			return nil, translate(err, "intervals")
		}
		count(0, at, imp, exp)
	}
	tp.Close()
	if err := tp.Err(); err != nil {
		return nil, translate(err, "intervals")
	}
	elements := []string{"A"}
	if hasB {
		elements = append(elements, "B")
	}
	out := make([]flows.IntervalPoint, 0, len(elements)*n)
	for e, el := range elements {
		for k, v := range sums[e] {
			start := from.Add(time.Duration(k) * step)
			out = append(out, flows.IntervalPoint{Start: start, Element: el, ImportKWh: v.imp, ExportKWh: v.exp,
				HalfHours: v.n, Expected: expectedIn(start, step, expectedFrom[e])})
		}
	}
	return out, nil
}

// expectedFromOf is flows.register_expected_from: a register's start time
// rounded up to a half hour (one on a half hour stays).
func expectedFromOf(start time.Time) time.Time {
	return start.UTC().Add(-time.Microsecond).Truncate(30 * time.Minute).Add(30 * time.Minute)
}

// expectedIn counts the half hours of the bucket [start, start+step) at or
// after since: all of them for a register commissioned before it, none
// for one commissioned after it.
func expectedIn(start time.Time, step time.Duration, since time.Time) int {
	end := start.Add(step)
	switch {
	case !since.After(start):
		return int(step / (30 * time.Minute))
	case !since.Before(end):
		return 0
	}
	return int(end.Sub(since) / (30 * time.Minute))
}

// storedRecord is a meter_profile row as profileDeltas reads it.
type storedRecord struct {
	at                                 time.Time
	status                             int32
	nonMonotonic                       bool
	importA, exportA, importB, exportB *int64
}

// delta is one element's Wh over the half hour from start.
type delta struct {
	element            string
	start              time.Time
	importWh, exportWh *int64
}

// profileDeltas is flows.profile_deltas (migration 0013) over records
// read in [from, to + 30 min], oldest first: for every two usable records
// half an hour apart whose half hour starts in [from, to), element A's
// import and export Wh, and B's where the later record reads B; a reading
// lower than the one before (a counter reset) gives nil, never a negative.
// TestProfileDeltasMatchSQL holds the two equal.
func profileDeltas(recs []storedRecord, from, to time.Time) []delta {
	usable := func(r storedRecord) bool {
		return flows.ProfileRecord{Status: uint16(r.status)}.Usable() && !r.nonMonotonic
	}
	diff := func(cur, prev *int64) *int64 {
		if cur == nil || prev == nil || *cur < *prev {
			return nil
		}
		d := *cur - *prev
		return &d
	}
	var out []delta
	for i := 1; i < len(recs); i++ {
		prev, cur := recs[i-1], recs[i]
		start := prev.at.UTC()
		if !cur.at.Equal(prev.at.Add(30*time.Minute)) || start.Before(from) || !start.Before(to) || !usable(prev) || !usable(cur) {
			continue
		}
		out = append(out, delta{element: "A", start: start, importWh: diff(cur.importA, prev.importA), exportWh: diff(cur.exportA, prev.exportA)})
		if cur.importB != nil || cur.exportB != nil {
			out = append(out, delta{element: "B", start: start, importWh: diff(cur.importB, prev.importB), exportWh: diff(cur.exportB, prev.exportB)})
		}
	}
	return out
}

func bucketName(b flows.Bucket) string {
	if b == flows.BucketDay {
		return "UTC day"
	}
	return "half hour"
}

func kwhOf(wh *int64) *decimal.Decimal {
	if wh == nil {
		return nil
	}
	d := decimal.New(*wh, -3)
	return &d
}

// Completeness returns the share of a meter's expected half hours derived
// over the last 7 and 30 complete UTC days (flows.meter_interval_completeness).
func (s *Store) Completeness(ctx context.Context, meterID string) (flows.Completeness, error) {
	var c flows.Completeness
	err := s.pool.QueryRow(ctx, `SELECT complete_7d, complete_30d FROM flows.meter_interval_completeness WHERE meter_id = $1`, meterID).
		Scan(&c.Last7Days, &c.Last30Days)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, nil // no enabled register: nothing expected
	}
	return c, translate(err, "completeness")
}
