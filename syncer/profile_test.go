package syncer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/sim"
	"github.com/flows-energy/flows/smip"
	"github.com/flows-energy/flows/syncer"
	"github.com/shopspring/decimal"
)

// truth steps the clock half hour by half hour to end, noting what each
// meter's registers read at every half hour (Wh; elements A and B,
// import and export): the simulator's own consumption, not its profile.
func truth(r *rig, end time.Time) map[string]map[time.Time][4]int64 {
	out := map[string]map[time.Time][4]int64{}
	for now := r.clock.Now().Truncate(30 * time.Minute); !now.After(end); now = now.Add(30 * time.Minute) {
		if now.Before(r.clock.Now()) {
			continue
		}
		r.clock.Set(now)
		for _, m := range r.fleet.Meters() {
			st := m.State(now)
			if out[m.Spec.Serial] == nil {
				out[m.Spec.Serial] = map[time.Time][4]int64{}
			}
			out[m.Spec.Serial][now] = [4]int64{st.ImportJ[0] / 3600, st.ImportJ[1] / 3600, st.ExportJ[0] / 3600, st.ExportJ[1] / 3600}
		}
	}
	return out
}

// A day's intervals, collected by the daily profile sync over real EMOP,
// are the simulator's own consumption to the Wh: import and export, both
// elements of a twin-element meter, the export of a solar meter.
func TestProfileIntervalsMatchSimulator(t *testing.T) {
	day := time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC)
	r := newRig(t, 4, day.Add(-3*time.Hour), sim.Faults{})
	ctx := context.Background()
	want := truth(r, day.Add(24*time.Hour+30*time.Minute))
	for _, m := range r.fleet.Meters() {
		if m.Spec.Mode != "active" {
			continue
		}
		id := r.ids[m.Spec.Serial]
		res, err := r.engine.SyncMeter(ctx, id, string(flows.Daily))
		if err != nil {
			t.Fatalf("%s: %v", m.Spec.Serial, err)
		}
		if _, detail, ok := res.Verdict(); !ok || detail != "" {
			t.Errorf("%s: daily sync %q ok=%v", m.Spec.Serial, detail, ok)
		}
		pts, err := r.store.Intervals(ctx, id, day, day.Add(24*time.Hour), flows.BucketHalfHour)
		if err != nil {
			t.Fatal(err)
		}
		elements := map[string]int{"A": 0}
		if m.Spec.Layout == "twin" {
			elements["B"] = 1
		}
		seen := map[string]int{}
		for _, p := range pts {
			el, ok := elements[p.Element]
			if !ok {
				t.Errorf("%s: element %s reported", m.Spec.Serial, p.Element)
				continue
			}
			seen[p.Element]++
			a, b := want[m.Spec.Serial][p.Start], want[m.Spec.Serial][p.Start.Add(30*time.Minute)]
			wantImp, wantExp := decimal.New(b[el]-a[el], -3), decimal.New(b[2+el]-a[2+el], -3)
			if p.ImportKWh == nil || !p.ImportKWh.Equal(wantImp) || p.ExportKWh == nil || !p.ExportKWh.Equal(wantExp) {
				t.Errorf("%s %s %s: import %v export %v, simulator %s and %s kWh", m.Spec.Serial, p.Element, p.Start.Format("15:04"),
					p.ImportKWh, p.ExportKWh, wantImp, wantExp)
			}
		}
		for el := range elements {
			if seen[el] != 48 {
				t.Errorf("%s element %s: %d half hours, want 48", m.Spec.Serial, el, seen[el])
			}
		}
		var derived int
		if err := r.store.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.register_interval_hh i JOIN flows.meter_registers g USING (register_id)
			WHERE g.meter_id = $1 AND i."timestamp" >= $2 AND i."timestamp" < $2 + interval '1 day'`, id, day).Scan(&derived); err != nil {
			t.Fatal(err)
		}
		if want := 48 * len(elements); derived != want {
			t.Errorf("%s: %d derived register intervals, want %d", m.Spec.Serial, derived, want)
		}
		// The SMIP files of the collected day (-A and -B on the twin) hold
		// the simulator's register readings at each half hour, to the Wh.
		for el, i := range elements {
			twin := len(elements) == 2
			name := smip.Name(m.Spec.Serial, el, twin)
			rows, err := r.store.SMIPDay(ctx, id, el, day)
			if err != nil {
				t.Fatal(err)
			}
			var got, wantCSV strings.Builder
			if err := smip.WriteDay(&got, name, rows); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&wantCSV, "\"created_at\",\"%s\",\"%s_rev\"\r\n", name, name)
			for h := range 48 {
				at := day.Add(time.Duration(h) * 30 * time.Minute)
				v := want[m.Spec.Serial][at]
				fmt.Fprintf(&wantCSV, "%s,%d,%d\r\n", at.Format("2006-01-02 15:04:05")+"+0000", v[i], v[2+i])
			}
			if got.String() != wantCSV.String() {
				t.Errorf("%s: SMIP file differs from the simulator's readings:\n%q\nwant\n%q", smip.FileName(m.Spec.Serial, el, twin, day), got.String(), wantCSV.String())
			}
			if twin != strings.HasSuffix(name, "-"+el) {
				t.Errorf("%s: file name %s", m.Spec.Serial, smip.FileName(m.Spec.Serial, el, twin, day))
			}
		}
		st, _ := r.store.MeterStatus(ctx, m.Spec.Serial)
		if at := st.Shadow.SyncedAt["profile"]; !at.Equal(r.clock.Now()) {
			t.Errorf("%s: profile freshness %v, want %v", m.Spec.Serial, at, r.clock.Now())
		}
	}
	// The hourly set does not read profiles, nor does an operator's sync.
	for _, freq := range []string{string(flows.Hourly), syncer.OnDemand} {
		res, err := r.engine.SyncMeter(ctx, r.ids["EML2137580826"], freq)
		if err != nil || len(res.Profile) != 0 {
			t.Errorf("%s sync read %d profile records (%v)", freq, len(res.Profile), err)
		}
	}
}

// A meter that was unreachable for three days is complete again soon after
// it answers: the daily sync reads the last day and queues the older gap
// for the backfill, which reads only what is missing.
func TestProfileBackfillAfterOutage(t *testing.T) {
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	r := newRig(t, 1, start, sim.Faults{})
	ctx := context.Background()
	m := r.fleet.Meters()[0]
	id := r.ids[m.Spec.Serial]
	r.clock.Set(start.Add(24*time.Hour + 40*time.Minute))
	if _, err := r.engine.SyncMeter(ctx, id, string(flows.Daily)); err != nil {
		t.Fatal(err)
	}
	if err := r.fleet.SetOffline(m.Spec.Serial, true); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(3 * 24 * time.Hour)
	if res, err := r.engine.SyncMeter(ctx, id, string(flows.Daily)); err != nil || res.Failure == "" {
		t.Fatalf("an offline meter's daily sync: %+v %v", res, err)
	}
	if err := r.fleet.SetOffline(m.Spec.Serial, false); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(time.Hour)
	if err := r.engine.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.engine.Stop(context.Background()) })
	res, err := r.engine.SyncMeter(ctx, id, string(flows.Daily))
	if err != nil || !res.ProfileBacklog {
		t.Fatalf("the daily sync after the outage: backlog %v (%v)", res != nil && res.ProfileBacklog, err)
	}
	distinct := map[time.Time]bool{}
	for _, p := range res.Profile {
		distinct[p.At] = true
	}
	if n := len(distinct); n > 53+1 {
		t.Errorf("the daily sync read %d half hours: more than its window", n)
	}
	outage := start.Add(24 * time.Hour).Truncate(24 * time.Hour)
	waitComplete(t, r, id, outage, 3)
	// The first backfill is done asking (its holes before the meter's
	// first record included) before the clock moves on.
	for deadline := time.Now().Add(120 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var busy int
		if err := r.store.Pool().QueryRow(ctx, `SELECT count(*) FROM `+postgres.QueueSchema+`.river_job
			WHERE kind = 'flows_profile_backfill' AND state NOT IN ('completed', 'discarded', 'cancelled')`).Scan(&busy); err != nil {
			t.Fatal(err)
		}
		if busy == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first backfill is still queued")
		}
	}

	// A second outage, after the first backfill completed, is backfilled
	// too.
	if err := r.fleet.SetOffline(m.Spec.Serial, true); err != nil {
		t.Fatal(err)
	}
	second := r.clock.Now().Truncate(24 * time.Hour).Add(24 * time.Hour)
	r.clock.Advance(3 * 24 * time.Hour)
	if err := r.fleet.SetOffline(m.Spec.Serial, false); err != nil {
		t.Fatal(err)
	}
	if res, err := r.engine.SyncMeter(ctx, id, string(flows.Daily)); err != nil || !res.ProfileBacklog {
		t.Fatalf("the daily sync after the second outage: %v", err)
	}
	waitComplete(t, r, id, second, 2)
}

// waitComplete waits for the backfill to leave nothing missing from the
// start of day from to now, and checks that each of days days from there
// has its 48 half hours.
func waitComplete(t *testing.T, r *rig, id string, from time.Time, days int) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(180 * time.Second) // generous: a loaded 2-core machine
	for {
		gaps, err := r.store.ProfileGaps(ctx, id, from, r.clock.Now().Truncate(30*time.Minute).Add(30*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if len(gaps) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still missing after the backfill: %+v", gaps)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for d := from; d.Before(from.Add(time.Duration(days) * 24 * time.Hour)); d = d.Add(24 * time.Hour) {
		pts, err := r.store.Intervals(ctx, id, d, d.Add(24*time.Hour), flows.BucketDay)
		if err != nil {
			t.Fatal(err)
		}
		if len(pts) != 1 || pts[0].HalfHours != 48 {
			t.Errorf("day %s after the backfill: %+v", d.Format(time.DateOnly), pts)
		}
	}
}

// A counter reset and a power cut leave flagged records, no negative kWh
// and no interval across them; the rest of the day is derived.
func TestProfileResetAndPowerFailFlagged(t *testing.T) {
	day := time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC)
	r := newRig(t, 1, day.Add(-time.Hour), sim.Faults{})
	ctx := context.Background()
	m := r.fleet.Meters()[0]
	id := r.ids[m.Spec.Serial]
	r.clock.Set(day.Add(3*time.Hour + 10*time.Minute))
	m.ResetCounters(r.clock.Now())
	r.clock.Set(day.Add(8 * time.Hour))
	m.PowerCut(r.clock.Now(), 2*time.Hour)
	r.clock.Set(day.Add(24*time.Hour + 30*time.Minute))
	if _, err := r.engine.SyncMeter(ctx, id, string(flows.Daily)); err != nil {
		t.Fatal(err)
	}
	var flags string
	if err := r.store.Pool().QueryRow(ctx, `SELECT string_agg(to_char("timestamp" AT TIME ZONE 'UTC', 'HH24:MI') ||
		CASE WHEN reset THEN ' reset' ELSE '' END || CASE WHEN power_fail THEN ' power_fail' ELSE '' END, ', ' ORDER BY "timestamp")
		FROM flows.meter_profile WHERE meter_id = $1 AND (reset OR power_fail OR non_monotonic)`, id).Scan(&flags); err != nil {
		t.Fatal(err)
	}
	if want := "03:30 reset, 10:00 power_fail"; flags != want {
		t.Errorf("flagged records %q, want %q", flags, want)
	}
	pts, err := r.store.Intervals(ctx, id, day, day.Add(24*time.Hour), flows.BucketHalfHour)
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, p := range pts {
		if p.ImportKWh == nil {
			missing = append(missing, p.Start.Format("15:04"))
		} else if p.ImportKWh.IsNegative() {
			t.Errorf("%s: negative %s kWh", p.Start.Format("15:04"), p.ImportKWh)
		}
	}
	// Around the reset (record 03:30), across the cut (no records 08:30-09:30)
	// and around the power-fail record (10:00).
	if got, want := strings.Join(missing, " "), "03:00 03:30 08:00 08:30 09:00 09:30 10:00"; got != want {
		t.Errorf("missing half hours %q, want %q", got, want)
	}
	var negative int
	_ = r.store.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.register_interval_hh WHERE kwh < 0`).Scan(&negative)
	if negative != 0 {
		t.Errorf("%d negative intervals", negative)
	}
}

