package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/shopspring/decimal"
)

// Intervals come from consecutive usable records only: a counter reset, a
// power-fail record and a reading that goes backwards are stored raw and
// flagged but make no interval, never a negative one; a record in the
// future is refused by name; reading a half hour again changes nothing;
// a reversed register counts export; the missing view counts what is not
// there.
func TestProfileToIntervals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	m, err := s.CreateMeter(ctx, flows.NewMeter{Serial: "EML1000000021", IPAddress: "127.92.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	regA, err := s.AddRegister(ctx, m.ID, flows.ElementA, false)
	if err != nil {
		t.Fatal(err)
	}
	regB, err := s.AddRegister(ctx, m.ID, flows.ElementB, true) // wired in reverse: counts export B
	if err != nil {
		t.Fatal(err)
	}
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -2)
	u := func(v uint32) *uint32 { return &v }
	valid := flows.ProfileValidData
	// Import A in Wh at 00:00 … 03:30; export B rising steadily.
	readings := []struct {
		wh     uint32
		status uint16
	}{{1000, valid}, {1250, valid}, {1500, valid | flows.ProfileReset}, {1600, valid}, {1700, valid | flows.ProfilePowerFail},
		{1800, valid}, {1750, valid}, {1900, valid}}
	var recs []flows.ProfileRecord
	for i, r := range readings {
		recs = append(recs, flows.ProfileRecord{At: day.Add(time.Duration(i) * 30 * time.Minute), Status: r.status, ImportA: u(r.wh),
			ImportB: u(7), ExportB: u(uint32(100 + 40*i))})
	}
	recs = append(recs, flows.ProfileRecord{At: time.Now().UTC().Truncate(30 * time.Minute).Add(72 * time.Hour), Status: valid, ImportA: u(9)})
	derived, bad, err := s.StoreProfile(ctx, m.ID, recs)
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 1 || !strings.Contains(bad[0], "future") {
		t.Errorf("refused %v, want the record in the future", bad)
	}
	intervals := func(reg string) string {
		var out string
		if err := s.Pool().QueryRow(ctx, `SELECT coalesce(string_agg(to_char("timestamp" AT TIME ZONE 'UTC', 'HH24:MI') || '=' || kwh::text, ' ' ORDER BY "timestamp"), '')
			FROM flows.register_interval_hh WHERE register_id = $1`, reg).Scan(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// 00:00-00:30 only: the reset (01:00), the power fail (02:00) and the
	// backwards reading (03:00) spoil the intervals on either side.
	if got, want := intervals(regA.RegisterID), "00:00=0.250"; got != want {
		t.Errorf("element A intervals\n got %s\nwant %s", got, want)
	}
	// The status is the record's, and so is the backwards flag: B is
	// spoiled at the same half hours.
	if got, want := intervals(regB.RegisterID), "00:00=0.040"; got != want {
		t.Errorf("reversed element B counts export\n got %s\nwant %s", got, want)
	}
	var negative, flagged int
	_ = s.Pool().QueryRow(ctx, `SELECT count(*) FILTER (WHERE kwh < 0) FROM flows.register_interval_hh`).Scan(&negative)
	var backwards string
	_ = s.Pool().QueryRow(ctx, `SELECT count(*) FILTER (WHERE reset OR power_fail) FROM flows.meter_profile WHERE meter_id = $1`, m.ID).Scan(&flagged)
	_ = s.Pool().QueryRow(ctx, `SELECT coalesce(string_agg(to_char("timestamp" AT TIME ZONE 'UTC', 'HH24:MI'), ' '), '') FROM flows.meter_profile WHERE meter_id = $1 AND non_monotonic`, m.ID).Scan(&backwards)
	if negative != 0 || flagged != 2 || backwards != "03:00" {
		t.Errorf("%d negative intervals, %d flagged raw records, non-monotonic at %q (want 0, 2 and 03:00)", negative, flagged, backwards)
	}
	// Reading the same half hours again changes nothing.
	again, _, err := s.StoreProfile(ctx, m.ID, recs[:len(recs)-1])
	if err != nil || again != derived || intervals(regA.RegisterID) != "00:00=0.250" {
		t.Errorf("a second read derived %d (first %d), %v", again, derived, err)
	}
	var missing int
	if err := s.Pool().QueryRow(ctx, `SELECT missing_count FROM flows.register_interval_hh_missing WHERE register_id = $1 AND day = $2::date`,
		regA.RegisterID, day).Scan(&missing); err != nil {
		t.Fatal(err)
	}
	if missing != 47 {
		t.Errorf("missing_count %d for a day with 1 interval, want 47", missing)
	}
}

// A SMIP day is the 48 UTC half hours of one element's raw readings, in
// order, with nothing where a half hour was not read.
func TestSMIPDay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	m, err := s.CreateMeter(ctx, flows.NewMeter{Serial: "EML1000000022", IPAddress: "127.92.0.2"})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	u := func(v uint32) *uint32 { return &v }
	recs := []flows.ProfileRecord{
		{At: day, Status: flows.ProfileValidData, ImportA: u(1000), ImportB: u(50)},
		{At: day.Add(30 * time.Minute), Status: flows.ProfileValidData, ImportA: u(1100), ImportB: u(60)},
		{At: day.Add(30 * time.Minute), Status: flows.ProfileValidData, ExportA: u(7)}, // log 2 merges in
	}
	if _, _, err := s.StoreProfile(ctx, m.ID, recs); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		element       string
		first, second int64
	}{{"A", 1000, 1100}, {"B", 50, 60}} {
		got, err := s.SMIPDay(ctx, m.ID, c.element, day)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 48 || !got[0].At.Equal(day) || !got[47].At.Equal(day.Add(47*30*time.Minute)) {
			t.Fatalf("element %s: %d half hours from %v", c.element, len(got), got[0].At)
		}
		if got[0].ImportWh == nil || *got[0].ImportWh != c.first || *got[1].ImportWh != c.second || got[2].ImportWh != nil {
			t.Errorf("element %s imports %v %v %v", c.element, got[0].ImportWh, got[1].ImportWh, got[2].ImportWh)
		}
	}
	a, _ := s.SMIPDay(ctx, m.ID, "A", day)
	if a[0].ExportWh != nil || a[1].ExportWh == nil || *a[1].ExportWh != 7 {
		t.Errorf("export A: %v %v, want none then 7", a[0].ExportWh, a[1].ExportWh)
	}
	if _, err := s.SMIPDay(ctx, m.ID, "C", day); flows.ErrorField(err) != "element" {
		t.Errorf("element C: %v", err)
	}
}

