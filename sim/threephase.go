package sim

import (
	"hash/fnv"
	"time"

	"github.com/flows-energy/flows/emop"
	"github.com/shopspring/decimal"
)

// Three-phase meters (hardware P1.ax, whole current, and P1.cx,
// CT-operated) are credit meters: no prepayment, tariffs, event log or
// profile logs 1 and 2 (the reference reads none of these on them). They
// answer the clock, signal, backlight, hardware (blank, then the
// three-phase configuration), a 2-byte firmware, the three-phase serial,
// L1..L3 voltages, the six energy totals and the three-phase interval
// profile; anything else is NAK 5. Totals and interval values are in the
// meter type's unit (emop.ThreePhaseConfig.Scale): Wh and W on AX meters,
// 0.1 Wh and 0.1 W on CX meters.

// Status bits of a three-phase meter's snapshots besides the profile-log
// ones (sim-internal: three-phase meters serve no profile logs 1 and 2).
const (
	statusTimeUpdate = 0x0002
	statusPhaseFail  = 0x0004 // << phase index (0..2)
)

// threePhaseFirmware is what a three-phase meter reports: 2 bytes (A.7).
var threePhaseFirmware = []byte{0x01, 0x07}

func (m *Meter) threePhase() bool { return emop.IsThreePhase(m.Spec.Hardware) }

// config is the meter's three-phase hardware configuration.
func (m *Meter) config() emop.ThreePhaseConfig {
	if m.Spec.Hardware == emop.HardwareThreePhaseCX {
		return emop.ThreePhaseConfig{MeterType: emop.ThreePhaseCX}
	}
	return emop.ThreePhaseConfig{MeterType: emop.ThreePhaseAX}
}

// raw converts joules to the meter type's energy unit.
func (m *Meter) raw(j int64) uint32 {
	if m.config().MeterType == emop.ThreePhaseCX {
		return uint32(j / 360) // 0.1 Wh
	}
	return uint32(j / 3600) // Wh
}

// totals are the six energy totals, raw, in emop.ThreePhaseTotals' order:
// active import and export, reactive (a tenth of active), apparent.
func (m *Meter) totals() [6]uint32 {
	imp, exp := m.raw(m.st.ImportJ[0]), m.raw(m.st.ExportJ[0])
	return [6]uint32{imp, exp, imp / 10, exp / 10, apparent(imp), apparent(exp)}
}

func apparent(active uint32) uint32 { return uint32(uint64(active) * 1005 / 1000) }

// phaseVoltage is phase k's voltage (tenths of a volt) at t: each phase
// varies on its own, a little lower under its load.
func (m *Meter) phaseVoltage(at time.Time, k int) uint16 {
	h := fnv.New32a()
	h.Write([]byte{byte(m.seed), byte(k), byte(at.Unix() / 300), byte(at.Unix() / 300 >> 8)})
	return uint16(2330 + h.Sum32()%120 - uint32(min(m.Spec.PhaseLoads[k]/200, 50)))
}

// ThreePhaseReading is what the three-phase syncers read at a moment:
// voltages in volts, totals in kWh, in emop.ThreePhaseTotals' order.
type ThreePhaseReading struct {
	Voltages [3]decimal.Decimal
	Totals   [6]decimal.Decimal
}

// ThreePhase returns the meter's voltages and scaled totals at now.
func (m *Meter) ThreePhase(now time.Time) ThreePhaseReading {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advance(now)
	return m.threePhaseReading(now)
}

func (m *Meter) threePhaseReading(now time.Time) ThreePhaseReading {
	var r ThreePhaseReading
	for k := range r.Voltages {
		r.Voltages[k] = decimal.New(int64(m.phaseVoltage(now, k)), -1)
	}
	for i, v := range m.totals() {
		r.Totals[i], _ = m.config().KWh(v)
	}
	return r
}

// PhaseFailure records that phase k (0..2) lost its voltage: the next
// interval carries that phase's voltage-failure flag.
func (m *Meter) PhaseFailure(now time.Time, k int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advance(now)
	m.st.NextStatus |= statusPhaseFail << k
}

// dropFlakyPhase reports whether an L2 or L3 voltage read goes unanswered
// under the meter's FlakyL2/FlakyL3 faults.
func (m *Meter) dropFlakyPhase(req emop.Frame, fl Faults) bool {
	if fl.FlakyL2 <= 0 && fl.FlakyL3 <= 0 {
		return false
	}
	rec, err := emop.ParseRecord(req.Data)
	if err != nil || rec.Write {
		return false
	}
	rate := map[emop.ObjectID]float64{emop.ObjThreePhaseVoltageL2: fl.FlakyL2, emop.ObjThreePhaseVoltageL3: fl.FlakyL3}[rec.Object]
	m.mu.Lock()
	defer m.mu.Unlock()
	return rate >= 1 || rate > 0 && m.rng.Float64() < rate
}

// threePhaseWrites are the objects a three-phase meter takes writes of.
var threePhaseWrites = map[emop.ObjectID]bool{emop.ObjTime: true, emop.ObjBacklight: true}

