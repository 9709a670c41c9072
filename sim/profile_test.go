package sim

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flows-energy/flows/emop"
)

// The compact log reads back every record as written — large increases,
// counter resets, holes, odd statuses, across marks and trims — read one
// at a time or in a pass from any record.
func TestProfileLogKeepsWhatWasWritten(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const depth = 300
	p := profileLog{start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), limit: profileLimit(depth)}
	var want []Snapshot
	var r [4]uint32
	for i := range 2000 {
		s := Snapshot{Status: emop.StatusValidData}
		switch k := rng.IntN(100); {
		case k < 5:
			s = Snapshot{} // a hole: the meter was off
		case k < 7:
			r = [4]uint32{} // a counter reset
			s.Status |= emop.StatusReset
		case k < 9:
			r[0] += 70000 + uint32(rng.IntN(1<<20)) // more than a uint16
		case k < 10:
			s.Status |= emop.StatusPowerFail
		}
		if s.Status != 0 {
			r[0] += uint32(rng.IntN(3000))
			if i > 500 {
				r[1] += uint32(rng.IntN(2)) * 4000 // a column that starts late
			}
			if i%48 > 20 && i%48 < 30 {
				r[2] += uint32(rng.IntN(1500))
			}
			s.ImportA, s.ImportB, s.ExportA = r[0], r[1], r[2]
		}
		p.add(s)
		want = append(want, s)
		if p.n > depth+depth/8 {
			drop := p.n - depth
			p.dropOldest(drop)
			want = append(want[:0:0], want[drop:]...)
		}
		if cap(p.cols[0]) > p.limit {
			t.Fatalf("column capacity %d above the limit %d", cap(p.cols[0]), p.limit)
		}
	}
	if p.n != len(want) || !p.start.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(2000-len(want))*30*time.Minute)) {
		t.Fatalf("%d records from %v, want %d", p.n, p.start, len(want))
	}
	for i, w := range want {
		if got := p.get(i); got != w {
			t.Fatalf("record %d: %+v, wrote %+v", i, got, w)
		}
	}
	for _, from := range []int{0, 1, 63, 64, 65, 200, len(want) - 1} {
		n := 0
		p.each(from, func(i int, s Snapshot) bool {
			if s != want[i] || i != from+n {
				t.Fatalf("pass from %d, record %d: %+v, wrote %+v", from, i, s, want[i])
			}
			n++
			return n < 100
		})
		if n != min(100, len(want)-from) {
			t.Errorf("pass from %d saw %d records", from, n)
		}
	}
}

// A single-element meter's full log costs about 2 bytes a half hour.
func TestProfileLogIsSmall(t *testing.T) {
	depth := DefaultProfileDays * 48
	p := profileLog{limit: profileLimit(depth)}
	var a uint32
	for range depth + depth/8 {
		a += 150
		p.add(Snapshot{ImportA: a, Status: emop.StatusValidData})
	}
	bytes := 2*cap(p.cols[0]) + 16*cap(p.marks)
	if p.cols[1] != nil || p.cols[2] != nil || p.cols[3] != nil || p.odd != nil || p.wide != nil || bytes > 4500 {
		t.Errorf("a %d-record log takes %d bytes (columns %v)", p.n, bytes, [4]bool{p.cols[0] != nil, p.cols[1] != nil, p.cols[2] != nil, p.cols[3] != nil})
	}
}
