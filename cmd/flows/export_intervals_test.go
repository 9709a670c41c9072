package main_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/postgres"
	"github.com/shopspring/decimal"
)

// flows export intervals writes the reference's three-phase interval file
// per meter and UTC day, byte for byte (checked against a file written
// here by hand): the channels the meter reported, the status flags with
// --status, flagged intervals included; --esco takes the ESCO's
// three-phase meters only; a single-phase --serial is refused, naming it.
func TestExportIntervals(t *testing.T) {
	url := pgtest.NewDB(t)
	ctx := context.Background()
	pool, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := postgres.NewStore(pool)
	if _, err := store.CreateESCO(ctx, "TRIP", "Three"); err != nil {
		t.Fatal(err)
	}
	today := flows.UTCDay(time.Now())
	day1, day2 := today.AddDate(0, 0, -2), today.AddDate(0, 0, -1)
	ids := map[string]string{}
	for i, hw := range []string{"P1.ax", "P1.cx", "EMA1.w"} {
		serial := fmt.Sprintf("EML340000000%d", i+1)
		m, err := store.CreateMeter(ctx, flows.NewMeter{Serial: serial, IPAddress: fmt.Sprintf("127.95.0.%d", i+1), ESCOCode: "TRIP", Hardware: hw})
		if err != nil {
			t.Fatal(err)
		}
		ids[hw] = m.ID
	}
	d := decimal.RequireFromString
	ch := []uint32{uint32(emop.ThreePhaseChannels[0]), uint32(emop.ThreePhaseChannels[8]), uint32(emop.ThreePhaseChannels[9])}
	ivs := []flows.ThreePhaseInterval{
		{At: day1, Status: emop.IntervalValidData, Channels: ch, Values: []decimal.Decimal{d("1.2"), d("100.5"), d("0")}},
		{At: day1.Add(30 * time.Minute), Status: emop.IntervalValidData | emop.IntervalPowerFail | emop.IntervalPhase1VoltageFailure,
			Channels: ch, Values: []decimal.Decimal{d("0.004"), d("100.502"), d("0.001")}},
		// 01:00 missing; 01:30 without its export register, and a channel
		// Flows has no column for.
		{At: day1.Add(90 * time.Minute), Status: emop.IntervalValidData | emop.IntervalTimeUpdate,
			Channels: []uint32{ch[0], ch[1], 0x123456}, Values: []decimal.Decimal{d("2"), d("101.5"), d("7.25")}},
	}
	if _, err := store.StoreThreePhaseRead(ctx, ids["P1.ax"], ivs, nil); err != nil {
		t.Fatal(err)
	}
	cx := []flows.ThreePhaseInterval{{At: day2.Add(23 * time.Hour), Status: emop.IntervalValidData, Channels: ch[1:2], Values: []decimal.Decimal{d("12.3456")}}}
	if _, err := store.StoreThreePhaseRead(ctx, ids["P1.cx"], cx, nil); err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "iv")
	d1, d2 := day1.Format("2006-01-02"), day2.Format("2006-01-02")
	out, err := flowsCmd(t, "export", "intervals", "--serial", "EML3400000001", "--from", d1, "--to", d1, "--out", dir, "--status", "--database-url", url)
	if err != nil || out != fmt.Sprintf("wrote 1 files to %s: 1 meters, 1 days (%s to %s)\n", dir, d1, d1) {
		t.Fatalf("export: %v %q", err, out)
	}
	flags := "valid_data,power_fail,phase_1_voltage_failure,phase_2_voltage_failure,phase_3_voltage_failure,security_access,md_reset,time_update,log_reset"
	hand := "created_at,active_import_demand,total_active_energy_import,total_active_energy_export,123456," + flags + "\n" +
		d1 + " 00:00:00+0000,1.2,100.5,0,,1,0,0,0,0,0,0,0,0\n" +
		d1 + " 00:30:00+0000,0.004,100.502,0.001,,1,1,1,0,0,0,0,0,0\n" +
		d1 + " 01:30:00+0000,2,101.5,,7.25,1,0,0,0,0,0,0,1,0\n"
	if got, _ := os.ReadFile(filepath.Join(dir, "EML3400000001_"+d1+"_intervals.csv")); string(got) != hand {
		t.Errorf("file\n%s\nwant\n%s", got, hand)
	}

	// The ESCO's three-phase meters, two days, no statuses; a day with
	// nothing is a header alone, as the reference's fetch writes it.
	dir2 := filepath.Join(t.TempDir(), "esco")
	out, err = flowsCmd(t, "export", "intervals", "--esco", "TRIP", "--from", d1, "--to", d2, "--out", dir2, "--database-url", url)
	if err != nil || out != fmt.Sprintf("wrote 4 files to %s: 2 meters, 2 days (%s to %s)\n", dir2, d1, d2) {
		t.Fatalf("export --esco: %v %q", err, out)
	}
	var names []string
	entries, _ := os.ReadDir(dir2)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"EML3400000001_" + d1 + "_intervals.csv", "EML3400000001_" + d2 + "_intervals.csv",
		"EML3400000002_" + d1 + "_intervals.csv", "EML3400000002_" + d2 + "_intervals.csv"}; !slices.Equal(names, want) {
		t.Errorf("files %v, want %v", names, want)
	}
	for name, want := range map[string]string{
		"EML3400000002_" + d2 + "_intervals.csv": "created_at,total_active_energy_import\n" + d2 + " 23:00:00+0000,12.3456\n",
		"EML3400000002_" + d1 + "_intervals.csv": "created_at\n",
	} {
		if got, _ := os.ReadFile(filepath.Join(dir2, name)); string(got) != want {
			t.Errorf("%s\n%q\nwant\n%q", name, got, want)
		}
	}

	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"--serial", "EML3400000003", "--from", d1, "--to", d1, "--out", dir}, "--serial: EML3400000003 is not a three-phase meter (EMA1.w)"},
		{[]string{"--esco", "TRIP", "--from", d2, "--to", d1, "--out", dir}, "--to"},
		{[]string{"--serial", "EML3400000001", "--from", d1, "--to", d1}, "--out"},
	} {
		out, err := flowsCmd(t, append(append([]string{"export", "intervals"}, c.args...), "--database-url", url)...)
		if err == nil || !strings.Contains(out, c.says) {
			t.Errorf("%v: %v %q, want a refusal saying %q", c.args, err, out, c.says)
		}
	}
}
