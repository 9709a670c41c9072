package http_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	flowshttp "github.com/flows-energy/flows/http"
	"github.com/prometheus/client_golang/prometheus"
)

// intervalFixture gives newAPI's meters a profile for yesterday (UTC):
// EML1100000001 (single element) imports 100 Wh a half hour from 1,000
// Wh and exports nothing (its export register reads 5 Wh), but the
// records of 05:00, 05:30 and 06:00 are missing, so the half hours
// 04:30-06:00 (4) have no interval; EML1100000002 (twin element) has
// all 48 on A (50 Wh each from 2,000, exporting 10 Wh each) and on B (20 Wh
// each from 500). EML2200000001 has no register. It returns yesterday.
func intervalFixture(t testing.TB, a *api) time.Time {
	t.Helper()
	ctx := context.Background()
	day := flows.UTCDay(time.Now()).AddDate(0, 0, -1)
	u := func(v int) *uint32 { n := uint32(v); return &n }
	for serial, elements := range map[string][]flows.Element{"EML1100000001": {flows.ElementSingle}, "EML1100000002": {flows.ElementA, flows.ElementB}} {
		m, err := a.store.MeterBySerial(ctx, serial)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range elements {
			if _, err := a.store.AddRegister(ctx, m.ID, e, false); err != nil {
				t.Fatal(err)
			}
		}
		var recs []flows.ProfileRecord
		for i := range 49 { // 00:00 to the next 00:00: 48 intervals
			r := flows.ProfileRecord{At: day.Add(time.Duration(i) * 30 * time.Minute), Status: flows.ProfileValidData}
			if serial == "EML1100000001" {
				if i >= 10 && i <= 12 {
					continue
				}
				r.ImportA, r.ExportA = u(1000+100*i), u(5)
			} else {
				r.ImportA, r.ExportA, r.ImportB, r.ExportB = u(2000+50*i), u(10*i), u(500+20*i), u(0)
			}
			recs = append(recs, r)
		}
		if _, bad, err := a.store.StoreProfile(ctx, m.ID, recs); err != nil || len(bad) > 0 {
			t.Fatalf("profile of %s: %v %v", serial, err, bad)
		}
	}
	return day
}

