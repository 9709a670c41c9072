package postgres_test

import (
	"context"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"
)

// seedSQL returns the SQL examples of the Meter Domain specification, in
// order, exactly as written there.
func seedSQL(t *testing.T) []string { return seedSQLB(t) }

func seedSQLB(t testing.TB) []string {
	t.Helper()
	doc, err := os.ReadFile("testdata/seed-meter-domain.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		out = append(out, m[1])
	}
	if len(out) != 6 {
		t.Fatalf("the seed has %d SQL examples; this test knows 6 — cover the new ones", len(out))
	}
	return out
}

func seedBlock(t *testing.T, blocks []string, marker string) string {
	t.Helper()
	for _, b := range blocks {
		if strings.Contains(b, marker) {
			return b
		}
	}
	t.Fatalf("no seed SQL example contains %q", marker)
	return ""
}

type seedFixture struct {
	esco, otherESCO   string
	statusMeter       string // EML2137580826: 40 days of half-hourly balance history
	now               time.Time
	historyBalances   map[time.Time]decimal.Decimal
	offline5h, off30h string
}

// loadSeedFixture builds a small fleet shaped like the seed's examples.
func loadSeedFixture(t *testing.T, pool *pgxpool.Pool) seedFixture {
	t.Helper()
	ctx := context.Background()
	var f seedFixture
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	q := func(sql string, args ...any) string {
		t.Helper()
		var id string
		if err := pool.QueryRow(ctx, sql, args...).Scan(&id); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return id
	}
	f.esco = q(`INSERT INTO flows.escos (code, name) VALUES ('WLCE', 'Water Lilies Community Energy') RETURNING id`)
	f.otherESCO = q(`INSERT INTO flows.escos (code, name) VALUES ('HMCE', 'Hill Mill Community Energy') RETURNING id`)
	newMeter := func(serial, name, ip, mode, esco string) string {
		return q(`INSERT INTO flows.meter_registry (serial, name, ip_address, mode, esco, hardware)
			VALUES ($1, $2, $3, $4, $5, 'C1.w') RETURNING id`, serial, name, ip, mode, esco)
	}
	f.statusMeter = newMeter("EML2137580826", "Plot 12", "10.8.0.12", "active", f.esco)
	newMeter("EML2137580001", "Plot 01", "10.8.0.1", "active", f.esco)
	newMeter("EML2137580002", "Plot 02 twin", "10.8.0.2", "passive", f.esco)
	newMeter("EML2137589999", "Elsewhere", "10.9.0.1", "active", f.otherESCO)
	low1 := newMeter("EML2137580003", "Plot 03", "10.8.0.3", "active", f.esco)
	low2 := newMeter("EML2137580004", "Plot 04", "10.8.0.4", "active", f.esco)
	edge := newMeter("EML2137580005", "Plot 05", "10.8.0.5", "active", f.esco)
	f.offline5h = newMeter("EML2137580006", "Plot 06", "10.8.0.6", "active", f.esco)
	f.off30h = newMeter("EML2137580007", "Plot 07", "10.8.0.7", "active", f.esco)

	exec(`UPDATE flows.meter_shadows SET balance = 3.5 WHERE id = $1`, low1)
	exec(`UPDATE flows.meter_shadows SET balance = 4.99999 WHERE id = $1`, low2)
	exec(`UPDATE flows.meter_shadows SET balance = 5.00 WHERE id = $1`, edge)
	exec(`UPDATE flows.meter_shadows SET balance = 12.34, emergency_credit = 15, health = 'healthy', csq = 21 WHERE id = $1`, f.statusMeter)

	// Signal history: the 5-hour meter answered last 5 hours ago and has
	// failed since (csq NULL); the other last answered 30 hours ago.
	f.now = time.Now().UTC().Truncate(time.Second)
	exec(`INSERT INTO flows.meter_csq (meter_id, "timestamp", csq) VALUES ($1, $2, 14), ($1, $3, NULL)`,
		f.offline5h, f.now.Add(-5*time.Hour), f.now.Add(-time.Hour))
	exec(`INSERT INTO flows.meter_csq (meter_id, "timestamp", csq) VALUES ($1, $2, 9)`, f.off30h, f.now.Add(-30*time.Hour))

	// 40 days of half-hourly balances for the status meter, falling by a
	// penny and a bit each half hour, with top-ups every 5 days.
	f.historyBalances = map[time.Time]decimal.Decimal{}
	var ts []time.Time
	var bal []decimal.Decimal
	b := decimal.RequireFromString("20.00000")
	for k := 40*48 - 1; k >= 0; k-- {
		at := f.now.Add(-time.Duration(k)*30*time.Minute - time.Minute)
		if k%240 == 0 {
			b = b.Add(decimal.NewFromInt(10))
		}
		b = b.Sub(decimal.RequireFromString("0.01234"))
		ts = append(ts, at)
		bal = append(bal, b)
		f.historyBalances[at] = b
	}
	exec(`INSERT INTO flows.meter_prepay_balance (meter_id, "timestamp", balance, emergency_credit)
		SELECT $1, t, b, 15 FROM unnest($2::timestamptz[], $3::numeric[]) AS x(t, b)`, f.statusMeter, ts, bal)
	// Writing the shadow's balance above appended one more history row, at
	// the time of that update.
	var at time.Time
	if err := pool.QueryRow(ctx, `SELECT balance_updated_at FROM flows.meter_shadows WHERE id = $1`, f.statusMeter).Scan(&at); err != nil {
		t.Fatal(err)
	}
	f.historyBalances[at.UTC()] = decimal.RequireFromString("12.34")
	return f
}

