package emop_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/flows-energy/flows/emop"
	"github.com/shopspring/decimal"
)

func goldenData(t *testing.T, name string) []byte {
	t.Helper()
	f, n, err := emop.DecodeFrame(golden(t)[name])
	if err != nil || n != len(golden(t)[name]) {
		t.Fatalf("%s: %v", name, err)
	}
	return f.Data
}

// The golden three-phase frames decode to what they were built from, and
// the values re-encode to the same bytes.
func TestThreePhaseGolden(t *testing.T) {
	rec, err := emop.ParseRecord(goldenData(t, "three_phase_config_cx_response"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := emop.DecodeThreePhaseConfig(rec.Payload)
	if err != nil || cfg.MeterType != emop.ThreePhaseCX || cfg.Hardware() != emop.HardwareThreePhaseCX || cfg.TypeName() != "cx_ct_operated" {
		t.Errorf("config: %+v %v", cfg, err)
	}
	if string(cfg.Encode()) != string(rec.Payload) {
		t.Errorf("config re-encodes to % x", cfg.Encode())
	}
	rec, _ = emop.ParseRecord(goldenData(t, "three_phase_voltage_l2_response"))
	if v, err := emop.DecodeVoltage(rec.Payload); rec.Object != emop.ObjThreePhaseVoltageL2 || err != nil || v.String() != "239.7" {
		t.Errorf("L2 voltage: %s %v", v, err)
	}
	rec, _ = emop.ParseRecord(goldenData(t, "three_phase_total_active_import_response"))
	raw, _ := emop.DecodeU32(rec.Payload)
	for typ, want := range map[uint8]string{emop.ThreePhaseAX: "123.456", emop.ThreePhaseCX: "12.3456"} {
		if got, err := (emop.ThreePhaseConfig{MeterType: typ}).KWh(raw); err != nil || got.String() != want {
			t.Errorf("type %d: %d raw is %s kWh (%v), want %s", typ, raw, got, err, want)
		}
	}

	t0 := time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC)
	prof, start, end, err := emop.ParseThreePhaseIntervalsRequest(goldenData(t, "three_phase_intervals_request"))
	if err != nil || prof != emop.ProfileZero || !start.Equal(t0) || !end.Equal(t0.Add(4*time.Hour)) {
		t.Errorf("request: %d %s %s %v", prof, start, end, err)
	}
	data := goldenData(t, "three_phase_intervals_response")
	r, err := emop.ParseThreePhaseIntervals(data)
	if err != nil {
		t.Fatal(err)
	}
	want := emop.ThreePhaseIntervals{Blocks: []emop.IntervalBlock{{Start: t0, Minutes: 30,
		Channels: []emop.ObjectID{0xD79600, 0x010800, 0x020800},
		Intervals: []emop.Interval{
			{Status: emop.IntervalValidData, Values: []uint32{1200, 1000600, 2000}},
			{Status: emop.IntervalValidData | emop.IntervalPowerFail | emop.IntervalPhase2VoltageFailure, Values: []uint32{0, 1000600, 2000}},
			{Status: emop.IntervalValidData | emop.IntervalTimeUpdate, Values: []uint32{800, 1001000, 2000}},
		}}}}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("response decodes to %+v\nwant %+v", r, want)
	}
	if out, err := r.AppendTo(nil); err != nil || string(out) != string(data) {
		t.Errorf("response re-encodes to % x (%v)", out, err)
	}
	rows, err := r.Rows()
	if err != nil || len(rows) != 3 || !rows[2].At.Equal(t0.Add(time.Hour)) || emop.ChannelName(rows[2].Channels[1]) != "total_active_energy_import" {
		t.Errorf("rows: %+v %v", rows, err)
	}
	empty, err := emop.ParseThreePhaseIntervals(goldenData(t, "three_phase_intervals_empty_response"))
	if err != nil || len(empty.Blocks) != 0 {
		t.Errorf("empty answer: %+v %v", empty, err)
	}
}

// Scaling needs a known meter type; the configuration's layout is strict.
func TestThreePhaseConfigStrict(t *testing.T) {
	if _, err := (emop.ThreePhaseConfig{MeterType: 7}).KWh(1); err == nil {
		t.Error("an unknown meter type was scaled")
	}
	var le *emop.LengthError
	var ve *emop.ValueError
	if _, err := emop.DecodeThreePhaseConfig([]byte{1, 0, 0}); !errors.As(err, &le) {
		t.Errorf("3 bytes: %v", err)
	}
	if _, err := emop.DecodeThreePhaseConfig([]byte{1, 0, 9, 0}); !errors.As(err, &ve) {
		t.Errorf("reserved byte set: %v", err)
	}
	if got, _ := (emop.ThreePhaseConfig{MeterType: emop.ThreePhaseAX}).KWh(0); !got.Equal(decimal.Zero) {
		t.Errorf("zero scales to %s", got)
	}
}

