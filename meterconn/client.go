// Package meterconn carries EMOP frames to meters over TCP.
//
// Real meters accept one request per connection and one connection at a
// time, and refuse a request that follows the previous one too closely. A
// Client therefore opens a connection per request (connect, write one frame,
// read one frame, close), serialises requests per meter address with a
// bounded wait ("meter busy" after it), keeps a minimum gap between
// requests to the same meter, applies connect and read deadlines, and
// retries transient failures (refused or reset connections, timeouts,
// corrupt frames, NAK 1) with backoff. A NAK that means "unknown object"
// or "read-only" is returned at once as *emop.NakError. Responses are
// checked: CRC, sequence echo, ack/nak, and the object id echo.
package meterconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"golang.org/x/net/proxy"
)

// Config configures a Client. Zero durations and counts take the defaults
// in parentheses, except Gap where zero means no gap (use DefaultGap for
// real meters).
type Config struct {
	Gap            time.Duration // minimum time between requests to one meter
	ConnectTimeout time.Duration // per attempt (10 s)
	ReadTimeout    time.Duration // for the response, per attempt (10 s)
	Attempts       int           // attempts per request, first included (3)
	Backoff        time.Duration // wait before the second attempt, doubling (1 s)
	BusyWait       time.Duration // longest wait for a meter's earlier requests (60 s)
	MaxConcurrent  int           // requests in flight across all meters (256)
	SourceAddress  uint32        // our EMOP address (0x21AE42, as the reference)
	SOCKS5         *SOCKS5       // optional proxy to reach the meters
	Logger         *slog.Logger
	Observer       Observer
}

// DefaultGap is the gap real meters need between requests.
const DefaultGap = 2 * time.Second

// SOCKS5 names a SOCKS5 proxy (the SIM provider's VPN gateway).
type SOCKS5 struct {
	Addr, Username, Password string
}

// Observer receives one call per request: its kind (read, write, raw), its
// result (ok, nak, busy, timeout, unreachable, crc, protocol, canceled) and
// its duration. It must be safe for concurrent use.
type Observer interface {
	ObserveRequest(kind, result string, d time.Duration)
}

// Target is a meter: its serial (for logs and errors) and TCP address.
type Target struct {
	Serial string
	Addr   string // host:port
}

// ErrBusy is returned when a meter's earlier requests did not finish
// within BusyWait.
var ErrBusy = errors.New("meter busy")

// CommError is a failure to talk to a meter after all attempts. Kind is a
// short actionable word: "unreachable" (refused, no route, proxy failure),
// "timeout", "crc" (corrupt responses), "protocol" (malformed or mismatched
// responses).
type CommError struct {
	Kind     string
	Attempts int
	Err      error // the last attempt's error
}

func (e *CommError) Error() string {
	return fmt.Sprintf("meter %s after %d attempts: %v", e.Kind, e.Attempts, e.Err)
}

func (e *CommError) Unwrap() error { return e.Err }

// ProtocolError is a response that decoded but did not answer the request.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "unexpected response: " + e.Msg }

// Client talks to meters. It is safe for concurrent use.
type Client struct {
	cfg    Config
	dial   func(ctx context.Context, addr string) (net.Conn, error)
	global chan struct{}
	seq    atomic.Uint32

	mu     sync.Mutex
	meters map[string]*meterState
}

// meterState is one meter's turn: one request at a time, operator
// requests handed the turn before scheduled ones that waited longer.
type meterState struct {
	mu      sync.Mutex
	busy    bool
	waiting [2][]chan struct{} // by priority: operator, then scheduled
	// lastDone is when the meter last answered (or failed); guarded by
	// holding the turn.
	lastDone time.Time
}

// Operator marks ctx as an operator's request (a top-up, a tariff push, a
// command, an on-demand sync, a mediator client): a meter's turn goes to it
// before any waiting scheduled request, so it reaches the meter within one
// request and gap of the meter being free, however many scheduled reads
// are queued.
func Operator(ctx context.Context) context.Context {
	return context.WithValue(ctx, operatorKey{}, true)
}

// IsOperator says whether ctx was marked by Operator.
func IsOperator(ctx context.Context) bool { v, _ := ctx.Value(operatorKey{}).(bool); return v }

type operatorKey struct{}

