package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	flowshttp "github.com/flows-energy/flows/http"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/syncer"
	"github.com/riverqueue/river"
	"github.com/shopspring/decimal"
)

type api struct {
	t     testing.TB
	base  string
	store *postgres.Store
}

func newAPI(t testing.TB) *api {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	store := postgres.NewStore(pool)
	for _, e := range []string{"AAA", "BBB"} {
		if _, err := store.CreateESCO(ctx, e, "ESCO "+e); err != nil {
			t.Fatal(err)
		}
	}
	for i, m := range []flows.NewMeter{
		{Serial: "EML1100000001", Name: "A one", IPAddress: "127.110.0.1", ESCOCode: "AAA", Hardware: "EMA1.w"},
		{Serial: "EML1100000002", Name: "A two", IPAddress: "127.110.0.2", ESCOCode: "AAA", Hardware: "C1.w"},
		{Serial: "EML2200000001", Name: "B one", IPAddress: "127.110.1.1", ESCOCode: "BBB", Hardware: "EMA1.w"},
	} {
		nm, err := store.CreateMeter(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		bal := decimal.NewFromInt(int64(3 + 10*i))
		if err := store.UpdateShadow(ctx, nm.ID, flows.ShadowUpdate{Balance: &bal}); err != nil {
			t.Fatal(err)
		}
	}
	srv := flowshttp.NewServer(flowshttp.Config{Addr: "127.0.0.1:0", Store: store, JWTSecret: secret,
		SyncNow: syncNow(t, store)})
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	reportMismatches(t, "http://"+srv.Addr())
	return &api{t: t, base: "http://" + srv.Addr(), store: store}
}

func token(t testing.TB, role flowshttp.Role, esco string) string {
	tok, err := flowshttp.IssueToken(secret, "tester-"+string(role), role, esco, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// checked reports at once what the exchange just made did not match in
// the API document (documentCheck held it), so the failure names the
// line that made it.
func (a *api) checked() {
	a.t.Helper()
	if apiTraffic != nil {
		for _, m := range apiTraffic.take(a.base) {
			a.t.Error(m)
		}
	}
}

// do sends a request and decodes the JSON answer.
func (a *api) do(method, path, tok string, body any) (int, map[string]any) {
	a.t.Helper()
	var sent []byte
	switch b := body.(type) {
	case nil:
	case string:
		sent = []byte(b)
	default:
		sent, _ = json.Marshal(b)
	}
	req, _ := http.NewRequest(method, a.base+path, bytes.NewReader(sent))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	a.checked()
	var out map[string]any
	_ = json.Unmarshal(got, &out)
	if resp.StatusCode >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
		a.t.Errorf("%s %s: error %d without problem+json", method, path, resp.StatusCode)
	}
	return resp.StatusCode, out
}

func futureTariff(at time.Time) map[string]any {
	return map[string]any{"standing_charge": 0.5868, "unit_rate_element_a": "0.2843", "unit_rate_element_b": 0.15,
		"prepayment_ecredit_availability": 10.00, "prepayment_debt_recovery_rate": 0.25, "prepayment_emergency_credit": 15.00,
		"activation_datetime": at.UTC().Format(time.RFC3339)}
}

func TestAuthAndRoles(t *testing.T) {
	a := newAPI(t)
	ro, op, admin := token(t, flowshttp.RoleReadonly, ""), token(t, flowshttp.RoleOperator, ""), token(t, flowshttp.RoleAdmin, "")
	expired, _ := flowshttp.IssueToken(secret, "old", flowshttp.RoleAdmin, "", time.Hour, time.Now().Add(-2*time.Hour))
	forged, _ := flowshttp.IssueToken([]byte("another-secret-another-secret-xx"), "x", flowshttp.RoleAdmin, "", time.Hour, time.Now())
	for _, tok := range []string{"", expired, forged, "garbage"} {
		if code, p := a.do("GET", "/api/v1/meters", tok, nil); code != 401 || p["code"] != "unauthorized" {
			t.Errorf("token %.10q: %d %v", tok, code, p)
		}
	}
	at := time.Now().Add(72 * time.Hour)
	if code, p := a.do("PUT", "/api/v1/meters/EML1100000001/tariffs/future", ro, futureTariff(at)); code != 403 {
		t.Errorf("readonly tariff: %d %v", code, p)
	}
	if code, _ := a.do("POST", "/api/v1/meters", op, map[string]any{"serial": "EML3300000001"}); code != 403 {
		t.Errorf("operator creating a meter: %d", code)
	}
	if code, p := a.do("POST", "/api/v1/meters", admin, map[string]any{"serial": "EML3300000001", "esco": "AAA", "ip_address": "127.110.3.1"}); code != 201 || p["serial"] != "EML3300000001" {
		t.Errorf("admin creating a meter: %d %v", code, p)
	}
	code, p := a.do("PUT", "/api/v1/meters/EML1100000001/tariffs/future", op, futureTariff(at))
	if code != 202 || p["status"] != "pending" {
		t.Fatalf("operator tariff: %d %v", code, p)
	}
	if code, rq := a.do("GET", "/api/v1/tariff-requests/"+p["id"].(string), ro, nil); code != 200 || rq["status"] != "pending" || rq["requested_by"] != "tester-operator" {
		t.Errorf("tariff request: %d %v", code, rq)
	}
	if code, p := a.do("GET", "/api/v1/meters/EML1100000001", ro, nil); code != 200 || p["shadow"] == nil || p["registers"] == nil {
		t.Errorf("readonly meter: %d %v", code, p)
	}
	tok := "12345678901234567890"
	if code, p := a.do("POST", "/api/v1/meters/EML1100000002/tokens", op, map[string]any{"token": tok, "amount": "10.00"}); code != 202 || p["status"] != "wait_token_push" {
		t.Errorf("token: %d %v", code, p)
	}
	if code, p := a.do("POST", "/api/v1/meters/EML1100000002/tokens", op, map[string]any{"token": tok}); code != 409 || p["field"] != "token" {
		t.Errorf("same token twice: %d %v", code, p)
	}
	if code, _ := a.do("POST", "/api/v1/meters/EML1100000001/sync", op, nil); code != 202 {
		t.Errorf("sync: %d", code)
	}
	if code, p := a.do("POST", "/api/v1/meters/EML1100000001/commands", op, map[string]any{"kind": "backlight", "value": "always_on_sp"}); code != 202 || p["status"] != "pending" {
		t.Errorf("command: %d %v", code, p)
	}
}

// A token limited to ESCO AAA never sees or touches ESCO BBB's meters.
func TestESCOScope(t *testing.T) {
	a := newAPI(t)
	opA := token(t, flowshttp.RoleOperator, "AAA")
	at := time.Now().Add(72 * time.Hour)
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/v1/meters/EML2200000001", nil},
		{"GET", "/api/v1/meters/EML2200000001/balance", nil},
		{"GET", "/api/v1/meters/EML2200000001/events", nil},
		{"GET", "/api/v1/meters/EML2200000001/audit", nil},
		{"GET", "/api/v1/meters/EML2200000001/tariffs", nil},
		{"PUT", "/api/v1/meters/EML2200000001/tariffs/future", futureTariff(at)},
		{"POST", "/api/v1/meters/EML2200000001/tokens", map[string]any{"token": "11111111111111111111"}},
		{"POST", "/api/v1/meters/EML2200000001/sync", nil},
		{"POST", "/api/v1/meters/EML2200000001/commands", map[string]any{"kind": "clock"}},
	} {
		if code, p := a.do(c.method, c.path, opA, c.body); code != 404 {
			t.Errorf("%s %s with an AAA token: %d %v, want 404", c.method, c.path, code, p)
		}
	}
	_, list := a.do("GET", "/api/v1/meters?esco=BBB", opA, nil)
	for _, m := range list["meters"].([]any) {
		if s := m.(map[string]any)["serial"].(string); strings.HasPrefix(s, "EML22") {
			t.Errorf("AAA token listed %s", s)
		}
	}
	if n := len(list["meters"].([]any)); n != 2 {
		t.Errorf("AAA token lists %d meters, want its 2", n)
	}
	_, low := a.do("GET", "/api/v1/views/low-balance?threshold=100", opA, nil)
	if n := len(low["meters"].([]any)); n != 2 {
		t.Errorf("low-balance view for AAA: %d meters, want 2", n)
	}
	if code, p := a.do("POST", "/api/v1/rollouts", opA, map[string]any{"tariff": futureTariff(at), "esco": "BBB"}); code != 400 || p["field"] != "esco" {
		t.Errorf("rollout into another ESCO: %d %v", code, p)
	}
	code, p := a.do("POST", "/api/v1/rollouts", opA, map[string]any{"tariff": futureTariff(at)})
	if code != 202 || p["meters"].(float64) != 2 {
		t.Errorf("rollout for AAA: %d %v, want its 2 meters", code, p)
	}
	// And another ESCO's request ids are not found either.
	admin := token(t, flowshttp.RoleAdmin, "")
	_, tr := a.do("PUT", "/api/v1/meters/EML2200000001/tariffs/future", admin, futureTariff(at))
	_, tu := a.do("POST", "/api/v1/meters/EML2200000001/tokens", admin, map[string]any{"token": "11111111111111111111"})
	_, cmd := a.do("POST", "/api/v1/meters/EML2200000001/commands", admin, map[string]any{"kind": "clock"})
	opB := token(t, flowshttp.RoleReadonly, "BBB")
	for _, path := range []string{"/api/v1/tariff-requests/" + tr["id"].(string), "/api/v1/topups/" + tu["id"].(string), "/api/v1/commands/" + cmd["id"].(string)} {
		if code, _ := a.do("GET", path, opA, nil); code != 404 {
			t.Errorf("GET %s (BBB's) through an AAA token: %d, want 404", path, code)
		}
		if code, p := a.do("GET", path, opB, nil); code != 200 || p["id"] == nil {
			t.Errorf("GET %s through a BBB token: %d %v", path, code, p)
		}
	}
	for _, path := range []string{"/api/v1/topups/not-a-uuid", "/api/v1/commands/00000000-0000-0000-0000-000000000000"} {
		if code, _ := a.do("GET", path, admin, nil); code != 404 {
			t.Errorf("GET %s: %d, want 404", path, code)
		}
	}
}

// A meter's audit trail lists the writes made to it, newest first, with
// what they were for and what the meter said; limit is validated.
func TestMeterAuditTrail(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()
	m, err := a.store.MeterBySerial(ctx, "EML1100000001")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []flows.AuditEntry{
		{MeterID: m.ID, RequestKind: "topup", RequestedBy: "ops@a", Object: "prepay_token_send", Value: "…7890", Outcome: "ok"},
		{MeterID: m.ID, RequestKind: "backlight", RequestedBy: "ops@a", Object: "backlight", Value: "on", Outcome: "nak", Detail: "NAK 4"},
	} {
		if err := a.store.Audit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	ro := token(t, flowshttp.RoleReadonly, "AAA")
	code, p := a.do("GET", "/api/v1/meters/EML1100000001/audit", ro, nil)
	ws, _ := p["writes"].([]any)
	if code != 200 || len(ws) != 2 {
		t.Fatalf("audit: %d %v, want 2 writes", code, p)
	}
	newest := ws[0].(map[string]any)
	if newest["object"] != "backlight" || newest["outcome"] != "nak" || newest["detail"] != "NAK 4" || newest["requested_by"] != "ops@a" || newest["at"] == nil {
		t.Errorf("newest write %v, want the refused backlight", newest)
	}
	if ws[1].(map[string]any)["value"] != "…7890" {
		t.Errorf("older write %v", ws[1])
	}
	if _, p := a.do("GET", "/api/v1/meters/EML1100000001/audit?limit=1", ro, nil); len(p["writes"].([]any)) != 1 {
		t.Errorf("limit=1 gave %v", p)
	}
	if code, p := a.do("GET", "/api/v1/meters/EML1100000001/audit?limit=0", ro, nil); code != 400 || p["field"] != "limit" {
		t.Errorf("limit=0: %d %v, want 400 naming limit", code, p)
	}
	if _, p := a.do("GET", "/api/v1/meters/EML1100000002/audit", ro, nil); len(p["writes"].([]any)) != 0 {
		t.Errorf("a meter never written to: %v", p)
	}
}

// Bad input is a 400 naming the field, and changes nothing.
func TestBadInput(t *testing.T) {
	a := newAPI(t)
	op := token(t, flowshttp.RoleOperator, "")
	at := time.Now().Add(72 * time.Hour)
	over := futureTariff(at)
	over["unit_rate_element_a"] = "1.5"
	places := futureTariff(at)
	places["standing_charge"] = "0.123456"
	past := futureTariff(time.Now().Add(-time.Hour))
	unknown := futureTariff(at)
	unknown["discount"] = 1
	for _, c := range []struct {
		name, path string
		body       any
		field      string
	}{
		{"bad JSON", "/api/v1/meters/EML1100000001/tariffs/future", "{not json", "body"},
		{"unknown field", "/api/v1/meters/EML1100000001/tariffs/future", unknown, "discount"},
		{"rate above £1", "/api/v1/meters/EML1100000001/tariffs/future", over, "unit_rate_element_a"},
		{"six decimal places", "/api/v1/meters/EML1100000001/tariffs/future", places, "standing_charge"},
		{"past activation", "/api/v1/meters/EML1100000001/tariffs/future", past, "activation_datetime"},
		{"bad serial", "/api/v1/meters/eml-1/tariffs/future", futureTariff(at), "serial"},
		{"short token", "/api/v1/meters/EML1100000001/tokens", map[string]any{"token": "123"}, "token"},
		{"token as number", "/api/v1/meters/EML1100000001/tokens", `{"token": 12345678901234567890}`, "token"},
	} {
		method := "PUT"
		if strings.HasSuffix(c.path, "tokens") {
			method = "POST"
		}
		code, p := a.do(method, c.path, op, c.body)
		if code != 400 || p["field"] != c.field || p["code"] != "invalid" {
			t.Errorf("%s: %d %v, want 400 naming %s", c.name, code, p, c.field)
		}
	}
	var n int
	_ = a.store.Pool().QueryRow(context.Background(), `SELECT (SELECT count(*) FROM flows.tariff_requests) + (SELECT count(*) FROM flows.topups)`).Scan(&n)
	if n != 0 {
		t.Errorf("rejected requests left %d rows", n)
	}
	st, _ := a.store.MeterStatus(context.Background(), "EML1100000001")
	if st.Shadow.TariffsFuture != nil {
		t.Errorf("tariffs_future changed: %+v", st.Shadow.TariffsFuture)
	}
	if code, _ := a.do("GET", "/api/v1/meters?limit=-4", op, nil); code != 400 {
		t.Errorf("negative limit: %d", code)
	}
	if code, _ := a.do("GET", "/api/v1/meters/EML1100000001/balance?bucket=week", op, nil); code != 400 {
		t.Errorf("bad bucket: %d", code)
	}
}

// Every route in /openapi.json is served: none answers 404 or 405 for its
// method (a route the mux lacks would).
func TestOpenAPIMatchesRoutes(t *testing.T) {
	a := newAPI(t)
	admin := token(t, flowshttp.RoleAdmin, "")
	resp, err := http.Get(a.base + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if len(doc.Paths) < 15 {
		t.Fatalf("only %d paths documented", len(doc.Paths))
	}
	for path, ops := range doc.Paths {
		concrete := strings.NewReplacer("{serial}", "EML1100000001", "{id}", "00000000-0000-0000-0000-000000000000").Replace(path)
		for method := range ops {
			req, _ := http.NewRequest(strings.ToUpper(method), a.base+concrete, strings.NewReader("{}"))
			req.Header.Set("Authorization", "Bearer "+admin)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var p map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&p)
			resp.Body.Close()
			if resp.StatusCode == 405 || (resp.StatusCode == 404 && strings.Contains(p["detail"].(string), "no such API resource")) {
				t.Errorf("%s %s documented but not served (%d)", method, path, resp.StatusCode)
			}
		}
	}
	if code, p := a.do("GET", "/api/v1/nothing-here", admin, nil); code != 404 || p["code"] != "not_found" {
		t.Errorf("unknown route: %d %v", code, p)
	}
	// Metrics count every ESCO's meters: an unscoped admin's only.
	for tok, want := range map[string]int{"": 401, token(t, flowshttp.RoleOperator, ""): 403, token(t, flowshttp.RoleAdmin, "AAA"): 403, admin: 200} {
		req, _ := http.NewRequest("GET", a.base+"/metrics", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("metrics: %d, want %d", resp.StatusCode, want)
		}
	}
}

// syncNow is an API server's on-demand sync: an engine that queues the
// job and leaves it to whichever engine works the queue.
func syncNow(t testing.TB, store *postgres.Store) func(ctx context.Context, meterID string) error {
	t.Helper()
	eng, err := syncer.New(syncer.Config{Store: store,
		NewQueue: func(c *river.Config) (syncer.JobQueue, error) { return store.NewQueueClient(c) }})
	if err != nil {
		t.Fatal(err)
	}
	return eng.SyncNow
}

// The attention list names the meters forecast to lose supply within the
// hours asked (48 by default), soonest first, and a token limited to an
// ESCO sees only its own; the meter resource carries credit_runs_out_at.
func TestLosingSupplyView(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()
	// Spending £2.40 a day, the newest reading an hour ago, £15 of
	// emergency credit: EML1100000001 at £4.10 (cut in about 8 days),
	// EML1100000002 at £-12.90 (in 20 h), BBB's EML2200000001 at £-13.90
	// (in 10 h).
	now := time.Now().UTC().Truncate(time.Second)
	for serial, last := range map[string]float64{"EML1100000001": 4, "EML1100000002": -13, "EML2200000001": -14} {
		m, err := a.store.MeterBySerial(ctx, serial)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.store.Pool().Exec(ctx, `UPDATE flows.meter_shadows SET tariffs_active = '{"prepayment_ecredit_availability": 10, "prepayment_emergency_credit": 15}' WHERE id = $1`, m.ID); err != nil {
			t.Fatal(err)
		}
		// The fixture's own readings out of the way: these are the history.
		if _, err := a.store.Pool().Exec(ctx, `DELETE FROM flows.meter_prepay_balance WHERE meter_id = $1`, m.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := a.store.Pool().Exec(ctx, `INSERT INTO flows.meter_prepay_balance (meter_id, "timestamp", balance)
			SELECT $1, $2::timestamptz - h * interval '1 hour', $3 + 0.1 * h FROM generate_series(1, 48) h`, m.ID, now, last); err != nil {
			t.Fatal(err)
		}
		if _, err := a.store.Pool().Exec(ctx, `SELECT flows.rebuild_spend_days($1)`, m.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := a.store.Pool().Exec(ctx, `SELECT flows.refresh_credit_forecast($1)`, m.ID); err != nil {
			t.Fatal(err)
		}
	}
	admin := token(t, flowshttp.RoleAdmin, "")
	serials := func(p map[string]any) []string {
		var out []string
		for _, m := range p["meters"].([]any) {
			out = append(out, m.(map[string]any)["serial"].(string))
		}
		return out
	}
	if code, p := a.do("GET", "/api/v1/views/losing-supply", admin, nil); code != 200 || !slices.Equal(serials(p), []string{"EML2200000001", "EML1100000002"}) {
		t.Errorf("losing supply within 48 h: %d %v, want BBB's meter then EML1100000002", code, p)
	}
	if code, p := a.do("GET", "/api/v1/views/losing-supply?hours=240", token(t, flowshttp.RoleReadonly, "AAA"), nil); code != 200 ||
		!slices.Equal(serials(p), []string{"EML1100000002", "EML1100000001"}) {
		t.Errorf("AAA's meters losing supply within 10 days: %d %v, want its two, soonest first", code, p)
	}
	if code, p := a.do("GET", "/api/v1/views/losing-supply?hours=0", admin, nil); code != 400 || p["field"] != "hours" {
		t.Errorf("hours=0: %d %v, want 400 naming hours", code, p)
	}
	// The dashboard's attention page lists them too, for the operator's
	// ESCO only.
	req, _ := http.NewRequest("GET", a.base+"/views", nil)
	req.AddCookie(session(t, a.base, token(t, flowshttp.RoleReadonly, "AAA")))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, panel, _ := strings.Cut(string(page), `id="losing-supply"`)
	panel, _, _ = strings.Cut(panel, "</table>")
	if resp.StatusCode != 200 || !strings.Contains(panel, "EML1100000002") || strings.Contains(panel, "EML2200000001") || strings.Contains(panel, "EML1100000001") {
		t.Errorf("attention page for AAA: %d, losing-supply panel %q; want EML1100000002 only", resp.StatusCode, panel)
	}
	_, m := a.do("GET", "/api/v1/meters/EML1100000002", admin, nil)
	if at, err := time.Parse(time.RFC3339, fmt.Sprint(m["credit_runs_out_at"])); err != nil || at.Sub(now.Add(20*time.Hour)).Abs() > time.Minute {
		t.Errorf("credit_runs_out_at %v (%v), want 20 h from now", m["credit_runs_out_at"], err)
	}
}

// The self-disconnection report counts an ESCO's periods in the range
// asked, as JSON, as CSV and on the dashboard's page; a token limited to
// an ESCO sees only its own; a bad range is refused naming the parameter.
func TestSelfDisconnectionReport(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(-48 * time.Hour)
	// AAA's EML1100000001 off supply twice (3 h, then 1 h), BBB's
	// EML2200000001 once and still off.
	for _, p := range []struct {
		serial     string
		start, end time.Duration
	}{{"EML1100000001", 2 * time.Hour, 5 * time.Hour}, {"EML1100000001", 10 * time.Hour, 11 * time.Hour}, {"EML2200000001", 20 * time.Hour, 0}} {
		m, err := a.store.MeterBySerial(ctx, p.serial)
		if err != nil {
			t.Fatal(err)
		}
		var end *time.Time
		if p.end > 0 {
			e := day.Add(p.end)
			end = &e
		}
		if _, err := a.store.Pool().Exec(ctx, `INSERT INTO flows.meter_self_disconnections (meter_id, started_at, ended_at, source) VALUES ($1, $2, $3, 'events')`,
			m.ID, day.Add(p.start), end); err != nil {
			t.Fatal(err)
		}
	}
	from := day.Format("2006-01-02")
	aaa := token(t, flowshttp.RoleReadonly, "AAA")
	code, p := a.do("GET", "/api/v1/reports/self-disconnections?from="+from, aaa, nil)
	if code != 200 || p["disconnections"] != 2.0 || p["meters"] != 1.0 || p["total_hours"] != "4" || p["ongoing"] != 0.0 {
		t.Fatalf("AAA's report: %d %v, want 2 disconnections of one meter, 4 hours", code, p)
	}
	if rep := p["repeated"].([]any); len(rep) != 1 || rep[0].(map[string]any)["serial"] != "EML1100000001" {
		t.Errorf("repeated: %v, want EML1100000001", rep)
	}
	if l := p["longest"].(map[string]any); l["seconds"] != 3*3600.0 {
		t.Errorf("longest %v, want the 3 h one", l)
	}
	admin := token(t, flowshttp.RoleAdmin, "")
	if code, p := a.do("GET", "/api/v1/reports/self-disconnections?from="+from+"&esco=BBB", admin, nil); code != 200 || p["disconnections"] != 1.0 || p["ongoing"] != 1.0 {
		t.Errorf("BBB's report for an admin: %d %v, want one, still going", code, p)
	}
	for q, field := range map[string]string{"from=yesterday": "from", "to=2026-13-01": "to", "from=2026-01-01&to=2025-01-01": "from", "from=2020-01-01&to=2026-01-01": "to"} {
		if code, p := a.do("GET", "/api/v1/reports/self-disconnections?"+q, aaa, nil); code != 400 || p["field"] != field {
			t.Errorf("%s: %d %v, want 400 naming %s", q, code, p, field)
		}
	}

	req, _ := http.NewRequest("GET", a.base+"/api/v1/reports/self-disconnections.csv?from="+from, nil)
	req.Header.Set("Authorization", "Bearer "+aaa)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/csv" || len(lines) != 3 || lines[0] != "serial,name,started_at,ended_at,hours,source" ||
		!strings.HasPrefix(lines[1], "EML1100000001,") || !strings.HasSuffix(lines[2], ",3.00,events") || strings.Contains(string(body), "EML2200000001") {
		t.Errorf("AAA's CSV: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}

	req, _ = http.NewRequest("GET", a.base+"/reports/self-disconnections?from="+from, nil)
	req.AddCookie(session(t, a.base, aaa))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, periods, _ := strings.Cut(string(page), `id="report-periods"`)
	if resp.StatusCode != 200 || !strings.Contains(string(page), `id="report-count">2<`) || strings.Count(periods, `<tr><td><a href="/meters/EML1100000001">`) != 2 || strings.Contains(string(page), "EML2200000001") {
		t.Errorf("AAA's report page: %d\n%s", resp.StatusCode, page)
	}
}

// Alert rules are made and listed through the API within the caller's
// ESCO, bad rules refused naming the field; an episode shows in the API
// and on the Attention page for its ESCO only, and an operator (not a
// reader) acknowledges it there or through the API.
func TestAlertsAPIAndAttentionPage(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()
	admin, aaaOp, aaaRO, bbbOp := token(t, flowshttp.RoleAdmin, ""), token(t, flowshttp.RoleOperator, "AAA"),
		token(t, flowshttp.RoleReadonly, "AAA"), token(t, flowshttp.RoleOperator, "BBB")
	for field, body := range map[string]map[string]any{
		"kind":           {"name": "x", "kind": "sometimes"},
		"threshold":      {"name": "x", "kind": "low_balance"},
		"webhook_secret": {"name": "x", "kind": "self_disconnected", "webhook_url": "https://esco.example/hook", "webhook_secret": "short"},
		"webhook_url":    {"name": "x", "kind": "self_disconnected", "webhook_url": "ftp://esco.example", "webhook_secret": "0123456789abcdef"},
		"esco":           {"name": "x", "kind": "self_disconnected", "esco": "BBB"},
	} {
		if code, p := a.do("POST", "/api/v1/alert-rules", aaaOp, body); code != 400 || p["field"] != field {
			t.Errorf("rule %v: %d %v, want 400 naming %s", body, code, p, field)
		}
	}
	if code, _ := a.do("POST", "/api/v1/alert-rules", aaaRO, map[string]any{"name": "x", "kind": "self_disconnected"}); code != 403 {
		t.Errorf("a reader making a rule: %d, want 403", code)
	}
	code, rule := a.do("POST", "/api/v1/alert-rules", aaaOp, map[string]any{"name": "Under £5", "kind": "low_balance", "threshold": "5"})
	if code != 201 || rule["esco"] != "AAA" || rule["enabled"] != true || rule["threshold"] != "5" {
		t.Fatalf("AAA's operator making a rule: %d %v", code, rule)
	}
	if code, p := a.do("GET", "/api/v1/alert-rules", bbbOp, nil); code != 200 || len(p["rules"].([]any)) != 0 {
		t.Errorf("BBB's rules: %d %v, want none", code, p)
	}
	if code, p := a.do("GET", "/api/v1/alert-rules", admin, nil); code != 200 || len(p["rules"].([]any)) != 1 {
		t.Errorf("every ESCO's rules for an admin: %d %v, want AAA's one", code, p)
	}

	m, err := a.store.MeterBySerial(ctx, "EML1100000001")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.Pool().Exec(ctx, `UPDATE flows.meter_shadows SET balance = 3.2 WHERE id = $1`, m.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.store.EvaluateAlerts(ctx); err != nil {
		t.Fatal(err)
	}
	code, p := a.do("GET", "/api/v1/alerts", aaaRO, nil)
	if code != 200 || len(p["alerts"].([]any)) != 1 {
		t.Fatalf("AAA's firing alerts: %d %v, want one", code, p)
	}
	alert := p["alerts"].([]any)[0].(map[string]any)
	id := alert["id"].(string)
	if alert["serial"] != "EML1100000001" || alert["detail"] != "balance £3.20, under £5.00" {
		t.Errorf("the alert: %v", alert)
	}
	if code, p := a.do("GET", "/api/v1/alerts", bbbOp, nil); code != 200 || len(p["alerts"].([]any)) != 0 {
		t.Errorf("BBB's alerts: %d %v, want none", code, p)
	}
	if code, _ := a.do("POST", "/api/v1/alerts/"+id+"/acknowledge", bbbOp, nil); code != 404 {
		t.Errorf("BBB acknowledging AAA's alert: %d, want 404", code)
	}
	if code, _ := a.do("POST", "/api/v1/alerts/"+id+"/acknowledge", aaaRO, nil); code != 403 {
		t.Errorf("a reader acknowledging: %d, want 403", code)
	}

	// The page: a reader sees it without the button, an operator with.
	page := func(tok string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", a.base+"/views", nil)
		req.AddCookie(session(t, a.base, tok))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		_, panel, _ := strings.Cut(string(b), `id="alerts"`)
		panel, _, _ = strings.Cut(panel, "</table>")
		return panel
	}
	if p := page(aaaRO); !strings.Contains(p, "balance £3.20, under £5.00") || strings.Contains(p, "Acknowledge") {
		t.Errorf("AAA's reader's alerts panel: %s", p)
	}
	if p := page(token(t, flowshttp.RoleReadonly, "BBB")); strings.Contains(p, "EML1100000001") {
		t.Errorf("BBB's alerts panel shows AAA's alert: %s", p)
	}
	if p := page(aaaOp); !strings.Contains(p, `action="/alerts/`+id+`/acknowledge"`) {
		t.Errorf("AAA's operator's alerts panel has no acknowledge button: %s", p)
	}
	if code, msg := a.post("/alerts/"+id+"/acknowledge", aaaOp, nil); code != http.StatusSeeOther || msg != "Acknowledged" {
		t.Errorf("acknowledging from the page: %d %q", code, msg)
	}
	if p := page(aaaRO); !strings.Contains(p, "acknowledged by") {
		t.Errorf("after acknowledging, the panel: %s", p)
	}
}

// A meter's top-ups and commands are listed by the API, newest first with
// their status (as the meter page lists them), kept to the caller's ESCO;
// the signal history takes the range asked for; every operation has a
// unique operationId.
func TestMeterTopupsCommandsAndSignalRange(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()
	op, ro := token(t, flowshttp.RoleOperator, "AAA"), token(t, flowshttp.RoleReadonly, "AAA")
	for _, tok := range []string{"11111111111111111111", "22222222222222222222"} {
		if code, p := a.do("POST", "/api/v1/meters/EML1100000001/tokens", op, map[string]any{"token": tok, "amount": "10.00"}); code != 202 {
			t.Fatalf("top-up: %d %v", code, p)
		}
	}
	if code, p := a.do("POST", "/api/v1/meters/EML1100000001/commands", op, map[string]any{"kind": "prepay_enabled", "value": "on"}); code != 202 {
		t.Fatalf("command: %d %v", code, p)
	}
	code, p := a.do("GET", "/api/v1/meters/EML1100000001/tokens", ro, nil)
	ts, _ := p["topups"].([]any)
	if code != 200 || len(ts) != 2 || ts[0].(map[string]any)["status"] != "wait_token_push" || ts[0].(map[string]any)["amount"] != "10" && ts[0].(map[string]any)["amount"] != "10.00" {
		t.Fatalf("top-ups: %d %v, want both, waiting, newest first", code, p)
	}
	if _, p := a.do("GET", "/api/v1/meters/EML1100000001/tokens?limit=1", ro, nil); len(p["topups"].([]any)) != 1 {
		t.Errorf("limit=1: %v", p)
	}
	if code, p := a.do("GET", "/api/v1/meters/EML1100000001/tokens?days=0", ro, nil); code != 400 || p["field"] != "days" {
		t.Errorf("days=0: %d %v, want 400 naming days", code, p)
	}
	code, p = a.do("GET", "/api/v1/meters/EML1100000001/commands", ro, nil)
	cs, _ := p["commands"].([]any)
	if code != 200 || len(cs) != 1 || cs[0].(map[string]any)["kind"] != "prepay_enabled" {
		t.Errorf("commands: %d %v, want the prepay_enabled command", code, p)
	}
	if code, _ := a.do("GET", "/api/v1/meters/EML1100000001/tokens", token(t, flowshttp.RoleReadonly, "BBB"), nil); code != 404 {
		t.Errorf("another ESCO's meter's top-ups: %d, want 404", code)
	}

	m, err := a.store.MeterBySerial(ctx, "EML1100000001")
	if err != nil {
		t.Fatal(err)
	}
	csq := 17
	now := time.Now().UTC().Truncate(time.Second)
	for _, at := range []time.Time{now.Add(-10 * 24 * time.Hour), now.Add(-2 * time.Hour)} {
		if _, err := a.store.Pool().Exec(ctx, `INSERT INTO flows.meter_csq (meter_id, "timestamp", csq) VALUES ($1, $2, $3)`, m.ID, at, csq); err != nil {
			t.Fatal(err)
		}
	}
	points := func(query string) int {
		t.Helper()
		code, p := a.do("GET", "/api/v1/meters/EML1100000001/signal"+query, ro, nil)
		if code != 200 {
			t.Fatalf("signal%s: %d %v", query, code, p)
		}
		ps, _ := p["points"].([]any)
		return len(ps)
	}
	if n := points(""); n != 1 {
		t.Errorf("signal, default 7 days: %d points, want the one of 2 h ago", n)
	}
	if n := points("?from=" + now.Add(-11*24*time.Hour).Format(time.RFC3339)); n != 2 {
		t.Errorf("signal from 11 days ago: %d points, want 2", n)
	}
	if code, p := a.do("GET", "/api/v1/meters/EML1100000001/signal?from="+now.Format(time.RFC3339)+"&to="+now.Add(-time.Hour).Format(time.RFC3339), ro, nil); code != 400 || p["field"] != "to" {
		t.Errorf("signal to before from: %d %v, want 400 naming to", code, p)
	}

	resp, err := http.Get(a.base + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for path, ops := range doc["paths"].(map[string]any) {
		for method, o := range ops.(map[string]any) {
			id, _ := o.(map[string]any)["operationId"].(string)
			if id == "" || seen[id] != "" {
				t.Errorf("%s %s: operationId %q (also %s)", method, path, id, seen[id])
			}
			seen[id] = method + " " + path
		}
	}
	if seen["getMeterBalance"] != "get /api/v1/meters/{serial}/balance" || seen["postMeterTokens"] != "post /api/v1/meters/{serial}/tokens" {
		t.Errorf("operationIds: %v", seen)
	}
}
