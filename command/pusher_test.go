package command_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/command"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/sim"
	"github.com/shopspring/decimal"
)

var d = decimal.RequireFromString

type rig struct {
	store *postgres.Store
	fleet *sim.Fleet
	clock *sim.ManualClock
	ids   map[string]string
}

func newRig(t *testing.T, start time.Time, prefix string) *rig { return newRigN(t, 4, start, prefix) }

func newRigN(t *testing.T, n int, start time.Time, prefix string) *rig {
	t.Helper()
	ctx := context.Background()
	store := postgres.NewStore(pgtest.NewPool(t))
	clock := sim.NewManualClock(start)
	specs := sim.GenerateFleet(n, sim.FleetOptions{AddressPrefix: prefix, Secret: []byte("cmd")})
	var ms []*sim.Meter
	for _, s := range specs {
		ms = append(ms, sim.NewMeter(s, start))
	}
	fleet := sim.NewFleet(ms, clock, nil)
	if err := fleet.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fleet.Stop)
	var nm []flows.NewMeter
	for _, m := range fleet.Meters() {
		nm = append(nm, flows.NewMeter{Serial: m.Spec.Serial, IPAddress: m.Spec.IPAddress, Port: m.Spec.Port, Hardware: m.Spec.Hardware,
			DaylightSavingsCorrectionEnabled: m.Spec.DST})
	}
	if _, err := store.ImportMeters(ctx, "", nm, nil); err != nil {
		t.Fatal(err)
	}
	r := &rig{store: store, fleet: fleet, clock: clock, ids: map[string]string{}}
	all, _ := store.Meters(ctx, flows.MeterFilter{})
	for _, m := range all {
		r.ids[m.Serial] = m.ID
	}
	return r
}

func (r *rig) pusher(t *testing.T, fail func(string) error) *command.Pusher {
	return r.pusherLease(t, fail, 200*time.Millisecond)
}

