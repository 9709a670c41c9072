package http_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	flowshttp "github.com/flows-energy/flows/http"
)

// The meter page's forms work from the keyboard alone: every control has
// a label, Tab reaches the top-up form, and Enter submits it; the top-up
// is then listed with its status in words.
func TestMeterFormsByKeyboard(t *testing.T) {
	a := newAPI(t)
	b := newBrowser(t, a.base, 1280, 1000)
	b.login(token(t, flowshttp.RoleOperator, ""))
	b.open("meter page", "/meters/EML1100000001", "#token-form")
	if unlabelled := b.eval(`[...document.querySelectorAll("main input:not([type=hidden]), main select, main textarea")]
		.filter(e => !(e.labels && e.labels.length && e.labels[0].textContent.trim())).map(e => e.id || e.name).join(" ")`); unlabelled != "" {
		t.Errorf("form controls without a label: %s", unlabelled)
	}
	if nameless := b.eval(`[...document.querySelectorAll("main button")].filter(e => !e.textContent.trim()).length + ""`); nameless != "0" {
		t.Errorf("%s buttons say nothing", nameless)
	}
	// Tab from the top of the page until the token field has the focus.
	tabs := 0
	for ; tabs < 200 && b.eval(`document.activeElement ? document.activeElement.id : ""`) != "topup-token"; tabs++ {
		b.step("Tab", chromedp.KeyEvent(kb.Tab))
	}
	if tabs == 200 {
		t.Fatal("200 presses of Tab never reached the top-up token field")
	}
	b.step("type the token", chromedp.KeyEvent("12345678901234567890"), chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent("7.50"))
	if f := b.eval(`document.activeElement.id`); f != "topup-amount" {
		t.Fatalf("Tab after the token moved to %q, want the amount", f)
	}
	if _, err := chromedp.RunResponse(b.ctx, chromedp.KeyEvent(kb.Enter)); err != nil { // the page it loads
		t.Fatalf("Enter in the amount field: %v", err)
	}
	b.poll("top-up listed", `location.search.includes("msg=") && !!document.querySelector("#topup-list td.status")`)
	if st := b.eval(`document.querySelector("#topup-list td.status").textContent`); st != "waiting to be sent to the meter" {
		t.Errorf("the new top-up's status reads %q", st)
	}
	if amount := b.eval(`document.querySelector("#topup-list tr:nth-child(2) td:nth-child(2)").textContent`); amount != "£7.50" {
		t.Errorf("the new top-up's amount reads %q, want £7.50 as typed", amount)
	}
	if msg := b.eval(`document.querySelector("#flash") ? document.querySelector("#flash").textContent : ""`); !strings.Contains(msg, "waiting") {
		t.Errorf("after the keyboard top-up the page says %q", msg)
	}
}
