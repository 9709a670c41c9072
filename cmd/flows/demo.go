package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/flows-energy/flows"
	flowshttp "github.com/flows-energy/flows/http"
	"github.com/flows-energy/flows/internal/demo"
	"github.com/flows-energy/flows/internal/pgembed"
	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/sim"
	"github.com/jackc/pgx/v5/pgxpool"
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
}

func newDemoCmd() *cobra.Command {
	var cfg demoConfig
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run everything on an embedded PostgreSQL with a simulated fleet",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cfg.validate(); err != nil {
				return err
			}
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
	return cmd
}

func (c demoConfig) validate() error {
	switch {
	case c.meters < 1 || c.meters > 100000:
		return flows.FieldError("--meters", "%d is outside 1-100000", c.meters)
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
}

func runDemo(ctx context.Context, cmd *cobra.Command, cfg demoConfig) error {
	log := logger()
	dataDir, err := filepath.Abs(cfg.dataDir)
	if err != nil {
		return err
	}
	pgDir := filepath.Join(dataDir, "pg")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return flows.FieldError("--data", "%v", err)
	}
	// One demo per data directory at a time; the lock dies with the process.
	lock, err := os.OpenFile(filepath.Join(dataDir, "demo.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return flows.FieldError("--data", "%v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return flows.FieldError("--data", "%s is in use by another flows demo", dataDir)
	}
	if cfg.fresh {
		if err := removeCluster(ctx, pgDir); err != nil {
			return err
		}
		_ = os.Remove(filepath.Join(dataDir, "sim-state.json"))
	}
	cluster, err := pgembed.Start(ctx, pgembed.Config{Dir: pgDir, Durable: true, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		if err := cluster.Stop(); err != nil {
			log.Error("stopping PostgreSQL", "error", err)
		}
	}()
	if err := createDatabase(ctx, cluster, "flows"); err != nil {
		return err
	}
	dbURL := cluster.URL("flows")
	pool, err := postgres.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := postgres.Migrate(ctx, pool); err != nil {
		return err
	}
	simSecret, err := keepSecret(filepath.Join(dataDir, "sim-secret"))
	if err != nil {
		return err
	}
	prefix, port, err := parseListen(cfg.simListen)
	if err != nil {
		return err
	}
	fleetSpecs := sim.GenerateFleet(cfg.meters, sim.FleetOptions{AddressPrefix: prefix, Port: port, Secret: simSecret, Faults: true})
	simulator, err := startSim(ctx, simConfig{meters: cfg.meters, listen: cfg.simListen, speed: cfg.speed,
		state: filepath.Join(dataDir, "sim-state.json")}, fleetSpecs, log)
	if err != nil {
		return err
	}
	defer simulator.stop()
	var fleet []sim.Spec
	for _, m := range simulator.fleet.Meters() {
		fleet = append(fleet, m.Spec)
	}
	escoID, err := demo.Seed(ctx, pool, fleet, time.Now().UTC())
	if err != nil {
		return fmt.Errorf("seed demo fleet: %w", err)
	}
	// Free ports (--sim-listen PREFIX:0) differ between runs: keep the
	// registry pointing at where the meters listen now.
	if err := syncFleetAddresses(ctx, pool, fleet); err != nil {
		return err
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

	// The simulated meters need only a short gap between requests.
	svc, err := runServices(ctx, pool, serveConfig{httpAddr: cfg.httpAddr, grpcAddr: cfg.grpcAddr,
		components: []string{"api", "sync", "commands", "mediator"}, meterGap: 100 * time.Millisecond, workers: 25,
		jwtSecret: jwtSecretBytes}, log)
	if err != nil {
		return err
	}
	defer svc.stop()

	info := readyInfo{
		DatabaseURL: dbURL,
		HTTPURL:     "http://" + svc.httpAddr,
		GRPCAddr:    svc.grpcAddr,
		AdminToken:  adminToken,
		ESCO:        demo.ESCOCode,
		ESCOID:      escoID,
		Meters:      fleet,
	}
	if cfg.readyFile != "" {
		if err := writeFileAtomic(cfg.readyFile, info); err != nil {
			return flows.FieldError("--ready-file", "%v", err)
		}
	}
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "Flows demo ready: %d simulated meters of ESCO %s (speed %gx)\n", len(fleet), demo.ESCOCode, cfg.speed)
	fmt.Fprintf(out, "  dashboard:   %s/\n", info.HTTPURL)
	fmt.Fprintf(out, "  database:    %s\n", dbURL)
	fmt.Fprintf(out, "  mediator:    %s (emop --mediator %s -s EML2137580826 prepay_balance)\n", svc.grpcAddr, svc.grpcAddr)
	fmt.Fprintf(out, "  admin token: %s\n", adminToken)
	fmt.Fprintln(out, "Press Ctrl-C to stop.")
	<-ctx.Done()
	fmt.Fprintln(out, "stopping")
	return nil
}

// createDatabase creates db on the cluster unless it exists.
func createDatabase(ctx context.Context, c *pgembed.Cluster, db string) error {
	pool, err := postgres.Open(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer pool.Close()
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	_, err = pool.Exec(ctx, "CREATE DATABASE "+db)
	return err
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

// syncFleetAddresses points each registry row at its simulated meter.
func syncFleetAddresses(ctx context.Context, pool *pgxpool.Pool, fleet []sim.Spec) error {
	for _, m := range fleet {
		if m.IPAddress == "" {
			continue
		}
		if _, err := pool.Exec(ctx, `UPDATE flows.meter_registry SET ip_address = $2::inet, port = $3
			WHERE serial = $1 AND (ip_address IS DISTINCT FROM $2::inet OR port <> $3)`, m.Serial, m.IPAddress, m.Port); err != nil {
			return fmt.Errorf("register %s: %w", m.Serial, err)
		}
	}
	return nil
}
