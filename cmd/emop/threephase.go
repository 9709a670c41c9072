package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/internal/cli"
	"github.com/flows-energy/flows/intervalcsv"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/meterop"
	"github.com/shopspring/decimal"
	"github.com/spf13/cobra"
)

// readConfig reads and decodes the three-phase hardware configuration.
func readConfig(ctx context.Context, m meterop.Meters, t meterconn.Target) (emop.ThreePhaseConfig, error) {
	p, err := m.Read(ctx, t, emop.ObjThreePhaseHardwareConfig)
	if err != nil {
		return emop.ThreePhaseConfig{}, err
	}
	return emop.DecodeThreePhaseConfig(p)
}

// addThreePhaseCommands adds the reference's three-phase reads and the
// interval fetch.
func addThreePhaseCommands(add addFunc) {
	add("three_phase_serial", "serial of a three-phase meter", any0, false, simple(emop.ObjThreePhaseSerial, decoded(emop.ObjThreePhaseSerial)))
	add("three_phase_hardware_configuration", "meter type of a three-phase meter (JSON; it decides the scaling)", any0, true,
		func(ctx context.Context, m meterop.Meters, t meterconn.Target, _ []string) (any, error) {
			c, err := readConfig(ctx, m, t)
			if err != nil {
				return nil, err
			}
			return map[string]any{"meter_type": c.MeterType, "meter_type_name": c.TypeName(), "hardware": c.Hardware()}, nil
		})
	add("three_phase_instantaneous_voltage", "L1, L2, L3 voltages (V; L2 or L3 null when its read fails)", any0, true,
		func(ctx context.Context, m meterop.Meters, t meterconn.Target, _ []string) (any, error) {
			out := map[string]any{}
			for k, id := range emop.ThreePhaseVoltages {
				p, err := m.Read(ctx, t, id)
				var v decimal.Decimal
				if err == nil {
					v, err = emop.DecodeVoltage(p)
				}
				name := fmt.Sprintf("l%d", k+1)
				switch {
				case err == nil:
					out[name] = v.StringFixed(1)
				case k == 0:
					return nil, err
				default:
					out[name] = nil // known flakiness of back-to-back phase reads
					out[name+"_error"] = explain(err)
				}
			}
			return out, nil
		})
	add("three_phase_read", "the six energy totals in kWh, scaled by the meter type (null where a read fails)", any0, true,
		func(ctx context.Context, m meterop.Meters, t meterconn.Target, _ []string) (any, error) {
			c, err := readConfig(ctx, m, t)
			if err != nil {
				return nil, err
			}
			if _, err := c.Scale(); err != nil {
				return nil, err
			}
			out := map[string]any{"hardware": c.Hardware()}
			for _, tot := range emop.ThreePhaseTotals {
				p, err := m.Read(ctx, t, tot.ID)
				var raw uint32
				if err == nil {
					raw, err = emop.DecodeU32(p)
				}
				if err != nil {
					out[tot.Name] = nil
					continue
				}
				v, _ := c.KWh(raw)
				out[tot.Name] = v.String()
			}
			return out, nil
		})
	var day, startTime, endTime, csvPath string
	var statuses bool
	c := add("three_phase_intervals", "interval profile of a three-phase meter: --day, or --start-time and --end-time (at most 24 h)", any0, true,
		func(ctx context.Context, m meterop.Meters, t meterconn.Target, _ []string) (any, error) {
			from, to, err := intervalWindow(day, startTime, endTime)
			if err != nil {
				return nil, err
			}
			cfg, err := readConfig(ctx, m, t)
			if err != nil {
				return nil, err
			}
			rows, err := fetchIntervals(ctx, m, t, from, to)
			if err != nil {
				return nil, err
			}
			if csvPath != "" {
				return nil, writeIntervalsCSV(csvPath, t.Serial, from, cfg, rows, statuses)
			}
			return intervalsJSON(cfg, rows, statuses)
		})
	c.Example = meterExample("three_phase_intervals --day 2026-11-30")
	c.Flags().StringVar(&day, "day", "", "a UTC day, YYYY-MM-DD: 00:00 to 23:30 (as the reference)")
	c.Flags().StringVar(&startTime, "start-time", "", "window start (ISO 8601; no offset means UTC)")
	c.Flags().StringVar(&endTime, "end-time", "", "window end (ISO 8601), at most 24 hours after --start-time")
	c.Flags().StringVar(&csvPath, "csv", "", "write the reference's CSV here: a file, or a folder for <serial>_<day>_intervals.csv")
	c.Flags().BoolVar(&statuses, "include-statuses", false, "add the status flags (a column each in CSV)")
	add("tariffs_time_switches_element_a_or_single_read", "element A (or single) time switch settings (80 bytes, hex)", any0, false,
		simple(emop.ObjTimeSwitchElementAOrSingle, hexText))
	add("tariffs_time_switches_element_b_read", "element B time switch settings (80 bytes, hex)", any0, false,
		simple(emop.ObjTimeSwitchElementB, hexText))
}

func hexText(p []byte) (string, error) { return hex.EncodeToString(p), nil }