// The intervals resource: half hours by default (the previous UTC day),
// nil where nothing was derived, per element on a twin-element meter, UTC
// days, the meter's completeness; days or instants as the range.
func TestIntervalsAPI(t *testing.T) {
	a := newAPI(t)
	day := intervalFixture(t, a)
	ro := token(t, flowshttp.RoleReadonly, "")
	code, p := a.do("GET", "/api/v1/meters/EML1100000001/intervals", ro, nil)
	if code != 200 || p["bucket"] != "hh" || p["from"] != day.Format(time.RFC3339) || p["to"] != day.AddDate(0, 0, 1).Format(time.RFC3339) {
		t.Fatalf("default intervals: %d bucket %v from %v to %v", code, p["bucket"], p["from"], p["to"])
	}
	pts := p["points"].([]any)
	var missing []string
	for _, x := range pts {
		pt := x.(map[string]any)
		at, _ := time.Parse(time.RFC3339, pt["start"].(string))
		switch {
		case pt["element"] != "A":
			t.Errorf("single-element meter's point for element %v", pt["element"])
		case pt["import_kwh"] == nil:
			missing = append(missing, at.Format("15:04"))
		case pt["import_kwh"] != "0.1" || pt["export_kwh"] != "0":
			t.Errorf("%s: import %v export %v, want 0.1 and 0", at.Format("15:04"), pt["import_kwh"], pt["export_kwh"])
		}
	}
	if len(pts) != 48 || strings.Join(missing, " ") != "04:30 05:00 05:30 06:00" {
		t.Errorf("%d half hours, missing %v; want 48, missing 04:30-06:00", len(pts), missing)
	}
	comp := p["completeness"].(map[string]any)
	if comp["last_7_days"] != "0.131" || comp["last_30_days"] != "0.0306" { // 44 of 7 × 48; of 30 × 48
		t.Errorf("completeness %v, want 0.131 and 0.0306", comp)
	}

	// Days, asked for as days: to names the last day, included.
	d := day.Format("2006-01-02")
	code, p = a.do("GET", "/api/v1/meters/EML1100000001/intervals?bucket=day&from="+d+"&to="+d, ro, nil)
	if code != 200 || len(p["points"].([]any)) != 1 {
		t.Fatalf("one day: %d %v", code, p)
	}
	if pt := p["points"].([]any)[0].(map[string]any); pt["import_kwh"] != "4.4" || pt["half_hours"] != 44.0 || pt["expected"] != 48.0 {
		t.Errorf("the day: %v, want 4.4 kWh from 44 of 48 half hours", pt)
	}
	// The default day range is the last 30 complete days.
	if code, p = a.do("GET", "/api/v1/meters/EML1100000001/intervals?bucket=day", ro, nil); code != 200 || len(p["points"].([]any)) != 30 ||
		p["to"] != day.AddDate(0, 0, 1).Format(time.RFC3339) {
		t.Errorf("default days: %d, %v points to %v", code, len(p["points"].([]any)), p["to"])
	}

	// A twin-element meter has A and B; RFC 3339 instants work as well.
	q := fmt.Sprintf("?from=%s&to=%s", day.Add(6*time.Hour).Format(time.RFC3339), day.Add(8*time.Hour).Format(time.RFC3339))
	code, p = a.do("GET", "/api/v1/meters/EML1100000002/intervals"+q, ro, nil)
	if code != 200 {
		t.Fatalf("twin: %d %v", code, p)
	}
	got := map[string]string{}
	for _, x := range p["points"].([]any) {
		pt := x.(map[string]any)
		got[pt["element"].(string)] += fmt.Sprintf("%v/%v ", pt["import_kwh"], pt["export_kwh"])
	}
	if got["A"] != "0.05/0.01 0.05/0.01 0.05/0.01 0.05/0.01 " || got["B"] != "0.02/0 0.02/0 0.02/0 0.02/0 " {
		t.Errorf("twin 06:00-08:00 by element: %v", got)
	}

	for _, c := range []struct{ query, field string }{
		{"?bucket=week", "bucket"},
		{"?from=yesterday", "from"},
		{"?from=2026-02-30", "from"},
		{"?to=" + day.Add(10*time.Minute).Format(time.RFC3339), "to"}, // not a half hour
		{"?bucket=day&from=" + day.Add(time.Hour).Format(time.RFC3339), "from"},
		{"?from=" + d + "&to=" + day.AddDate(0, 0, -3).Format("2006-01-02"), "to"},
		{"?from=" + d + "&to=" + day.AddDate(0, 0, 40).Format("2006-01-02"), "to"}, // over 31 days of half hours
	} {
		if code, p := a.do("GET", "/api/v1/meters/EML1100000001/intervals"+c.query, ro, nil); code != 400 || p["field"] != c.field {
			t.Errorf("%s: %d %v, want 400 naming %s", c.query, code, p, c.field)
		}
	}
	if code, _ := a.do("GET", "/api/v1/meters/EML2200000001/intervals", token(t, flowshttp.RoleReadonly, "AAA"), nil); code != 404 {
		t.Errorf("another ESCO's meter: %d, want 404", code)
	}
}

