package meterconn_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
)

func newClient(t *testing.T, cfg meterconn.Config) *meterconn.Client {
	t.Helper()
	if cfg.Backoff == 0 {
		cfg.Backoff = 10 * time.Millisecond
	}
	c, err := meterconn.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestReadDecodesAndChecks(t *testing.T) {
	t.Parallel()
	f := newFake(t, okBalance)
	f.byteWise = true // the response arrives in many TCP segments
	c := newClient(t, meterconn.Config{})
	p, err := c.Read(context.Background(), meterconn.Target{Serial: "EML1", Addr: f.addr()}, emop.ObjPrepayBalance)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := emop.DecodeBalance(p); d.String() != "3" {
		t.Errorf("balance %s", d)
	}
}

// Concurrent callers on one meter never overlap on the wire, and each
// request starts at least Gap after the previous one ended.
func TestGapAndSerialisationOnOneMeter(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(n int, req emop.Frame) ([]byte, bool) {
		time.Sleep(20 * time.Millisecond)
		return answer(req, balance, 0), true
	})
	gap := 100 * time.Millisecond
	c := newClient(t, meterconn.Config{Gap: gap})
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Read(context.Background(), meterconn.Target{Addr: f.addr()}, emop.ObjPrepayBalance); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if m := f.maxActiv.Load(); m != 1 {
		t.Errorf("%d connections at once to one meter, want 1", m)
	}
	for i := 1; i < len(f.arrivals); i++ {
		// The previous request took ≥ 20 ms at the meter, then the gap.
		if d := f.arrivals[i].Sub(f.arrivals[i-1]); d < gap+20*time.Millisecond-5*time.Millisecond {
			t.Errorf("request %d arrived %v after the previous one; gap is %v", i, d, gap)
		}
	}
}

// A request given up while the meter is still serving it (the caller's
// context ended mid-request) leaves the meter busy, as far as the client
// can know, until the answer would have been given up on: the next
// request keeps the gap from then, not from the hang-up.
func TestGivenUpRequestKeepsTheMeterBusy(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(n int, req emop.Frame) ([]byte, bool) {
		time.Sleep(150 * time.Millisecond) // still serving after the hang-up
		return answer(req, balance, 0), true
	})
	gap, readTimeout := 50*time.Millisecond, 300*time.Millisecond
	c := newClient(t, meterconn.Config{Gap: gap, ReadTimeout: readTimeout, Attempts: 1})
	target := meterconn.Target{Addr: f.addr()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := c.Read(ctx, target, emop.ObjPrepayBalance); err == nil {
		t.Fatal("a request given up after 30 ms answered")
	}
	if _, err := c.Read(context.Background(), target, emop.ObjPrepayBalance); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.arrivals) != 2 {
		t.Fatalf("%d requests reached the meter, want 2", len(f.arrivals))
	}
	// Counted from the hang-up, the second would come 30 ms + 50 ms after
	// the first, while the meter still served it (150 ms).
	if d := f.arrivals[1].Sub(f.arrivals[0]); d < readTimeout+gap-10*time.Millisecond {
		t.Errorf("the next request came %v after one given up mid-request; want ≥ %v (read timeout and gap)", d, readTimeout+gap)
	}
}

// Different meters are served in parallel: each fake holds its request
// until all three have one.
func TestDifferentMetersInParallel(t *testing.T) {
	t.Parallel()
	var ready sync.WaitGroup
	ready.Add(3)
	release := make(chan struct{})
	go func() { ready.Wait(); close(release) }()
	var fakes []*fakeMeter
	for range 3 {
		fakes = append(fakes, newFake(t, func(n int, req emop.Frame) ([]byte, bool) {
			ready.Done()
			select {
			case <-release:
				return answer(req, balance, 0), true
			case <-time.After(3 * time.Second):
				return nil, false
			}
		}))
	}
	c := newClient(t, meterconn.Config{Attempts: 1, ReadTimeout: 5 * time.Second})
	var wg sync.WaitGroup
	for _, f := range fakes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Read(context.Background(), meterconn.Target{Addr: f.addr()}, emop.ObjPrepayBalance); err != nil {
				t.Errorf("parallel read: %v (meters were not served in parallel)", err)
			}
		}()
	}
	wg.Wait()
}

