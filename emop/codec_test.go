package emop_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows/emop"
	"github.com/shopspring/decimal"
)

func golden(t testing.TB) map[string][]byte {
	t.Helper()
	f, err := os.Open("testdata/golden-frames.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, h, _ := strings.Cut(line, " ")
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = b
	}
	return out
}

func TestCRCMatchesReferenceFrame(t *testing.T) {
	// 7e 11 00 000000 00 21ae42 05 01 600100 00 c02f (emop-protocol.md A.5)
	body, _ := hex.DecodeString("11000000000021ae42050160010000")
	if got := emop.CRC16(body); got != 0xc02f {
		t.Fatalf("CRC = %04x, want c02f", got)
	}
}

func TestEncodeReferenceRequest(t *testing.T) {
	f := emop.Frame{SrcAddr: 0x21AE42, Control: 5, Data: emop.ReadRequest(emop.ObjSerial)}
	b, err := f.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := golden(t)["read_serial_request"]; !bytes.Equal(b, want) {
		t.Fatalf("encoded % x\n   want % x", b, want)
	}
}

func decodeGolden(t *testing.T, name string) (emop.Frame, emop.Record, any) {
	t.Helper()
	b := golden(t)[name]
	f, n, err := emop.DecodeFrame(b)
	if err != nil || n != len(b) {
		t.Fatalf("%s: decode: %v (used %d of %d bytes)", name, err, n, len(b))
	}
	rec, err := emop.ParseRecord(f.Data)
	if err != nil {
		t.Fatalf("%s: record: %v", name, err)
	}
	o, ok := emop.Lookup(rec.Object)
	if !ok {
		t.Fatalf("%s: object %s unknown", name, rec.Object)
	}
	v, err := emop.DecodeValue(o, rec.Payload)
	if err != nil {
		t.Fatalf("%s: value: %v", name, err)
	}
	return f, rec, v
}

func TestGoldenResponses(t *testing.T) {
	for _, c := range []struct {
		name string
		want any
	}{
		{"serial_response", "EML2137580761"},
		{"balance_response", "3.00000"},
		{"negative_balance_response", "-12.34500"},
		{"activation_response", "2024-04-24T00:00:00Z"},
		{"unit_rate_response", "0.07650"},
		{"csq_response", emop.Signal{CSQ: 16, NetworkOperator: 1}},
		{"hardware_twin_response", "6C"},
		{"hardware_single_response", "3Aw"},
		{"firmware_response", "3_02_8"},
		{"clock_sunday_response", "2024-04-28T13:05:09Z"},
		{"voltage_response", "238.6"},
		{"element_a_response", emop.Reading{ImportActive: 1234567, ExportActive: 89, ImportReactive: 1000, ExportReactive: 2}},
	} {
		f, _, v := decodeGolden(t, c.name)
		if v != c.want {
			t.Errorf("%s: value %#v, want %#v", c.name, v, c.want)
		}
		if f.Sequence() != 1 || f.AckNak() != 0 || f.SrcAddr != 0x123456 || f.DestAddr != 0x21AE42 {
			t.Errorf("%s: header seq %d nak %d src %06x dst %06x", c.name, f.Sequence(), f.AckNak(), f.SrcAddr, f.DestAddr)
		}
	}
	if got := emop.RegistryHardware("6C", -1); got != "C1.w" {
		t.Errorf("6C maps to %s", got)
	}
	if got := emop.RegistryHardware("3Aw", -1); got != "EMA1.w" {
		t.Errorf("3Aw maps to %s", got)
	}
	f, _, _ := emop.DecodeFrame(golden(t)["nak_unknown_object_response"])
	if f.Sequence() != 1 || f.AckNak() != emop.NakUnknownObject {
		t.Errorf("captured NAK decodes to seq %d nak %d, want 1 and 5", f.Sequence(), f.AckNak())
	}
}

