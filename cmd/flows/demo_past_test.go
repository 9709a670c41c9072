package main_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// The demo's past joins its present: every active meter's last seeded
// balance and its first live one differ by no more than what the meter
// used between them; every top-up in the charts' data is a ledger row or a
// credit event; the twin database's shadows follow the primary's.
func TestDemoPastAndTwins(t *testing.T) {
	dataDir, err := os.MkdirTemp("", "flows-demo-past-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dataDir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dataDir) })
	cmd, rf, out := startDemo(t, dataDir, "--meters", "12")
	defer stopDemo(t, cmd, out)

	// Wait for the first live sync of every answering active meter: a
	// balance row newer than the seeded past (whose last reading is at a
	// half hour).
	const liveRows = `SELECT count(*) FROM flows.meter_registry r WHERE r.mode = 'active' AND EXISTS (
		SELECT 1 FROM flows.meter_prepay_balance b WHERE b.meter_id = r.id AND extract(second FROM b."timestamp") <> 0)`
	const answering = `SELECT count(*) FROM flows.meter_registry r JOIN flows.meter_shadows s ON s.id = r.id WHERE r.mode = 'active' AND s.health = 'healthy'`
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		live, _ := psql(t, rf.DatabaseURL, liveRows)
		healthy, _ := psql(t, rf.DatabaseURL, answering)
		if live != "0" && live == healthy {
			break
		}
	}
	// For each meter: the last seeded reading, the first live one, and
	// what the meter's import register says it used in between.
	rows, err := psql(t, rf.DatabaseURL, `
		WITH seeded AS (SELECT DISTINCT ON (b.meter_id) b.meter_id, b."timestamp" AS at, b.balance FROM flows.meter_prepay_balance b
			WHERE extract(second FROM b."timestamp") = 0 ORDER BY b.meter_id, b."timestamp" DESC),
		live AS (SELECT DISTINCT ON (b.meter_id) b.meter_id, b."timestamp" AS at, b.balance FROM flows.meter_prepay_balance b
			WHERE extract(second FROM b."timestamp") <> 0 ORDER BY b.meter_id, b."timestamp")
		SELECT r.serial, s.balance, l.balance, extract(epoch FROM l.at - s.at)
		FROM seeded s JOIN live l USING (meter_id) JOIN flows.meter_registry r ON r.id = s.meter_id`)
	if err != nil || rows == "" {
		t.Fatalf("no seeded and live balances to compare: %v %q", err, rows)
	}
	for _, line := range strings.Split(rows, "\n") {
		f := strings.Split(line, "|")
		before, after, secs := decimal.RequireFromString(f[1]), decimal.RequireFromString(f[2]), decimal.RequireFromString(f[3])
		// At most 10 kW at £0.30/kWh and the standing charge over the
		// gap: far below a top-up, far above a rounding error.
		most := secs.Div(decimal.NewFromInt(3600)).Mul(decimal.RequireFromString("3.1"))
		if used := before.Sub(after); used.IsNegative() || used.GreaterThan(most) {
			t.Errorf("%s: seeded £%s, first live £%s %ss later: a jump, not consumption", f[0], before, after, f[3])
		}
	}
	// Every completed top-up of the seeded past has its credit event.
	orphans, _ := psql(t, rf.DatabaseURL, `SELECT count(*) FROM flows.topups t WHERE t.status = 'completed' AND NOT EXISTS (
		SELECT 1 FROM flows.meter_event_log e WHERE e.meter_id = t.meter_id AND e.event_type = 48
		AND abs(extract(epoch FROM e."timestamp" - t.used_at)) < 600)`)
	if orphans != "0" {
		t.Errorf("%s ledger top-ups without the meter's credit event", orphans)
	}
	// The twins follow their active meters.
	if rf.TwinDatabaseURL == "" || len(rf.Twins) == 0 {
		t.Fatalf("ready-file has no twin database: %+v", rf)
	}
	shadow := `SELECT coalesce(s.balance::text, '-') || '|' || coalesce(s.csq::text, '-') || '|' || coalesce(s.tariffs_active::text, '-')
		FROM flows.meter_shadows s JOIN flows.meter_registry r ON r.id = s.id WHERE r.serial = '` + rf.Twins[0] + `'`
	var primary, twin string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		primary, _ = psql(t, rf.DatabaseURL, shadow)
		twin, _ = psql(t, rf.TwinDatabaseURL, shadow)
		if primary == twin && !strings.HasPrefix(twin, "-") {
			break
		}
	}
	if primary != twin || strings.HasPrefix(twin, "-") {
		t.Errorf("twin %s: primary %q, twin %q", rf.Twins[0], primary, twin)
	}
	if mode, _ := psql(t, rf.TwinDatabaseURL, "SELECT mode FROM flows.meter_registry WHERE serial = '"+rf.Twins[0]+"'"); mode != "passive" {
		t.Errorf("twin %s is %q in the twin database", rf.Twins[0], mode)
	}
}