// Every malformed interval answer is a typed error, never a panic or a
// half-read response.
func TestThreePhaseIntervalsRefusals(t *testing.T) {
	good := goldenData(t, "three_phase_intervals_response")
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for name, b := range map[string][]byte{
		"truncated":        good[:len(good)-1],
		"trailing byte":    append(append([]byte(nil), good...), 0),
		"wrong format":     mut(func(b []byte) []byte { b[0] = emop.FormatProfileLog1; return b }),
		"unknown profile":  mut(func(b []byte) []byte { b[1] = 7; return b }),
		"zero minutes":     mut(func(b []byte) []byte { b[7] = 0; return b }),
		"zero channels":    mut(func(b []byte) []byte { b[8] = 0; return b }),
		"17 channels":      mut(func(b []byte) []byte { b[8] = 17; return b }),
		"repeated channel": mut(func(b []byte) []byte { copy(b[12:15], b[9:12]); return b }),
		"zero intervals":   mut(func(b []byte) []byte { b[18] = 0; return b }),
		"reserved status":  mut(func(b []byte) []byte { b[20] = 0x02; return b }),
		"two blocks said":  mut(func(b []byte) []byte { b[2] = 2; return b }),
	} {
		if _, err := emop.ParseThreePhaseIntervals(b); err == nil {
			t.Errorf("%s: decoded", name)
		} else {
			var le *emop.LengthError
			var ve *emop.ValueError
			if !errors.As(err, &le) && !errors.As(err, &ve) {
				t.Errorf("%s: untyped error %T %v", name, err, err)
			}
		}
	}
	req := goldenData(t, "three_phase_intervals_request")
	bad := append([]byte(nil), req...)
	bad[13] = 0
	if _, _, _, err := emop.ParseThreePhaseIntervalsRequest(bad); err == nil {
		t.Error("a request without the ffffffff tail parsed")
	}
}

// IntervalsPerResponse is exactly what fits in one frame, for every
// channel count.
func TestIntervalsPerResponseFitsAFrame(t *testing.T) {
	t0 := time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC)
	for ch := 1; ch <= len(emop.ThreePhaseChannels); ch++ {
		n := emop.IntervalsPerResponse(ch)
		block := func(k int) emop.ThreePhaseIntervals {
			b := emop.IntervalBlock{Start: t0, Minutes: 30, Channels: emop.ThreePhaseChannels[:ch]}
			for range k {
				b.Intervals = append(b.Intervals, emop.Interval{Status: emop.IntervalValidData, Values: make([]uint32, ch)})
			}
			return emop.ThreePhaseIntervals{Blocks: []emop.IntervalBlock{b}}
		}
		data, err := block(n).AppendTo(nil)
		if err != nil {
			t.Errorf("%d channels, %d intervals: %v", ch, n, err)
			continue
		}
		if _, err := (&emop.Frame{Data: data}).AppendTo(nil); err != nil {
			t.Errorf("%d channels: does not frame: %v", ch, err)
		}
		if n < 255 {
			if _, err := block(n + 1).AppendTo(nil); err == nil {
				t.Errorf("%d channels: %d intervals fit, IntervalsPerResponse says %d", ch, n+1, n)
			}
		}
	}
	if emop.IntervalsPerResponse(len(emop.ThreePhaseChannels)) < 1 {
		t.Fatal("the reference's 14 channels do not fit one interval a frame")
	}
}

// Blocks with other channels, or overlapping intervals, are not joined.
func TestIntervalRowsRefuseMismatchedBlocks(t *testing.T) {
	t0 := time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC)
	iv := []emop.Interval{{Status: emop.IntervalValidData, Values: []uint32{1}}}
	a := emop.IntervalBlock{Start: t0, Minutes: 30, Channels: []emop.ObjectID{0x010800}, Intervals: iv}
	b := a
	b.Start = t0.Add(30 * time.Minute)
	if rows, err := (emop.ThreePhaseIntervals{Blocks: []emop.IntervalBlock{a, b}}).Rows(); err != nil || len(rows) != 2 {
		t.Errorf("contiguous blocks: %v %v", rows, err)
	}
	c := b
	c.Channels = []emop.ObjectID{0x020800}
	if _, err := (emop.ThreePhaseIntervals{Blocks: []emop.IntervalBlock{a, c}}).Rows(); err == nil {
		t.Error("blocks with other channels were joined")
	}
	d := a
	d.Start = t0.Add(10 * time.Minute)
	if _, err := (emop.ThreePhaseIntervals{Blocks: []emop.IntervalBlock{a, d}}).Rows(); err == nil {
		t.Error("overlapping blocks were joined")
	}
}

// FuzzThreePhase: interval answers, interval requests and configuration
// records decode without panicking, and whatever decodes re-encodes to
// the bytes it came from (the layouts have no slack).
func FuzzThreePhase(f *testing.F) {
	for _, name := range []string{"three_phase_intervals_response", "three_phase_intervals_empty_response", "three_phase_intervals_request"} {
		if fr, _, err := emop.DecodeFrame(golden(f)[name]); err == nil {
			f.Add(fr.Data)
		}
	}
	f.Add([]byte{emop.ThreePhaseCX, 0, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		if r, err := emop.ParseThreePhaseIntervals(p); err == nil {
			out, err := r.AppendTo(nil)
			if err != nil {
				if len(p) <= emop.MaxData {
					t.Fatalf("decoded answer does not encode: %v", err)
				}
			} else if string(out) != string(p) {
				t.Fatalf("answer re-encoded % x, decoded from % x", out, p)
			}
			_, _ = r.Rows()
		}
		if prof, start, end, err := emop.ParseThreePhaseIntervalsRequest(p); err == nil {
			out, err := emop.ThreePhaseIntervalsRequest(prof, start, end)
			if err != nil || string(out) != string(p) {
				t.Fatalf("request re-encoded % x (%v), decoded from % x", out, err, p)
			}
		}
		if c, err := emop.DecodeThreePhaseConfig(p); err == nil && string(c.Encode()) != string(p) {
			t.Fatalf("config re-encoded % x, decoded from % x", c.Encode(), p)
		}
	})
}
