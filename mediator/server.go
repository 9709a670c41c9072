// Package mediator serves the fleet over gRPC, wire-compatible with the
// reference mediator (package simt_emlite.mediator.grpc): EmliteMediatorService
// relays reads, writes and raw messages to meters, one request at a time
// per meter with the meter's gap (through meterconn); InfoService answers
// from the database. The meters served are the registry's meters with a
// serial and an address (optionally one ESCO's), refreshed periodically and
// at once when the registry changes (LISTEN/NOTIFY).
package mediator

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/mediator/pb"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/meterop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// Store is what the mediator reads from the database.
type Store interface {
	Meters(ctx context.Context, f flows.MeterFilter) ([]flows.Meter, error)
	MeterStatus(ctx context.Context, serial string) (*flows.MeterStatus, error)
	MetersForCLI(ctx context.Context, esco string) ([]flows.CLIMeter, error)
	ListenRegistry(ctx context.Context, changed func()) error
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
	TLS    *tls.Config
	Logger *slog.Logger
}

// Server is the mediator.
type Server struct {
	pb.UnimplementedEmliteMediatorServiceServer
	pb.UnimplementedInfoServiceServer
	cfg Config

	mu     sync.RWMutex
	meters map[string]flows.Meter

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
	return &Server{cfg: cfg, meters: map[string]flows.Meter{}}
}

// Start loads the registry, listens on the configured address and serves
// in the background.
func (s *Server) Start(ctx context.Context) error {
	if err := s.refresh(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	s.ln = ln
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

func (s *Server) refresh(ctx context.Context) error {
	ms, err := s.cfg.Store.Meters(ctx, flows.MeterFilter{ESCOCode: s.cfg.ESCO})
	if err != nil {
		return err
	}
	next := make(map[string]flows.Meter, len(ms))
	for _, m := range ms {
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

// target finds a served meter that has hardware.
func (s *Server) target(serial string) (meterconn.Target, error) {
	if serial == "" {
		return meterconn.Target{}, status.Error(codes.InvalidArgument, "Target meter serial not specified")
	}
	s.mu.RLock()
	m, ok := s.meters[serial]
	s.mu.RUnlock()
	if !ok {
		return meterconn.Target{}, status.Errorf(codes.NotFound, "Meter '%s' not known", serial)
	}
	t, err := meterconn.TargetOf(&m)
	if err != nil {
		return meterconn.Target{}, status.Errorf(codes.FailedPrecondition, "Meter '%s': %s", serial, flows.ErrorMessage(err))
	}
	return t, nil
}

func objectID(id int32) (emop.ObjectID, error) {
	if id < 0 || id > 0xFFFFFF {
		return 0, status.Errorf(codes.InvalidArgument, "objectId %d is not a 3-byte object id", id)
	}
	return emop.ObjectID(id), nil
}

// ReadElement reads one object and returns its payload.
func (s *Server) ReadElement(ctx context.Context, req *pb.ReadElementRequest) (*pb.ReadElementReply, error) {
	t, err := s.target(req.GetSerial())
	if err != nil {
		return nil, err
	}
	id, err := objectID(req.GetObjectId())
	if err != nil {
		return nil, err
	}
	p, err := s.cfg.Meters.Read(ctx, t, id)
	if err != nil {
		return nil, toStatus(t.Serial, err)
	}
	return &pb.ReadElementReply{Response: p}, nil
}

// WriteElement writes one object.
func (s *Server) WriteElement(ctx context.Context, req *pb.WriteElementRequest) (*pb.WriteElementReply, error) {
	t, err := s.target(req.GetSerial())
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
	if err := s.cfg.Meters.Write(ctx, t, id, req.GetPayload()); err != nil {
		return nil, toStatus(t.Serial, err)
	}
	return &pb.WriteElementReply{}, nil
}

// SendRawMessage sends a data field and returns the response's data field
// after its format byte.
func (s *Server) SendRawMessage(ctx context.Context, req *pb.SendRawMessageRequest) (*pb.SendRawMessageReply, error) {
	t, err := s.target(req.GetSerial())
	if err != nil {
		return nil, err
	}
	if n := len(req.GetDataField()); n == 0 || n > emop.MaxData {
		return nil, status.Errorf(codes.InvalidArgument, "dataField of %d bytes: want 1..%d", n, emop.MaxData)
	}
	resp, err := s.cfg.Meters.Raw(ctx, t, req.GetDataField())
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

// GetMeters lists the active meters of an ESCO (all when empty).
func (s *Server) GetMeters(ctx context.Context, req *pb.GetMetersRequest) (*pb.GetMetersReply, error) {
	esco := req.GetEsco()
	if esco == "" {
		esco = s.cfg.ESCO
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
