package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	flowshttp "github.com/flows-energy/flows/http"
	"github.com/flows-energy/flows/internal/cli"
	"github.com/flows-energy/flows/mediator"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/sim"
	"github.com/shopspring/decimal"
	"github.com/spf13/cobra"
)

// flows bench fleet: the hourly set of a real-sized fleet at cellular
// latency, as flows serve runs it (API, sync engine and commands in this
// process, sized by the engine itself), with operators' top-ups and
// on-demand syncs submitted through the API during the wave.

type fleetOptions struct {
	meters, workers, maxInFlight, topups, syncs int
	latency, jitter, gap, fresh, timeout        time.Duration
	actionsWithin, rawFor                       time.Duration
	dropRate                                    float64
	scaleOut                                    bool
	mediators                                   int // then a run through this many mediators
}

func newBenchFleetCmd() *cobra.Command {
	var o fleetOptions
	cmd := &cobra.Command{
		Use:     "fleet",
		Example: cli.Example("flows bench fleet --meters 10000", "flows bench fleet --scale-out"),
		Short:   "The hourly set of a fleet at cellular latency, with top-ups and on-demand syncs during the wave",
		Long: `The hourly set of a simulated fleet at cellular latency (each request
--latency ± --jitter, a --gap between requests to one meter that the
simulator enforces, --drop-rate of connections dropped), run as flows serve
runs it: API, sync engine and commands in this process, the engine sizing
its meters in flight between --sync-workers and --max-in-flight.

During the wave, --topups top-ups (POST /api/v1/meters/{serial}/tokens) and
--syncs on-demand syncs (POST /api/v1/meters/{serial}/sync) are submitted at
random moments; the time from each POST to the top-up completed, or the
meter's shadow read again, is printed as p50 and p99.

The ceiling printed beside the engine's request rate is measured in the
same run: as many meters in flight as the engine ends with, each read back
to back with the gap between, for --raw-for.

Example:
  flows bench fleet --meters 100000 --latency 1s --jitter 300ms --gap 2s --drop-rate 0.005`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case o.meters < 1 || o.meters > 100000:
				return flows.FieldError("--meters", "%d is outside 1-100000", o.meters)
			case o.workers < 1:
				return flows.FieldError("--sync-workers", "%d is not positive", o.workers)
			case o.maxInFlight < o.workers:
				return flows.FieldError("--max-in-flight", "%d is below --sync-workers (%d)", o.maxInFlight, o.workers)
			case o.topups < 0 || o.topups > o.meters/2:
				return flows.FieldError("--topups", "%d is outside 0-%d (half the meters)", o.topups, o.meters/2)
			case o.syncs < 0 || o.syncs+o.topups > o.meters:
				return flows.FieldError("--syncs", "%d is outside 0-%d (the meters not topped up)", o.syncs, o.meters-o.topups)
			case o.fresh < time.Minute:
				return flows.FieldError("--fresh-within", "%v is under a minute", o.fresh)
			case o.dropRate < 0 || o.dropRate > 0.5:
				return flows.FieldError("--drop-rate", "%g is outside 0-0.5", o.dropRate)
			case o.jitter < 0 || o.jitter > o.latency:
				return flows.FieldError("--jitter", "%v is outside 0-%v (--latency)", o.jitter, o.latency)
			case o.gap < 0:
				return flows.FieldError("--gap", "%v is negative", o.gap)
			case o.rawFor < time.Second:
				return flows.FieldError("--raw-for", "%v is under a second", o.rawFor)
			case o.mediators < 0 || o.mediators > 8:
				return flows.FieldError("--mediators", "%d is outside 0-8", o.mediators)
			}
			return runFleetBench(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.meters, "meters", 100000, "simulated meters (all single-phase)")
	f.IntVar(&o.workers, "sync-workers", 400, "the floor of meters in flight (flows serve --sync-workers)")
	f.IntVar(&o.maxInFlight, "max-in-flight", 5000, "the ceiling of meters in flight (flows serve --max-in-flight)")
	f.DurationVar(&o.fresh, "fresh-within", 15*time.Minute, "the freshness target the engine sizes itself for (flows serve --fresh-within)")
	f.DurationVar(&o.latency, "latency", time.Second, "every request's simulated latency")
	f.DurationVar(&o.jitter, "jitter", 300*time.Millisecond, "latency ± this, uniformly")
	f.DurationVar(&o.gap, "gap", 2*time.Second, "each meter's minimum gap between requests (the simulator refuses and counts sooner ones)")
	f.Float64Var(&o.dropRate, "drop-rate", 0.005, "share of connections the simulator drops unanswered")
	f.IntVar(&o.topups, "topups", 50, "top-ups submitted through the API during the wave")
	f.IntVar(&o.syncs, "syncs", 50, "on-demand syncs submitted through the API during the wave")
	f.DurationVar(&o.actionsWithin, "actions-within", 5*time.Minute, "the top-ups and syncs are submitted at random moments in this first part of the wave")
	f.DurationVar(&o.timeout, "timeout", 40*time.Minute, "give up waiting for the whole fleet after this")
	f.DurationVar(&o.rawFor, "raw-for", 20*time.Second, "how long to measure the ceiling")
	f.BoolVar(&o.scaleOut, "scale-out", false, "then run the same fleet again with two flows serve --components sync,commands processes on the database, each with half the floor and ceiling")
	f.IntVar(&o.mediators, "mediators", 0, "then run the same fleet again with the sync engine and commands reaching meters through this many flows serve --components mediator processes (flows serve --mediator, sharded by serial)")
	return cmd
}

