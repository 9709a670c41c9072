// Package smip writes half-hourly profile data as SMIP CSV files, byte for
// byte as the reference platform's profile downloader does
// (platform-behaviour.md D.6): one file per meter, element and UTC day,
// named <serial>[-A|-B]-<YYYYMMDD>.csv (the element only on twin-element
// meters), a quoted header "created_at","<serial>[-A]","<serial>[-A]_rev",
// then 48 unquoted rows "YYYY-MM-DD HH:MM:SS+0000,<import Wh>,<export Wh>"
// of cumulative readings, "NA" where a reading is missing, CRLF line ends.
package smip

import (
	"bufio"
	"fmt"
	"io"
	"time"

	"github.com/flows-energy/flows"
)

// Name is the column and file stem of a meter's element: the serial, with
// -A or -B on twin-element meters.
func Name(serial, element string, twin bool) string {
	if twin && (element == "A" || element == "B") {
		return serial + "-" + element
	}
	return serial
}

// FileName is the SMIP file of one element and UTC day.
func FileName(serial, element string, twin bool, day time.Time) string {
	return Name(serial, element, twin) + "-" + day.UTC().Format("20060102") + ".csv"
}

// WriteDay writes one day's file: the header, then a row per reading in
// order (the 48 half hours of a day, missing ones as NA).
func WriteDay(w io.Writer, name string, readings []flows.HalfHourReading) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%q,%q,%q\r\n", "created_at", name, name+"_rev")
	for _, r := range readings {
		fmt.Fprintf(bw, "%s,%s,%s\r\n", r.At.UTC().Format("2006-01-02 15:04:05-0700"), value(r.ImportWh), value(r.ExportWh))
	}
	return bw.Flush()
}

func value(v *int64) string {
	if v == nil {
		return "NA"
	}
	return fmt.Sprint(*v)
}
