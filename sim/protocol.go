package sim

import (
	"errors"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
)

// nak is a refusal with an EMOP ack/nak code.
type nak uint8

func (n nak) Error() string { return emop.NakMeaning(uint8(n)) }

// Handle answers one request frame at simulated time now, as the meter
// would: the response echoes the sequence and carries the ack/nak code.
func (m *Meter) Handle(req emop.Frame, now time.Time) emop.Frame {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.advance(now)
	resp := emop.Frame{DestType: req.SrcType, DestAddr: req.SrcAddr, SrcAddr: m.addr}
	data, err := m.dispatch(req, now)
	code := uint8(0)
	if err != nil {
		var n nak
		if !errors.As(err, &n) {
			n = emop.NakFormat
		}
		code = uint8(n)
		data = nakData(req.Data)
	}
	if req.DestAddr != 0 && req.DestAddr != m.addr {
		code, data = emop.NakAddress, nakData(req.Data)
	}
	resp.Control = emop.Control(req.Sequence(), code)
	resp.Data = data
	return resp
}

// nakData echoes the request's header (format, object, r/w) without payload.
func nakData(d []byte) []byte {
	if len(d) >= 5 {
		return append([]byte(nil), d[:5]...)
	}
	return append([]byte(nil), d...)
}

func (m *Meter) dispatch(req emop.Frame, now time.Time) ([]byte, error) {
	if len(req.Data) == 0 {
		return nil, nak(emop.NakFormat)
	}
	if m.threePhase() {
		return m.dispatchThreePhase(req, now)
	}
	switch req.Data[0] {
	case emop.FormatDefault:
		rec, err := emop.ParseRecord(req.Data)
		if err != nil {
			return nil, nak(emop.NakFormat)
		}
		if rec.Write {
			if err := m.write(rec.Object, rec.Payload, now); err != nil {
				return nil, err
			}
			return emop.Record{Object: rec.Object, Write: true}.AppendTo(nil), nil
		}
		if len(rec.Payload) != 0 {
			return nil, nak(emop.NakLength)
		}
		p, err := m.read(rec.Object, now)
		if err != nil {
			return nil, err
		}
		return emop.Record{Object: rec.Object, Payload: p}.AppendTo(nil), nil
	case emop.FormatEventLog:
		idx, err := emop.ParseEventLogRequest(req.Data)
		if err != nil {
			return nil, nak(emop.NakFormat)
		}
		return emop.EventLogResponse(idx, m.eventBlock(int(idx)))
	case emop.FormatProfileLog1, emop.FormatProfileLog2:
		format, from, err := emop.ParseProfileLogRequest(req.Data)
		if err != nil {
			return nil, nak(emop.NakLength)
		}
		return m.profile(format, from)
	}
	return nil, nak(emop.NakFormat)
}

// eventBlock returns block idx of the event log: ten events, newest first.
func (m *Meter) eventBlock(idx int) []emop.Event {
	ev := m.st.Events
	end := len(ev) - idx*emop.EventsPerBlock
	var out []emop.Event
	for i := end - 1; i >= 0 && i >= end-emop.EventsPerBlock; i-- {
		out = append(out, ev[i])
	}
	return out
}

