package command_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	flowshttp "github.com/flows-energy/flows/http"
)

// A future tariff set through the HTTP API is pushed, verified, and active
// on the meter after its activation instant.
func TestTariffThroughAPIBecomesActive(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	r := newRig(t, start, "127.106")
	ctx := context.Background()
	secret := []byte("0123456789abcdef0123456789abcdef")
	srv := flowshttp.NewServer(flowshttp.Config{Addr: "127.0.0.1:0", Store: r.store, JWTSecret: secret})
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Stop(context.Background()) }()
	tok, _ := flowshttp.IssueToken(secret, "grace", flowshttp.RoleOperator, "", time.Hour, time.Now())
	m := r.fleet.Meters()[2]
	act := start.Add(30 * time.Hour).Truncate(time.Hour)
	body, _ := json.Marshal(map[string]any{"standing_charge": "0.49", "unit_rate_element_a": "0.2211", "unit_rate_element_b": "0.2211",
		"prepayment_emergency_credit": "15", "prepayment_ecredit_availability": "10", "prepayment_debt_recovery_rate": "0.25",
		"activation_datetime": act.Format(time.RFC3339)})
	req, _ := http.NewRequest("PUT", "http://"+srv.Addr()+"/api/v1/meters/"+m.Spec.Serial+"/tariffs/future", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != 202 || out.Status != "pending" {
		t.Fatalf("PUT tariffs/future: %d %+v", resp.StatusCode, out)
	}
	p := r.pusher(t, nil)
	runOnce(t, p)
	if st, _ := r.store.TariffRequestStatus(ctx, out.ID); st != flows.RequestVerified {
		t.Fatalf("after the push: %s", st)
	}
	r.clock.Set(act.Add(time.Minute))
	runOnce(t, p)
	if st, _ := r.store.TariffRequestStatus(ctx, out.ID); st != flows.RequestActive {
		t.Fatalf("after activation: %s", st)
	}
	st, _ := r.store.MeterStatus(ctx, m.Spec.Serial)
	if ta := st.Shadow.TariffsActive; ta == nil || !ta.UnitRateElementA.Equal(d("0.2211")) || !ta.StandingCharge.Equal(d("0.49")) {
		t.Errorf("tariffs_active %+v", ta)
	}
}
