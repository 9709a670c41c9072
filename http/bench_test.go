package http_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	flowshttp "github.com/flows-energy/flows/http"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/postgres"
)

// BenchmarkAPI: 10,000 meters in the database. GET /api/v1/meters/{serial}
// paced at 500 requests/s (goal p99 < 10 ms), and the meter list the
// dashboard loads (goal < 300 ms server time).
//
//	go test -run '^$' -bench API -benchtime 1x ./http/
func BenchmarkAPI(b *testing.B) {
	ctx := context.Background()
	pool := pgtest.NewPool(b)
	store := postgres.NewStore(pool)
	if _, err := pool.Exec(ctx, `INSERT INTO flows.escos (code, name) VALUES ('BIG', 'Big')`); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO flows.meter_registry (serial, name, ip_address, esco, hardware)
		SELECT 'EML' || (4000000000 + g)::text, 'Plot ' || g, ('10.' || (g / 65536) || '.' || (g / 256 % 256) || '.' || (g % 256))::inet,
		       (SELECT id FROM flows.escos), 'EMA1.w' FROM generate_series(1, 10000) g`); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE flows.meter_shadows SET balance = 10 + random() * 20, csq = 15, health = 'healthy'`); err != nil {
		b.Fatal(err)
	}
	// Interval data as a fleet collecting profiles has it: a register per
	// meter, 35 days of daily counts (what the completeness columns read).
	if _, err := pool.Exec(ctx, `INSERT INTO flows.meter_registers (meter_id, element) SELECT id, 'SINGLE' FROM flows.meter_registry`); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO flows.register_interval_day (register_id, day, half_hours, kwh)
		SELECT register_id, (now() AT TIME ZONE 'UTC')::date - k, 40 + (random() * 8)::int, 5 FROM flows.meter_registers, generate_series(1, 35) k`); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE flows.meter_registers, flows.register_interval_day`); err != nil {
		b.Fatal(err)
	}
	srv := flowshttp.NewServer(flowshttp.Config{Addr: "127.0.0.1:0", Store: store, JWTSecret: secret})
	if err := srv.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = srv.Stop(context.Background()) }()
	tok, err := flowshttp.IssueToken(secret, "bench", flowshttp.RoleReadonly, "", time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	get := func(path string) time.Duration {
		req, _ := http.NewRequest("GET", "http://"+srv.Addr()+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 32<<10)
		for {
			if _, err := resp.Body.Read(buf); err != nil {
				break
			}
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("%s: %d", path, resp.StatusCode)
		}
		return time.Since(t0)
	}
	for b.Loop() {
		const rate, seconds = 500, 6
		var mu sync.Mutex
		var lat []time.Duration
		var wg sync.WaitGroup
		tick := time.NewTicker(time.Second / rate)
		for i := range rate * seconds {
			<-tick.C
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := get(fmt.Sprintf("/api/v1/meters/EML%d", 4000000001+i%10000))
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}()
		}
		wg.Wait()
		tick.Stop()
		slices.Sort(lat)
		p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
		var list []time.Duration
		for range 20 {
			list = append(list, get("/api/v1/meters?limit=1000"))
		}
		slices.Sort(list)
		// The dashboard's meter list page renders every meter (10,000 rows).
		var pageTimes []time.Duration
		var pageBytes int
		ck := session(b, "http://"+srv.Addr(), tok)
		for range 10 {
			req, _ := http.NewRequest("GET", "http://"+srv.Addr()+"/", nil)
			req.AddCookie(ck)
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			pageTimes = append(pageTimes, time.Since(t0))
			pageBytes = len(body)
			if resp.StatusCode != 200 || strings.Count(string(body), `class="meter-link"`) != 10000 {
				b.Fatalf("meter list page: %d, %d rows", resp.StatusCode, strings.Count(string(body), `class="meter-link"`))
			}
		}
		first := pageTimes[0] // the fleet's interval completeness read, not yet kept
		slices.Sort(pageTimes)
		fmt.Printf("dashboard meter list page, 10,000 meters (%d KB): median %.0f ms, worst %.0f ms, first %.0f ms (goal < 300 ms)\n",
			pageBytes/1024, float64(pageTimes[len(pageTimes)/2].Microseconds())/1000, float64(pageTimes[len(pageTimes)-1].Microseconds())/1000,
			float64(first.Microseconds())/1000)
		b.ReportMetric(float64(pageTimes[len(pageTimes)/2].Microseconds())/1000, "ms-list-page")
		b.ReportMetric(float64(p99.Microseconds())/1000, "ms-p99-meter")
		b.ReportMetric(float64(list[len(list)/2].Microseconds())/1000, "ms-list")
		fmt.Printf("API with 10,000 meters: GET /meters/{serial} at %d/s: p50 %.2f ms, p99 %.2f ms (goal < 10 ms); meter list (1,000 rows): median %.1f ms, worst %.1f ms (goal < 300 ms)\n",
			rate, float64(p50.Microseconds())/1000, float64(p99.Microseconds())/1000,
			float64(list[len(list)/2].Microseconds())/1000, float64(list[len(list)-1].Microseconds())/1000)
	}
}