// profile answers a profile-log request as a meter does: with the records
// from the first one it holds at or after from (its next available data,
// however far ahead), as many as one response carries.
func (m *Meter) profile(format byte, from time.Time) ([]byte, error) {
	twin := m.Spec.Layout == "twin"
	n := emop.ProfileLog1PerResponse
	if format == emop.FormatProfileLog2 {
		_, n = emop.ProfileLog2Layout(twin)
	}
	type rec struct {
		at time.Time
		s  Snapshot
	}
	var recs []rec
	i := 0
	if start := m.prof.start; from.After(start) {
		i = int(min((from.Unix()-start.Unix()+1799)/1800, int64(m.prof.n))) // in seconds: no Duration overflow
	}
	m.prof.each(i, func(i int, s Snapshot) bool {
		if s.Status != 0 {
			at := m.prof.start.Add(time.Duration(i) * 30 * time.Minute)
			s.Voltage = m.voltage(at)
			recs = append(recs, rec{at, s})
		}
		return len(recs) < n
	})
	if format == emop.FormatProfileLog1 {
		out := make([]emop.ProfileLog1Record, 0, len(recs))
		for _, r := range recs {
			out = append(out, emop.ProfileLog1Record{Timestamp: r.at, Status: r.s.Status, ImportA: r.s.ImportA, ImportB: r.s.ImportB})
		}
		return emop.ProfileLog1Response(from, out)
	}
	out := make([]emop.ProfileLog2Record, 0, len(recs))
	for _, r := range recs {
		x := emop.ProfileLog2Record{Timestamp: r.at, Status: r.s.Status, ActiveExportA: r.s.ExportA,
			ReactiveImportA: r.s.ImportA / 10, VoltageTenths: r.s.Voltage}
		if twin {
			x.ActiveExportB, x.ReactiveImportB = r.s.ExportB, r.s.ImportB/10
		}
		out = append(out, x)
	}
	return emop.ProfileLog2Response(from, twin, out)
}

func u32(v int64) []byte {
	return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
}

func u16(v int) []byte { return []byte{byte(v), byte(v >> 8)} }

func flag(b bool) []byte {
	if b {
		return []byte{1}
	}
	return []byte{0}
}

// A reader answers the reads of one family of objects; ok is false when id
// is not in its family.
type reader func(m *Meter, id emop.ObjectID, now time.Time) (p []byte, ok bool, err error)

// readers are tried in turn; the families do not overlap.
var readers = []reader{
	(*Meter).readRateFamily,
	(*Meter).readIdentity,
	(*Meter).readRegister,
	(*Meter).readActiveTariff,
	(*Meter).readFutureTariff,
	(*Meter).readSetting,
}

// read returns the payload of object id.
func (m *Meter) read(id emop.ObjectID, now time.Time) ([]byte, error) {
	for _, r := range readers {
		if p, ok, err := r(m, id, now); ok {
			return p, err
		}
	}
	// Three-phase objects, event_log through the default format, and ids
	// the meter does not know.
	return nil, nak(emop.NakUnknownObject)
}

// readRateFamily reads the block rates and element-B TOU rates, active and
// future.
func (m *Meter) readRateFamily(id emop.ObjectID, _ time.Time) ([]byte, bool, error) {
	a, f := &m.st.Active, &m.st.Future
	switch {
	case id >= emop.ObjActiveBlock1Rate1 && id <= emop.ObjActiveBlock8Rate8:
		return u32(a.Blocks[id-emop.ObjActiveBlock1Rate1]), true, nil
	case id >= emop.ObjFutureBlock1Rate1 && id <= emop.ObjFutureBlock8Rate8:
		return u32(f.Blocks[id-emop.ObjFutureBlock1Rate1]), true, nil
	case id >= emop.ObjActiveElementBTouRate1 && id <= emop.ObjActiveElementBTouRate4:
		return u32(a.ElementBTou[id-emop.ObjActiveElementBTouRate1]), true, nil
	case id >= emop.ObjFutureElementBTouRate1 && id <= emop.ObjFutureElementBTouRate4:
		return u32(f.ElementBTou[id-emop.ObjFutureElementBTouRate1]), true, nil
	}
	return nil, false, nil
}