// fleetFigures are what flows bench fleet measured.
type fleetFigures struct {
	o                      fleetOptions
	nodes                  int
	by                     map[string]int // meters by the engine that synced them
	memory                 string         // peak resident memory of the engine
	active                 int            // the fleet's active meters (the simulator makes a few passive ones)
	fresh                  int
	failed                 int // meters whose set failed in the wave (not fresh, due again at their next slot)
	elapsed                time.Duration
	engineRequests         int64
	ceiling                float64 // requests/s at the engine's concurrency, measured
	ceilingAt              int     // that concurrency
	ceilingErrors          int64
	cpu, pgCPU             float64
	mediators              []float64 // CPU seconds of each mediator, in a run through mediators
	shardMeters            []int     // active meters behind each mediator
	inFlight               int
	syncs0                 int64 // syncs recorded when the fleet was fresh
	synced, twice          int   // meters with a sync, and synced more than once, by then
	transportRequests      int64 // the transport's requests (retries not counted) by then
	poolAcquires           int64 // the shared database pool's acquires, and those that waited, by then
	poolWaits              int64
	poolWait               time.Duration
	poolSize               int32 // its connections (derived as flows serve derives them)
	bound                  string
	sim                    simStats
	topups, syncs          []time.Duration // completed ones
	topupsLost, syncsLost  int             // not completed within the wait
	topupErrors, syncError string
}

func runFleetBench(ctx context.Context, out io.Writer, o fleetOptions) error {
	type run struct{ nodes, mediators int }
	plan := []run{{1, 0}}
	if o.scaleOut {
		plan = append(plan, run{2, 0})
	}
	if o.mediators > 0 {
		plan = append(plan, run{1, o.mediators})
	}
	var runs []fleetFigures
	for _, r := range plan {
		fig, err := fleetRun(ctx, out, o, r.nodes, r.mediators)
		if err != nil {
			return err
		}
		fig.print(out)
		runs = append(runs, fig)
	}
	one := runs[0]
	within := func(f fleetFigures) string {
		return fmt.Sprintf("%.1f s against %.1f s: %.2fx (goal within 10%%: %s)", f.elapsed.Seconds(), one.elapsed.Seconds(),
			f.elapsed.Seconds()/one.elapsed.Seconds(), goalMet(f.elapsed.Seconds() <= 1.1*one.elapsed.Seconds()))
	}
	larger := func(parts []float64) float64 {
		total, most := 0.0, 0.0
		for _, p := range parts {
			total += p
			most = max(most, p)
		}
		return most / max(total, 1e-9)
	}
	for _, f := range runs[1:] {
		if f.nodes > 1 {
			var parts []float64
			for _, n := range f.by {
				parts = append(parts, float64(n))
			}
			share := larger(parts)
			fmt.Fprintf(out, "scale out, two flows serve --components sync,commands on one database, each half the ceiling, against one with all of it:\n")
			fmt.Fprintf(out, "  wall time: %s\n", within(f))
			fmt.Fprintf(out, "  split: %v, the larger share %.2f (goal ≤ 0.60: %s); meters synced more than once: %d, on demand %d (goal: only those: %s)\n",
				f.by, share, goalMet(share <= 0.6), f.twice, o.syncs, goalMet(f.twice <= o.syncs))
			continue
		}
		var meters []float64
		for _, n := range f.shardMeters {
			meters = append(meters, float64(n))
		}
		fmt.Fprintf(out, "through %d mediators (flows serve --mediator, sharded by serial), against one process talking to the meters itself:\n", len(f.mediators))
		fmt.Fprintf(out, "  wall time: %s\n", within(f))
		fmt.Fprintf(out, "  split: meters %v, the larger share %.2f (goal ≤ 0.60: %s); mediators' CPU %.1f s (larger share %.2f); meters synced more than once: %d, on demand %d (goal: only those: %s)\n",
			f.shardMeters, larger(meters), goalMet(larger(meters) <= 0.6), sum(f.mediators), larger(f.mediators), f.twice, o.syncs, goalMet(f.twice <= o.syncs))
	}
	if len(runs) > 1 {
		fmt.Fprintf(out, "cost, CPU-seconds per meter per month for the hourly sets (engines, mediators and PostgreSQL):")
		for _, f := range runs {
			fmt.Fprintf(out, " %s %.2f;", f.label(), f.monthlyCost())
		}
		fmt.Fprintln(out)
	}
	return nil
}

