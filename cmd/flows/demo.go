package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/flows-energy/flows"
	flowshttp "github.com/flows-energy/flows/http"
	"github.com/flows-energy/flows/internal/cli"
	"github.com/flows-energy/flows/internal/demo"
	"github.com/flows-energy/flows/internal/pgembed"
	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/sim"
	"github.com/spf13/cobra"
)

type demoConfig struct {
	meters    int
	httpAddr  string
	grpcAddr  string
	dataDir   string
	speed     float64
	readyFile string
	fresh     bool
	simListen string
	// simListenSet: --sim-listen was given, so addresses in use are an
	// error; the default gives way to free ports.
	simListenSet bool
	past         time.Duration
}

func newDemoCmd() *cobra.Command {
	var cfg demoConfig
	cmd := &cobra.Command{
		Use:     "demo",
		Example: cli.Example("flows demo", "flows demo --meters 200 --speed 60"),
		Short:   "Run everything on an embedded PostgreSQL with a simulated fleet",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cfg.validate(); err != nil {
				return err
			}
			cfg.simListenSet = cmd.Flags().Changed("sim-listen")
			return runDemo(cmd.Context(), cmd, cfg)
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.meters, "meters", 50, "number of simulated meters")
	f.StringVar(&cfg.httpAddr, "http", "127.0.0.1:8000", "HTTP listen address (API and dashboard)")
	f.StringVar(&cfg.grpcAddr, "grpc", "127.0.0.1:50051", "gRPC (mediator) listen address")
	f.StringVar(&cfg.dataDir, "data", defaultDataDir(), "data directory (kept between runs)")
	f.Float64Var(&cfg.speed, "speed", 1, "simulated meter time runs this many times faster")
	f.StringVar(&cfg.readyFile, "ready-file", "", "when ready, write connection details here as JSON")
	f.BoolVar(&cfg.fresh, "fresh", false, "delete the data directory's database and simulator state first")
	f.StringVar(&cfg.simListen, "sim-listen", "127.77:8080", "where the simulated meters listen: PREFIX:PORT (see flows sim --listen)")
	f.DurationVar(&cfg.past, "past", 7*24*time.Hour, "a new demo's meters start this long ago: their simulated past is its history")
	return cmd
}

func (c demoConfig) validate() error {
	switch {
	case c.meters < 1 || c.meters > 100000:
		return flows.FieldError("--meters", "%d is outside 1-100000", c.meters)
	case c.past < 0 || c.past > 90*24*time.Hour:
		return flows.FieldError("--past", "%v is outside 0-2160h (90 days)", c.past)
	case c.speed <= 0 || c.speed > 1e6:
		return flows.FieldError("--speed", "%g must be above 0 and at most 1000000", c.speed)
	case c.dataDir == "":
		return flows.FieldError("--data", "required")
	}
	return nil
}

// defaultDataDir is a per-user location: /var/lib/flows/demo for root (the
// postgres user must reach it), $XDG_DATA_HOME/flows/demo otherwise.
func defaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/flows/demo"
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "flows", "demo")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".local", "share", "flows", "demo")
}

// readyInfo is the ready-file (DESIGN.md §3.2).
type readyInfo struct {
	DatabaseURL string     `json:"database_url"`
	HTTPURL     string     `json:"http_url"`
	GRPCAddr    string     `json:"grpc_addr"`
	AdminToken  string     `json:"admin_token"`
	ESCO        string     `json:"esco"`    // code, as in tokens and API filters
	ESCOID      string     `json:"esco_id"` // the meter_registry.esco uuid
	Meters      []sim.Spec `json:"meters"`
	// TwinDatabaseURL is a second database on the demo's cluster where a
	// few of the meters are passive twins, fed live by replication.
	TwinDatabaseURL string   `json:"twin_database_url"`
	Twins           []string `json:"twins"` // their serials
	// ReadonlyDatabaseURL is a read-only login limited to the demo's ESCO,
	// for Grafana or psql (flows db grant; README "Connecting a BI tool").
	ReadonlyDatabaseURL string `json:"readonly_database_url"`
}

