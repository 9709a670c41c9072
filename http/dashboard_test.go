package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/command"
	flowshttp "github.com/flows-energy/flows/http"
	"github.com/flows-energy/flows/internal/aptget"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/sim"
	"github.com/flows-energy/flows/syncer"
	"github.com/riverqueue/river"
	"github.com/shopspring/decimal"
)

// chromium finds Debian's chromium, installing it when missing and allowed.
func chromium(t *testing.T) string {
	t.Helper()
	return aptget.Program(t, "chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser")
}

// artifacts is where screenshots go ($FLOWS_TEST_ARTIFACTS, or a
// per-user directory under the system temp dir).
func artifacts(t *testing.T) string {
	dir := os.Getenv("FLOWS_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), fmt.Sprintf("flows-test-artifacts-%d", os.Getuid()))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestDashboardInBrowser(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	store := postgres.NewStore(pool)
	start := time.Now().UTC().Truncate(time.Second)
	clock := sim.NewScaledClock(start, 1)
	specs := sim.GenerateFleet(3, sim.FleetOptions{AddressPrefix: "127.111", Secret: []byte("ui")})
	var ms []*sim.Meter
	for _, s := range specs {
		ms = append(ms, sim.NewMeter(s, start))
	}
	fleet := sim.NewFleet(ms, clock, nil)
	if err := fleet.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer fleet.Stop()
	if _, err := store.CreateESCO(ctx, "UI", "Dashboard"); err != nil {
		t.Fatal(err)
	}
	var nm []flows.NewMeter
	for _, m := range fleet.Meters() {
		nm = append(nm, flows.NewMeter{Serial: m.Spec.Serial, Name: m.Spec.Name, IPAddress: m.Spec.IPAddress, Port: m.Spec.Port, Hardware: m.Spec.Hardware})
	}
	if _, err := store.ImportMeters(ctx, "UI", nm, nil); err != nil {
		t.Fatal(err)
	}
	transport, _ := meterconn.New(meterconn.Config{Attempts: 1})
	// A few syncs spread over the last hours give the charts points, and
	// one three days ago is in the 7-day range but not the last 24 h.
	for _, h := range []int{72, 4, 3, 2, 1, 0} {
		at := start.Add(-time.Duration(h) * time.Hour)
		eng, err := syncer.New(syncer.Config{Store: store, Meters: transport, Now: func() time.Time { return at },
			NewQueue: func(c *river.Config) (syncer.JobQueue, error) { return store.NewQueueClient(c) }})
		if err != nil {
			t.Fatal(err)
		}
		all, _ := store.Meters(ctx, flows.MeterFilter{})
		for _, m := range all {
			if _, err := eng.SyncMeter(ctx, m.ID, syncer.OnDemand); err != nil {
				t.Fatal(err)
			}
		}
	}
	pusher := command.New(command.Config{Store: store, Meters: transport, PollEvery: 200 * time.Millisecond})
	if err := pusher.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pusher.Stop(context.Background()) }()
	srv := flowshttp.NewServer(flowshttp.Config{Addr: "127.0.0.1:0", Store: store, JWTSecret: secret,
		SyncNow: syncNow(t, store)})
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Stop(context.Background()) }()
	base := "http://" + srv.Addr()
	reportMismatches(t, base)

	b := newBrowser(t, base, 1400, 1800)
	bctx := b.ctx
	step, text, shot, submit, poll := b.step, b.text, b.shot, b.click, b.poll
	tok := token(t, flowshttp.RoleOperator, "")
	serial := fleet.Meters()[1].Spec.Serial
	b.login(tok)
	step("fleet page", chromedp.WaitVisible(chromedp.CSS(`#overview [data-count="meters"]`)), chromedp.WaitVisible(chromedp.CSS("a.meter-link")))
	if m, h := text(`#overview [data-count="meters"] b`), text(`#overview [data-count="healthy"] b`); m != "3" || h != "3" {
		t.Errorf("fleet counts: %s meters, %s healthy; want 3 and 3", m, h)
	}
	shot("dashboard-fleet.png")
	step("search terms", chromedp.SetValue(chromedp.CSS("#search"), serial))
	submit("search", "#filters button")
	// The filtered page replaces this one: one row, the meter searched for.
	poll("search results", fmt.Sprintf(`location.search.includes("q=") && document.querySelectorAll("#meters tbody tr").length === 1 && !!document.querySelector('a.meter-link[href="/meters/%s"]')`, serial))
	submit("open a meter", fmt.Sprintf(`a.meter-link[href="/meters/%s"]`, serial))
	step("meter page", chromedp.WaitVisible(chromedp.CSS("#balance-chart canvas")))
	// The chart draws the points the API gives for the range (7 days by
	// default): one per sync, six.
	apiPointsIn := func(query string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/api/v1/meters/"+serial+"/balance?"+query, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Points []json.RawMessage `json:"points"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 {
			t.Fatalf("balance history: %d %v", resp.StatusCode, err)
		}
		return len(body.Points)
	}
	apiPoints := func(since time.Duration) int {
		t.Helper()
		return apiPointsIn("from=" + time.Now().UTC().Add(-since).Format(time.RFC3339))
	}
	points, err := chromedp.Run(bctx, chromedp.Evaluate[int](`flowsCharts["balance-chart"].points`))
	if want := apiPoints(7 * 24 * time.Hour); err != nil || points != want || want != 6 {
		t.Errorf("7-day balance chart has %d points (%v); the API gives %d for the range, want 6 (one per sync)", points, err, want)
	}
	if n, _ := chromedp.Run(bctx, chromedp.Evaluate[int](`flowsCharts["csq-chart"].points`)); n < 5 {
		t.Errorf("signal chart has %d points", n)
	}
	// The balance axis fits the balances (all well above the emergency-credit
	// limit of -£15 here): the limit is named under the chart, not drawn at
	// the foot of a flat line; the time axis spans the readings.
	fit, _ := chromedp.Run(bctx, chromedp.Evaluate[bool](`(() => { const c = flowsCharts["balance-chart"], u = c.plot;
		const ys = u.data[1], lo = Math.min(...ys), hi = Math.max(...ys);
		return !c.guideShown && u.scales.y.min > -15 && u.scales.y.min <= lo && u.scales.y.max >= hi && u.scales.x.min <= u.data[0][0]; })()`))
	if !fit {
		t.Error("balance chart's axes do not fit its data")
	}
	// Its time axis reads as the rest of the page does: UTC days ("3 Dec")
	// and 24-hour times, never uPlot's US "12/3" or "3am".
	ticks, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`flowsCharts["balance-chart"].plot.axes[0]._values || []`))
	tickRE := regexp.MustCompile(`^(\d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)|[0-2]\d:[0-5]\d)$`)
	if err != nil || len(ticks) < 2 {
		t.Errorf("balance chart's time axis has ticks %q (%v)", ticks, err)
	}
	for _, tk := range ticks {
		if !tickRE.MatchString(tk) {
			t.Errorf("balance chart's time axis tick %q, want a day (3 Dec) or a 24-hour time (15:00)", tk)
		}
	}
	if note := text("#balance-chart-note"); !strings.Contains(note, "emergency credit limit: −£15.00") {
		t.Errorf("note under the balance chart: %q", note)
	}
	// The range picker reloads the page with the range in the URL.
	submit("24 h range", `#range a[href*="range=24h"]`)
	poll("24 h chosen", `location.search.includes("range=24h") && document.querySelector("#range b").textContent === "24 h" && !!window.flowsCharts["balance-chart"]`)
	// ... and draws what the API gives for the last 24 h: the sync three
	// days ago is gone.
	points, err = chromedp.Run(bctx, chromedp.Evaluate[int](`flowsCharts["balance-chart"].points`))
	if want := apiPoints(24 * time.Hour); err != nil || points != want || want != 5 {
		t.Errorf("24 h balance chart has %d points (%v); the API gives %d for the range, want 5", points, err, want)
	}
	if xmin, err := chromedp.Run(bctx, chromedp.Evaluate[float64](`flowsCharts["balance-chart"].plot.scales.x.min`)); err != nil ||
		time.Unix(int64(xmin), 0).Before(time.Now().Add(-25*time.Hour)) {
		t.Errorf("24 h chart's time axis starts at %v (%v), want within the last 24 h", time.Unix(int64(xmin), 0).UTC(), err)
	}
	shot("dashboard-meter.png")

	// Drag across the chart to zoom into the middle of its time axis (real
	// mouse events); a double click shows the whole range again.
	span := func() float64 {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[float64](`(() => { const x = flowsCharts["balance-chart"].plot.scales.x; return x.max - x.min; })()`))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	whole := span()
	var box struct{ Left, Top, Width, Height float64 }
	if err := json.Unmarshal([]byte(b.eval(`JSON.stringify((r => ({left: r.left, top: r.top, width: r.width, height: r.height}))(document.querySelector("#balance-chart .u-over").getBoundingClientRect()))`)), &box); err != nil {
		t.Fatal(err)
	}
	y := box.Top + box.Height/2
	step("drag to zoom", chromedp.MouseEvent(chromedp.MousePressed, box.Left+box.Width*0.2, y, chromedp.ButtonLeft, chromedp.ClickCount(1)),
		chromedp.MouseEvent(chromedp.MouseMoved, box.Left+box.Width*0.4, y, chromedp.ButtonLeft, func(p *input.DispatchMouseEventParams) { p.Buttons = 1 }),
		chromedp.MouseEvent(chromedp.MouseMoved, box.Left+box.Width*0.6, y, chromedp.ButtonLeft, func(p *input.DispatchMouseEventParams) { p.Buttons = 1 }),
		chromedp.MouseEvent(chromedp.MouseReleased, box.Left+box.Width*0.6, y, chromedp.ButtonLeft, chromedp.ClickCount(1)))
	if zoomed := span(); zoomed > whole*0.45 || zoomed < whole*0.35 {
		t.Errorf("dragging across 40%% of the chart left %.0f s of its %.0f s time axis, want about 40%%", zoomed, whole)
	}
	step("double-click to reset", chromedp.DoubleClick(chromedp.CSS("#balance-chart .u-over")))
	if reset := span(); reset != whole {
		t.Errorf("after a double click the time axis spans %.0f s, want the whole %.0f s again", reset, whole)
	}

	// A custom range of whole days through the form: the day of the sync
	// three days ago holds that one reading, as the API says.
	old := start.Add(-72 * time.Hour).Format("2006-01-02")
	step("custom range", chromedp.SetValue(chromedp.CSS("#range-from"), old), chromedp.SetValue(chromedp.CSS("#range-to"), old))
	submit("show the range", "#range-form button")
	poll("custom range chosen", `location.search.includes("from=`+old+`") && !!window.flowsCharts["balance-chart"]`)
	dayAfter := start.Add(-48 * time.Hour).Format("2006-01-02")
	if points, want := b.num(`flowsCharts["balance-chart"].points`), apiPointsIn("from="+old+"T00:00:00Z&to="+dayAfter+"T00:00:00Z"); points != want || want != 1 {
		t.Errorf("balance chart of %s has %d points; the API gives %d for the day, want 1", old, points, want)
	}
	if v := b.eval(`document.querySelector("#range-from").value + " " + document.querySelector("#range-to").value + " " + (document.querySelector("#range b") ? "a span chosen" : "no span chosen")`); v != old+" "+old+" no span chosen" {
		t.Errorf("the range form after choosing %s to %s reads %q", old, old, v)
	}

	// Schedule a future tariff through the form and watch its request
	// move on as the pusher works.
	// The form starts from the tariff the meter has and its next midnight.
	mst, err := store.MeterStatus(ctx, serial)
	if err != nil || mst.Shadow.TariffsActive == nil || mst.Shadow.TariffsActive.UnitRateElementA == nil {
		t.Fatalf("active tariff of %s: %v", serial, err)
	}
	prefilled, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById("unit_rate_element_a").value`))
	activation, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById("activation_datetime").value`))
	if want := mst.Shadow.TariffsActive.UnitRateElementA.String(); prefilled != want {
		t.Errorf("unit rate A prefilled %q, want the active %s", prefilled, want)
	}
	if at, err := time.Parse("2006-01-02T15:04:05", activation); err != nil || !at.After(time.Now().UTC().Add(-24*time.Hour)) || at.Hour() != 0 || at.Minute() != 0 {
		t.Errorf("activation prefilled %q, want the next midnight", activation)
	}
	act := time.Now().UTC().Add(72 * time.Hour).Format("2006-01-02T15:04:05")
	step("tariff form", chromedp.SetValue(chromedp.CSS("#unit_rate_element_a"), "0.31111"), chromedp.SetValue(chromedp.CSS("#activation_datetime"), act))
	submit("schedule a tariff", "#tariff-form button")
	step("tariff scheduled", chromedp.WaitVisible(chromedp.CSS("#flash")), chromedp.WaitVisible(chromedp.CSS("#requests td.status")))
	if msg := text("#flash"); !strings.Contains(msg, "waiting to be sent") {
		t.Errorf("the page said %q, want the request waiting to be sent", msg)
	}
	poll("request verified", `document.querySelector("#requests td.status") && document.querySelector("#requests td.status").dataset.status === "verified"`)
	if st := text("#requests td.status"); st != "on the meter, confirmed" {
		t.Errorf("verified request reads %q", st)
	}
	shot("dashboard-tariff.png")
	// The writes the push made are in the meter's audit trail, with who
	// asked and what the meter said.
	step("audit trail", chromedp.Navigate(base+"/meters/"+serial), chromedp.WaitVisible(chromedp.CSS("#audit-list")))
	if a := text("#audit-list"); !strings.Contains(a, "tariff request") || !strings.Contains(a, "accepted") || !strings.Contains(a, "tester-operator") {
		t.Errorf("audit trail after a verified tariff push reads %q", a)
	}
	if st := fleet.Meters()[1].State(clock.Now()); st.Future.RateA() != 31111 {
		t.Errorf("the meter's future rate is %d, want 31111", st.Future.RateA())
	}
	// A top-up through the form: listed at once, waiting, and turning to
	// "credited on the meter" on the page by itself as the pusher works.
	vend, err := sim.VendToken(serial, fleet.Meters()[1].Spec.Key, decimal.RequireFromString("5.00"))
	if err != nil {
		t.Fatal(err)
	}
	step("token", chromedp.SetValue(chromedp.CSS("#topup-token"), vend), chromedp.SetValue(chromedp.CSS("#topup-amount"), "5.00"))
	submit("top up", "#token-form button")
	step("top-up listed", chromedp.WaitVisible(chromedp.CSS("#topup-list td.status")))
	poll("top-up credited", `document.querySelector("#topup-list td.status").dataset.status === "completed"`)
	if st := text("#topup-list td.status"); st != "credited on the meter" {
		t.Errorf("the completed top-up reads %q", st)
	}
	if l := text("#topup-list"); !strings.Contains(l, "Balance increased") || !strings.Contains(l, "tester-operator") {
		t.Errorf("top-up list %q, want the top-up's note and who asked", l)
	}
	if a := text("#topup-list tr:nth-child(2) td:nth-child(2)"); a != "£5.00" {
		t.Errorf("the top-up's amount reads %q, want £5.00 as entered", a)
	}
	shot("dashboard-topup.png")
	// A bad value is refused with the field named, on the page.
	step("bad rate", chromedp.SetValue(chromedp.CSS("#unit_rate_element_a"), "1.5"), chromedp.SetValue(chromedp.CSS("#activation_datetime"), act))
	submit("submit a bad rate", "#tariff-form button")
	step("refusal shown", chromedp.WaitVisible(chromedp.CSS("#flash")))
	if msg := text("#flash"); !strings.Contains(msg, "unit_rate_element_a") {
		t.Errorf("refusal says %q, want the field named", msg)
	}
	step("views", chromedp.Navigate(base+"/views"), chromedp.WaitVisible(chromedp.CSS("#low-balance")))
	shot("dashboard-views.png")

	// The self-disconnection report lists a period the meter had.
	m0, err := store.MeterBySerial(ctx, fleet.Meters()[0].Spec.Serial)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO flows.meter_self_disconnections (meter_id, started_at, ended_at, source) VALUES ($1, $2, $3, 'events')`,
		m0.ID, start.Add(-30*time.Hour), start.Add(-27*time.Hour)); err != nil {
		t.Fatal(err)
	}
	step("self-disconnections", chromedp.Navigate(base+"/reports/self-disconnections"), chromedp.WaitVisible(chromedp.CSS("#report-summary")))
	if n, h := text("#report-count"), text("#report-hours"); n != "1" || !strings.HasPrefix(h, "3") {
		t.Errorf("self-disconnection report: %s periods, %s hours; want 1 of 3 hours", n, h)
	}
	if l := text("main"); !strings.Contains(l, m0.Serial) {
		t.Errorf("the report does not name the meter %s:\n%s", m0.Serial, l)
	}
	shot("dashboard-self-disconnections.png")

	// A rollout's page follows it as the pusher sends its tariff.
	body, _ := json.Marshal(map[string]any{"esco": "UI", "rate_per_minute": 600, "tariff": map[string]any{"standing_charge": "0.55", "unit_rate_element_a": "0.31",
		"unit_rate_element_b": "0.16", "prepayment_emergency_credit": "15", "prepayment_ecredit_availability": "10", "prepayment_debt_recovery_rate": "0.25",
		"activation_datetime": start.Add(96 * time.Hour).Format("2006-01-02T15:04:05")}})
	req, _ := http.NewRequest("POST", base+"/api/v1/rollouts", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ro struct {
		ID string `json:"id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&ro)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || ro.ID == "" {
		t.Fatalf("rollout: %d %+v", resp.StatusCode, ro)
	}
	step("rollout page", chromedp.Navigate(base+"/rollouts/"+ro.ID), chromedp.WaitVisible(chromedp.CSS("#rollout-status")))
	if p := text("#rollout-progress"); !strings.Contains(p, "of 3 meters confirmed") {
		t.Errorf("rollout progress reads %q, want its three meters counted", p)
	}
	shot("dashboard-rollout.png")

	// An unknown meter: a 404 inside the layout, the header still saying
	// who is logged in.
	sctx, cancel404 := context.WithTimeout(bctx, 30*time.Second)
	r404, err := chromedp.RunResponse(sctx, chromedp.Navigate(base+"/meters/EML9999999999"))
	cancel404()
	if err != nil || r404 == nil || r404.Status != http.StatusNotFound {
		t.Errorf("unknown meter: %+v %v, want 404", r404, err)
	}
	step("404 page", chromedp.WaitVisible(chromedp.CSS("#error")), chromedp.WaitVisible(chromedp.CSS("#who")))
	if e := text("#error"); !strings.Contains(e, "EML9999999999") {
		t.Errorf("the 404 says %q, want the serial asked for", e)
	}
	shot("dashboard-404.png")
	submit("log out", "#logout")
	step("logged out", chromedp.WaitVisible(chromedp.CSS("#login")))
}
