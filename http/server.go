package http

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flows-energy/flows"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config configures a Server.
type Config struct {
	Addr      string // listen address; port 0 picks a free port
	Store     Store
	JWTSecret []byte
	// SyncNow queues an immediate sync of a meter (nil: not offered).
	SyncNow func(ctx context.Context, meterID string) error
	// Registry collects /metrics; nil makes a private one.
	Registry *prometheus.Registry
	// TrustProxy makes the session cookie Secure when a proxy in front
	// says the request came over TLS (X-Forwarded-Proto: https).
	TrustProxy bool
	Now        func() time.Time
	Logger     *slog.Logger
}

// Server is the HTTP front end of flows serve and flows demo: the JSON API
// under /api/v1, the dashboard at /, /healthz, /metrics and /openapi.json.
type Server struct {
	cfg      Config
	srv      *http.Server
	ln       net.Listener
	done     chan struct{}
	once     sync.Once
	requests *prometheus.HistogramVec
	// fleetCompleteness is every meter's interval completeness, read for
	// the fleet page and the metric at most once a minute and used by any
	// page while fresh (completeness.go).
	fleetCompleteness fleetCompleteness
	// summaries are the fleet page's counts, at most summaryAge old
	// (summaries.go).
	summaries summaries
}

// NewServer returns a server; call Start to listen.
func NewServer(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	s := &Server{cfg: cfg, done: make(chan struct{})}
	s.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "flows_http_request_duration_seconds", Help: "HTTP requests by route and status code.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"route", "code"})
	_ = cfg.Registry.Register(s.requests)
	_ = cfg.Registry.Register(newCompletenessCollector(s))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	// Fleet-wide counts across ESCOs: for an unscoped admin token only.
	mux.Handle("GET /metrics", s.admin(promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{})))
	mux.HandleFunc("GET /openapi.json", s.openapi)
	s.mountDashboard(mux)
	for _, rt := range s.routes() {
		mux.Handle(rt.method+" "+rt.path, s.endpoint(rt))
	}
	// A path the API has, asked with another method, is 405 with Allow.
	allowed := http.NewServeMux()
	methods := map[string][]string{}
	for _, rt := range s.routes() {
		methods[rt.path] = append(methods[rt.path], rt.method)
	}
	for path, ms := range methods {
		allow := strings.Join(ms, ", ")
		allowed.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, r, cfg.Logger, flows.Errorf(flows.EMETHOD, "%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow))
		})
	}
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		if h, pattern := allowed.Handler(r); pattern != "" {
			h.ServeHTTP(w, r)
			return
		}
		writeError(w, r, cfg.Logger, flows.Errorf(flows.ENOTFOUND, "no such API resource: %s %s", r.Method, r.URL.Path))
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s
}

// statusWriter remembers the status for logs and metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }

// endpoint authenticates, checks the role, runs the handler, renders any
// error once, and records the request.
func (s *Server) endpoint(rt route) http.Handler {
	// The query parameters the operation documents (opDocs): any other is
	// refused, naming it, rather than ignored (?limit=2 on an operation
	// that takes none would answer everything).
	known := map[string]bool{}
	var names []string
	for _, p := range opDocs[rt.method+" "+rt.path].query {
		known[p.name] = true
		names = append(names, p.name)
	}
	takes := "none"
	if len(names) > 0 {
		takes = strings.Join(names, ", ")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		err := func() error {
			c, err := s.authenticate(r)
			if err != nil {
				return err
			}
			if roleRank[c.Role] < roleRank[rt.role] {
				return flows.Errorf(flows.EFORBIDDEN, "role %s may not %s %s (needs %s)", c.Role, rt.method, rt.path, rt.role)
			}
			for k := range r.URL.Query() {
				if !known[k] {
					return flows.FieldError(k, "not a query parameter of %s %s (it takes: %s)", rt.method, rt.path, takes)
				}
			}
			return rt.handle(sw, r, c)
		}()
		if err != nil {
			writeError(sw, r, s.cfg.Logger, err)
		}
		d := time.Since(start)
		s.requests.WithLabelValues(rt.method+" "+rt.path, strconv.Itoa(sw.status)).Observe(d.Seconds())
		s.cfg.Logger.Debug("http request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "duration_ms", d.Milliseconds())
	})
}

// admin lets only an unscoped admin token through to h.
func (s *Server) admin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.authenticate(r)
		if err == nil && (c.Role != RoleAdmin || c.ESCO != "") {
			err = flows.Errorf(flows.EFORBIDDEN, "%s needs an admin token not limited to one ESCO", r.URL.Path)
		}
		if err != nil {
			writeError(w, r, s.cfg.Logger, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) authenticate(r *http.Request) (*Claims, error) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return nil, flows.Errorf(flows.EUNAUTHORIZED, "missing bearer token (Authorization: Bearer <JWT>)")
	}
	if len(s.cfg.JWTSecret) == 0 {
		return nil, flows.Errorf(flows.EUNAUTHORIZED, "this server has no signing secret configured")
	}
	return ParseToken(s.cfg.JWTSecret, tok, s.cfg.Now())
}

// Start listens and serves in the background; it returns once listening.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	s.ln = ln
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.cfg.Logger.Error("http server stopped", "error", err)
		}
	}()
	return nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Stop shuts the server down gracefully: requests in flight finish,
// until ctx ends.
func (s *Server) Stop(ctx context.Context) error {
	var err error
	s.once.Do(func() {
		err = s.srv.Shutdown(ctx)
		if s.ln != nil {
			<-s.done
		}
	})
	return err
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status, code := map[string]string{"status": "ok", "database": "ok", "queue": "ok"}, http.StatusOK
	if err := s.cfg.Store.Ping(ctx); err != nil {
		status["status"], status["database"], code = "unavailable", "unreachable", http.StatusServiceUnavailable
	}
	if g, ok := s.cfg.Store.(Gauges); ok {
		if _, err := g.QueueDepth(ctx); err != nil {
			status["status"], status["queue"], code = "unavailable", "unreachable", http.StatusServiceUnavailable
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(status)
}

// openapi serves the OpenAPI 3 document (openapi.go).
func (s *Server) openapi(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, openAPIDocument(s.routes()))
}
