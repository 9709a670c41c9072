package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/cli"
	"github.com/flows-energy/flows/sim"
	"github.com/shopspring/decimal"
	"github.com/spf13/cobra"
)

type simConfig struct {
	meters int
	listen string
	// freePorts makes every meter listen on a free port of its address,
	// whatever listen or the state file says (the demo, when the default
	// ports are taken).
	freePorts   bool
	speed       float64
	state       string
	registryOut string
	faults      bool
	habits      bool
	latency     time.Duration
	// jitter, gap, dropRate and timeoutRate: the cellular link every
	// meter has (benchmarks): latency ± jitter, the meter's minimum gap
	// (sooner requests refused and counted), drops and unanswered requests.
	jitter, gap           time.Duration
	dropRate, timeoutRate float64
	// past, when above 0, starts a new fleet's model this long ago and
	// runs it forward to now at start (a state file's fleet keeps its own).
	past time.Duration
	// threePhase, when set, is the share of three-phase meters (nil keeps
	// the default two in 25).
	threePhase *float64
	// listening: a listener per meter, shared listeners, or whichever
	// the open-file limit allows ("" is auto).
	listening sim.Listening
	// dropPast: the meters live their past (cfg.past) but keep no
	// readings of it (only the demo seeds a database from them).
	dropPast bool
}

