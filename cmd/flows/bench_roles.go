package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/cli"
	"github.com/flows-energy/flows/postgres"
	"github.com/shopspring/decimal"
	"github.com/spf13/cobra"
)

// flows bench roles: what row-level security (migration 0016) costs. The
// seed's two history queries, verbatim, as the owner (the services' role,
// which the policies never apply to) and as logins of flows db grant, one
// after the other on the same meters; then the sync engine's write path,
// as the owner, with the policies and their triggers (0016, 0020) on and off.

type rolesOptions struct {
	meters, days, runs, writeMeters, writeRounds int
	explain                                      bool
}

func newBenchRolesCmd() *cobra.Command {
	var o rolesOptions
	cmd := &cobra.Command{
		Use:     "roles",
		Example: cli.Example("flows bench roles"),
		Short:   "Time the seed's history queries as the owner and as ESCO-scoped logins, and the sync write path with RLS on and off",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case o.meters < 2:
				return flows.FieldError("--meters", "at least 2 (two ESCOs)")
			case o.days < 31:
				return flows.FieldError("--days", "at least 31 (the seed's 30-day summary)")
			case o.runs < 1:
				return flows.FieldError("--runs", "must be positive")
			case o.writeMeters < 1 || o.writeMeters > o.meters:
				return flows.FieldError("--write-meters", "%d is outside 1-%d (--meters)", o.writeMeters, o.meters)
			case o.writeRounds < 1:
				return flows.FieldError("--write-rounds", "must be positive")
			}
			return benchRoles(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.meters, "meters", 1000, "meters, half in each of two ESCOs")
	f.IntVar(&o.days, "days", 90, "days of half-hourly balance history per meter (1000 meters × 90 days: 4.32 M rows)")
	f.IntVar(&o.runs, "runs", 300, "runs of each query as each role (the median is printed)")
	f.IntVar(&o.writeMeters, "write-meters", 500, "meters whose syncs are written per round of the write path")
	f.IntVar(&o.writeRounds, "write-rounds", 10, "rounds of the write path, alternately with RLS off and on")
	f.BoolVar(&o.explain, "explain", false, "print each query's plan as the owner and as the ESCO login")
	return cmd
}

func benchRoles(ctx context.Context, out io.Writer, opts rolesOptions) error {
	o := opts
	db, err := startBenchDB(ctx, 8)
	if err != nil {
		return err
	}
	defer db.cleanup()
	store := db.store
	now := time.Now().UTC()
	from := now.AddDate(0, 0, -o.days)
	half := o.meters / 2
	var fleets [2]*postgres.BenchFleet
	for i, code := range []string{"BENCH_A", "BENCH_B"} {
		if _, err := store.CreateESCO(ctx, code, "Benchmark "+code); err != nil {
			return err
		}
		if fleets[i], err = store.GenerateBenchFleet(ctx, code, half, i*half, 0, from); err != nil {
			return err
		}
	}
	if err := store.PrepareMonthPartitions(ctx, from, now.AddDate(0, 1, 0)); err != nil {
		return err
	}
	t0 := time.Now()
	var rows int64
	for _, f := range fleets {
		for lo := 0; lo < len(f.MeterIDs); lo += 100 {
			n, err := store.GenerateBalanceHistory(ctx, f.MeterIDs[lo:min(lo+100, len(f.MeterIDs))], from, now, 30*time.Minute)
			if err != nil {
				return err
			}
			rows += n
		}
	}
	if err := store.VacuumAnalyze(ctx, "meter_prepay_balance"); err != nil {
		return err
	}
	if err := store.VacuumAnalyzeRegistry(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "generated %d balance rows (%d meters in 2 ESCOs, %d days half-hourly) in %v\n", rows, 2*half, o.days, time.Since(t0).Round(time.Second))

	ownerURL := store.Pool().Config().ConnString()
	scoped, cleanScoped, err := benchLogin(ctx, store, ownerURL, "bench_esco_a", "BENCH_A")
	if err != nil {
		return err
	}
	defer cleanScoped()
	every, cleanEvery, err := benchLogin(ctx, store, ownerURL, "bench_every_esco", "")
	if err != nil {
		return err
	}
	defer cleanEvery()

	// One after the other on the same meter, in turn first, so that the
	// machine's noise falls on all three alike.
	roles := []struct {
		name  string
		store *postgres.Store
	}{{"owner", store}, {"ESCO login", scoped}, {"all-ESCO login", every}}
	fmt.Fprintf(out, "the seed's history queries, verbatim, on random meters of BENCH_A (median of %d runs, ms):\n", o.runs)
	fmt.Fprintf(out, "  %-30s %10s %12s %16s %10s\n", "", "owner", "ESCO login", "all-ESCO login", "ESCO/owner")
	for _, q := range []struct{ name, sql string }{{"7-day balance history", seedHistory7Days}, {"30-day daily summary", seedDailySummary}} {
		ds := make([][]time.Duration, len(roles))
		for i := range o.runs + 10 {
			sql := strings.ReplaceAll(q.sql, "{{meter_id}}", fleets[0].MeterIDs[rand.IntN(half)])
			var want int
			for k := range roles {
				r := roles[(i+k)%len(roles)]
				t := time.Now()
				n, err := r.store.QueryCount(ctx, sql)
				if err != nil {
					return fmt.Errorf("%s as %s: %w", q.name, r.name, err)
				}
				if k == 0 {
					want = n
				} else if n != want || n == 0 {
					return fmt.Errorf("%s: %s got %d rows, another role %d", q.name, r.name, n, want)
				}
				if i >= 10 { // the first runs warm the caches and the sessions
					ds[(i+k)%len(roles)] = append(ds[(i+k)%len(roles)], time.Since(t))
				}
			}
		}
		if opts.explain {
			sql := strings.ReplaceAll(q.sql, "{{meter_id}}", fleets[0].MeterIDs[0])
			for _, r := range roles[:2] {
				plan, err := r.store.ExplainAnalyze(ctx, sql)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "%s as %s:\n%s\n", q.name, r.name, plan)
			}
		}
		o, s, a := median(ds[0]), median(ds[1]), median(ds[2])
		ratio := float64(s) / float64(o)
		fmt.Fprintf(out, "  %-30s %10.2f %12.2f %16.2f %9.2fx  goal ≤ 1.5x, < 10 ms: %s\n", q.name+":", ms(o), ms(s), ms(a), ratio,
			goalMet(ratio <= 1.5 && s < 10*time.Millisecond && o < 10*time.Millisecond))
	}
	// And what another ESCO's login gets of these meters: nothing.
	other, cleanOther, err := benchLogin(ctx, store, ownerURL, "bench_esco_b", "BENCH_B")
	if err != nil {
		return err
	}
	defer cleanOther()
	if n, err := other.QueryCount(ctx, strings.ReplaceAll(seedHistory7Days, "{{meter_id}}", fleets[0].MeterIDs[0])); err != nil || n != 0 {
		return fmt.Errorf("BENCH_B's login read %d rows of a BENCH_A meter (%v)", n, err)
	}
	fmt.Fprintln(out, "  (BENCH_B's login gets 0 rows from the same queries on BENCH_A's meters)")
	return benchRolesWrites(ctx, out, store, fleets[0].MeterIDs[:min(o.writeMeters, half)], o.writeRounds, now)
}

