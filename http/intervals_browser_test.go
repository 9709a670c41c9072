package http_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	flowshttp "github.com/flows-energy/flows/http"
)

// In a browser: the meter page draws the last 30 days as bars (a missing
// day marked, not a zero bar) and the chosen day's half hours as lines
// broken where half hours are missing, with the gap shaded; the day form
// picks another day; the SMIP links download the day's files; the fleet
// page shows each meter's completeness.
func TestIntervalChartsInBrowser(t *testing.T) {
	a := newAPI(t)
	day := intervalFixture(t, a)
	b := newBrowser(t, a.base, 1400, 2200)
	tok := token(t, flowshttp.RoleReadonly, "")
	b.login(tok)

	// The fleet page: completeness per meter, "–" where none is expected.
	b.step("fleet page", chromedp.WaitVisible(chromedp.CSS("a.meter-link")))
	cells := func(serial string) string {
		return b.eval(fmt.Sprintf(`(() => { const h = [...document.querySelectorAll("#meters thead th")].map(th => th.textContent);
			const tr = document.querySelector('a.meter-link[href="/meters/%s"]').closest("tr");
			return tr.cells[h.indexOf("intervals 7 d")].textContent + " " + tr.cells[h.indexOf("30 d")].textContent; })()`, serial))
	}
	for serial, want := range map[string]string{"EML1100000001": "13.1% 3.1%", "EML1100000002": "14.3% 3.3%", "EML2200000001": "– –"} {
		if got := cells(serial); got != want {
			t.Errorf("fleet page, %s: completeness %q, want %q", serial, got, want)
		}
	}
	b.shot("intervals-fleet.png")

	// A single-element meter, yesterday by default: 44 half hours drawn
	// in two runs, the 4 missing ones shaded between them; the cursor over
	// a missing half hour says so.
	b.open("meter page", "/meters/EML1100000001", "#profile-chart canvas")
	if g, runs, pts := b.num(`flowsCharts["profile-chart"].missing`), b.num(`flowsCharts["profile-chart"].runs.import`), b.num(`flowsCharts["profile-chart"].drawn.import`); g != 4 || runs != 2 || pts != 44 {
		t.Errorf("profile: %d gaps, %d import runs, %d points; want 4, 2 and 44", g, runs, pts)
	}
	if s := b.eval(`flowsCharts["profile-chart"].series.join(",")`); s != "import" {
		t.Errorf("profile series %q: an all-zero export is drawn", s)
	}
	if gap := b.eval(`flowsCharts["profile-chart"].missingAt[0]`); !strings.HasSuffix(gap, "T04:30:00Z") {
		t.Errorf("first gap %q, want 04:30", gap)
	}
	if v := b.eval(`flowsCharts["profile-chart"].legendAt(9).join(",")`); v != "missing" {
		t.Errorf("the cursor over 04:30 shows %q, want missing", v)
	}
	if v := b.eval(`flowsCharts["profile-chart"].legendAt(0).join(",")`); !strings.HasSuffix(v, " kWh") {
		t.Errorf("the cursor over 00:00 shows %q, want its kWh", v)
	}
	// The balance chart's one reading gets a day around it on the time
	// axis, not years.
	if span := b.num(`(() => { const x = flowsCharts["balance-chart"].plot.scales.x; return Math.round(x.max - x.min); })()`); span <= 0 || span > 86400 {
		t.Errorf("one balance reading spans %d s of time axis, want a day", span)
	}
	// Yesterday is a bar (a partial day: 44 of 48); the 29 days before it
	// have nothing, marked as missing, not drawn as zero.
	if bars, miss := b.num(`flowsCharts["daily-chart"].drawn.import`), b.num(`flowsCharts["daily-chart"].missing`); bars != 1 || miss != 29 {
		t.Errorf("daily chart: %d bars, %d missing days; want 1 and 29", bars, miss)
	}
	if v := b.eval(`flowsCharts["daily-chart"].legendAt(29).join(",")`); !strings.Contains(v, "4.4 kWh (44 of 48 half hours)") {
		t.Errorf("the cursor over yesterday's bar shows %q", v)
	}
	// The highest bar spans most of the plot's height.
	if h := b.num(`Math.round(flowsCharts["daily-chart"].barHeight(0, 29) / flowsCharts["daily-chart"].plot.bbox.height * window.devicePixelRatio * 100)`); h < 85 {
		t.Errorf("the day's bar is %d%% of the plot's height, want about 90", h)
	}
	if c := b.eval(`document.querySelector("#complete-7d").textContent + " " + document.querySelector("#complete-30d").textContent`); c != "13.1% 3.1%" {
		t.Errorf("meter page completeness %q", c)
	}
	ymd := day.Format("2006-01-02")
	if href := b.eval(`[...document.querySelectorAll("a.smip-link")].map(a => a.getAttribute("href")).join(" ")`); href != "/meters/EML1100000001/intervals.csv?day="+ymd {
		t.Errorf("SMIP link %q", href)
	}
	b.shot("intervals-meter.png")

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
	b.step("choose a day", chromedp.SetValue(chromedp.CSS("#profile-day"), day.AddDate(0, 0, -2).Format("2006-01-02")))
	b.click("show the day", "#day-form button")
	b.step("the chosen day", chromedp.WaitVisible(chromedp.CSS("#profile-chart canvas")))
	if g, runs := b.num(`flowsCharts["profile-chart"].missing`), b.num(`flowsCharts["profile-chart"].runs.import || 0`); g != 48 || runs != 0 {
		t.Errorf("an empty day: %d gaps, %d lines; want 48 and none", g, runs)
	}
	if m := b.eval(`document.querySelector("#profile-missing").textContent`); m != "48" {
		t.Errorf("missing count %q", m)
	}

	// Commissioned two days before yesterday: the 27 days before it are
	// not missing, and the cursor over one says why it is empty.
	m, err := a.store.MeterBySerial(context.Background(), "EML1100000001")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.Pool().Exec(context.Background(), `UPDATE flows.meter_registers SET start_time = $2 WHERE meter_id = $1`, m.ID, day.AddDate(0, 0, -2)); err != nil {
		t.Fatal(err)
	}
	b.open("a meter commissioned lately", "/meters/EML1100000001", "#daily-chart canvas")
	if bars, miss := b.num(`flowsCharts["daily-chart"].drawn.import`), b.num(`flowsCharts["daily-chart"].missing`); bars != 1 || miss != 2 {
		t.Errorf("daily chart of a meter commissioned 3 days ago: %d bars, %d missing days; want 1 and 2", bars, miss)
	}
	if v := b.eval(`flowsCharts["daily-chart"].legendAt(0).join(",")`); v != "before commissioning" {
		t.Errorf("the cursor over a day before commissioning shows %q", v)
	}

	// A twin-element meter: import A and B, export A (B exports nothing),
	// no gap; a file per element.
	b.open("twin meter page", "/meters/EML1100000002?day="+ymd, "#profile-chart canvas")
	if imp, exp, g := b.num(`flowsCharts["profile-chart"].runs.import`), b.num(`flowsCharts["profile-chart"].runs.export`), b.num(`flowsCharts["profile-chart"].missing`); imp != 2 || exp != 1 || g != 0 {
		t.Errorf("twin profile: %d import lines, %d export lines, %d gaps; want 2, 1 and 0", imp, exp, g)
	}
	if links := b.eval(`[...document.querySelectorAll("a.smip-link")].map(a => a.textContent).join(" ")`); links != fmt.Sprintf("EML1100000002-A-%s.csv EML1100000002-B-%s.csv", day.Format("20060102"), day.Format("20060102")) {
		t.Errorf("twin SMIP links %q", links)
	}
	b.shot("intervals-twin.png")

	// At 1,280 px (a laptop) and on a phone (390 px wide): the fleet and
	// meter pages fit the screen's width (wide tables scroll inside their
	// panels) and the charts are drawn within it.
	b.step("laptop", chromedp.EmulateViewport(1280, 800))
	for _, path := range []string{"/", "/meters/EML1100000002?day=" + ymd} {
		b.open("1,280 px "+path, path, "main")
		if w := b.num(`document.documentElement.scrollWidth - window.innerWidth`); w > 1 {
			t.Errorf("at 1,280 px, %s is %d px wider than the screen", path, w)
		}
	}
	b.step("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	for _, path := range []string{"/", "/meters/EML1100000002?day=" + ymd} {
		b.open("phone "+path, path, "main")
		if w := b.num(`document.documentElement.scrollWidth - window.innerWidth`); w > 1 {
			t.Errorf("on a phone, %s is %d px wider than the screen", path, w)
		}
	}
	if w := b.num(`Math.round(document.querySelector("#profile-chart canvas").getBoundingClientRect().right - window.innerWidth)`); w > 0 {
		t.Errorf("on a phone, the profile chart runs %d px past the screen", w)
	}
	b.shot("dashboard-phone-meter.png")
}
