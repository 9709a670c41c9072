package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/internal/cli"
	"github.com/flows-energy/flows/intervalcsv"
	"github.com/flows-energy/flows/postgres"
	"github.com/spf13/cobra"
)

// newExportIntervalsCmd is flows export intervals: three-phase interval
// profiles as the reference's files.
func newExportIntervalsCmd() *cobra.Command {
	var esco, serial, from, to, out string
	var statuses bool
	cmd := &cobra.Command{
		Use:     "intervals (--esco CODE | --serial S) --from DAY --to DAY --out DIR [--status]",
		Example: cli.Example("flows export intervals --serial EML2200001022 --from 2026-11-01 --to 2026-11-07 --out ./3p"),
		Short:   "Write three-phase interval CSV files: one per meter and UTC day",
		Long: `Writes DIR/<serial>_<YYYY-MM-DD>_intervals.csv for every three-phase meter and
UTC day from --from to --to (both included, at most 366 days): the
reference's three_phase_intervals file, byte for byte what
"emop three_phase_intervals --csv" writes — a header created_at, a column
per channel the meter reported that day (kW, kWh), with --status a 0/1
column per status flag; then a row per half hour Flows holds (flagged ones
included), "YYYY-MM-DD HH:MM:SS+0000" its start in UTC. Existing files are
replaced. --esco exports the ESCO's active three-phase meters; --serial one
three-phase meter.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// The same flags, and rules, as flows export smip.
			x, err := parseSMIPExport(esco, serial, from, to, out, time.Now())
			if err != nil {
				return err
			}
			store, closeFn, err := openStore(cmd)
			if err != nil {
				return err
			}
			defer closeFn()
			meters, err := threePhaseMeters(cmd, store, x.esco, x.serial)
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
				bar.Add(1)
				for day := x.from; !day.After(x.to); day = day.AddDate(0, 0, 1) {
					if err := writeIntervalsDay(cmd, store, &m, day, x.out, statuses); err != nil {
						return fmt.Errorf("export %s (%d files written): %w", m.Serial, files, err)
					}
					files++
				}
			}
			bar.Done() // its line ended before the result's
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d files to %s: %d meters, %d days (%s to %s)\n",
				files, x.out, len(meters), flows.DaysBetween(x.from, x.to), flows.FormatDay(x.from), flows.FormatDay(x.to))
			return nil
		},
	}
	cmd.Flags().StringVar(&esco, "esco", "", "export this ESCO's three-phase meters")
	cmd.Flags().StringVar(&serial, "serial", "", "export this three-phase meter")
	cmd.Flags().StringVar(&from, "from", "", "first UTC day, YYYY-MM-DD (required)")
	cmd.Flags().StringVar(&to, "to", "", "last UTC day, YYYY-MM-DD, included; at most today (required)")
	cmd.Flags().StringVar(&out, "out", "", "directory to write the files into, created if missing (required)")
	cmd.Flags().BoolVar(&statuses, "status", false, "add a 0/1 column per status flag")
	addDatabaseFlag(cmd)
	return cmd
}

// threePhaseMeters finds what to export: the one meter (EINVALID naming
// --serial when it is not three-phase), or the ESCO's active three-phase
// meters. ENOTFOUND for an unknown serial or ESCO.
func threePhaseMeters(cmd *cobra.Command, store *postgres.Store, esco, serial string) ([]flows.Meter, error) {
	if serial != "" {
		m, err := store.MeterBySerial(cmd.Context(), serial)
		if err != nil {
			return nil, err
		}
		if !emop.IsThreePhase(m.Hardware) {
			return nil, flows.FieldError("--serial", "%s is not a three-phase meter (%s): it has no interval profile (see flows export smip)", serial, m.Hardware)
		}
		return []flows.Meter{*m}, nil
	}
	if _, err := store.ESCOByCode(cmd.Context(), esco); err != nil {
		return nil, err
	}
	all, err := store.Meters(cmd.Context(), flows.MeterFilter{ESCOCode: esco, Mode: flows.ModeActive})
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(m flows.Meter) bool { return !emop.IsThreePhase(m.Hardware) }), nil
}

// writeIntervalsDay writes one meter's file for one day, beside its name
// and renamed into place, so a file with the final name is always whole.
func writeIntervalsDay(cmd *cobra.Command, store *postgres.Store, m *flows.Meter, day time.Time, dir string, statuses bool) error {
	ivs, err := store.ThreePhaseDay(cmd.Context(), m.ID, day)
	if err != nil {
		return err
	}
	channels, rows := intervalRows(ivs)
	names := make([]string, len(channels))
	for i, c := range channels {
		names[i] = emop.ChannelName(emop.ObjectID(c))
	}
	var buf bytes.Buffer
	if err := intervalcsv.Write(&buf, names, rows, statuses); err != nil {
		return err
	}
	path := filepath.Join(dir, intervalcsv.FileName(m.Serial, day))
	if err := os.WriteFile(path+".tmp", buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

// intervalRows lays a day's intervals out as the file's columns: every
// channel any interval has, in emop.ThreePhaseChannels' order and then by
// id, "" where an interval has no value for one.
func intervalRows(ivs []flows.ThreePhaseInterval) ([]uint32, []intervalcsv.Row) {
	var channels []uint32
	for _, iv := range ivs {
		for _, c := range iv.Channels {
			if !slices.Contains(channels, c) {
				channels = append(channels, c)
			}
		}
	}
	rank := func(c uint32) int {
		if i := slices.Index(emop.ThreePhaseChannels, emop.ObjectID(c)); i >= 0 {
			return i
		}
		return len(emop.ThreePhaseChannels) + int(c)
	}
	slices.SortFunc(channels, func(a, b uint32) int { return rank(a) - rank(b) })
	rows := make([]intervalcsv.Row, len(ivs))
	for i, iv := range ivs {
		vals := make([]string, len(channels))
		for j, c := range iv.Channels {
			vals[slices.Index(channels, c)] = iv.Values[j].String()
		}
		rows[i] = intervalcsv.Row{At: iv.At, Values: vals, Status: iv.Status}
	}
	return channels, rows
}