func sum(xs []float64) float64 {
	t := 0.0
	for _, x := range xs {
		t += x
	}
	return t
}

// label names a run's shape.
func (r fleetFigures) label() string {
	switch {
	case len(r.mediators) > 0:
		return fmt.Sprintf("one node through %d mediators", len(r.mediators))
	case r.nodes > 1:
		return fmt.Sprintf("%d nodes", r.nodes)
	}
	return "one node"
}

// monthlyCost is the run's CPU-seconds per meter per month at one hourly
// set an hour (720 a month).
func (r fleetFigures) monthlyCost() float64 {
	return (r.cpu + r.pgCPU) / float64(max(r.fresh, 1)) * 24 * 30
}

// fleetRun is one run of the fleet benchmark: the API, sync engine and
// commands in this process (nodes 1), or the API here and the sync engine
// and commands in nodes child processes, each with its share of the floor
// and the ceiling.
//
// With mediators, the sync engine and commands in this process reach the
// meters through that many flows serve --components mediator child
// processes (the gap kept there), sharded by serial.
func fleetRun(ctx context.Context, out io.Writer, o fleetOptions, nodes, mediators int) (fleetFigures, error) {
	fig := fleetFigures{o: o, nodes: nodes}
	fmt.Fprintf(out, "starting %d simulated meters and a database (a minute or two at 100,000)...\n", o.meters)
	t0 := time.Now()
	components := []string{"api", "sync", "commands"}
	if nodes > 1 {
		components = []string{"api"} // the on-demand syncs are queued for the nodes
	}
	// The pool flows serve would derive (the nodes derive their own), at
	// most half the embedded server's 300 connections, and the
	// benchmark's own few.
	poolFor, _, _ := poolSize(serveConfig{components: components, workers: o.workers})
	bf, err := startBenchFleet(ctx, o.meters, min(poolFor, 150)+4, o.latency, "--jitter", o.jitter.String(), "--gap", o.gap.String(),
		"--drop-rate", fmt.Sprint(o.dropRate), "--three-phase", "0")
	if err != nil {
		return fig, err
	}
	defer bf.cleanup()
	if err := bf.store.EnableOnlySyncersAt(ctx, flows.Hourly); err != nil {
		return fig, err
	}
	fmt.Fprintf(out, "  ready in %v\n", time.Since(t0).Round(time.Second))
	fig.active = len(bf.targets)

	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	cfg := serveConfig{httpAddr: "127.0.0.1:0", grpcAddr: "127.0.0.1:0", components: components,
		meterGap: o.gap, workers: o.workers, maxInFlight: o.maxInFlight, freshWithin: o.fresh, backfillDays: 30,
		jwtSecret: secret, lease: 30 * time.Second}
	// The services' own log at WARN: the figures are what this prints.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cpu0, pg0 := cpuSeconds(), clusterCPU(bf.cluster)
	start := time.Now()
	var children []*fleetNode
	defer func() {
		for _, c := range children {
			c.stop()
		}
	}()
	for i := range nodes {
		if nodes == 1 {
			break
		}
		c, err := startFleetNode(ctx, fmt.Sprintf("node-%d", i), "--components", "sync,commands", "--database-url", bf.url,
			"--sync-workers", strconv.Itoa(max(1, o.workers/nodes)), "--max-in-flight", strconv.Itoa(max(1, o.maxInFlight/nodes)),
			"--fresh-within", o.fresh.String(), "--meter-gap", o.gap.String(), "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0")
		if err != nil {
			return fig, err
		}
		children = append(children, c)
	}
	var meds []*fleetNode
	defer func() {
		for _, m := range meds {
			m.stop()
		}
	}()
	for i := range mediators {
		// Each mediator may hold every meter in flight: the shards are
		// even only on average.
		m, err := startFleetNode(ctx, fmt.Sprintf("mediator-%d", i), "--components", "mediator", "--database-url", bf.url,
			"--max-in-flight", strconv.Itoa(o.maxInFlight), "--meter-gap", o.gap.String(), "--grpc", "127.0.0.1:0")
		if err != nil {
			return fig, err
		}
		meds = append(meds, m)
		cfg.mediators = append(cfg.mediators, m.grpcAddr())
	}
	if mediators > 0 {
		shards, err := mediator.DialShards(cfg.mediators, nil)
		if err != nil {
			return fig, err
		}
		fig.shardMeters = make([]int, mediators)
		for _, spec := range bf.specs {
			fig.shardMeters[shards.Shard(spec.Serial)]++
		}
		_ = shards.Close()
	}
	svc, err := runServices(ctx, bf.store, cfg, log)
	if err != nil {
		return fig, err
	}
	stopped := false
	defer func() {
		if !stopped {
			svc.stop()
		}
	}()
	token, err := flowshttp.IssueToken(secret, "bench", flowshttp.RoleOperator, "", 2*time.Hour, time.Now())
	if err != nil {
		return fig, err
	}
	api := &benchAPI{base: "http://" + svc.httpAddr + "/api/v1", token: token}

	// Operators at random moments of the wave, on meters of their own.
	picks := mrand.Perm(len(bf.specs))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var lostTopups, lostSyncs atomic.Int64
	for i := range o.topups + o.syncs {
		spec := bf.specs[picks[i]]
		at := time.Duration(mrand.Int64N(int64(o.actionsWithin)))
		isTopup := i < o.topups
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(at):
			case <-ctx.Done():
				return
			}
			var d time.Duration
			var err error
			if isTopup {
				d, err = api.topUp(ctx, spec)
			} else {
				d, err = api.syncNow(ctx, bf, spec)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil && isTopup:
				lostTopups.Add(1)
				fig.topupErrors = err.Error()
			case err != nil:
				lostSyncs.Add(1)
				fig.syncError = err.Error()
			case isTopup:
				fig.topups = append(fig.topups, d)
			default:
				fig.syncs = append(fig.syncs, d)
			}
		}()
	}

	if fig.fresh, fig.failed, err = waitFreshBalances(ctx, out, bf.store, start, len(bf.targets), o.timeout); err != nil {
		return fig, err
	}
	fig.elapsed = time.Since(start)
	wg.Wait()
	fig.topupsLost, fig.syncsLost = int(lostTopups.Load()), int(lostSyncs.Load())
	fig.transportRequests = meterRequests(svc)
	st := bf.store.Pool().Stat()
	fig.poolAcquires, fig.poolWaits, fig.poolWait, fig.poolSize = st.AcquireCount(), st.EmptyAcquireCount(), st.AcquireDuration(), st.MaxConns()
	if fig.by, err = bf.store.SyncsBy(ctx); err != nil {
		return fig, err
	}
	if fig.syncs0, fig.synced, fig.twice, err = bf.store.SyncTally(ctx); err != nil {
		return fig, err
	}
	sz := svc.eng.Sizing()
	fig.inFlight, fig.bound = sz.InFlight, sz.Bound
	fig.cpu, fig.pgCPU = cpuSeconds()-cpu0, clusterCPU(bf.cluster)-pg0
	fig.memory = peakMemory()
	for _, c := range children {
		fig.cpu += procCPU(c.cmd.Process.Pid)
		fig.memory = "per node " + c.peakMemory() // the nodes are alike; the last one's
	}
	for _, m := range meds {
		c := procCPU(m.cmd.Process.Pid)
		fig.mediators = append(fig.mediators, c)
		fig.cpu += c
		fig.memory += "; mediator " + m.peakMemory()
	}
	svc.stop()
	stopped = true
	for _, c := range children {
		c.stop()
	}
	children = nil
	for _, m := range meds {
		m.stop()
	}
	meds = nil
	if mediators > 0 {
		// The requests went through the mediators' transports, not this
		// process's: counted at the simulator, as for several nodes.
		fig.bound = "this process's, through the mediators"
		time.Sleep(o.latency + o.jitter + o.gap)
		if fig.sim, err = bf.stopSim(); err != nil {
			return fig, err
		}
		fig.engineRequests = fig.sim.answered + fig.sim.refused + fig.sim.dropped + fig.sim.unanswered
		return fig, nil
	}
	if nodes > 1 {
		fig.inFlight, fig.bound = 0, fmt.Sprintf("each node's own, up to --max-in-flight %d", o.maxInFlight/nodes)
		time.Sleep(o.latency + o.jitter + o.gap)
		if fig.sim, err = bf.stopSim(); err != nil {
			return fig, err
		}
		fig.engineRequests = fig.sim.answered + fig.sim.refused + fig.sim.dropped + fig.sim.unanswered
		return fig, nil
	}

	// The ceiling at the engine's concurrency, after the wave (its
	// requests are told apart from the engine's by count). A request the
	// stop cut short is answered by its meter up to latency + jitter
	// later: the gap runs from then.
	time.Sleep(o.latency + o.jitter + o.gap)
	var rawN int64
	fig.ceilingAt = min(max(fig.inFlight, 1), len(bf.targets))
	// Sets as long as the engine's were (its requests a meter, from the
	// simulator's count less the ceiling's own, known once both ran: the
	// requests before the wave ended are the engine's).
	perSet := 7
	if n := fig.transportRequests; n > 0 && fig.fresh > 0 {
		perSet = max(1, int((float64(n)/float64(fig.fresh))+0.5))
	}
	if fig.ceiling, rawN, fig.ceilingErrors, err = benchGapCeiling(ctx, bf.targets, fig.ceilingAt, perSet, o.gap, o.rawFor); err != nil {
		return fig, err
	}
	if fig.sim, err = bf.stopSim(); err != nil {
		return fig, err
	}
	fig.engineRequests = fig.sim.answered + fig.sim.refused + fig.sim.dropped + fig.sim.unanswered - rawN
	return fig, nil
}