// readIdentity reads the clock, identity, prepay and transaction objects.
func (m *Meter) readIdentity(id emop.ObjectID, now time.Time) ([]byte, bool, error) {
	st := &m.st
	var p []byte
	var err error
	switch id {
	case emop.ObjTokenSend:
		err = nak(emop.NakSecurity) // write-only: a token is never read back
	case emop.ObjTime:
		p, err = emop.EncodeClock(m.meterTime(now))
	case emop.ObjSerial:
		p = emop.EncodeString(m.Spec.Serial, 16)
	case emop.ObjHardware:
		hw := emop.ReportedHardware(m.Spec.Hardware)
		p = append([]byte(hw), make([]byte, 4-min(4, len(hw)))...)
	case emop.ObjFirmware:
		fw := m.Spec.Firmware
		if len(fw) != 4 {
			fw = "3028"
		}
		p = []byte(fw)
	case emop.ObjPrepayBalance:
		p, err = emop.EncodeBalance(money(st.Balance))
	case emop.ObjPrepayEnabled:
		p = flag(st.PrepayOn)
	case emop.ObjCSQ:
		p, err = emop.EncodeCSQ(m.csq(now))
	case emop.ObjTransactionCount:
		p = u16(int(st.TxCount))
	case emop.ObjTransactionDetails:
		if st.TxCount == 0 {
			return make([]byte, 16), true, nil
		}
		p, err = st.LastTx.Encode()
	default:
		return nil, false, nil
	}
	return p, true, err
}

// readRegister reads the energy registers and instantaneous and average
// values.
func (m *Meter) readRegister(id emop.ObjectID, now time.Time) ([]byte, bool, error) {
	st := &m.st
	pa, pb, _ := m.power(now)
	if !st.Connected {
		pa, pb = 0, 0
	}
	var p []byte
	switch id {
	case emop.ObjElementA:
		p = emop.Reading{ImportActive: uint32(st.ImportJ[0] / 3600), ExportActive: uint32(st.ExportJ[0] / 3600),
			ImportReactive: uint32(st.ImportJ[0] / 36000)}.Encode()
	case emop.ObjElementB:
		p = emop.Reading{ImportActive: uint32(st.ImportJ[1] / 3600), ExportActive: uint32(st.ExportJ[1] / 3600),
			ImportReactive: uint32(st.ImportJ[1] / 36000)}.Encode()
	case emop.ObjVoltage, emop.ObjAverageVoltage:
		p = u16(int(m.voltage(now)))
	case emop.ObjInstantaneousCurrent, emop.ObjAverageCurrent: // tenths of an amp
		p = u16(int((pa + pb) * 10 * 10 / int64(m.voltage(now))))
	case emop.ObjInstantaneousActivePower, emop.ObjElementAInstantaneousActivePowerImport: // W
		p = u16(int(min(pa+pb, 65535)))
	case emop.ObjElementBInstantaneousActivePowerImport:
		p = u16(int(min(pb, 65535)))
	case emop.ObjInstantaneousReactivePower:
		p = u16(int((pa + pb) / 10))
	case emop.ObjInstantaneousPowerFactor:
		p = u16(95)
	case emop.ObjInstantaneousFrequency, emop.ObjAverageFrequency:
		p = u16(500)
	case emop.ObjTotalActiveImportEnergy:
		p = u32((st.ImportJ[0] + st.ImportJ[1]) / 3600)
	case emop.ObjTotalActiveExportEnergy:
		p = u32((st.ExportJ[0] + st.ExportJ[1]) / 3600)
	default:
		return nil, false, nil
	}
	return p, true, nil
}

// readActiveTariff reads the time switches and the active tariff.
func (m *Meter) readActiveTariff(id emop.ObjectID, _ time.Time) ([]byte, bool, error) {
	st := &m.st
	a := &st.Active
	var p []byte
	switch id {
	case emop.ObjTimeSwitchElementAOrSingle:
		p = append([]byte(nil), st.TimeSwitchA...)
	case emop.ObjTimeSwitchElementB:
		p = append([]byte(nil), st.TimeSwitchB...)
	case emop.ObjActiveTouFlag:
		p = []byte{a.TouFlag}
	case emop.ObjActiveStandingCharge:
		p = u32(a.StandingCharge)
	case emop.ObjActiveThresholdMask:
		p = []byte{a.ThresholdMask}
	case emop.ObjActiveThresholdValues:
		p = emop.ThresholdValues(a.ThresholdValues).Encode()
	case emop.ObjActiveGas:
		p = u32(int64(a.Gas))
	case emop.ObjActiveTouRate, emop.ObjActiveElementBTouRate:
		p = []byte{0}
	case emop.ObjActiveBlockRate:
		p = []byte{7} // block 8
	case emop.ObjActivePriceIndexCurrent, emop.ObjActiveElementBPriceIndexCurrent:
		p = []byte{0}
	case emop.ObjActivePrice:
		p = u32(a.RateA())
	case emop.ObjActiveEmergencyCredit:
		p = u32(a.EmergencyCredit)
	case emop.ObjActiveECreditAvailability:
		p = u32(a.ECreditAvailability)
	case emop.ObjActiveDebtRecoveryRate:
		p = u32(a.DebtRecoveryRate)
	case emop.ObjActiveElementBPrice:
		p = u32(a.RateB())
	default:
		return nil, false, nil
	}
	return p, true, nil
}

