package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/cli"
	"github.com/flows-energy/flows/internal/pgembed"
	"github.com/flows-energy/flows/postgres"
	"github.com/spf13/cobra"
)

// flows bench intervals: half-hourly interval data at a fleet's size, in
// a private database — the write path against a plain COPY, then reads
// at 50 M derived half hours (generated), bytes on disk, and the seed's
// history queries at a proportionate size.

const halfHour = 30 * time.Minute

// The seed's two history queries (the Meter Domain specification,
// verbatim: "Get balance history for last 7 days" and "Daily balance
// summary"), run with {{meter_id}} replaced as its users run them.
const (
	seedHistory7Days = `-- Get balance history for last 7 days
SELECT timestamp, balance, emergency_credit
FROM flows.meter_prepay_balance
WHERE meter_id = '{{meter_id}}'
  AND timestamp > NOW() - INTERVAL '7 days'
ORDER BY timestamp DESC;`
	seedDailySummary = `-- Daily balance summary
SELECT 
    DATE(timestamp) as day,
    MIN(balance) as min_balance,
    MAX(balance) as max_balance,
    AVG(balance) as avg_balance
FROM flows.meter_prepay_balance
WHERE meter_id = '{{meter_id}}'
  AND timestamp > NOW() - INTERVAL '30 days'
GROUP BY DATE(timestamp)
ORDER BY day DESC;`
)

// intervalsOptions are flows bench intervals' flags.
type intervalsOptions struct {
	meters, profileMeters, insertRows, writers, runs int
	rows                                             int64
}

// twinEvery makes every fourth generated meter twin-element, as in the
// simulated fleet.
const twinEvery = 4

func newBenchIntervalsCmd() *cobra.Command {
	var o intervalsOptions
	cmd := &cobra.Command{
		Use:     "intervals",
		Example: cli.Example("flows bench intervals --rows 5000000"),
		Short:   "Time interval writes against COPY, and reads at 50 M half hours, in a private database",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case o.meters < 1:
				return flows.FieldError("--meters", "must be positive")
			case o.profileMeters < 1 || o.profileMeters > o.meters:
				return flows.FieldError("--profile-meters", "%d is outside 1-%d (--meters)", o.profileMeters, o.meters)
			case o.insertRows < 1000:
				return flows.FieldError("--insert-rows", "must be at least 1000")
			case o.writers < 1:
				return flows.FieldError("--writers", "must be positive")
			case o.runs < 1:
				return flows.FieldError("--runs", "must be positive")
			case o.rows < 0:
				return flows.FieldError("--rows", "must not be negative")
			}
			return benchIntervals(cmd, o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.meters, "meters", 10000, "meters of the generated ESCO (every fourth twin-element)")
	f.Int64Var(&o.rows, "rows", 50_000_000, "derived half hours to generate (whole days for every register; at least 31 days)")
	f.IntVar(&o.profileMeters, "profile-meters", 1000, "meters whose raw profile records are generated too (the per-meter intervals read them)")
	f.IntVar(&o.insertRows, "insert-rows", 200_000, "half hours written through the write path, and COPYed, for the insert rate")
	f.IntVar(&o.writers, "writers", 8, "concurrent meters written through the write path")
	f.IntVar(&o.runs, "runs", 50, "runs of each query (the median is printed)")
	return cmd
}

func benchIntervals(cmd *cobra.Command, o intervalsOptions) error {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	db, err := startBenchDB(ctx, o.writers+4)
	if err != nil {
		return err
	}
	defer db.cleanup()
	store := db.store
	if _, err := store.CreateESCO(ctx, "BENCH", "Benchmark"); err != nil {
		return err
	}
	g, err := generateIntervalData(ctx, out, store, o)
	if err != nil {
		return err
	}
	if err := g.printSizes(ctx, out, store); err != nil {
		return err
	}
	if err := g.timeReads(ctx, out, store, o.runs); err != nil {
		return err
	}
	return benchIntervalWrites(ctx, out, store, o, g.today)
}

// generatedData is what generateIntervalData made.
type generatedData struct {
	fleet                       *postgres.BenchFleet
	profileMeters               []string
	days                        int
	from, today                 time.Time
	intervals, profile, balance int64
}

