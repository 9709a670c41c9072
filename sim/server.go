package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/flows-energy/flows/emop"
)

// Fleet serves a set of meters, each on its own TCP address, speaking EMOP
// one request per connection like real meters.
type Fleet struct {
	clock Clock
	log   *slog.Logger

	mu       sync.Mutex
	meters   []*Meter
	bySerial map[string]*Meter
	lns      map[string]net.Listener // by serial, while listening
	wg       sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc
}

// NewFleet makes a fleet from meters already built (NewMeter or a state file).
func NewFleet(meters []*Meter, clock Clock, log *slog.Logger) *Fleet {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Fleet{clock: clock, log: log, meters: meters, bySerial: map[string]*Meter{}, lns: map[string]net.Listener{}}
	for _, m := range meters {
		f.bySerial[m.Spec.Serial] = m
	}
	return f
}

// Meters returns the fleet's meters.
func (f *Fleet) Meters() []*Meter { return f.meters }

// Meter returns the meter with serial.
func (f *Fleet) Meter(serial string) (*Meter, bool) {
	m, ok := f.bySerial[serial]
	return m, ok
}

// Clock returns the fleet's simulated clock.
func (f *Fleet) Clock() Clock { return f.clock }

// Start binds every meter that is not offline (passive meters have no
// hardware and are not served) and serves in the background. A meter
// with port 0 gets a free port, recorded in its Spec.
func (f *Fleet) Start(ctx context.Context) error {
	f.ctx, f.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for _, m := range f.meters {
		if m.Spec.Mode == "passive" {
			continue
		}
		if err := f.listen(m); err != nil {
			f.Stop()
			return err
		}
		if m.Faults().Offline {
			// Bound once so the meter has an address; closed so that
			// connections are refused until SetOffline(false).
			f.mu.Lock()
			ln := f.lns[m.Spec.Serial]
			delete(f.lns, m.Spec.Serial)
			f.mu.Unlock()
			ln.Close()
		}
	}
	return nil
}

func (f *Fleet) listen(m *Meter) error {
	ln, err := net.Listen("tcp", net.JoinHostPort(m.Spec.IPAddress, strconv.Itoa(m.Spec.Port)))
	if err != nil {
		return fmt.Errorf("meter %s: listen on %s:%d: %w", m.Spec.Serial, m.Spec.IPAddress, m.Spec.Port, err)
	}
	m.Spec.Port = ln.Addr().(*net.TCPAddr).Port
	f.mu.Lock()
	f.lns[m.Spec.Serial] = ln
	f.mu.Unlock()
	f.wg.Add(1)
	go f.serve(m, ln)
	return nil
}

// SetOffline takes a meter off the network (connections refused) or
// brings it back.
func (f *Fleet) SetOffline(serial string, offline bool) error {
	m, ok := f.bySerial[serial]
	if !ok {
		return fmt.Errorf("no simulated meter %s", serial)
	}
	fl := m.Faults()
	fl.Offline = offline
	m.SetFaults(fl)
	f.mu.Lock()
	ln, listening := f.lns[serial]
	if offline && listening {
		delete(f.lns, serial)
	}
	f.mu.Unlock()
	if offline && listening {
		return ln.Close()
	}
	if !offline && !listening {
		return f.listen(m)
	}
	return nil
}

// Stop closes every listener and waits for open connections to finish.
func (f *Fleet) Stop() {
	if f.cancel != nil {
		f.cancel()
	}
	f.mu.Lock()
	for s, ln := range f.lns {
		ln.Close()
		delete(f.lns, s)
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *Fleet) serve(m *Meter, ln net.Listener) {
	defer f.wg.Done()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				f.log.Warn("simulated meter stopped accepting", "meter_serial", m.Spec.Serial, "error", err)
			}
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.handle(m, conn)
		}()
	}
}