func runDemo(ctx context.Context, cmd *cobra.Command, cfg demoConfig) error {
	log := logger()
	dataDir, unlock, err := lockDataDir(ctx, cfg)
	if err != nil {
		return err
	}
	defer unlock()
	db, err := startDemoDatabase(ctx, filepath.Join(dataDir, "pg"), log)
	if err != nil {
		return err
	}
	defer db.stop(log)
	simulator, fleet, escoID, err := startDemoFleet(ctx, cfg, dataDir, db.store, log)
	if err != nil {
		return err
	}
	defer simulator.stop()
	readonlyURL, err := demoReadonlyURL(ctx, db.store, db.url, dataDir, demo.ESCOCode)
	if err != nil {
		return fmt.Errorf("read-only login: %w", err)
	}
	jwtSecretBytes := []byte(os.Getenv("FLOWS_JWT_SECRET"))
	if len(jwtSecretBytes) == 0 {
		if jwtSecretBytes, err = keepSecret(filepath.Join(dataDir, "jwt-secret")); err != nil {
			return err
		}
	}
	adminToken, err := flowshttp.IssueToken(jwtSecretBytes, "demo-admin", flowshttp.RoleAdmin, "", 30*24*time.Hour, time.Now())
	if err != nil {
		return err
	}
	twinURL, twins, err := prepareTwinDatabase(ctx, db.cluster, fleet)
	if err != nil {
		return fmt.Errorf("twin database: %w", err)
	}
	// The simulated meters need only a short gap between requests.
	svc, err := runServices(ctx, db.store, serveConfig{httpAddr: cfg.httpAddr, grpcAddr: cfg.grpcAddr,
		components: []string{"api", "sync", "commands", "mediator"}, meterGap: 100 * time.Millisecond, workers: 25, maxInFlight: 200,
		jwtSecret: jwtSecretBytes, replicas: []string{twinURL}}, log)
	if err != nil {
		return err
	}
	defer svc.stop()
	info := readyInfo{DatabaseURL: db.url, HTTPURL: "http://" + svc.httpAddr, GRPCAddr: svc.grpcAddr, AdminToken: adminToken,
		ESCO: demo.ESCOCode, ESCOID: escoID, Meters: fleet, TwinDatabaseURL: twinURL, Twins: twins, ReadonlyDatabaseURL: readonlyURL}
	// The banner first: whoever waits for the ready-file finds it printed.
	printReady(cmd.OutOrStdout(), cfg, info)
	if cfg.readyFile != "" {
		if err := writeFileAtomic(cfg.readyFile, info); err != nil {
			return flows.FieldError("--ready-file", "%v", err)
		}
	}
	<-ctx.Done()
	fmt.Fprintln(cmd.OutOrStdout(), "stopping")
	return nil
}

