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
	"github.com/flows-energy/flows/internal/pgtest"
	"github.com/flows-energy/flows/postgres"
)

// flows export smip writes a file per meter, element and UTC day: -A and
// -B files for a twin-element meter, one without a suffix for a
// single-element meter, each the SMIP format byte for byte (checked
// against a file written here by hand from the format); --esco leaves
// out passive twins and other ESCOs' meters; bad flags are named.
func TestExportSMIP(t *testing.T) {
	url := pgtest.NewDB(t)
	ctx := context.Background()
	pool, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := postgres.NewStore(pool)
	for _, e := range []string{"EXPT", "OTHR"} {
		if _, err := store.CreateESCO(ctx, e, e); err != nil {
			t.Fatal(err)
		}
	}
	today := flows.UTCDay(time.Now())
	day1, day2 := today.AddDate(0, 0, -2), today.AddDate(0, 0, -1)
	u := func(v int) *uint32 { n := uint32(v); return &n }
	for _, m := range []struct {
		meter    flows.NewMeter
		elements []flows.Element
		records  func(i int) *flows.ProfileRecord
	}{
		// Twin element: day1 from 00:00, A importing 40 Wh and exporting
		// 3 Wh a half hour, B importing 15 Wh; no record at 07:00 and
		// 07:30; log 2 (export) not read after 20:00.
		{flows.NewMeter{Serial: "EML3300000001", IPAddress: "127.94.0.1", ESCOCode: "EXPT", Hardware: "C1.w"}, []flows.Element{flows.ElementA, flows.ElementB},
			func(i int) *flows.ProfileRecord {
				if i == 14 || i == 15 {
					return nil
				}
				r := &flows.ProfileRecord{At: day1.Add(time.Duration(i) * 30 * time.Minute), Status: flows.ProfileValidData,
					ImportA: u(120000 + 40*i), ImportB: u(7000 + 15*i)}
				if i < 40 {
					r.ExportA, r.ExportB = u(900+3*i), u(0)
				}
				return r
			}},
		{flows.NewMeter{Serial: "EML3300000002", IPAddress: "127.94.0.2", ESCOCode: "EXPT", Hardware: "EMA1.w"}, []flows.Element{flows.ElementSingle},
			func(i int) *flows.ProfileRecord {
				return &flows.ProfileRecord{At: day1.Add(time.Duration(i) * 30 * time.Minute), Status: flows.ProfileValidData, ImportA: u(500 + i), ExportA: u(0)}
			}},
		{flows.NewMeter{Serial: "EML3300000003", ESCOCode: "EXPT", Mode: flows.ModePassive, Hardware: "EMA1.w"}, nil, nil},
		{flows.NewMeter{Serial: "EML3300000004", IPAddress: "127.94.0.4", ESCOCode: "OTHR", Hardware: "EMA1.w"}, nil, nil},
	} {
		nm, err := store.CreateMeter(ctx, m.meter)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range m.elements {
			if _, err := store.AddRegister(ctx, nm.ID, e, false); err != nil {
				t.Fatal(err)
			}
		}
		if m.records == nil {
			continue
		}
		var recs []flows.ProfileRecord
		for i := range 96 { // day1 and day2
			if r := m.records(i); r != nil {
				recs = append(recs, *r)
			}
		}
		if _, bad, err := store.StoreProfile(ctx, nm.ID, recs); err != nil || len(bad) > 0 {
			t.Fatalf("profile of %s: %v %v", m.meter.Serial, err, bad)
		}
	}

	dir := filepath.Join(t.TempDir(), "smip", "out") // created by the command
	d1, d2 := day1.Format("2006-01-02"), day2.Format("2006-01-02")
	out, err := flowsCmd(t, "export", "smip", "--esco", "EXPT", "--from", d1, "--to", d2, "--out", dir, "--database-url", url)
	if err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("wrote 6 files to %s: 2 meters, 2 days (%s to %s)\n", dir, d1, d2); out != want {
		t.Errorf("summary %q, want %q", out, want)
	}
	ymd1, ymd2 := day1.Format("20060102"), day2.Format("20060102")
	var names []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"EML3300000001-A-" + ymd1 + ".csv", "EML3300000001-A-" + ymd2 + ".csv", "EML3300000001-B-" + ymd1 + ".csv",
		"EML3300000001-B-" + ymd2 + ".csv", "EML3300000002-" + ymd1 + ".csv", "EML3300000002-" + ymd2 + ".csv"}
	if !slices.Equal(names, want) {
		t.Errorf("files\n%v\nwant\n%v", names, want)
	}

	// The twin's element A on day1, written by hand from the format.
	var hand strings.Builder
	hand.WriteString(`"created_at","EML3300000001-A","EML3300000001-A_rev"` + "\r\n")
	for i := range 48 {
		imp, exp := fmt.Sprint(120000+40*i), fmt.Sprint(900+3*i)
		if i == 14 || i == 15 {
			imp, exp = "NA", "NA"
		}
		if i >= 40 {
			exp = "NA"
		}
		hand.WriteString(day1.Add(time.Duration(i)*30*time.Minute).Format("2006-01-02 15:04:05") + "+0000," + imp + "," + exp + "\r\n")
	}
	got, err := os.ReadFile(filepath.Join(dir, "EML3300000001-A-"+ymd1+".csv"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != hand.String() {
		t.Errorf("EML3300000001-A-%s.csv\n%q\nwant\n%q", ymd1, got, hand.String())
	}
	for _, n := range names {
		b, _ := os.ReadFile(filepath.Join(dir, n))
		if lines := strings.Count(string(b), "\r\n"); lines != 49 || strings.Count(string(b), "\n") != 49 {
			t.Errorf("%s: %d CRLF lines, want the header and 48 rows", n, lines)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "EML3300000001-B-"+ymd2+".csv"))
	if !strings.HasPrefix(string(b), `"created_at","EML3300000001-B","EML3300000001-B_rev"`+"\r\n"+d2+" 00:00:00+0000,7720,NA\r\n") {
		t.Errorf("element B, day2: %.120q", b)
	}
	b, _ = os.ReadFile(filepath.Join(dir, "EML3300000002-"+ymd2+".csv"))
	if !strings.HasPrefix(string(b), `"created_at","EML3300000002","EML3300000002_rev"`+"\r\n"+d2+" 00:00:00+0000,548,0\r\n") {
		t.Errorf("single element, day2: %.120q", b)
	}

	// One meter, one day; a passive meter by serial is exported as asked.
	one := t.TempDir()
	if out, err := flowsCmd(t, "export", "smip", "--serial", "EML3300000002", "--from", d2, "--to", d2, "--out", one, "--database-url", url); err != nil ||
		!strings.HasPrefix(out, "wrote 1 files to "+one+": 1 meters, 1 days") {
		t.Errorf("one meter: %v %s", err, out)
	}

	future := today.AddDate(0, 0, 1).Format("2006-01-02")
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"--from", d1, "--to", d2, "--out", dir}, "--esco"},
		{[]string{"--esco", "EXPT", "--serial", "EML3300000001", "--from", d1, "--to", d2, "--out", dir}, "--serial"},
		{[]string{"--serial", "eml-1", "--from", d1, "--to", d2, "--out", dir}, "--serial"},
		{[]string{"--esco", "EXPT", "--from", "2026-02-30", "--to", d2, "--out", dir}, "--from"},
		{[]string{"--esco", "EXPT", "--to", d2, "--out", dir}, "--from: required"},
		{[]string{"--esco", "EXPT", "--from", d2, "--to", d1, "--out", dir}, "--to: " + d1 + " is before --from"},
		{[]string{"--esco", "EXPT", "--from", "2024-01-01", "--to", "2025-01-01", "--out", dir}, "--to: 367 days"},
		{[]string{"--esco", "EXPT", "--from", d1, "--to", future, "--out", dir}, "in the future"},
		{[]string{"--esco", "EXPT", "--from", d1, "--to", d2}, "--out"},
		{[]string{"--esco", "NOPE", "--from", d1, "--to", d2, "--out", dir, "--database-url", url}, "not found"},
		{[]string{"--serial", "EML3300000099", "--from", d1, "--to", d2, "--out", dir, "--database-url", url}, "not found"},
	} {
		out, err := flowsCmd(t, append([]string{"export", "smip"}, c.args...)...)
		if err == nil || !strings.Contains(out, c.says) {
			t.Errorf("%v: %v %q, want a refusal saying %q", c.args, err, out, c.says)
		}
	}
}