func newSimCmd() *cobra.Command {
	var cfg simConfig
	var threePhase float64
	cmd := &cobra.Command{
		Use:     "sim",
		Example: cli.Example("flows sim --meters 100 --listen 127.77:8080 --registry-out fleet.json"),
		Short:   "Run an emulated fleet of Emlite meters speaking EMOP over TCP",
		Long: `Run an emulated fleet of Emlite meters speaking EMOP over TCP, one request
per connection, each meter on its own loopback address.

The cellular link every meter has (for benchmarks):
  --latency 1s --jitter 300ms   each answer takes 0.7-1.3 s, uniformly
  --gap 2s                      a request that comes sooner than 2 s after the
                                meter's last answer, or while another request
                                to it is in progress, is refused: the
                                connection closes unanswered, as a real
                                meter's modem does, and is counted
  --drop-rate 0.005             that share of requests: the connection closes
                                after the request arrives, unanswered
  --timeout-rate 0.001          that share of requests is never answered: the
                                connection stays open until the client gives
                                up (at most 30 s)
On exit (SIGINT, SIGTERM) the simulator prints what it answered, refused,
dropped and left unanswered.

Listening: a listener per meter costs an open file and a goroutine each, so a
fleet bigger than the open-file limit allows (its soft limit is raised to the
hard one at start) is served from one listener per port on every loopback
address instead (--listeners shared, Linux): an offline meter's connections
are then reset rather than refused, and the port cannot be shared with
another process on any loopback address. Fleets beyond 64,000 meters take
the next prefixes (127.77, then 127.78, ...).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case cfg.latency < 0:
				return flows.FieldError("--latency", "%v is negative", cfg.latency)
			case cfg.jitter < 0 || cfg.jitter > cfg.latency:
				return flows.FieldError("--jitter", "%v is outside 0-%v (--latency)", cfg.jitter, cfg.latency)
			case cfg.gap < 0:
				return flows.FieldError("--gap", "%v is negative", cfg.gap)
			case cfg.dropRate < 0 || cfg.dropRate > 1:
				return flows.FieldError("--drop-rate", "%g is not a share between 0 and 1", cfg.dropRate)
			case cfg.timeoutRate < 0 || cfg.timeoutRate > 1-cfg.dropRate:
				return flows.FieldError("--timeout-rate", "%g is not a share between 0 and %g (1 - --drop-rate)", cfg.timeoutRate, 1-cfg.dropRate)
			}
			switch cfg.listening {
			case sim.ListenAuto, sim.ListenPerMeter, sim.ListenShared:
			default:
				return flows.FieldError("--listeners", "%q is not auto, per-meter or shared", cfg.listening)
			}
			if cmd.Flags().Changed("three-phase") {
				if threePhase < 0 || threePhase > 1 {
					return flows.FieldError("--three-phase", "%g is not a share between 0 and 1", threePhase)
				}
				cfg.threePhase = &threePhase
			}
			log := logger()
			if os.Getenv("GOMEMLIMIT") == "" {
				debug.SetMemoryLimit(sim.MemoryLimit)
			}
			// Only the demo seeds its database from the meters' past; here it
			// would keep gigabytes of readings alive (10,000 meters, 30 days).
			cfg.dropPast = true
			f, err := startSim(cmd.Context(), cfg, nil, log)
			if err != nil {
				return err
			}
			defer f.stop()
			debug.FreeOSMemory()
			how := "a listener each"
			if f.shared {
				how = "shared listeners"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "simulating %d meters (speed %gx, %s); registry in %s\n", len(f.fleet.Meters()), cfg.speed, how, cfg.registryOut)
			<-cmd.Context().Done()
			st := f.fleet.Stats()
			fmt.Fprintf(cmd.OutOrStdout(), "answered %d requests; refused %d sooner than the gap or during another; dropped %d; left %d unanswered\n",
				st.Answered, st.GapViolations, st.Dropped, st.TimedOut)
			for _, v := range f.fleet.Violations() {
				fmt.Fprintln(cmd.OutOrStdout(), violationLine(v))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&cfg.meters, "meters", 50, "number of meters (a state file keeps its own fleet)")
	fl.StringVar(&cfg.listen, "listen", "127.77:8080", "PREFIX:PORT: meter i listens on PREFIX.(i/250).(i%250+1):PORT, beyond 64,000 meters under the next prefix (port 0 = any free)")
	fl.Float64Var(&cfg.speed, "speed", 1, "simulated time runs this many times faster")
	fl.StringVar(&cfg.state, "state", "", "keep balances, registers and used tokens in this file across restarts")
	fl.StringVar(&cfg.registryOut, "registry-out", "", "write the fleet (serial, ip_address, port, hardware, key...) as JSON here")
	fl.BoolVar(&cfg.faults, "faults", true, "make a realistic few meters offline, flaky or slow")
	fl.BoolVar(&cfg.habits, "habits", true, "give each prepayment meter's customer a top-up habit (weekly, late, ration, holiday): forecasts, self-disconnections and alerts happen on their own")
	fl.DurationVar(&cfg.latency, "latency", 0, "every meter takes this long to answer (benchmarks)")
	fl.DurationVar(&cfg.jitter, "jitter", 0, "answers take --latency ± this, uniformly (at most --latency)")
	fl.DurationVar(&cfg.gap, "gap", 0, "every meter's minimum gap: a request sooner after its last answer, or during another, is refused unanswered and counted (real meters: 2s)")
	fl.Float64Var(&cfg.dropRate, "drop-rate", 0, "share of requests whose connection closes unanswered after the request arrives (0-1)")
	fl.Float64Var(&cfg.timeoutRate, "timeout-rate", 0, "share of requests never answered, held open until the client gives up or 30 s (0-1, with --drop-rate at most 1)")
	cfg.listening = sim.ListenAuto
	fl.StringVar((*string)(&cfg.listening), "listeners", string(sim.ListenAuto), "auto, per-meter or shared: a listener per meter, or one per port on every loopback address (auto: per meter while the open-file limit holds them)")
	fl.Float64Var(&threePhase, "three-phase", 0.08, "share of three-phase meters in a new fleet, 0-1 (default: two in 25, at indices 22 and 24 of each 25)")
	fl.DurationVar(&cfg.past, "past", 0, "start a new fleet's model this long ago and run it forward to now (e.g. 168h)")

	var registry, serial, amount string
	token := &cobra.Command{
		Use:     "token",
		Example: cli.Example("flows sim token --registry fleet.json --serial EML2137580826 --amount 10"),
		Short:   "Print a valid 20-digit top-up token for a simulated meter",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			specs, err := sim.ReadRegistry(registry)
			if err != nil {
				return flows.FieldError("--registry", "%v", err)
			}
			amt, err := decimal.NewFromString(amount)
			if err != nil {
				return flows.FieldError("--amount", "%q is not a decimal amount", amount)
			}
			for _, s := range specs {
				if s.Serial == serial {
					tok, err := sim.VendToken(s.Serial, s.Key, amt)
					if err != nil {
						return flows.FieldError("--amount", "%v", err)
					}
					fmt.Fprintln(cmd.OutOrStdout(), tok)
					return nil
				}
			}
			return flows.FieldError("--serial", "%s is not in %s", serial, registry)
		},
	}
	token.Flags().StringVar(&registry, "registry", "", "fleet registry JSON (flows sim --registry-out, or a demo ready-file)")
	token.Flags().StringVar(&serial, "serial", "", "meter serial")
	token.Flags().StringVar(&amount, "amount", "", "GBP, whole pence (e.g. 10.00)")
	for _, f := range []string{"registry", "serial", "amount"} {
		_ = token.MarkFlagRequired(f)
	}
	cmd.AddCommand(token)
	return cmd
}

// runningSim is a started fleet that saves its state periodically.
type runningSim struct {
	fleet  *sim.Fleet
	shared bool // served from shared listeners
	// past is each meter's simulated past (by serial) when the fleet was
	// made with one (simConfig.past); nil otherwise.
	past  map[string]sim.History
	state string
	log   *slog.Logger
	done  chan struct{}
	quit  context.CancelFunc
}

// startSim builds (or restores from the state file) and starts a fleet.
// specs, when given, replace generation (the demo generates its own).
func startSim(ctx context.Context, cfg simConfig, specs []sim.Spec, log *slog.Logger) (*runningSim, error) {
	if cfg.meters < 1 || cfg.meters > 100000 {
		return nil, flows.FieldError("--meters", "%d is outside 1-100000", cfg.meters)
	}
	if cfg.speed <= 0 || cfg.speed > 1e6 {
		return nil, flows.FieldError("--speed", "%g must be above 0 and at most 1000000", cfg.speed)
	}
	prefix, port, err := parseListen(cfg.listen)
	if err != nil {
		return nil, err
	}
	if room := sim.PrefixRoom(prefix); cfg.meters > room {
		return nil, flows.FieldError("--listen", "prefix %s has addresses for %d meters, not %d: choose a lower second octet", prefix, room, cfg.meters)
	}
	if cfg.state != "" {
		kept, err := sim.StateSpecs(cfg.state)
		if err != nil {
			return nil, flows.FieldError("--state", "%v", err)
		}
		if kept != nil {
			specs = kept
		}
	}
	if specs == nil {
		secret := make([]byte, 32)
		_, _ = rand.Read(secret)
		opts := sim.FleetOptions{AddressPrefix: prefix, Port: port, Secret: secret, Faults: cfg.faults, Habits: cfg.habits}
		opts.ThreePhaseShare = cfg.threePhase
		specs = sim.GenerateFleet(cfg.meters, opts)
	}
	if cfg.freePorts {
		for i := range specs {
			specs[i].Port = 0
		}
	}
	if cfg.latency > 0 || cfg.gap > 0 || cfg.dropRate > 0 || cfg.timeoutRate > 0 {
		for i := range specs {
			fl := &specs[i].Faults
			if cfg.latency > 0 {
				fl.LatencyMin, fl.LatencyMax = cfg.latency-cfg.jitter, cfg.latency+cfg.jitter
			}
			fl.MinGap, fl.DropRate, fl.TimeoutRate = cfg.gap, cfg.dropRate, cfg.timeoutRate
		}
	}
	meters, simTime, past, err := loadMeters(cfg, specs)
	if err != nil {
		return nil, err
	}
	base := time.Now().UTC()
	if simTime.After(base) {
		base = simTime
	}
	fleet := sim.NewFleet(meters, sim.NewScaledClock(base, cfg.speed), log)
	limit := raiseFileLimit(log, 0)
	shared, warning, err := sim.PlanListening(cfg.listening, sim.Served(specs), limit)
	if err != nil {
		return nil, flows.FieldError("--listeners", "%v", err)
	}
	if warning != "" {
		log.Warn(warning)
	}
	fleet.SetShared(shared)
	if err := fleet.Start(ctx); err != nil {
		return nil, err
	}
	var out []sim.Spec
	for _, m := range fleet.Meters() {
		out = append(out, m.Spec)
	}
	if cfg.registryOut != "" {
		if err := sim.WriteRegistry(cfg.registryOut, out); err != nil {
			fleet.Stop()
			return nil, flows.FieldError("--registry-out", "%v", err)
		}
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &runningSim{fleet: fleet, shared: shared, past: past, state: cfg.state, log: log, done: make(chan struct{}), quit: cancel}
	go r.saveLoop(rctx)
	return r, nil
}

// loadMeters restores the fleet from its state file or makes it new, with
// a simulated past when cfg.past asks for one and there is no state yet.
func loadMeters(cfg simConfig, specs []sim.Spec) ([]*sim.Meter, time.Time, map[string]sim.History, error) {
	now := time.Now().UTC()
	fresh := cfg.state == ""
	if !fresh {
		_, err := os.Stat(cfg.state)
		fresh = errors.Is(err, os.ErrNotExist)
	}
	if cfg.past <= 0 || !fresh {
		meters, simTime, err := sim.LoadMeters(specs, cfg.state, now)
		if err != nil {
			return nil, time.Time{}, nil, flows.FieldError("--state", "%v", err)
		}
		return meters, simTime, nil, nil
	}
	if cfg.dropPast {
		meters := make([]*sim.Meter, len(specs))
		for i, s := range specs {
			m, err := sim.RunPast(s, now, cfg.past, time.Hour)
			if err != nil {
				return nil, time.Time{}, nil, err
			}
			meters[i] = m
		}
		return meters, now, nil, nil
	}
	meters := make([]*sim.Meter, len(specs))
	past := map[string]sim.History{}
	for i, s := range specs {
		// Offline meters stopped answering between 4 and 29 hours ago.
		// Hourly, as the live balance and signal syncs read.
		m, h, err := sim.NewMeterWithPast(s, now, cfg.past, time.Hour, 4*time.Hour+time.Duration(i%6)*5*time.Hour)
		if err != nil {
			return nil, time.Time{}, nil, err
		}
		meters[i], past[s.Serial] = m, h
	}
	return meters, now, past, nil
}

func (r *runningSim) saveLoop(ctx context.Context) {
	defer close(r.done)
	if r.state == "" {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.fleet.SaveState(r.state); err != nil {
				r.log.Error("saving simulator state", "error", err)
			}
		}
	}
}

// stop stops serving and saves the state a last time.
func (r *runningSim) stop() {
	r.quit()
	<-r.done
	r.fleet.Stop()
	if r.state != "" {
		if err := r.fleet.SaveState(r.state); err != nil {
			r.log.Error("saving simulator state", "error", err)
		}
	}
}

// parseListen splits "127.77:8080" into a two-octet loopback prefix and a port.
func parseListen(s string) (string, int, error) {
	prefix, portText, ok := strings.Cut(s, ":")
	port, err := strconv.Atoi(portText)
	parts := strings.Split(prefix, ".")
	if !ok || err != nil || port < 0 || port > 65535 || len(parts) != 2 || net.ParseIP(prefix+".0.1") == nil || !net.ParseIP(prefix+".0.1").IsLoopback() {
		return "", 0, flows.FieldError("--listen", "%q is not PREFIX:PORT with a loopback prefix like 127.77:8080", s)
	}
	return prefix, port, nil
}

// violationPrefix starts each gap violation's line in flows sim's exit
// report (a benchmark reads them back).
const violationPrefix = "gap violation: "

// line is how flows sim reports one gap violation.
func violationLine(v sim.Violation) string {
	during := ""
	if v.During {
		during = ", during another request"
	}
	return fmt.Sprintf("%s%s at %s, %v after its last answer%s", violationPrefix, v.Serial, v.Arrived.Format("15:04:05.000"), v.Since.Round(time.Millisecond), during)
}
