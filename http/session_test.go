package http_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	flowshttp "github.com/flows-energy/flows/http"
)

// Dashboard sessions live on the server: logging out ends one for good,
// login and forms refuse other sites, pages cannot be framed, and the
// cookie is Secure behind a TLS proxy the server trusts.
func TestDashboardSessions(t *testing.T) {
	a := newAPI(t)
	tok := token(t, flowshttp.RoleOperator, "")
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path string, ck *http.Cookie, hdr map[string]string, form url.Values) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, a.base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		if ck != nil {
			req.AddCookie(ck)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	ck := session(t, a.base, tok)
	if ck.Value == tok || strings.Count(ck.Value, ".") == 2 {
		t.Errorf("the session cookie carries the API token")
	}
	page := do("GET", "/", ck, nil, nil)
	if csp := page.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || page.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("page may be framed: CSP %q", csp)
	}
	// Cross-site posts: by Origin, Sec-Fetch-Site, Referer, or none at all.
	for name, hdr := range map[string]map[string]string{
		"another Origin":          {"Origin": "https://evil.example"},
		"Sec-Fetch-Site":          {"Sec-Fetch-Site": "cross-site"},
		"another Referer":         {"Referer": "https://evil.example/page"},
		"no origin of any sort":   {},
		"login from another site": nil,
	} {
		var resp *http.Response
		if hdr == nil {
			resp = do("POST", "/login", nil, map[string]string{"Origin": "https://evil.example"}, url.Values{"token": {tok}})
		} else {
			resp = do("POST", "/meters/EML1100000001/sync", ck, hdr, url.Values{})
		}
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, resp.StatusCode)
		}
	}
	if resp := do("POST", "/meters/EML1100000001/sync", ck, map[string]string{"Sec-Fetch-Site": "same-origin"}, url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("a same-origin post: %d", resp.StatusCode)
	}
	// Logout ends the session on the server: the old cookie is worthless.
	if resp := do("POST", "/logout", ck, map[string]string{"Origin": a.base}, url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp := do("POST", "/meters/EML1100000001/sync", ck, map[string]string{"Origin": a.base}, url.Values{}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the cookie after logout: %d, want 401", resp.StatusCode)
	}
	var left int
	_ = a.store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM flows.dashboard_sessions`).Scan(&left)
	if left != 0 {
		t.Errorf("%d sessions left after logout", left)
	}

	// Behind a trusted TLS proxy the cookie is Secure; not otherwise.
	srv := flowshttp.NewServer(flowshttp.Config{Addr: "127.0.0.1:0", Store: a.store, JWTSecret: secret, TrustProxy: true})
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Stop(context.Background()) }()
	for proto, want := range map[string]bool{"https": true, "": false} {
		base := "http://" + srv.Addr()
		req, _ := http.NewRequest("POST", base+"/login", strings.NewReader(url.Values{"token": {tok}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", base)
		if proto != "" {
			req.Header.Set("X-Forwarded-Proto", proto)
			req.Header.Set("Origin", "https://"+srv.Addr())
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if cs := resp.Cookies(); len(cs) != 1 || cs[0].Secure != want {
			t.Errorf("X-Forwarded-Proto %q: cookies %v, want Secure=%v", proto, cs, want)
		}
	}
}
