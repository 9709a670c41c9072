package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/command"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/internal/cli"
	"github.com/flows-energy/flows/internal/pgembed"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/sim"
	"github.com/flows-energy/flows/syncer"
	"github.com/shopspring/decimal"
	"github.com/spf13/cobra"
)

func newBenchCmd() *cobra.Command {
	var cpuProfile string
	var profFile *os.File
	bench := &cobra.Command{Use: "bench", Short: "Benchmarks that print their figures",
		// --cpuprofile: where the engine's own time goes, for go tool pprof.
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			// cobra runs only the nearest persistent hook: the root's too.
			if err := checkLogFlags(cmd, args); err != nil {
				return err
			}
			if cpuProfile == "" {
				return nil
			}
			f, err := os.Create(cpuProfile)
			if err != nil {
				return flows.FieldError("--cpuprofile", "%v", err)
			}
			profFile = f
			return pprof.StartCPUProfile(f)
		},
		PersistentPostRunE: func(cmd *cobra.Command, args []string) error {
			if profFile == nil {
				return nil
			}
			pprof.StopCPUProfile()
			return profFile.Close()
		}}
	bench.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write this process's CPU profile to the file (go tool pprof)")
	var meters, workers int
	var latency, rawFor time.Duration
	syncCmd := &cobra.Command{
		Use:     "sync",
		Example: cli.Example("flows bench sync", "flows bench sync --meters 2000 --latency 1s"),
		Short:   "Time the hourly sync of a simulated fleet against the simulator's raw capacity",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if meters < 1 || workers < 1 {
				return flows.FieldError("--meters", "meters and workers must be positive")
			}
			return benchSync(cmd, meters, workers, latency, rawFor)
		},
	}
	syncCmd.Flags().IntVar(&meters, "meters", 10000, "simulated meters")
	syncCmd.Flags().IntVar(&workers, "workers", 400, "concurrent meter syncs")
	syncCmd.Flags().DurationVar(&latency, "latency", 20*time.Millisecond, "simulated meter latency")
	syncCmd.Flags().DurationVar(&rawFor, "raw-for", 5*time.Second, "how long to measure raw capacity")
	bench.AddCommand(syncCmd, newBenchRolloutCmd(), newBenchBackfillCmd(), newBenchIntervalsCmd(), newBenchRolesCmd(), newBenchFleetCmd())
	return bench
}

// countingObserver counts transport requests.
type countingObserver struct{ n atomic.Int64 }

func (c *countingObserver) ObserveRequest(kind, result string, d time.Duration) { c.n.Add(1) }

// benchFleet is a benchmark's world: a private database with a simulated
// fleet (in a child process) registered in it.
type benchFleet struct {
	store   *postgres.Store
	url     string // the database's, for child processes
	targets []meterconn.Target
	specs   []sim.Spec // the active meters', keys included (tokens)
	simPID  int
	sim     *exec.Cmd
	simOut  *bytes.Buffer // the simulator's standard output
	cluster *pgembed.Cluster
	cleanup func()
}

// simStats are what the simulator printed at exit.
type simStats struct {
	answered, refused, dropped, unanswered int64
	violations                             []string // the first few, as flows sim described them
}

// stopSim stops the simulator and returns what it counted.
func (f *benchFleet) stopSim() (simStats, error) {
	var st simStats
	_ = f.sim.Process.Signal(syscall.SIGTERM)
	_ = f.sim.Wait()
	counted := false
	var err error
	for _, l := range strings.Split(f.simOut.String(), "\n") {
		switch {
		case strings.HasPrefix(l, "answered "):
			_, err = fmt.Sscanf(l, "answered %d requests; refused %d sooner than the gap or during another; dropped %d; left %d unanswered",
				&st.answered, &st.refused, &st.dropped, &st.unanswered)
			counted = true
		case strings.HasPrefix(l, violationPrefix):
			st.violations = append(st.violations, strings.TrimPrefix(l, violationPrefix))
		}
	}
	if counted {
		return st, err
	}
	return st, fmt.Errorf("the simulator printed no counts: %q", f.simOut.String())
}

// procCPU returns the CPU seconds (user + system) process pid has used,
// read from /proc (0 once it has gone).
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+2:])
	if len(f) <= 12 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100 // clock ticks (USER_HZ = 100 on Linux)
}

