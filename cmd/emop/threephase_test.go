package main_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/sim"
)

// The three-phase commands read both kinds of meter as the simulator has
// them, scaled by the meter type; the interval fetch covers a window in
// 4-hour frames of several requests each and writes the reference's CSV.
func TestEmopThreePhase(t *testing.T) {
	all := sim.GenerateFleet(25, sim.FleetOptions{AddressPrefix: "127.86", Secret: []byte("cli3")})
	fleet, addr, store := startMediatedFleet(t, []sim.Spec{all[22], all[24], all[0]})
	cx, ax, one := fleet.Meters()[0], fleet.Meters()[1], fleet.Meters()[2]
	clock := fleet.Clock().(*sim.ManualClock)
	clock.Advance(2 * time.Hour)
	ax.PowerCut(clock.Now(), time.Hour) // 14:00-15:00: no records, then power_fail
	clock.Advance(3 * time.Hour)        // 17:00
	now := clock.Now()
	run := func(m *sim.Meter, args ...string) string {
		t.Helper()
		out, stderr, err := runEmop(t, append([]string{"--mediator", addr, "-s", m.Spec.Serial}, args...)...)
		if err != nil {
			t.Fatalf("emop %v: %v\n%s", args, err, stderr)
		}
		return strings.TrimSpace(out)
	}
	for _, m := range []*sim.Meter{cx, ax} {
		truth := m.ThreePhase(now)
		if got := run(m, "hardware"); got != "hardware="+m.Spec.Hardware {
			t.Errorf("hardware: %s", got)
		}
		var cfg struct{ Hardware, MeterTypeName string }
		if err := json.Unmarshal([]byte(run(m, "three_phase_hardware_configuration")), &cfg); err != nil || cfg.Hardware != m.Spec.Hardware {
			t.Errorf("configuration: %+v %v", cfg, err)
		}
		var v map[string]*string
		if err := json.Unmarshal([]byte(run(m, "three_phase_instantaneous_voltage")), &v); err != nil || v["l1"] == nil || *v["l3"] != truth.Voltages[2].StringFixed(1) {
			t.Errorf("voltages: %v %v, simulator %v", v, err, truth.Voltages)
		}
		var tot map[string]*string
		if err := json.Unmarshal([]byte(run(m, "three_phase_read")), &tot); err != nil || *tot["active_import"] != truth.Totals[0].String() ||
			*tot["apparent_export"] != truth.Totals[5].String() {
			t.Errorf("three_phase_read: %v %v, simulator %v", tot, err, truth.Totals)
		}
		if got := run(m, "three_phase_serial"); got != "three_phase_serial="+m.Spec.Serial {
			t.Errorf("serial: %s", got)
		}
	}

	// The AX meter's afternoon: 10 half hours asked for, 9 held (the
	// meter recorded nothing at 14:30, in the cut), the half hour in which
	// the power came back flagged.
	var rows []map[string]any
	if err := json.Unmarshal([]byte(run(ax, "three_phase_intervals", "--start-time", "2026-06-01T12:00:00Z", "--end-time", "2026-06-01T17:00:00Z", "--include-statuses")), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 9 || rows[0]["created_at"] != "2026-06-01T12:00:00Z" || rows[8]["created_at"] != "2026-06-01T16:30:00Z" {
		t.Fatalf("%d intervals: %v", len(rows), rows)
	}
	if got := rows[8]["total_active_energy_import"]; got != ax.ThreePhase(now).Totals[0].String() {
		t.Errorf("last interval's import register %v, simulator %s", got, ax.ThreePhase(now).Totals[0])
	}
	flagged := 0
	for _, r := range rows {
		if strings.Contains(strings.Join(toStrings(r["status"]), ","), "power_fail") {
			flagged++
			if r["created_at"] != "2026-06-01T14:30:00Z" {
				t.Errorf("power failure flagged at %v", r["created_at"])
			}
		}
	}
	if flagged != 1 {
		t.Errorf("%d intervals flagged power_fail, want 1", flagged)
	}
	dir := t.TempDir()
	run(cx, "three_phase_intervals", "--day", "2026-06-01", "--csv", dir, "--include-statuses")
	f, err := os.Open(filepath.Join(dir, cx.Spec.Serial+"_2026-06-01_intervals.csv"))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(recs) != 1+10 || recs[0][0] != "created_at" || recs[0][9] != "total_active_energy_import" || len(recs[0]) != 1+14+9 ||
		recs[1][0] != "2026-06-01 12:00:00+0000" {
		t.Errorf("CSV: %v %v", recs, err)
	}

	// tariffs_time_switches_*_read on a single-phase meter: 80 bytes.
	if got := run(one, "tariffs_time_switches_element_a_or_single_read"); got != "tariffs_time_switches_element_a_or_single_read="+strings.Repeat("00", 80) {
		t.Errorf("time switches: %s", got)
	}
	// clock_drift reads the shadow's fields (the reference read nulls).
	m, _ := store.MeterBySerial(context.Background(), ax.Spec.Serial)
	drift := 95
	if err := store.UpdateShadow(context.Background(), m.ID, flows.ShadowUpdate{ClockTimeDiffSeconds: &drift}); err != nil {
		t.Fatal(err)
	}
	var cd struct {
		Diff *int `json:"clock_time_diff_seconds"`
	}
	if err := json.Unmarshal([]byte(run(ax, "clock_drift")), &cd); err != nil || cd.Diff == nil || *cd.Diff != 95 {
		t.Errorf("clock_drift: %+v %v", cd, err)
	}

	// env_set makes an environment file current; emop then finds the
	// mediator there.
	home := t.TempDir()
	t.Setenv("EMOP_HOME", home)
	if err := os.WriteFile(filepath.Join(home, "emlite.test.env"), []byte("MEDIATOR_SERVER="+addr+"\nSUPABASE_ANON_KEY=x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, stderr, err := runEmop(t, "env_set", "test"); err != nil || strings.TrimSpace(out) != "env=test" {
		t.Fatalf("env_set: %v %s %s", err, out, stderr)
	}
	if out, _, err := runEmop(t, "env_show"); err != nil || out != "env=test\nMEDIATOR_SERVER="+addr+"\n" {
		t.Errorf("env_show: %v %q", err, out)
	}
	if out, stderr, err := runEmop(t, "-s", one.Spec.Serial, "serial_read"); err != nil || strings.TrimSpace(out) != "serial_read="+one.Spec.Serial {
		t.Errorf("through the environment's mediator: %v %s %s", err, out, stderr)
	}
	if _, stderr, err := runEmop(t, "env_set", "prod"); err == nil || !strings.Contains(stderr, "emlite.prod.env does not exist") {
		t.Errorf("unknown environment: %v %s", err, stderr)
	}
	if out, _, err := runEmop(t, "version"); err != nil || !strings.HasPrefix(out, "version=") {
		t.Errorf("version: %v %q", err, out)
	}
}

// Every command's help names its arguments.
func TestEmopHelpNamesArguments(t *testing.T) {
	for cmd, want := range map[string]string{
		"event_log": "emop event_log INDEX [SERIAL]", "obis_write": "emop obis_write OBJECT PAYLOAD_HEX [SERIAL]",
		"prepay_send_token": "emop prepay_send_token TOKEN [SERIAL]", "backlight_write": "always_on_sp",
		"env_set": "emop env_set ENV", "csq": "emop csq [SERIAL]", "three_phase_intervals": "--start-time",
		"clock_drift": "emop clock_drift [SERIAL]", "tariffs_future_write": "--unit-rate",
	} {
		out, _, err := runEmop(t, cmd, "--help")
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("%s --help: %v, want %q in\n%s", cmd, err, want, out)
		}
	}
}

func toStrings(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, x := range l {
			s, _ := x.(string)
			out = append(out, s)
		}
	}
	return out
}
