package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/alert"
	"github.com/flows-energy/flows/command"
	flowshttp "github.com/flows-energy/flows/http"
	"github.com/flows-energy/flows/internal/cli"
	"github.com/flows-energy/flows/internal/lifecycle"
	"github.com/flows-energy/flows/mediator"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/meterop"
	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/syncer"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/riverqueue/river"
	"github.com/spf13/cobra"
)

// serveConfig is what flows serve (and the demo) run.
type serveConfig struct {
	httpAddr   string
	grpcAddr   string
	components []string
	meterGap   time.Duration
	workers    int
	// maxInFlight and freshWithin size the sync engine (syncer.InFlight).
	maxInFlight int
	freshWithin time.Duration
	// backfillDays and backfillWorkers: how far back profiles are
	// collected, and how many meters' backfills run at once.
	backfillDays    int
	backfillWorkers int
	replicas        []string
	esco            string // mediator: serve only this ESCO's meters
	grpcCert        string
	grpcKey         string
	grpcCA          string
	jwtSecret       []byte
	lease           time.Duration // command lease
	trustProxy      bool          // a proxy in front says whether requests came over TLS

	// mediators, when set, are where the sync and commands components
	// talk to meters (sharded by serial), with mediatorTLS's client
	// certificate when given, instead of directly.
	mediators   []string
	mediatorTLS [3]string // cert, key, CA

	// grpcInsecure lets the mediator serve without mutual TLS on an
	// address other than loopback (--grpc-insecure).
	grpcInsecure bool

	// partitions: the history tables' partition maintenance
	// (--partitions-ahead, --retention; maintenance.go).
	partitions partitionConfig
}

var knownComponents = []string{"api", "sync", "commands", "mediator"}

