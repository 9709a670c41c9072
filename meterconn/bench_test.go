package meterconn_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
)

// BenchmarkRoundTrips: reads across 64 loopback responders with zero gap,
// many callers at once (one TCP connection per request, as with real
// meters). Goal ≥ 5,000 requests/s.
//
//	go test -run '^$' -bench RoundTrips ./meterconn/
func BenchmarkRoundTrips(b *testing.B) {
	const meters = 64
	var targets []meterconn.Target
	for i := range meters {
		f := newFake(b, okBalance)
		targets = append(targets, meterconn.Target{Serial: fmt.Sprint(i), Addr: f.addr()})
	}
	c, err := meterconn.New(meterconn.Config{Attempts: 1})
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	b.SetParallelism(meters / 2) // callers = 32 × GOMAXPROCS
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			t := targets[next.Add(1)%meters]
			if _, err := c.Read(context.Background(), t, emop.ObjPrepayBalance); err != nil {
				b.Error(err)
				return
			}
		}
	})
	rate := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "requests/s")
	fmt.Printf("meter transport: %.0f requests/s across %d loopback meters, zero gap (goal ≥ 5000)\n", rate, meters)
}