func startBenchFleet(ctx context.Context, meters, poolSize int, latency time.Duration, simArgs ...string) (_ *benchFleet, err error) {
	var cleanups []func()
	f := &benchFleet{cleanup: func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}}
	defer func() {
		if err != nil {
			f.cleanup()
		}
	}()
	dir, err := os.MkdirTemp("", "flows-bench-")
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func() { os.RemoveAll(dir) })
	_ = os.Chmod(dir, 0o755)
	cluster, err := pgembed.Start(ctx, pgembed.Config{Dir: filepath.Join(dir, "pg"), Settings: benchPGSettings})
	if err != nil {
		return nil, err
	}
	f.cluster = cluster
	cleanups = append(cleanups, func() { _ = cluster.Stop() })
	if err := postgres.CreateDatabase(ctx, cluster.URL("postgres"), "flows"); err != nil {
		return nil, err
	}
	f.url = cluster.URL("flows")
	pool, err := postgres.Open(ctx, f.url+"&pool_max_conns="+strconv.Itoa(poolSize))
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, pool.Close)
	if _, err := postgres.Migrate(ctx, pool); err != nil {
		return nil, err
	}
	// The fleet runs in its own process, so the figures measured here are
	// the engine's alone.
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	reg := filepath.Join(dir, "fleet.json")
	simProc := exec.Command(self, append([]string{"sim", "--meters", strconv.Itoa(meters), "--listen", "127.91:0", "--faults=false",
		"--latency", latency.String(), "--registry-out", reg}, simArgs...)...)
	simProc.Stderr = os.Stderr
	f.simOut = &bytes.Buffer{}
	simProc.Stdout = f.simOut
	if err := simProc.Start(); err != nil {
		return nil, err
	}
	f.simPID, f.sim = simProc.Process.Pid, simProc
	cleanups = append(cleanups, func() {
		if simProc.ProcessState == nil {
			_ = simProc.Process.Signal(syscall.SIGTERM)
			_ = simProc.Wait()
		}
	})
	var specs []sim.Spec
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if specs, err = sim.ReadRegistry(reg); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("simulator did not start: %w", err)
		}
	}
	var nm []flows.NewMeter
	var layouts []string
	for _, s := range specs {
		if s.Mode != "active" {
			continue
		}
		f.targets = append(f.targets, meterconn.Target{Serial: s.Serial, Addr: net.JoinHostPort(s.IPAddress, strconv.Itoa(s.Port))})
		f.specs = append(f.specs, s)
		nm = append(nm, flows.NewMeter{Serial: s.Serial, IPAddress: s.IPAddress, Port: s.Port, Hardware: s.Hardware, Mode: flows.ModeActive})
		layouts = append(layouts, s.Layout)
	}
	f.store = postgres.NewStore(pool)
	if _, err := f.store.CreateESCO(ctx, "BENCH", "Benchmark"); err != nil {
		return nil, err
	}
	if _, err := f.store.ImportMeters(ctx, "BENCH", nm, layouts); err != nil {
		return nil, err
	}
	return f, nil
}

// benchSync runs the hourly-set benchmark on an all-single-phase fleet and
// on one that is 10% three-phase, and prints both.
func benchSync(cmd *cobra.Command, meters, workers int, latency, rawFor time.Duration) error {
	var effs []float64
	for _, share := range []float64{0, 0.1} {
		fmt.Fprintf(cmd.OutOrStdout(), "fleet %.0f%% three-phase:\n", share*100)
		eff, err := benchSyncFleet(cmd, meters, workers, latency, rawFor, share)
		if err != nil {
			return err
		}
		effs = append(effs, eff)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "efficiency: all single-phase %.2f, 10%% three-phase %.2f (goal ≥ 0.5 for both)\n", effs[0], effs[1])
	return nil
}

