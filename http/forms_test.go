package http_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	flowshttp "github.com/flows-energy/flows/http"
)

// session logs in to the dashboard with tok, as the login form does, and
// returns the session cookie the server set.
func session(t testing.TB, base, tok string) *http.Cookie {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == "flows_session" && ck.Value != "" {
			return ck
		}
	}
	t.Fatalf("login with a token: %d, no session cookie", resp.StatusCode)
	return nil
}

// post submits a dashboard form with a session for tok, from this site,
// and returns the status and the redirect target, without following it.
func (a *api) post(path, tok string, form url.Values) (int, string) {
	a.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, a.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", a.base)
	req.AddCookie(session(a.t, a.base, tok))
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc == nil {
		return resp.StatusCode, ""
	}
	return resp.StatusCode, loc.Query().Get("msg")
}

// TestDashboardFormsRefuse: the meter page's forms refuse what the API
// refuses — the wrong role, a bad amount, a meter outside the ESCO — with a
// message on the page and nothing written; an allowed form is written.
func TestDashboardFormsRefuse(t *testing.T) {
	a := newAPI(t)
	requests := func() int {
		_, out := a.do("GET", "/api/v1/meters/EML1100000001/tariffs", token(t, flowshttp.RoleReadonly, ""), nil)
		rs, _ := out["requests"].([]any)
		return len(rs)
	}
	form := url.Values{"standing_charge": {"0.5868"}, "unit_rate_element_a": {"0.2843"}, "unit_rate_element_b": {"0.15"},
		"prepayment_emergency_credit": {"15"}, "prepayment_ecredit_availability": {"10"}, "prepayment_debt_recovery_rate": {"0.25"},
		"activation_datetime": {time.Now().Add(72 * time.Hour).UTC().Format("2006-01-02T15:04")}}
	const path = "/meters/EML1100000001/tariff"

	status, msg := a.post(path, token(t, flowshttp.RoleReadonly, ""), form)
	if status != http.StatusSeeOther || !strings.HasPrefix(msg, "Refused: ") || !strings.Contains(msg, "operator") {
		t.Errorf("readonly tariff form: %d %q, want a refusal naming the operator role", status, msg)
	}
	bad := url.Values{}
	for k, v := range form {
		bad[k] = v
	}
	bad.Set("standing_charge", "12p")
	op := token(t, flowshttp.RoleOperator, "")
	if status, msg := a.post(path, op, bad); status != http.StatusSeeOther || msg != "Refused: standing_charge: not a decimal amount" {
		t.Errorf("bad amount: %d %q, want the field named", status, msg)
	}
	if status, _ := a.post(path, token(t, flowshttp.RoleOperator, "BBB"), form); status != http.StatusNotFound {
		t.Errorf("another ESCO's meter: %d, want 404", status)
	}
	if n := requests(); n != 0 {
		t.Fatalf("%d tariff requests written by refused forms", n)
	}
	if status, msg := a.post(path, op, form); status != http.StatusSeeOther || !strings.HasPrefix(msg, "Tariff request accepted: waiting to be sent") {
		t.Errorf("operator tariff form: %d %q", status, msg)
	}
	if n := requests(); n != 1 {
		t.Errorf("%d tariff requests after one accepted form, want 1", n)
	}
}

// A form's outcome is shown on the page it redirects to, signed by the
// server: a link crafted elsewhere with a message of its own, or with a
// real signature on other words, shows no message in Flows' layout.
func TestFlashMessagesOnlyFromFlows(t *testing.T) {
	a := newAPI(t)
	op := token(t, flowshttp.RoleOperator, "")
	req, _ := http.NewRequest(http.MethodPost, a.base+"/meters/EML1100000001/tariff",
		strings.NewReader(url.Values{"standing_charge": {"12p"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", a.base)
	req.AddCookie(session(t, a.base, op))
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusSeeOther || loc.Query().Get("sig") == "" {
		t.Fatalf("the refused form redirects with %d to %q, want a signed message", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, body := a.page(loc.RequestURI(), op); !strings.Contains(between(body, `id="flash"`, "</"), "Refused: ") {
		t.Errorf("the form's own redirect shows no refusal: %s", between(body, "<main>", "</main>"))
	}
	forged := url.Values{"msg": {"Call 0800 000 000 to reverify your token"}}
	tampered := url.Values{"msg": {"Tariff request accepted"}, "sig": {loc.Query().Get("sig")}}
	for _, q := range []url.Values{forged, tampered} {
		for _, path := range []string{"/meters/EML1100000001", "/", "/views"} {
			code, body := a.page(path+"?"+q.Encode(), op)
			if code != http.StatusOK || strings.Contains(body, q.Get("msg")) || strings.Contains(body, `id="flash"`) {
				t.Errorf("%s?%s: %d, shows a message Flows did not write", path, q.Encode(), code)
			}
		}
	}
}
