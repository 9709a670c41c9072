package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/internal/cli"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/sim"
	"github.com/flows-energy/flows/syncer"
	"github.com/spf13/cobra"
)

// flows bench backfill: collecting a fleet's profile history from
// simulated meters, against the simulator's raw capacity.

// backfillOptions are flows bench backfill's flags.
type backfillOptions struct {
	meters, days, workers int
	latency, rawFor       time.Duration
	timeout               time.Duration
}

func newBenchBackfillCmd() *cobra.Command {
	var o backfillOptions
	cmd := &cobra.Command{
		Use:     "backfill",
		Example: cli.Example("flows bench backfill --meters 2000 --days 7"),
		Short:   "Time the profile backfill of a simulated fleet's past against the simulator's raw capacity",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case o.meters < 1:
				return flows.FieldError("--meters", "must be positive")
			case o.workers < 1:
				return flows.FieldError("--workers", "must be positive")
			case o.days < 1 || o.days >= sim.DefaultProfileDays:
				// The simulated meters' logs hold DefaultProfileDays.
				return flows.FieldError("--days", "%d is outside 1-%d", o.days, sim.DefaultProfileDays-1)
			}
			return benchBackfill(cmd, o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.meters, "meters", 10000, "simulated meters")
	f.IntVar(&o.days, "days", 30, "days of profile history to backfill (the meters' commissioning is that long ago)")
	f.IntVar(&o.workers, "workers", 400, "concurrent meter syncs and backfills")
	f.DurationVar(&o.latency, "latency", 20*time.Millisecond, "simulated meter latency")
	f.DurationVar(&o.rawFor, "raw-for", 5*time.Second, "how long to measure raw capacity")
	f.DurationVar(&o.timeout, "timeout", time.Hour, "give up after this long")
	return cmd
}

// backfillFigures are what flows bench backfill measured.
type backfillFigures struct {
	o                  backfillOptions
	fleet, meters      int     // active meters; those whose profile is collected
	rawRate, rawAfter  float64 // raw capacity before and after the run
	rawErrors          int64
	elapsed            time.Duration
	requests           int64
	done               postgres.ProfileCompleteness
	dailyDone          time.Duration // when the last meter's daily sync was written
	profileRows        int64
	intervalRows       int64
	cpu, pgCPU, simCPU float64
}

func benchBackfill(cmd *cobra.Command, o backfillOptions) error {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	// A meter's simulated past covers its commissioning with time to spare
	// for the simulator's start and the raw-capacity run.
	bf, err := startProfileFleet(ctx, o.meters, min(o.workers/4+10, 200), o.latency, time.Duration(o.days)*24*time.Hour+2*time.Hour)
	if err != nil {
		return err
	}
	defer bf.cleanup()
	store := bf.store
	r := backfillFigures{o: o, fleet: len(bf.targets), meters: len(bf.profiled)}
	// A simulator that has just made its meters' past is still giving
	// that memory back.
	waitIdle(bf.simPID, time.Minute)
	if r.rawRate, r.rawErrors, err = benchRawProfileCapacity(ctx, bf.profiled, o.workers, o.rawFor, o.days); err != nil {
		return err
	}

	now := time.Now().UTC()
	commissioned := now.Add(-time.Duration(o.days) * 24 * time.Hour)
	if err := store.CommissionRegistersAt(ctx, commissioned); err != nil {
		return err
	}
	if err := store.PrepareMonthPartitions(ctx, commissioned, now); err != nil {
		return err
	}
	if err := store.EnableOnlySyncer(ctx, "SyncerProfileLogs"); err != nil {
		return err
	}
	// Complete means every record from the first half hour after
	// commissioning to the last complete one at the start, both logs.
	from, to := commissioned.Truncate(halfHour).Add(halfHour), now.Truncate(halfHour)
	obs := &countingObserver{}
	transport, err := meterconn.New(meterconn.Config{Attempts: 2, Backoff: 100 * time.Millisecond, MaxConcurrent: o.workers * 2, Observer: obs})
	if err != nil {
		return err
	}
	eng, err := syncer.New(syncer.Config{Store: store, NewQueue: queueOf(store), Meters: transport, Workers: o.workers,
		BackfillWorkers: o.workers, BackfillDays: o.days, Owner: "bench", ScheduleEvery: 5 * time.Second,
		Logger: logger().With("component", "sync")})
	if err != nil {
		return err
	}
	cpu0, pg0, sim0 := cpuSeconds(), bf.db.postgresCPU(), procCPU(bf.simPID)
	start := time.Now()
	if err := eng.Start(ctx); err != nil {
		return err
	}
	defer func() { _ = eng.Stop(context.Background()) }()
	if r.done, r.dailyDone, err = waitBackfilled(ctx, out, store, start, o.timeout, len(bf.targets), bf.serials, from, to); err != nil {
		return err
	}
	r.elapsed = time.Since(start)
	r.cpu = cpuSeconds() - cpu0
	r.pgCPU, r.simCPU = bf.db.postgresCPU()-pg0, procCPU(bf.simPID)-sim0
	r.requests = obs.n.Load()
	if err := eng.Stop(ctx); err != nil {
		return err
	}
	var afterErrors int64
	if r.rawAfter, afterErrors, err = benchRawProfileCapacity(ctx, bf.profiled, o.workers, o.rawFor, o.days); err != nil {
		return err
	}
	r.rawErrors += afterErrors
	if r.profileRows, err = store.CountRows(ctx, "meter_profile"); err != nil {
		return err
	}
	if r.intervalRows, err = store.CountRows(ctx, "register_interval_hh"); err != nil {
		return err
	}
	r.print(out)
	return nil
}