// benchGapCeiling measures what the simulator serves at concurrency n with
// the gap kept: n workers, each reading its own meters in turn, perSet
// reads a meter as a set does, the transport waiting the gap between. It
// returns the requests per second answered (over the time they took, the
// last ones finishing after d), all requests made (answered or not) and
// the failed ones.
func benchGapCeiling(ctx context.Context, targets []meterconn.Target, n, perSet int, gap, d time.Duration) (float64, int64, int64, error) {
	raw, err := meterconn.New(meterconn.Config{Attempts: 1, Gap: gap, MaxConcurrent: n})
	if err != nil {
		return 0, 0, 0, err
	}
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	until := start.Add(d)
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; time.Now().Before(until); i += n {
				t := targets[i%len(targets)]
				for range perSet {
					if !time.Now().Before(until) {
						return
					}
					if _, err := raw.Read(ctx, t, emop.ObjCSQ); err != nil {
						failed.Add(1)
						continue
					}
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(ok.Load()) / time.Since(start).Seconds(), ok.Load() + failed.Load(), failed.Load(), nil
}

// benchAPI is an operator's HTTP client of the API.
type benchAPI struct {
	base, token string
}

func (a *benchAPI) post(ctx context.Context, path string, body any) (map[string]any, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return nil, fmt.Errorf("POST %s: %s, undecodable body: %w", path, resp.Status, err)
	}
	if resp.StatusCode != http.StatusAccepted {
		return nil, fmt.Errorf("POST %s: %s %v", path, resp.Status, v)
	}
	return v, nil
}

// topUp submits a £5 token for spec's meter and returns the time until
// the top-up is completed.
func (a *benchAPI) topUp(ctx context.Context, spec sim.Spec) (time.Duration, error) {
	tok, err := sim.VendToken(spec.Serial, spec.Key, decimal.NewFromInt(5))
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	v, err := a.post(ctx, "/meters/"+spec.Serial+"/tokens", map[string]any{"token": tok, "amount": "5.00"})
	if err != nil {
		return 0, err
	}
	id, _ := v["id"].(string)
	for deadline := t0.Add(10 * time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		st, err := a.get(ctx, "/topups/"+id)
		if err != nil {
			return 0, err
		}
		switch flows.TopupStatus(fmt.Sprint(st["status"])) {
		case flows.TopupCompleted:
			return time.Since(t0), nil
		case flows.TopupFailed:
			return 0, fmt.Errorf("top-up on %s failed: %v", spec.Serial, st["notes"])
		}
	}
	return 0, fmt.Errorf("top-up on %s not completed in 10 minutes", spec.Serial)
}

func (a *benchAPI) get(ctx context.Context, path string) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s %v", path, resp.Status, err)
	}
	return v, nil
}

