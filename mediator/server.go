// Package mediator serves the fleet over gRPC, wire-compatible with the
// reference mediator (package simt_emlite.mediator.grpc): EmliteMediatorService
// relays reads, writes and raw messages to meters, one request at a time
// per meter with the meter's gap (through meterconn); InfoService answers
// from the database. The meters served are the registry's meters with a
// serial and an address (optionally one ESCO's), refreshed periodically and
// at once when the registry changes (LISTEN/NOTIFY).
//
// A mediator limited to one ESCO reveals nothing of the others: their
// meters are not served, GetInfo answers for them as for an unknown serial
// and GetMeters refuses other ESCOs. Every write it relays (writeElement,
// and a sendRawMessage that is not a recognised read) is recorded in the
// meter write audit with the caller's certificate subject. Without mutual
// TLS it listens only on loopback unless Config.Insecure says otherwise.
package mediator

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/internal/lifecycle"
	"github.com/flows-energy/flows/mediator/pb"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/meterop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// Store is what the mediator reads from the database, and where it
// records the writes it relays.
type Store interface {
	Meters(ctx context.Context, f flows.MeterFilter) ([]flows.Meter, error)
	MeterStatus(ctx context.Context, serial string) (*flows.MeterStatus, error)
	MetersForCLI(ctx context.Context, esco string) ([]flows.CLIMeter, error)
	ListenRegistry(ctx context.Context, changed func()) error
	Audit(ctx context.Context, e flows.AuditEntry) error
	// The lease a request from outside Flows is served under (lease.go).
	LeaseMeterForPush(ctx context.Context, meterID, owner string, ttl time.Duration) (bool, error)
	ReleasePushLease(ctx context.Context, meterID, owner string) error
}

// Config configures a Server.
type Config struct {
	Addr    string // listen address (host:port; port 0 picks one)
	Store   Store
	Meters  meterop.Meters // meterconn.Client: per-meter queue, gap, retries
	ESCO    string         // serve only this ESCO's meters ("" = all)
	Refresh time.Duration  // registry refresh period (60 s)
	// TLS, when set, requires client certificates (mutual TLS) and checks
	// each call against the role in the certificate's OU.
	TLS *tls.Config
	// Insecure allows serving without TLS on an address other than
	// loopback (flows serve --grpc-insecure). Without it, Start refuses.
	Insecure bool
	// Node names this process in meter leases (host:pid by default; flows
	// serve passes the name its sync engine uses, so they are one node).
	Node string
	// LeaseWait is how long a request from outside Flows (emop, scripts)
	// waits while another node syncs or pushes to its meter (30 s) before
	// it is answered "busy".
	LeaseWait time.Duration
	Logger    *slog.Logger
}

// Server is the mediator.
type Server struct {
	pb.UnimplementedEmliteMediatorServiceServer
	pb.UnimplementedInfoServiceServer
	cfg   Config
	holds *holds

	refreshMu sync.Mutex // one refresh at a time: an older result never replaces a newer
	mu        sync.RWMutex
	meters    map[string]flows.Meter

	grpc   *grpc.Server
	ln     net.Listener
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a server; Start serves it.
func New(cfg Config) *Server {
	if cfg.Refresh <= 0 {
		cfg.Refresh = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Node == "" {
		cfg.Node = lifecycle.NodeName()
	}
	if cfg.LeaseWait <= 0 {
		cfg.LeaseWait = defaultLeaseWait
	}
	s := &Server{cfg: cfg, meters: map[string]flows.Meter{}}
	s.holds = newHolds(s)
	return s
}

// Start loads the registry, listens on the configured address and serves
// in the background. Without TLS it refuses an address other than
// loopback unless Config.Insecure is set.
func (s *Server) Start(ctx context.Context) error {
	if s.cfg.TLS == nil && !s.cfg.Insecure && !IsLoopback(s.cfg.Addr) {
		return flows.FieldError("--grpc", "%s is not a loopback address and mutual TLS is off: anyone who could reach it "+
			"could read and write any served meter; give --grpc-cert, --grpc-key and --grpc-ca (mutual TLS), "+
			"or --grpc-insecure to serve it unauthenticated anyway", s.cfg.Addr)
	}
	if err := s.refresh(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	s.ln = ln
	if s.cfg.TLS == nil {
		s.cfg.Logger.Warn("mediator serving without mutual TLS: anyone who can reach "+ln.Addr().String()+
			" can read and write any served meter, prepay_token_send included", "addr", ln.Addr().String())
	}
	var opts []grpc.ServerOption
	if s.cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.cfg.TLS)), grpc.UnaryInterceptor(authorize),
			grpc.StreamInterceptor(func(any, grpc.ServerStream, *grpc.StreamServerInfo, grpc.StreamHandler) error {
				return status.Error(codes.Unimplemented, "streaming calls are not served")
			}))
	}
	s.grpc = grpc.NewServer(opts...)
	pb.RegisterEmliteMediatorServiceServer(s.grpc, s)
	pb.RegisterInfoServiceServer(s.grpc, s)
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.wg.Add(3)
	go func() { defer s.wg.Done(); _ = s.grpc.Serve(ln) }()
	go func() { defer s.wg.Done(); s.refreshLoop(bg) }()
	go func() { defer s.wg.Done(); s.listenLoop(bg) }()
	return nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// IsLoopback says whether a listen address (host:port) is reachable only