// A meter that accepts and never answers does not hold the caller past
// its deadline.
func TestSilentMeterRespectsDeadline(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(int, emop.Frame) ([]byte, bool) { return nil, false })
	c := newClient(t, meterconn.Config{ReadTimeout: 10 * time.Second, Attempts: 5})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Read(ctx, meterconn.Target{Addr: f.addr()}, emop.ObjPrepayBalance)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the caller's deadline", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("returned after %v with a 200 ms deadline", el)
	}

	// With no caller deadline the read timeout ends each attempt.
	c = newClient(t, meterconn.Config{ReadTimeout: 100 * time.Millisecond, Attempts: 2})
	_, err = c.Read(context.Background(), meterconn.Target{Addr: f.addr()}, emop.ObjPrepayBalance)
	var ce *meterconn.CommError
	if !errors.As(err, &ce) || ce.Kind != "timeout" || ce.Attempts != 2 || meterconn.Detail(err) != "timeout" {
		t.Errorf("err = %v, want a timeout after 2 attempts", err)
	}
}

func TestRetriesCorruptResponses(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(n int, req emop.Frame) ([]byte, bool) {
		b := answer(req, balance, 0)
		if n <= 2 {
			b[len(b)-1] ^= 0xFF // bad CRC on the first two
		}
		return b, true
	})
	c := newClient(t, meterconn.Config{Attempts: 3})
	if _, err := c.Read(context.Background(), meterconn.Target{Addr: f.addr()}, emop.ObjPrepayBalance); err != nil {
		t.Fatalf("third attempt should succeed: %v", err)
	}
	if n := f.count.Load(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
	g := newFake(t, func(n int, req emop.Frame) ([]byte, bool) {
		b := answer(req, balance, 0)
		b[len(b)-1] ^= 0xFF
		return b, true
	})
	_, err := c.Read(context.Background(), meterconn.Target{Addr: g.addr()}, emop.ObjPrepayBalance)
	if meterconn.Detail(err) != "CRC errors" {
		t.Errorf("always corrupt: %v (detail %q)", err, meterconn.Detail(err))
	}
}

func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c := newClient(t, meterconn.Config{Attempts: 2})
	_, err := c.Read(context.Background(), meterconn.Target{Addr: addr}, emop.ObjPrepayBalance)
	var ce *meterconn.CommError
	if !errors.As(err, &ce) || ce.Kind != "unreachable" {
		t.Errorf("err = %v, want unreachable", err)
	}
}

func TestNakSurfacesWithoutRetry(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(n int, req emop.Frame) ([]byte, bool) { return answer(req, nil, emop.NakUnknownObject), true })
	c := newClient(t, meterconn.Config{Attempts: 5})
	_, err := c.Read(context.Background(), meterconn.Target{Addr: f.addr()}, 0x800309)
	var nak *emop.NakError
	if !errors.As(err, &nak) || nak.Code != 5 {
		t.Fatalf("err = %v, want *NakError 5", err)
	}
	if n := f.count.Load(); n != 1 {
		t.Errorf("NAK 5 was retried: %d requests", n)
	}
	if d := meterconn.Detail(err); !strings.HasPrefix(d, "NAK 5") {
		t.Errorf("detail %q", d)
	}
	// NAK 1 (the meter saw our frame corrupted) is worth retrying.
	g := newFake(t, func(n int, req emop.Frame) ([]byte, bool) {
		if n == 1 {
			return answer(req, nil, emop.NakCRC), true
		}
		return answer(req, balance, 0), true
	})
	if _, err := c.Read(context.Background(), meterconn.Target{Addr: g.addr()}, emop.ObjPrepayBalance); err != nil || g.count.Load() != 2 {
		t.Errorf("NAK 1 then ok: %v after %d requests", err, g.count.Load())
	}
}