func TestCorruptFramesGiveTypedErrors(t *testing.T) {
	good := golden(t)["balance_response"]
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	var crcErr *emop.CRCError
	var lenErr *emop.LengthError
	var delimErr *emop.DelimiterError

	flipped := mut(func(b []byte) []byte { b[14] ^= 0x10; return b })
	if _, _, err := emop.DecodeFrame(flipped); !errors.As(err, &crcErr) || crcErr.Got != emop.FrameCRC(good) {
		t.Errorf("flipped bit: %v, want *CRCError carrying %04x", err, emop.FrameCRC(good))
	}
	if f, _, err := emop.DecodeFrame(flipped); err == nil || len(f.Data) == 0 {
		t.Errorf("a CRC error still returns the frame for diagnosis")
	}
	if _, _, err := emop.DecodeFrame(good[:len(good)-1]); !errors.Is(err, emop.ErrTruncated) {
		t.Errorf("truncated: %v, want ErrTruncated", err)
	}
	if _, _, err := emop.DecodeFrame(mut(func(b []byte) []byte { b[1] = 5; return b })); !errors.As(err, &lenErr) {
		t.Errorf("length byte 5: %v, want *LengthError", err)
	}
	if _, _, err := emop.DecodeFrame(mut(func(b []byte) []byte { b[1]++; return b })); !errors.Is(err, emop.ErrTruncated) {
		t.Errorf("length one too long: %v, want ErrTruncated", err)
	}
	if _, _, err := emop.DecodeFrame(mut(func(b []byte) []byte { b[1]--; return b })); !errors.As(err, &crcErr) {
		t.Errorf("length one too short: %v, want *CRCError", err)
	}
	if _, _, err := emop.DecodeFrame(mut(func(b []byte) []byte { b[0] = 0x7f; return b })); !errors.As(err, &delimErr) || delimErr.Got != 0x7f {
		t.Errorf("bad delimiter: %v", err)
	}
	// ReadFrame reassembles a frame that arrives a byte at a time.
	f, raw, err := emop.ReadFrame(&oneByteReader{r: bytes.NewReader(append(append([]byte(nil), good...), 0x7e, 0x00))})
	if err != nil || !bytes.Equal(raw, good) || f.Control != 1 {
		t.Errorf("ReadFrame byte by byte: %v", err)
	}
	if _, _, err := emop.ReadFrame(bytes.NewReader(good[:10])); err == nil {
		t.Errorf("ReadFrame of a truncated frame succeeded")
	}
	if _, err := (&emop.Frame{}).AppendTo(nil); !errors.As(err, &lenErr) {
		t.Errorf("empty data field encodes: %v", err)
	}
	if _, err := (&emop.Frame{Data: make([]byte, emop.MaxData+1)}).AppendTo(nil); !errors.As(err, &lenErr) {
		t.Errorf("oversized data field encodes: %v", err)
	}
}

type oneByteReader struct{ r *bytes.Reader }

func (o *oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}

func TestMoneyIsExact(t *testing.T) {
	d := decimal.RequireFromString
	for _, c := range []struct {
		in  string
		hex string
	}{
		{"0.0765", "e21d0000"}, {"0.07650", "e21d0000"}, {"0.765", "d42a0100"}, {"42949.67295", "ffffffff"}, {"0", "00000000"},
	} {
		b, err := emop.EncodeMoney(d(c.in))
		if err != nil || hex.EncodeToString(b) != c.hex {
			t.Errorf("EncodeMoney(%s) = %x, %v; want %s", c.in, b, err, c.hex)
		}
		back, _ := emop.DecodeMoney(b)
		if !back.Equal(d(c.in)) {
			t.Errorf("round trip %s → %s", c.in, back)
		}
	}
	for _, bad := range []string{"0.000001", "-0.01", "42949.67296", "1e10"} {
		if _, err := emop.EncodeMoney(d(bad)); err == nil {
			t.Errorf("EncodeMoney(%s) accepted", bad)
		}
	}
	for _, c := range []string{"-21474.83648", "21474.83647", "-0.00001", "3"} {
		b, err := emop.EncodeBalance(d(c))
		back, _ := emop.DecodeBalance(b)
		if err != nil || !back.Equal(d(c)) {
			t.Errorf("balance %s round trip: %s, %v", c, back, err)
		}
	}
	if _, err := emop.EncodeBalance(d("21474.83648")); err == nil {
		t.Errorf("balance beyond s32 accepted")
	}
}

