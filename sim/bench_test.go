package sim_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/sim"
)

// BenchmarkFleetScale serves 10,000 meters from this process and reads
// their balances over TCP as fast as the machine allows. Goals: ≤ 1 GiB
// resident memory and ≥ 3,000 requests/s.
//
//	go test -run '^$' -bench FleetScale -benchtime 20000x ./sim/
func BenchmarkFleetScale(b *testing.B) {
	const n = 10000
	specs := sim.GenerateFleet(n, sim.FleetOptions{AddressPrefix: "127.90", Port: 0, Secret: []byte("bench")})
	clock := sim.NewScaledClock(time.Now(), 1)
	var ms []*sim.Meter
	for _, s := range specs {
		ms = append(ms, sim.NewMeter(s, clock.Now()))
	}
	f := sim.NewFleet(ms, clock, nil)
	if err := f.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer f.Stop()
	var targets []meterconn.Target
	for _, m := range f.Meters() {
		if m.Spec.Mode == "active" {
			targets = append(targets, meterconn.Target{Serial: m.Spec.Serial, Addr: m.Spec.IPAddress + ":" + strconv.Itoa(m.Spec.Port)})
		}
	}
	c, err := meterconn.New(meterconn.Config{Attempts: 1, MaxConcurrent: 512})
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	var failures atomic.Int64
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			t := targets[next.Add(1)%int64(len(targets))]
			if _, err := c.Read(context.Background(), t, emop.ObjPrepayBalance); err != nil {
				failures.Add(1)
			}
		}
	})
	b.StopTimer()
	rate := float64(b.N) / b.Elapsed().Seconds()
	rss := rssMiB()
	runtime.GC()
	b.ReportMetric(rate, "requests/s")
	b.ReportMetric(rss, "MiB-RSS")
	fmt.Printf("simulator: %d meters, %.0f requests/s (goal ≥ 3000), resident %.0f MiB incl. the benchmark client (goal ≤ 1024), %d failures in %d requests\n",
		n, rate, rss, failures.Load(), b.N)
	if failures.Load() > 0 {
		b.Errorf("%d requests failed", failures.Load())
	}
}

func rssMiB() float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return kb / 1024
		}
	}
	return 0
}
