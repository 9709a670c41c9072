package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/postgres"
	"github.com/jackc/pgx/v5/pgxpool"
)

// historyRows returns every row of a history table, generated columns
// included, in a stable order: equal before and after a change that must
// not lose or alter data.
func historyRows(t *testing.T, pool *pgxpool.Pool, table string) string {
	t.Helper()
	var out string
	err := pool.QueryRow(context.Background(),
		fmt.Sprintf(`SELECT coalesce(jsonb_agg(to_jsonb(h) ORDER BY to_jsonb(h)::text), '[]')::text FROM flows.%s h`, table)).Scan(&out)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// misplacedRows counts a table's rows that are not in their UTC month's
// partition (in a gap partition, for one).
func misplacedRows(t *testing.T, pool *pgxpool.Pool, table string) int {
	t.Helper()
	return count(t, pool, fmt.Sprintf(`SELECT count(*) FROM flows.%s h JOIN pg_class c ON c.oid = h.tableoid
		WHERE c.relname <> flows.month_partition_name($1, (h."timestamp" AT TIME ZONE 'UTC')::date)`, table), table)
}

// partitions lists a table's partitions by name.
func partitions(t *testing.T, pool *pgxpool.Pool, table string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = ('flows.' || $1)::regclass ORDER BY 1`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

func monthName(table string, at time.Time) string {
	return table + "_p" + at.UTC().Format("200601")
}

// layout is the partitions a table has when its monthly partitions are
// those of months: them, and gap partitions for the time around them.
func layout(table string, months ...time.Time) []string {
	var keys []string
	for _, m := range months {
		keys = append(keys, m.UTC().Format("200601"))
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	var out []string
	from := "min"
	for _, k := range keys {
		if from != k {
			out = append(out, table+"_gap_"+from+"_"+k)
		}
		out = append(out, table+"_p"+k)
		m, _ := time.Parse("200601", k)
		from = m.AddDate(0, 1, 0).Format("200601")
	}
	out = append(out, table+"_gap_"+from+"_max")
	slices.Sort(out)
	return out
}

// checkCoverage fails t unless table's partitions cover all of time, each
// starting where the one before ends: a write of any instant has one.
func checkCoverage(t *testing.T, pool *pgxpool.Pool, table string) {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT name, lower, upper FROM flows.history_partitions($1)`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var prev *time.Time
	first := true
	for rows.Next() {
		var name string
		var lower, upper *time.Time
		if err := rows.Scan(&name, &lower, &upper); err != nil {
			t.Fatal(err)
		}
		switch {
		case first && lower != nil:
			t.Errorf("%s: nothing before %s (%v)", table, name, lower)
		case !first && (prev == nil || lower == nil || !lower.Equal(*prev)):
			t.Errorf("%s: %s starts at %v, the partition before ends at %v", table, name, lower, prev)
		}
		first, prev = false, upper
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if first || prev != nil {
		t.Errorf("%s: nothing after %v", table, prev)
	}
}

// schemaOf describes what users and code see of the history tables and
// every view of the flows schema: columns (order, type, default,
// generation, NOT NULL, comment), constraints, indexes, triggers,
// comments, view definitions. How a table is stored (partitioned or not)
// is left out.
func schemaOf(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var out string
	err := pool.QueryRow(context.Background(), `
		WITH rel AS (
			SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = 'flows' AND (c.relname = ANY($1) OR c.relkind = 'v'))
		SELECT string_agg(x, E'\n' ORDER BY x) FROM (
			SELECT format('column %s %s %s %s default=%s generated=%s not_null=%s comment=%s', r.relname,
			              row_number() OVER (PARTITION BY r.oid ORDER BY a.attnum), a.attname, format_type(a.atttypid, a.atttypmod),
			              pg_get_expr(d.adbin, d.adrelid), a.attgenerated, a.attnotnull, col_description(r.oid, a.attnum)) AS x
			FROM rel r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
			LEFT JOIN pg_attrdef d ON d.adrelid = r.oid AND d.adnum = a.attnum
			UNION ALL
			SELECT format('constraint %s %s %s comment=%s', r.relname, c.conname, pg_get_constraintdef(c.oid), obj_description(c.oid, 'pg_constraint'))
			FROM rel r JOIN pg_constraint c ON c.conrelid = r.oid
			UNION ALL
			SELECT format('index %s comment=%s', replace(pg_get_indexdef(i.indexrelid), ' ON ONLY ', ' ON '), obj_description(i.indexrelid, 'pg_class'))
			FROM rel r JOIN pg_index i ON i.indrelid = r.oid
			UNION ALL
			SELECT format('trigger %s', pg_get_triggerdef(g.oid)) FROM rel r JOIN pg_trigger g ON g.tgrelid = r.oid AND NOT g.tgisinternal
			UNION ALL
			SELECT format('relation %s comment=%s view=%s', r.relname, obj_description(r.oid, 'pg_class'), pg_get_viewdef(r.oid)) FROM rel r
		) s`, postgres.PartitionedTables()).Scan(&out)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Migration 0014 converts history written before it without losing or
// changing a row: each row lands in its UTC month's partition (rows either
// side of a month boundary in different ones), the tables, keys, indexes
// and views read exactly as before, and the triggers, StoreProfile's
// upsert and the interval derivation work on the partitioned tables.
func TestPartitionMigrationKeepsHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := postgres.Open(ctx, pgtest.EmptyDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := postgres.MigrateTo(ctx, pool, 13); err != nil {
		t.Fatal(err)
	}
	s := postgres.NewStore(pool)
	m, err := s.CreateMeter(ctx, flows.NewMeter{Serial: "EML1000000141", IPAddress: "127.93.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddRegister(ctx, m.ID, flows.ElementA, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddRegister(ctx, m.ID, flows.ElementB, true); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	boundary := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	// Shadow writes in plain SQL, as the seed makes them: the triggers
	// write every history table but the profile ones.
	times := []time.Time{time.Date(2025, 3, 15, 10, 0, 0, 0, time.UTC), boundary.Add(-time.Microsecond), boundary, now}
	for i, at := range times {
		var csq any = 10 + i
		if i == 1 {
			csq = nil // offline
		}
		mustExec(t, pool, `UPDATE flows.meter_shadows SET balance = $2, emergency_credit = $3, csq = $4, voltage = $5::numeric,
			"3p_voltage_l1" = $5::numeric, "3p_voltage_l2" = $5::numeric + 1, "3p_voltage_l3" = $5::numeric + 2, health = 'healthy',
			health_details = $6, import_a = $7::numeric, export_a = $7::numeric + 1, import_b = $7::numeric + 2, export_b = $7::numeric + 3,
			updated_at = $8 WHERE id = $1`,
			m.ID, 10+i, i, csq, 230+i, fmt.Sprintf("check %d", i), 1000*(i+1), at)
	}
	u := func(v uint32) *uint32 { return &v }
	var recs []flows.ProfileRecord
	for i := range 4 { // 23:00 and 23:30 on 30 September, 00:00 and 00:30 on 1 October
		recs = append(recs, flows.ProfileRecord{At: boundary.Add(time.Duration(i-2) * 30 * time.Minute), Status: flows.ProfileValidData,
			ImportA: u(uint32(1000 + 100*i)), ImportB: u(5), ExportA: u(0), ExportB: u(uint32(50 + 10*i))})
	}
	// Written as 0013's StoreProfile wrote them (today's needs 0020's
	// column): the records, then the derivation.
	for _, r := range recs {
		mustExec(t, pool, `INSERT INTO flows.meter_profile (meter_id, "timestamp", status, import_a_wh, import_b_wh, export_a_wh, export_b_wh)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, m.ID, r.At, int32(r.Status), *r.ImportA, *r.ImportB, *r.ExportA, *r.ExportB)
	}
	if n := count(t, pool, `SELECT flows.derive_register_intervals($1, $2, $3)`, m.ID, recs[0].At.Add(-30*time.Minute), recs[3].At.Add(30*time.Minute)); n != 6 {
		t.Fatalf("derive_register_intervals = %d; want 6 intervals", n)
	}
	// An operator's own views over a history table, in a schema of their
	// own, with options, comments and grants, one on top of the other; and
	// a grant on the table.
	mustExec(t, pool, `CREATE SCHEMA reporting;
		CREATE VIEW reporting.csq_daily WITH (security_barrier) AS
			SELECT meter_id, date_trunc('day', "timestamp") AS day, avg(csq) AS csq FROM flows.meter_csq GROUP BY 1, 2;
		COMMENT ON VIEW reporting.csq_daily IS 'Mean signal per meter per day.';
		COMMENT ON COLUMN reporting.csq_daily.csq IS 'Mean csq; NULL when offline all day.';
		GRANT SELECT ON reporting.csq_daily TO PUBLIC;
		CREATE VIEW reporting.csq_weak AS SELECT * FROM reporting.csq_daily WHERE csq < 12;
		GRANT SELECT ON flows.meter_csq TO PUBLIC`)
	extras := func() string {
		var out string
		if err := pool.QueryRow(ctx, `SELECT string_agg(format('%s acl=%s options=%s comment=%s columns=%s view=%s', c.oid::regclass, c.relacl, c.reloptions,
				obj_description(c.oid, 'pg_class'), (SELECT string_agg(col_description(c.oid, a.attnum), ',') FROM pg_attribute a WHERE a.attrelid = c.oid),
				CASE WHEN c.relkind = 'v' THEN pg_get_viewdef(c.oid) END), E'\n' ORDER BY c.oid::regclass::text)
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = 'reporting' OR (n.nspname = 'flows' AND c.relname = ANY($1))`, postgres.PartitionedTables()).Scan(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// The tables 0014 converts: not those made partitioned later.
	tables := slices.DeleteFunc(postgres.PartitionedTables(), func(t string) bool { return t == "meter_3p_interval" })
	before := map[string]string{}
	for _, tbl := range tables {
		before[tbl] = historyRows(t, pool, tbl)
		if before[tbl] == "[]" {
			t.Fatalf("%s: no rows written before the migration; the test must cover every table", tbl)
		}
	}
	schema, operators := schemaOf(t, pool), extras()

	if _, err := postgres.MigrateTo(ctx, pool, 14); err != nil {
		t.Fatal(err)
	}
	for _, tbl := range tables {
		if got := historyRows(t, pool, tbl); got != before[tbl] {
			t.Errorf("%s after the migration:\n%s\nwant\n%s", tbl, got, before[tbl])
		}
		if n := misplacedRows(t, pool, tbl); n != 0 {
			t.Errorf("%s: %d rows outside their month's partition", tbl, n)
		}
		if n := count(t, pool, `SELECT count(*) FROM pg_partitioned_table WHERE partrelid = ('flows.' || $1)::regclass`, tbl); n != 1 {
			t.Errorf("%s is not partitioned", tbl)
		}
	}
	months := slices.Clone(times[:3])
	for i := range 4 { // the current month and three ahead
		months = append(months, now.AddDate(0, i, 1-now.Day()))
	}
	if got, want := partitions(t, pool, "meter_csq"), layout("meter_csq", months...); !slices.Equal(got, want) {
		t.Errorf("meter_csq partitions = %v, want %v", got, want)
	}
	for _, tbl := range tables {
		checkCoverage(t, pool, tbl)
	}
	if got := schemaOf(t, pool); got != schema {
		t.Errorf("schema changed by the migration:\n%s", lineDiff(schema, got))
	}
	if got := extras(); got != operators {
		t.Errorf("operator's views and grants changed by the migration:\n%s", lineDiff(operators, got))
	}

	// The write paths, unchanged, on the partitioned tables (with the
	// migrations after 0014 the store's code needs).
	if _, err := postgres.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	later := now.Add(time.Second)
	// A reading already recorded at the instant is replaced (the triggers'
	// ON CONFLICT on the partitioned keys).
	mustExec(t, pool, `INSERT INTO flows.meter_prepay_balance (meter_id, "timestamp", balance) VALUES ($1, $2, 99)`, m.ID, later)
	mustExec(t, pool, `UPDATE flows.meter_shadows SET balance = 2, csq = 21, import_a = 9001, updated_at = $2 WHERE id = $1`, m.ID, later)
	if n := count(t, pool, `SELECT count(*) FROM flows.meter_prepay_balance WHERE meter_id = $1 AND "timestamp" = $2 AND balance = 2`, m.ID, later); n != 1 {
		t.Errorf("balance rows at the write = %d, want 1 (replaced)", n)
	}
	var lastOnline time.Time
	if err := pool.QueryRow(ctx, `SELECT last_online FROM flows.meter_last_online WHERE id = $1`, m.ID).Scan(&lastOnline); err != nil || !lastOnline.Equal(later) {
		t.Errorf("meter_last_online = %v, %v; want %v", lastOnline, err, later)
	}
	recs[3].ImportA = u(1350) // re-read with a changed reading: the upsert and the derivation update in place
	if derived, _, err := s.StoreProfile(ctx, m.ID, recs); err != nil || derived != 6 {
		t.Errorf("StoreProfile after the migration = %d, %v; want 6", derived, err)
	}
	if n := count(t, pool, `SELECT count(*) FROM flows.meter_profile`); n != 4 {
		t.Errorf("profile rows = %d, want 4", n)
	}
	if n := count(t, pool, `SELECT count(*) FROM flows.register_interval_hh WHERE "timestamp" = $1 AND kwh = 0.150`, boundary); n != 1 {
		t.Errorf("the re-read interval was not updated in place")
	}
	for _, tbl := range tables {
		if n := misplacedRows(t, pool, tbl); n != 0 {
			t.Errorf("%s: %d new rows outside their month's partition", tbl, n)
		}
	}
}

// lineDiff shows the lines only in a and only in b.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for _, l := range al {
		if !slices.Contains(bl, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range bl {
		if !slices.Contains(al, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// Maintenance makes every table's partitions for the current month and
// the months ahead, drops the whole months before a table's retention
// (never the current month) and leaves newer data and tables without a
// retention alone; it runs safely from several processes at once, and a
// second run changes nothing. Unknown tables and negative retentions are
// refused by name.
func TestMaintainPartitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	s := postgres.NewStore(pool)
	m, err := s.CreateMeter(ctx, flows.NewMeter{Serial: "EML1000000142", IPAddress: "127.93.0.2"})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := s.AddRegister(ctx, m.ID, flows.ElementA, false)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2031, 6, 15, 12, 0, 0, 0, time.UTC)
	csq := func(at time.Time) {
		mustExec(t, pool, `INSERT INTO flows.meter_csq (meter_id, "timestamp", csq) VALUES ($1, $2, 7)`, m.ID, at)
	}
	export := func(at time.Time) {
		mustExec(t, pool, `INSERT INTO flows.register_export (register_id, "timestamp", read) VALUES ($1, $2, 1)`, reg.RegisterID, at)
	}
	april := time.Date(2031, 4, 1, 0, 0, 0, 0, time.UTC)
	june := time.Date(2031, 6, 1, 0, 0, 0, 0, time.UTC)
	csq(time.Now())                   // this month: long before the retention
	csq(april.Add(-time.Microsecond)) // March: before a retention of 2 months at 15 June
	csq(april)                        // April: kept
	may := time.Date(2031, 5, 1, 0, 0, 0, 0, time.UTC)
	export(may.Add(-time.Microsecond)) // April: wholly before a retention of 1 month
	export(may)                        // May: partly within a month of 15 June, kept
	export(june)                       // June, the current month: kept
	mustExec(t, pool, `INSERT INTO flows.meter_voltage (meter_id, "timestamp", voltage) VALUES ($1, $2, 231)`, m.ID, april.Add(-time.Hour))
	retention := map[string]int{"meter_csq": 2, "register_export": 1}

	// Three processes at once: each partition is made and dropped once.
	reports := make([]postgres.PartitionReport, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range reports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reports[i], errs[i] = s.MaintainPartitions(ctx, now, 3, retention)
		}()
	}
	wg.Wait()
	created, dropped := map[string]int{}, map[string]int{}
	for i, rep := range reports {
		if errs[i] != nil {
			t.Fatalf("maintenance %d: %v", i, errs[i])
		}
		for _, tp := range rep.Tables {
			for _, p := range tp.Created {
				created[p]++
			}
			for _, p := range tp.Dropped {
				dropped[p]++
			}
		}
	}
	for p, n := range created {
		if n != 1 {
			t.Errorf("%s created %d times", p, n)
		}
	}
	for p, n := range dropped {
		if n != 1 {
			t.Errorf("%s dropped %d times", p, n)
		}
	}
	for _, tbl := range postgres.PartitionedTables() {
		got := partitions(t, pool, tbl)
		for i := range 4 {
			if p := monthName(tbl, june.AddDate(0, i, 0)); !slices.Contains(got, p) {
				t.Errorf("%s: no partition %s after maintenance (has %v)", tbl, p, got)
			}
		}
		checkCoverage(t, pool, tbl)
		if n := misplacedRows(t, pool, tbl); n != 0 {
			t.Errorf("%s: %d rows outside their month's partition", tbl, n)
		}
	}
	if got := partitions(t, pool, "meter_csq"); slices.Contains(got, monthName("meter_csq", time.Now())) || slices.Contains(got, "meter_csq_p203103") ||
		!slices.Contains(got, "meter_csq_p203104") {
		t.Errorf("meter_csq partitions with 2 months kept at %v: %v", now, got)
	}
	if dropped["meter_csq_p203103"] != 1 || dropped[monthName("meter_csq", time.Now())] != 1 {
		t.Errorf("reported dropped %v", dropped)
	}
	if n := count(t, pool, `SELECT count(*) FROM flows.meter_csq WHERE "timestamp" = $1`, april); n != 1 ||
		count(t, pool, `SELECT count(*) FROM flows.meter_csq`) != 1 {
		t.Errorf("meter_csq after a retention of 2 months: want the April row only")
	}
	if n := count(t, pool, `SELECT count(*) FROM flows.register_export WHERE "timestamp" IN ($1, $2)`, may, june); n != 2 ||
		count(t, pool, `SELECT count(*) FROM flows.register_export`) != 2 {
		t.Errorf("register_export after a retention of 1 month: want May's and June's rows only; have %s (partitions %v)",
			historyRows(t, pool, "register_export"), partitions(t, pool, "register_export"))
	}
	if dropped["register_export_p203104"] != 1 {
		t.Errorf("register_export_p203104 not reported dropped: %v", dropped)
	}
	if n := count(t, pool, `SELECT count(*) FROM flows.meter_voltage`); n != 1 {
		t.Errorf("meter_voltage (no retention) lost its row")
	}

	again, err := s.MaintainPartitions(ctx, now, 3, retention)
	if err != nil || again.Changed() {
		t.Errorf("second run = %+v, %v; want no change", again, err)
	}

	for _, c := range []struct {
		ahead     int
		retention map[string]int
		field     string
		mention   string
	}{
		{3, map[string]int{"meter_event_log": 3}, "retention", "meter_event_log"},
		{3, map[string]int{"meter_csq": -1}, "retention", "meter_csq"},
		{-1, nil, "ahead", "-1"},
	} {
		_, err := s.MaintainPartitions(ctx, now, c.ahead, c.retention)
		if flows.ErrorCode(err) != flows.EINVALID || flows.ErrorField(err) != c.field || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("MaintainPartitions(%d, %v) = %v; want invalid %s naming %s", c.ahead, c.retention, err, c.field, c.mention)
		}
	}
	// The SQL helpers refuse any other table.
	if _, err := pool.Exec(ctx, `SELECT flows.create_month_partitions('meter_registry', '{2031-01-01}')`); err == nil || !strings.Contains(err.Error(), "meter_registry") {
		t.Errorf("create_month_partitions on meter_registry = %v; want refused by name", err)
	}
	if _, err := pool.Exec(ctx, `SELECT flows.drop_month_partitions('meter_event_log', now())`); err == nil || !strings.Contains(err.Error(), "meter_event_log") {
		t.Errorf("drop_month_partitions on meter_event_log = %v; want refused by name", err)
	}
}

// A row for a month without a partition of its own is kept in a gap
// partition — from the triggers and StoreProfile alike — and the next
// maintenance moves it, unchanged, into a partition of its own.
func TestDefaultPartitionCatchesUncoveredMonths(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	s := postgres.NewStore(pool)
	m, err := s.CreateMeter(ctx, flows.NewMeter{Serial: "EML1000000143", IPAddress: "127.93.0.3"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddRegister(ctx, m.ID, flows.ElementA, false); err != nil {
		t.Fatal(err)
	}
	future := time.Date(2044, 2, 10, 12, 0, 0, 0, time.UTC)
	mustExec(t, pool, `UPDATE flows.meter_shadows SET balance = 5, csq = 9, voltage = 240, health = 'healthy', import_a = 12.5, updated_at = $2 WHERE id = $1`, m.ID, future)
	past := time.Date(2019, 7, 1, 0, 0, 0, 0, time.UTC)
	u := func(v uint32) *uint32 { return &v }
	derived, bad, err := s.StoreProfile(ctx, m.ID, []flows.ProfileRecord{
		{At: past, Status: flows.ProfileValidData, ImportA: u(100)},
		{At: past.Add(30 * time.Minute), Status: flows.ProfileValidData, ImportA: u(160)},
	})
	if err != nil || len(bad) != 0 || derived != 1 {
		t.Fatalf("StoreProfile in 2019 = %d, %v, %v", derived, bad, err)
	}
	tables := []string{"meter_prepay_balance", "meter_csq", "meter_voltage", "meter_health_history", "register_import", "meter_profile", "register_interval_hh"}
	before := map[string]string{}
	for _, tbl := range tables {
		if n := misplacedRows(t, pool, tbl); n == 0 {
			t.Errorf("%s: no row in a gap partition", tbl)
		}
		before[tbl] = historyRows(t, pool, tbl)
	}

	rep, err := s.MaintainPartitions(ctx, time.Now(), 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	moved := map[string]int64{}
	var created []string
	for _, tp := range rep.Tables {
		moved[tp.Table] = tp.Moved
		created = append(created, tp.Created...)
	}
	for _, tbl := range tables {
		at := future
		if strings.HasPrefix(tbl, "meter_profile") || strings.HasPrefix(tbl, "register_interval") {
			at = past
		}
		if !slices.Contains(created, monthName(tbl, at)) || moved[tbl] == 0 {
			t.Errorf("%s: created %v, moved %d; want %s with the waiting rows", tbl, created, moved[tbl], monthName(tbl, at))
		}
		if got := historyRows(t, pool, tbl); got != before[tbl] {
			t.Errorf("%s changed by the move:\n%s\nwant\n%s", tbl, got, before[tbl])
		}
		checkCoverage(t, pool, tbl)
		if n := misplacedRows(t, pool, tbl); n != 0 {
			t.Errorf("%s: %d rows outside their month's partition", tbl, n)
		}
	}
	// The moved rows are live: a re-read upserts in place.
	if _, _, err := s.StoreProfile(ctx, m.ID, []flows.ProfileRecord{{At: past, Status: flows.ProfileValidData, ImportA: u(100), ImportB: u(3)}}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool, `SELECT count(*) FROM flows.meter_profile_p201907 WHERE import_b_wh = 3 AND valid_data`); n != 1 {
		t.Errorf("re-read of a moved profile record: %d rows updated, want 1", n)
	}
}

// BenchmarkLastOnlineAcrossMonths measures meter_last_online (each
// meter's newest non-NULL csq: the dashboard's, the API list's and the
// seed's offline views' lookup) for 1,000 meters with three years of
// readings, one partition a month: the partitions are read newest first,
// so the cost does not grow with the months kept. Run with
//
//	go test -run '^$' -bench LastOnline ./postgres/
func BenchmarkLastOnlineAcrossMonths(b *testing.B) {
	ctx := context.Background()
	pool := pgtest.NewPool(b)
	for _, sql := range []string{
		`INSERT INTO flows.meter_registry (serial, mode) SELECT 'EML' || (3100000000 + g)::text, 'active' FROM generate_series(1, 1000) g`,
		`INSERT INTO flows.meter_csq (meter_id, "timestamp", csq) SELECT id, now() - g * interval '3 days', 10 FROM flows.meter_registry, generate_series(0, 365) g`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := postgres.NewStore(pool).MaintainPartitions(ctx, time.Now(), 3, nil); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE flows.meter_csq`); err != nil {
		b.Fatal(err)
	}
	b.Logf("meter_csq: %d partitions", len(partitionsB(b, pool, "meter_csq")))
	for b.Loop() {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(last_online) FROM flows.meter_last_online`).Scan(&n); err != nil || n != 1000 {
			b.Fatalf("last_online for %d meters, %v", n, err)
		}
	}
}

func partitionsB(b *testing.B, pool *pgxpool.Pool, table string) []string {
	var out []string
	if err := pool.QueryRow(context.Background(), `SELECT array_agg(name) FROM flows.history_partitions($1)`, table).Scan(&out); err != nil {
		b.Fatal(err)
	}
	return out
}