// waitBackfilled polls until all meters have had their daily sync and no
// sync or backfill job is left (or timeout has passed), then counts what
// the window [from, to] holds of the profiled meters'. It also returns
// when the daily syncs were all done. With FLOWS_BENCH_TRACE set it
// prints progress.
func waitBackfilled(ctx context.Context, out io.Writer, store *postgres.Store, start time.Time, timeout time.Duration, meters int,
	profiled []string, from, to time.Time) (postgres.ProfileCompleteness, time.Duration, error) {
	trace := os.Getenv("FLOWS_BENCH_TRACE") != ""
	var dailyDone time.Duration
	// On a terminal: the daily syncs, then the backfills (a meter's
	// backfill is done when its job is).
	daily, backfills := cli.NewProgress(out, "daily syncs", meters), cli.NewProgress(out, "backfills done", len(profiled))
	defer daily.Done()
	defer backfills.Done()
	for deadline := start.Add(timeout); time.Now().Before(deadline); time.Sleep(time.Second) {
		synced, err := store.CountSyncedAt(ctx, flows.Daily)
		if err != nil {
			return postgres.ProfileCompleteness{}, 0, err
		}
		if synced >= meters && dailyDone == 0 {
			dailyDone = time.Since(start)
			daily.Set(synced, 0)
			daily.Done()
		}
		jobs, err := store.ActiveJobs(ctx, syncer.GroupQueue, syncer.ProfileQueue)
		if err != nil {
			return postgres.ProfileCompleteness{}, 0, err
		}
		if dailyDone == 0 {
			daily.Set(synced, 0)
		} else {
			backfills.Set(max(len(profiled)-jobs, 0), 0)
		}
		if trace {
			derived, _ := store.DerivedHalfHours(ctx, from, to)
			fmt.Fprintf(out, "  %6.1fs daily syncs %d/%d, jobs left %d, half hours derived %d\n", time.Since(start).Seconds(), synced, meters, jobs, derived)
		}
		if synced >= meters && jobs == 0 {
			break
		}
	}
	c, err := store.ProfileCompleteness(ctx, profiled, from, to)
	return c, dailyDone, err
}

func (r backfillFigures) print(out io.Writer) {
	achieved := float64(r.requests) / r.elapsed.Seconds()
	raw := max(r.rawRate, r.rawAfter) // the machine is shared: the better of the two is the capacity
	years := float64(r.o.days) / 365.25
	fmt.Fprintf(out, "backfill benchmark: %d active meters (%d single-phase, whose profile is collected), %d days of profile each, %v simulated latency, zero gap, %d workers\n",
		r.fleet, r.meters, r.o.days, r.o.latency, r.o.workers)
	fmt.Fprintf(out, "  simulator raw capacity:   %8.0f profile-log requests/s (%.0f before the run, %.0f after; %d errors)\n", raw, r.rawRate, r.rawAfter, r.rawErrors)
	fmt.Fprintf(out, "  backfilled:               %8.1f s; %d/%d meters complete, %d half hours missing (every daily sync done after %.0f s)\n",
		r.elapsed.Seconds(), r.done.Complete, r.done.Meters, r.done.Missing, r.dailyDone.Seconds())
	fmt.Fprintf(out, "  engine request rate:      %8.0f requests/s (%d requests, %.0f a meter)\n", achieved, r.requests, float64(r.requests)/float64(max(r.meters, 1)))
	fmt.Fprintf(out, "  efficiency:               %8.2f (goal ≥ 0.5): %s\n", achieved/raw, goalMet(achieved/raw >= 0.5))
	fmt.Fprintf(out, "  rows stored:              %8d meter_profile, %d register_interval_hh (%.0f and %.0f a meter-year)\n",
		r.profileRows, r.intervalRows, float64(r.profileRows)/float64(r.meters)/years, float64(r.intervalRows)/float64(r.meters)/years)
	fmt.Fprintf(out, "  engine CPU:               %8.1f s; peak memory %s\n", r.cpu, peakMemory())
	fmt.Fprintf(out, "  PostgreSQL CPU:           %8.1f s; simulator CPU %.1f s (%.1f s of CPU time on %d cores in the run)\n",
		r.pgCPU, r.simCPU, r.elapsed.Seconds()*float64(runtime.NumCPU()), runtime.NumCPU())
}

