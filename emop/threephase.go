package emop

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
)

// Three-phase instantaneous voltages (A.8: u16le tenths of a volt) and
// the six energy totals (A.8.2's hypothesis: the channel ids of A.11;
// u32le in the meter type's unit, see ThreePhaseConfig.Scale).
const (
	ObjThreePhaseVoltageL1           ObjectID = 0x200700
	ObjThreePhaseVoltageL2           ObjectID = 0x340700
	ObjThreePhaseVoltageL3           ObjectID = 0x480700
	ObjThreePhaseTotalActiveImport   ObjectID = 0x010800
	ObjThreePhaseTotalActiveExport   ObjectID = 0x020800
	ObjThreePhaseTotalReactiveImport ObjectID = 0x030800
	ObjThreePhaseTotalReactiveExport ObjectID = 0x040800
	ObjThreePhaseTotalApparentImport ObjectID = 0x090800
	ObjThreePhaseTotalApparentExport ObjectID = 0x100800

	threePhaseConfigSize  = 4
	maxThreePhaseChannels = 16
)

// ThreePhaseVoltages are the L1, L2, L3 voltage objects, in phase order.
var ThreePhaseVoltages = [3]ObjectID{ObjThreePhaseVoltageL1, ObjThreePhaseVoltageL2, ObjThreePhaseVoltageL3}

// ThreePhaseTotal names one of the six energy totals of a three-phase
// meter.
type ThreePhaseTotal struct {
	Name string // as the reference's three_phase_read names it
	ID   ObjectID
}

// ThreePhaseTotals are the six totals in the reference's order.
var ThreePhaseTotals = [6]ThreePhaseTotal{
	{"active_import", ObjThreePhaseTotalActiveImport},
	{"active_export", ObjThreePhaseTotalActiveExport},
	{"reactive_import", ObjThreePhaseTotalReactiveImport},
	{"reactive_export", ObjThreePhaseTotalReactiveExport},
	{"apparent_import", ObjThreePhaseTotalApparentImport},
	{"apparent_export", ObjThreePhaseTotalApparentExport},
}

// ThreePhaseConfig is the three-phase hardware configuration record. Its
// layout is ours (the reference gives only a meter_type enum): meter_type
// u8 (ThreePhaseAX, ThreePhaseCX) · 3 reserved bytes, zero.
type ThreePhaseConfig struct {
	MeterType uint8 `json:"meter_type"`
}

// DecodeThreePhaseConfig decodes the configuration record. A record of
// another length or with reserved bytes set is an error (a layout we do
// not know); an unknown meter type decodes, and Scale refuses it.
func DecodeThreePhaseConfig(p []byte) (ThreePhaseConfig, error) {
	if err := need("three-phase hardware configuration", p, threePhaseConfigSize); err != nil {
		return ThreePhaseConfig{}, err
	}
	for _, b := range p[1:] {
		if b != 0 {
			return ThreePhaseConfig{}, &ValueError{What: "three-phase hardware configuration", Msg: fmt.Sprintf("reserved bytes % x are not zero", p[1:])}
		}
	}
	return ThreePhaseConfig{MeterType: p[0]}, nil
}

// Encode encodes the record.
func (c ThreePhaseConfig) Encode() []byte { return []byte{c.MeterType, 0, 0, 0} }

// TypeName is the reference's name of the meter type ("" when unknown).
func (c ThreePhaseConfig) TypeName() string {
	switch c.MeterType {
	case ThreePhaseAX:
		return "ax_whole_current"
	case ThreePhaseCX:
		return "cx_ct_operated"
	}
	return ""
}

// Hardware is the registry hardware name of the meter type.
func (c ThreePhaseConfig) Hardware() string { return RegistryHardware("", int(c.MeterType)) }

// Scale is the decimal exponent that turns the meter's raw totals and
// interval values into kWh (kW for demand): whole-current (AX) meters
// count in Wh (W), so ÷ 1 000 (-3); CT-operated (CX) meters in 0.1 Wh
// (0.1 W), so ÷ 10 000 (-4) (emop-protocol.md A.11, A.12). An unknown
// meter type is an error: a value scaled by a guess would be off by ten.
func (c ThreePhaseConfig) Scale() (int32, error) {
	switch c.MeterType {
	case ThreePhaseAX:
		return -3, nil
	case ThreePhaseCX:
		return -4, nil
	}
	return 0, &ValueError{What: "three-phase meter type", Msg: fmt.Sprintf("%d is neither ax_whole_current (0) nor cx_ct_operated (1): its values cannot be scaled", c.MeterType)}
}

