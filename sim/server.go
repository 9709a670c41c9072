package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flows-energy/flows/emop"
)

// Fleet serves a set of meters, each on its own TCP address, speaking EMOP
// one request per connection like real meters.
//
// By default every meter has a listener of its own (a file descriptor and
// a goroutine each). With SetShared a fleet instead listens once per port
// on every loopback address and tells its meters apart by the address a
// connection came to: a 100,000-meter fleet then needs a handful of
// descriptors beside its open connections.
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

	shared    bool
	sharedLns []net.Listener
	byAddr    map[netip.AddrPort]*Meter // shared: the meter answering on an address

	open, mostOpen atomic.Int64 // connections being served

	violMu     sync.Mutex
	violations []Violation // the first maxViolations refused for the gap
}

// Violation is one request refused for coming too soon: which meter, how
// long after its last answer (or drop), and whether another request to it
// was still being served. A benchmark that counts one prints them, so the
// cause can be told (a client that gave up on a request the meter was
// still serving shows as during; one that counted its gap short, as a
// Since under the gap).
type Violation struct {
	Serial  string
	Since   time.Duration // since the meter's last answer
	During  bool          // another request to the meter was in progress
	Arrived time.Time
}

// maxViolations bounds what a fleet keeps of its gap violations (they are
// all counted).
const maxViolations = 20