// from this machine: 127.0.0.0/8, ::1 or "localhost". An empty host (every
// interface), any other name and a malformed address are not.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Zone() == "" && ip.Unmap().IsLoopback()
}

// Stop stops serving: in-flight calls finish, until ctx ends; then the
// rest are cut off.
func (s *Server) Stop(ctx context.Context) error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
		err = ctx.Err()
	}
	s.wg.Wait()
	return err
}

// refresh replaces the served set with the registry's meters (of the
// ESCO, when configured): a meter moved to another ESCO, made passive
// without a twin or deleted is no longer served.
func (s *Server) refresh(ctx context.Context) error {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	ms, err := s.cfg.Store.Meters(ctx, flows.MeterFilter{ESCOCode: s.cfg.ESCO})
	if err != nil {
		return err
	}
	next := make(map[string]flows.Meter, len(ms))
	for _, m := range ms {
		if !s.inScope(m.ESCOCode) {
			continue
		}
		if m.IPAddress != nil || m.Mode == flows.ModePassive {
			next[m.Serial] = m
		}
	}
	s.mu.Lock()
	s.meters = next
	s.mu.Unlock()
	return nil
}

func (s *Server) refreshLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.refresh(ctx); err != nil && ctx.Err() == nil {
				s.cfg.Logger.Warn("refreshing the meter registry", "error", err)
			}
		}
	}
}

// listenLoop refreshes as soon as the registry changes.
func (s *Server) listenLoop(ctx context.Context) {
	for ctx.Err() == nil {
		err := s.cfg.Store.ListenRegistry(ctx, func() {
			if err := s.refresh(ctx); err != nil && ctx.Err() == nil {
				s.cfg.Logger.Warn("refreshing the meter registry", "error", err)
			}
		})
		if err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("registry notifications lost; relying on the periodic refresh", "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
		}
	}
}

// inScope says whether an ESCO's meters are this mediator's.
func (s *Server) inScope(esco string) bool {
	return s.cfg.ESCO == "" || strings.EqualFold(esco, s.cfg.ESCO)
}

// target finds a served meter that has hardware. A meter outside the
// served set (another ESCO's included) is unknown.
func (s *Server) target(serial string) (flows.Meter, meterconn.Target, error) {
	if serial == "" {
		return flows.Meter{}, meterconn.Target{}, status.Error(codes.InvalidArgument, "Target meter serial not specified")
	}
	s.mu.RLock()
	m, ok := s.meters[serial]
	s.mu.RUnlock()
	if !ok || !s.inScope(m.ESCOCode) {
		return flows.Meter{}, meterconn.Target{}, status.Errorf(codes.NotFound, "Meter '%s' not known", serial)
	}
	t, err := meterconn.TargetOf(&m)
	if err != nil {
		return flows.Meter{}, meterconn.Target{}, status.Errorf(codes.FailedPrecondition, "Meter '%s': %s", serial, flows.ErrorMessage(err))
	}
	return m, t, nil
}

func objectID(id int32) (emop.ObjectID, error) {
	if id < 0 || id > 0xFFFFFF {
		return 0, status.Errorf(codes.InvalidArgument, "objectId %d is not a 3-byte object id", id)
	}
	return emop.ObjectID(id), nil
}

// ReadElement reads one object and returns its payload.
func (s *Server) ReadElement(ctx context.Context, req *pb.ReadElementRequest) (*pb.ReadElementReply, error) {
	m, t, err := s.target(req.GetSerial())
	if err != nil {
		return nil, err
	}
	id, err := objectID(req.GetObjectId())
	if err != nil {
		return nil, err
	}
	held := s.callerHolds(ctx)
	release, err := s.holdFor(ctx, m, held)
	if err != nil {
		return nil, toStatus(t.Serial, err)
	}
	defer release()
	p, err := s.cfg.Meters.Read(callerPriority(ctx), t, id)
	if err != nil {
		return nil, toStatus(t.Serial, err)
	}
	return &pb.ReadElementReply{Response: p}, nil
}