// benchLogin grants a read-only login and opens a store as it.
func benchLogin(ctx context.Context, owner *postgres.Store, ownerURL, name, esco string) (*postgres.Store, func(), error) {
	password, err := owner.GrantSQLLogin(ctx, postgres.SQLLoginSpec{Name: name, Access: postgres.SQLReadonly, ESCO: esco})
	if err != nil {
		return nil, nil, err
	}
	u, err := postgres.LoginURL(ownerURL, name, password)
	if err != nil {
		return nil, nil, err
	}
	pool, err := postgres.Open(ctx, u)
	if err != nil {
		return nil, nil, err
	}
	s := postgres.NewStore(pool)
	return s, func() {
		s.Close()
		_, _ = owner.RevokeSQLLogin(context.Background(), name)
	}, nil
}

// benchRolesWrites times the sync engine's write path (Store.ApplySyncs,
// groups of 50 meters, the hourly values and a future tariff as a
// 12-hourly read writes it) as the owner, alternately with row-level
// security and its triggers (0016's, 0020's) off and on.
func benchRolesWrites(ctx context.Context, out io.Writer, store *postgres.Store, meters []string, rounds int, now time.Time) error {
	dec := func(s string) *decimal.Decimal { d := decimal.RequireFromString(s); return &d }
	csq, health, activation := 20, flows.HealthHealthy, "2030-01-01T00:00:00"
	tariff := &flows.Tariff{StandingCharge: dec("0.5868"), UnitRateElementA: dec("0.2843"), UnitRateElementB: dec("0.15"),
		PrepaymentECreditAvailability: dec("10"), PrepaymentDebtRecoveryRate: dec("0.25"), PrepaymentEmergencyCredit: dec("15"),
		ActivationDatetime: &activation}
	round := func(r int) (time.Duration, error) {
		at := now.Add(time.Duration(r+1) * time.Minute)
		t := time.Now()
		for lo := 0; lo < len(meters); lo += 50 {
			var rs []flows.SyncResult
			for _, id := range meters[lo:min(lo+50, len(meters))] {
				rs = append(rs, flows.SyncResult{MeterID: id, At: at, Reached: true, TouchHealth: true,
					Groups: []string{"balance", "csq", "voltage", "tariffs_future"},
					Shadow: flows.ShadowUpdate{Balance: dec(fmt.Sprintf("%d.5", 20+r)), EmergencyCredit: dec("15"), CSQ: &csq,
						Voltage: dec("239.5"), Health: &health, TariffsFuture: tariff}})
			}
			skipped, err := store.ApplySyncs(ctx, rs, string(flows.Hourly), "bench")
			if err != nil {
				return 0, err
			}
			if len(skipped) > 0 {
				return 0, fmt.Errorf("sync write skipped: %v", skipped[0].Err)
			}
		}
		return time.Since(t), nil
	}
	if _, err := round(-1); err != nil { // warm
		return err
	}
	var on, off []time.Duration
	for r := range rounds {
		rls := r%2 == 1
		if _, err := store.SetRowSecurityForBench(ctx, rls); err != nil {
			return err
		}
		d, err := round(r)
		if err != nil {
			return err
		}
		if rls {
			on = append(on, d)
		} else {
			off = append(off, d)
		}
	}
	if _, err := store.SetRowSecurityForBench(ctx, true); err != nil {
		return err
	}
	perMeter := func(d time.Duration) float64 { return ms(d) / float64(len(meters)) }
	mOff, mOn := median(off), median(on)
	fmt.Fprintf(out, "the sync write path as the owner (ApplySyncs, %d meters a round in groups of 50, median of %d rounds each):\n", len(meters), len(on))
	fmt.Fprintf(out, "  RLS and its triggers (0016, 0020) off: %.3f ms a meter; on: %.3f ms a meter (%.2fx; goal within 10%%: %s)\n",
		perMeter(mOff), perMeter(mOn), float64(mOn)/float64(mOff), goalMet(float64(mOn) <= 1.1*float64(mOff)))
	fmt.Fprintln(out, "  (the owner bypasses the policies: no policy is evaluated on this path; each trigger's WHEN is one check per row; history rows get their ESCO from one index probe)")
	return nil
}