// KWh scales a raw total (or interval value) to kWh (kW).
func (c ThreePhaseConfig) KWh(raw uint32) (decimal.Decimal, error) {
	exp, err := c.Scale()
	if err != nil {
		return decimal.Decimal{}, err
	}
	return decimal.New(int64(raw), exp), nil
}

// Three-phase interval channels (A.11) in the reference's order: demand
// channels carry the mean power over the interval, energy channels the
// cumulative register at the interval's end (ours: the reference names
// the channels only), both in the meter type's unit.
var ThreePhaseChannels = []ObjectID{
	0xD79600, 0xD79601, 0xD79602, 0xD79603, 0xD79604, 0xD79605, 0xD79606, 0xD79607,
	0x010800, 0x020800, 0x030800, 0x040800, 0x090800, 0x100800,
}

var channelNames = map[ObjectID]string{
	0xD79600: "active_import_demand",
	0xD79601: "active_export_demand",
	0xD79602: "reactive_import_demand",
	0xD79603: "reactive_export_demand",
	0xD79604: "reactive_energy_quadrant_1_demand",
	0xD79605: "reactive_energy_quadrant_2_demand",
	0xD79606: "reactive_energy_quadrant_3_demand",
	0xD79607: "reactive_energy_quadrant_4_demand",
	0x010800: "total_active_energy_import",
	0x020800: "total_active_energy_export",
	0x030800: "total_reactive_energy_import",
	0x040800: "total_reactive_energy_export",
	0x090800: "total_apparent_energy_import",
	0x100800: "total_apparent_energy_export",
}

// ChannelName returns the reference's name of an interval channel, or its
// hex id when it has none.
func ChannelName(id ObjectID) string {
	if n, ok := channelNames[id]; ok {
		return n
	}
	return id.String()
}

// Three-phase interval status flags, u16le, in the order A.11 lists them
// (bit positions ours). Bits 9..15 are reserved and must be zero.
const (
	IntervalValidData uint16 = 1 << iota
	IntervalPowerFail
	IntervalPhase1VoltageFailure
	IntervalPhase2VoltageFailure
	IntervalPhase3VoltageFailure
	IntervalSecurityAccess
	IntervalMDReset
	IntervalTimeUpdate
	IntervalLogReset
	intervalFlagsKnown = 1<<9 - 1
)

// IntervalFlagNames are the status flags' names, bit 0 first.
var IntervalFlagNames = []string{"valid_data", "power_fail", "phase_1_voltage_failure", "phase_2_voltage_failure",
	"phase_3_voltage_failure", "security_access", "md_reset", "time_update", "log_reset"}

// MaxIntervalWindow is the longest window one three-phase interval request
// may ask for (the reference's hours_per_frame).
const MaxIntervalWindow = 4 * time.Hour

// IntervalBlock is one block of a three-phase interval response: a header
// (start, interval length, channels) and its intervals. Interval i starts
// at Start + i × Minutes.
type IntervalBlock struct {
	Start     time.Time  `json:"start"`
	Minutes   uint8      `json:"interval_minutes"`
	Channels  []ObjectID `json:"channels"`
	Intervals []Interval `json:"intervals"`
}

// Interval is one interval of a block: its status flags and one raw value
// per channel of the block.
type Interval struct {
	Status uint16   `json:"status"`
	Values []uint32 `json:"values"`
}

// At returns the start of interval i.
func (b *IntervalBlock) At(i int) time.Time {
	return b.Start.Add(time.Duration(i) * time.Duration(b.Minutes) * time.Minute)
}

// ThreePhaseIntervals is a three-phase interval response (our layout, the
// reference does not give it):
//
//	06 · profile u8 · block count u8 · blocks
//	block: start u32le (EMOP epoch) · interval minutes u8 (≥ 1) ·
//	       channel count u8 (1..16) · channel ids (3 bytes each, distinct) ·
//	       interval count u8 (≥ 1) · intervals
//	interval: status u16le · one u32le per channel
//
// A response holds what fits in one frame from the window's start; the
// client asks again from the end of the last interval it got. No blocks
// means the meter holds nothing in the window.
type ThreePhaseIntervals struct {
	Profile byte            `json:"profile"`
	Blocks  []IntervalBlock `json:"blocks"`
}

func blockHeaderSize(channels int) int { return 4 + 1 + 1 + 3*channels + 1 }