// take waits for the meter's turn, at most wait; the caller must give it
// back.
func (m *meterState) take(ctx context.Context, operator bool, wait time.Duration) error {
	m.mu.Lock()
	if !m.busy {
		m.busy = true
		m.mu.Unlock()
		return nil
	}
	p := 1
	if operator {
		p = 0
	}
	ch := make(chan struct{})
	m.waiting[p] = append(m.waiting[p], ch)
	m.mu.Unlock()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	var err error
	select {
	case <-ch:
		return nil
	case <-timer.C:
		err = ErrBusy
	case <-ctx.Done():
		err = ctx.Err()
	}
	m.mu.Lock()
	for i, w := range m.waiting[p] {
		if w == ch {
			m.waiting[p] = append(m.waiting[p][:i], m.waiting[p][i+1:]...)
			m.mu.Unlock()
			return err
		}
	}
	m.mu.Unlock()
	// Handed the turn as it gave up: pass it on (the gap is past).
	m.give(0)
	return err
}

// give gives the turn back. Waiting requests are handed it when the
// meter's gap after lastDone has passed, not at once: the turn is decided
// when the meter can next be asked, so an operator request that arrives
// during the gap (the next step of a top-up, a moment after the last)
// goes before the scheduled reads that were already waiting.
func (m *meterState) give(gap time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.waiting[0])+len(m.waiting[1]) == 0 {
		m.busy = false
		return
	}
	if wait := time.Until(m.lastDone.Add(gap)); wait > 0 {
		time.AfterFunc(wait, func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.handOff()
		})
		return
	}
	m.handOff()
}

// handOff hands the turn to the first operator request waiting, else the
// first scheduled one, else frees it. m.mu is held.
func (m *meterState) handOff() {
	for p := range m.waiting {
		if len(m.waiting[p]) > 0 {
			ch := m.waiting[p][0]
			m.waiting[p] = m.waiting[p][1:]
			close(ch)
			return
		}
	}
	m.busy = false
}

// New returns a client.
func New(cfg Config) (*Client, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.ConnectTimeout, 10*time.Second)
	def(&cfg.ReadTimeout, 10*time.Second)
	def(&cfg.Backoff, time.Second)
	def(&cfg.BusyWait, 60*time.Second)
	if cfg.Attempts <= 0 {
		cfg.Attempts = 3
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 256
	}
	if cfg.SourceAddress == 0 {
		cfg.SourceAddress = 0x21AE42
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, global: make(chan struct{}, cfg.MaxConcurrent), meters: map[string]*meterState{}}
	d := &net.Dialer{Timeout: cfg.ConnectTimeout}
	c.dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	if s := cfg.SOCKS5; s != nil {
		var auth *proxy.Auth
		if s.Username != "" {
			auth = &proxy.Auth{User: s.Username, Password: s.Password}
		}
		pd, err := proxy.SOCKS5("tcp", s.Addr, auth, d)
		if err != nil {
			return nil, fmt.Errorf("SOCKS5 proxy %s: %w", s.Addr, err)
		}
		cd, ok := pd.(proxy.ContextDialer)
		if !ok {
			return nil, errors.New("SOCKS5 dialer does not support contexts")
		}
		c.dial = func(ctx context.Context, addr string) (net.Conn, error) { return cd.DialContext(ctx, "tcp", addr) }
	}
	return c, nil
}

// Read reads object id and returns its payload.
func (c *Client) Read(ctx context.Context, t Target, id emop.ObjectID) ([]byte, error) {
	data, err := c.do(ctx, t, "read", emop.ReadRequest(id))
	if err != nil {
		return nil, err
	}
	rec, err := c.checkRecord(data, id, false)
	if err != nil {
		return nil, err
	}
	return rec.Payload, nil
}

// Write writes payload to object id.
func (c *Client) Write(ctx context.Context, t Target, id emop.ObjectID, payload []byte) error {
	data, err := c.do(ctx, t, "write", emop.WriteRequest(id, payload))
	if err != nil {
		return err
	}
	_, err = c.checkRecord(data, id, true)
	return err
}

