// Package intervalcsv writes the reference platform's three-phase interval
// CSV (platform-behaviour.md D.7, emop-protocol.md A.11): a header of
// created_at, a column per channel (its name, emop.ChannelName) and,
// optionally, a 0/1 column per status flag (emop.IntervalFlagNames); then
// a row per interval the meter holds, in time order, created_at as
// "YYYY-MM-DD HH:MM:SS+0000" (the interval's start, UTC) and the values
// in kW / kWh. encoding/csv quoting, LF line ends. `emop
// three_phase_intervals --csv` and `flows export intervals` both write it.
package intervalcsv

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/flows-energy/flows/emop"
)

// Row is one interval: its start, a value per channel column ("" where
// the meter sent none) and its status flags (emop.Interval* bits).
type Row struct {
	At     time.Time
	Values []string
	Status uint16
}

// FileName is the reference's name of a meter's file for one UTC day:
// <serial>_<YYYY-MM-DD>_intervals.csv.
func FileName(serial string, day time.Time) string {
	return fmt.Sprintf("%s_%s_intervals.csv", serial, day.UTC().Format("2006-01-02"))
}

// Write writes the file: the header (channels are the column names), then
// rows; with statuses, a column per flag.
func Write(w io.Writer, channels []string, rows []Row, statuses bool) error {
	cw := csv.NewWriter(w)
	header := append([]string{"created_at"}, channels...)
	if statuses {
		header = append(header, emop.IntervalFlagNames...)
	}
	if err := cw.Write(header); err != nil {
		return err
	}
	for _, row := range rows {
		rec := append([]string{row.At.UTC().Format("2006-01-02 15:04:05+0000")}, row.Values...)
		if statuses {
			for i := range emop.IntervalFlagNames {
				rec = append(rec, strconv.Itoa(int(row.Status>>i&1)))
			}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