func intervalSize(channels int) int { return 2 + 4*channels }

// IntervalsPerResponse is how many intervals of a block with n channels
// fit in one response frame (one block).
func IntervalsPerResponse(n int) int {
	if n < 1 || n > maxThreePhaseChannels {
		return 0
	}
	return min(255, (MaxData-3-blockHeaderSize(n))/intervalSize(n))
}

func checkBlock(b *IntervalBlock) error {
	bad := func(f string, a ...any) error {
		return &ValueError{What: "three-phase interval block", Msg: fmt.Sprintf(f, a...)}
	}
	if b.Minutes == 0 {
		return bad("interval length is 0 minutes")
	}
	if len(b.Channels) < 1 || len(b.Channels) > maxThreePhaseChannels {
		return bad("%d channels, want 1..%d", len(b.Channels), maxThreePhaseChannels)
	}
	seen := map[ObjectID]bool{}
	for _, c := range b.Channels {
		if c > 0xFFFFFF || seen[c] {
			return bad("channel %s is repeated or not a 3-byte id", c)
		}
		seen[c] = true
	}
	if len(b.Intervals) < 1 || len(b.Intervals) > 255 {
		return bad("%d intervals, want 1..255", len(b.Intervals))
	}
	for i, iv := range b.Intervals {
		if len(iv.Values) != len(b.Channels) {
			return bad("interval %d has %d values for %d channels", i, len(iv.Values), len(b.Channels))
		}
		if iv.Status&^intervalFlagsKnown != 0 {
			return bad("interval %d status %04x sets reserved bits", i, iv.Status)
		}
	}
	return nil
}

// AppendTo appends the response's data field (format byte first) to dst.
// It refuses what the decoder would refuse, and a response longer than a
// frame's data field.
func (r ThreePhaseIntervals) AppendTo(dst []byte) ([]byte, error) {
	if r.Profile != ProfileZero && r.Profile != ProfileReset {
		return dst, &ValueError{What: "three-phase interval profile", Msg: fmt.Sprintf("%d is not profile_0 (0) or reset (1)", r.Profile)}
	}
	if len(r.Blocks) > 255 {
		return dst, &LengthError{What: "three-phase interval blocks", Got: len(r.Blocks), Want: "at most 255"}
	}
	start := len(dst)
	dst = append(dst, FormatThreePhaseIv, r.Profile, byte(len(r.Blocks)))
	for i := range r.Blocks {
		b := &r.Blocks[i]
		if err := checkBlock(b); err != nil {
			return dst[:start], err
		}
		ts, err := EncodeEpoch(b.Start)
		if err != nil {
			return dst[:start], err
		}
		dst = append(dst, ts...)
		dst = append(dst, b.Minutes, byte(len(b.Channels)))
		for _, c := range b.Channels {
			id := c.Bytes()
			dst = append(dst, id[:]...)
		}
		dst = append(dst, byte(len(b.Intervals)))
		for _, iv := range b.Intervals {
			dst = binary.LittleEndian.AppendUint16(dst, iv.Status)
			for _, v := range iv.Values {
				dst = binary.LittleEndian.AppendUint32(dst, v)
			}
		}
	}
	if n := len(dst) - start; n > MaxData {
		return dst[:start], &LengthError{What: "three-phase interval response", Got: n, Want: fmt.Sprintf("at most %d (one frame)", MaxData)}
	}
	return dst, nil
}

