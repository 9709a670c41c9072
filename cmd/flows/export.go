package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/internal/cli"
	"github.com/flows-energy/flows/postgres"
	"github.com/flows-energy/flows/smip"
	"github.com/spf13/cobra"
)

// maxExportDays bounds one export: a year (a leap year's 366 days).
const maxExportDays = 366

func newExportCmd() *cobra.Command {
	export := &cobra.Command{Use: "export", Short: "Export interval data as files"}
	export.AddCommand(newExportSMIPCmd(), newExportIntervalsCmd())
	return export
}

// smipExport is what flows export smip was asked, validated.
type smipExport struct {
	esco, serial string
	from, to     time.Time // UTC days, both included
	out          string
}

func newExportSMIPCmd() *cobra.Command {
	var esco, serial, from, to, out string
	cmd := &cobra.Command{
		Use:     "smip (--esco CODE | --serial S) --from DAY --to DAY --out DIR",
		Example: cli.Example("flows export smip --esco WLCE --from 2026-11-01 --to 2026-11-30 --out ./smip", "flows export smip --serial EML2137580826 --from 2026-11-30 --to 2026-11-30 --out ."),
		Short:   "Write SMIP CSV files of half-hourly profile readings: one per meter, element and UTC day",
		Long: `Writes DIR/<serial>[-A|-B]-<YYYYMMDD>.csv for every UTC day from --from to --to
(both included, at most 366 days): a twin-element meter gets an -A and a -B
file a day, a single-element meter one file without the suffix. Each file is
the reference downloader's SMIP CSV, byte for byte, and the same as
GET /api/v1/meters/{serial}/intervals.csv: a quoted header
"created_at","<name>","<name>_rev", then 48 rows, one per half hour,
"YYYY-MM-DD HH:MM:SS+0000,<import Wh>,<export Wh>" of cumulative readings,
NA where a reading is missing, CRLF line ends. Existing files are replaced.
--esco exports the ESCO's active single-phase meters (a passive twin's and
a three-phase meter's profile is not collected here); --serial one meter.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			x, err := parseSMIPExport(esco, serial, from, to, out, time.Now())
			if err != nil {
				return err
			}
			store, closeFn, err := openStore(cmd)
			if err != nil {
				return err
			}
			defer closeFn()
			meters, err := x.meters(cmd, store)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(x.out, 0o755); err != nil {
				return flows.FieldError("--out", "%v", err)
			}
			files := 0
			bar := cli.NewProgress(cmd.OutOrStdout(), "meters exported", len(meters))
			defer bar.Done()
			for _, m := range meters {
				n, err := x.write(cmd, store, &m)
				bar.Add(1)
				files += n
				if err != nil {
					return fmt.Errorf("export %s (%d files written): %w", m.Serial, files, err)
				}
			}
			bar.Done() // its line ended before the result's
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d files to %s: %d meters, %d days (%s to %s)\n",
				files, x.out, len(meters), flows.DaysBetween(x.from, x.to), flows.FormatDay(x.from), flows.FormatDay(x.to))
			return nil
		},
	}
	cmd.Flags().StringVar(&esco, "esco", "", "export this ESCO's meters")
	cmd.Flags().StringVar(&serial, "serial", "", "export this meter")
	cmd.Flags().StringVar(&from, "from", "", "first UTC day, YYYY-MM-DD (required)")
	cmd.Flags().StringVar(&to, "to", "", "last UTC day, YYYY-MM-DD, included; at most today (required)")
	cmd.Flags().StringVar(&out, "out", "", "directory to write the files into, created if missing (required)")
	addDatabaseFlag(cmd)
	return cmd
}

// parseSMIPExport validates the flags before anything is read or
// written: EINVALID naming the flag.
func parseSMIPExport(esco, serial, from, to, out string, now time.Time) (*smipExport, error) {
	x := &smipExport{esco: esco, serial: serial, out: out}
	switch {
	case esco == "" && serial == "":
		return nil, flows.FieldError("--esco", "give --esco CODE or --serial S")
	case esco != "" && serial != "":
		return nil, flows.FieldError("--serial", "give --esco or --serial, not both")
	case serial != "":
		if err := flows.ValidateSerial(serial); err != nil {
			return nil, flows.FieldError("--serial", "%q is not a meter serial (%s)", serial, flows.SerialPattern)
		}
	}
	var err error
	for _, d := range []struct {
		flag, v string
		dst     *time.Time
	}{{"--from", from, &x.from}, {"--to", to, &x.to}} {
		if d.v == "" {
			return nil, flows.FieldError(d.flag, "required (a UTC day, YYYY-MM-DD)")
		}
		if *d.dst, err = flows.ParseDay(d.flag, d.v); err != nil {
			return nil, err
		}
	}
	switch n := flows.DaysBetween(x.from, x.to); {
	case x.to.Before(x.from):
		return nil, flows.FieldError("--to", "%s is before --from %s", to, from)
	case x.to.After(flows.UTCDay(now)):
		return nil, flows.FieldError("--to", "%s is in the future", to)
	case n > maxExportDays:
		return nil, flows.FieldError("--to", "%d days from --from: at most %d in one export", n, maxExportDays)
	}
	if out == "" {
		return nil, flows.FieldError("--out", "required (a directory)")
	}
	return x, nil
}

// meters finds what to export: the one meter, or the ESCO's active
// single-phase meters. ENOTFOUND for an unknown serial or ESCO.
func (x *smipExport) meters(cmd *cobra.Command, store *postgres.Store) ([]flows.Meter, error) {
	if x.serial != "" {
		m, err := store.MeterBySerial(cmd.Context(), x.serial)
		if err != nil {
			return nil, err
		}
		return []flows.Meter{*m}, nil
	}
	if _, err := store.ESCOByCode(cmd.Context(), x.esco); err != nil {
		return nil, err
	}
	all, err := store.Meters(cmd.Context(), flows.MeterFilter{ESCOCode: x.esco, Mode: flows.ModeActive})
	if err != nil {
		return nil, err
	}
	var ms []flows.Meter
	for _, m := range all {
		if !emop.IsThreePhase(m.Hardware) {
			ms = append(ms, m)
		}
	}
	return ms, nil
}

// write writes one meter's files, day by day, and returns how many. Each
// file is written beside its name and renamed into place, so a file with
// the final name is always whole.
func (x *smipExport) write(cmd *cobra.Command, store *postgres.Store, m *flows.Meter) (int, error) {
	twin := emop.IsTwinElement(m.Hardware)
	n := 0
	for day := x.from; !day.After(x.to); day = day.AddDate(0, 0, 1) {
		for _, e := range smip.Elements(twin) {
			readings, err := store.SMIPDay(cmd.Context(), m.ID, e, day)
			if err != nil {
				return n, err
			}
			var buf bytes.Buffer
			if err := smip.WriteDay(&buf, smip.Name(m.Serial, e, twin), readings); err != nil {
				return n, err
			}
			path := filepath.Join(x.out, smip.FileName(m.Serial, e, twin, day))
			if err := os.WriteFile(path+".tmp", buf.Bytes(), 0o644); err != nil {
				return n, err
			}
			if err := os.Rename(path+".tmp", path); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}
