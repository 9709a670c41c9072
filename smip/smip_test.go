package smip_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/smip"
)

// A day's file is byte for byte what the reference downloader writes:
// quoted header, unquoted rows, +0000, NA for a missing reading, CRLF.
func TestWriteDayByteForByte(t *testing.T) {
	day := time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC) // a UK clock-change day: still 48 UTC half hours
	var rs []flows.HalfHourReading
	for i := range 48 {
		imp, exp := int64(1000+i*10), int64(5)
		r := flows.HalfHourReading{At: day.Add(time.Duration(i) * 30 * time.Minute), ImportWh: &imp, ExportWh: &exp}
		if i == 2 {
			r.ImportWh, r.ExportWh = nil, nil
		}
		rs = append(rs, r)
	}
	var got bytes.Buffer
	if err := smip.WriteDay(&got, smip.Name("EML2137580826", "A", true), rs); err != nil {
		t.Fatal(err)
	}
	want := "\"created_at\",\"EML2137580826-A\",\"EML2137580826-A_rev\"\r\n" +
		"2026-03-29 00:00:00+0000,1000,5\r\n" +
		"2026-03-29 00:30:00+0000,1010,5\r\n" +
		"2026-03-29 01:00:00+0000,NA,NA\r\n" +
		"2026-03-29 01:30:00+0000,1030,5\r\n"
	if !bytes.HasPrefix(got.Bytes(), []byte(want)) {
		t.Errorf("file starts\n%q\nwant\n%q", got.String()[:len(want)], want)
	}
	if lines := bytes.Count(got.Bytes(), []byte("\r\n")); lines != 49 || !bytes.HasSuffix(got.Bytes(), []byte("2026-03-29 23:30:00+0000,1470,5\r\n")) {
		t.Errorf("%d lines, ending %q", lines, got.String()[got.Len()-40:])
	}
	if n := smip.FileName("EML2137580826", "B", true, day); n != "EML2137580826-B-20260329.csv" {
		t.Errorf("twin file name %s", n)
	}
	if n := smip.FileName("EML2137580826", "SINGLE", false, day); n != "EML2137580826-20260329.csv" {
		t.Errorf("single-element file name %s", n)
	}
}