// Violations returns the first gap violations the fleet refused.
func (f *Fleet) Violations() []Violation {
	f.violMu.Lock()
	defer f.violMu.Unlock()
	return append([]Violation(nil), f.violations...)
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

// SetShared, before Start, makes the fleet listen once per port on all
// loopback addresses (Linux) instead of once per meter. Every served
// meter then needs an IPv4 loopback address of its own (ports 0 share one
// free port), and an offline meter's connections are reset as soon as
// they are accepted rather than refused: the kernel completes the
// handshake before the fleet sees which meter was meant.
func (f *Fleet) SetShared(shared bool) { f.shared = shared }

// Meters returns the fleet's meters.
func (f *Fleet) Meters() []*Meter { return f.meters }

// Meter returns the meter with serial.
func (f *Fleet) Meter(serial string) (*Meter, bool) {
	m, ok := f.bySerial[serial]
	return m, ok
}

// Clock returns the fleet's simulated clock.
func (f *Fleet) Clock() Clock { return f.clock }

// Served counts the meters a fleet of specs listens for: all but the
// passive ones (digital twins, with no hardware to reach).
func Served(specs []Spec) int {
	n := 0
	for _, s := range specs {
		if s.Mode != "passive" {
			n++
		}
	}
	return n
}

// Start binds every meter that is not offline (passive meters have no
// hardware and are not served) and serves in the background. A meter
// with port 0 gets a free port, recorded in its Spec.
func (f *Fleet) Start(ctx context.Context) error {
	f.ctx, f.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if f.shared {
		if err := f.startShared(); err != nil {
			f.Stop()
			return err
		}
		return nil
	}
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

// startShared opens one loopback listener per port the meters use (one
// for all the meters with port 0), maps every meter's address, and then
// serves (route reads the map unlocked).
func (f *Fleet) startShared() error {
	byPort := map[int]net.Listener{}
	f.byAddr = make(map[netip.AddrPort]*Meter, len(f.meters))
	for _, m := range f.meters {
		if m.Spec.Mode == "passive" {
			continue
		}
		ip, err := netip.ParseAddr(m.Spec.IPAddress)
		if err != nil || !ip.Is4() || !ip.IsLoopback() {
			return fmt.Errorf("meter %s: shared listeners serve IPv4 loopback addresses, not %q", m.Spec.Serial, m.Spec.IPAddress)
		}
		ln, ok := byPort[m.Spec.Port]
		if !ok {
			if ln, err = listenLoopback(f.ctx, m.Spec.Port); err != nil {
				return fmt.Errorf("listen on port %d of every loopback address: %w", m.Spec.Port, err)
			}
			byPort[m.Spec.Port] = ln
			f.mu.Lock()
			f.sharedLns = append(f.sharedLns, ln)
			f.mu.Unlock()
		}
		m.Spec.Port = ln.Addr().(*net.TCPAddr).Port
		key := netip.AddrPortFrom(ip, uint16(m.Spec.Port))
		if other, dup := f.byAddr[key]; dup {
			return fmt.Errorf("meters %s and %s both have address %s: shared listeners tell meters apart by address", other.Spec.Serial, m.Spec.Serial, key)
		}
		f.byAddr[key] = m
	}
	for _, ln := range byPort {
		f.wg.Add(1)
		go f.accept(ln, "", f.route)
	}
	return nil
}

// route finds the meter whose address a connection on a shared listener
// came to: nil for none, or one that is offline.
func (f *Fleet) route(conn net.Conn) *Meter {
	a, ok := conn.LocalAddr().(*net.TCPAddr)
	if !ok {
		return nil
	}
	m := f.byAddr[netip.AddrPortFrom(a.AddrPort().Addr().Unmap(), uint16(a.Port))]
	if m == nil || m.Faults().Offline {
		return nil
	}
	return m
}

// reset closes conn with a TCP reset rather than an orderly close.
func reset(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	conn.Close()
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
	go f.accept(ln, m.Spec.Serial, func(net.Conn) *Meter { return m })
	return nil
}

// SetOffline takes a meter off the network (connections refused; reset
// with shared listeners) or brings it back.
func (f *Fleet) SetOffline(serial string, offline bool) error {
	m, ok := f.bySerial[serial]
	if !ok {
		return fmt.Errorf("no simulated meter %s", serial)
	}
	fl := m.Faults()
	fl.Offline = offline
	m.SetFaults(fl)
	if f.shared {
		return nil // route looks at the fault
	}
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
	for _, ln := range f.sharedLns {
		ln.Close()
	}
	f.sharedLns = nil
	f.mu.Unlock()
	f.wg.Wait()
}

// accept takes connections on ln until it is closed and serves each for
// the meter route names; one it names none for is reset (nobody there:
// the nearest a shared listener has to a refusal). A failed accept (out
// of file descriptors, most likely) is retried after a pause that grows
// to a second, as net/http does, rather than ending the meter.
func (f *Fleet) accept(ln net.Listener, serial string, route func(net.Conn) *Meter) {
	defer f.wg.Done()
	var pause time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if pause == 0 {
				f.log.Warn("simulated meter cannot accept a connection; retrying", "meter_serial", serial, "address", ln.Addr().String(), "error", err)
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(pause):
			case <-f.ctx.Done():
				return
			}
			continue
		}
		pause = 0
		m := route(conn)
		if m == nil {
			reset(conn)
			continue
		}
		raiseTo(&f.mostOpen, f.open.Add(1))
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer f.open.Add(-1)
			f.handle(m, conn)
		}()
	}
}

// raiseTo sets a to n if n is more.
func raiseTo(a *atomic.Int64, n int64) {
	for most := a.Load(); n > most && !a.CompareAndSwap(most, n); most = a.Load() {
	}
}

// handle serves one connection: one request, one answer, close.
func (f *Fleet) handle(m *Meter, conn net.Conn) {
	defer conn.Close()
	fl := m.Faults()
	m.mu.Lock()
	since, during := time.Since(m.lastEnd), m.inFlight > 0
	early := fl.MinGap > 0 && (since < fl.MinGap || during)
	off := m.poweredOff(f.clock.Now())
	if !early && !off {
		m.inFlight++
	}
	m.mu.Unlock()
	if early {
		// Not ready yet: the real meter drops back-to-back requests.
		m.stats.gap.Add(1)
		f.violMu.Lock()
		if len(f.violations) < maxViolations {
			f.violations = append(f.violations, Violation{Serial: m.Spec.Serial, Since: since, During: during, Arrived: time.Now().UTC()})
		}
		f.violMu.Unlock()
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

// Connections returns how many connections the fleet is serving now and
// the most it has served at once (refused ones included while they last).
func (f *Fleet) Connections() (open, most int64) { return f.open.Load(), f.mostOpen.Load() }

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
