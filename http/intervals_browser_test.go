package http_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	flowshttp "github.com/flows-energy/flows/http"
)

// In a browser: the meter page draws the last 30 days as bars (a missing
// day marked, not a zero bar) and the chosen day's half hours as lines
// broken where half hours are missing, with the gap shaded; the day form
// picks another day; the SMIP links download the day's files; the fleet
// page shows each meter's completeness.
func TestIntervalChartsInBrowser(t *testing.T) {
	browser := chromium(t)
	a := newAPI(t)
	day := intervalFixture(t, a)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()), chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(1400, 2200))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	step := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(bctx, 45*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	num := func(expr string) int {
		t.Helper()
		n, err := chromedp.Run(bctx, chromedp.Evaluate[int](expr))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return n
	}
	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return v
	}
	shot := func(name string) {
		t.Helper()
		buf, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		p := filepath.Join(artifacts(t), name)
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s", p)
	}
	open := func(what, path, ready string) {
		t.Helper()
		sctx, cancel := context.WithTimeout(bctx, 30*time.Second)
		defer cancel()
		if _, err := chromedp.RunResponse(sctx, chromedp.Navigate(a.base+path)); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		step(what, chromedp.WaitVisible(chromedp.CSS(ready)))
	}

	tok := token(t, flowshttp.RoleReadonly, "")
	// The first action starts the browser, which lives as long as the
	// context of that action: bctx, not a step's.
	if err := chromedp.Do(bctx, chromedp.Navigate(a.base+"/")); err != nil {
		t.Fatal(err)
	}
	step("login page", chromedp.WaitVisible(chromedp.CSS("#login")))
	step("log in", chromedp.SetValue(chromedp.CSS("#token"), tok))
	if _, err := chromedp.RunResponse(bctx, chromedp.Click(chromedp.CSS("#login-btn"))); err != nil {
		t.Fatal(err)
	}

	// The fleet page: completeness per meter, "–" where none is expected.
	step("fleet page", chromedp.WaitVisible(chromedp.CSS("a.meter-link")))
	cells := func(serial string) string {
		return eval(fmt.Sprintf(`(() => { const h = [...document.querySelectorAll("#meters thead th")].map(th => th.textContent);
			const tr = document.querySelector('a.meter-link[href="/meters/%s"]').closest("tr");
			return tr.cells[h.indexOf("intervals 7 d")].textContent + " " + tr.cells[h.indexOf("30 d")].textContent; })()`, serial))
	}
	for serial, want := range map[string]string{"EML1100000001": "13.1% 3.1%", "EML1100000002": "14.3% 3.3%", "EML2200000001": "– –"} {
		if got := cells(serial); got != want {
			t.Errorf("fleet page, %s: completeness %q, want %q", serial, got, want)
		}
	}
	shot("intervals-fleet.png")

	// A single-element meter, yesterday by default: 44 half hours drawn
	// in two runs, the 4 missing ones shaded between them; the cursor over
	// a missing half hour says so.
	open("meter page", "/meters/EML1100000001", "#profile-chart canvas")
	if g, runs, pts := num(`flowsCharts["profile-chart"].missing`), num(`flowsCharts["profile-chart"].runs.import`), num(`flowsCharts["profile-chart"].drawn.import`); g != 4 || runs != 2 || pts != 44 {
		t.Errorf("profile: %d gaps, %d import runs, %d points; want 4, 2 and 44", g, runs, pts)
	}
	if s := eval(`flowsCharts["profile-chart"].series.join(",")`); s != "import" {
		t.Errorf("profile series %q: an all-zero export is drawn", s)
	}
	if gap := eval(`flowsCharts["profile-chart"].missingAt[0]`); !strings.HasSuffix(gap, "T04:30:00Z") {
		t.Errorf("first gap %q, want 04:30", gap)
	}
	if v := eval(`flowsCharts["profile-chart"].legendAt(9).join(",")`); v != "missing" {
		t.Errorf("the cursor over 04:30 shows %q, want missing", v)
	}
	if v := eval(`flowsCharts["profile-chart"].legendAt(0).join(",")`); !strings.HasSuffix(v, " kWh") {
		t.Errorf("the cursor over 00:00 shows %q, want its kWh", v)
	}
	// The balance chart's one reading gets a day around it on the time
	// axis, not years.
	if span := num(`(() => { const x = flowsCharts["balance-chart"].plot.scales.x; return Math.round(x.max - x.min); })()`); span <= 0 || span > 86400 {
		t.Errorf("one balance reading spans %d s of time axis, want a day", span)
	}
	// Yesterday is a bar (a partial day: 44 of 48); the 29 days before it
	// have nothing, marked as missing, not drawn as zero.
	if bars, miss := num(`flowsCharts["daily-chart"].drawn.import`), num(`flowsCharts["daily-chart"].missing`); bars != 1 || miss != 29 {
		t.Errorf("daily chart: %d bars, %d missing days; want 1 and 29", bars, miss)
	}
	if v := eval(`flowsCharts["daily-chart"].legendAt(29).join(",")`); !strings.Contains(v, "4.4 kWh (44 of 48 half hours)") {
		t.Errorf("the cursor over yesterday's bar shows %q", v)
	}
	// The highest bar spans most of the plot's height.
	if h := num(`Math.round(flowsCharts["daily-chart"].barHeight(0, 29) / flowsCharts["daily-chart"].plot.bbox.height * window.devicePixelRatio * 100)`); h < 85 {
		t.Errorf("the day's bar is %d%% of the plot's height, want about 90", h)
	}
	if c := eval(`document.querySelector("#complete-7d").textContent + " " + document.querySelector("#complete-30d").textContent`); c != "13.1% 3.1%" {
		t.Errorf("meter page completeness %q", c)
	}
	ymd := day.Format("2006-01-02")
	if href := eval(`[...document.querySelectorAll("a.smip-link")].map(a => a.getAttribute("href")).join(" ")`); href != "/meters/EML1100000001/intervals.csv?day="+ymd {
		t.Errorf("SMIP link %q", href)
	}
	shot("intervals-meter.png")

	// The link downloads the API's file, with the dashboard session.
	req, _ := http.NewRequest("GET", a.base+"/meters/EML1100000001/intervals.csv?day="+ymd, nil)
	req.AddCookie(session(t, a.base, tok))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), `"created_at","EML1100000001","EML1100000001_rev"`+"\r\n") || strings.Count(string(body), "\r\n") != 49 {
		t.Errorf("dashboard SMIP download: %d %.120q", resp.StatusCode, body)
	}

	// Another day through the form: nothing stored, every half hour a gap.
	step("choose a day", chromedp.SetValue(chromedp.CSS("#profile-day"), day.AddDate(0, 0, -2).Format("2006-01-02")))
	if _, err := chromedp.RunResponse(bctx, chromedp.Click(chromedp.CSS("#day-form button"))); err != nil {
		t.Fatal(err)
	}
	step("the chosen day", chromedp.WaitVisible(chromedp.CSS("#profile-chart canvas")))
	if g, runs := num(`flowsCharts["profile-chart"].missing`), num(`flowsCharts["profile-chart"].runs.import || 0`); g != 48 || runs != 0 {
		t.Errorf("an empty day: %d gaps, %d lines; want 48 and none", g, runs)
	}
	if m := eval(`document.querySelector("#profile-missing").textContent`); m != "48" {
		t.Errorf("missing count %q", m)
	}

	// A twin-element meter: import A and B, export A (B exports nothing),
	// no gap; a file per element.
	open("twin meter page", "/meters/EML1100000002?day="+ymd, "#profile-chart canvas")
	if imp, exp, g := num(`flowsCharts["profile-chart"].runs.import`), num(`flowsCharts["profile-chart"].runs.export`), num(`flowsCharts["profile-chart"].missing`); imp != 2 || exp != 1 || g != 0 {
		t.Errorf("twin profile: %d import lines, %d export lines, %d gaps; want 2, 1 and 0", imp, exp, g)
	}
	if links := eval(`[...document.querySelectorAll("a.smip-link")].map(a => a.textContent).join(" ")`); links != fmt.Sprintf("EML1100000002-A-%s.csv EML1100000002-B-%s.csv", day.Format("20060102"), day.Format("20060102")) {
		t.Errorf("twin SMIP links %q", links)
	}
	shot("intervals-twin.png")

	// At 1,280 px (a laptop) and on a phone (390 px wide): the fleet and
	// meter pages fit the screen's width (wide tables scroll inside their
	// panels) and the charts are drawn within it.
	step("laptop", chromedp.EmulateViewport(1280, 800))
	for _, path := range []string{"/", "/meters/EML1100000002?day=" + ymd} {
		open("1,280 px "+path, path, "main")
		if w := num(`document.documentElement.scrollWidth - window.innerWidth`); w > 1 {
			t.Errorf("at 1,280 px, %s is %d px wider than the screen", path, w)
		}
	}
	step("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	for _, path := range []string{"/", "/meters/EML1100000002?day=" + ymd} {
		open("phone "+path, path, "main")
		if w := num(`document.documentElement.scrollWidth - window.innerWidth`); w > 1 {
			t.Errorf("on a phone, %s is %d px wider than the screen", path, w)
		}
	}
	if w := num(`Math.round(document.querySelector("#profile-chart canvas").getBoundingClientRect().right - window.innerWidth)`); w > 0 {
		t.Errorf("on a phone, the profile chart runs %d px past the screen", w)
	}
	shot("dashboard-phone-meter.png")
}
