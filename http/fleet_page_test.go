package http_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/flows-energy/flows"
	flowshttp "github.com/flows-energy/flows/http"
	"github.com/shopspring/decimal"
)

// get fetches a dashboard page with a session for tok.
func (a *api) page(path, tok string) (int, string) {
	a.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, a.base+path, nil)
	req.AddCookie(session(a.t, a.base, tok))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var meterLinkRE = regexp.MustCompile(`class="meter-link" href="/meters/([A-Z0-9]+)"`)

// fleetPageFixture adds 117 AAA meters EML4400000000… named "P 000"…
// with balances £0 to £116 in serial order.
func fleetPageFixture(t *testing.T, a *api) {
	t.Helper()
	ctx := context.Background()
	var nm []flows.NewMeter
	for i := range 117 {
		nm = append(nm, flows.NewMeter{Serial: fmt.Sprintf("EML44%08d", i), Name: fmt.Sprintf("P %03d", i), IPAddress: fmt.Sprintf("127.112.0.%d", i+1)})
	}
	if _, err := a.store.ImportMeters(ctx, "AAA", nm, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 117 {
		m, _ := a.store.MeterBySerial(ctx, fmt.Sprintf("EML44%08d", i))
		b := decimal.NewFromInt(int64(i))
		if err := a.store.UpdateShadow(ctx, m.ID, flows.ShadowUpdate{Balance: &b}); err != nil {
			t.Fatal(err)
		}
	}
}

// The fleet page pages, sorts and searches on the server, keeping the
// filters in its links; an unknown meter is a 404 inside the layout.
func TestFleetPagePagesAndSorts(t *testing.T) {
	a := newAPI(t)
	fleetPageFixture(t, a)
	tok := token(t, flowshttp.RoleReadonly, "AAA") // the search leaves out newAPI's two AAA meters
	code, body := a.page("/?q=EML44&sort=-balance", tok)
	links := meterLinkRE.FindAllStringSubmatch(body, -1)
	if code != 200 || len(links) != 50 || links[0][1] != "EML4400000116" || links[49][1] != "EML4400000067" {
		t.Fatalf("page 1 by balance descending: %d, %d rows, first %v", code, len(links), links[:min(1, len(links))])
	}
	if !strings.Contains(body, "Meters 1–50 of 117") || !strings.Contains(body, `href="/?page=2&amp;q=EML44&amp;sort=-balance"`) {
		t.Errorf("pager of page 1 does not say 1–50 of 117 with a next link keeping the filters:\n%s", between(body, `id="pager"`, "</p>"))
	}
	// The balance heading, sorted descending now, sorts ascending next.
	if !strings.Contains(body, `aria-sort="descending"><a class="sort" href="/?q=EML44&amp;sort=balance"`) {
		t.Errorf("balance heading: %s", between(body, "<thead>", "</thead>"))
	}
	_, body = a.page("/?q=EML44&sort=-balance&page=3", tok)
	links = meterLinkRE.FindAllStringSubmatch(body, -1)
	if len(links) != 17 || links[16][1] != "EML4400000000" || !strings.Contains(body, "Meters 101–117 of 117") || strings.Contains(body, `id="next"`) {
		t.Errorf("last page: %d rows, pager %s", len(links), between(body, `id="pager"`, "</p>"))
	}
	// A page past the last (an old link): says so, and links to the last.
	_, body = a.page("/?q=EML44&sort=-balance&page=9", tok)
	if p := between(body, `id="pager"`, "</p>"); !strings.Contains(p, "Page 9 is past the last: 117 meters match") ||
		!strings.Contains(p, `href="/?page=3&amp;q=EML44&amp;sort=-balance"`) {
		t.Errorf("a page past the last: %s", p)
	}
	if code, body := a.page("/?sort=colour", tok); code != 400 || !strings.Contains(body, `id="error"`) || !strings.Contains(body, "sort") {
		t.Errorf("bad sort: %d %s", code, between(body, "<main>", "</main>"))
	}
	for _, path := range []string{"/no-such-page", "/meters/EML9999999999/activity/nothing"} {
		code, body := a.page(path, tok)
		if code != 404 || !strings.Contains(body, `id="error"`) || !strings.Contains(body, `id="who"`) {
			t.Errorf("%s: %d, want a 404 in the layout:\n%s", path, code, between(body, "<header>", "</main>"))
		}
	}
	code, body = a.page("/meters/EML9999999999", tok)
	if code != 404 || !strings.Contains(body, `id="error"`) || !strings.Contains(body, `id="who"`) || strings.Contains(body, `id="login"`) {
		t.Errorf("unknown meter: %d, want a 404 in the layout (logged in, no login form):\n%s", code, between(body, "<header>", "</main>"))
	}
}

func between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	j := strings.Index(s[i:], to)
	if j < 0 {
		return s[i:]
	}
	return s[i : i+j+len(to)]
}