// handle serves one connection: one request, one answer, close.
func (f *Fleet) handle(m *Meter, conn net.Conn) {
	defer conn.Close()
	fl := m.Faults()
	m.mu.Lock()
	early := fl.MinGap > 0 && (time.Since(m.lastEnd) < fl.MinGap || m.inFlight > 0)
	off := m.poweredOff(f.clock.Now())
	if !early && !off {
		m.inFlight++
	}
	m.mu.Unlock()
	if early {
		// Not ready yet: the real meter drops back-to-back requests.
		m.stats.gap.Add(1)
		return
	}
	if off {
		return // no power: its modem is down with it
	}
	defer func() {
		m.mu.Lock()
		m.inFlight--
		m.mu.Unlock()
	}()
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	req, _, err := emop.ReadFrame(conn)
	if err != nil {
		var crc *emop.CRCError
		if errors.As(err, &crc) {
			f.reply(conn, emop.Frame{DestAddr: req.SrcAddr, SrcAddr: m.addr, Control: emop.Control(req.Sequence(), emop.NakCRC), Data: nakData(req.Data)}, fl, m)
		}
		return
	}
	// Requests in progress: from a request read to its reply written.
	if n := m.active.Add(1); n > m.maxActive.Load() {
		m.maxActive.Store(n) // a racy max is enough: any overlap shows as ≥ 2
	}
	var once sync.Once
	done := func() { once.Do(func() { m.active.Add(-1) }) }
	defer done()
	if fl.Silent {
		select { // hold the connection open without a word
		case <-f.ctx.Done():
		case <-time.After(30 * time.Second):
		}
		return
	}
	if fl.LatencyMax > 0 {
		m.mu.Lock()
		d := fl.LatencyMin + time.Duration(m.rng.Int64N(int64(max(fl.LatencyMax-fl.LatencyMin, 1))))
		m.mu.Unlock()
		select {
		case <-time.After(d):
		case <-f.ctx.Done():
			return
		}
	}
	if m.dropFlakyPhase(req, fl) {
		return // the connection closes unanswered: an EOF for the client
	}
	m.mu.Lock()
	roll := m.rng.Float64()
	m.mu.Unlock()
	switch {
	case roll < fl.DropRate:
		m.stats.dropped.Add(1)
		m.mu.Lock()
		m.lastEnd = time.Now()
		m.mu.Unlock()
		return // the connection closes unanswered
	case roll < fl.DropRate+fl.TimeoutRate:
		m.stats.timedOut.Add(1)
		select { // held open until the client gives up, or 30 s
		case <-f.ctx.Done():
		case <-time.After(30 * time.Second):
		case <-closed(conn):
		}
		m.mu.Lock()
		m.lastEnd = time.Now()
		m.mu.Unlock()
		return
	}
	var resp emop.Frame
	m.mu.Lock()
	injectNak := fl.NakRate > 0 && m.rng.Float64() < fl.NakRate
	m.mu.Unlock()
	if injectNak {
		resp = emop.Frame{DestAddr: req.SrcAddr, SrcAddr: m.addr, Control: emop.Control(req.Sequence(), emop.NakCRC), Data: nakData(req.Data)}
	} else {
		resp = m.Handle(req, f.clock.Now())
	}
	done() // answered: the reply is on its way
	m.stats.answered.Add(1)
	f.reply(conn, resp, fl, m)
}

// closed returns a channel closed when the client closes conn (a read
// returns), so a request held unanswered ends with its client.
func closed(conn net.Conn) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		_ = conn.SetReadDeadline(time.Now().Add(31 * time.Second))
		var b [1]byte
		_, _ = conn.Read(b[:])
		close(ch)
	}()
	return ch
}

// Stats sums the counters of the fleet's meters.
func (f *Fleet) Stats() Stats {
	var s Stats
	for _, m := range f.meters {
		ms := m.Stats()
		s.Answered += ms.Answered
		s.GapViolations += ms.GapViolations
		s.Dropped += ms.Dropped
		s.TimedOut += ms.TimedOut
	}
	return s
}

func (f *Fleet) reply(conn net.Conn, resp emop.Frame, fl Faults, m *Meter) {
	b, err := resp.AppendTo(make([]byte, 0, emop.MaxFrameSize))
	if err != nil {
		return
	}
	m.mu.Lock()
	if fl.CorruptRate > 0 && m.rng.Float64() < fl.CorruptRate {
		b[len(b)-1] ^= 0x5A
	}
	m.lastEnd = time.Now()
	m.mu.Unlock()
	_, _ = conn.Write(b)
}