// dispatchThreePhase answers a three-phase meter's request.
func (m *Meter) dispatchThreePhase(req emop.Frame, now time.Time) ([]byte, error) {
	switch req.Data[0] {
	case emop.FormatDefault:
	case emop.FormatThreePhaseIv:
		_, from, to, err := emop.ParseThreePhaseIntervalsRequest(req.Data)
		if err != nil {
			return nil, nak(emop.NakFormat)
		}
		return m.intervals(from, to).AppendTo(nil)
	case emop.FormatEventLog, emop.FormatProfileLog1, emop.FormatProfileLog2:
		return nil, nak(emop.NakUnknownObject)
	default:
		return nil, nak(emop.NakFormat)
	}
	rec, err := emop.ParseRecord(req.Data)
	if err != nil {
		return nil, nak(emop.NakFormat)
	}
	if rec.Write {
		if !threePhaseWrites[rec.Object] {
			return nil, nak(emop.NakUnknownObject)
		}
		if err := m.write(rec.Object, rec.Payload, now); err != nil {
			return nil, err
		}
		if rec.Object == emop.ObjTime {
			m.st.NextStatus |= statusTimeUpdate
		}
		return emop.Record{Object: rec.Object, Write: true}.AppendTo(nil), nil
	}
	if len(rec.Payload) != 0 {
		return nil, nak(emop.NakLength)
	}
	p, err := m.readThreePhase(rec.Object, now)
	if err != nil {
		return nil, err
	}
	return emop.Record{Object: rec.Object, Payload: p}.AppendTo(nil), nil
}

// readThreePhase returns the payload of object id on a three-phase meter.
func (m *Meter) readThreePhase(id emop.ObjectID, now time.Time) ([]byte, error) {
	for k, v := range emop.ThreePhaseVoltages {
		if id == v {
			return u16(int(m.phaseVoltage(now, k))), nil
		}
	}
	for i, t := range emop.ThreePhaseTotals {
		if id == t.ID {
			return u32(int64(m.totals()[i])), nil
		}
	}
	switch id {
	case emop.ObjThreePhaseHardwareConfig:
		return m.config().Encode(), nil
	case emop.ObjThreePhaseSerial:
		return emop.EncodeString(m.Spec.Serial, 16), nil
	case emop.ObjFirmware:
		return append([]byte(nil), threePhaseFirmware...), nil
	case emop.ObjHardware:
		return make([]byte, 4), nil // blank: read the three-phase configuration
	case emop.ObjTime, emop.ObjCSQ:
		return m.read(id, now)
	case emop.ObjBacklight:
		return []byte{m.st.Backlight}, nil
	case emop.ObjInstantaneousFrequency:
		return u16(500), nil
	}
	return nil, nak(emop.NakUnknownObject)
}

// intervals answers a three-phase interval request: the half hours in
// [from, to) the meter holds, from the first, as many as one frame
// carries, in one block of contiguous half hours (a hole ends it); none
// when it holds nothing there. Interval i is the half hour ending at the
// record after it.
func (m *Meter) intervals(from, to time.Time) emop.ThreePhaseIntervals {
	const half = 30 * time.Minute
	out := emop.ThreePhaseIntervals{}
	channels := emop.ThreePhaseChannels
	room := emop.IntervalsPerResponse(len(channels))
	var cur *emop.IntervalBlock
	n := 0
	start := from.Truncate(half)
	if start.Before(from) {
		start = start.Add(half)
	}
	for at := start; at.Before(to) && n < room; at = at.Add(half) {
		end, ok := m.snapshotAt(at.Add(half))
		if !ok {
			if cur != nil {
				break // a hole ends the answer: the client asks again after it
			}
			continue
		}
		if cur == nil {
			out.Blocks = append(out.Blocks, emop.IntervalBlock{Start: at, Minutes: 30, Channels: channels})
			cur = &out.Blocks[len(out.Blocks)-1]
		}
		prev, _ := m.snapshotAt(at)
		cur.Intervals = append(cur.Intervals, m.interval(prev, end))
		n++
	}
	return out
}

// snapshotAt returns the record of half hour at, if the meter holds one.
func (m *Meter) snapshotAt(at time.Time) (Snapshot, bool) {
	return m.recordAt(at)
}

// interval builds the channels of the half hour from record prev (zero
// when the meter holds none) to record end: demands from the difference,
// energy registers from end, in the meter type's units.
func (m *Meter) interval(prev, end Snapshot) emop.Interval {
	scale := uint32(1)
	if m.config().MeterType == emop.ThreePhaseCX {
		scale = 10
	}
	imp, exp := end.ImportA*scale, end.ExportA*scale
	var dImp, dExp uint32 // mean power over the half hour: 2 × its energy
	if prev.Status != 0 {
		dImp, dExp = 2*(imp-min(imp, prev.ImportA*scale)), 2*(exp-min(exp, prev.ExportA*scale))
	}
	st := emop.IntervalValidData
	if end.Status&emop.StatusPowerFail != 0 {
		st |= emop.IntervalPowerFail | emop.IntervalPhase1VoltageFailure | emop.IntervalPhase2VoltageFailure | emop.IntervalPhase3VoltageFailure
	}
	if end.Status&emop.StatusReset != 0 {
		st |= emop.IntervalLogReset
	}
	if end.Status&statusTimeUpdate != 0 {
		st |= emop.IntervalTimeUpdate
	}
	for k := range 3 {
		if end.Status&(statusPhaseFail<<k) != 0 {
			st |= emop.IntervalPhase1VoltageFailure << k
		}
	}
	return emop.Interval{Status: st, Values: []uint32{
		dImp, dExp, dImp / 10, dExp / 10, dImp / 10, 0, 0, dExp / 10,
		imp, exp, imp / 10, exp / 10, apparent(imp), apparent(exp),
	}}
}