func benchSyncFleet(cmd *cobra.Command, meters, workers int, latency, rawFor time.Duration, threePhase float64) (float64, error) {
	ctx := cmd.Context()
	log := logger()
	bf, err := startBenchFleet(ctx, meters, min(workers/4+10, 200), latency, "--three-phase", strconv.FormatFloat(threePhase, 'f', -1, 64))
	if err != nil {
		return 0, err
	}
	defer bf.cleanup()
	store, targets := bf.store, bf.targets

	// Raw capacity: as many concurrent reads as the engine will run.
	r := syncBenchFigures{meters: len(targets), workers: workers, latency: latency}
	if r.rawRate, r.rawErrors, err = benchRawCapacity(ctx, targets, workers, rawFor); err != nil {
		return 0, err
	}

	if err := store.EnableOnlySyncersAt(ctx, flows.Hourly); err != nil {
		return 0, err
	}
	obs := &countingObserver{}
	transport, err := meterconn.New(meterconn.Config{Attempts: 2, Backoff: 100 * time.Millisecond, MaxConcurrent: workers * 2, Observer: obs})
	if err != nil {
		return 0, err
	}
	eng, err := syncer.New(syncer.Config{Store: store, NewQueue: queueOf(store), Meters: transport, Workers: workers, Owner: "bench",
		ScheduleEvery: 5 * time.Second, Logger: log.With("component", "sync")})
	if err != nil {
		return 0, err
	}
	cpu0, pg0, sim0 := cpuSeconds(), clusterCPU(bf.cluster), procCPU(bf.simPID)
	start := time.Now()
	if err := eng.Start(ctx); err != nil {
		return 0, err
	}
	defer func() { _ = eng.Stop(context.Background()) }()
	if r.fresh, _, err = waitFreshBalances(ctx, cmd.OutOrStdout(), store, start, len(targets), 10*time.Minute); err != nil {
		return 0, err
	}
	r.elapsed = time.Since(start)
	r.cpu = cpuSeconds() - cpu0
	r.pgCPU, r.simCPU = clusterCPU(bf.cluster)-pg0, procCPU(bf.simPID)-sim0
	r.requests = obs.n.Load()
	r.print(cmd.OutOrStdout())
	return float64(r.requests) / r.elapsed.Seconds() / r.rawRate, nil
}

// benchRawCapacity measures the simulator's raw capacity: workers
// concurrent signal (csq) reads, round-robin over targets, for d. It returns
// the successful reads per second and the number of failed reads.
func benchRawCapacity(ctx context.Context, targets []meterconn.Target, workers int, d time.Duration) (float64, int64, error) {
	raw, err := meterconn.New(meterconn.Config{Attempts: 1, MaxConcurrent: workers})
	if err != nil {
		return 0, 0, err
	}
	var rawN, rawErr atomic.Int64
	var wg sync.WaitGroup
	stopRaw := time.Now().Add(d)
	var next atomic.Int64
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stopRaw) {
				t := targets[next.Add(1)%int64(len(targets))]
				if _, err := raw.Read(ctx, t, emop.ObjCSQ); err != nil { // every kind of meter has it
					rawErr.Add(1)
					continue
				}
				rawN.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(rawN.Load()) / d.Seconds(), rawErr.Load(), nil
}

// waitFreshBalances polls until want meters have a synced balance (or
// within from start has passed) and returns how many have. With
// FLOWS_BENCH_TRACE set it prints progress and the job queue's states.
func waitFreshBalances(ctx context.Context, out io.Writer, store *postgres.Store, start time.Time, want int, within time.Duration) (fresh, failed int, err error) {
	bar := cli.NewProgress(out, "meters synced", want)
	defer bar.Done()
	for deadline := start.Add(within); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if fresh, err = store.CountFreshBalances(ctx); err != nil {
			return 0, 0, err
		}
		bar.Set(fresh, 0)
		if os.Getenv("FLOWS_BENCH_TRACE") != "" {
			jobs, _ := store.QueueJobStates(ctx)
			fmt.Fprintf(out, "  %5.1fs fresh %d, jobs %s\n", time.Since(start).Seconds(), fresh, jobs)
		}
		if fresh >= want {
			break
		}
		// Every meter read or failed: those that failed are due again at
		// their next slot, an hour away, not within this wave.
		if failed, err = store.CountFailedUnsynced(ctx); err != nil {
			return 0, 0, err
		}
		if fresh+failed >= want {
			break
		}
	}
	return fresh, failed, nil
}

// syncBenchFigures are what flows bench sync measured.
type syncBenchFigures struct {
	meters, workers    int
	latency            time.Duration
	rawRate            float64 // raw reads per second
	rawErrors          int64
	fresh              int // meters synced
	elapsed            time.Duration
	requests           int64 // engine transport requests
	cpu, pgCPU, simCPU float64
}