// intervalWindow is the window a three-phase interval fetch asks for.
func intervalWindow(day, start, end string) (time.Time, time.Time, error) {
	switch {
	case day != "" && (start != "" || end != ""):
		return time.Time{}, time.Time{}, errors.New("--day or --start-time/--end-time, not both")
	case day != "":
		d, err := time.Parse("2006-01-02", day)
		if err != nil {
			return time.Time{}, time.Time{}, fmt.Errorf("--day %q: want YYYY-MM-DD", day)
		}
		// 00:00 to 23:30 (the start of the last half hour), as the
		// reference asks; the fetch covers every half hour of the day.
		return d, d.Add(24 * time.Hour), nil
	case start == "" || end == "":
		return time.Time{}, time.Time{}, errors.New("give --day, or --start-time and --end-time")
	}
	from, err := parseTime(start)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("--start-time: %w", err)
	}
	to, err := parseTime(end)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("--end-time: %w", err)
	}
	if !to.After(from) || to.Sub(from) > 24*time.Hour {
		return time.Time{}, time.Time{}, errors.New("--end-time must be after --start-time, at most 24 hours")
	}
	return from, to, nil
}

// fetchIntervals reads [from, to) in frames of at most 4 hours, asking
// again from the end of the last interval a response carried until the
// frame is covered or the meter has nothing more in it.
func fetchIntervals(ctx context.Context, m meterop.Meters, t meterconn.Target, from, to time.Time) ([]emop.IntervalRow, error) {
	var rows []emop.IntervalRow
	for at := from; at.Before(to); {
		end := at.Add(emop.MaxIntervalWindow)
		if end.After(to) {
			end = to
		}
		req, err := emop.ThreePhaseIntervalsRequest(emop.ProfileZero, at, end)
		if err != nil {
			return nil, err
		}
		resp, err := m.Raw(ctx, t, req)
		if err != nil {
			return nil, err
		}
		r, err := emop.ParseThreePhaseIntervals(resp)
		if err != nil {
			return nil, err
		}
		got, err := r.Rows()
		if err != nil {
			return nil, err
		}
		next := end
		if len(got) > 0 {
			last := got[len(got)-1]
			if e := last.At.Add(time.Duration(last.Minutes) * time.Minute); e.After(at) && e.Before(end) {
				next = e // the frame was full: ask for the rest
			}
		}
		for _, row := range got {
			if !row.At.Before(at) && row.At.Before(to) && (len(rows) == 0 || row.At.After(rows[len(rows)-1].At)) {
				rows = append(rows, row)
			}
		}
		at = next
	}
	return rows, nil
}

// scaledValues are an interval's channel values in kW / kWh.
func scaledValues(cfg emop.ThreePhaseConfig, row emop.IntervalRow) ([]string, error) {
	out := make([]string, len(row.Values))
	for i, v := range row.Values {
		d, err := cfg.KWh(v)
		if err != nil {
			return nil, err
		}
		out[i] = d.String()
	}
	return out, nil
}

func flagNames(status uint16) []string {
	var out []string
	for i, n := range emop.IntervalFlagNames {
		if status&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

func intervalsJSON(cfg emop.ThreePhaseConfig, rows []emop.IntervalRow, statuses bool) (any, error) {
	out := []map[string]any{}
	for _, row := range rows {
		vals, err := scaledValues(cfg, row)
		if err != nil {
			return nil, err
		}
		rec := map[string]any{"created_at": row.At.Format(time.RFC3339)}
		for i, c := range row.Channels {
			rec[emop.ChannelName(c)] = vals[i]
		}
		if statuses {
			rec["status"] = flagNames(row.Status)
		}
		out = append(out, rec)
	}
	return out, nil
}

// writeIntervalsCSV writes the reference's interval CSV (intervalcsv):
// created_at, a column per channel (kW / kWh), and with statuses a 0/1
// column per flag. A folder gets <serial>_<day>_intervals.csv.
func writeIntervalsCSV(path, serial string, from time.Time, cfg emop.ThreePhaseConfig, rows []emop.IntervalRow, statuses bool) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, intervalcsv.FileName(serial, from))
	}
	var channels []string
	if len(rows) > 0 {
		for _, c := range rows[0].Channels {
			channels = append(channels, emop.ChannelName(c))
		}
	}
	out := make([]intervalcsv.Row, len(rows))
	for i, row := range rows {
		vals, err := scaledValues(cfg, row)
		if err != nil {
			return err
		}
		out[i] = intervalcsv.Row{At: row.At, Values: vals, Status: row.Status}
	}
	var b bytes.Buffer
	if err := intervalcsv.Write(&b, channels, out, statuses); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// newClockDriftCmd is clock_drift: the meter's clock difference as the
// last sync measured it, read from the shadow of the mediator's GetInfo
// (the reference read the top level, where the fields are not, and always
// printed nulls).
func newClockDriftCmd(g *globals) *cobra.Command {
	return &cobra.Command{Use: "clock_drift [SERIAL]", Short: "clock difference from the last sync (from the mediator)", Args: any0,
		Example: cli.Example("emop clock_drift EML2137580826"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.mediatorClient(cmd)
			if err != nil {
				return err
			}
			ts, err := g.targets(cmd, args)
			if err != nil {
				return err
			}
			for _, t := range ts {
				js, err := c.Info(cmd.Context(), t.Serial)
				if err != nil {
					return err
				}
				v, err := clockDrift(js)
				if err != nil {
					return err
				}
				v["serial"] = t.Serial
				printResult(cmd, "", "clock_drift", true, v)
			}
			return nil
		}}
}