// The SMIP file of a day, byte for byte as written by hand from the
// format; the element required on a twin-element meter, refused on a
// single-element one.
func TestIntervalsCSV(t *testing.T) {
	a := newAPI(t)
	day := intervalFixture(t, a)
	ro := token(t, flowshttp.RoleReadonly, "")
	get := func(path string) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", a.base+path, nil)
		req.Header.Set("Authorization", "Bearer "+ro)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		a.checked()
		return resp.StatusCode, resp.Header, string(b)
	}
	ymd := day.Format("20060102")
	want := `"created_at","EML1100000001","EML1100000001_rev"` + "\r\n"
	for i := range 48 {
		row := fmt.Sprintf("%d,5", 1000+100*i)
		if i >= 10 && i <= 12 {
			row = "NA,NA"
		}
		want += day.Add(time.Duration(i)*30*time.Minute).Format("2006-01-02 15:04:05") + "+0000," + row + "\r\n"
	}
	_, _, body0 := get("/api/v1/meters/EML1100000001/intervals.csv")
	for _, q := range []string{"?day=" + day.Format("2006-01-02"), "", "?element=SINGLE", "?element=A&day=" + day.Format("2006-01-02")} {
		code, h, body := get("/api/v1/meters/EML1100000001/intervals.csv" + q)
		if code != 200 || body != want {
			t.Errorf("%s: %d\n%q\nwant\n%q", q, code, body, want)
		}
		if h.Get("Content-Type") != "text/csv" || h.Get("Content-Disposition") != `attachment; filename=EML1100000001-`+ymd+`.csv` {
			t.Errorf("%s: %s; %s", q, h.Get("Content-Type"), h.Get("Content-Disposition"))
		}
	}
	code, h, body := get("/api/v1/meters/EML1100000002/intervals.csv?element=B&day=" + day.Format("2006-01-02"))
	if code != 200 || !strings.HasPrefix(body, `"created_at","EML1100000002-B","EML1100000002-B_rev"`+"\r\n"+day.Format("2006-01-02")+" 00:00:00+0000,500,0\r\n") ||
		strings.Count(body, "\r\n") != 49 || !strings.Contains(h.Get("Content-Disposition"), "EML1100000002-B-"+ymd+".csv") {
		t.Errorf("twin element B: %d %s\n%.200q", code, h.Get("Content-Disposition"), body)
	}
	for _, c := range []struct{ path, field string }{
		{"/api/v1/meters/EML1100000002/intervals.csv", "element"}, // twin: which element?
		{"/api/v1/meters/EML1100000002/intervals.csv?element=SINGLE", "element"},
		{"/api/v1/meters/EML1100000001/intervals.csv?element=B", "element"},
		{"/api/v1/meters/EML1100000001/intervals.csv?day=2026-13-01", "day"},
		{"/api/v1/meters/EML1100000001/intervals.csv?day=" + day.AddDate(0, 0, 2).Format("2006-01-02"), "day"},
	} {
		if code, p := a.do("GET", c.path, ro, nil); code != 400 || p["field"] != c.field {
			t.Errorf("%s: %d %v, want 400 naming %s", c.path, code, p, c.field)
		}
	}
	// The dashboard's download is the same file, in the session's scope.
	for tok, want := range map[string]int{ro: 200, token(t, flowshttp.RoleReadonly, "BBB"): 404} {
		req, _ := http.NewRequest("GET", a.base+"/meters/EML1100000001/intervals.csv", nil)
		req.AddCookie(session(t, a.base, tok))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || (want == 200 && string(b) != body0) {
			t.Errorf("dashboard download: %d, want %d (same file: %v)", resp.StatusCode, want, string(b) == body0)
		}
	}
}

// The meter resource and the meter list carry the completeness.
func TestCompletenessInMeterResources(t *testing.T) {
	a := newAPI(t)
	intervalFixture(t, a)
	ro := token(t, flowshttp.RoleReadonly, "")
	_, m := a.do("GET", "/api/v1/meters/EML1100000002", ro, nil)
	if c, _ := m["interval_completeness"].(map[string]any); c["last_7_days"] != "0.1429" || c["last_30_days"] != "0.0333" || m["registry"] == nil {
		t.Errorf("twin meter: completeness %v", m["interval_completeness"])
	}
	_, list := a.do("GET", "/api/v1/meters", ro, nil)
	got := map[string]string{}
	for _, x := range list["meters"].([]any) {
		r := x.(map[string]any)
		c := r["interval_completeness"].(map[string]any)
		got[r["serial"].(string)] = fmt.Sprintf("%v/%v", c["last_7_days"], c["last_30_days"])
	}
	if got["EML1100000001"] != "0.131/0.0306" || got["EML1100000002"] != "0.1429/0.0333" || got["EML2200000001"] != "<nil>/<nil>" {
		t.Errorf("list completeness %v", got)
	}
}