// ParseThreePhaseIntervals decodes a three-phase interval response. It is
// strict: every length must match exactly, with nothing left over, and
// the rules of AppendTo hold. The values are copies.
func ParseThreePhaseIntervals(data []byte) (ThreePhaseIntervals, error) {
	var r ThreePhaseIntervals
	short := func(what string) error {
		return &LengthError{What: "three-phase interval response", Got: len(data), Want: "more bytes for " + what}
	}
	if len(data) < 3 || data[0] != FormatThreePhaseIv {
		return r, &LengthError{What: "three-phase interval response", Got: len(data), Want: "at least 3 (format 0x06)"}
	}
	r.Profile = data[1]
	if r.Profile != ProfileZero && r.Profile != ProfileReset {
		return r, &ValueError{What: "three-phase interval profile", Msg: fmt.Sprintf("%d is not profile_0 (0) or reset (1)", r.Profile)}
	}
	n, p := int(data[2]), data[3:]
	for range n {
		if len(p) < 6 {
			return r, short("a block header")
		}
		b := IntervalBlock{Start: epochTime(binary.LittleEndian.Uint32(p)), Minutes: p[4]}
		ch := int(p[5])
		if ch < 1 || ch > maxThreePhaseChannels {
			return r, &ValueError{What: "three-phase interval block", Msg: fmt.Sprintf("%d channels, want 1..%d", ch, maxThreePhaseChannels)}
		}
		if len(p) < blockHeaderSize(ch) {
			return r, short("channel ids")
		}
		for i := range ch {
			c := p[6+3*i:]
			b.Channels = append(b.Channels, ObjectID(c[0])<<16|ObjectID(c[1])<<8|ObjectID(c[2]))
		}
		count := int(p[blockHeaderSize(ch)-1])
		p = p[blockHeaderSize(ch):]
		if len(p) < count*intervalSize(ch) {
			return r, short("intervals")
		}
		for range count {
			iv := Interval{Status: binary.LittleEndian.Uint16(p), Values: make([]uint32, ch)}
			for k := range ch {
				iv.Values[k] = binary.LittleEndian.Uint32(p[2+4*k:])
			}
			b.Intervals = append(b.Intervals, iv)
			p = p[intervalSize(ch):]
		}
		if err := checkBlock(&b); err != nil {
			return r, err
		}
		r.Blocks = append(r.Blocks, b)
	}
	if len(p) != 0 {
		return r, &LengthError{What: "three-phase interval response", Got: len(data), Want: fmt.Sprintf("%d (%d bytes left over)", len(data)-len(p), len(p))}
	}
	return r, nil
}

// IntervalRow is one interval of a response with its time, the channels
// of its block, and the block's length.
type IntervalRow struct {
	At       time.Time
	Minutes  uint8
	Channels []ObjectID
	Interval
}

// Rows concatenates the blocks' intervals in order (the reference joins
// blocks under the first block's header). Blocks with other channels than
// the first, or intervals that go back in time or overlap, are an error:
// joined, they would put values under the wrong names or times.
func (r ThreePhaseIntervals) Rows() ([]IntervalRow, error) {
	var out []IntervalRow
	for bi := range r.Blocks {
		b := &r.Blocks[bi]
		if bi > 0 && !sameChannels(b.Channels, r.Blocks[0].Channels) {
			return nil, &ValueError{What: "three-phase interval blocks", Msg: fmt.Sprintf("block %d has other channels than block 0", bi)}
		}
		for i, iv := range b.Intervals {
			at := b.At(i)
			if n := len(out); n > 0 {
				prev := out[n-1]
				if at.Before(prev.At.Add(time.Duration(prev.Minutes) * time.Minute)) {
					return nil, &ValueError{What: "three-phase interval blocks", Msg: fmt.Sprintf("interval at %s overlaps the one before", at.Format(time.RFC3339))}
				}
			}
			out = append(out, IntervalRow{At: at, Minutes: b.Minutes, Channels: b.Channels, Interval: iv})
		}
	}
	return out, nil
}

func sameChannels(a, b []ObjectID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ParseThreePhaseIntervalsRequest returns the profile and window of a
// three-phase interval request (ThreePhaseIntervalsRequest's layout): 14
// bytes, a known profile, the window at most MaxIntervalWindow, and the
// trailing ffffffff.
func ParseThreePhaseIntervalsRequest(data []byte) (profile byte, start, end time.Time, err error) {
	if len(data) != 14 || data[0] != FormatThreePhaseIv {
		return 0, time.Time{}, time.Time{}, &LengthError{What: "three-phase interval request", Got: len(data), Want: "14 (format 0x06)"}
	}
	if binary.LittleEndian.Uint32(data[10:]) != 0xFFFFFFFF {
		return 0, time.Time{}, time.Time{}, &ValueError{What: "three-phase interval request", Msg: "does not end in ffffffff"}
	}
	profile, start, end = data[1], epochTime(binary.LittleEndian.Uint32(data[2:])), epochTime(binary.LittleEndian.Uint32(data[6:]))
	if profile != ProfileZero && profile != ProfileReset {
		return 0, time.Time{}, time.Time{}, &ValueError{What: "three-phase interval profile", Msg: fmt.Sprintf("%d is not profile_0 (0) or reset (1)", profile)}
	}
	if !end.After(start) || end.Sub(start) > MaxIntervalWindow {
		return 0, time.Time{}, time.Time{}, &ValueError{What: "three-phase interval window", Msg: "end must be after start, at most 4 hours"}
	}
	return profile, start, end, nil
}
