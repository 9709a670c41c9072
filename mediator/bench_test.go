package mediator_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/mediator"
	"github.com/flows-energy/flows/meterconn"
)

// BenchmarkRelay: readElement calls through the mediator to 1,000
// simulated meters, zero gap, 64 callers. Goals: ≥ 2,000 calls/s with p99
// under 50 ms. Also prints the mediator's memory per served meter.
//
//	go test -run '^$' -bench Relay -benchtime 20000x ./mediator/
func BenchmarkRelay(b *testing.B) {
	r := newRig(b, 1000, "127.88", meterconn.Config{Attempts: 1, MaxConcurrent: 512}, nil)
	c := dial(b, r.server.Addr(), nil)
	var serials []string
	for _, m := range r.fleet.Meters() {
		if m.Spec.Mode == "active" {
			serials = append(serials, m.Spec.Serial)
		}
	}
	perMeter := memoryPerMeter(b, r)
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			s := serials[next.Add(1)%int64(len(serials))]
			t0 := time.Now()
			if _, err := c.Read(context.Background(), meterconn.Target{Serial: s}, emop.ObjPrepayBalance); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	slices.Sort(lat)
	rate := float64(len(lat)) / b.Elapsed().Seconds()
	p99 := lat[len(lat)*99/100]
	b.ReportMetric(rate, "calls/s")
	b.ReportMetric(float64(p99.Microseconds())/1000, "ms-p99")
	fmt.Printf("mediator: %.0f readElement calls/s, p99 %.1f ms (goals ≥ 2000/s, < 50 ms), %d meters, ~%d bytes per served meter\n",
		rate, float64(p99.Microseconds())/1000, len(serials), perMeter)
}

// memoryPerMeter measures the heap a mediator holds for its registry and
// per-meter transport state, per meter.
func memoryPerMeter(b *testing.B, r *rig) int {
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	transport, _ := meterconn.New(meterconn.Config{Attempts: 1})
	srv := mediator.New(mediator.Config{Addr: "127.0.0.1:0", Store: r.store, Meters: transport})
	if err := srv.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	c := dial(b, srv.Addr(), nil)
	n := 0
	for _, m := range r.fleet.Meters() {
		if m.Spec.Mode == "active" {
			_, _ = c.Read(context.Background(), meterconn.Target{Serial: m.Spec.Serial}, emop.ObjCSQ)
			n++
		}
	}
	after := heap()
	_ = srv.Stop(context.Background())
	return int(after-before) / n
}
