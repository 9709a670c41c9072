package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	flowshttp "github.com/flows-energy/flows/http"
	"github.com/shopspring/decimal"
)

// The meter page marks top-ups from the ledger, never from a jump in the
// balance, and labels a passive twin, offering it no write forms.
func TestMeterPageMarkersAndTwins(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()
	ck := session(t, a.base, token(t, flowshttp.RoleOperator, ""))
	page := func(serial string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", a.base+"/meters/"+serial, nil)
		req.AddCookie(ck)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", serial, resp.StatusCode)
		}
		return string(b)
	}
	m, err := a.store.MeterBySerial(ctx, "EML1100000001")
	if err != nil {
		t.Fatal(err)
	}
	// A jump in the balance with no top-up behind it (a corrected reading).
	for i, b := range []string{"3", "50"} {
		v := decimal.RequireFromString(b)
		if err := a.store.UpdateShadow(ctx, m.ID, flows.ShadowUpdate{Balance: &v, At: time.Now().Add(time.Duration(i-3) * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	tu, err := a.store.CreateTopup(ctx, m.ID, "98765432109876543210", nil, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.FinishTopup(ctx, tu.ID, flows.TopupCompleted, "Balance increased", nil, time.Time{}, false, 0); err != nil {
		t.Fatal(err)
	}
	body := page("EML1100000001")
	js := regexp.MustCompile(`(?s)<script type="application/json" id="topups">(.*?)</script>`).FindStringSubmatch(body)
	var marks []string
	if js == nil || json.Unmarshal([]byte(js[1]), &marks) != nil {
		t.Fatalf("no top-up markers on the page")
	}
	if len(marks) != 1 {
		t.Errorf("markers %v, want the one ledger top-up and not the balance jump", marks)
	}
	if !strings.Contains(body, `id="tariff-form"`) || strings.Contains(body, `id="twin-badge"`) {
		t.Errorf("an active meter's page lacks its forms or says twin")
	}
	if _, err := a.store.CreateMeter(ctx, flows.NewMeter{Serial: "EML1100000099", Mode: flows.ModePassive, ESCOCode: "AAA"}); err != nil {
		t.Fatal(err)
	}
	twin := page("EML1100000099")
	if !strings.Contains(twin, `id="twin-badge"`) || strings.Contains(twin, `id="tariff-form"`) || strings.Contains(twin, `id="token-form"`) ||
		strings.Contains(twin, `id="sync-btn"`) {
		t.Errorf("a twin's page: badge or write forms wrong")
	}
	// Nor does the API take a token for it: refused, saying why, not
	// queued for a push to fail.
	op := token(t, flowshttp.RoleOperator, "")
	if code, p := a.do("POST", "/api/v1/meters/EML1100000099/tokens", op, map[string]any{"token": "12345678901234567890"}); code != 409 ||
		!strings.Contains(fmt.Sprint(p["detail"]), "passive twin: top it up where it is active") {
		t.Errorf("a token for a passive twin: %d %v, want 409 saying to top it up where it is active", code, p)
	}
}

// A three-phase meter has no prepayment balance: the fleet and meter
// pages say so rather than showing an empty value; its interval files are
// the three-phase export's.
func TestThreePhaseBalanceIsNotApplicable(t *testing.T) {
	a := newAPI(t)
	m, err := a.store.CreateMeter(context.Background(), flows.NewMeter{Serial: "EML2200001022", IPAddress: "127.110.0.23", ESCOCode: "AAA", Hardware: "P1.cx"})
	if err != nil {
		t.Fatal(err)
	}
	l1, l2, l3 := decimal.RequireFromString("241.2"), decimal.RequireFromString("243.5"), decimal.RequireFromString("236.7")
	if err := a.store.UpdateShadow(context.Background(), m.ID, flows.ShadowUpdate{Voltage3P: [3]*decimal.Decimal{&l1, &l2, &l3}}); err != nil {
		t.Fatal(err)
	}
	ro := token(t, flowshttp.RoleReadonly, "")
	_, page := a.page("/meters/EML2200001022", ro)
	if !strings.Contains(page, `<td id="balance" class="na">n/a: a three-phase meter has no prepayment balance</td>`) {
		t.Errorf("three-phase meter page's balance: %s", between(page, "<th>balance</th>", "</tr>"))
	}
	// Its three voltages; no tariff or top-up form, and why; no forecast,
	// and why.
	if !strings.Contains(page, `<th>voltage L1 · L2 · L3</th><td id="voltage">241.2 · 243.5 · 236.7 V</td>`) {
		t.Errorf("three-phase voltages: %s", between(page, "<th>voltage", "</tr>"))
	}
	if strings.Contains(page, `id="token-form"`) || strings.Contains(page, `id="tariff-form"`) || strings.Contains(page, `id="tariffs"`) || !strings.Contains(page, `id="credit-meter"`) {
		t.Errorf("a three-phase meter's page offers a top-up or tariff form or a tariffs panel (\"not read yet\": never read), or does not say why not")
	}
	if !strings.Contains(page, "None: a three-phase meter is a credit meter") {
		t.Errorf("three-phase forecast panel: %s", between(page, `id="forecast"`, "</div>"))
	}
	// The API refuses a token for it, saying why, before any push.
	op := token(t, flowshttp.RoleOperator, "")
	if code, p := a.do("POST", "/api/v1/meters/EML2200001022/tokens", op, map[string]any{"token": "12345678901234567890"}); code != 409 ||
		!strings.Contains(fmt.Sprint(p["detail"]), "three-phase meter (P1.cx)") {
		t.Errorf("a token for a three-phase meter: %d %v, want 409 saying it is a credit meter", code, p)
	}
	// Its SMIP file is refused, saying where its files are, in the API
	// and on the dashboard's download link alike.
	if code, p := a.do("GET", "/api/v1/meters/EML2200001022/intervals.csv", ro, nil); code != 409 || !strings.Contains(fmt.Sprint(p["detail"]), "flows export intervals --serial EML2200001022") {
		t.Errorf("the SMIP file of a three-phase meter: %d %v, want 409 pointing at flows export intervals", code, p)
	}
	if code, _ := a.page("/meters/EML2200001022/intervals.csv", ro); code != 409 {
		t.Errorf("the dashboard's SMIP download of a three-phase meter: %d, want 409", code)
	}
	// Its interval files are the three-phase ones, not SMIP files.
	if !strings.Contains(page, `id="three-phase-files"`) || strings.Contains(page, `class="smip-link"`) {
		t.Errorf("three-phase meter page's interval files: %s", between(page, `id="profile-missing"`, "</p>"))
	}
	_, body := a.page("/?q=EML2200001022", ro)
	if row := between(body, `href="/meters/EML2200001022"`, "</tr>"); !strings.Contains(row, `title="a three-phase meter: no prepayment balance">n/a</td>`) {
		t.Errorf("three-phase meter's fleet row: %s", row)
	}
	// A single-phase meter's balance is its balance.
	if _, body := a.page("/meters/EML1100000001", ro); !strings.Contains(body, `<td id="balance">£3.00`) {
		t.Errorf("single-phase meter page's balance: %s", between(body, "<th>balance</th>", "</tr>"))
	}
}

// The day links of the interval panel keep the page's chart range.
func TestIntervalDayLinksKeepTheRange(t *testing.T) {
	a := newAPI(t)
	day := intervalFixture(t, a)
	ymd := day.Format("2006-01-02")
	_, body := a.page("/meters/EML1100000001?range=30d&day="+ymd, token(t, flowshttp.RoleReadonly, ""))
	prev := day.AddDate(0, 0, -1).Format("2006-01-02")
	if want := `id="prev-day" href="/meters/EML1100000001?day=` + prev + `&amp;range=30d"`; !strings.Contains(body, want) {
		t.Errorf("the previous day's link drops the range: %s", between(body, `id="prev-day"`, "</a>"))
	}
	if !strings.Contains(body, `<input type="hidden" name="range" value="30d">`) {
		t.Errorf("the day form drops the range: %s", between(body, `id="day-form"`, "</form>"))
	}
}
