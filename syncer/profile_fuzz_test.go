package syncer

import (
	"testing"
	"time"

	"github.com/flows-energy/flows/emop"
)

// Whatever a meter sends as a profile-log answer, decoding and screening
// it never panics, and what is kept is storable: half hours, in order,
// from the time asked for to the newest complete half hour.
func FuzzProfileAnswer(f *testing.F) {
	t0 := time.Date(2026, 6, 2, 4, 30, 0, 0, time.UTC)
	var recs1 []emop.ProfileLog1Record
	var recs2 []emop.ProfileLog2Record
	for i := range 5 {
		at := t0.Add(time.Duration(i) * 30 * time.Minute)
		recs1 = append(recs1, emop.ProfileLog1Record{Timestamp: at, Status: emop.StatusValidData, ImportA: uint32(1000 + 250*i)})
		if i < 2 {
			recs2 = append(recs2, emop.ProfileLog2Record{Timestamp: at, Status: emop.StatusValidData, ActiveExportA: uint32(10 * i), VoltageTenths: 2401})
		}
	}
	l1, _ := emop.ProfileLog1Response(t0, recs1)
	l2, _ := emop.ProfileLog2Response(t0, true, recs2)
	f.Add(l1, uint8(1), false)
	f.Add(l2, uint8(2), true)
	f.Add(l1[:40], uint8(1), false)
	f.Fuzz(func(t *testing.T, resp []byte, log uint8, twin bool) {
		lg := 1 + int(log%2)
		recs, err := decodeProfile(lg, resp, twin)
		if err != nil {
			return
		}
		newest := t0.Add(6 * time.Hour)
		kept, bad := screen(recs, t0, newest)
		if len(kept)+len(bad) != len(recs) {
			t.Fatalf("%d records decoded, %d kept and %d named", len(recs), len(kept), len(bad))
		}
		for i, r := range kept {
			if !r.At.Equal(r.At.Truncate(30*time.Minute)) || r.At.Before(t0) || r.At.After(newest) || (i > 0 && !r.At.After(kept[i-1].At)) {
				t.Fatalf("kept record %d at %s", i, r.At)
			}
			if lg == 1 && r.ImportA == nil || lg == 2 && r.ExportA == nil {
				t.Fatalf("kept record %d without its log's reading", i)
			}
		}
	})
}