// WriteElement writes one object, recorded in the write audit.
func (s *Server) WriteElement(ctx context.Context, req *pb.WriteElementRequest) (*pb.WriteElementReply, error) {
	m, t, err := s.target(req.GetSerial())
	if err != nil {
		return nil, err
	}
	id, err := objectID(req.GetObjectId())
	if err != nil {
		return nil, err
	}
	if len(req.GetPayload()) > emop.MaxData-5 {
		return nil, status.Errorf(codes.InvalidArgument, "payload of %d bytes does not fit a frame", len(req.GetPayload()))
	}
	held := s.callerHolds(ctx)
	release, err := s.holdFor(ctx, m, held)
	if err != nil {
		return nil, toStatus(t.Serial, err)
	}
	defer release()
	err = s.cfg.Meters.Write(callerPriority(ctx), t, id, req.GetPayload())
	if !held { // a Flows node's pusher audits its own writes, with the request
		s.audit(ctx, m, objectName(id), auditValue(id, req.GetPayload()), err)
	}
	if err != nil {
		return nil, toStatus(t.Serial, err)
	}
	return &pb.WriteElementReply{}, nil
}

// SendRawMessage sends a data field and returns the response's data field
// after its format byte. Anything but a recognised read is recorded in the
// write audit.
func (s *Server) SendRawMessage(ctx context.Context, req *pb.SendRawMessageRequest) (*pb.SendRawMessageReply, error) {
	m, t, err := s.target(req.GetSerial())
	if err != nil {
		return nil, err
	}
	if n := len(req.GetDataField()); n == 0 || n > emop.MaxData {
		return nil, status.Errorf(codes.InvalidArgument, "dataField of %d bytes: want 1..%d", n, emop.MaxData)
	}
	held := s.callerHolds(ctx)
	release, err := s.holdFor(ctx, m, held)
	if err != nil {
		return nil, toStatus(t.Serial, err)
	}
	defer release()
	resp, err := s.cfg.Meters.Raw(callerPriority(ctx), t, req.GetDataField())
	if object, value, write := rawWrite(req.GetDataField()); write && !held {
		s.audit(ctx, m, object, value, err)
	}
	if err != nil {
		return nil, toStatus(t.Serial, err)
	}
	return &pb.SendRawMessageReply{Response: resp[1:]}, nil
}

// GetInfo returns the meter's registry row and shadow as JSON.
func (s *Server) GetInfo(ctx context.Context, req *pb.GetInfoRequest) (*pb.GetInfoReply, error) {
	if req.GetSerial() == "" {
		return nil, status.Error(codes.InvalidArgument, "Target meter serial not specified")
	}
	st, err := s.cfg.Store.MeterStatus(ctx, req.GetSerial())
	if err == nil && !s.inScope(st.Meter.ESCOCode) {
		// Another ESCO's meter is as unknown as a serial never registered.
		err = flows.Errorf(flows.ENOTFOUND, "not found")
	}
	if flows.ErrorCode(err) == flows.ENOTFOUND {
		return nil, status.Errorf(codes.NotFound, "meter %s not found", req.GetSerial())
	}
	if err != nil {
		return nil, toStatus(req.GetSerial(), err)
	}
	b, err := json.MarshalIndent(map[string]any{"registry": st.Meter, "shadow": st.Shadow, "registers": st.Registers, "stale": st.Stale}, "", "  ")
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encode meter info: %v", err)
	}
	return &pb.GetInfoReply{JsonData: string(b)}, nil
}

// GetMeters lists the active meters of an ESCO (all when empty). A
// mediator limited to an ESCO lists that one's when asked for none, and
// refuses any other without saying whether it exists.
func (s *Server) GetMeters(ctx context.Context, req *pb.GetMetersRequest) (*pb.GetMetersReply, error) {
	esco := req.GetEsco()
	if esco == "" {
		esco = s.cfg.ESCO
	}
	if !s.inScope(esco) {
		return nil, status.Errorf(codes.PermissionDenied, "this mediator serves only ESCO %s's meters", s.cfg.ESCO)
	}
	ms, err := s.cfg.Store.MetersForCLI(ctx, esco)
	if err != nil {
		return nil, toStatus("", err)
	}
	b, err := json.MarshalIndent(ms, "", "  ")
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encode meters: %v", err)
	}
	return &pb.GetMetersReply{JsonMeters: string(b)}, nil
}

var errNoCert = errors.New("no client certificate")