func newServeCmd() *cobra.Command {
	var cfg serveConfig
	var components string
	cmd := &cobra.Command{
		Use:     "serve",
		Example: cli.Example("flows serve --database-url postgres://flows@db/flows", "flows serve --components sync,commands --database-url $FLOWS_DATABASE_URL"),
		Short:   "Run the API, sync engine, commands and mediator against a database",
		Long: `Run the API, sync engine, commands and mediator against a database.

Sizing a node. A meter's set is a few requests in a row, each the meter's
latency plus its minimum gap (--meter-gap): an hourly set of 5 requests at a
cellular 1 s with the 2 s gap takes about 15 s. The engine keeps
  meters × set time ÷ --fresh-within × 1.25
meters in flight (100,000 meters: 2,084 at 15 minutes), measuring the set
times it sees, never fewer than --sync-workers and never more than
--max-in-flight, the open-file limit (raised to the hard limit at start; it
warns when that is too low) or 1 GiB of meters in flight. Most of a set is
waiting, which costs little CPU. Add a second node (same database, --components sync,commands)
when the log's "meters in flight" line names a bound other than "load", or
when one node's PostgreSQL nears a core.

The database pool is derived from what may hold a connection at once (each
on-demand sync, group job and backfill worker one, River's own, the API's
and mediator's handlers; the command pusher has its own 8), at most half
the connections the server has free at start so a second node finds room;
the log's "database pool" line shows the sum, and a warning says when the
server's max_connections capped it. pool_max_conns in the database URL
overrides it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			url, err := databaseURL(cmd)
			if err != nil {
				return err
			}
			if cfg.backfillDays < 1 || cfg.backfillDays > 3660 {
				return flows.FieldError("--backfill-days", "%d is not between 1 and 3660", cfg.backfillDays)
			}
			if cfg.workers < 1 {
				return flows.FieldError("--sync-workers", "%d is not positive", cfg.workers)
			}
			if cfg.maxInFlight < cfg.workers {
				return flows.FieldError("--max-in-flight", "%d is below --sync-workers (%d)", cfg.maxInFlight, cfg.workers)
			}
			if cfg.freshWithin < time.Minute {
				return flows.FieldError("--fresh-within", "%v is under a minute", cfg.freshWithin)
			}
			if cfg.backfillWorkers < 0 {
				return flows.FieldError("--backfill-workers", "%d is negative", cfg.backfillWorkers)
			}
			if cfg.components, err = parseComponents(components); err != nil {
				return err
			}
			if err := checkMediators(cfg); err != nil {
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
			if err := cfg.partitions.parse(); err != nil {
				return err
			}
			log := logger()
			pool, err := openServePool(cmd.Context(), url, cfg, log)
			if err != nil {
				return err
			}
			defer pool.Close()
			if _, err := postgres.Migrate(cmd.Context(), pool); err != nil {
				return err
			}
			svc, err := runServices(cmd.Context(), postgres.NewStore(pool), cfg, log)
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
	cmd.Flags().IntVar(&cfg.workers, "sync-workers", 50, "fewest meters in flight in scheduled syncs, and on-demand syncs at once")
	cmd.Flags().IntVar(&cfg.maxInFlight, "max-in-flight", 5000, "most meters in flight in scheduled syncs (the engine sizes itself between --sync-workers and this)")
	cmd.Flags().DurationVar(&cfg.freshWithin, "fresh-within", 15*time.Minute, "read a wave of due meters within this (sizes the meters in flight)")
	cmd.Flags().IntVar(&cfg.backfillDays, "backfill-days", 30, "collect half-hourly profiles this many days back (a new meter's, from its commissioning when later)")
	cmd.Flags().IntVar(&cfg.backfillWorkers, "backfill-workers", 0, "meters whose missing profile is backfilled at once, apart from --sync-workers (default: as many as --sync-workers)")
	cmd.Flags().StringArrayVar(&cfg.replicas, "replica-database-url", nil, "mirror active meters' shadows into this database, where they are passive (repeatable)")
	cmd.Flags().StringVar(&cfg.esco, "esco", os.Getenv("ESCO"), "mediator: serve only this ESCO's meters (default $ESCO)")
	cmd.Flags().BoolVar(&cfg.trustProxy, "trust-proxy", false, "a reverse proxy in front terminates TLS: trust its X-Forwarded-Proto for Secure cookies")
	cmd.Flags().DurationVar(&cfg.lease, "command-lease", 30*time.Second, "how long a claim on a request lasts unrenewed: a running push renews it every third of it, a dead process's is taken over after it")
	cmd.Flags().StringVar(&cfg.grpcCert, "grpc-cert", "", "mediator TLS certificate (with --grpc-key and --grpc-ca: mutual TLS with roles)")
	cmd.Flags().StringVar(&cfg.grpcKey, "grpc-key", "", "mediator TLS key")
	cmd.Flags().StringVar(&cfg.grpcCA, "grpc-ca", "", "CA of client certificates")
	cmd.Flags().BoolVar(&cfg.grpcInsecure, "grpc-insecure", false, "mediator: serve without mutual TLS on a --grpc address other than loopback (anyone who can reach it can read and write any served meter)")
	cmd.Flags().StringSliceVar(&cfg.mediators, "mediator", nil, "sync and commands talk to meters through these mediators (HOST:PORT, comma-separated; each meter always through the same one, by serial) instead of directly")
	cmd.Flags().StringVar(&cfg.mediatorTLS[0], "mediator-cert", os.Getenv("MEDIATOR_CLIENT_CERT"), "client certificate for mutual-TLS mediators (role internal; default $MEDIATOR_CLIENT_CERT)")
	cmd.Flags().StringVar(&cfg.mediatorTLS[1], "mediator-key", os.Getenv("MEDIATOR_CLIENT_KEY"), "its key (default $MEDIATOR_CLIENT_KEY)")
	cmd.Flags().StringVar(&cfg.mediatorTLS[2], "mediator-ca", os.Getenv("MEDIATOR_CA_CERT"), "CA of the mediators' certificates (default $MEDIATOR_CA_CERT)")
	addPartitionFlags(cmd, &cfg.partitions)
	return cmd
}

// checkMediators validates --mediator: addresses, and a component that
// would use them.
func checkMediators(cfg serveConfig) error {
	if len(cfg.mediators) == 0 {
		return nil
	}
	if !slices.Contains(cfg.components, "sync") && !slices.Contains(cfg.components, "commands") {
		return flows.FieldError("--mediator", "is where the sync and commands components reach meters; --components has neither")
	}
	seen := map[string]bool{}
	for _, a := range cfg.mediators {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			return flows.FieldError("--mediator", "%q is not HOST:PORT", a)
		}
		if seen[a] {
			return flows.FieldError("--mediator", "%s is listed twice", a)
		}
		seen[a] = true
	}
	return nil
}

// meters returns what the sync and commands components talk to meters
// through: the process's transport, or the --mediator shards (closed with
// the services).
func (w *wiring) meters(start func(string, lifecycle.Service) error) (meterop.Meters, error) {
	if len(w.cfg.mediators) == 0 {
		return w.transport, nil
	}
	var tlsCfg *tls.Config
	if t := w.cfg.mediatorTLS; t != [3]string{} {
		var err error
		if tlsCfg, err = mediator.ClientTLS(t[0], t[1], t[2]); err != nil {
			return nil, flows.FieldError("--mediator-cert", "%v", err)
		}
	}
	shards, err := mediator.DialShards(w.cfg.mediators, tlsCfg)
	if err != nil {
		return nil, flows.FieldError("--mediator", "%v", err)
	}
	if err := start("mediator connections", closer(func() { _ = shards.Close() })); err != nil {
		return nil, err
	}
	w.log.Info("talking to meters through mediators", "mediators", strings.Join(w.cfg.mediators, ","), "mutual_tls", tlsCfg != nil)
	return shards, nil
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

// services are the running components of a process, owned by one
// lifecycle group: started in order, stopped in reverse.
type services struct {
	group    lifecycle.Group
	eng      *syncer.Engine // with the sync or api component
	reg      *prometheus.Registry
	httpAddr string
	grpcAddr string
}

// stop stops every component, in reverse order, each within 30 s.
func (s *services) stop() {
	if err := s.group.Stop(context.Background()); err != nil {
		slog.Default().Error("stopping services", "error", err)
	}
}

// wiring is what the components of one process share.
type wiring struct {
	cfg       serveConfig
	log       *slog.Logger
	store     *postgres.Store
	reg       *prometheus.Registry
	transport *meterconn.Client
	// via is how the sync and commands components reach meters: the
	// transport, or the --mediator shards.
	via       meterop.Meters
	fileLimit int // the soft open-file limit, raised at start
}

// runServices starts the chosen components. When one fails to start, the
// ones already started are stopped, in reverse, before it returns.
func runServices(ctx context.Context, store *postgres.Store, cfg serveConfig, log *slog.Logger) (_ *services, err error) {
	has := func(c string) bool { return slices.Contains(cfg.components, c) }
	if has("sync") && len(cfg.replicas) > 0 {
		store = store.WithReplication()
	}
	// The transport keeps each meter's gap within this process; the
	// leases keep it when a meter passes to another node.
	store = store.WithMeterGap(cfg.meterGap)
	w := &wiring{cfg: cfg, log: log, reg: prometheus.NewRegistry(), store: store}
	w.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), flowshttp.NewFleetCollector(w.store), flowshttp.NewReplicaCollector(w.store),
		flowshttp.NewAlertCollector(w.store))
	// One transport for the process: its per-meter queue and gap then hold
	// across the sync engine and the mediator.
	// Requests in flight across all meters: the scheduled syncs' ceiling,
	// on-demand syncs, backfills and commands.
	inFlight := cfg.maxInFlight + 2*cfg.workers + cfg.backfillWorkers
	w.fileLimit = raiseFileLimit(log, inFlight+256)
	if w.transport, err = meterconn.New(meterconn.Config{Gap: cfg.meterGap, Logger: log.With("component", "meterconn"),
		MaxConcurrent: inFlight, Observer: flowshttp.NewMeterRequests(w.reg)}); err != nil {
		return nil, err
	}
	svc := &services{grpcAddr: cfg.grpcAddr, reg: w.reg}
	defer func() {
		if err != nil {
			svc.stop() // whatever failed, nothing started is left running
		}
	}()
	start := func(name string, s lifecycle.Service) error { return svc.group.Start(ctx, name, s) }
	if w.via, err = w.meters(start); err != nil {
		return nil, err
	}
	var eng *syncer.Engine
	if has("sync") || has("api") {
		// An API without the sync component still queues on-demand syncs
		// for the processes that run it.
		if eng, err = w.engine(); err != nil {
			return nil, err
		}
		svc.eng = eng
	}
	if has("mediator") {
		med, err := w.mediator()
		if err != nil {
			return nil, err
		}
		if err := start("mediator", med); err != nil {
			if flows.ErrorField(err) != "" {
				return nil, err // names its flag already
			}
			return nil, listenError("--grpc", err)
		}
		svc.grpcAddr = med.Addr()
		log.Info("mediator listening", "addr", svc.grpcAddr, "mutual_tls", cfg.grpcCert != "" || cfg.grpcKey != "" || cfg.grpcCA != "")
	}
	if has("sync") {
		if err := w.startSync(start, eng); err != nil {
			return nil, err
		}
	}
	if has("commands") {
		// Pushes have database connections of their own: an operator's
		// top-up steps never wait for a connection behind a wave of sync
		// writes (at 100,000 meters those held the shared pool long enough
		// for a top-up to lose the meter's turn between its requests).
		cmdStore, err := w.store.WithOwnPool(ctx, commandPoolSize)
		if err != nil {
			return nil, err
		}
		if err := start("commands database pool", closer(cmdStore.Close)); err != nil {
			return nil, err
		}
		pusher := command.New(command.Config{Store: cmdStore, Meters: w.via, Lease: cfg.lease, Node: lifecycle.NodeName(), Logger: log.With("component", "commands"),
			FailPoint: crashAt(os.Getenv("FLOWS_CRASH_AT"), log)})
		if err := start("commands", pusher); err != nil {
			return nil, err
		}
		// Alert rules are evaluated and delivered with the commands: the
		// node that acts on meters tells the ESCO of them.
		notifier, err := alert.New(alert.Config{Store: w.store, Logger: log.With("component", "alerts"),
			NewQueue: func(c *river.Config) (alert.JobQueue, error) { return w.store.NewQueueClient(c) }})
		if err != nil {
			return nil, err
		}
		if err := start("alerts", notifier); err != nil {
			return nil, err
		}
	}
	if has("api") {
		srv := flowshttp.NewServer(flowshttp.Config{Addr: cfg.httpAddr, Store: w.store, JWTSecret: cfg.jwtSecret,
			SyncNow: eng.SyncNow, Registry: w.reg, TrustProxy: cfg.trustProxy, Logger: log.With("component", "http")})
		if err := start("api", srv); err != nil {
			return nil, listenError("--http", err)
		}
		svc.httpAddr = srv.Addr()
	}
	// Whatever the components: any process may keep the partitions.
	if err := start("partitions", newPartitionMaintenance(w.store, cfg.partitions, log.With("component", "partitions"))); err != nil {
		return nil, err
	}
	return svc, nil
}

// listenError names the flag of an address that could not be listened on,
// and says what to do when another program holds it.
func listenError(flag string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return flows.FieldError(flag, "%v: another program (another flows demo or serve?) listens there; stop it or choose another address with %s", err, flag)
	}
	return flows.FieldError(flag, "%v", err)
}

// Connections the API's and the mediator's handlers may hold at once on
// the shared pool: a request's queries run one after another, and more
// requests at once than this wait a moment for a connection rather than
// crowd out the sync engine's writes.
const (
	apiPoolShare      = 16
	mediatorPoolShare = 8
)

// poolSize derives the shared database pool of a flows serve process from
// what may hold a connection at once, and names the parts; least is the
// sync engine's writes' need (syncer.DBConns), below which it warns.
func poolSize(cfg serveConfig) (n, least int, derived string) {
	n, parts := 2, []string{"2 partitions and metrics"}
	add := func(c int, what string) {
		n += c
		parts = append(parts, fmt.Sprintf("%d %s", c, what))
	}
	for _, c := range cfg.components {
		switch c {
		case "sync":
			most, l := syncer.DBConns(cfg.workers, cfg.backfillWorkers)
			add(most, "sync engine")
			least += l
			if len(cfg.replicas) > 0 {
				add(len(cfg.replicas), "replica shippers")
			}
		case "api":
			add(apiPoolShare, "API and dashboard")
		case "mediator":
			add(mediatorPoolShare, "mediator")
		}
	}
	return n, least, strings.Join(parts, " + ")
}

// openServePool opens flows serve's shared pool at the size poolSize
// derives, or at most half the client connections the server has free
// (a second node starting later finds the other half), unless the URL
// names its own pool_max_conns.
func openServePool(ctx context.Context, url string, cfg serveConfig, log *slog.Logger) (*pgxpool.Pool, error) {
	if postgres.HasPoolSize(url) {
		return postgres.Open(ctx, url)
	}
	want, least, parts := poolSize(cfg)
	probe, err := postgres.OpenSized(ctx, url, 1)
	if err != nil {
		return nil, err
	}
	free, maxConns, err := postgres.FreeConnections(ctx, probe)
	probe.Close()
	if err != nil {
		return nil, err
	}
	free++ // the probe's own connection, closed
	// Half of what is free once this node's command pool is counted, and
	// never more than the server has. Capped, the pool is still ample
	// while it covers the engine's writes (most workers wait for meters,
	// not the database): below that, a warning.
	share := free
	if slices.Contains(cfg.components, "commands") {
		share -= commandPoolSize
	}
	n := min(want, max(share/2, min(10, free)))
	if n < least {
		log.Warn("database pool capped by the server's free connections below what the sync engine's writes need: syncs will wait for a connection; raise max_connections or lower --sync-workers",
			"connections", n, "needs", least, "server_free", free, "max_connections", maxConns)
	}
	log.Info("database pool", "connections", n, "derived", parts, "server_free", free, "max_connections", maxConns)
	return postgres.OpenSized(ctx, url, n)
}

// commandPoolSize is the command pusher's own database connections: a
// push is a few short statements between meter requests that take seconds,
// so 64 pushes at once (command.Config.Workers) need few.
const commandPoolSize = 8

// closer is a service that does nothing at start and calls stop at Stop
// (a pool closed after the services started later have stopped).
type closer func()

func (c closer) Start(context.Context) error { return nil }
func (c closer) Stop(context.Context) error  { c(); return nil }

// engine builds the sync engine (started only with the sync component).
func (w *wiring) engine() (*syncer.Engine, error) {
	eng, err := syncer.New(syncer.Config{Store: w.store, Meters: w.via, Workers: w.cfg.workers,
		MaxInFlight: w.cfg.maxInFlight, FreshWithin: w.cfg.freshWithin, FileLimit: w.fileLimit,
		BackfillDays: w.cfg.backfillDays, BackfillWorkers: w.cfg.backfillWorkers,
		NewQueue: queueOf(w.store), Owner: lifecycle.NodeName(), Logger: w.log.With("component", "sync")})
	if err != nil {
		return nil, err
	}
	results := flowshttp.NewSyncResults(w.reg)
	eng.OnSynced = func(_, failure string) { results.Observe(failure) }
	return eng, nil
}

// queueOf gives a sync engine its River client on store's database.
func queueOf(store *postgres.Store) func(*river.Config) (syncer.JobQueue, error) {
	return func(c *river.Config) (syncer.JobQueue, error) { return store.NewQueueClient(c) }
}

// startSync starts the engine and a replica shipper per replica.
func (w *wiring) startSync(start func(string, lifecycle.Service) error, eng *syncer.Engine) error {
	if err := start("sync", eng); err != nil {
		return err
	}
	for _, url := range w.cfg.replicas {
		name, err := postgres.ReplicaName(url)
		if err != nil {
			return err
		}
		rep, err := syncer.NewReplicator(syncer.ReplicatorConfig{Primary: w.store, Name: name, Logger: w.log.With("component", "replica"),
			Open: func(ctx context.Context) (syncer.Replica, error) { return postgres.OpenReplica(ctx, url) }})
		if err != nil {
			return err
		}
		if err := start("replica "+name, rep); err != nil {
			return err
		}
	}
	return nil
}

// mediator builds the gRPC mediator, with mutual TLS when configured.
// Without it the mediator starts only on loopback, or with --grpc-insecure.
func (w *wiring) mediator() (*mediator.Server, error) {
	var tlsCfg *tls.Config
	if w.cfg.grpcCert != "" || w.cfg.grpcKey != "" || w.cfg.grpcCA != "" {
		var err error
		if tlsCfg, err = mediator.ServerTLS(w.cfg.grpcCert, w.cfg.grpcKey, w.cfg.grpcCA); err != nil {
			return nil, flows.FieldError("--grpc-cert", "%v", err)
		}
	}
	return mediator.New(mediator.Config{Addr: w.cfg.grpcAddr, Store: w.store, Meters: w.transport, ESCO: w.cfg.esco, TLS: tlsCfg,
		Insecure: w.cfg.grpcInsecure, Node: lifecycle.NodeName(), Logger: w.log.With("component", "mediator")}), nil
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
