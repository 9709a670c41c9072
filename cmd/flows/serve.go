package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/command"
	flowshttp "github.com/flows-energy/flows/http"
	"github.com/flows-energy/flows/mediator"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/syncer"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
)

// serveConfig is what flows serve (and the demo) run.
type serveConfig struct {
	httpAddr   string
	grpcAddr   string
	components []string
	meterGap   time.Duration
	workers    int
	replicas   []string
	esco       string // mediator: serve only this ESCO's meters
	grpcCert   string
	grpcKey    string
	grpcCA     string
	jwtSecret  []byte
	lease      time.Duration // command lease
}

var knownComponents = []string{"api", "sync", "commands", "mediator"}

func newServeCmd() *cobra.Command {
	var cfg serveConfig
	var components string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the API, sync engine, commands and mediator against a database",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			url, err := databaseURL(cmd)
			if err != nil {
				return err
			}
			if cfg.components, err = parseComponents(components); err != nil {
				return err
			}
			if slices.Contains(cfg.components, "api") {
				if cfg.jwtSecret, err = jwtSecret(""); err != nil {
					return err
				}
				if len(cfg.jwtSecret) < flowshttp.MinSecretLen {
					return flows.FieldError("FLOWS_JWT_SECRET", "must be at least %d bytes", flowshttp.MinSecretLen)
				}
			}
			log := logger()
			pool, err := postgres.Open(cmd.Context(), url)
			if err != nil {
				return err
			}
			defer pool.Close()
			if _, err := postgres.Migrate(cmd.Context(), pool); err != nil {
				return err
			}
			svc, err := runServices(cmd.Context(), pool, cfg, log)
			if err != nil {
				return err
			}
			defer svc.stop()
			fmt.Fprintf(cmd.OutOrStdout(), "flows serving %s; HTTP on http://%s, gRPC on %s\n", strings.Join(cfg.components, ", "), svc.httpAddr, svc.grpcAddr)
			<-cmd.Context().Done()
			return nil
		},
	}
	addDatabaseFlag(cmd)
	cmd.Flags().StringVar(&cfg.httpAddr, "http", "127.0.0.1:8000", "HTTP listen address")
	cmd.Flags().StringVar(&cfg.grpcAddr, "grpc", "127.0.0.1:50051", "gRPC (mediator) listen address")
	cmd.Flags().StringVar(&components, "components", strings.Join(knownComponents, ","), "components to run: api, sync, commands, mediator")
	cmd.Flags().DurationVar(&cfg.meterGap, "meter-gap", meterconn.DefaultGap, "minimum time between requests to one meter")
	cmd.Flags().IntVar(&cfg.workers, "sync-workers", 50, "meters synced at once by this process")
	cmd.Flags().StringArrayVar(&cfg.replicas, "replica-database-url", nil, "mirror active meters' shadows into this database, where they are passive (repeatable)")
	cmd.Flags().StringVar(&cfg.esco, "esco", os.Getenv("ESCO"), "mediator: serve only this ESCO's meters (default $ESCO)")
	cmd.Flags().DurationVar(&cfg.lease, "command-lease", 5*time.Minute, "how long a claimed request is this process's before another may resume it")
	cmd.Flags().StringVar(&cfg.grpcCert, "grpc-cert", "", "mediator TLS certificate (with --grpc-key and --grpc-ca: mutual TLS with roles)")
	cmd.Flags().StringVar(&cfg.grpcKey, "grpc-key", "", "mediator TLS key")
	cmd.Flags().StringVar(&cfg.grpcCA, "grpc-ca", "", "CA of client certificates")
	return cmd
}