// syncNow asks for an on-demand sync of spec's meter and returns the time
// until its shadow's balance was read after the request.
func (a *benchAPI) syncNow(ctx context.Context, bf *benchFleet, spec sim.Spec) (time.Duration, error) {
	m, err := bf.store.MeterBySerial(ctx, spec.Serial)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	if _, err := a.post(ctx, "/meters/"+spec.Serial+"/sync", map[string]any{}); err != nil {
		return 0, err
	}
	for deadline := t0.Add(10 * time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		sh, err := bf.store.Shadow(ctx, m.ID)
		if err != nil {
			return 0, err
		}
		if at, ok := sh.SyncedAt["balance"]; ok && at.After(t0) {
			return time.Since(t0), nil
		}
	}
	return 0, fmt.Errorf("on-demand sync of %s not done in 10 minutes", spec.Serial)
}

// percentile returns the p-th percentile (0-100) of ds, nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	k := int(p/100*float64(len(s))+0.999999) - 1
	return s[min(max(k, 0), len(s)-1)]
}

func (r fleetFigures) print(out io.Writer) {
	o := r.o
	rate := float64(r.engineRequests) / r.elapsed.Seconds()
	perK := func(cpu float64) float64 { return cpu / float64(max(r.fresh, 1)) * 1000 }
	fmt.Fprintf(out, "fleet benchmark, %d node(s): %d meters, latency %v ± %v, gap %v, %.1f%% drops; sync-workers %d, max-in-flight %d (in all), fresh-within %v\n",
		r.nodes, o.meters, o.latency, o.jitter, o.gap, o.dropRate*100, o.workers, o.maxInFlight, o.fresh)
	fmt.Fprintf(out, "  hourly set, whole fleet:   %8.1f s for %d/%d active meters (goal ≤ %.0f s: %s)\n", r.elapsed.Seconds(), r.fresh, r.active,
		o.fresh.Seconds(), goalMet(r.fresh == r.active && r.elapsed <= o.fresh))
	if r.failed > 0 {
		fmt.Fprintf(out, "  failed sets:               %8d meters whose set failed in the wave (due again at their next slot; their sync state says why)\n", r.failed)
	}
	fmt.Fprintf(out, "  syncs recorded:            %8d for %d meters; %d synced more than once (%d of them on demand)\n", r.syncs0, r.synced, r.twice, r.o.syncs)
	switch {
	case len(r.mediators) > 0:
		fmt.Fprintf(out, "  meters in flight:          %8d at the end (%s); meters behind each mediator %v, their CPU %v s\n", r.inFlight, r.bound, r.shardMeters, r.mediators)
	case r.nodes == 1:
		fmt.Fprintf(out, "  meters in flight:          %8d at the end (decided by: %s)\n", r.inFlight, r.bound)
	default:
		fmt.Fprintf(out, "  meters in flight:          %s; synced by %v\n", r.bound, r.by)
	}
	fmt.Fprintf(out, "  engine request rate:       %8.0f requests/s (%d requests, %.1f a meter)\n", rate, r.engineRequests, float64(r.engineRequests)/float64(max(r.fresh, 1)))
	if r.ceiling > 0 {
		fmt.Fprintf(out, "  ceiling at %d in flight:  %8.0f requests/s (same run, gap kept, %d failed): efficiency %.2f\n", r.ceilingAt, r.ceiling, r.ceilingErrors, rate/r.ceiling)
	}
	fmt.Fprintf(out, "  engine CPU:                %8.1f s, %.2f s per 1,000 meter-syncs; peak memory %s (goal ≤ 2 GiB)\n", r.cpu, perK(r.cpu), r.memory)
	fmt.Fprintf(out, "  PostgreSQL CPU:            %8.1f s, %.2f s per 1,000 meter-syncs (%.2f of a core over the wave; goal < 1)\n",
		r.pgCPU, perK(r.pgCPU), r.pgCPU/r.elapsed.Seconds())
	if r.nodes == 1 {
		fmt.Fprintf(out, "  database pool (shared):    %8d acquires of %d connections, %.1f%% waited for a connection, %.1f ms a wait on average\n", r.poolAcquires, r.poolSize,
			100*float64(r.poolWaits)/float64(max(r.poolAcquires, 1)), float64(r.poolWait.Microseconds())/1000/float64(max(r.poolWaits, 1)))
	}
	fmt.Fprintf(out, "  gap violations:            %8d (goal 0: %s); the simulator dropped %d, left %d unanswered, answered %d\n",
		r.sim.refused, goalMet(r.sim.refused == 0), r.sim.dropped, r.sim.unanswered, r.sim.answered)
	for _, v := range r.sim.violations {
		fmt.Fprintf(out, "    %s\n", v)
	}
	fmt.Fprintf(out, "  top-ups, POST to completed: p50 %5.1f s, p99 %5.1f s, %d of %d (goal p99 ≤ 30 s: %s)%s\n",
		percentile(r.topups, 50).Seconds(), percentile(r.topups, 99).Seconds(), len(r.topups), o.topups,
		goalMet(r.topupsLost == 0 && percentile(r.topups, 99) <= 30*time.Second), lastError(r.topupErrors))
	fmt.Fprintf(out, "  on-demand syncs, POST to read: p50 %5.1f s, p99 %5.1f s, %d of %d (goal p99 ≤ 30 s: %s)%s\n",
		percentile(r.syncs, 50).Seconds(), percentile(r.syncs, 99).Seconds(), len(r.syncs), o.syncs,
		goalMet(r.syncsLost == 0 && percentile(r.syncs, 99) <= 30*time.Second), lastError(r.syncError))
	fmt.Fprintf(out, "  cost: %.2f CPU-seconds per meter per month for the hourly sets (720 a month; engine and PostgreSQL)\n", r.monthlyCost())
}

