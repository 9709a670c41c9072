package mediator_test

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/mediator"
	"github.com/flows-energy/flows/mediator/pb"
	"github.com/flows-energy/flows/meterconn"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// BenchmarkRelay: readElement calls through the mediator to 1,000
// simulated meters, zero gap, 64 callers. Goals: ≥ 2,000 calls/s with p99
// under 50 ms. Also prints the mediator's memory per served meter.
//
// Its ceiling, measured in the same run for the same number of calls at
// the same concurrency (32 × GOMAXPROCS callers on one connection): a bare
// gRPC unary echo on loopback, the same readElement method and messages
// answered at once with the payload a real read returned. The line
// reports calls/s (the mediator), ceiling-calls/s (the echo), ratio
// (mediator ÷ echo), and the p99 of each.
//
//	go test -run '^$' -bench Relay -benchtime 20000x ./mediator/
func BenchmarkRelay(b *testing.B) {
	r := newRig(b, 1000, "127.88", meterconn.Config{Attempts: 1, MaxConcurrent: 512}, nil)
	c := dial(b, r.server.Addr(), nil)
	var serials []string
	for _, m := range r.fleet.Meters() {
		// Three-phase meters have no prepay balance (they answer NAK 5).
		if m.Spec.Mode == "active" && !emop.IsThreePhase(m.Spec.Hardware) {
			serials = append(serials, m.Spec.Serial)
		}
	}
	perMeter := memoryPerMeter(b, r)
	payload, err := c.Read(context.Background(), meterconn.Target{Serial: serials[0]}, emop.ObjPrepayBalance)
	if err != nil {
		b.Fatal(err)
	}
	const parallelism = 32
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(parallelism)
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
	if len(lat) == 0 {
		b.Fatal("no call succeeded")
	}
	slices.Sort(lat)
	rate := float64(len(lat)) / b.Elapsed().Seconds()
	p99 := lat[len(lat)*99/100]
	ceiling, ceilingP99 := grpcEchoCeiling(b, serials, payload, len(lat), parallelism*runtime.GOMAXPROCS(0))
	b.ReportMetric(rate, "calls/s")
	b.ReportMetric(float64(p99.Microseconds())/1000, "ms-p99")
	b.ReportMetric(ceiling, "ceiling-calls/s")
	b.ReportMetric(float64(ceilingP99.Microseconds())/1000, "ceiling-ms-p99")
	b.ReportMetric(rate/ceiling, "ratio")
	fmt.Printf("mediator: %.0f readElement calls/s, p99 %.1f ms (goals ≥ 2000/s, < 50 ms), %d meters, ~%d bytes per served meter; "+
		"bare gRPC unary echo: %.0f calls/s, p99 %.1f ms; ratio %.3f\n",
		rate, float64(p99.Microseconds())/1000, len(serials), perMeter,
		ceiling, float64(ceilingP99.Microseconds())/1000, rate/ceiling)
}

// echoMediator answers readElement at once with a fixed payload: no
// registry, no transport, no meter.
type echoMediator struct {
	pb.UnimplementedEmliteMediatorServiceServer
	payload []byte
}

func (e *echoMediator) ReadElement(context.Context, *pb.ReadElementRequest) (*pb.ReadElementReply, error) {
	return &pb.ReadElementReply{Response: e.payload}, nil
}

// grpcEchoCeiling serves echoMediator on loopback (plaintext, as the
// benchmark's mediator) and returns the calls per second and p99 of n
// readElement calls for serials made by callers goroutines over one
// connection.
func grpcEchoCeiling(b *testing.B, serials []string, payload []byte, n, callers int) (float64, time.Duration) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterEmliteMediatorServiceServer(srv, &echoMediator{payload: payload})
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewEmliteMediatorServiceClient(conn)
	ctx := context.Background()
	if _, err := client.ReadElement(ctx, &pb.ReadElementRequest{Serial: serials[0], ObjectId: int32(emop.ObjPrepayBalance)}); err != nil {
		b.Fatal(err) // connected before the clock starts, as the mediator's client is
	}
	var next, done atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	lat := make([]time.Duration, 0, n)
	t0 := time.Now()
	for range callers {
		wg.Go(func() {
			var mine []time.Duration
			for done.Add(1) <= int64(n) {
				s := serials[next.Add(1)%int64(len(serials))]
				t1 := time.Now()
				r, err := client.ReadElement(ctx, &pb.ReadElementRequest{Serial: s, ObjectId: int32(emop.ObjPrepayBalance)})
				if err != nil || len(r.GetResponse()) != len(payload) {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(t1))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(t0)
	slices.Sort(lat)
	return float64(len(lat)) / elapsed.Seconds(), lat[len(lat)*99/100]
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
