package http_test

import (
	"context"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	flowshttp "github.com/flows-energy/flows/http"
)

// The meter list and detail give last_online by the rule of
// flows.meter_last_online: the last time the meter answered, kept while
// it is offline.
func TestLastOnlineInListAndDetail(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()
	m, err := a.store.MeterBySerial(ctx, "EML1100000001")
	if err != nil {
		t.Fatal(err)
	}
	answered := time.Now().UTC().Add(-5 * time.Hour).Truncate(time.Second)
	csq := 14
	if err := a.store.UpdateShadow(ctx, m.ID, flows.ShadowUpdate{CSQ: &csq, At: answered}); err != nil {
		t.Fatal(err)
	}
	if err := a.store.UpdateShadow(ctx, m.ID, flows.ShadowUpdate{ClearCSQ: true, At: answered.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	var want time.Time
	if err := a.store.Pool().QueryRow(ctx, `SELECT last_online FROM flows.meter_last_online WHERE id = $1`, m.ID).Scan(&want); err != nil {
		t.Fatal(err)
	}
	if !want.Equal(answered) {
		t.Fatalf("meter_last_online %v, want %v", want, answered)
	}
	tok := token(t, flowshttp.RoleReadonly, "")
	_, list := a.do("GET", "/api/v1/meters?q=EML1100000001", tok, nil)
	items, _ := list["meters"].([]any)
	if len(items) != 1 {
		t.Fatalf("list: %v", list)
	}
	if got, _ := items[0].(map[string]any)["last_online"].(string); got != want.Format(time.RFC3339) {
		t.Errorf("list last_online %q, want %s", got, want.Format(time.RFC3339))
	}
	_, detail := a.do("GET", "/api/v1/meters/EML1100000001", tok, nil)
	if got, _ := detail["last_online"].(string); got != want.Format(time.RFC3339) {
		t.Errorf("detail last_online %q, want %s", got, want.Format(time.RFC3339))
	}
	// A meter that never answered says so with null.
	_, other := a.do("GET", "/api/v1/meters/EML2200000001", tok, nil)
	if v, ok := other["last_online"]; !ok || v != nil {
		t.Errorf("never answered: last_online %v (present %v), want null", v, ok)
	}
}