func lastError(s string) string {
	if s == "" {
		return ""
	}
	return "; last error: " + s
}

// meterRequests returns how many meter requests the process's transport
// has made (its request histogram's count; a request's retries are one).
func meterRequests(svc *services) int64 {
	fams, err := svc.reg.Gather()
	if err != nil {
		return 0
	}
	var n uint64
	for _, f := range fams {
		if f.GetName() != "flows_meter_request_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			n += m.GetHistogram().GetSampleCount()
		}
	}
	return int64(n)
}

// fleetNode is a flows serve --components sync,commands child process of
// the fleet benchmark.
type fleetNode struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{} // closed when the process has exited
}

// lockedBuffer is a bytes.Buffer safe for a child's output and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// startFleetNode starts a flows serve child process with args (its log
// in the temporary directory, by name) and waits until it serves.
func startFleetNode(ctx context.Context, name string, args ...string) (*fleetNode, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	n := &fleetNode{out: &lockedBuffer{}, done: make(chan struct{})}
	n.cmd = exec.Command(self, append([]string{"serve"}, args...)...)
	n.cmd.Stdout = n.out
	logf, err := os.Create(filepath.Join(os.TempDir(), "flows-bench-"+name+".log"))
	if err != nil {
		return nil, err
	}
	n.cmd.Stderr = logf
	if err := n.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() { _ = n.cmd.Wait(); logf.Close(); close(n.done) }()
	for deadline := time.Now().Add(time.Minute); !strings.Contains(n.out.String(), "flows serving"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			n.stop()
			return nil, fmt.Errorf("%s did not start (its log: %s)", name, logf.Name())
		}
	}
	return n, nil
}

// grpcAddr is the address a started node's mediator listens on (from its
// "flows serving …; gRPC on ADDR" line).
func (n *fleetNode) grpcAddr() string {
	s := n.out.String()
	i := strings.Index(s, "gRPC on ")
	if i < 0 {
		return ""
	}
	return strings.Fields(s[i+len("gRPC on "):])[0]
}

// peakMemory is the node's peak resident memory.
func (n *fleetNode) peakMemory() string { return peakMemoryOf(strconv.Itoa(n.cmd.Process.Pid)) }

// stop ends the node (SIGTERM: a clean shutdown) and waits for it.
func (n *fleetNode) stop() {
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(40 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
}