// lockDataDir makes the data directory, takes its lock (one demo per
// directory at a time; the lock dies with the process) and, with --fresh,
// empties it.
func lockDataDir(ctx context.Context, cfg demoConfig) (string, func(), error) {
	dataDir, err := filepath.Abs(cfg.dataDir)
	if err != nil {
		return "", nil, flows.FieldError("--data", "%v", err)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return "", nil, flows.FieldError("--data", "%v", err)
	}
	lock, err := os.OpenFile(filepath.Join(dataDir, "demo.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", nil, flows.FieldError("--data", "%v", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return "", nil, flows.FieldError("--data", "%s is in use by another flows demo", dataDir)
	}
	unlock := func() { lock.Close() }
	if cfg.fresh {
		if err := removeCluster(ctx, filepath.Join(dataDir, "pg")); err != nil {
			unlock()
			return "", nil, err
		}
		if err := os.Remove(filepath.Join(dataDir, "sim-state.json")); err != nil && !errors.Is(err, os.ErrNotExist) {
			unlock()
			return "", nil, err
		}
	}
	return dataDir, unlock, nil
}

// demoDatabase is the demo's embedded PostgreSQL and its migrated database.
type demoDatabase struct {
	cluster *pgembed.Cluster
	url     string
	store   *postgres.Store
}

func startDemoDatabase(ctx context.Context, pgDir string, log *slog.Logger) (_ *demoDatabase, err error) {
	cluster, err := pgembed.Start(ctx, pgembed.Config{Dir: pgDir, Durable: true, KeepPort: true, Logger: log})
	if err != nil {
		return nil, err
	}
	db := &demoDatabase{cluster: cluster, url: cluster.URL("flows")}
	defer func() {
		if err != nil {
			db.stop(log)
		}
	}()
	if err := postgres.CreateDatabase(ctx, cluster.URL("postgres"), "flows"); err != nil {
		return nil, err
	}
	pool, err := postgres.Open(ctx, db.url)
	if err != nil {
		return nil, err
	}
	db.store = postgres.NewStore(pool)
	if _, err := postgres.Migrate(ctx, pool); err != nil {
		return nil, err
	}
	return db, nil
}

func (db *demoDatabase) stop(log *slog.Logger) {
	if db.store != nil {
		db.store.Close()
	}
	if err := db.cluster.Stop(); err != nil {
		log.Error("stopping PostgreSQL", "error", err)
	}
}

// startDemoFleet starts the simulated meters and registers them: seeded
// the first time, and pointed at where they listen now (free ports,
// --sim-listen PREFIX:0, differ between runs).
func startDemoFleet(ctx context.Context, cfg demoConfig, dataDir string, store *postgres.Store, log *slog.Logger) (_ *runningSim, _ []sim.Spec, escoID string, err error) {
	simSecret, err := keepSecret(filepath.Join(dataDir, "sim-secret"))
	if err != nil {
		return nil, nil, "", err
	}
	prefix, port, err := parseListen(cfg.simListen)
	if err != nil {
		return nil, nil, "", err
	}
	specs := sim.GenerateFleet(cfg.meters, sim.FleetOptions{AddressPrefix: prefix, Port: port, Secret: simSecret, Faults: true, Habits: true})
	sc := simConfig{meters: cfg.meters, listen: cfg.simListen, speed: cfg.speed, past: cfg.past, state: filepath.Join(dataDir, "sim-state.json")}
	simulator, err := startSim(ctx, sc, specs, log)
	if errors.Is(err, syscall.EADDRINUSE) {
		if cfg.simListenSet {
			return nil, nil, "", flows.FieldError("--sim-listen", "%v: another program listens there; stop it, or use --sim-listen %s:0 for free ports", err, prefix)
		}
		// Another demo or simulator has the default addresses: the meters
		// take free ports instead (they are registered where they listen).
		log.Warn("the simulator's default addresses are in use; the meters listen on free ports", "sim_listen", cfg.simListen, "error", err)
		sc.freePorts = true
		simulator, err = startSim(ctx, sc, specs, log)
	}
	if err != nil {
		return nil, nil, "", err
	}
	defer func() {
		if err != nil {
			simulator.stop()
		}
	}()
	var fleet []sim.Spec
	for _, m := range simulator.fleet.Meters() {
		fleet = append(fleet, m.Spec)
	}
	// Seeded through the replica outbox too, so the twins get the past.
	if escoID, err = demo.Seed(ctx, store.WithReplication(), simulator.fleet.Meters(), simulator.past, time.Now().UTC()); err != nil {
		return nil, nil, "", fmt.Errorf("seed demo fleet: %w", err)
	}
	for _, m := range fleet {
		if m.IPAddress == "" {
			continue
		}
		if err := store.SetMeterAddress(ctx, m.Serial, m.IPAddress, m.Port); err != nil {
			return nil, nil, "", fmt.Errorf("register %s: %w", m.Serial, err)
		}
	}
	return simulator, fleet, escoID, nil
}

// twinDatabase is the demo's second database, holding passive twins.
const twinDatabase = "flows_twin"

// prepareTwinDatabase makes (or keeps) the twin database on the demo's
// cluster, migrated, with the demo ESCO and passive twins of the first
// three active, answering meters. The sync engine's replica shipper then
// feeds their shadows from the primary.
func prepareTwinDatabase(ctx context.Context, cluster *pgembed.Cluster, fleet []sim.Spec) (string, []string, error) {
	if err := postgres.CreateDatabase(ctx, cluster.URL("postgres"), twinDatabase); err != nil {
		return "", nil, err
	}
	url := cluster.URL(twinDatabase)
	pool, err := postgres.Open(ctx, url)
	if err != nil {
		return "", nil, err
	}
	defer pool.Close()
	if _, err := postgres.Migrate(ctx, pool); err != nil {
		return "", nil, err
	}
	store := postgres.NewStore(pool)
	if _, err := store.ESCOByCode(ctx, demo.ESCOCode); flows.ErrorCode(err) == flows.ENOTFOUND {
		if _, err := store.CreateESCO(ctx, demo.ESCOCode, "Demo Community Energy (twin)"); err != nil {
			return "", nil, err
		}
	} else if err != nil {
		return "", nil, err
	}
	var twins []flows.NewMeter
	var layouts, serials []string
	for _, m := range fleet {
		if m.Mode != string(flows.ModeActive) || m.Faults.Offline || len(twins) == 3 {
			continue
		}
		twins = append(twins, flows.NewMeter{Serial: m.Serial, Name: m.Name, Hardware: m.Hardware, Mode: flows.ModePassive,
			DaylightSavingsCorrectionEnabled: m.DST})
		layouts, serials = append(layouts, m.Layout), append(serials, m.Serial)
	}
	if _, err := store.ImportMeters(ctx, demo.ESCOCode, twins, layouts); err != nil {
		return "", nil, err
	}
	return url, serials, nil
}

func printReady(out io.Writer, cfg demoConfig, info readyInfo) {
	fmt.Fprintf(out, "Flows demo ready: %d simulated meters of ESCO %s (speed %gx)\n", len(info.Meters), demo.ESCOCode, cfg.speed)
	fmt.Fprintf(out, "  dashboard:   %s/\n", info.HTTPURL)
	fmt.Fprintf(out, "  database:    %s\n", info.DatabaseURL)
	fmt.Fprintf(out, "  mediator:    %s (emop --mediator %s -s EML2137580826 prepay_balance)\n", info.GRPCAddr, info.GRPCAddr)
	fmt.Fprintf(out, "  read-only:   %s (for Grafana or psql: ESCO %s only, no writes)\n", info.ReadonlyDatabaseURL, info.ESCO)
	fmt.Fprintf(out, "  twins:       %s (passive twins of %s, fed by replication)\n", info.TwinDatabaseURL, strings.Join(info.Twins, ", "))
	fmt.Fprintf(out, "  admin token: %s\n", info.AdminToken)
	fmt.Fprintln(out, "Press Ctrl-C to stop.")
}

// keepSecret returns the hex secret stored in path, creating a random one
// the first time.
func keepSecret(path string) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil {
		if s := strings.TrimSpace(string(b)); len(s) >= 32 {
			return []byte(s), nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	s := hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// removeCluster deletes a demo cluster (and where it really lives, when
// pgembed had to keep it elsewhere).
func removeCluster(ctx context.Context, pgDir string) error {
	pgembed.StopDir(ctx, pgDir)
	if loc, err := os.ReadFile(filepath.Join(pgDir, "CLUSTER_LOCATION")); err == nil {
		pgembed.StopDir(ctx, strings.TrimSpace(string(loc)))
		if err := os.RemoveAll(strings.TrimSpace(string(loc))); err != nil {
			return err
		}
	}
	return os.RemoveAll(pgDir)
}

// writeFileAtomic writes v as JSON to path through a temporary file, so a
// reader polling for the file never sees half of it.
func writeFileAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