// Raw sends a data field (format byte first) and returns the response's
// data field (format byte first).
func (c *Client) Raw(ctx context.Context, t Target, data []byte) ([]byte, error) {
	if len(data) == 0 || len(data) > emop.MaxData {
		return nil, &emop.LengthError{What: "data field", Got: len(data), Want: "1..243"}
	}
	resp, err := c.do(ctx, t, "raw", data)
	if err != nil {
		return nil, err
	}
	if resp[0] != data[0] {
		return nil, &ProtocolError{Msg: fmt.Sprintf("format 0x%02x answers a 0x%02x request", resp[0], data[0])}
	}
	return resp, nil
}

// checkRecord verifies that a default-format response echoes the object.
func (c *Client) checkRecord(data []byte, id emop.ObjectID, write bool) (emop.Record, error) {
	rec, err := emop.ParseRecord(data)
	if err != nil {
		return rec, &ProtocolError{Msg: err.Error()}
	}
	if rec.Object != id {
		return rec, &ProtocolError{Msg: fmt.Sprintf("object %s answers a request for %s", rec.Object, id)}
	}
	if write && len(rec.Payload) != 0 {
		return rec, &ProtocolError{Msg: "a write response carries a payload"}
	}
	return rec, nil
}

func (c *Client) meter(addr string) *meterState {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.meters[addr]
	if m == nil {
		m = &meterState{}
		c.meters[addr] = m
	}
	return m
}

// do runs one request with the meter's turn held: waits for the gap,
// attempts, backs off, and returns the response data field.
func (c *Client) do(ctx context.Context, t Target, kind string, data []byte) (_ []byte, err error) {
	start := time.Now()
	defer func() {
		if c.cfg.Observer != nil {
			c.cfg.Observer.ObserveRequest(kind, resultOf(err), time.Since(start))
		}
	}()
	m := c.meter(t.Addr)
	if err := m.take(ctx, IsOperator(ctx), c.cfg.BusyWait); err != nil {
		if errors.Is(err, ErrBusy) {
			return nil, fmt.Errorf("%s: %w (waited %v for earlier requests)", t.Serial, ErrBusy, c.cfg.BusyWait)
		}
		return nil, err
	}
	defer func() {
		if now := time.Now(); now.After(m.lastDone) { // not if the meter may still be busy
			m.lastDone = now
		}
		m.give(c.cfg.Gap)
	}()
	select {
	case c.global <- struct{}{}:
		defer func() { <-c.global }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}

	var last error
	for attempt := 1; attempt <= c.cfg.Attempts; attempt++ {
		wait := time.Until(m.lastDone.Add(c.cfg.Gap))
		if attempt > 1 {
			wait = max(wait, c.cfg.Backoff<<(attempt-2))
		}
		if wait > 0 {
			if err := sleep(ctx, wait); err != nil {
				return nil, err
			}
		}
		began := time.Now()
		resp, err := c.attempt(ctx, t, data)
		m.lastDone = time.Now()
		if err == nil {
			return resp, nil
		}
		if c.cfg.Gap > 0 && (ctx.Err() != nil || kindOf(err) == "timeout") {
			// Given up before the answer (the caller's deadline may cut
			// the read short): the meter may still be serving the request
			// (a modem does not notice the hang-up), so its gap runs from
			// when a full read would have given up.
			if busy := began.Add(c.cfg.ReadTimeout); busy.After(m.lastDone) {
				m.lastDone = busy
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var nak *emop.NakError
		if errors.As(err, &nak) && nak.Code != emop.NakCRC {
			return nil, err // the meter understood and said no: retrying cannot help
		}
		last = err
		c.cfg.Logger.Debug("meter request failed", "meter_serial", t.Serial, "attempt", attempt, "error", err)
	}
	return nil, &CommError{Kind: kindOf(last), Attempts: c.cfg.Attempts, Err: last}
}

func (c *Client) attempt(ctx context.Context, t Target, data []byte) ([]byte, error) {
	seq := uint8(c.seq.Add(1) & 0x07)
	req := emop.Frame{SrcAddr: c.cfg.SourceAddress, Control: emop.Control(seq, 0), Data: data}
	buf, err := req.AppendTo(make([]byte, 0, emop.MaxFrameSize))
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	conn, err := c.dial(dctx, t.Addr)
	cancel()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	deadline := time.Now().Add(c.cfg.ReadTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	// Close the connection when the caller gives up, so a blocked read
	// returns at once rather than at its deadline.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := conn.Write(buf); err != nil {
		return nil, err
	}
	resp, _, err := emop.ReadFrame(conn)
	if err != nil {
		return nil, err
	}
	if resp.Sequence() != seq {
		return nil, &ProtocolError{Msg: fmt.Sprintf("sequence %d answers request %d", resp.Sequence(), seq)}
	}
	if code := resp.AckNak(); code != emop.NakOK {
		return nil, &emop.NakError{Code: code}
	}
	return resp.Data, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// kindOf classifies a transport error for CommError.Kind.
func kindOf(err error) string {
	var crc *emop.CRCError
	var nak *emop.NakError
	var ne net.Error
	switch {
	case errors.As(err, &crc), errors.As(err, &nak) && nak.Code == emop.NakCRC:
		return "crc"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return "protocol"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" || errors.As(err, &op) && op.Op == "socks connect" {
		return "unreachable"
	}
	return "protocol"
}

func resultOf(err error) string {
	var nak *emop.NakError
	var ce *CommError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &ce):
		return ce.Kind
	case errors.As(err, &nak):
		return "nak"
	case errors.Is(err, ErrBusy):
		return "busy"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	}
	return "protocol"
}

// Detail returns a short actionable description of a meter error, for
// meter_shadows.health_details: "unreachable", "timeout", "CRC errors",
// "NAK 5 (data object not recognised)", "busy".
func Detail(err error) string {
	var nak *emop.NakError
	var ce *CommError
	var fe *flows.Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &fe):
		return fe.Error() // says what was wrong, for people
	case errors.As(err, &ce):
		if ce.Kind == "crc" {
			return "CRC errors"
		}
		return ce.Kind
	case errors.As(err, &nak):
		return fmt.Sprintf("NAK %d (%s)", nak.Code, emop.NakMeaning(nak.Code))
	case errors.Is(err, ErrBusy):
		return "busy"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "protocol error"
}