func parseComponents(s string) ([]string, error) {
	var out []string
	for _, c := range strings.Split(s, ",") {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		if !slices.Contains(knownComponents, c) {
			return nil, flows.FieldError("--components", "%q is not one of %s", c, strings.Join(knownComponents, ", "))
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, flows.FieldError("--components", "name at least one component")
	}
	return out, nil
}

// runServices starts the chosen components and returns a function that
// stops them in reverse order, and the HTTP address.
// services are the running components of a process.
type services struct {
	stop     func() // stops them in reverse order
	httpAddr string
	grpcAddr string
}

func runServices(ctx context.Context, pool *pgxpool.Pool, cfg serveConfig, log *slog.Logger) (*services, error) {
	var stops []func()
	stopAll := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	store := postgres.NewStore(pool)
	has := func(c string) bool { return slices.Contains(cfg.components, c) }
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), flowshttp.NewFleetCollector(store))
	// One transport for the process: its per-meter queue and gap then hold
	// across the sync engine and the mediator.
	transport, err := meterconn.New(meterconn.Config{Gap: cfg.meterGap, Logger: log.With("component", "meterconn"),
		Observer: flowshttp.NewMeterRequests(reg)})
	if err != nil {
		return nil, err
	}
	if has("mediator") {
		var tlsCfg *tls.Config
		if cfg.grpcCert != "" || cfg.grpcKey != "" || cfg.grpcCA != "" {
			if tlsCfg, err = mediator.ServerTLS(cfg.grpcCert, cfg.grpcKey, cfg.grpcCA); err != nil {
				return nil, flows.FieldError("--grpc-cert", "%v", err)
			}
		}
		med := mediator.New(mediator.Config{Store: store, Meters: transport, ESCO: cfg.esco, TLS: tlsCfg, Logger: log.With("component", "mediator")})
		if err := med.Start(ctx, cfg.grpcAddr); err != nil {
			return nil, flows.FieldError("--grpc", "%v", err)
		}
		stops = append(stops, med.Stop)
		log.Info("mediator listening", "addr", med.Addr(), "mutual_tls", tlsCfg != nil)
		cfg.grpcAddr = med.Addr()
	}
	if has("sync") {
		host, _ := os.Hostname()
		eng, err := syncer.New(syncer.Config{Pool: pool, Store: store, Meters: transport, Workers: cfg.workers,
			Owner: fmt.Sprintf("%s:%d", host, os.Getpid()), Replicate: len(cfg.replicas) > 0, Logger: log.With("component", "sync")})
		if err != nil {
			return nil, err
		}
		results := flowshttp.NewSyncResults(reg)
		eng.OnSynced = func(_, failure string) { results.Observe(failure) }
		if err := eng.Start(ctx); err != nil {
			return nil, err
		}
		stops = append(stops, func() {
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = eng.Stop(sctx)
		})
		for _, url := range cfg.replicas {
			rep, err := syncer.NewReplicator(syncer.ReplicatorConfig{Primary: pool, ReplicaURL: url, Logger: log.With("component", "replica")})
			if err != nil {
				stopAll()
				return nil, err
			}
			rep.Start(ctx)
			stops = append(stops, rep.Stop)
		}
	}
	if has("commands") {
		pusher := command.New(command.Config{Store: store, Meters: transport, Lease: cfg.lease, Logger: log.With("component", "commands"),
			FailPoint: crashAt(os.Getenv("FLOWS_CRASH_AT"), log)})
		pusher.Start(ctx)
		stops = append(stops, pusher.Stop)
	}
	addr := ""
	if has("api") {
		srv := flowshttp.NewServer(flowshttp.Config{Addr: cfg.httpAddr, Store: store, JWTSecret: cfg.jwtSecret,
			SyncNow:  func(ctx context.Context, meterID string) error { return syncer.SyncNow(ctx, pool, meterID) },
			Registry: reg, Logger: log.With("component", "http")})
		if err := srv.Start(ctx); err != nil {
			stopAll()
			return nil, flows.FieldError("--http", "%v", err)
		}
		stops = append(stops, srv.Stop)
		addr = srv.Addr()
	}
	return &services{stop: stopAll, httpAddr: addr, grpcAddr: cfg.grpcAddr}, nil
}

// crashAt is a test hook for crash-safety tests: with FLOWS_CRASH_AT set to
// a push point (topup_before_send, topup_after_send, tariff_sent) the
// process exits there with status 70, as if killed.
func crashAt(point string, log *slog.Logger) func(string) error {
	if point == "" {
		return nil
	}
	return func(p string) error {
		if p == point {
			log.Warn("FLOWS_CRASH_AT: exiting", "point", p)
			os.Exit(70)
		}
		return nil
	}
}
