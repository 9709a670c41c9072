package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	flowshttp "github.com/flows-energy/flows/http"
)

// openAPI fetches the served document.
func openAPI(t *testing.T, a *api) map[string]any {
	t.Helper()
	resp, err := http.Get(a.base + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// Every operation says what it answers, and every write what it takes.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc := openAPI(t, newAPI(t))
	for path, ops := range doc["paths"].(map[string]any) {
		for method, op := range ops.(map[string]any) {
			op := op.(map[string]any)
			var ok map[string]any
			for code, r := range op["responses"].(map[string]any) {
				if code[0] == '2' {
					ok = r.(map[string]any)
				}
			}
			if ok == nil || ok["content"] == nil {
				t.Errorf("%s %s: no success response body documented", method, path)
			}
			if method != "get" && !strings.HasSuffix(path, "/sync") && !strings.HasSuffix(path, "/acknowledge") && op["requestBody"] == nil {
				t.Errorf("%s %s: no request body documented", method, path)
			}
		}
	}
	// The command body says which value each kind takes (what a user
	// otherwise learns by trying).
	ref := schemaAt(doc, "post", "/api/v1/meters/{serial}/commands", true)["$ref"].(string)
	cmd := doc["components"].(map[string]any)["schemas"].(map[string]any)[strings.TrimPrefix(ref, "#/components/schemas/")]
	if b, _ := json.Marshal(cmd); !strings.Contains(string(b), `"enum":["on","off"]`) || !strings.Contains(string(b), "always_on_sp") {
		t.Errorf("command body schema lacks the values per kind: %s", b)
	}
}

// What the API answers is what its document says: every operation is
// called once with a body it accepts, and each exchange is held to the
// document by the independent validator (documentCheck, on every exchange) — types,
// required fields, enums, nullability, and no field the document does not
// declare (its objects allow no others).
func TestOpenAPIResponsesMatchTheirSchemas(t *testing.T) {
	a := newAPI(t)
	doc := openAPI(t, a)
	admin := token(t, flowshttp.RoleAdmin, "")
	at := time.Now().Add(72 * time.Hour)
	_, tu := a.do("POST", "/api/v1/meters/EML1100000002/tokens", admin, map[string]any{"token": "12345678901234567890", "amount": "10.00"})
	_, tr := a.do("PUT", "/api/v1/meters/EML1100000001/tariffs/future", admin, futureTariff(at))
	_, cmd := a.do("POST", "/api/v1/meters/EML1100000001/commands", admin, map[string]any{"kind": "prepay_enabled", "value": "on"})
	_, ro := a.do("POST", "/api/v1/rollouts", admin, map[string]any{"tariff": futureTariff(at), "esco": "AAA"})
	_, rule := a.do("POST", "/api/v1/alert-rules", admin, map[string]any{"esco": "AAA", "name": "Off supply", "kind": "self_disconnected"})
	var episode string
	if err := a.store.Pool().QueryRow(context.Background(), `INSERT INTO flows.alert_episodes (rule_id, meter_id, detail)
		SELECT $1, id, 'off supply' FROM flows.meter_registry WHERE serial = 'EML1100000001' RETURNING id`, rule["id"]).Scan(&episode); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{
		"/api/v1/alert-rules/{id}":        fmt.Sprint(rule["id"]),
		"/api/v1/alerts/{id}/acknowledge": episode,
		"/api/v1/alerts/{id}/deliveries":  episode,
		"/api/v1/topups/{id}":             fmt.Sprint(tu["id"]),
		"/api/v1/tariff-requests/{id}":    fmt.Sprint(tr["id"]),
		"/api/v1/commands/{id}":           fmt.Sprint(cmd["id"]),
		"/api/v1/rollouts/{id}":           fmt.Sprint(ro["id"]),
	}
	bodies := map[string]any{
		"POST /api/v1/meters":                        map[string]any{"serial": "EML3300000001", "ip_address": "127.110.3.1", "esco": "AAA"},
		"PATCH /api/v1/meters/{serial}":              map[string]any{"name": "renamed"},
		"PUT /api/v1/meters/{serial}/tariffs/future": futureTariff(at.Add(time.Hour)),
		"POST /api/v1/meters/{serial}/tokens":        map[string]any{"token": "22345678901234567890"},
		"POST /api/v1/meters/{serial}/commands":      map[string]any{"kind": "clock"},
		"POST /api/v1/rollouts":                      map[string]any{"tariff": futureTariff(at.Add(2 * time.Hour)), "serials": []string{"EML1100000002"}},
		"POST /api/v1/alert-rules":                   map[string]any{"esco": "AAA", "name": "Under £5", "kind": "low_balance", "threshold": "5", "webhook_url": "https://esco.example/hook", "webhook_secret": "0123456789abcdef"},
		"PATCH /api/v1/alert-rules/{id}":             map[string]any{"enabled": false},
	}
	checked := 0
	for path, ops := range doc["paths"].(map[string]any) {
		for method := range ops.(map[string]any) {
			if strings.HasSuffix(path, ".csv") {
				continue // text/csv: TestIntervalsCSV compares it byte for byte
			}
			concrete := strings.ReplaceAll(path, "{serial}", "EML1100000001")
			if id, ok := ids[path]; ok {
				concrete = strings.ReplaceAll(path, "{id}", id)
			}
			code, raw := a.raw(strings.ToUpper(method), concrete, admin, bodies[strings.ToUpper(method)+" "+path])
			if code >= 300 {
				t.Errorf("%s %s: %d %s", method, concrete, code, raw)
				continue
			}
			// the exchange was held to the document (documentCheck).
			checked++
		}
	}
	if checked < 20 {
		t.Errorf("only %d operations checked", checked)
	}
}

// raw sends a request and returns the status and body as they came.
func (a *api) raw(method, path, tok string, body any) (int, []byte) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		js, _ := json.Marshal(body)
		rd = strings.NewReader(string(js))
	}
	req, _ := http.NewRequest(method, a.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a.checked()
	return resp.StatusCode, b
}

// schemaAt is an operation's success response schema, or its request
// body's.
func schemaAt(doc map[string]any, method, path string, request bool) map[string]any {
	op := doc["paths"].(map[string]any)[path].(map[string]any)[method].(map[string]any)
	var content any
	if request {
		content = op["requestBody"].(map[string]any)["content"]
	} else {
		for code, r := range op["responses"].(map[string]any) {
			if code[0] == '2' {
				content = r.(map[string]any)["content"]
			}
		}
	}
	return content.(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
}