// Failure is what a meter request's error means for whoever asked: the
// one classification the sync engine, the command pusher and the mediator
// share.
type Failure int

// Failure classes.
const (
	// FailureNone: the request succeeded.
	FailureNone Failure = iota
	// FailureComm: the meter could not be reached, or its answers were
	// unusable (timeouts, CRC errors, malformed or mismatched frames, a
	// meter busy with earlier requests). Retrying later may work.
	FailureComm
	// FailureRefused: the meter answered and said no (NAK). Asking again
	// gets the same answer.
	FailureRefused
	// FailureCanceled: the caller gave up (shutdown). Nothing is known
	// about the meter.
	FailureCanceled
	// FailureOther: anything else, such as an input that cannot be
	// encoded. Not the meter's doing; retrying does not help.
	FailureOther
	// FailureDependency: something between Flows and the meter is down
	// (a mediator the request goes through, the database a step needs):
	// an EUNAVAILABLE error. Nothing is known about the meter, so nothing
	// is held against it; retrying later may work.
	FailureDependency
)

// Classify says what err means. A CommError whose last attempt was a NAK
// is still a communication failure: the attempts ran out.
func Classify(err error) Failure {
	var ce *CommError
	var pe *ProtocolError
	var nak *emop.NakError
	switch {
	case err == nil:
		return FailureNone
	case errors.As(err, &ce), errors.As(err, &pe), errors.Is(err, ErrBusy), errors.Is(err, context.DeadlineExceeded):
		return FailureComm
	case errors.As(err, &nak):
		return FailureRefused
	case errors.Is(err, context.Canceled):
		return FailureCanceled
	case flows.ErrorCode(err) == flows.EUNAVAILABLE:
		return FailureDependency
	}
	return FailureOther
}

// Unreached reports whether the request did not get an answer from the
// meter: it could not be reached (FailureComm), or the way to it is down
// (FailureDependency). Either way, asking it more now is pointless.
func (f Failure) Unreached() bool { return f == FailureComm || f == FailureDependency }

// TargetOf returns where to reach a meter's hardware, or the EINVALID
// error of flows.Meter.Address when Flows may not talk to it.
func TargetOf(m *flows.Meter) (Target, error) {
	addr, err := m.Address()
	if err != nil {
		return Target{}, err
	}
	return Target{Serial: m.Serial, Addr: addr}, nil
}