// /metrics reports the active fleet's mean completeness per window and
// how many meters it averages (a meter without a register expects none).
func TestCompletenessMetric(t *testing.T) {
	a := newAPI(t)
	intervalFixture(t, a)
	reg := prometheus.NewRegistry()
	srv := flowshttp.NewServer(flowshttp.Config{Addr: "127.0.0.1:0", Store: a.store, JWTSecret: secret, Registry: reg})
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Stop(context.Background()) }()
	// A passive twin with a complete day counts for nothing.
	ctx := context.Background()
	twin, err := a.store.CreateMeter(ctx, flows.NewMeter{Serial: "EML1100000098", Mode: flows.ModePassive, ESCOCode: "AAA"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.AddRegister(ctx, twin.ID, flows.ElementSingle, false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.Pool().Exec(ctx, `INSERT INTO flows.register_interval_day (register_id, day, half_hours, kwh)
		SELECT register_id, (now() AT TIME ZONE 'UTC')::date - 1, 48, 1 FROM flows.meter_registers WHERE meter_id = $1`, twin.ID); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "flows_interval_completeness") {
			for _, m := range f.GetMetric() {
				got[f.GetName()+"/"+m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
			}
		}
	}
	want := map[string]float64{
		"flows_interval_completeness_ratio/7d": (0.131 + 0.1429) / 2, "flows_interval_completeness_ratio/30d": (0.0306 + 0.0333) / 2,
		"flows_interval_completeness_meters/7d": 2, "flows_interval_completeness_meters/30d": 2,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || math.Abs(g-v) > 1e-9 {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	// And the metric is served at /metrics.
	req, _ := http.NewRequest("GET", "http://"+srv.Addr()+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token(t, flowshttp.RoleAdmin, ""))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), `flows_interval_completeness_ratio{window="30d"}`) {
		t.Errorf("/metrics lacks the completeness ratio")
	}
}

// The fleet's completeness, once read (here by a scrape of /metrics),
// answers for a minute: the meter resource says what it said until then,
// and after the minute what is stored now.
func TestCompletenessKeptAMinute(t *testing.T) {
	a := newAPI(t)
	intervalFixture(t, a)
	ctx := context.Background()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	srv := flowshttp.NewServer(flowshttp.Config{Addr: "127.0.0.1:0", Store: a.store, JWTSecret: secret, Now: clock})
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Stop(context.Background()) }()
	b := &api{t: t, base: "http://" + srv.Addr(), store: a.store}
	admin := token(t, flowshttp.RoleAdmin, "")
	seven := func() any {
		t.Helper()
		_, m := b.do("GET", "/api/v1/meters/EML1100000001", admin, nil)
		return m["interval_completeness"].(map[string]any)["last_7_days"]
	}
	req, _ := http.NewRequest("GET", b.base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Two days ago becomes complete.
	if _, err := a.store.Pool().Exec(ctx, `INSERT INTO flows.register_interval_day (register_id, day, half_hours, kwh)
		SELECT r.register_id, (now() AT TIME ZONE 'UTC')::date - 2, 48, 4.8 FROM flows.meter_registers r
		JOIN flows.meter_registry m ON m.id = r.meter_id WHERE m.serial = 'EML1100000001'`); err != nil {
		t.Fatal(err)
	}
	if got := seven(); got != "0.131" {
		t.Errorf("within the minute: %v, want the scraped 0.131", got)
	}
	mu.Lock()
	now = now.Add(61 * time.Second)
	mu.Unlock()
	if got := seven(); got != "0.2738" { // 92 of 336
		t.Errorf("after the minute: %v, want 0.2738", got)
	}
}

// Half hours are expected from a register's commissioning on: before
// its start time a bucket expects none (not missing), on its first day
// only those after it, as the completeness figures count them.
func TestIntervalsExpectedFromCommissioning(t *testing.T) {
	a := newAPI(t)
	day := intervalFixture(t, a)
	ctx := context.Background()
	m, err := a.store.MeterBySerial(ctx, "EML1100000001")
	if err != nil {
		t.Fatal(err)
	}
	// commissioned at 10:10 yesterday: expected from 10:30
	if _, err := a.store.Pool().Exec(ctx, `UPDATE flows.meter_registers SET start_time = $2 WHERE meter_id = $1`, m.ID, day.Add(10*time.Hour+10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	ro := token(t, flowshttp.RoleReadonly, "")
	d := day.Format("2006-01-02")
	code, p := a.do("GET", "/api/v1/meters/EML1100000001/intervals?bucket=day&from="+day.AddDate(0, 0, -2).Format("2006-01-02")+"&to="+d, ro, nil)
	if code != 200 {
		t.Fatalf("days: %d %v", code, p)
	}
	var expected []string
	for _, x := range p["points"].([]any) {
		pt := x.(map[string]any)
		expected = append(expected, fmt.Sprintf("%v/%v", pt["half_hours"], pt["expected"]))
	}
	// 10:30 to midnight: 27 half hours expected; all 44 the meter
	// recorded are derived, those before its commissioning too.
	if strings.Join(expected, " ") != "0/0 0/0 44/27" {
		t.Errorf("days before and on commissioning, derived/expected: %v; want 0/0 0/0 44/27", expected)
	}
	code, p = a.do("GET", "/api/v1/meters/EML1100000001/intervals?from="+day.Add(9*time.Hour+30*time.Minute).Format(time.RFC3339)+"&to="+day.Add(11*time.Hour).Format(time.RFC3339), ro, nil)
	if code != 200 {
		t.Fatalf("half hours: %d %v", code, p)
	}
	expected = nil
	for _, x := range p["points"].([]any) {
		expected = append(expected, fmt.Sprint(x.(map[string]any)["expected"]))
	}
	if strings.Join(expected, " ") != "0 0 1" { // 09:30, 10:00 before; 10:30 on
		t.Errorf("half hours 09:30-11:00 expected %v, want 0 0 1", expected)
	}
}
