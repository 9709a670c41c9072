package http_test

import (
	"testing"

	"github.com/chromedp/chromedp"
	flowshttp "github.com/flows-energy/flows/http"
)

// In a browser, the fleet page of 117 meters searches, sorts by a
// heading (again: the other way) and pages, each a page the server
// makes, with the filters kept in the URL and in the form.
func TestFleetPageInBrowser(t *testing.T) {
	a := newAPI(t)
	fleetPageFixture(t, a)
	b := newBrowser(t, a.base, 1280, 1000)
	b.login(token(t, flowshttp.RoleReadonly, "AAA"))
	b.step("fleet page", chromedp.WaitVisible(chromedp.CSS("a.meter-link")))
	rows := func() int { return b.num(`document.querySelectorAll("#meters tbody tr").length`) }
	first := func() string { return b.eval(`document.querySelector("#meters a.meter-link").textContent`) }
	pager := func() string {
		return b.eval(`document.querySelector("#pager").textContent.replace(/\s+/g, " ").trim()`)
	}
	if n, p := rows(), pager(); n != 50 || p != "Meters 1–50 of 119 next →" {
		t.Errorf("first page: %d rows, pager %q; want 50 of 119 (newAPI's two AAA meters too)", n, p)
	}

	b.step("search", chromedp.SetValue(chromedp.CSS("#search"), "EML44"))
	b.click("filter", "#filters button")
	b.poll("searched", `location.search.includes("q=EML44") && document.querySelector("#pager").textContent.includes("of 117")`)

	b.click("sort by balance", `#meters th a.sort[href*="sort=balance"]`)
	b.poll("sorted by balance", `location.search.includes("sort=balance")`)
	if f, s := first(), b.eval(`document.querySelector("#meters th[aria-sort]").textContent`); f != "EML4400000000" || s != "balance ▲" {
		t.Errorf("by balance ascending: first %s, sorted heading %q; want EML4400000000 and balance ▲", f, s)
	}
	b.click("sort by balance the other way", `#meters th[aria-sort] a.sort`)
	b.poll("sorted by balance descending", `location.search.includes("sort=-balance")`)
	if f := first(); f != "EML4400000116" {
		t.Errorf("by balance descending: first %s, want EML4400000116 (£116)", f)
	}

	b.click("next page", "#next")
	b.poll("page 2", `location.search.includes("page=2")`)
	if n, f, p := rows(), first(), pager(); n != 50 || f != "EML4400000066" || p != "Meters 51–100 of 117 ← previous next →" {
		t.Errorf("page 2 by balance descending: %d rows, first %s, pager %q", n, f, p)
	}
	// The search and the order survive paging: in the URL and the form.
	if q := b.eval(`new URLSearchParams(location.search).get("q") + " " + new URLSearchParams(location.search).get("sort") + " " + document.querySelector("#search").value`); q != "EML44 -balance EML44" {
		t.Errorf("page 2 keeps q, sort and the search field as %q", q)
	}
	b.click("last page", "#next")
	b.poll("page 3", `location.search.includes("page=3")`)
	if n, p := rows(), pager(); n != 17 || p != "Meters 101–117 of 117 ← previous" {
		t.Errorf("last page: %d rows, pager %q", n, p)
	}
	b.shot("fleet-paged.png")
	b.click("previous page", "#prev")
	b.poll("back on page 2", `location.search.includes("page=2")`)
	if f := first(); f != "EML4400000066" {
		t.Errorf("previous from page 3: first %s, want EML4400000066", f)
	}
}
