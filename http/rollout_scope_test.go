package http_test

import (
	"net/http"
	"testing"
	"time"

	flowshttp "github.com/flows-energy/flows/http"
)

// A rollout is its ESCO's: an operator of another ESCO gets 404 from the
// API and the dashboard; a read-only colleague of the same ESCO sees it.
func TestRolloutScope(t *testing.T) {
	a := newAPI(t)
	opB := token(t, flowshttp.RoleOperator, "BBB")
	body := futureTariff(time.Now().Add(72 * time.Hour))
	code, ro := a.do("POST", "/api/v1/rollouts", opB, map[string]any{"tariff": body, "serials": []string{"EML2200000001"}})
	if code != 201 && code != 202 {
		t.Fatalf("create rollout: %d %v", code, ro)
	}
	id, _ := ro["id"].(string)
	for _, c := range []struct {
		who  string
		tok  string
		want int
	}{
		{"operator of another ESCO", token(t, flowshttp.RoleOperator, "AAA"), 404},
		{"read-only colleague", token(t, flowshttp.RoleReadonly, "BBB"), 200},
		{"read-only colleague, other case", token(t, flowshttp.RoleReadonly, "bbb"), 200},
		{"admin", token(t, flowshttp.RoleAdmin, ""), 200},
	} {
		if got, _ := a.do("GET", "/api/v1/rollouts/"+id, c.tok, nil); got != c.want {
			t.Errorf("%s: API %d, want %d", c.who, got, c.want)
		}
		req, _ := http.NewRequest("GET", a.base+"/rollouts/"+id, nil)
		req.AddCookie(session(t, a.base, c.tok))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: dashboard %d, want %d", c.who, resp.StatusCode, c.want)
		}
	}
}