// waitIdle waits, at most for limit, until process pid uses less than a
// tenth of a core over half a second.
func waitIdle(pid int, limit time.Duration) {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); {
		c0 := procCPU(pid)
		time.Sleep(500 * time.Millisecond)
		if procCPU(pid)-c0 < 0.05 {
			return
		}
	}
}

// benchRawProfileCapacity measures the simulator's raw capacity for
// profile-log requests: workers concurrent requests (logs 1 and 2 in the
// engine's proportion, two to three, from a random half hour of the last
// days), round-robin over targets, for d. It returns the successful
// requests per second and the number that failed.
func benchRawProfileCapacity(ctx context.Context, targets []meterconn.Target, workers int, d time.Duration, days int) (float64, int64, error) {
	raw, err := meterconn.New(meterconn.Config{Attempts: 1, MaxConcurrent: workers})
	if err != nil {
		return 0, 0, err
	}
	now := time.Now().UTC().Truncate(halfHour)
	var reqs [][]byte
	for i := range 500 {
		format := emop.FormatProfileLog1
		if i%5 >= 2 {
			format = emop.FormatProfileLog2
		}
		req, err := emop.ProfileLogRequest(format, now.Add(-time.Duration(rand.IntN(days*48))*halfHour))
		if err != nil {
			return 0, 0, err
		}
		reqs = append(reqs, req)
	}
	var n, failed, next atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				i := next.Add(1)
				if _, err := raw.Raw(ctx, targets[i%int64(len(targets))], reqs[i%int64(len(reqs))]); err != nil {
					failed.Add(1)
					continue
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / d.Seconds(), failed.Load(), nil
}

// profileFleet is a benchmark fleet whose meters have a past.
type profileFleet struct {
	*benchFleet
	db *benchDB
	// profiled are the meters whose profile is collected (single-phase:
	// the profile syncer skips three-phase meters), and their serials.
	profiled []meterconn.Target
	serials  []string
}

// startProfileFleet is startBenchFleet for meters with a past: the
// simulator (a child process) starts each meter's model past ago and runs
// it to now, so its profile logs hold that history.
func startProfileFleet(ctx context.Context, meters, poolSize int, latency, past time.Duration) (_ *profileFleet, err error) {
	db, err := startBenchDB(ctx, poolSize)
	if err != nil {
		return nil, err
	}
	f := &profileFleet{benchFleet: &benchFleet{store: db.store, cleanup: db.cleanup}, db: db}
	defer func() {
		if err != nil {
			f.cleanup()
		}
	}()
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	reg := filepath.Join(db.dir, "fleet.json")
	simProc := exec.Command(self, "sim", "--meters", strconv.Itoa(meters), "--listen", "127.91:0", "--faults=false",
		"--latency", latency.String(), "--past", past.String(), "--registry-out", reg)
	simProc.Stderr = os.Stderr
	if err := simProc.Start(); err != nil {
		return nil, err
	}
	f.simPID = simProc.Process.Pid
	stopDB := f.cleanup
	f.cleanup = func() { _ = simProc.Process.Signal(syscall.SIGTERM); _ = simProc.Wait(); stopDB() }
	var specs []sim.Spec
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
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
		t := meterconn.Target{Serial: s.Serial, Addr: net.JoinHostPort(s.IPAddress, strconv.Itoa(s.Port))}
		f.targets = append(f.targets, t)
		if !emop.IsThreePhase(s.Hardware) {
			f.profiled, f.serials = append(f.profiled, t), append(f.serials, s.Serial)
		}
		nm = append(nm, flows.NewMeter{Serial: s.Serial, IPAddress: s.IPAddress, Port: s.Port, Hardware: s.Hardware, Mode: flows.ModeActive})
		layouts = append(layouts, s.Layout)
	}
	if _, err := f.store.CreateESCO(ctx, "BENCH", "Benchmark"); err != nil {
		return nil, err
	}
	if _, err := f.store.ImportMeters(ctx, "BENCH", nm, layouts); err != nil {
		return nil, err
	}
	return f, nil
}
