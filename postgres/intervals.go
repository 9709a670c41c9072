package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/flows-energy/flows"
	"github.com/jackc/pgx/v5"
)

// StoreProfile records a meter's profile-log records and derives the
// intervals they complete, in one transaction. A record merges with what
// is stored for its half hour (log 1 and log 2 fill different readings;
// reading a half hour again changes nothing). Records that cannot be kept
// (not a half hour, in the future) are left out and returned, named; the
// others are stored. It returns how many intervals were derived.
func (s *Store) StoreProfile(ctx context.Context, meterID string, recs []flows.ProfileRecord) (int, []string, error) {
	now := s.now()
	var bad []string
	var first, last time.Time
	b := &pgx.Batch{}
	for _, r := range recs {
		if err := r.Validate(now); err != nil {
			bad = append(bad, err.Error())
			continue
		}
		at := r.At.UTC()
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
		b.Queue(`INSERT INTO flows.meter_profile (meter_id, "timestamp", status, import_a_wh, import_b_wh, export_a_wh, export_b_wh)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (meter_id, "timestamp") DO UPDATE SET status = EXCLUDED.status, read_at = now(),
				import_a_wh = coalesce(EXCLUDED.import_a_wh, meter_profile.import_a_wh),
				import_b_wh = coalesce(EXCLUDED.import_b_wh, meter_profile.import_b_wh),
				export_a_wh = coalesce(EXCLUDED.export_a_wh, meter_profile.export_a_wh),
				export_b_wh = coalesce(EXCLUDED.export_b_wh, meter_profile.export_b_wh)`,
			meterID, at, int(r.Status), wh(r.ImportA), wh(r.ImportB), wh(r.ExportA), wh(r.ExportB))
	}
	if b.Len() == 0 {
		return 0, bad, nil
	}
	var derived int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return translate(err, "profile records")
		}
		// The interval ending at the first record starts half an hour before.
		return tx.QueryRow(ctx, `SELECT flows.derive_register_intervals($1, $2, $3)`, meterID, first.Add(-30*time.Minute), last).Scan(&derived)
	})
	if err != nil {
		return 0, bad, translate(err, "profile records")
	}
	return derived, bad, nil
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
