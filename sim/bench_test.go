package sim_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
	rss := procStatus("VmRSS") / 1024
	runtime.GC()
	b.ReportMetric(rate, "requests/s")
	b.ReportMetric(rss, "MiB-RSS")
	fmt.Printf("simulator: %d meters, %.0f requests/s (goal ≥ 3000), resident %.0f MiB incl. the benchmark client (goal ≤ 1024), %d failures in %d requests\n",
		n, rate, rss, failures.Load(), b.N)
	if failures.Load() > 0 {
		b.Errorf("%d requests failed", failures.Load())
	}
}

// BenchmarkFleetMemory weighs a real-sized fleet: 100,000 meters (every
// profile log full: DefaultProfileDays and the eighth kept before a
// trim), served from shared listeners, first idle and then under several
// thousand requests at once at cellular timing (1 s ± 0.3 s, a 2 s gap,
// 0.5 % drops). Goal: ≤ 2 GiB resident. The figures include the
// benchmark's own client (a goroutine and a connection per request in
// flight), so the simulator alone is a little less.
//
//	go test -run '^$' -bench FleetMemory -benchtime 1x ./sim/
func BenchmarkFleetMemory(b *testing.B) {
	const (
		n        = 100000
		inFlight = 5000
		loadFor  = 30 * time.Second
	)
	for range b.N {
		fleetMemory(b, n, inFlight, loadFor)
	}
}

func fleetMemory(b *testing.B, n, inFlight int, loadFor time.Duration) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(sim.MemoryLimit)) // as flows sim runs
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < uint64(2*inFlight+100) {
		b.Skipf("%d requests in flight, client and meter ends, need an open-file limit of %d (ulimit -n), not %d", inFlight, 2*inFlight+100, lim.Cur)
	}
	start := time.Now()
	specs := sim.GenerateFleet(n, sim.FleetOptions{AddressPrefix: "127.92", Port: 0, Secret: []byte("bench")})
	clock := sim.NewScaledClock(time.Now(), 1)
	now := clock.Now()
	ms := make([]*sim.Meter, 0, n)
	for _, s := range specs {
		s.Faults = sim.Faults{LatencyMin: 700 * time.Millisecond, LatencyMax: 1300 * time.Millisecond, MinGap: 2 * time.Second, DropRate: 0.005}
		m := sim.NewMeter(s, now)
		sim.FillProfile(m, now)
		ms = append(ms, m)
	}
	specs = nil
	f := sim.NewFleet(ms, clock, nil)
	f.SetShared(true)
	if err := f.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer f.Stop()
	built := time.Since(start)
	runtime.GC()
	debug.FreeOSMemory()
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	idle := procStatus("VmRSS")
	fmt.Printf("fleet memory: %d meters built, full logs, listening in %.1f s: resident %.0f MiB (%.1f KiB a meter), heap in use %.0f MiB, %d goroutines, %d open files\n",
		n, built.Seconds(), idle/1024, idle/float64(n), float64(mem.HeapInuse)/(1<<20), runtime.NumGoroutine(), openFiles())

	// Load: inFlight workers, each reading its own share of the meters in
	// turn (a meter comes round again long after its gap).
	var targets []meterconn.Target
	for _, m := range f.Meters() {
		if m.Spec.Mode == "active" {
			targets = append(targets, meterconn.Target{Serial: m.Spec.Serial, Addr: m.Spec.IPAddress + ":" + strconv.Itoa(m.Spec.Port)})
		}
	}
	c, err := meterconn.New(meterconn.Config{Attempts: 1, MaxConcurrent: inFlight, Gap: 2 * time.Second, ReadTimeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	// Workers stop starting requests after loadFor and finish the ones in
	// flight (a deadline on their context would cut those short).
	ctx, stop := context.WithTimeout(context.Background(), loadFor)
	defer stop()
	var done, failed atomic.Int64
	var mu sync.Mutex
	kinds := map[string]int{}
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := range inFlight {
		wg.Go(func() {
			for i := w; ctx.Err() == nil; i += inFlight {
				// CSQ: every meter answers it, three-phase ones too.
				if _, err := c.Read(context.Background(), targets[i%len(targets)], emop.ObjCSQ); err != nil {
					failed.Add(1)
					mu.Lock()
					kinds[meterconn.Detail(err)]++
					mu.Unlock()
				}
				done.Add(1)
			}
		})
	}
	var peak, stacks float64
	for tick := time.NewTicker(time.Second); ctx.Err() == nil; {
		select {
		case <-tick.C:
			peak = max(peak, procStatus("VmRSS"))
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			stacks = max(stacks, float64(ms.StackInuse)/(1<<20))
		case <-ctx.Done():
		}
	}
	wg.Wait()
	b.StopTimer()
	st := f.Stats()
	_, most := f.Connections()
	hwm := procStatus("VmHWM")
	fmt.Printf("fleet memory under load: %d requests in %v, at most %d connections open at once; %d answered, %d dropped, %d timed out, %d gap violations (goal 0), %d client errors %v\n",
		done.Load(), loadFor, most, st.Answered, st.Dropped, st.TimedOut, st.GapViolations, failed.Load(), kinds)
	fmt.Printf("fleet memory: resident idle %.0f MiB, under load %.0f MiB (goroutine stacks %.0f MiB), peak %.0f MiB (goal ≤ 2048), %.1f KiB a meter at peak\n",
		idle/1024, peak/1024, stacks, hwm/1024, hwm/float64(n))
	b.ReportMetric(idle/1024, "MiB-idle")
	b.ReportMetric(hwm/1024, "MiB-peak")
	b.ReportMetric(float64(most), "conns")
	b.ReportMetric(float64(st.GapViolations), "gap-violations")
	if hwm/1024 > 2048 {
		b.Errorf("peak resident %.0f MiB, above 2 GiB", hwm/1024)
	}
	if st.GapViolations > 0 {
		b.Errorf("%d gap violations", st.GapViolations)
	}
}

// procStatus returns a kB figure of /proc/self/status (VmRSS, VmHWM).
func procStatus(key string) float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, key+":") {
			kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return kb
		}
	}
	return 0
}

func openFiles() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents)
}
