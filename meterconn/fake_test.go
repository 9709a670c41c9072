package meterconn_test

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flows-energy/flows/emop"
)

// fakeMeter is a TCP listener that answers EMOP frames through reply.
// Tests set reply to script behaviour; arrivals and overlap are recorded.
type fakeMeter struct {
	ln       net.Listener
	reply    func(n int, req emop.Frame) (resp []byte, ok bool) // ok=false: stay silent
	mu       sync.Mutex
	arrivals []time.Time
	active   atomic.Int32
	maxActiv atomic.Int32
	count    atomic.Int32
	byteWise bool // write the response a byte at a time
}

func newFake(t testing.TB, reply func(n int, req emop.Frame) ([]byte, bool)) *fakeMeter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeMeter{ln: ln, reply: reply}
	go f.serve()
	t.Cleanup(func() { ln.Close() })
	return f
}

func (f *fakeMeter) addr() string { return f.ln.Addr().String() }

func (f *fakeMeter) serve() {
	for {
		conn, err := f.ln.Accept()
		if err != nil {
			return
		}
		go f.handle(conn)
	}
}

func (f *fakeMeter) handle(conn net.Conn) {
	defer conn.Close()
	a := f.active.Add(1)
	defer f.active.Add(-1)
	for {
		m := f.maxActiv.Load()
		if a <= m || f.maxActiv.CompareAndSwap(m, a) {
			break
		}
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	req, _, err := emop.ReadFrame(conn)
	if err != nil {
		return
	}
	f.mu.Lock()
	f.arrivals = append(f.arrivals, time.Now())
	f.mu.Unlock()
	n := int(f.count.Add(1))
	resp, ok := f.reply(n, req)
	if !ok {
		time.Sleep(3 * time.Second) // silent: accept, never answer
		return
	}
	if f.byteWise {
		for _, b := range resp {
			_, _ = conn.Write([]byte{b})
			time.Sleep(time.Millisecond)
		}
		return
	}
	_, _ = conn.Write(resp)
}

// answer builds a response to req: the same data field header with
// payload, the request's sequence, and nak as the ack/nak code.
func answer(req emop.Frame, payload []byte, nak uint8) []byte {
	data := append([]byte(nil), req.Data...)
	if data[0] == emop.FormatDefault && len(data) >= 5 {
		data = append(data[:5:5], payload...)
		if data[4] == emop.RW_Write {
			data = data[:5]
			data[4] = emop.RW_Write
		}
	}
	f := emop.Frame{DestAddr: req.SrcAddr, SrcAddr: 0x123456, Control: emop.Control(req.Sequence(), nak), Data: data}
	b, _ := f.AppendTo(nil)
	return b
}

var balance = []byte{0xE0, 0x93, 0x04, 0x00} // £3.00

func okBalance(_ int, req emop.Frame) ([]byte, bool) { return answer(req, balance, 0), true }