// pusherLease is pusher with claims leased for lease: tests that need no
// takeover use a longer one, which a loaded machine does not let lapse
// mid-pass.
func (r *rig) pusherLease(t *testing.T, fail func(string) error, lease time.Duration) *command.Pusher {
	c, err := meterconn.New(meterconn.Config{Attempts: 1, ReadTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// A 200 ms lease (takeovers within a test) is renewed every 50 ms: 8
	// pushes at once, not the default 64, keep those renewals inside it on
	// a loaded test database.
	return command.New(command.Config{Store: r.store, Meters: c, Now: r.clock.Now, Lease: lease, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
		RetryBase: time.Millisecond, FailPoint: fail, Workers: 8})
}

func runOnce(t *testing.T, p *command.Pusher) {
	t.Helper()
	if _, err := p.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
}

const tariffSQL = `UPDATE flows.meter_shadows s SET tariffs_future = jsonb_build_object(
	'standing_charge', $2::numeric, 'unit_rate_element_a', $3::numeric, 'unit_rate_element_b', 0.15,
	'prepayment_ecredit_availability', 10.00, 'prepayment_debt_recovery_rate', 0.25,
	'prepayment_emergency_credit', 15.00, 'activation_datetime', $4::text)
	FROM flows.meter_registry r WHERE r.id = s.id AND r.serial = $1`

func (r *rig) latestRequest(t *testing.T, serial string) *flows.TariffRequest {
	t.Helper()
	var id string
	if err := r.store.Pool().QueryRow(context.Background(), `SELECT id FROM flows.tariff_requests WHERE meter_id = $1 ORDER BY created_at DESC LIMIT 1`, r.ids[serial]).Scan(&id); err != nil {
		t.Fatal(err)
	}
	req, err := r.store.TariffRequest(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// The seed's workflow: a future tariff set with plain SQL is pushed,
// verified, and active on the meter after its activation instant.
func TestTariffFromPlainSQLBecomesActive(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	r := newRig(t, start, "127.92")
	ctx := context.Background()
	m := r.fleet.Meters()[1] // not DST-corrected: activation in UTC
	act := start.Add(3 * time.Hour).Truncate(time.Hour)
	if _, err := r.store.Pool().Exec(ctx, tariffSQL, m.Spec.Serial, "0.61234", "0.33", act.Format("2006-01-02T15:04:05")); err != nil {
		t.Fatal(err)
	}
	req := r.latestRequest(t, m.Spec.Serial)
	if req.Status != flows.RequestPending || req.Source != "sql" || !req.ActivationAt.Equal(act) {
		t.Fatalf("request %+v", req)
	}
	p := r.pusher(t, nil)
	runOnce(t, p)
	req = r.latestRequest(t, m.Spec.Serial)
	if req.Status != flows.RequestVerified {
		t.Fatalf("after the push: %s (%s)", req.Status, req.LastError)
	}
	if st := m.State(r.clock.Now()); decimal.New(st.Future.RateA(), -5).String() != "0.33" || decimal.New(st.Active.RateA(), -5).String() == "0.33" {
		t.Errorf("meter future/active rate A: %d / %d", st.Future.RateA(), st.Active.RateA())
	}
	var audits int
	_ = r.store.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.meter_write_audit WHERE request_id = $1 AND outcome = 'ok'`, req.ID).Scan(&audits)
	if audits != 11 {
		t.Errorf("%d audited writes, want the 11 of the write sequence", audits)
	}
	// Not yet active: the activation instant has not come.
	runOnce(t, p)
	if st := r.latestRequest(t, m.Spec.Serial).Status; st != flows.RequestVerified {
		t.Errorf("before activation: %s", st)
	}
	r.clock.Set(act.Add(30 * time.Second))
	runOnce(t, p)
	if st := r.latestRequest(t, m.Spec.Serial).Status; st != flows.RequestActive {
		t.Fatalf("after activation: %s", st)
	}
	status, _ := r.store.MeterStatus(ctx, m.Spec.Serial)
	if ta := status.Shadow.TariffsActive; ta == nil || !ta.UnitRateElementA.Equal(d("0.33")) || !ta.StandingCharge.Equal(d("0.61234")) {
		t.Errorf("shadow tariffs_active %+v", ta)
	}
}

// Through the service (what the API and CLI call), on a DST-corrected
// meter across the spring clock change: midnight-free 03:00 local is
// 02:00 UTC on the day BST starts.
func TestTariffServiceAcrossClockChange(t *testing.T) {
	start := time.Date(2027, 3, 27, 12, 0, 0, 0, time.UTC)
	r := newRig(t, start, "127.93")
	ctx := context.Background()
	m := r.fleet.Meters()[0] // DST-corrected
	if !m.Spec.DST {
		t.Fatal("meter 0 should be DST-corrected")
	}
	act := "2027-03-28T03:00:00"
	tar := flows.Tariff{StandingCharge: ptr("0.5"), UnitRateElementA: ptr("0.29"), UnitRateElementB: ptr("0.29"),
		PrepaymentEmergencyCredit: ptr("15"), PrepaymentECreditAvailability: ptr("10"), PrepaymentDebtRecoveryRate: ptr("0.25"), ActivationDatetime: &act}
	req, err := r.store.SetFutureTariff(ctx, r.ids[m.Spec.Serial], tar, "api", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !req.ActivationAt.Equal(time.Date(2027, 3, 28, 2, 0, 0, 0, time.UTC)) || req.RequestedBy != "alice" || req.Source != "api" {
		t.Fatalf("request %+v", req)
	}
	p := r.pusher(t, nil)
	runOnce(t, p)
	r.clock.Set(time.Date(2027, 3, 28, 1, 59, 0, 0, time.UTC))
	runOnce(t, p)
	if st, _ := r.store.TariffRequestStatus(ctx, req.ID); st != flows.RequestVerified {
		t.Errorf("a minute before 03:00 BST: %s", st)
	}
	r.clock.Set(time.Date(2027, 3, 28, 2, 0, 30, 0, time.UTC))
	runOnce(t, p)
	if st, _ := r.store.TariffRequestStatus(ctx, req.ID); st != flows.RequestActive {
		t.Errorf("just after 03:00 BST: %s", st)
	}
}

func ptr(s string) *decimal.Decimal { v := d(s); return &v }

func TestSupersededRequestIsNeverPushed(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	r := newRig(t, start, "127.94")
	ctx := context.Background()
	m := r.fleet.Meters()[2]
	act := start.Add(48 * time.Hour).Format("2006-01-02T15:04:05")
	if _, err := r.store.Pool().Exec(ctx, tariffSQL, m.Spec.Serial, "0.5", "0.41", act); err != nil {
		t.Fatal(err)
	}
	first := r.latestRequest(t, m.Spec.Serial)
	if _, err := r.store.Pool().Exec(ctx, tariffSQL, m.Spec.Serial, "0.5", "0.42", act); err != nil {
		t.Fatal(err)
	}
	second := r.latestRequest(t, m.Spec.Serial)
	runOnce(t, r.pusher(t, nil))
	if st, _ := r.store.TariffRequestStatus(ctx, first.ID); st != flows.RequestSuperseded {
		t.Errorf("first request: %s", st)
	}
	if st, _ := r.store.TariffRequestStatus(ctx, second.ID); st != flows.RequestVerified {
		t.Errorf("second request: %s", st)
	}
	var n int
	_ = r.store.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.meter_write_audit WHERE request_id = $1`, first.ID).Scan(&n)
	if n != 0 {
		t.Errorf("the superseded request made %d writes", n)
	}
	if st := m.State(r.clock.Now()); st.Future.RateA() != 42000 {
		t.Errorf("meter future rate %d", st.Future.RateA())
	}
}

// Every validation rule rejects with the field named, and nothing changes.
func TestTariffValidation(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	r := newRig(t, start, "127.95")
	ctx := context.Background()
	m := r.fleet.Meters()[1]
	future := start.Add(72 * time.Hour).Format("2006-01-02T15:04:05")
	for _, c := range []struct{ name, sc, rate, act, want string }{
		{"rate above £1", "0.5", "1.00001", future, "tariffs_future.unit_rate_element_a"},
		{"six decimal places", "0.123456", "0.3", future, "tariffs_future.standing_charge"},
		{"past activation", "0.5", "0.3", "2020-01-01T00:00:00", "tariffs_future.activation_datetime"},
	} {
		_, err := r.store.Pool().Exec(ctx, tariffSQL, m.Spec.Serial, c.sc, c.rate, c.act)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %s", c.name, err, c.want)
		}
	}
	if _, err := r.store.Pool().Exec(ctx, `UPDATE flows.meter_shadows s SET tariffs_future = '{"standing_charge": 0.5, "unit_rate_element_a": 0.3,
		"unit_rate_element_b": 0.3, "prepayment_ecredit_availability": -1, "prepayment_debt_recovery_rate": 0.25,
		"prepayment_emergency_credit": 15, "activation_datetime": "`+future+`"}' FROM flows.meter_registry r WHERE r.id = s.id AND r.serial = $1`, m.Spec.Serial); err == nil ||
		!strings.Contains(err.Error(), "prepayment_ecredit_availability") {
		t.Errorf("negative availability: %v", err)
	}
	passive := r.fleet.Meters()[3]
	if _, err := r.store.Pool().Exec(ctx, `UPDATE flows.meter_registry SET mode = 'passive' WHERE serial = $1`, passive.Spec.Serial); err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.Pool().Exec(ctx, tariffSQL, passive.Spec.Serial, "0.5", "0.3", future); err == nil || !strings.Contains(err.Error(), "passive") {
		t.Errorf("passive meter: %v", err)
	}
	past := "2020-01-01T00:00:00"
	_, err := r.store.SetFutureTariff(ctx, r.ids[m.Spec.Serial], flows.Tariff{StandingCharge: ptr("0.5"), UnitRateElementA: ptr("0.3"), UnitRateElementB: ptr("0.3"),
		PrepaymentEmergencyCredit: ptr("15"), PrepaymentECreditAvailability: ptr("10"), PrepaymentDebtRecoveryRate: ptr("0.2"), ActivationDatetime: &past}, "api", "bob")
	if flows.ErrorField(err) != "tariffs_future.activation_datetime" {
		t.Errorf("service, past activation: %v (field %q)", err, flows.ErrorField(err))
	}
	_, err = r.store.SetFutureTariff(ctx, r.ids[m.Spec.Serial], flows.Tariff{StandingCharge: ptr("2"), ActivationDatetime: &future}, "api", "bob")
	if flows.ErrorField(err) != "tariffs_future.standing_charge" {
		t.Errorf("service, £2 standing charge: %v", err)
	}
	var n int
	_ = r.store.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.tariff_requests`).Scan(&n)
	st, _ := r.store.MeterStatus(ctx, m.Spec.Serial)
	if n != 0 || st.Shadow.TariffsFuture != nil {
		t.Errorf("rejected requests left %d rows and tariffs_future %+v", n, st.Shadow.TariffsFuture)
	}
}

func TestOfflineMeterRetriesThenSucceeds(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	r := newRig(t, start, "127.96")
	ctx := context.Background()
	m := r.fleet.Meters()[1]
	_ = r.fleet.SetOffline(m.Spec.Serial, true)
	if _, err := r.store.Pool().Exec(ctx, tariffSQL, m.Spec.Serial, "0.5", "0.3", start.Add(72*time.Hour).Format("2006-01-02T15:04:05")); err != nil {
		t.Fatal(err)
	}
	p := r.pusher(t, nil)
	runOnce(t, p)
	req := r.latestRequest(t, m.Spec.Serial)
	if req.Status != flows.RequestPending || req.Attempts != 1 || req.LastError != "unreachable" {
		t.Fatalf("offline: %s attempts %d error %q", req.Status, req.Attempts, req.LastError)
	}
	_ = r.fleet.SetOffline(m.Spec.Serial, false)
	time.Sleep(5 * time.Millisecond) // past the (tiny) retry delay
	runOnce(t, p)
	if st := r.latestRequest(t, m.Spec.Serial).Status; st != flows.RequestVerified {
		t.Errorf("back online: %s", st)
	}
}

func TestTopups(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	r := newRig(t, start, "127.97")
	ctx := context.Background()
	m := r.fleet.Meters()[1]
	id := r.ids[m.Spec.Serial]
	tok, _ := sim.VendToken(m.Spec.Serial, m.Spec.Key, d("20"))
	before := m.Balance(r.clock.Now())
	tu, err := r.store.CreateTopup(ctx, id, tok, ptr("20"), "payment", "carol")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.CreateTopup(ctx, id, tok, nil, "", "carol"); flows.ErrorCode(err) != flows.ECONFLICT || flows.ErrorField(err) != "token" {
		t.Errorf("duplicate token: %v", err)
	}
	if _, err := r.store.CreateTopup(ctx, id, "123", nil, "", "carol"); flows.ErrorField(err) != "token" {
		t.Errorf("malformed token: %v", err)
	}
	p := r.pusher(t, nil)
	runOnce(t, p)
	got, _ := r.store.Topup(ctx, tu.ID)
	if got.Status != flows.TopupCompleted || !strings.HasPrefix(got.Notes, "Balance increased") || !strings.Contains(got.Notes, "transaction count 0 -> 1") || got.UsedAt == nil {
		t.Errorf("top-up %+v", got)
	}
	if after := m.Balance(r.clock.Now()); !after.Sub(before).Equal(d("20")) {
		t.Errorf("balance %s → %s", before, after)
	}
	var full, redacted int
	_ = r.store.Pool().QueryRow(ctx, `SELECT count(*) FILTER (WHERE value = $1), count(*) FILTER (WHERE value LIKE '%' || right($1, 4)) FROM flows.meter_write_audit`, tok).Scan(&full, &redacted)
	if full != 0 || redacted != 1 {
		t.Errorf("audit: %d rows with the full token, %d redacted", full, redacted)
	}
	// Another meter's token is refused by the meter: failed, with the reason.
	other := r.fleet.Meters()[2]
	bad, _ := sim.VendToken(other.Spec.Serial, other.Spec.Key, d("5"))
	tu2, _ := r.store.CreateTopup(ctx, id, bad, nil, "", "carol")
	runOnce(t, p)
	got, _ = r.store.Topup(ctx, tu2.ID)
	if got.Status != flows.TopupFailed || !strings.Contains(got.Notes, "NAK 6") {
		t.Errorf("rejected token: %s %q", got.Status, got.Notes)
	}
}

// A push interrupted at any point resumes after a restart without a second
// credit.
func TestTopupCrashRecovery(t *testing.T) {
	for _, point := range []string{"topup_before_send", "topup_after_send"} {
		t.Run(point, func(t *testing.T) {
			start := time.Now().UTC().Truncate(time.Second)
			r := newRig(t, start, map[string]string{"topup_before_send": "127.98", "topup_after_send": "127.99"}[point])
			ctx := context.Background()
			m := r.fleet.Meters()[1]
			tok, _ := sim.VendToken(m.Spec.Serial, m.Spec.Key, d("7.50"))
			before := m.Balance(r.clock.Now())
			tu, _ := r.store.CreateTopup(ctx, r.ids[m.Spec.Serial], tok, nil, "", "dave")
			crash := errors.New("killed")
			runOnce(t, r.pusher(t, func(p string) error {
				if p == point {
					return crash
				}
				return nil
			}))
			got, _ := r.store.Topup(ctx, tu.ID)
			if got.Status != flows.TopupWaiting {
				t.Fatalf("after the crash: %s", got.Status)
			}
			time.Sleep(250 * time.Millisecond) // the dead process's lease runs out
			runOnce(t, r.pusher(t, nil))
			got, _ = r.store.Topup(ctx, tu.ID)
			if got.Status != flows.TopupCompleted {
				t.Fatalf("after restart: %s %q", got.Status, got.Notes)
			}
			if after := m.Balance(r.clock.Now()); !after.Sub(before).Equal(d("7.5")) {
				t.Errorf("credited %s, want exactly 7.50 once", after.Sub(before))
			}
			if n := m.State(r.clock.Now()).TxCount; n != 1 {
				t.Errorf("meter applied %d tokens", n)
			}
		})
	}
}

// A crash after the writes but before verification: the next process
// pushes again and verifies; the tariff is not lost.
func TestTariffCrashRecovery(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	r := newRig(t, start, "127.91")
	ctx := context.Background()
	m := r.fleet.Meters()[1]
	if _, err := r.store.Pool().Exec(ctx, tariffSQL, m.Spec.Serial, "0.5", "0.37", start.Add(72*time.Hour).Format("2006-01-02T15:04:05")); err != nil {
		t.Fatal(err)
	}
	runOnce(t, r.pusher(t, func(p string) error {
		if p == "tariff_sent" {
			return errors.New("killed")
		}
		return nil
	}))
	if st := r.latestRequest(t, m.Spec.Serial).Status; st != flows.RequestSending {
		t.Fatalf("after the crash: %s", st)
	}
	time.Sleep(250 * time.Millisecond)
	runOnce(t, r.pusher(t, nil))
	if req := r.latestRequest(t, m.Spec.Serial); req.Status != flows.RequestVerified || req.Attempts != 2 {
		t.Errorf("after restart: %s after %d attempts", req.Status, req.Attempts)
	}
}

// The background pusher does not wait for the pushes it has under way
// before claiming more: a top-up submitted while another meter's push is
// still talking to a slow meter is pushed and completed first. (Passes
// used to claim a batch and wait for all of it.)
func TestTopupNotBehindSlowPush(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	r := newRig(t, start, "127.106")
	ctx := context.Background()
	slow, quick := r.fleet.Meters()[0], r.fleet.Meters()[1]
	slow.SetFaults(sim.Faults{LatencyMin: 800 * time.Millisecond, LatencyMax: 800 * time.Millisecond})
	c, err := meterconn.New(meterconn.Config{Attempts: 1, ReadTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p := command.New(command.Config{Store: r.store, Meters: c, Now: r.clock.Now, PollEvery: 50 * time.Millisecond, ClockThreshold: -1})
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(context.Background()) })
	topUp := func(m *sim.Meter) string {
		tok, _ := sim.VendToken(m.Spec.Serial, m.Spec.Key, d("5"))
		tu, err := r.store.CreateTopup(ctx, r.ids[m.Spec.Serial], tok, nil, "", "test")
		if err != nil {
			t.Fatal(err)
		}
		return tu.ID
	}
	slowID := topUp(slow)
	time.Sleep(300 * time.Millisecond) // the slow push is under way
	quickID := topUp(quick)
	var quickDone time.Time
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		q, _ := r.store.Topup(ctx, quickID)
		s, _ := r.store.Topup(ctx, slowID)
		if q != nil && q.Status == flows.TopupCompleted && quickDone.IsZero() {
			quickDone = time.Now()
			if s != nil && s.Status != flows.TopupWaiting {
				t.Fatalf("the slow meter's top-up ended (%s) before the quick one: the quick one waited for it", s.Status)
			}
		}
		if !quickDone.IsZero() && s != nil && s.Status == flows.TopupCompleted {
			return
		}
	}
	t.Fatalf("top-ups not both completed (quick done at %v)", quickDone)
}

// Every log line about a push names the meter by its serial (what an
// operator searches the log for), not only by request or meter id.
func TestPushLogLinesNameTheSerial(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	r := newRig(t, start, "127.97")
	ctx := context.Background()
	m := r.fleet.Meters()[1]
	_ = r.fleet.SetOffline(m.Spec.Serial, true)
	if _, err := r.store.Pool().Exec(ctx, tariffSQL, m.Spec.Serial, "0.5", "0.3", start.Add(72*time.Hour).Format("2006-01-02T15:04:05")); err != nil {
		t.Fatal(err)
	}
	c, err := meterconn.New(meterconn.Config{Attempts: 1, ReadTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var buf syncBuffer
	p := command.New(command.Config{Store: r.store, Meters: c, Now: r.clock.Now, Lease: 200 * time.Millisecond,
		Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), RetryBase: time.Millisecond, MaxAttempts: 2, Workers: 2})
	for range 2 {
		runOnce(t, p)
		time.Sleep(5 * time.Millisecond) // past the (tiny) retry delay
	}
	if st := r.latestRequest(t, m.Spec.Serial).Status; st != flows.RequestFailed {
		t.Fatalf("after its attempts: %s, want failed", st)
	}
	lines := 0
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if rec["request_id"] == nil && rec["meter_id"] == nil {
			continue
		}
		lines++
		if rec["meter_serial"] != m.Spec.Serial {
			t.Errorf("a push's log line without the meter's serial: %s", l)
		}
	}
	if lines == 0 {
		t.Errorf("nothing logged about a request that failed: %q", buf.String())
	}
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