func TestClockRecord(t *testing.T) {
	for _, ts := range []time.Time{
		time.Date(2024, 4, 28, 13, 5, 9, 0, time.UTC), // Sunday → 0
		time.Date(2026, 11, 26, 23, 59, 59, 0, time.UTC),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		b, err := emop.EncodeClock(ts)
		if err != nil {
			t.Fatal(err)
		}
		if b[6] != byte(ts.Weekday()) {
			t.Errorf("%v: day of week byte %d, want %d (0 = Sunday)", ts, b[6], ts.Weekday())
		}
		back, err := emop.DecodeClock(b)
		if err != nil || !back.Equal(ts) {
			t.Errorf("clock round trip %v → %v, %v", ts, back, err)
		}
	}
	for _, bad := range [][]byte{{24, 13, 1, 0, 0, 0, 0}, {24, 2, 30, 0, 0, 0, 0}, {24, 1, 1, 24, 0, 0, 0}, {24, 1, 1, 0, 0, 0, 7}, {24, 1, 1}} {
		if _, err := emop.DecodeClock(bad); err == nil {
			t.Errorf("DecodeClock(% x) accepted", bad)
		}
	}
	if _, err := emop.EncodeEpoch(time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC)); err == nil {
		t.Errorf("epoch before 2000 accepted")
	}
	b, _ := emop.EncodeEpoch(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC))
	if v, _ := emop.DecodeU32(b); v != 31622400 {
		t.Errorf("2001-01-01 = %d, want 31622400", v)
	}
}

func TestOtherPayloads(t *testing.T) {
	if _, err := emop.EncodeToken("1234567890123456789"); err == nil {
		t.Errorf("19-digit token accepted")
	}
	if _, err := emop.EncodeToken("1234567890123456789a"); err == nil {
		t.Errorf("non-digit token accepted")
	}
	if got := emop.RedactToken("12345678901234567890"); got != "****************7890" {
		t.Errorf("redacted %s", got)
	}
	m, _ := emop.DecodeThresholdMask([]byte{0x21})
	if mm := m.Map(); mm["rate1"] != 1 || mm["rate6"] != 1 || mm["rate2"] != 0 {
		t.Errorf("mask 0x21 = %v, want rate1 and rate6", mm)
	}
	if !bytes.Equal(m.Encode(), []byte{0x21}) {
		t.Errorf("mask encode %x", m.Encode())
	}
	tv := emop.ThresholdValues{1, 2, 3, 4, 5, 6, 0xFFFF}
	back, _ := emop.DecodeThresholdValues(tv.Encode())
	if back != tv {
		t.Errorf("threshold values round trip %v", back)
	}
	s, _ := emop.EncodeCSQ(emop.Signal{CSQ: 16, NetworkOperator: 1})
	if s[0] != 0x30 {
		t.Errorf("csq encode %x", s)
	}
	if _, err := emop.EncodeCSQ(emop.Signal{CSQ: 32}); err == nil {
		t.Errorf("csq 32 accepted")
	}
	if got := emop.FormatFirmware([]byte{0x01, 0x02}); got != "0102" {
		t.Errorf("three-phase firmware %s", got)
	}
	tx := emop.Transaction{PaymentTime: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), PaymentValue: decimal.RequireFromString("20")}
	b, _ := tx.Encode()
	back2, err := emop.DecodeTransaction(b)
	if err != nil || !back2.PaymentTime.Equal(tx.PaymentTime) || !back2.PaymentValue.Equal(tx.PaymentValue) {
		t.Errorf("transaction round trip %+v %v", back2, err)
	}
	if c, ok := emop.SettingCode(emop.BacklightSettings, "normal_sp"); !ok || c != 0 {
		t.Errorf("normal_sp code %d %v", c, ok)
	}
}