// TestSeedExamples runs every SQL example of the seed verbatim (placeholders
// replaced by real ids) and checks it returns what the seed describes.
func TestSeedExamples(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	f := loadSeedFixture(t, pool)
	blocks := seedSQL(t)
	fill := func(sql string) string {
		return strings.NewReplacer("{{esco_id}}", f.esco, "{{meter_id}}", f.statusMeter).Replace(sql)
	}

	t.Run("active meters for an ESCO", func(t *testing.T) {
		rows, err := pool.Query(ctx, fill(seedBlock(t, blocks, "Find all active meters for an ESCO")))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for rows.Next() {
			var id, serial, name string
			var ip netip.Prefix
			if err := rows.Scan(&id, &serial, &name, &ip); err != nil {
				t.Fatal(err)
			}
			names = append(names, name+"@"+ip.Addr().String())
		}
		want := "Plot 01@10.8.0.1,Plot 03@10.8.0.3,Plot 04@10.8.0.4,Plot 05@10.8.0.5,Plot 06@10.8.0.6,Plot 07@10.8.0.7,Plot 12@10.8.0.12"
		if got := strings.Join(names, ","); got != want {
			t.Errorf("active meters of the ESCO, by name:\n got %s\nwant %s (no passive twin, no other ESCO)", got, want)
		}
	})

	t.Run("7-day balance history", func(t *testing.T) {
		rows, err := pool.Query(ctx, fill(seedBlock(t, blocks, "INTERVAL '7 days'")))
		if err != nil {
			t.Fatal(err)
		}
		var n int
		var prev time.Time
		for rows.Next() {
			var ts time.Time
			var b, ec decimal.Decimal
			if err := rows.Scan(&ts, &b, &ec); err != nil {
				t.Fatal(err)
			}
			ts = ts.UTC()
			if n > 0 && !ts.Before(prev) {
				t.Errorf("rows not newest first: %v after %v", ts, prev)
			}
			if want := f.historyBalances[ts]; !b.Equal(want) {
				t.Errorf("balance at %v = %s, want %s", ts, b, want)
			}
			if ts.Before(f.now.Add(-7 * 24 * time.Hour)) {
				t.Errorf("row at %v is older than 7 days", ts)
			}
			prev = ts
			n++
		}
		if n != 7*48+1 {
			t.Errorf("got %d rows, want %d half-hourly readings in 7 days and the shadow update", n, 7*48+1)
		}
	})

	t.Run("low balance under £5", func(t *testing.T) {
		rows, err := pool.Query(ctx, seedBlock(t, blocks, "meters_low_balance"))
		if err != nil {
			t.Fatal(err)
		}
		var serials []string
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			serials = append(serials, vals[1].(string))
		}
		if got := strings.Join(serials, ","); got != "EML2137580003,EML2137580004" {
			t.Errorf("meters under £5 = %s, want EML2137580003,EML2137580004 (5.00 is not under 5)", got)
		}
	})

	t.Run("offline recently", func(t *testing.T) {
		rows, err := pool.Query(ctx, seedBlock(t, blocks, "meters_offline_recently"))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var serial string
			var last time.Time
			var minutes decimal.Decimal
			if err := rows.Scan(&serial, &last, &minutes); err != nil {
				t.Fatal(err)
			}
			if !last.Equal(f.now.Add(-5 * time.Hour)) {
				t.Errorf("%s last_online = %v, want the last non-NULL csq at %v", serial, last, f.now.Add(-5*time.Hour))
			}
			if m := minutes.IntPart(); m < 300 || m > 305 {
				t.Errorf("%s minutes_offline = %s, want about 300", serial, minutes)
			}
			got = append(got, serial)
		}
		if strings.Join(got, ",") != "EML2137580006" {
			t.Errorf("recently offline = %v, want only EML2137580006 (30 h ago is not recent)", got)
		}
	})

	t.Run("meter status", func(t *testing.T) {
		var serial, name, health string
		var bal decimal.Decimal
		var csq int
		var updated time.Time
		err := pool.QueryRow(ctx, seedBlock(t, blocks, "WHERE mr.serial = 'EML2137580826'")).
			Scan(&serial, &name, &bal, &health, &csq, &updated)
		if err != nil {
			t.Fatal(err)
		}
		if serial != "EML2137580826" || name != "Plot 12" || !bal.Equal(decimal.RequireFromString("12.34")) || health != "healthy" || csq != 21 {
			t.Errorf("status = %s %s %s %s %d", serial, name, bal, health, csq)
		}
	})

	t.Run("daily balance summary", func(t *testing.T) {
		rows, err := pool.Query(ctx, fill(seedBlock(t, blocks, "Daily balance summary")))
		if err != nil {
			t.Fatal(err)
		}
		type agg struct {
			min, max, sum decimal.Decimal
			n             int64
		}
		want := map[string]*agg{}
		cut := f.now.Add(-30 * 24 * time.Hour)
		for ts, b := range f.historyBalances {
			if !ts.After(cut) {
				continue
			}
			d := ts.Format("2006-01-02")
			a := want[d]
			if a == nil {
				a = &agg{min: b, max: b}
				want[d] = a
			}
			a.min, a.max, a.sum, a.n = decimal.Min(a.min, b), decimal.Max(a.max, b), a.sum.Add(b), a.n+1
		}
		var days int
		var prev time.Time
		for rows.Next() {
			var day time.Time
			var mn, mx, avg decimal.Decimal
			if err := rows.Scan(&day, &mn, &mx, &avg); err != nil {
				t.Fatal(err)
			}
			if days > 0 && !day.Before(prev) {
				t.Errorf("days not newest first")
			}
			prev = day
			days++
			w := want[day.Format("2006-01-02")]
			if w == nil {
				t.Errorf("unexpected day %v", day)
				continue
			}
			wantAvg := w.sum.DivRound(decimal.NewFromInt(w.n), 8)
			if !mn.Equal(w.min) || !mx.Equal(w.max) || !avg.Round(8).Equal(wantAvg) {
				t.Errorf("%s: min/max/avg = %s/%s/%s, want %s/%s/%s", day.Format("2006-01-02"), mn, mx, avg, w.min, w.max, wantAvg)
			}
		}
		if days != len(want) {
			t.Errorf("got %d days, want %d", days, len(want))
		}
	})
}
