package postgres_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/postgres"
	"github.com/shopspring/decimal"
)

func newStore(t *testing.T) *postgres.Store {
	return postgres.NewStore(pgtest.NewPool(t))
}

func TestMigrateIsIdempotentAndSerialised(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := postgres.Open(ctx, pgtest.EmptyDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	st, err := postgres.MigrationStatus(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st {
		if m.AppliedAt != nil {
			t.Fatalf("fresh database reports %04d as applied", m.Version)
		}
	}
	// Several processes starting at once: exactly one applies each migration.
	var wg sync.WaitGroup
	applied := make([]int, 4)
	errs := make([]error, 4)
	for i := range applied {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done, err := postgres.Migrate(ctx, pool)
			applied[i], errs[i] = len(done), err
		}()
	}
	wg.Wait()
	total := 0
	for i := range applied {
		if errs[i] != nil {
			t.Fatalf("concurrent migrate: %v", errs[i])
		}
		total += applied[i]
	}
	if total != len(st) {
		t.Errorf("migrations applied in total = %d, want %d (each once)", total, len(st))
	}
	st, _ = postgres.MigrationStatus(ctx, pool)
	for _, m := range st {
		if m.AppliedAt == nil {
			t.Errorf("%04d still pending after migrate", m.Version)
		}
	}
	if done, err := postgres.Migrate(ctx, pool); err != nil || len(done) != 0 {
		t.Errorf("second migrate applied %d, err %v; want a no-op", len(done), err)
	}
}

func TestCreateMeterValidation(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.CreateESCO(ctx, "WLCE", "Water Lilies"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateMeter(ctx, flows.NewMeter{Serial: "EML2137580826", IPAddress: "10.0.0.1", ESCOCode: "wlce"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		m         flows.NewMeter
		code      string
		wantField string
	}{
		{"bad serial", flows.NewMeter{Serial: "EML-1"}, flows.EINVALID, "serial"},
		{"bad IP", flows.NewMeter{Serial: "EML2137580827", IPAddress: "10.0.0"}, flows.EINVALID, "ip_address"},
		{"bad mode", flows.NewMeter{Serial: "EML2137580827", Mode: "sleeping"}, flows.EINVALID, "mode"},
		{"bad port", flows.NewMeter{Serial: "EML2137580827", Port: 70000}, flows.EINVALID, "port"},
		{"unknown ESCO", flows.NewMeter{Serial: "EML2137580827", ESCOCode: "NOPE"}, flows.EINVALID, "esco"},
		{"duplicate serial", flows.NewMeter{Serial: "EML2137580826"}, flows.ECONFLICT, "serial"},
		{"duplicate IP", flows.NewMeter{Serial: "EML2137580827", IPAddress: "10.0.0.1"}, flows.ECONFLICT, "ip_address"},
	} {
		_, err := s.CreateMeter(ctx, c.m)
		if flows.ErrorCode(err) != c.code || flows.ErrorField(err) != c.wantField {
			t.Errorf("%s: err = %v (code %s, field %q), want code %s naming %q", c.name, err, flows.ErrorCode(err), flows.ErrorField(err), c.code, c.wantField)
		}
	}
	ms, err := s.Meters(ctx, flows.MeterFilter{})
	if err != nil || len(ms) != 1 {
		t.Fatalf("meters after rejected creates = %d (%v), want 1", len(ms), err)
	}
	if ms[0].ESCOCode != "WLCE" || ms[0].Port != 8080 || ms[0].Mode != flows.ModeActive || ms[0].IPAddress.String() != "10.0.0.1" {
		t.Errorf("stored meter = %+v", ms[0])
	}
	if _, err := s.MeterBySerial(ctx, "EML9999999999"); flows.ErrorCode(err) != flows.ENOTFOUND {
		t.Errorf("unknown serial: %v, want not_found", err)
	}
	if _, err := s.CreateESCO(ctx, "WLCE", "again"); flows.ErrorCode(err) != flows.ECONFLICT {
		t.Errorf("duplicate ESCO: %v, want conflict", err)
	}
	if _, err := s.CreateESCO(ctx, "bad code!", "x"); flows.ErrorField(err) != "code" {
		t.Errorf("bad ESCO code: %v, want an error naming code", err)
	}
}

func TestShadowUpdateAndStatus(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	m, err := s.CreateMeter(ctx, flows.NewMeter{Serial: "EML2137580830", Hardware: "C1.w"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddRegister(ctx, m.ID, flows.ElementA, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddRegister(ctx, m.ID, flows.ElementSingle, false); flows.ErrorField(err) != "element" {
		t.Errorf("SINGLE beside A: %v, want an error naming element", err)
	}
	d := decimal.RequireFromString
	bal, ec, volt, imp := d("-3.12345"), d("15"), d("239.4"), d("1234.567")
	csq, drift := 17, 42
	healthy := flows.HealthHealthy
	rate := d("0.2843")
	at := time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC)
	u := flows.ShadowUpdate{Balance: &bal, EmergencyCredit: &ec, CSQ: &csq, Health: &healthy, Voltage: &volt,
		ImportA: &imp, ClockTimeDiffSeconds: &drift, TariffsFuture: &flows.Tariff{UnitRateElementA: &rate}, At: at}
	if err := s.UpdateShadow(ctx, m.ID, u); err != nil {
		t.Fatal(err)
	}
	st, err := s.MeterStatus(ctx, "EML2137580830")
	if err != nil {
		t.Fatal(err)
	}
	sh := st.Shadow
	if !sh.Balance.Equal(bal) || !sh.EmergencyCredit.Equal(ec) || *sh.CSQ != 17 || *sh.Health != healthy ||
		!sh.Voltage.Equal(volt) || !sh.ImportA.Equal(imp) || *sh.ClockTimeDiffSeconds != 42 {
		t.Errorf("shadow after update = %+v", sh)
	}
	if !sh.UpdatedAt.Equal(at) || !sh.BalanceUpdatedAt.Equal(at) || !sh.LastHealthyAt.Equal(at) || !sh.ClockTimeDiffSyncedAt.Equal(at) {
		t.Errorf("times: updated %v balance %v healthy %v drift %v; want all %v", sh.UpdatedAt, sh.BalanceUpdatedAt, sh.LastHealthyAt, sh.ClockTimeDiffSyncedAt, at)
	}
	if sh.TariffsFuture == nil || !sh.TariffsFuture.UnitRateElementA.Equal(rate) {
		t.Errorf("tariffs_future = %+v", sh.TariffsFuture)
	}
	if len(st.Registers) != 1 || st.Registers[0].Element != flows.ElementA {
		t.Errorf("registers = %+v", st.Registers)
	}
	hist, err := s.BalanceHistory(ctx, m.ID, at.Add(-time.Hour), at.Add(time.Hour), flows.BucketRaw)
	if err != nil || len(hist) != 1 || !hist[0].Balance.Equal(bal) || !hist[0].Timestamp.Equal(at) {
		t.Errorf("history = %+v, %v", hist, err)
	}

	// Out-of-range values are refused before they reach the database.
	bad := 40
	if err := s.UpdateShadow(ctx, m.ID, flows.ShadowUpdate{CSQ: &bad}); flows.ErrorField(err) != "csq" {
		t.Errorf("csq 40: %v", err)
	}
	neg := d("-1")
	if err := s.UpdateShadow(ctx, m.ID, flows.ShadowUpdate{EmergencyCredit: &neg}); flows.ErrorField(err) != "emergency_credit" {
		t.Errorf("negative emergency credit: %v", err)
	}
	tooMuch := d("1.5")
	if err := s.UpdateShadow(ctx, m.ID, flows.ShadowUpdate{TariffsFuture: &flows.Tariff{StandingCharge: &tooMuch}}); flows.ErrorField(err) != "tariffs_future.standing_charge" {
		t.Errorf("standing charge 1.5: %v", err)
	}
	if err := s.UpdateShadow(ctx, "00000000-0000-0000-0000-000000000000", flows.ShadowUpdate{CSQ: &csq}); flows.ErrorCode(err) != flows.ENOTFOUND {
		t.Errorf("unknown meter: %v", err)
	}

	// Offline: a failed sync writes csq NULL; last_online stays at the last answer.
	if err := s.UpdateShadow(ctx, m.ID, flows.ShadowUpdate{ClearCSQ: true, At: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	off, err := s.OfflineAll(ctx, "")
	if err != nil || len(off) != 1 || !off[0].LastOnline.Equal(at) {
		t.Errorf("offline all = %+v, %v; want the meter with last_online %v", off, err, at)
	}
	recent, err := s.OfflineRecently(ctx, "")
	if err != nil || len(recent) != 0 {
		t.Errorf("offline recently = %+v (last online months ago is not recent)", recent)
	}
}

func TestBalanceBucketsAndViews(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.CreateESCO(ctx, "AAA", "A"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateESCO(ctx, "BBB", "B"); err != nil {
		t.Fatal(err)
	}
	a, _ := s.CreateMeter(ctx, flows.NewMeter{Serial: "EML2000000001", ESCOCode: "AAA"})
	b, _ := s.CreateMeter(ctx, flows.NewMeter{Serial: "EML2000000002", ESCOCode: "BBB"})
	d := decimal.RequireFromString
	day := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	for i, v := range []string{"10", "8", "6", "4", "2.5"} { // 10:00, 10:30, 11:00, 11:30, next day
		at := day.Add(10*time.Hour + time.Duration(i)*30*time.Minute)
		if i == 4 {
			at = day.Add(24*time.Hour + time.Hour)
		}
		v := d(v)
		if err := s.UpdateShadow(ctx, a.ID, flows.ShadowUpdate{Balance: &v, At: at}); err != nil {
			t.Fatal(err)
		}
	}
	hours, err := s.BalanceHistory(ctx, a.ID, day, day.Add(48*time.Hour), flows.BucketHour)
	if err != nil {
		t.Fatal(err)
	}
	if len(hours) != 3 || !hours[2].Min.Equal(d("8")) || !hours[2].Max.Equal(d("10")) || !hours[2].Avg.Equal(d("9")) || !hours[2].Balance.Equal(d("8")) {
		t.Errorf("hour buckets = %+v", hours)
	}
	days, _ := s.BalanceHistory(ctx, a.ID, day, day.Add(48*time.Hour), flows.BucketDay)
	if len(days) != 2 || !days[1].Avg.Equal(d("7")) || !days[0].Min.Equal(d("2.5")) {
		t.Errorf("day buckets = %+v", days)
	}
	if _, err := s.BalanceHistory(ctx, a.ID, day, day, flows.BucketDay); flows.ErrorField(err) != "to" {
		t.Errorf("empty range: %v", err)
	}
	if _, err := s.BalanceHistory(ctx, a.ID, day, day.Add(time.Hour), "week"); flows.ErrorField(err) != "bucket" {
		t.Errorf("bad bucket: %v", err)
	}

	one := d("1")
	if err := s.UpdateShadow(ctx, b.ID, flows.ShadowUpdate{Balance: &one}); err != nil {
		t.Fatal(err)
	}
	low, _ := s.LowBalance(ctx, d("5"), "")
	if len(low) != 2 || low[0].Serial != "EML2000000002" {
		t.Errorf("low balance under 5 = %+v", low)
	}
	low, _ = s.LowBalance(ctx, d("5"), "AAA")
	if len(low) != 1 || low[0].Serial != "EML2000000001" {
		t.Errorf("ESCO AAA low balance = %+v; another ESCO's meter must not appear", low)
	}
	drift := 3600
	_ = s.UpdateShadow(ctx, b.ID, flows.ShadowUpdate{ClockTimeDiffSeconds: &drift})
	small := 59
	_ = s.UpdateShadow(ctx, a.ID, flows.ShadowUpdate{ClockTimeDiffSeconds: &small})
	cd, _ := s.ClockDrifts(ctx, "")
	if len(cd) != 1 || cd[0].Serial != "EML2000000002" || cd[0].ClockTimeDiffSeconds != 3600 {
		t.Errorf("clock drift = %+v; want only the hour-off meter", cd)
	}
	if cd, _ := s.ClockDrifts(ctx, "AAA"); len(cd) != 0 {
		t.Errorf("ESCO AAA clock drift = %+v", cd)
	}
	ms, _ := s.Meters(ctx, flows.MeterFilter{Query: "0002"})
	if len(ms) != 1 || ms[0].Serial != "EML2000000002" {
		t.Errorf("search 0002 = %+v", ms)
	}
	ms, _ = s.Meters(ctx, flows.MeterFilter{Query: "%"})
	if len(ms) != 0 {
		t.Errorf("search %% matched %d meters; wildcards must be literal", len(ms))
	}
}

// A balance never read is stale only once its meter has missed its
// chance: on a fresh fleet nothing is stale before the first round, while
// a meter registered hours ago and never read is, in the fleet counts and
// in the meter rows alike.
func TestStaleOnlyWhatMissedItsChance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	fresh, err := s.CreateMeter(ctx, flows.NewMeter{Serial: "EML1000000051", IPAddress: "127.92.0.51"})
	if err != nil {
		t.Fatal(err)
	}
	old, err := s.CreateMeter(ctx, flows.NewMeter{Serial: "EML1000000052", IPAddress: "127.92.0.52"})
	if err != nil {
		t.Fatal(err)
	}
	counts := func() int {
		sums, err := s.FleetSummaries(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, f := range sums {
			n += f.Stale
		}
		return n
	}
	if n := counts(); n != 0 {
		t.Errorf("%d stale meters registered just now, want 0", n)
	}
	if _, err := s.Pool().Exec(ctx, `UPDATE flows.meter_registry SET created_at = now() - interval '3 hours' WHERE id = $1`, old.ID); err != nil {
		t.Fatal(err)
	}
	if n := counts(); n != 1 {
		t.Errorf("%d stale meters, want 1 (registered 3 hours ago, balance never read hourly)", n)
	}
	rows, err := s.MeterRows(ctx, flows.MeterFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if want := r.ID == old.ID; r.Stale != want {
			t.Errorf("%s stale %v, want %v", r.Serial, r.Stale, want)
		}
	}
	if len(rows) != 2 || fresh.ID == old.ID {
		t.Fatalf("%d rows", len(rows))
	}
}

// The fleet page's offline filter and count read the shadow's copy of
// each meter's last answer; they must name exactly the meters the spec's
// meters_offline_all view names: silent for over 3 hours, and never the
// meter that has not answered yet.
func TestOfflineFilterAndCountFollowTheView(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.CreateESCO(ctx, "OFF", "Offline Energy"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	csq := 12
	// serial → when it last answered (zero: never)
	answers := map[string]time.Duration{"EML3000000001": 5 * time.Hour, "EML3000000002": time.Hour, "EML3000000003": 0, "EML3000000004": 30 * time.Hour}
	for serial, ago := range answers {
		m, err := s.CreateMeter(ctx, flows.NewMeter{Serial: serial, ESCOCode: "OFF", Hardware: "EMA1.w", IPAddress: "127.94.0." + serial[len(serial)-1:]})
		if err != nil {
			t.Fatal(err)
		}
		if ago == 0 {
			continue
		}
		if err := s.UpdateShadow(ctx, m.ID, flows.ShadowUpdate{CSQ: &csq, At: now.Add(-ago)}); err != nil {
			t.Fatal(err)
		}
		// a failed sync since: csq NULL, last_online kept
		if err := s.UpdateShadow(ctx, m.ID, flows.ShadowUpdate{ClearCSQ: true, At: now.Add(-ago / 2)}); err != nil {
			t.Fatal(err)
		}
	}
	view, err := s.OfflineAll(ctx, "OFF")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, o := range view {
		want = append(want, o.Serial)
	}
	slices.Sort(want)
	if !slices.Equal(want, []string{"EML3000000001", "EML3000000004"}) {
		t.Fatalf("meters_offline_all = %v, want the two silent for over 3 hours", want)
	}
	rows, err := s.MeterRows(ctx, flows.MeterFilter{ESCOCode: "OFF", Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, r.Serial)
	}
	if !slices.Equal(got, want) {
		t.Errorf("fleet page's offline filter = %v, want the view's %v", got, want)
	}
	if n, err := s.CountMeters(ctx, flows.MeterFilter{ESCOCode: "OFF", Offline: true}); err != nil || n != len(want) {
		t.Errorf("offline count = %d, %v; want %d", n, err, len(want))
	}
	sums, err := s.FleetSummaries(ctx, "OFF")
	if err != nil || len(sums) != 1 || sums[0].Offline != len(want) || sums[0].Meters != 4 {
		t.Errorf("fleet summary = %+v, %v; want 4 meters, %d offline", sums, err, len(want))
	}
}