// readFutureTariff reads the future tariff.
func (m *Meter) readFutureTariff(id emop.ObjectID, _ time.Time) ([]byte, bool, error) {
	f := &m.st.Future
	var p []byte
	switch id {
	case emop.ObjFutureTouFlag:
		p = []byte{f.TouFlag}
	case emop.ObjFutureStandingCharge:
		p = u32(f.StandingCharge)
	case emop.ObjFutureThresholdMask:
		p = []byte{f.ThresholdMask}
	case emop.ObjFutureThresholdValues:
		p = emop.ThresholdValues(f.ThresholdValues).Encode()
	case emop.ObjFutureActivation:
		p = u32(int64(f.Activation))
	case emop.ObjFutureGas:
		p = u32(int64(f.Gas))
	case emop.ObjFutureEmergencyCredit:
		p = u32(f.EmergencyCredit)
	case emop.ObjFutureECreditAvailability:
		p = u32(f.ECreditAvailability)
	case emop.ObjFutureDebtRecoveryRate:
		p = u32(f.DebtRecoveryRate)
	default:
		return nil, false, nil
	}
	return p, true, nil
}

// readSetting reads the meter settings.
func (m *Meter) readSetting(id emop.ObjectID, _ time.Time) ([]byte, bool, error) {
	st := &m.st
	switch id {
	case emop.ObjDSTFlag:
		return flag(st.DST), true, nil
	case emop.ObjBacklight:
		return []byte{st.Backlight}, true, nil
	case emop.ObjLoadSwitch:
		return []byte{st.LoadSwitch}, true, nil
	case emop.ObjNoDebtRecoveryInECreditFlag:
		return flag(st.NoDebtInEC), true, nil
	case emop.ObjNoStandingChargeInPowerFail:
		return flag(st.NoSCPowerOff), true, nil
	}
	return nil, false, nil
}

// le32 decodes a u32le payload.
func le32(p []byte) int64 {
	return int64(uint32(p[0]) | uint32(p[1])<<8 | uint32(p[2])<<16 | uint32(p[3])<<24)
}

// write applies a write of payload to object id.
func (m *Meter) write(id emop.ObjectID, p []byte, now time.Time) error {
	o, known := emop.Lookup(id)
	if known && !o.Writable {
		return nak(emop.NakSecurity)
	}
	if !known || id == emop.ObjEventLog || id == emop.ObjThreePhaseHardwareConfig {
		return nak(emop.NakUnknownObject)
	}
	if o.Size > 0 && len(p) != o.Size {
		return nak(emop.NakLength)
	}
	if ok, err := m.writeFutureTariff(id, p); ok {
		return err
	}
	if ok, err := m.writeClockPrepay(id, p, now); ok {
		return err
	}
	if ok, err := m.writeSetting(id, p); ok {
		return err
	}
	return nak(emop.NakUnknownObject)
}

