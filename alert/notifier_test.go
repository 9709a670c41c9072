package alert_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/alert"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/postgres"
	"github.com/riverqueue/river"
	"github.com/shopspring/decimal"
)

const secret = "a-long-shared-secret"

// receiver is a webhook endpoint that checks each delivery's signature,
// keeps what it was sent, and answers 503 while down.
type receiver struct {
	t        *testing.T
	srv      *httptest.Server
	down     atomic.Bool
	refused  atomic.Int32
	mu       sync.Mutex
	payloads []alert.Payload
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{t: t}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if got := r.Header.Get(alert.SignatureHeader); got != alert.Sign(secret, body) {
			t.Errorf("delivery signed %q, want %q", got, alert.Sign(secret, body))
		}
		if rc.down.Load() {
			rc.refused.Add(1)
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		var p alert.Payload
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("delivery %s: %v", body, err)
		}
		rc.mu.Lock()
		rc.payloads = append(rc.payloads, p)
		rc.mu.Unlock()
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) got() []alert.Payload {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]alert.Payload(nil), rc.payloads...)
}

// waitFor polls until cond holds, or fails after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("after %v: %s", d, what)
		}
	}
}

// A low-balance rule fires once when a meter falls under it (however many
// evaluations see it there), resolves when a top-up lifts it, and fires
// again for the next episode; each change reaches the webhook signed and
// exactly once, in order for the meter, also when the receiver was down
// while they happened (its refusals retried and logged); another ESCO's
// operator sees none of it.
func TestAlertEpisodesDeliveredOnceInOrder(t *testing.T) {
	pool := pgtest.NewPool(t)
	store := postgres.NewStore(pool)
	ctx := context.Background()
	for _, e := range []string{"AAA", "BBB"} {
		if _, err := store.CreateESCO(ctx, e, e); err != nil {
			t.Fatal(err)
		}
	}
	m, err := store.CreateMeter(ctx, flows.NewMeter{Serial: "EML1000000401", ESCOCode: "AAA", IPAddress: "10.0.4.1", Port: 8080, Hardware: "B1.w"})
	if err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t)
	five := decimal.NewFromInt(5)
	rule, err := store.CreateAlertRule(ctx, flows.NewAlertRule{ESCO: "AAA", Name: "Under £5", Kind: flows.AlertLowBalance, Threshold: &five,
		WebhookURL: rc.srv.URL, WebhookSecret: secret}, "test")
	if err != nil {
		t.Fatal(err)
	}
	var evaluations atomic.Int64
	n, err := alert.New(alert.Config{Store: store, EvaluateEvery: 100 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		NewQueue:    func(c *river.Config) (alert.JobQueue, error) { return store.NewQueueClient(c) },
		OnEvaluated: func(int) { evaluations.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	balance := func(b string) {
		t.Helper()
		if _, err := pool.Exec(ctx, `UPDATE flows.meter_shadows SET balance = $2 WHERE id = $1`, m.ID, b); err != nil {
			t.Fatal(err)
		}
	}
	settle := func() { // two evaluations after a change: it has been seen
		t.Helper()
		k := evaluations.Load()
		waitFor(t, 10*time.Second, "two evaluations", func() bool { return evaluations.Load() >= k+2 })
	}
	balance("12")
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	settle()
	balance("3.20")
	settle()
	settle()
	waitFor(t, 10*time.Second, "the firing delivered", func() bool { return len(rc.got()) == 1 })
	first := rc.got()[0]
	if first.Event != "fired" || first.Alert.Serial != "EML1000000401" || first.Alert.RuleID != rule.ID || first.Alert.Detail != "balance £3.20, under £5.00" {
		t.Errorf("fired with %+v", first)
	}

	// Down while the episode ends and the next begins and ends.
	rc.down.Store(true)
	for _, b := range []string{"25", "4", "30"} {
		balance(b)
		settle()
	}
	waitFor(t, 10*time.Second, "the receiver refused at least twice", func() bool { return rc.refused.Load() >= 2 })
	rc.down.Store(false)
	waitFor(t, 20*time.Second, "the three changes delivered after the receiver came back", func() bool { return len(rc.got()) >= 4 })
	settle()
	got := rc.got()
	want := []string{"fired", "resolved", "fired", "resolved"}
	if len(got) != len(want) {
		t.Fatalf("%d deliveries, want %d: %+v", len(got), len(want), got)
	}
	seen := map[string]bool{}
	for i, p := range got {
		if p.Event != want[i] || (i > 0 && p.Sequence <= got[i-1].Sequence) || seen[p.ID] {
			t.Errorf("delivery %d: %s of %s (seq %d), want %s, in order, once each", i, p.Event, p.Alert.ID, p.Sequence, want[i])
		}
		seen[p.ID] = true
	}
	if got[0].Alert.ID != got[1].Alert.ID || got[2].Alert.ID != got[3].Alert.ID || got[1].Alert.ID == got[2].Alert.ID {
		t.Errorf("episodes %s %s %s %s: want two, each fired then resolved", got[0].Alert.ID, got[1].Alert.ID, got[2].Alert.ID, got[3].Alert.ID)
	}

	// The log shows the refusals; the operator's view keeps to its ESCO.
	ds, err := store.AlertDeliveries(ctx, got[1].Alert.ID, "AAA")
	if err != nil || len(ds) != 2 || ds[0].Event != "fired" || ds[0].Attempts != 1 || ds[1].Event != "resolved" || ds[1].DeliveredAt == nil ||
		ds[1].Attempts < 2 || ds[1].LastStatus == nil || *ds[1].LastStatus != 200 {
		t.Errorf("delivery log of the episode ended while down: %+v %v, want its firing delivered at once and its end after refused attempts", ds, err)
	}
	if as, err := store.Alerts(ctx, "BBB", false, 100); err != nil || len(as) != 0 {
		t.Errorf("BBB's alerts: %+v %v, want none", as, err)
	}
	if as, err := store.Alerts(ctx, "AAA", false, 100); err != nil || len(as) != 2 || as[0].ResolvedAt == nil {
		t.Errorf("AAA's alerts: %+v %v, want the two episodes, resolved", as, err)
	}
	if _, err := store.AcknowledgeAlert(ctx, got[0].Alert.ID, "BBB", "bbb-operator"); flows.ErrorCode(err) != flows.ENOTFOUND {
		t.Errorf("BBB acknowledging AAA's alert: %v, want not found", err)
	}
	if a, err := store.AcknowledgeAlert(ctx, got[0].Alert.ID, "AAA", "aaa-operator"); err != nil || a.AcknowledgedBy != "aaa-operator" || a.AcknowledgedAt == nil {
		t.Errorf("AAA acknowledging its alert: %+v %v", a, err)
	}
}

// A receiver down for longer than a delivery's job keeps retrying (two
// attempts here; 25 over 1 h 42 min in production) loses nothing: River
// discards the job, the next evaluation queues the delivery again, and
// once the receiver is back it hears of the episode exactly once.
func TestWebhookDownLongerThanItsRetries(t *testing.T) {
	pool := pgtest.NewPool(t)
	store := postgres.NewStore(pool)
	ctx := context.Background()
	if _, err := store.CreateESCO(ctx, "AAA", "AAA"); err != nil {
		t.Fatal(err)
	}
	m, err := store.CreateMeter(ctx, flows.NewMeter{Serial: "EML1000000402", ESCOCode: "AAA", IPAddress: "10.0.4.2", Port: 8080, Hardware: "B1.w"})
	if err != nil {
		t.Fatal(err)
	}
	rc := newReceiver(t)
	rc.down.Store(true)
	five := decimal.NewFromInt(5)
	if _, err := store.CreateAlertRule(ctx, flows.NewAlertRule{ESCO: "AAA", Name: "Under £5", Kind: flows.AlertLowBalance, Threshold: &five,
		WebhookURL: rc.srv.URL, WebhookSecret: secret}, "test"); err != nil {
		t.Fatal(err)
	}
	n, err := alert.New(alert.Config{Store: store, EvaluateEvery: 200 * time.Millisecond, MaxBackoff: 10 * time.Millisecond, MaxAttempts: 2,
		NewQueue: func(c *river.Config) (alert.JobQueue, error) { return store.NewQueueClient(c) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE flows.meter_shadows SET balance = 3 WHERE id = $1`, m.ID); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	discarded := func() int {
		var k int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+postgres.QueueSchema+`.river_job WHERE kind = 'alert_delivery' AND state = 'discarded'`).Scan(&k); err != nil {
			t.Fatal(err)
		}
		return k
	}
	waitFor(t, 30*time.Second, "two of the delivery's jobs given up after their attempts", func() bool { return discarded() >= 2 })
	if len(rc.got()) != 0 || rc.refused.Load() < 4 {
		t.Fatalf("while down: %d delivered, %d refused; want none delivered, every attempt refused", len(rc.got()), rc.refused.Load())
	}
	rc.down.Store(false)
	waitFor(t, 30*time.Second, "the firing delivered once the receiver is back", func() bool { return len(rc.got()) == 1 })
	time.Sleep(time.Second) // evaluations go on: nothing more is owed
	if got := rc.got(); len(got) != 1 || got[0].Event != "fired" || got[0].Alert.Serial != "EML1000000402" {
		t.Errorf("after the outage: %+v, want the one firing", got)
	}
}
