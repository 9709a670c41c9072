package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows"
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