func TestMismatchedResponsesAreRejected(t *testing.T) {
	t.Parallel()
	for name, reply := range map[string]func(int, emop.Frame) ([]byte, bool){
		"wrong sequence": func(_ int, req emop.Frame) ([]byte, bool) {
			req.Control = emop.Control(req.Sequence()+1, 0)
			return answer(req, balance, 0), true
		},
		"wrong object": func(_ int, req emop.Frame) ([]byte, bool) {
			req.Data = emop.ReadRequest(emop.ObjCSQ)
			return answer(req, []byte{0x30}, 0), true
		},
	} {
		f := newFake(t, reply)
		c := newClient(t, meterconn.Config{Attempts: 2})
		_, err := c.Read(context.Background(), meterconn.Target{Addr: f.addr()}, emop.ObjPrepayBalance)
		var pe *meterconn.ProtocolError
		if !errors.As(err, &pe) {
			t.Errorf("%s: err = %v, want a protocol error", name, err)
		}
	}
}

func TestBusyMeter(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(n int, req emop.Frame) ([]byte, bool) {
		time.Sleep(400 * time.Millisecond)
		return answer(req, balance, 0), true
	})
	c := newClient(t, meterconn.Config{BusyWait: 50 * time.Millisecond})
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := c.Read(context.Background(), meterconn.Target{Addr: f.addr()}, emop.ObjPrepayBalance)
			errs <- err
		}()
	}
	e1, e2 := <-errs, <-errs
	if (e1 == nil) == (e2 == nil) || !(errors.Is(e1, meterconn.ErrBusy) || errors.Is(e2, meterconn.ErrBusy)) {
		t.Errorf("one caller should succeed and one be told the meter is busy: %v / %v", e1, e2)
	}
}

// Writing a token never logs it in full.
func TestTokenNotLogged(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(n int, req emop.Frame) ([]byte, bool) {
		if n == 1 {
			b := answer(req, nil, 0)
			return b[:len(b)-3], true // truncated: forces a logged retry
		}
		return answer(req, nil, 0), true
	})
	var logs bytes.Buffer
	c := newClient(t, meterconn.Config{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	tok := "12345678901234567890"
	if err := c.Write(context.Background(), meterconn.Target{Addr: f.addr()}, emop.ObjTokenSend, []byte(tok)); err != nil {
		t.Fatal(err)
	}
	if logs.Len() == 0 || strings.Contains(logs.String(), tok) || strings.Contains(logs.String(), "3132333435") {
		t.Errorf("logs (must be non-empty, without the token):\n%s", logs.String())
	}
}

// A minimal SOCKS5 server (no auth or user/password) for the proxy path.
func socks5Server(t *testing.T, user, pass string) (string, *int32) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var used int32
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 262)
				if _, err := io.ReadFull(c, buf[:2]); err != nil {
					return
				}
				io.ReadFull(c, buf[:buf[1]])
				c.Write([]byte{5, 2}) // user/password
				io.ReadFull(c, buf[:2])
				u := make([]byte, buf[1])
				io.ReadFull(c, u)
				io.ReadFull(c, buf[:1])
				p := make([]byte, buf[0])
				io.ReadFull(c, p)
				if string(u) != user || string(p) != pass {
					c.Write([]byte{1, 1})
					return
				}
				c.Write([]byte{1, 0})
				io.ReadFull(c, buf[:4]) // ver cmd rsv atyp
				var host string
				switch buf[3] {
				case 1:
					io.ReadFull(c, buf[:4])
					host = net.IP(buf[:4]).String()
				case 3:
					io.ReadFull(c, buf[:1])
					h := make([]byte, buf[0])
					io.ReadFull(c, h)
					host = string(h)
				}
				io.ReadFull(c, buf[:2])
				port := int(buf[0])<<8 | int(buf[1])
				up, err := net.Dial("tcp", net.JoinHostPort(host, itoa(port)))
				if err != nil {
					c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
					return
				}
				defer up.Close()
				mu.Lock()
				used++
				mu.Unlock()
				c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0})
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String(), &used
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestSOCKS5(t *testing.T) {
	t.Parallel()
	f := newFake(t, okBalance)
	proxyAddr, used := socks5Server(t, "flows", "secret")
	c := newClient(t, meterconn.Config{SOCKS5: &meterconn.SOCKS5{Addr: proxyAddr, Username: "flows", Password: "secret"}})
	if _, err := c.Read(context.Background(), meterconn.Target{Addr: f.addr()}, emop.ObjPrepayBalance); err != nil {
		t.Fatal(err)
	}
	if *used != 1 {
		t.Errorf("proxy carried %d connections, want 1", *used)
	}
	bad := newClient(t, meterconn.Config{Attempts: 1, SOCKS5: &meterconn.SOCKS5{Addr: proxyAddr, Username: "flows", Password: "wrong"}})
	_, err := bad.Read(context.Background(), meterconn.Target{Addr: f.addr()}, emop.ObjPrepayBalance)
	if meterconn.Detail(err) != "unreachable" {
		t.Errorf("bad proxy credentials: %v (detail %q), want unreachable", err, meterconn.Detail(err))
	}
}