// mangling passes requests to a real transport and spoils chosen profile
// answers: a truncated payload, records out of order, a record a year
// ahead.
type mangling struct {
	syncer.Meters
	spoil func(log int, from time.Time, resp []byte) []byte
}

func (m mangling) Raw(ctx context.Context, t meterconn.Target, data []byte) ([]byte, error) {
	resp, err := m.Meters.Raw(ctx, t, data)
	if err != nil || len(data) != 5 || (data[0] != emop.FormatProfileLog1 && data[0] != emop.FormatProfileLog2) {
		return resp, err
	}
	_, from, _ := emop.ParseProfileLogRequest(data)
	return m.spoil(int(data[0]-emop.FormatProfileLog1)+1, from, resp), nil
}

// Bad profile answers are kept out of the derived table and named in the
// meter's detail; the good ones are stored; nothing panics.
func TestProfileBadAnswersKeptOut(t *testing.T) {
	day := time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC)
	r := newRig(t, 1, day.Add(-time.Hour), sim.Faults{})
	ctx := context.Background()
	m := r.fleet.Meters()[0]
	id := r.ids[m.Spec.Serial]
	r.clock.Set(day.Add(24*time.Hour + 30*time.Minute))
	client, err := meterconn.New(meterconn.Config{Attempts: 1, ReadTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	at := func(h, min int) time.Time {
		return day.Add(time.Duration(h)*time.Hour + time.Duration(min)*time.Minute)
	}
	meters := mangling{Meters: client, spoil: func(log int, from time.Time, resp []byte) []byte {
		if log != flows.ProfileLogImports {
			return resp
		}
		_, recs, err := emop.ParseProfileLog1Response(resp)
		if err != nil || len(recs) < 3 {
			return resp
		}
		switch from {
		case at(4, 30): // out of order: the third before the second
			recs[1].Timestamp, recs[2].Timestamp = recs[2].Timestamp, recs[1].Timestamp
		case at(12, 30): // a record a year ahead
			recs[1].Timestamp = recs[1].Timestamp.AddDate(1, 0, 0)
		case at(18, 30): // truncated
			return resp[:40]
		default:
			return resp
		}
		out, _ := emop.ProfileLog1Response(from, recs)
		return out
	}}
	eng, err := syncer.New(syncer.Config{Store: r.store, NewQueue: queue(r.store), Meters: meters, Owner: "mangling", Now: r.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	res, err := eng.SyncMeter(ctx, id, string(flows.Daily))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := r.store.MeterStatus(ctx, m.Spec.Serial)
	detail := st.Shadow.HealthDetails
	for _, w := range []string{"05:00:00Z out of order", "2027-06-02T13:00:00Z in the future", "profile log 1 from 2026-06-02T18:30:00Z"} {
		if !strings.Contains(detail, w) {
			t.Errorf("health detail %q does not name %q", detail, w)
		}
	}
	if len(res.Profile) == 0 {
		t.Error("nothing stored from the good answers")
	}
	var future, skipped, later, exports int
	_ = r.store.Pool().QueryRow(ctx, `SELECT count(*) FILTER (WHERE "timestamp" > now() + interval '1 month'),
		count(*) FILTER (WHERE "timestamp" > $2 AND "timestamp" < $2 + interval '2 hours' AND import_a_wh IS NOT NULL),
		count(*) FILTER (WHERE "timestamp" >= $2 + interval '2 hours' AND import_a_wh IS NOT NULL),
		count(*) FILTER (WHERE export_a_wh IS NOT NULL)
		FROM flows.meter_profile WHERE meter_id = $1`, id, at(18, 30)).Scan(&future, &skipped, &later, &exports)
	if future != 0 {
		t.Errorf("%d records from the future stored", future)
	}
	// The truncated chunk's half hours are skipped (counted as asked for
	// once); log 1 goes on after it, and log 2 is read whole.
	if skipped != 0 || later == 0 || exports < 48 {
		t.Errorf("log 1 records in the truncated chunk %d (want 0), after it %d (want some); log 2 records %d (want ≥ 48)", skipped, later, exports)
	}
	var holes int
	_ = r.store.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.meter_profile_hole WHERE meter_id = $1 AND log = 1 AND "timestamp" > $2 AND "timestamp" < $2 + interval '2 hours'`,
		id, at(18, 30)).Scan(&holes)
	if holes != 3 {
		t.Errorf("%d half hours of the truncated chunk counted as asked, want 3 (19:00-20:00)", holes)
	}
}

// A profile read that would run into its group's deadline stops asking in
// time for the group's results to be written, and leaves the rest to the
// backfill.
func TestProfileReadStopsBeforeDeadline(t *testing.T) {
	day := time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC)
	r := newRig(t, 1, day.Add(-time.Hour), sim.Faults{})
	id := r.ids[r.fleet.Meters()[0].Spec.Serial]
	r.clock.Set(day.Add(24*time.Hour + 30*time.Minute))
	short, cancel := context.WithTimeout(context.Background(), 44*time.Second)
	defer cancel()
	res, err := r.engine.SyncMeter(short, id, string(flows.Daily))
	if err != nil || len(res.Profile) != 0 || !res.ProfileBacklog {
		t.Fatalf("with 44 s left: %d records, backlog %v (%v)", len(res.Profile), res != nil && res.ProfileBacklog, err)
	}
	long, cancel2 := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel2()
	if res, err = r.engine.SyncMeter(long, id, string(flows.Daily)); err != nil || len(res.Profile) < 48 {
		t.Fatalf("with 10 minutes left: %d records (%v)", len(res.Profile), err)
	}
}

// A backfill run is bounded by time, not by records: with a short
// BackfillRun it writes what it read, lets go of the meter and comes back,
// as many runs as the backlog needs, and the meter ends up complete.
func TestBackfillRunBoundedByTime(t *testing.T) {
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	r := newRig(t, 1, start, sim.Faults{LatencyMin: 15 * time.Millisecond, LatencyMax: 25 * time.Millisecond})
	ctx := context.Background()
	id := r.ids[r.fleet.Meters()[0].Spec.Serial]
	r.clock.Set(start.Add(4*24*time.Hour + 40*time.Minute))
	client, err := meterconn.New(meterconn.Config{Attempts: 2, Backoff: 10 * time.Millisecond, ReadTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := syncer.New(syncer.Config{Store: r.store, NewQueue: queue(r.store), Meters: client, Owner: "bounded", Workers: 4,
		Now: r.clock.Now, ScheduleEvery: time.Hour, BackfillRun: 300 * time.Millisecond, BackfillPause: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Stop(context.Background()) })
	if res, err := eng.SyncMeter(ctx, id, string(flows.Daily)); err != nil || !res.ProfileBacklog {
		t.Fatalf("the daily sync of a meter four days old: backlog %v (%v)", res != nil && res.ProfileBacklog, err)
	}
	// The first day starts with the meter's first record.
	waitComplete(t, r, id, start.Add(24*time.Hour), 3)
	var runs int
	if err := r.store.Pool().QueryRow(ctx, `SELECT coalesce(max((metadata->>'snoozes')::int), 0) + 1 FROM `+postgres.QueueSchema+`.river_job
		WHERE kind = 'flows_profile_backfill'`).Scan(&runs); err != nil {
		t.Fatal(err)
	}
	// Three days of both logs is about 80 requests of some 20 ms: at
	// 300 ms a run, several runs; one run would mean the bound was ignored.
	if runs < 3 {
		t.Errorf("the backlog took %d backfill runs of 300 ms; want several", runs)
	}
}

// Backfills never delay the hourly set: with every meter's ten-day
// backlog queued for a single backfill worker, the hour's scheduled syncs
// of every meter (those being backfilled included) are all done while the
// backfills still have most of their work ahead of them.
func TestBackfillNeverDelaysTheHourlySet(t *testing.T) {
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	r := newRig(t, 4, start, sim.Faults{LatencyMin: 15 * time.Millisecond, LatencyMax: 25 * time.Millisecond})
	ctx := context.Background()
	now := start.Add(10*24*time.Hour + 40*time.Minute)
	r.clock.Set(now)
	client, err := meterconn.New(meterconn.Config{Attempts: 2, Backoff: 10 * time.Millisecond, ReadTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := syncer.New(syncer.Config{Store: r.store, NewQueue: queue(r.store), Meters: client, Owner: "hourly", Workers: 4,
		BackfillWorkers: 1, Now: r.clock.Now, ScheduleEvery: 200 * time.Millisecond, BackfillRun: time.Second, BackfillPause: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var profiled []string
	active := 0
	for _, m := range r.fleet.Meters() {
		if m.Spec.Mode != "active" {
			continue
		}
		active++
		id := r.ids[m.Spec.Serial]
		res, err := eng.SyncMeter(ctx, id, string(flows.Daily))
		if err != nil {
			t.Fatal(err)
		}
		if res.ProfileBacklog {
			profiled = append(profiled, id)
		}
		if _, err := eng.SyncMeter(ctx, id, string(flows.Hourly)); err != nil {
			t.Fatal(err)
		}
	}
	if len(profiled) < 2 {
		t.Fatalf("%d meters with a backlog, want several", len(profiled))
	}
	// Two hours on, every meter's hourly set is due (its last read stands
	// for no slot since), and every backlog is queued; the engine starts on
	// both at once.
	next := now.Add(2 * time.Hour)
	r.clock.Set(next)
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Stop(context.Background()) })
	missing := func() int {
		n := 0
		for _, id := range profiled {
			gaps, err := r.store.ProfileGaps(ctx, id, start, now.Truncate(30*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range gaps {
				n += g.HalfHours()
			}
		}
		return n
	}
	before := missing()
	deadline := time.Now().Add(120 * time.Second)
	for {
		fresh := 0
		for _, m := range r.fleet.Meters() {
			if m.Spec.Mode != "active" {
				continue
			}
			st, err := r.store.MeterStatus(ctx, m.Spec.Serial)
			if err != nil {
				t.Fatal(err)
			}
			if at, ok := st.Shadow.SyncedAt["balance"]; ok && !at.Before(next) {
				fresh++
			}
		}
		if fresh == active {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d meters' hourly sets done after 2 minutes", fresh)
		}
		time.Sleep(100 * time.Millisecond)
	}
	left := missing()
	if before == 0 || left*2 < before {
		t.Errorf("when the hourly set was done, %d of %d missing half hours were left: the set waited for the backfills", left, before)
	}
}