// generateIntervalData fills the database as a fleet of o.meters would
// have it after days of collection: o.rows derived half hours (whole UTC
// days up to today for every register), their day totals, the raw
// profile of o.profileMeters meters, and hourly balance history for every
// meter (as the hourly sync writes it) over the same days.
func generateIntervalData(ctx context.Context, out io.Writer, store *postgres.Store, o intervalsOptions) (*generatedData, error) {
	t0 := time.Now()
	registers := o.meters + (o.meters+twinEvery-2)/twinEvery // one per meter, two per twin
	days := max(31, int((o.rows+int64(registers)*48-1)/(int64(registers)*48)))
	now := time.Now().UTC()
	g := &generatedData{days: days, today: now.Truncate(24 * time.Hour)}
	g.from = g.today.AddDate(0, 0, -days)
	if err := store.PrepareMonthPartitions(ctx, g.from, now); err != nil {
		return nil, err
	}
	var err error
	if g.fleet, err = store.GenerateBenchFleet(ctx, "BENCH", o.meters, 0, twinEvery, g.from); err != nil {
		return nil, err
	}
	g.profileMeters = g.fleet.MeterIDs[:o.profileMeters]
	fmt.Fprintf(out, "generating %d days for %d meters (%d registers) …\n", days, len(g.fleet.MeterIDs), len(g.fleet.RegisterIDs))
	// The bar counts steps: a day of intervals, a batch of profiles, a
	// batch of balance histories.
	bar := cli.NewProgress(out, "generating", days+(len(g.profileMeters)+249)/250+(len(g.fleet.MeterIDs)+499)/500)
	defer bar.Done()
	if g.intervals, err = store.GenerateIntervals(ctx, g.fleet.RegisterIDs, g.from, g.today, func() { bar.Add(1) }); err != nil {
		return nil, err
	}
	for lo := 0; lo < len(g.profileMeters); lo += 250 {
		n, err := store.GenerateProfile(ctx, g.profileMeters[lo:min(lo+250, len(g.profileMeters))], g.from, g.today)
		if err != nil {
			return nil, err
		}
		g.profile += n
		bar.Add(1)
	}
	for lo := 0; lo < len(g.fleet.MeterIDs); lo += 500 {
		n, err := store.GenerateBalanceHistory(ctx, g.fleet.MeterIDs[lo:min(lo+500, len(g.fleet.MeterIDs))], now.AddDate(0, 0, -days), now, time.Hour)
		if err != nil {
			return nil, err
		}
		g.balance += n
		bar.Add(1)
	}
	bar.Done()
	loaded := time.Since(t0)
	for _, t := range []string{"register_interval_hh", "register_interval_day", "meter_profile", "meter_prepay_balance"} {
		if err := store.VacuumAnalyze(ctx, t); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(out, "  %d register_interval_hh, %d meter_profile, %d meter_prepay_balance rows: loaded in %.0f s, vacuumed and analyzed in %.0f s\n",
		g.intervals, g.profile, g.balance, loaded.Seconds(), (time.Since(t0) - loaded).Seconds())
	return g, nil
}

// printSizes prints the bytes on disk per meter-year of data.
func (g *generatedData) printSizes(ctx context.Context, out io.Writer, store *postgres.Store) error {
	size := map[string]int64{}
	for _, t := range []string{"register_interval_hh", "register_interval_day", "meter_profile", "meter_prepay_balance"} {
		n, err := store.TableBytes(ctx, t)
		if err != nil {
			return err
		}
		size[t] = n
	}
	years := float64(g.days) / 365.25
	perMeterYear := func(bytes int64, meters int) string {
		return fmt.Sprintf("%.2f MB", float64(bytes)/float64(meters)/years/1e6)
	}
	meters := len(g.fleet.MeterIDs)
	derived := size["register_interval_hh"] + size["register_interval_day"]
	fmt.Fprintf(out, "bytes on disk (tables, indexes, all partitions), per meter-year (%.2f registers a meter):\n", float64(len(g.fleet.RegisterIDs))/float64(meters))
	fmt.Fprintf(out, "  derived intervals:        %s (register_interval_hh %.2f GB, register_interval_day %.0f MB; %.0f bytes a half hour)\n",
		perMeterYear(derived, meters), float64(size["register_interval_hh"])/1e9, float64(size["register_interval_day"])/1e6, float64(derived)/float64(g.intervals))
	fmt.Fprintf(out, "  raw profile records:      %s (meter_profile %.2f GB for %d meters)\n",
		perMeterYear(size["meter_profile"], len(g.profileMeters)), float64(size["meter_profile"])/1e9, len(g.profileMeters))
	fmt.Fprintf(out, "  both:                     %s\n",
		fmt.Sprintf("%.2f MB", float64(derived)/float64(meters)/years/1e6+float64(size["meter_profile"])/float64(len(g.profileMeters))/years/1e6))
	fmt.Fprintf(out, "  hourly balance history:   %s (meter_prepay_balance %.2f GB)\n", perMeterYear(size["meter_prepay_balance"], meters), float64(size["meter_prepay_balance"])/1e9)
	return nil
}

// timeReads times the reads at this size, median of runs each.
func (g *generatedData) timeReads(ctx context.Context, out io.Writer, store *postgres.Store, runs int) error {
	monthFrom, monthTo := g.today.AddDate(0, 0, -30), g.today
	pick := func(ids []string) string { return ids[rand.IntN(len(ids))] }
	fmt.Fprintf(out, "reads at %d derived half hours (median of %d runs, random meters; slowest in brackets):\n", g.intervals, runs)
	line := func(what string, med, worst time.Duration, goal time.Duration) {
		fmt.Fprintf(out, "  %-38s %8.2f ms (%.1f) goal < %v: %s\n", what, ms(med), ms(worst), goal, goalMet(med < goal))
	}
	med, worst, err := timeRuns(runs, func(int) error {
		pts, err := store.Intervals(ctx, pick(g.profileMeters), monthFrom, monthTo, flows.BucketHalfHour)
		if err == nil && len(pts) < 30*48 {
			err = fmt.Errorf("a meter-month gave %d half hours", len(pts))
		}
		return err
	})
	if err != nil {
		return err
	}
	line("one meter-month, Store.Intervals hh:", med, worst, 10*time.Millisecond)
	if med, worst, err = timeRuns(runs, func(int) error {
		n, err := store.RegisterMonth(ctx, pick(g.fleet.RegisterIDs), monthFrom, monthTo)
		if err == nil && n != 30*48 {
			err = fmt.Errorf("a register-month gave %d half hours", n)
		}
		return err
	}); err != nil {
		return err
	}
	line("one register-month, plain select:", med, worst, 10*time.Millisecond)
	if med, worst, err = timeRuns(runs, func(int) error {
		t, err := store.ESCODailyTotals(ctx, "BENCH", monthFrom, monthTo)
		if err == nil && len(t) != 30*2 {
			err = fmt.Errorf("daily totals gave %d rows", len(t))
		}
		return err
	}); err != nil {
		return err
	}
	line(fmt.Sprintf("ESCO daily totals, %d meters, 30 days:", len(g.fleet.MeterIDs)), med, worst, time.Second)
	for _, q := range []struct{ name, sql string }{{"seed's 7-day balance history:", seedHistory7Days}, {"seed's 30-day daily balance summary:", seedDailySummary}} {
		if med, worst, err = timeRuns(runs, func(int) error {
			n, err := store.QueryCount(ctx, strings.ReplaceAll(q.sql, "{{meter_id}}", pick(g.fleet.MeterIDs)))
			if err == nil && n == 0 {
				err = fmt.Errorf("%s no rows", q.name)
			}
			return err
		}); err != nil {
			return err
		}
		line(q.name, med, worst, 10*time.Millisecond)
	}
	fmt.Fprintf(out, "  (balance history: %d rows, hourly for %d meters over %d days)\n", g.balance, len(g.fleet.MeterIDs), g.days)
	return nil
}

// benchIntervalWrites writes o.insertRows half hours through Flows' write
// path — profile records of single-element meters through
// StoreProfileRead, o.writers meters at a time — at the two batch sizes
// collection writes: a backfill run's (30 days a transaction: a run of a
// minute covers a meter's whole backlog at the benchmark's 20 ms latency)
// and a day's (the daily read; a backfill run at cellular latency). It
// COPYs the backfill's derived rows into a table of register_interval_hh's
// shape and prints each rate beside COPY's.
func benchIntervalWrites(ctx context.Context, out io.Writer, store *postgres.Store, o intervalsOptions, today time.Time) error {
	const runHH = 30 * 48
	runMeters := max(1, o.insertRows/runHH)
	w := flowsWrite{store: store, meters: runMeters, perMeter: runHH, writers: o.writers, today: today}
	runTime, registers, derived, err := w.run(ctx, "WRITE", o.meters+1000, runHH)
	if err != nil {
		return err
	}
	const dayMeters = 1000
	d := flowsWrite{store: store, meters: dayMeters, perMeter: max(48, o.insertRows/dayMeters), writers: o.writers, today: today}
	dayTime, _, dayDerived, err := d.run(ctx, "DAY", o.meters+1000+runMeters, 48)
	if err != nil {
		return err
	}
	rows, err := store.IntervalRows(ctx, registers)
	if err != nil {
		return err
	}
	if err := store.CreateIntervalCopyTable(ctx); err != nil {
		return err
	}
	defer func() { _ = store.DropIntervalCopyTable(context.WithoutCancel(ctx)) }()
	t0 := time.Now()
	copied, err := store.CopyIntervals(ctx, rows)
	if err != nil {
		return err
	}
	copyTime := time.Since(t0)
	runRate, dayRate, copyRate := float64(derived)/runTime.Seconds(), float64(dayDerived)/dayTime.Seconds(), float64(copied)/copyTime.Seconds()
	fmt.Fprintf(out, "insert rate into register_interval_hh, same database, %d writers:\n", o.writers)
	fmt.Fprintf(out, "  plain COPY, same rows:    %8.0f rows/s (%.1f s for %d rows, one COPY into a table of the same shape)\n", copyRate, copyTime.Seconds(), copied)
	fmt.Fprintf(out, "  backfill run, 30 days a transaction: %8.0f rows/s (%.1f s for %d derived, %d meters): %.2f of COPY (goal ≥ 0.3): %s\n",
		runRate, runTime.Seconds(), derived, runMeters, runRate/copyRate, goalMet(runRate/copyRate >= 0.3))
	fmt.Fprintf(out, "  daily read, a day a transaction:     %8.0f rows/s (%.1f s for %d derived, %d meters): %.2f of COPY\n",
		dayRate, dayTime.Seconds(), dayDerived, dayMeters, dayRate/copyRate)
	return nil
}

// flowsWrite writes profile records through the store as collection does.
type flowsWrite struct {
	store                     *postgres.Store
	meters, perMeter, writers int
	today                     time.Time
}

// run registers w.meters single-element meters in a new ESCO (serials
// from first) and writes each one's records for the w.perMeter half hours
// before today, batchHH half hours of both logs a transaction, w.writers
// meters at a time. It returns the time the writes took, the meters'
// registers and the intervals derived.
func (w flowsWrite) run(ctx context.Context, esco string, first, batchHH int) (time.Duration, []string, int64, error) {
	if _, err := w.store.CreateESCO(ctx, esco, "Write benchmark"); err != nil {
		return 0, nil, 0, err
	}
	from := w.today.Add(-time.Duration(w.perMeter) * halfHour)
	fleet, err := w.store.GenerateBenchFleet(ctx, esco, w.meters, first, 0, from)
	if err != nil {
		return 0, nil, 0, err
	}
	// Records 0 … perMeter of each meter: perMeter half hours.
	batches := make([][][]flows.ProfileRecord, w.meters)
	for m := range w.meters {
		wh := uint32(1_000_000 + m)
		var batch []flows.ProfileRecord
		for k := 0; k <= w.perMeter; k++ {
			at := from.Add(time.Duration(k) * halfHour)
			ia, ea, v, q := wh, uint32(0), uint16(2400), uint32(0)
			batch = append(batch, flows.ProfileRecord{At: at, Status: flows.ProfileValidData, ImportA: &ia},
				flows.ProfileRecord{At: at, Status: flows.ProfileValidData, ExportA: &ea, Voltage: &v, Reactive: &q})
			wh += uint32(100 + (m+k)%400)
			if len(batch) == 2*batchHH || k == w.perMeter {
				batches[m], batch = append(batches[m], batch), nil
			}
		}
	}
	var derived, next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	t0 := time.Now()
	for range w.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := int(next.Add(1) - 1); m < w.meters; m = int(next.Add(1) - 1) {
				for _, b := range batches[m] {
					n, err := w.store.StoreProfileRead(ctx, fleet.MeterIDs[m], b, nil)
					if err != nil {
						errOnce.Do(func() { firstErr = err })
						return
					}
					derived.Add(int64(n))
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(t0), fleet.RegisterIDs, derived.Load(), firstErr
}

// benchDB is a private, migrated database in a temporary directory.
type benchDB struct {
	store   *postgres.Store
	dir     string
	cluster *pgembed.Cluster
	cleanup func()
}

// postgresCPU returns the CPU seconds (user + system) this database's
// server has used: its postmaster with the children it has reaped, and
// the children still running (read from /proc; other clusters on the
// machine are not counted).
func (db *benchDB) postgresCPU() float64 { return clusterCPU(db.cluster) }

// clusterCPU is benchDB.postgresCPU for any cluster: the benchmarks that
// run beside tests (or another benchmark's database) count only their own
// server, not every process named postgres.
func clusterCPU(cluster *pgembed.Cluster) float64 {
	b, err := os.ReadFile(filepath.Join(cluster.Dir(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	pm, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	var total float64
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+2:]) // from the state (field 3)
		if len(f) < 15 {
			continue
		}
		pid, _ := strconv.Atoi(strings.Fields(s)[0])
		ppid, _ := strconv.Atoi(f[1])
		ticks := func(i int) float64 { v, _ := strconv.ParseFloat(f[i], 64); return v / 100 } // USER_HZ = 100
		switch {
		case pid == pm:
			total += ticks(11) + ticks(12) + ticks(13) + ticks(14) // utime, stime, cutime, cstime
		case ppid == pm:
			total += ticks(11) + ticks(12)
		}
	}
	return total
}

// benchPGSettings size a benchmark's PostgreSQL as a production database
// for a fleet would be sized (the demo's and the tests' keep PostgreSQL's
// defaults): shared buffers for the hot partitions' indexes (the default
// 128 MB is about a tenth of one month of 10,000 meters' intervals) and
// checkpoints spaced for a bulk load. The README says so beside the
// figures.
var benchPGSettings = map[string]string{"shared_buffers": "2GB", "max_wal_size": "8GB", "checkpoint_timeout": "30min"}

func startBenchDB(ctx context.Context, poolSize int) (_ *benchDB, err error) {
	var cleanups []func()
	db := &benchDB{cleanup: func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}}
	defer func() {
		if err != nil {
			db.cleanup()
		}
	}()
	if db.dir, err = os.MkdirTemp("", "flows-bench-"); err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func() { os.RemoveAll(db.dir) })
	_ = os.Chmod(db.dir, 0o755)
	cluster, err := pgembed.Start(ctx, pgembed.Config{Dir: filepath.Join(db.dir, "pg"), Settings: benchPGSettings})
	if err != nil {
		return nil, err
	}
	db.cluster = cluster
	cleanups = append(cleanups, func() { _ = cluster.Stop() })
	if err := postgres.CreateDatabase(ctx, cluster.URL("postgres"), "flows"); err != nil {
		return nil, err
	}
	pool, err := postgres.Open(ctx, cluster.URL("flows")+"&pool_max_conns="+strconv.Itoa(poolSize))
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, pool.Close)
	if _, err := postgres.Migrate(ctx, pool); err != nil {
		return nil, err
	}
	db.store = postgres.NewStore(pool)
	return db, nil
}

// median returns the middle of ds (which it sorts).
func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// timeRuns runs fn n times and returns the median and the slowest.
func timeRuns(n int, fn func(i int) error) (time.Duration, time.Duration, error) {
	ds := make([]time.Duration, 0, n)
	for i := range n {
		t0 := time.Now()
		if err := fn(i); err != nil {
			return 0, 0, err
		}
		ds = append(ds, time.Since(t0))
	}
	med := median(ds)
	return med, ds[len(ds)-1], nil
}

// goalMet says whether a figure meets its goal, for the printed lines.
func goalMet(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}