func (r syncBenchFigures) print(out io.Writer) {
	achieved := float64(r.requests) / r.elapsed.Seconds()
	fmt.Fprintf(out, "sync benchmark: %d meters, %v simulated latency, zero gap, %d workers\n", r.meters, r.latency, r.workers)
	fmt.Fprintf(out, "  simulator raw capacity:   %8.0f requests/s (%d errors)\n", r.rawRate, r.rawErrors)
	fmt.Fprintf(out, "  hourly set, whole fleet:  %8.1f s for %d/%d meters (goal ≤ 60 s)\n", r.elapsed.Seconds(), r.fresh, r.meters)
	fmt.Fprintf(out, "  engine request rate:      %8.0f requests/s (%d requests)\n", achieved, r.requests)
	fmt.Fprintf(out, "  efficiency:               %8.2f (goal ≥ 0.5)\n", achieved/r.rawRate)
	fmt.Fprintf(out, "  engine CPU:               %8.1f s; peak memory %s\n", r.cpu, peakMemory())
	fmt.Fprintf(out, "  PostgreSQL CPU:           %8.1f s; simulator CPU %.1f s (%.1f s of CPU time on %d cores in the run)\n",
		r.pgCPU, r.simCPU, r.elapsed.Seconds()*float64(runtime.NumCPU()), runtime.NumCPU())
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// peakMemory is this process's peak resident memory.
func peakMemory() string { return peakMemoryOf("self") }

// peakMemoryOf is process pid's ("self": this one's) peak resident memory,
// from /proc.
func peakMemoryOf(pid string) string {
	b, _ := os.ReadFile("/proc/" + pid + "/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:"))
		}
	}
	return "unknown"
}

func newBenchRolloutCmd() *cobra.Command {
	var meters, workers int
	var latency time.Duration
	cmd := &cobra.Command{
		Use:     "rollout",
		Example: cli.Example("flows bench rollout --meters 1000"),
		Short:   "Time a tariff rollout to a simulated fleet: pushed, read back and verified on every meter",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			bf, err := startBenchFleet(ctx, meters, min(workers+10, 200), latency)
			if err != nil {
				return err
			}
			defer bf.cleanup()
			transport, err := meterconn.New(meterconn.Config{Attempts: 2, Backoff: 100 * time.Millisecond, MaxConcurrent: workers * 2})
			if err != nil {
				return err
			}
			act := time.Now().UTC().Add(7 * 24 * time.Hour).Format("2006-01-02T15:04:05")
			d := func(s string) *decimal.Decimal { v := decimal.RequireFromString(s); return &v }
			tariff := flows.Tariff{StandingCharge: d("0.55"), UnitRateElementA: d("0.28"), UnitRateElementB: d("0.16"),
				PrepaymentEmergencyCredit: d("15"), PrepaymentECreditAvailability: d("10"), PrepaymentDebtRecoveryRate: d("0.25"), ActivationDatetime: &act}
			start := time.Now()
			ro, err := bf.store.CreateRollout(ctx, flows.RolloutTargets{ESCOCode: "BENCH"}, tariff, 20, 0, "bench")
			if err != nil {
				return err
			}
			created := time.Since(start)
			cpu0 := cpuSeconds()
			pusher := command.New(command.Config{Store: bf.store, Meters: transport, Workers: workers, PollEvery: 200 * time.Millisecond, ClockThreshold: -1})
			if err := pusher.Start(ctx); err != nil {
				return err
			}
			defer func() { _ = pusher.Stop(context.Background()) }()
			for deadline := time.Now().Add(15 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
				if ro, err = bf.store.Rollout(ctx, ro.ID); err != nil {
					return err
				}
				if ro.Status != "running" {
					break
				}
			}
			elapsed := time.Since(start)
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "rollout benchmark: %d meters, %v simulated latency, zero gap, %d workers\n", len(bf.targets), latency, workers)
			fmt.Fprintf(out, "  requests recorded in:   %8.1f s\n", created.Seconds())
			fmt.Fprintf(out, "  pushed and verified:    %8.1f s, status %s, progress %v (goal ≤ 600 s)\n", elapsed.Seconds(), ro.Status, ro.Progress)
			fmt.Fprintf(out, "  pusher CPU:             %8.1f s; peak memory %s\n", cpuSeconds()-cpu0, peakMemory())
			return nil
		},
	}
	cmd.Flags().IntVar(&meters, "meters", 10000, "simulated meters")
	cmd.Flags().IntVar(&workers, "workers", 100, "meters pushed at once")
	cmd.Flags().DurationVar(&latency, "latency", 0, "simulated meter latency")
	return cmd
}