// An operator's request (a top-up) waiting for a busy meter goes next,
// ahead of scheduled requests that were queued before it.
func TestOperatorRequestGoesFirst(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var order []string
	f := newFake(t, func(n int, req emop.Frame) ([]byte, bool) {
		mu.Lock()
		if emop.ObjectID(uint32(req.Data[1])<<16|uint32(req.Data[2])<<8|uint32(req.Data[3])) == emop.ObjSerial {
			order = append(order, "operator")
		} else {
			order = append(order, "scheduled")
		}
		mu.Unlock()
		time.Sleep(100 * time.Millisecond)
		return answer(req, balance, 0), true
	})
	c := newClient(t, meterconn.Config{Gap: 50 * time.Millisecond})
	target := meterconn.Target{Addr: f.addr()}
	var wg sync.WaitGroup
	read := func(ctx context.Context, id emop.ObjectID) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Read(ctx, target, id); err != nil {
				t.Error(err)
			}
		}()
		time.Sleep(30 * time.Millisecond) // queued before the next caller
	}
	ctx := context.Background()
	read(ctx, emop.ObjPrepayBalance) // in progress
	read(ctx, emop.ObjPrepayBalance) // waiting
	read(ctx, emop.ObjPrepayBalance) // waiting
	read(meterconn.Operator(ctx), emop.ObjSerial)
	wg.Wait()
	want := "scheduled operator scheduled scheduled"
	if got := strings.Join(order, " "); got != want {
		t.Errorf("requests reached the meter as %q, want %q", got, want)
	}
}

// An operator's next request that arrives during the meter's gap, after
// its last one ended (a top-up's next step), goes before the scheduled
// request that was already waiting: the turn is handed over when the gap
// has passed, not when the last request ended.
func TestOperatorNextStepDuringGapGoesFirst(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var order []string
	f := newFake(t, func(n int, req emop.Frame) ([]byte, bool) {
		mu.Lock()
		if emop.ObjectID(uint32(req.Data[1])<<16|uint32(req.Data[2])<<8|uint32(req.Data[3])) == emop.ObjSerial {
			order = append(order, "operator")
		} else {
			order = append(order, "scheduled")
		}
		mu.Unlock()
		time.Sleep(50 * time.Millisecond)
		return answer(req, balance, 0), true
	})
	c := newClient(t, meterconn.Config{Gap: 300 * time.Millisecond})
	target := meterconn.Target{Addr: f.addr()}
	ctx := context.Background()
	op := meterconn.Operator(ctx)
	steps := make(chan error, 1)
	go func() { // two steps, a little apart, as a top-up's are
		_, err := c.Read(op, target, emop.ObjSerial)
		if err == nil {
			time.Sleep(20 * time.Millisecond) // its database write between
			_, err = c.Read(op, target, emop.ObjSerial)
		}
		steps <- err
	}()
	time.Sleep(20 * time.Millisecond) // the first step is under way
	scheduled := make(chan error, 1)
	go func() { _, err := c.Read(ctx, target, emop.ObjPrepayBalance); scheduled <- err }()
	for _, ch := range []chan error{steps, scheduled} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	want := "operator operator scheduled"
	if got := strings.Join(order, " "); got != want {
		t.Errorf("requests reached the meter as %q, want %q", got, want)
	}
}
