package emop_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/flows-energy/flows/emop"
)

// FuzzDecodeFrame: any bytes decode to a frame or a typed error, never a
// panic; a frame that decodes cleanly re-encodes to the same bytes.
func FuzzDecodeFrame(f *testing.F) {
	for _, b := range golden(f) {
		f.Add(b)
	}
	f.Add([]byte{0x7e})
	f.Add([]byte{0x7e, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, n, err := emop.DecodeFrame(b)
		if err != nil {
			var crc *emop.CRCError
			var le *emop.LengthError
			var de *emop.DelimiterError
			if !errors.As(err, &crc) && !errors.As(err, &le) && !errors.As(err, &de) && !errors.Is(err, emop.ErrTruncated) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		if n > len(b) || n > emop.MaxFrameSize {
			t.Fatalf("used %d bytes of %d", n, len(b))
		}
		out, err := fr.AppendTo(nil)
		if err != nil {
			t.Fatalf("a decoded frame does not encode: %v", err)
		}
		if string(out) != string(b[:n]) {
			t.Fatalf("re-encoded % x, decoded from % x", out, b[:n])
		}
		if rec, err := emop.ParseRecord(fr.Data); err == nil {
			if o, ok := emop.Lookup(rec.Object); ok {
				_, _ = emop.DecodeValue(o, rec.Payload)
			}
		}
	})
}

// FuzzDecodePayload: every object's decoder and every data-field parser
// accepts any bytes without panicking; a default data field and a clock
// record that parse re-encode to the bytes they came from.
func FuzzDecodePayload(f *testing.F) {
	for _, b := range golden(f) {
		if fr, _, err := emop.DecodeFrame(b); err == nil {
			f.Add(fr.Data)
		}
	}
	objs := emop.All()
	f.Fuzz(func(t *testing.T, p []byte) {
		for i := range objs {
			_, _ = emop.DecodeValue(&objs[i], p)
		}
		if rec, err := emop.ParseRecord(p); err == nil {
			if out := rec.AppendTo(nil); string(out) != string(p) {
				t.Fatalf("record re-encoded % x, parsed from % x", out, p)
			}
		}
		if c, err := emop.DecodeClock(p); err == nil {
			out, err := emop.EncodeClock(c)
			if err != nil {
				t.Fatalf("decoded clock %s does not encode: %v", c, err)
			}
			// The day of week is not cross-checked on decode, so only the
			// date and time bytes must survive.
			if string(out[:6]) != string(p[:6]) {
				t.Fatalf("clock re-encoded % x, decoded from % x", out, p)
			}
		}
		_, _ = emop.ParseEventLogRequest(p)
		_, _, _ = emop.ParseEventLogResponse(p)
		_, _, _ = emop.ParseProfileLogRequest(p)
		_, _, _ = emop.ParseProfileLog1Response(p)
		_, _, _ = emop.ParseProfileLog2Response(p, false)
		_, _, _ = emop.ParseProfileLog2Response(p, true)
		_, _ = emop.DecodeTransaction(p)
	})
}

// Profile-log answers decode without panicking into records that encode
// back to an answer decoding to the same records.
func FuzzProfileLogResponse(f *testing.F) {
	t0 := time.Date(2026, 6, 2, 4, 30, 0, 0, time.UTC)
	l1, _ := emop.ProfileLog1Response(t0, []emop.ProfileLog1Record{{Timestamp: t0, Status: emop.StatusValidData, ImportA: 1000, ImportB: 7}})
	l2, _ := emop.ProfileLog2Response(t0, false, []emop.ProfileLog2Record{{Timestamp: t0, Status: emop.StatusValidData, ActiveExportA: 5, VoltageTenths: 2401}})
	f.Add(l1)
	f.Add(l2)
	f.Add(l1[:20])
	f.Fuzz(func(t *testing.T, p []byte) {
		if start, recs, err := emop.ParseProfileLog1Response(p); err == nil {
			out, err := emop.ProfileLog1Response(start, recs)
			if err != nil {
				t.Fatalf("decoded log 1 records do not encode: %v", err)
			}
			if _, again, err := emop.ParseProfileLog1Response(out); err != nil || !reflect.DeepEqual(again, recs) {
				t.Fatalf("log 1 records changed on re-encoding: %+v, then %+v (%v)", recs, again, err)
			}
		}
		for _, twin := range []bool{false, true} {
			start, recs, err := emop.ParseProfileLog2Response(p, twin)
			if err != nil {
				continue
			}
			out, err := emop.ProfileLog2Response(start, twin, recs)
			if err != nil {
				t.Fatalf("decoded log 2 records do not encode: %v", err)
			}
			if _, again, err := emop.ParseProfileLog2Response(out, twin); err != nil || !reflect.DeepEqual(again, recs) {
				t.Fatalf("log 2 records changed on re-encoding: %+v, then %+v (%v)", recs, again, err)
			}
		}
	})
}