func TestDataFieldFormats(t *testing.T) {
	req, err := emop.EventLogRequest(3)
	if err != nil {
		t.Fatal(err)
	}
	if idx, err := emop.ParseEventLogRequest(req); err != nil || idx != 3 {
		t.Errorf("event log request round trip %d %v", idx, err)
	}
	if _, err := emop.EventLogRequest(10); err == nil {
		t.Errorf("event log index 10 accepted")
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	evs := []emop.Event{{Timestamp: t0, EventID: 48, EventSet: 7}, {Timestamp: t0.Add(-time.Hour), EventID: 33, EventSet: 2}}
	resp, err := emop.EventLogResponse(0, evs)
	if err != nil {
		t.Fatal(err)
	}
	f := emop.Frame{Data: resp}
	if f.Length() != 12+82 {
		t.Errorf("event log frame length %d", f.Length())
	}
	_, got, err := emop.ParseEventLogResponse(resp)
	if err != nil || len(got) != 2 || got[0] != evs[0] || got[1] != evs[1] {
		t.Errorf("event log response round trip %+v %v (empty slots dropped)", got, err)
	}

	pl1 := []emop.ProfileLog1Record{}
	for i := range 5 {
		pl1 = append(pl1, emop.ProfileLog1Record{Timestamp: t0.Add(time.Duration(i) * 30 * time.Minute), Status: emop.StatusValidData, ImportA: 1000 + uint32(i), ImportB: 7})
	}
	b, err := emop.ProfileLog1Response(t0, pl1)
	if err != nil {
		t.Fatal(err)
	}
	start, back, err := emop.ParseProfileLog1Response(b)
	if err != nil || !start.Equal(t0) || len(back) != 5 || back[4] != pl1[4] {
		t.Errorf("profile log 1 round trip %+v %v", back, err)
	}
	for _, twin := range []bool{false, true} {
		_, n := emop.ProfileLog2Layout(twin)
		var recs []emop.ProfileLog2Record
		for i := range n {
			r := emop.ProfileLog2Record{Timestamp: t0.Add(time.Duration(i) * 30 * time.Minute), Status: emop.StatusValidData, ActiveExportA: 5, VoltageTenths: 2401}
			if twin {
				r.ActiveExportB = 9
			}
			recs = append(recs, r)
		}
		b, err := emop.ProfileLog2Response(t0, twin, recs)
		if err != nil {
			t.Fatal(err)
		}
		_, back, err := emop.ParseProfileLog2Response(b, twin)
		if err != nil || len(back) != n || back[n-1] != recs[n-1] {
			t.Errorf("profile log 2 twin=%v round trip %+v %v", twin, back, err)
		}
	}
	req, _ = emop.ProfileLogRequest(emop.FormatProfileLog1, t0)
	if fmtb, ts, err := emop.ParseProfileLogRequest(req); err != nil || fmtb != 3 || !ts.Equal(t0) || (&emop.Frame{Data: req}).Length() != 17 {
		t.Errorf("profile log request round trip")
	}
	iv, err := emop.ThreePhaseIntervalsRequest(emop.ProfileZero, t0, t0.Add(4*time.Hour))
	if err != nil || (&emop.Frame{Data: iv}).Length() != 26 {
		t.Errorf("three-phase interval request length %d, %v; want L = 26", (&emop.Frame{Data: iv}).Length(), err)
	}
	if _, err := emop.ThreePhaseIntervalsRequest(emop.ProfileZero, t0, t0.Add(5*time.Hour)); err == nil {
		t.Errorf("5-hour three-phase window accepted")
	}
}

func TestObjectRegistry(t *testing.T) {
	for name, hexID := range map[string]string{
		"time": "800800", "prepay_balance": "ffc802", "tariff_future_block_8_rate_1": "fff839",
		"tariff_active_block_1_rate_1": "fff901", "tariff_active_block_8_rate_8": "fff940",
		"tariff_future_element_b_tou_rate_1": "fff601", "tariff_active_element_b_tou_rate_4": "fff704",
		"read_element_a": "fffffc", "csq_net_op": "fffd1d",
	} {
		o, ok := emop.LookupName(name)
		if !ok || o.ID.String() != hexID {
			t.Errorf("%s: %v %v, want %s", name, o, ok, hexID)
		}
	}
	for _, s := range []string{"600100", "0x600100", "6291712", "serial"} {
		id, o, err := emop.ParseObject(s)
		if err != nil || id != emop.ObjSerial || o == nil || o.Name != "serial" {
			t.Errorf("ParseObject(%q) = %v %v %v", s, id, o, err)
		}
	}
	if _, _, err := emop.ParseObject("no_such_thing"); err == nil {
		t.Errorf("unknown name parsed")
	}
	if id, o, err := emop.ParseObject("800309"); err != nil || o != nil || id != 0x800309 {
		t.Errorf("well-formed unknown id: %v %v %v", id, o, err)
	}
	writable := 0
	for _, o := range emop.All() {
		if o.Writable {
			writable++
		}
	}
	if o, _ := emop.Lookup(emop.ObjPrepayBalance); o.Writable {
		t.Errorf("prepay_balance must be read-only")
	}
	if writable < 10 {
		t.Errorf("only %d writable objects", writable)
	}
}