// writeFutureTariff writes the future tariff; any change re-arms its
// activation. ok is false when id is not a future-tariff object.
func (m *Meter) writeFutureTariff(id emop.ObjectID, p []byte) (ok bool, err error) {
	f := &m.st.Future
	switch {
	case id >= emop.ObjFutureBlock1Rate1 && id <= emop.ObjFutureBlock8Rate8:
		f.Blocks[id-emop.ObjFutureBlock1Rate1] = le32(p)
	case id >= emop.ObjFutureElementBTouRate1 && id <= emop.ObjFutureElementBTouRate4:
		f.ElementBTou[id-emop.ObjFutureElementBTouRate1] = le32(p)
	case id == emop.ObjFutureTouFlag:
		f.TouFlag = p[0]
	case id == emop.ObjFutureStandingCharge:
		f.StandingCharge = le32(p)
	case id == emop.ObjFutureThresholdMask:
		f.ThresholdMask = p[0]
	case id == emop.ObjFutureThresholdValues:
		v, _ := emop.DecodeThresholdValues(p)
		f.ThresholdValues = v
	case id == emop.ObjFutureActivation:
		f.Activation = uint32(le32(p))
	case id == emop.ObjFutureGas:
		f.Gas = uint32(le32(p))
	case id == emop.ObjFutureEmergencyCredit:
		f.EmergencyCredit = le32(p)
	case id == emop.ObjFutureECreditAvailability:
		f.ECreditAvailability = le32(p)
	case id == emop.ObjFutureDebtRecoveryRate:
		f.DebtRecoveryRate = le32(p)
	default:
		return false, nil
	}
	m.st.FutureDone = false
	return true, nil
}

// writeClockPrepay writes the clock, the prepay flag, a token and the time
// switches. ok is false when id is none of these.
func (m *Meter) writeClockPrepay(id emop.ObjectID, p []byte, now time.Time) (ok bool, err error) {
	st := &m.st
	switch id {
	case emop.ObjTime:
		t, err := emop.DecodeClock(p)
		if err != nil {
			return true, nak(emop.NakFormat)
		}
		st.ClockOffset = t.Sub(now.Truncate(time.Second))
		st.DriftFrom = now
		m.event(now, EventClockSet)
	case emop.ObjPrepayEnabled:
		on := p[0] == 1
		if p[0] > 1 {
			return true, nak(emop.NakFormat)
		}
		if on && !st.PrepayOn && st.Balance < units(flows.MinPrepayBalance) {
			return true, nak(emop.NakSecurity) // the reference refuses prepay mode under £10
		}
		st.PrepayOn = on
	case emop.ObjTokenSend:
		_, err := m.applyToken(string(p), now)
		switch {
		case errors.Is(err, ErrTokenMalformed):
			return true, nak(emop.NakFormat)
		case err != nil:
			return true, nak(emop.NakSecurity)
		}
	case emop.ObjTimeSwitchElementAOrSingle:
		st.TimeSwitchA = append([]byte(nil), p...)
	case emop.ObjTimeSwitchElementB:
		st.TimeSwitchB = append([]byte(nil), p...)
	default:
		return false, nil
	}
	return true, nil
}

// writeSetting writes the meter settings. ok is false when id is not a
// setting.
func (m *Meter) writeSetting(id emop.ObjectID, p []byte) (ok bool, err error) {
	st := &m.st
	switch id {
	case emop.ObjDSTFlag, emop.ObjNoDebtRecoveryInECreditFlag, emop.ObjNoStandingChargeInPowerFail:
		if p[0] > 1 {
			return true, nak(emop.NakFormat)
		}
		switch id {
		case emop.ObjDSTFlag:
			st.DST = p[0] == 1
		case emop.ObjNoDebtRecoveryInECreditFlag:
			st.NoDebtInEC = p[0] == 1
		default:
			st.NoSCPowerOff = p[0] == 1
		}
	case emop.ObjBacklight:
		if int(p[0]) >= len(emop.BacklightSettings) {
			return true, nak(emop.NakFormat)
		}
		st.Backlight = p[0]
	case emop.ObjLoadSwitch:
		if int(p[0]) >= len(emop.LoadSwitchSettings) {
			return true, nak(emop.NakFormat)
		}
		st.LoadSwitch = p[0]
	default:
		return false, nil
	}
	return true, nil
}
