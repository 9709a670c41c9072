package sim

import (
	"time"

	"github.com/flows-energy/flows/emop"
)

// profileLog is a meter's profile log (one record per half hour, oldest
// first) held compactly, because it is most of what a meter weighs: a
// 35-day log of Snapshots is 34 KB, 3.4 GB for 100,000 meters. It keeps
//
//   - each register as its increase over the record before, in a uint16
//     of Wh (a larger increase, or a fall such as a counter reset, is
//     marked and kept in wide), a register's column made only once that
//     register first moves: a single-element meter keeps one column, 2
//     bytes a record;
//   - the registers every markEvery records, so that reading a record
//     adds up at most markEvery increases;
//   - the status only where it is not plain valid data (status 0: no
//     record, a half hour the meter was off);
//   - no voltage: it is the model's voltage at the half hour, which the
//     meter works out again when the record is read.
//
// A hole (status 0) reads as a zero Snapshot, as it was written.
type profileLog struct {
	start time.Time // half hour of record 0
	n     int       // records held
	limit int       // most records held before a trim (capacity cap)
	last  [4]uint32 // registers at the last record written; holes leave it
	marks [][4]uint32
	cols  [4][]uint16
	wide  map[int32]uint32 // increases that do not fit a uint16, by record*4+register
	odd   map[int32]uint16 // statuses other than emop.StatusValidData, by record
}

const (
	markEvery = 64
	wideInc   = 0xFFFF // a column entry meaning "see wide"
)

func regs(s Snapshot) [4]uint32 { return [4]uint32{s.ImportA, s.ImportB, s.ExportA, s.ExportB} }

// add appends the next half hour's record.
func (p *profileLog) add(s Snapshot) {
	i := p.n
	if i%markEvery == 0 {
		p.marks = append(p.marks, p.last)
	}
	if s.Status != emop.StatusValidData {
		if p.odd == nil {
			p.odd = map[int32]uint16{}
		}
		p.odd[int32(i)] = s.Status
	}
	var inc [4]uint32
	if s.Status != 0 {
		r := regs(s)
		for c := range r {
			inc[c] = r[c] - p.last[c] // a fall wraps round: kept wide
		}
		p.last = r
	}
	for c, d := range inc {
		if d == 0 && p.cols[c] == nil {
			continue
		}
		if p.cols[c] == nil {
			p.cols[c] = make([]uint16, i, p.grow(i))
		}
		v := uint16(d)
		if d >= wideInc {
			if p.wide == nil {
				p.wide = map[int32]uint32{}
			}
			p.wide[int32(i*4+c)] = d
			v = wideInc
		}
		if len(p.cols[c]) == cap(p.cols[c]) {
			p.cols[c] = append(make([]uint16, 0, p.grow(i)), p.cols[c]...)
		}
		p.cols[c] = append(p.cols[c], v)
	}
	p.n++
}

// grow is the capacity for a column about to hold more than n records:
// doubling, but never past the log's limit, so a full log wastes little.
func (p *profileLog) grow(n int) int {
	c := max(2*n, 64)
	if p.limit > n {
		c = min(c, p.limit)
	}
	return max(c, n+1)
}

// inc is register c's increase at record i.
func (p *profileLog) inc(c, i int) uint32 {
	col := p.cols[c]
	if col == nil {
		return 0
	}
	if d := col[i]; d != wideInc {
		return uint32(d)
	}
	return p.wide[int32(i*4+c)]
}

// status is record i's status.
func (p *profileLog) status(i int) uint16 {
	if s, ok := p.odd[int32(i)]; ok {
		return s
	}
	return emop.StatusValidData
}

// get returns record i (0 ≤ i < n), voltage not filled in.
func (p *profileLog) get(i int) Snapshot {
	st := p.status(i)
	if st == 0 {
		return Snapshot{}
	}
	r := p.marks[i/markEvery]
	for j := i - i%markEvery; j <= i; j++ {
		for c := range r {
			r[c] += p.inc(c, j)
		}
	}
	return Snapshot{ImportA: r[0], ImportB: r[1], ExportA: r[2], ExportB: r[3], Status: st}
}

// each calls fn with records from, from+1, ... until fn returns false or
// the log ends: one pass, not a sum per record.
func (p *profileLog) each(from int, fn func(i int, s Snapshot) bool) {
	if from >= p.n {
		return
	}
	from = max(from, 0)
	r := p.marks[from/markEvery]
	for j := from - from%markEvery; j < p.n; j++ {
		for c := range r {
			r[c] += p.inc(c, j)
		}
		if j < from {
			continue
		}
		s := Snapshot{Status: p.status(j)}
		if s.Status != 0 {
			s.ImportA, s.ImportB, s.ExportA, s.ExportB = r[0], r[1], r[2], r[3]
		}
		if !fn(j, s) {
			return
		}
	}
}

// snapshots returns every record (voltage not filled in).
func (p *profileLog) snapshots() []Snapshot {
	if p.n == 0 {
		return nil
	}
	out := make([]Snapshot, 0, p.n)
	p.each(0, func(_ int, s Snapshot) bool {
		out = append(out, s)
		return true
	})
	return out
}

// dropOldest forgets the oldest drop records: the log is written anew
// from the rest (rarely: a trim drops an eighth of the log at once).
func (p *profileLog) dropOldest(drop int) {
	rest := p.snapshots()[drop:]
	start := p.start.Add(time.Duration(drop) * 30 * time.Minute)
	*p = profileLog{start: start, limit: p.limit}
	for _, s := range rest {
		p.add(s)
	}
}

// profileLimit is the most records a log holds before a trim: the depth
// and an eighth (trims come in steps, not one copy per half hour).
func profileLimit(depth int) int { return depth + depth/8 + 1 }
