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

// The tariffs resource says whether the future tariff is a change to come.
func TestTariffsSayWhetherAChangeIsPending(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()
	m, err := a.store.MeterBySerial(ctx, "EML1100000001")
	if err != nil {
		t.Fatal(err)
	}
	tok := token(t, flowshttp.RoleReadonly, "")
	for _, c := range []struct {
		activation string
		want       bool
	}{{"2000-01-01T00:00:00", false}, {time.Now().UTC().Add(48 * time.Hour).Format("2006-01-02T15:04:05"), true}} {
		act := c.activation
		if err := a.store.UpdateShadow(ctx, m.ID, flows.ShadowUpdate{TariffsFuture: &flows.Tariff{ActivationDatetime: &act}}); err != nil {
			t.Fatal(err)
		}
		_, body := a.do("GET", "/api/v1/meters/EML1100000001/tariffs", tok, nil)
		if got, ok := body["future_pending"].(bool); !ok || got != c.want {
			t.Errorf("activation %s: future_pending %v, want %v", act, body["future_pending"], c.want)
		}
	}
}
