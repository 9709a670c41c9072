package meterconn_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
)

// BenchmarkRoundTrips: reads across 64 loopback responders with zero gap,
// many callers at once (one TCP connection per request, as with real
// meters). Goal ≥ 5,000 requests/s.
//
// Its ceiling, measured in the same run for the same number of requests at
// the same concurrency over 64 listeners: a bare one-request-per-connection
// TCP echo on loopback (dial, write the same 18-byte request, read the
// same-size reply, close). The line reports requests/s (the transport),
// ceiling-requests/s (the echo) and ratio (transport ÷ echo).
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
	const parallelism = meters / 2
	b.SetParallelism(parallelism) // callers = 32 × GOMAXPROCS
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
	b.StopTimer()
	rate := float64(b.N) / b.Elapsed().Seconds()
	ceiling := echoCeiling(b, meters, b.N, parallelism*runtime.GOMAXPROCS(0))
	b.ReportMetric(rate, "requests/s")
	b.ReportMetric(ceiling, "ceiling-requests/s")
	b.ReportMetric(rate/ceiling, "ratio")
	fmt.Printf("meter transport: %.0f requests/s across %d loopback meters, zero gap (goal ≥ 5000); bare TCP echo, one request per connection: %.0f requests/s; ratio %.3f\n",
		rate, meters, ceiling, rate/ceiling)
}

// echoCeiling starts bare TCP echo responders (listeners of them) on
// loopback and returns the requests per second of n exchanges made by
// callers goroutines at once, each on a new connection: dial, write a read request's bytes, read a
// balance response's worth of bytes back, close (the responder closes
// first, as the fake meter does).
func echoCeiling(b *testing.B, listeners, n, callers int) float64 {
	reqFrame := emop.Frame{SrcAddr: 0x21AE42, Control: 1, Data: emop.ReadRequest(emop.ObjPrepayBalance)}
	req, err := reqFrame.AppendTo(nil)
	if err != nil {
		b.Fatal(err)
	}
	resp := answer(reqFrame, balance, 0)
	var addrs []string
	for range listeners {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ln.Close() })
		addrs = append(addrs, ln.Addr().String())
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer conn.Close()
					_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
					buf := make([]byte, len(req))
					if _, err := io.ReadFull(conn, buf); err != nil {
						return
					}
					_, _ = conn.Write(resp)
				}()
			}
		}()
	}
	var d net.Dialer
	var next, done atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for range callers {
		wg.Go(func() {
			buf := make([]byte, len(resp))
			for done.Add(1) <= int64(n) {
				conn, err := d.DialContext(context.Background(), "tcp", addrs[next.Add(1)%int64(listeners)])
				if err != nil {
					b.Error(err)
					return
				}
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				_, err = conn.Write(req)
				if err == nil {
					_, err = io.ReadFull(conn, buf)
				}
				conn.Close()
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return float64(n) / time.Since(t0).Seconds()
}
