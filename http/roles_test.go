package http_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	flowshttp "github.com/flows-energy/flows/http"
)

// Every route of the API document (built from the route table, so a new
// route cannot be forgotten) × every kind of caller: no token is 401, a
// role below the route's is 403, another ESCO's operator never reaches
// this ESCO's meter (404), and nobody gets a 5xx.
func TestEveryRouteEveryCaller(t *testing.T) {
	a := newAPI(t)
	resp, err := http.Get(a.base + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Role string `json:"x-flows-role"`
		} `json:"paths"`
	}
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if err != nil || len(doc.Paths) < 15 {
		t.Fatalf("API document: %v, %d paths", err, len(doc.Paths))
	}
	rank := map[string]int{"readonly": 1, "operator": 2, "admin": 3}
	callers := []struct {
		name, tok, esco string
		rank            int
	}{
		{"no token", "", "", 0},
		{"readonly", token(t, flowshttp.RoleReadonly, ""), "", 1},
		{"operator of another ESCO", token(t, flowshttp.RoleOperator, "BBB"), "BBB", 2},
		{"operator of the ESCO", token(t, flowshttp.RoleOperator, "AAA"), "AAA", 2},
		{"admin", token(t, flowshttp.RoleAdmin, ""), "", 3},
	}
	routes := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			routes++
			method = strings.ToUpper(method)
			url := strings.NewReplacer("{serial}", "EML1100000001", "{id}", "00000000-0000-4000-8000-000000000000").Replace(path)
			var body any
			if method != "GET" {
				body = map[string]any{}
			}
			for _, c := range callers {
				status, p := a.do(method, url, c.tok, body)
				switch {
				case c.tok == "" && status != 401:
					t.Errorf("%s %s, %s: %d, want 401", method, path, c.name, status)
				case c.tok != "" && c.rank < rank[op.Role] && status != 403:
					t.Errorf("%s %s (%s), %s: %d, want 403", method, path, op.Role, c.name, status)
				case c.tok != "" && c.rank >= rank[op.Role] && (status == 401 || status == 403):
					t.Errorf("%s %s (%s), %s: %d %v, want through", method, path, op.Role, c.name, status, p["detail"])
				case c.esco == "BBB" && c.rank >= rank[op.Role] && strings.Contains(path, "{serial}") && status != 404:
					t.Errorf("%s %s, %s: %d, want 404 for another ESCO's meter", method, path, c.name, status)
				case status >= 500:
					t.Errorf("%s %s, %s: %d %v", method, path, c.name, status, p["detail"])
				}
			}
		}
	}
	if routes < 23 { // 21, and the intervals routes (JSON and SMIP CSV)
		t.Errorf("only %d routes in the document", routes)
	}
}
