package sim

import (
	"errors"
	"time"

	"github.com/flows-energy/flows/emop"
	"github.com/shopspring/decimal"
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

// profile answers a profile-log request with the snapshots from the first
// one at or after from (meters return the next data they have).
func (m *Meter) profile(format byte, from time.Time) ([]byte, error) {
	var recs []Snapshot
	for _, s := range m.st.Profile {
		if !s.At.Before(from) {
			recs = append(recs, s)
		}
	}
	twin := m.Spec.Layout == "twin"
	if format == emop.FormatProfileLog1 {
		var out []emop.ProfileLog1Record
		for i := 0; i < len(recs) && i < emop.ProfileLog1PerResponse; i++ {
			out = append(out, emop.ProfileLog1Record{Timestamp: recs[i].At, Status: emop.StatusValidData, ImportA: recs[i].ImportA, ImportB: recs[i].ImportB})
		}
		return emop.ProfileLog1Response(from, out)
	}
	_, n := emop.ProfileLog2Layout(twin)
	var out []emop.ProfileLog2Record
	for i := 0; i < len(recs) && i < n; i++ {
		r := emop.ProfileLog2Record{Timestamp: recs[i].At, Status: emop.StatusValidData, ActiveExportA: recs[i].ExportA,
			ReactiveImportA: recs[i].ImportA / 10, VoltageTenths: recs[i].Voltage}
		if twin {
			r.ActiveExportB, r.ReactiveImportB = recs[i].ExportB, recs[i].ImportB/10
		}
		out = append(out, r)
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

// read returns the payload of object id.
func (m *Meter) read(id emop.ObjectID, now time.Time) ([]byte, error) {
	st := &m.st
	a, f := &st.Active, &st.Future
	pa, pb, _ := m.power(now)
	if !st.Connected {
		pa, pb = 0, 0
	}
	switch {
	case id >= 0xFFF901 && id <= 0xFFF940:
		return u32(a.Blocks[id-0xFFF901]), nil
	case id >= 0xFFF801 && id <= 0xFFF840:
		return u32(f.Blocks[id-0xFFF801]), nil
	case id >= 0xFFF701 && id <= 0xFFF704:
		return u32(a.ElementBTou[id-0xFFF701]), nil
	case id >= 0xFFF601 && id <= 0xFFF604:
		return u32(f.ElementBTou[id-0xFFF601]), nil
	}
	switch id {
	case emop.ObjTokenSend:
		return nil, nak(emop.NakSecurity) // write-only: a token is never read back
	case emop.ObjTime:
		return emop.EncodeClock(m.meterTime(now))
	case emop.ObjSerial:
		return emop.EncodeString(m.Spec.Serial, 16), nil
	case emop.ObjHardware:
		hw := emop.ReportedHardware(m.Spec.Hardware)
		return append([]byte(hw), make([]byte, 4-min(4, len(hw)))...), nil
	case emop.ObjFirmware:
		fw := m.Spec.Firmware
		if len(fw) != 4 {
			fw = "3028"
		}
		return []byte(fw), nil
	case emop.ObjPrepayBalance:
		return emop.EncodeBalance(money(st.Balance))
	case emop.ObjPrepayEnabled:
		return flag(st.PrepayOn), nil
	case emop.ObjElementA:
		return emop.Reading{ImportActive: uint32(st.ImportJ[0] / 3600), ExportActive: uint32(st.ExportJ[0] / 3600),
			ImportReactive: uint32(st.ImportJ[0] / 36000)}.Encode(), nil
	case emop.ObjElementB:
		return emop.Reading{ImportActive: uint32(st.ImportJ[1] / 3600), ExportActive: uint32(st.ExportJ[1] / 3600),
			ImportReactive: uint32(st.ImportJ[1] / 36000)}.Encode(), nil
	case emop.ObjCSQ:
		return emop.EncodeCSQ(m.csq(now))
	case emop.ObjVoltage, 0x0C1800: // instantaneous, average
		return u16(int(m.voltage(now))), nil
	case 0x0B0700, 0x0B1800: // current, tenths of an amp
		return u16(int((pa + pb) * 10 * 10 / int64(m.voltage(now)))), nil
	case 0x010700, 0x150700: // active power, W
		return u16(int(min(pa+pb, 65535))), nil
	case 0x290700:
		return u16(int(min(pb, 65535))), nil
	case 0x030700:
		return u16(int((pa + pb) / 10)), nil
	case 0x0D0700:
		return u16(95), nil
	case 0x0E0700, 0x0E1800:
		return u16(500), nil
	case 0x010800:
		return u32((st.ImportJ[0] + st.ImportJ[1]) / 3600), nil
	case 0x020800:
		return u32((st.ExportJ[0] + st.ExportJ[1]) / 3600), nil
	case emop.ObjTransactionCount:
		return u16(int(st.TxCount)), nil
	case emop.ObjTransactionDetails:
		if st.TxCount == 0 {
			return make([]byte, 16), nil
		}
		return st.LastTx.Encode()
	case 0x0D0000:
		return append([]byte(nil), st.TimeSwitchA...), nil
	case 0x0D00FF:
		return append([]byte(nil), st.TimeSwitchB...), nil
	case 0xFFFF4E:
		return []byte{a.TouFlag}, nil
	case emop.ObjActiveStandingCharge:
		return u32(a.StandingCharge), nil
	case emop.ObjActiveThresholdMask:
		return []byte{a.ThresholdMask}, nil
	case emop.ObjActiveThresholdValues:
		return emop.ThresholdValues(a.ThresholdValues).Encode(), nil
	case 0xFFC964:
		return u32(int64(a.Gas)), nil
	case emop.ObjActiveTouRate, 0xFFFF4B:
		return []byte{0}, nil
	case emop.ObjActiveBlockRate:
		return []byte{7}, nil // block 8
	case 0xFFFF2D, 0xFFFF4C:
		return []byte{0}, nil
	case emop.ObjActivePrice:
		return u32(a.RateA()), nil
	case emop.ObjActiveEmergencyCredit:
		return u32(a.EmergencyCredit), nil
	case emop.ObjActiveECreditAvailability:
		return u32(a.ECreditAvailability), nil
	case emop.ObjActiveDebtRecoveryRate:
		return u32(a.DebtRecoveryRate), nil
	case emop.ObjActiveElementBPrice:
		return u32(a.RateB()), nil
	case emop.ObjFutureTouFlag:
		return []byte{f.TouFlag}, nil
	case emop.ObjFutureStandingCharge:
		return u32(f.StandingCharge), nil
	case emop.ObjFutureThresholdMask:
		return []byte{f.ThresholdMask}, nil
	case emop.ObjFutureThresholdValues:
		return emop.ThresholdValues(f.ThresholdValues).Encode(), nil
	case emop.ObjFutureActivation:
		return u32(int64(f.Activation)), nil
	case emop.ObjFutureGas:
		return u32(int64(f.Gas)), nil
	case emop.ObjFutureEmergencyCredit:
		return u32(f.EmergencyCredit), nil
	case emop.ObjFutureECreditAvailability:
		return u32(f.ECreditAvailability), nil
	case emop.ObjFutureDebtRecoveryRate:
		return u32(f.DebtRecoveryRate), nil
	case emop.ObjDSTFlag:
		return flag(st.DST), nil
	case emop.ObjBacklight:
		return []byte{st.Backlight}, nil
	case emop.ObjLoadSwitch:
		return []byte{st.LoadSwitch}, nil
	case emop.ObjNoDebtRecoveryInECreditFlag:
		return flag(st.NoDebtInEC), nil
	case emop.ObjNoStandingChargeInPowerFail:
		return flag(st.NoSCPowerOff), nil
	}
	// Three-phase objects, event_log through the default format, and ids
	// the meter does not know.
	return nil, nak(emop.NakUnknownObject)
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
	st := &m.st
	f := &st.Future
	le32 := func() int64 { return int64(uint32(p[0]) | uint32(p[1])<<8 | uint32(p[2])<<16 | uint32(p[3])<<24) }
	futureChanged := func() { st.FutureDone = false }
	switch {
	case id >= 0xFFF801 && id <= 0xFFF840:
		f.Blocks[id-0xFFF801] = le32()
		futureChanged()
		return nil
	case id >= 0xFFF601 && id <= 0xFFF604:
		f.ElementBTou[id-0xFFF601] = le32()
		futureChanged()
		return nil
	}
	switch id {
	case emop.ObjTime:
		t, err := emop.DecodeClock(p)
		if err != nil {
			return nak(emop.NakFormat)
		}
		st.ClockOffset = t.Sub(now.Truncate(time.Second))
		st.DriftFrom = now
		m.event(now, EventClockSet)
	case emop.ObjPrepayEnabled:
		on := p[0] == 1
		if p[0] > 1 {
			return nak(emop.NakFormat)
		}
		if on && !st.PrepayOn && st.Balance < units(decimal.NewFromInt(10)) {
			return nak(emop.NakSecurity) // the reference refuses prepay mode under £10
		}
		st.PrepayOn = on
	case emop.ObjTokenSend:
		_, err := m.applyToken(string(p), now)
		switch {
		case errors.Is(err, ErrTokenMalformed):
			return nak(emop.NakFormat)
		case err != nil:
			return nak(emop.NakSecurity)
		}
	case 0x0D0000:
		st.TimeSwitchA = append([]byte(nil), p...)
	case 0x0D00FF:
		st.TimeSwitchB = append([]byte(nil), p...)
	case emop.ObjFutureTouFlag:
		f.TouFlag = p[0]
		futureChanged()
	case emop.ObjFutureStandingCharge:
		f.StandingCharge = le32()
		futureChanged()
	case emop.ObjFutureThresholdMask:
		f.ThresholdMask = p[0]
		futureChanged()
	case emop.ObjFutureThresholdValues:
		v, _ := emop.DecodeThresholdValues(p)
		f.ThresholdValues = v
		futureChanged()
	case emop.ObjFutureActivation:
		f.Activation = uint32(le32())
		futureChanged()
	case emop.ObjFutureGas:
		f.Gas = uint32(le32())
		futureChanged()
	case emop.ObjFutureEmergencyCredit:
		f.EmergencyCredit = le32()
		futureChanged()
	case emop.ObjFutureECreditAvailability:
		f.ECreditAvailability = le32()
		futureChanged()
	case emop.ObjFutureDebtRecoveryRate:
		f.DebtRecoveryRate = le32()
		futureChanged()
	case emop.ObjDSTFlag, emop.ObjNoDebtRecoveryInECreditFlag, emop.ObjNoStandingChargeInPowerFail:
		if p[0] > 1 {
			return nak(emop.NakFormat)
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
			return nak(emop.NakFormat)
		}
		st.Backlight = p[0]
	case emop.ObjLoadSwitch:
		if int(p[0]) >= len(emop.LoadSwitchSettings) {
			return nak(emop.NakFormat)
		}
		st.LoadSwitch = p[0]
	default:
		return nak(emop.NakUnknownObject)
	}
	return nil
}