// The cases a fleet produces that a single day's read does not: a
// replaced register keeps its history and its successor counts from its
// start; a flag one log raised stays when the other log is read; a record
// filled into a gap re-judges the one after it; a half hour the meter said
// three times it does not have is no longer asked for.
func TestProfileAcrossReads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -2)
	at := func(h, m int) time.Time { return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }
	u := func(v uint32) *uint32 { return &v }
	valid := flows.ProfileValidData
	newMeter := func(serial, ip string) (string, string) {
		m, err := s.CreateMeter(ctx, flows.NewMeter{Serial: serial, IPAddress: ip})
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.AddRegister(ctx, m.ID, flows.ElementSingle, false)
		if err != nil {
			t.Fatal(err)
		}
		return m.ID, r.RegisterID
	}
	store := func(id string, recs ...flows.ProfileRecord) {
		t.Helper()
		if _, bad, err := s.StoreProfile(ctx, id, recs); err != nil || len(bad) > 0 {
			t.Fatalf("store: %v %v", err, bad)
		}
	}
	imp := func(h, m int, wh uint32) flows.ProfileRecord {
		return flows.ProfileRecord{At: at(h, m), Status: valid, ImportA: u(wh)}
	}
	intervals := func(reg string) string {
		var out string
		if err := s.Pool().QueryRow(ctx, `SELECT coalesce(string_agg(to_char("timestamp" AT TIME ZONE 'UTC', 'HH24:MI') || '=' || kwh::text, ' ' ORDER BY "timestamp"), '')
			FROM flows.register_interval_hh WHERE register_id = $1`, reg).Scan(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}

	// Replaced register.
	m1, old := newMeter("EML1000000031", "127.92.0.31")
	store(m1, imp(0, 0, 100), imp(0, 30, 200), imp(1, 0, 300), imp(1, 30, 400))
	if _, err := s.Pool().Exec(ctx, `UPDATE flows.meter_registers SET status = 'replaced', end_time = $2 WHERE register_id = $1`, old, at(1, 0)); err != nil {
		t.Fatal(err)
	}
	successor, err := s.AddRegister(ctx, m1, flows.ElementSingle, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `UPDATE flows.meter_registers SET start_time = $2 WHERE register_id = $1`, successor.RegisterID, at(1, 0)); err != nil {
		t.Fatal(err)
	}
	store(m1, imp(0, 0, 100), imp(0, 30, 200), imp(1, 0, 300), imp(1, 30, 400), imp(2, 0, 500))
	if got, want := intervals(old), "00:00=0.100 00:30=0.100 01:00=0.100"; got != want {
		t.Errorf("replaced register after a re-read: %q, want %q", got, want)
	}
	if got, want := intervals(successor.RegisterID), "01:00=0.100 01:30=0.100"; got != want {
		t.Errorf("its successor: %q, want %q (from its start_time)", got, want)
	}

	// A flag raised by log 1 survives log 2's report of the same half hour.
	m2, reg2 := newMeter("EML1000000032", "127.92.0.32")
	store(m2, imp(0, 0, 100), flows.ProfileRecord{At: at(0, 30), Status: valid | flows.ProfilePowerFail, ImportA: u(150)}, imp(1, 0, 200))
	store(m2, flows.ProfileRecord{At: at(0, 30), Status: valid, ExportA: u(0)})
	if got := intervals(reg2); got != "" {
		t.Errorf("intervals across a power-fail record after log 2 was read: %q", got)
	}

	// Filling a gap re-judges the record after it.
	m3, reg3 := newMeter("EML1000000033", "127.92.0.33")
	store(m3, imp(10, 0, 1000), imp(12, 30, 500), imp(13, 0, 510))
	store(m3, imp(10, 30, 400), imp(11, 0, 450), imp(11, 30, 460), imp(12, 0, 470))
	var flagged string
	_ = s.Pool().QueryRow(ctx, `SELECT string_agg(to_char("timestamp" AT TIME ZONE 'UTC', 'HH24:MI'), ' ' ORDER BY "timestamp") FROM flows.meter_profile
		WHERE meter_id = $1 AND non_monotonic`, m3).Scan(&flagged)
	if flagged != "10:30" {
		t.Errorf("non-monotonic records %q after the gap was filled, want 10:30 only", flagged)
	}
	if got, want := intervals(reg3), "11:00=0.010 11:30=0.010 12:00=0.030 12:30=0.010"; got != want {
		t.Errorf("intervals after the gap was filled: %q, want %q", got, want)
	}

	// Holes: asked for three times, then left out of the gaps.
	m4, _ := newMeter("EML1000000034", "127.92.0.34")
	gaps := func() int {
		g, err := s.ProfileGaps(ctx, m4, at(0, 0), at(1, 0))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, x := range g {
			n += x.HalfHours()
		}
		return n
	}
	if n := gaps(); n != 4 {
		t.Fatalf("%d missing half hours of an empty meter's hour, want 4 (2 per log)", n)
	}
	for i := range flows.MaxHoleAttempts {
		if n := gaps(); n != 4 {
			t.Errorf("after %d answers without the record: %d missing, want 4", i, n)
		}
		if _, err := s.StoreProfileRead(ctx, m4, nil, []flows.ProfileHole{{Log: 1, At: at(0, 0)}, {Log: 1, At: at(0, 30)}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := gaps(); n != 2 {
		t.Errorf("after %d answers: %d missing, want 2 (log 2's)", flows.MaxHoleAttempts, n)
	}
}

// meter_profile's reference to its meter, checked per statement
// (migration 0019), still refuses records of a meter that does not exist,
// naming it, and a meter's records go with it.
func TestProfileReferencesItsMeter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	m, err := s.CreateMeter(ctx, flows.NewMeter{Serial: "EML1000000031", IPAddress: "127.92.0.31"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddRegister(ctx, m.ID, flows.ElementA, false); err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	u := func(v uint32) *uint32 { return &v }
	recs := []flows.ProfileRecord{{At: at, Status: flows.ProfileValidData, ImportA: u(10)}, {At: at.Add(30 * time.Minute), Status: flows.ProfileValidData, ImportA: u(20)}}
	if _, _, err := s.StoreProfile(ctx, "00000000-0000-4000-8000-000000000031", recs); err == nil {
		t.Fatal("records of a meter that does not exist were stored")
	}
	var stray int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.meter_profile WHERE meter_id = '00000000-0000-4000-8000-000000000031'`).Scan(&stray); err != nil || stray != 0 {
		t.Fatalf("%d records of a missing meter (%v)", stray, err)
	}
	_, err = s.Pool().Exec(ctx, `INSERT INTO flows.meter_profile (meter_id, "timestamp", status) VALUES ('00000000-0000-4000-8000-000000000031', $1, 0)`, at)
	if err == nil || !strings.Contains(err.Error(), "meter_profile_meter_id_fkey") || !strings.Contains(err.Error(), "foreign key") {
		t.Errorf("a record of a missing meter: %v, want the foreign key named", err)
	}
	if n, _, err := s.StoreProfile(ctx, m.ID, recs); err != nil || n != 1 {
		t.Fatalf("the meter's own records: %d intervals (%v)", n, err)
	}
	if _, err := s.Pool().Exec(ctx, `DELETE FROM flows.meter_registry WHERE id = $1`, m.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.meter_profile WHERE meter_id = $1`, m.ID).Scan(&stray); err != nil || stray != 0 {
		t.Errorf("%d records left after their meter was deleted (%v)", stray, err)
	}
}

// register_interval_hh's reference to its register, checked per statement
// (migration 0024), still refuses intervals of a register that does not
// exist, naming the constraint; a register's intervals go with its meter,
// and its id cannot change under them.
func TestIntervalsReferenceTheirRegister(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	m, err := s.CreateMeter(ctx, flows.NewMeter{Serial: "EML1000000032", IPAddress: "127.92.0.32"})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := s.AddRegister(ctx, m.ID, flows.ElementA, false)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	_, err = s.Pool().Exec(ctx, `INSERT INTO flows.register_interval_hh (register_id, "timestamp", kwh) VALUES ('00000000-0000-4000-8000-000000000032', $1, 1)`, at)
	if err == nil || !strings.Contains(err.Error(), "register_interval_hh_register_id_fkey") || !strings.Contains(err.Error(), "foreign key") {
		t.Errorf("an interval of a missing register: %v, want the foreign key named", err)
	}
	// One statement with a real register and a missing one writes neither.
	_, err = s.Pool().Exec(ctx, `INSERT INTO flows.register_interval_hh (register_id, "timestamp", kwh) VALUES ($1, $2, 1), ('00000000-0000-4000-8000-000000000032', $2, 1)`, reg.RegisterID, at)
	if err == nil {
		t.Error("a statement with a missing register was written")
	}
	u := func(v uint32) *uint32 { return &v }
	recs := []flows.ProfileRecord{{At: at, Status: flows.ProfileValidData, ImportA: u(10)}, {At: at.Add(30 * time.Minute), Status: flows.ProfileValidData, ImportA: u(20)}}
	if n, _, err := s.StoreProfile(ctx, m.ID, recs); err != nil || n != 1 {
		t.Fatalf("the meter's own records: %d intervals (%v)", n, err)
	}
	count := func() int {
		var n int
		if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.register_interval_hh WHERE register_id = $1`, reg.RegisterID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 1 {
		t.Fatalf("%d intervals derived, want 1", n)
	}
	_, err = s.Pool().Exec(ctx, `UPDATE flows.register_interval_hh SET register_id = '00000000-0000-4000-8000-000000000032' WHERE register_id = $1`, reg.RegisterID)
	if err == nil || !strings.Contains(err.Error(), "register_interval_hh_register_id_fkey") {
		t.Errorf("an interval moved to a missing register: %v, want the foreign key named", err)
	}
	// The day totals' own foreign key would refuse first: without them,
	// the half hours alone must hold the register's id.
	if _, err := s.Pool().Exec(ctx, `DELETE FROM flows.register_interval_day WHERE register_id = $1`, reg.RegisterID); err != nil {
		t.Fatal(err)
	}
	_, err = s.Pool().Exec(ctx, `UPDATE flows.meter_registers SET register_id = '00000000-0000-4000-8000-000000000033' WHERE register_id = $1`, reg.RegisterID)
	if err == nil || !strings.Contains(err.Error(), "register_interval_hh_register_id_fkey") || !strings.Contains(err.Error(), `update or delete on table "meter_registers"`) {
		t.Errorf("a register's id changed under its intervals: %v, want refused", err)
	}
	if _, err := s.Pool().Exec(ctx, `DELETE FROM flows.meter_registry WHERE id = $1`, m.ID); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Errorf("%d intervals left after their meter was deleted", n)
	}
}

// Store.Intervals takes its deltas in Go for speed; flows.profile_deltas
// is the rule (the derived table and the SMIP file use it). Over records
// with every kind of trouble — a reset, a power failure, a counter going
// back, a missing half hour, a minor time error, B readings on some
// records only — the two agree half hour by half hour, and per day.
func TestIntervalsMatchProfileDeltas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	m, err := s.CreateMeter(ctx, flows.NewMeter{Serial: "EML1000000041", IPAddress: "127.92.0.41"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddRegister(ctx, m.ID, flows.ElementA, false); err != nil {
		t.Fatal(err)
	}
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -3)
	u := func(v uint32) *uint32 { return &v }
	var recs []flows.ProfileRecord
	imp, exp := uint32(5000), uint32(100)
	for i := range 96 {
		r := flows.ProfileRecord{At: day.Add(time.Duration(i) * 30 * time.Minute), Status: flows.ProfileValidData}
		imp += uint32(100 + i%7*13)
		switch i {
		case 5:
			r.Status |= flows.ProfileReset
		case 9:
			r.Status |= flows.ProfilePowerFail
		case 14:
			r.Status |= flows.ProfileMinorTimeError
		case 20:
			continue // a half hour the meter never gave
		case 30:
			imp -= 900 // backwards: flagged non-monotonic by the derivation
		case 40:
			r.Status &^= flows.ProfileValidData
		}
		r.ImportA = u(imp)
		if i%11 != 3 {
			exp += uint32(i % 3)
			r.ExportA = u(exp)
		}
		if i >= 50 && i%4 != 0 {
			r.ImportB, r.ExportB = u(uint32(2000+10*i)), u(uint32(7))
		}
		recs = append(recs, r)
	}
	if _, _, err := s.StoreProfile(ctx, m.ID, recs); err != nil {
		t.Fatal(err)
	}
	from, to := day, day.Add(48*time.Hour)
	for _, bucket := range []flows.Bucket{flows.BucketHalfHour, flows.BucketDay} {
		step := 30 * time.Minute
		if bucket == flows.BucketDay {
			step = 24 * time.Hour
		}
		type key struct {
			el string
			at time.Time
		}
		want := map[key][3]string{} // import, export, half hours
		rows, err := s.Pool().Query(ctx, `SELECT element, "timestamp", import_wh, export_wh FROM flows.profile_deltas($1, $2, $3)`, m.ID, from, to)
		if err != nil {
			t.Fatal(err)
		}
		sums := map[key][2]*int64{}
		counts := map[key]int{}
		hasB := false
		for rows.Next() {
			var el string
			var at time.Time
			var iw, ew *int64
			if err := rows.Scan(&el, &at, &iw, &ew); err != nil {
				t.Fatal(err)
			}
			hasB = hasB || el == "B"
			k := key{el, from.Add(at.Sub(from) / step * step)}
			v := sums[k]
			for j, x := range []*int64{iw, ew} {
				if x != nil {
					if v[j] == nil {
						v[j] = new(int64)
					}
					*v[j] += *x
				}
			}
			sums[k] = v
			if iw != nil {
				counts[k]++
			}
		}
		rows.Close()
		text := func(p *int64) string {
			if p == nil {
				return "-"
			}
			return decimal.New(*p, -3).StringFixed(3)
		}
		for k, v := range sums {
			want[k] = [3]string{text(v[0]), text(v[1]), fmt.Sprint(counts[k])}
		}
		if !hasB {
			t.Fatal("the records have no B deltas: the test proves nothing about B")
		}
		got, err := s.Intervals(ctx, m.ID, from, to, bucket)
		if err != nil {
			t.Fatal(err)
		}
		if n := 2 * int(to.Sub(from)/step); len(got) != n {
			t.Fatalf("%s: %d points, want %d (A and B, every bucket)", bucket, len(got), n)
		}
		dec := func(d *decimal.Decimal) string {
			if d == nil {
				return "-"
			}
			return d.StringFixed(3)
		}
		for _, p := range got {
			w, ok := want[key{p.Element, p.Start}]
			if !ok {
				w = [3]string{"-", "-", "0"}
			}
			if g := [3]string{dec(p.ImportKWh), dec(p.ExportKWh), fmt.Sprint(p.HalfHours)}; g != w {
				t.Errorf("%s %s %s: got import/export/half hours %v, profile_deltas gives %v", bucket, p.Element, p.Start.Format(time.RFC3339), g, w)
			}
		}
	}
}
