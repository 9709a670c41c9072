package postgres

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
)

// MeterRows lists meters with a shadow summary, filtered like Meters, in
// one query. Staleness uses the balance syncer's interval.
func (s *Store) MeterRows(ctx context.Context, f flows.MeterFilter) ([]flows.MeterRow, error) {
	where, args, err := meterWhere(f)
	if err != nil {
		return nil, err
	}
	freq, balanceSynced, err := s.balanceFrequency(ctx)
	if err != nil {
		return nil, err
	}
	// last_online by the rule of flows.meter_last_online (and so of the
	// meters_offline_* views), the newest non-NULL csq reading, as the
	// shadow keeps it (migration 0028).
	q := `SELECT ` + meterColumns + `, ms.balance, ms.health::text, ms.csq, (ms.synced_at ->> 'balance')::timestamptz, ms.last_online_at
		FROM flows.meter_registry mr
		LEFT JOIN flows.escos e ON e.id = mr.esco
		JOIN flows.meter_shadows ms ON ms.id = mr.id` + where + ` ORDER BY ` + meterOrder(f.Sort) + pageClause(f, &args)
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, translate(err, "meters")
	}
	defer rows.Close()
	out := []flows.MeterRow{}
	now := s.now()
	for rows.Next() {
		var r flows.MeterRow
		var ip, health *string
		var mode string
		if err := rows.Scan(&r.ID, &r.Serial, &r.Name, &ip, &r.Port, &r.Hardware, &mode, &r.ESCO, &r.ESCOCode,
			&r.SingleMeterApp, &r.DaylightSavingsCorrectionEnabled, &r.PrepayEnabled, &r.FirmwareVersion, &r.CreatedAt, &r.UpdatedAt,
			&r.Balance, &health, &r.CSQ, &r.BalanceAt, &r.LastOnline); err != nil {
			return nil, err
		}
		r.Mode = flows.Mode(mode)
		if ip != nil {
			if a, err := netip.ParseAddr(*ip); err == nil {
				r.IPAddress = &a
			}
		}
		if health != nil {
			h := flows.Health(*health)
			r.Health = &h
		}
		if r.Mode == flows.ModeActive && balanceSynced && !emop.IsThreePhase(r.Hardware) { // no balance to read
			r.Stale = flows.Stale(r.BalanceAt, r.CreatedAt, freq, now)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// meterOrders are the SQL of flows.MeterSorts. Every order ends with the
// serial, so pages do not overlap.
var meterOrders = map[string]string{
	"name":        "mr.name %s NULLS LAST",
	"serial":      "mr.serial %s",
	"esco":        "e.code %s NULLS LAST",
	"balance":     "ms.balance %s NULLS LAST",
	"health":      "ms.health %s NULLS LAST",
	"csq":         "ms.csq %s NULLS LAST",
	"last_online": "ms.last_online_at %s NULLS LAST",
}

// meterOrder is the ORDER BY of a validated sort ("" by name).
func meterOrder(sort string) string {
	dir := "ASC"
	if rest, ok := strings.CutPrefix(sort, "-"); ok {
		sort, dir = rest, "DESC"
	}
	o, ok := meterOrders[sort]
	if !ok {
		o = meterOrders["name"]
	}
	return fmt.Sprintf(o, dir) + ", mr.serial " + dir
}

// CountMeters counts the meters f matches, ignoring its page: the fleet
// page's "of N".
func (s *Store) CountMeters(ctx context.Context, f flows.MeterFilter) (int, error) {
	where, args, err := meterWhere(f)
	if err != nil {
		return 0, err
	}
	// Join only what the filters read: every meter has a shadow (a
	// trigger makes it), so the count is the same, and unfiltered it is a
	// scan of the registry alone.
	from := ` FROM flows.meter_registry mr`
	if strings.Contains(where, "e.code") {
		from += ` LEFT JOIN flows.escos e ON e.id = mr.esco`
	}
	if strings.Contains(where, "ms.") {
		from += ` JOIN flows.meter_shadows ms ON ms.id = mr.id`
	}
	var n int
	err = s.pool.QueryRow(ctx, `SELECT count(*)`+from+where, args...).Scan(&n)
	return n, translate(err, "meters")
}

// balanceFrequency returns how often balances are read, and false when
// the balance syncer is disabled (then no balance is stale: none is due).
func (s *Store) balanceFrequency(ctx context.Context) (flows.Frequency, bool, error) {
	freqs, err := s.SyncerFrequencies(ctx)
	if err != nil {
		return "", false, err
	}
	f, ok := freqs[flows.GroupSyncer("balance")]
	return f, ok, nil
}

// FleetSummaries counts meters by state per ESCO (escoCode "" = every
// ESCO). A meter is stale by the rule of flows.Stale, applied to its
// balance: the cut-off is computed here and compared in SQL. Offline is
// offlineSQL, so the counts are one scan of the fleet.
func (s *Store) FleetSummaries(ctx context.Context, escoCode string) ([]flows.FleetSummary, error) {
	freq, balanceSynced, err := s.balanceFrequency(ctx)
	if err != nil {
		return nil, err
	}
	var cutoff *time.Time
	if balanceSynced {
		c := s.now().Add(-freq.StaleAfter())
		cutoff = &c
	}
	rows, err := s.pool.Query(ctx, `
		SELECT coalesce(e.code, ''), count(*),
		       count(*) FILTER (WHERE r.mode = 'active'), count(*) FILTER (WHERE r.mode = 'passive'),
		       count(*) FILTER (WHERE r.mode = 'active' AND s.health = 'healthy'),
		       count(*) FILTER (WHERE r.mode = 'active' AND s.health = 'unhealthy'),
		       count(*) FILTER (WHERE `+offlineSQL("s")+`),
		       count(*) FILTER (WHERE r.mode = 'active' AND r.ip_address IS NOT NULL AND
		           coalesce((s.synced_at ->> 'balance')::timestamptz, r.created_at) < $2::timestamptz),
		       count(*) FILTER (WHERE s.balance < 5)
		FROM flows.meter_registry r JOIN flows.meter_shadows s ON s.id = r.id LEFT JOIN flows.escos e ON e.id = r.esco
		WHERE $1 = '' OR lower(e.code) = lower($1)
		GROUP BY 1 ORDER BY 1`, escoCode, cutoff)
	if err != nil {
		return nil, translate(err, "fleet summary")
	}
	defer rows.Close()
	out := []flows.FleetSummary{}
	for rows.Next() {
		var f flows.FleetSummary
		if err := rows.Scan(&f.ESCO, &f.Meters, &f.Active, &f.Passive, &f.Healthy, &f.Unhealthy, &f.Offline, &f.Stale, &f.LowBalance); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// SignalHistory returns csq and voltage readings in [from, to), oldest first.
func (s *Store) SignalHistory(ctx context.Context, meterID string, from, to time.Time) ([]flows.SignalPoint, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT "timestamp", csq, NULL::numeric FROM flows.meter_csq WHERE meter_id = $1 AND "timestamp" >= $2 AND "timestamp" < $3
		UNION ALL
		SELECT "timestamp", NULL, voltage FROM flows.meter_voltage WHERE meter_id = $1 AND "timestamp" >= $2 AND "timestamp" < $3
		ORDER BY 1 LIMIT 20000`, meterID, from, to)
	if err != nil {
		return nil, translate(err, "signal history")
	}
	defer rows.Close()
	out := []flows.SignalPoint{}
	for rows.Next() {
		var p flows.SignalPoint
		if err := rows.Scan(&p.Timestamp, &p.CSQ, &p.Voltage); err != nil {
			return nil, err
		}
		p.Timestamp = p.Timestamp.UTC()
		out = append(out, p)
	}
	return out, rows.Err()
}

// HealthCounts counts active meters by health ("unknown" before a sync).
func (s *Store) HealthCounts(ctx context.Context) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT coalesce(s.health::text, 'unknown'), count(*) FROM flows.meter_registry r
		JOIN flows.meter_shadows s ON s.id = r.id WHERE r.mode = 'active' GROUP BY 1`)
	if err != nil {
		return nil, translate(err, "health counts")
	}
	defer rows.Close()
	out := map[string]int{"healthy": 0, "unhealthy": 0, "unknown": 0}
	for rows.Next() {
		var h string
		var n int
		if err := rows.Scan(&h, &n); err != nil {
			return nil, err
		}
		out[h] = n
	}
	return out, rows.Err()
}

// QueueDepth counts job-queue jobs by state.
func (s *Store) QueueDepth(ctx context.Context) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT state::text, count(*) FROM `+QueueSchema+`.river_job GROUP BY 1`)
	if err != nil {
		return nil, translate(err, "queue depth")
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}
