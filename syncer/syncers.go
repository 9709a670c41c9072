package syncer

import (
	"context"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/meterop"
	"github.com/shopspring/decimal"
)

// Meters is how the engine reaches meters: the in-process transport
// (meterconn.Client) or a mediator client.
type Meters interface {
	Read(ctx context.Context, t meterconn.Target, id emop.ObjectID) ([]byte, error)
	Raw(ctx context.Context, t meterconn.Target, data []byte) ([]byte, error)
}

// call is one sync of one meter: what the syncers share.
type call struct {
	meters    Meters
	target    meterconn.Target
	meter     *flows.Meter
	now       time.Time
	lastEvent func() (time.Time, error)
	// profileGaps returns the meter's missing profile half hours in
	// [from, to), clipped to the backfill window.
	profileGaps func(from, to time.Time) ([]flows.ProfileGap, error)
	// threePhaseGaps is profileGaps for a three-phase interval profile.
	threePhaseGaps func(from, to time.Time) ([]flows.ProfileGap, error)
	res            *flows.SyncResult
}

// Read implements meterop.Reader, noting that the meter answered.
func (c *call) Read(ctx context.Context, t meterconn.Target, id emop.ObjectID) ([]byte, error) {
	p, err := c.meters.Read(ctx, t, id)
	if err == nil {
		c.res.Reached = true
	}
	return p, err
}

func (c *call) read(ctx context.Context, id emop.ObjectID) ([]byte, error) {
	return c.Read(ctx, c.target, id)
}

// flag reads a one-byte on/off setting (1 = on).
func (c *call) flag(ctx context.Context, id emop.ObjectID) (bool, error) {
	v, err := meterop.U8(ctx, c, c.target, id)
	return v == 1, err
}

// runs implement the syncers of flows.Syncers, by name (a test checks
// that every one has its run). A run sets a field of c.res only once its
// object has been read and decoded: a meter that refuses or garbles one
// object must not overwrite the value stored for it with a zero.
var runs = map[string]func(ctx context.Context, c *call) error{
	"SyncerCsq": func(ctx context.Context, c *call) error {
		p, err := c.read(ctx, emop.ObjCSQ)
		if err != nil {
			return err
		}
		s, err := emop.DecodeCSQ(p)
		if err != nil {
			return err
		}
		c.res.Shadow.CSQ, c.res.Shadow.NetworkOperator = &s.CSQ, &s.NetworkOperator
		return nil
	},
	"SyncerVoltage": func(ctx context.Context, c *call) error {
		p, err := c.read(ctx, emop.ObjVoltage)
		if err != nil {
			return err
		}
		// Volts, like three-phase voltages (the reference stored tenths).
		v, err := emop.DecodeVoltage(p)
		if err != nil {
			return err
		}
		c.res.Shadow.Voltage = &v
		return nil
	},
	"SyncerPrepayBalance": func(ctx context.Context, c *call) error {
		p, err := c.read(ctx, emop.ObjPrepayBalance)
		if err != nil {
			return err
		}
		b, err := emop.DecodeBalance(p)
		if err != nil {
			return err
		}
		c.res.Shadow.Balance = &b
		ec, err := meterop.Money(ctx, c, c.target, emop.ObjActiveEmergencyCredit)
		c.res.Shadow.EmergencyCredit = ec
		return err
	},
	"SyncerClockDiff": func(ctx context.Context, c *call) error {
		p, err := c.read(ctx, emop.ObjTime)
		if err != nil {
			return err
		}
		mt, err := emop.DecodeClock(p)
		if err != nil {
			return err
		}
		// The whole difference, days included (the reference kept only
		// the seconds component).
		d := c.now.Sub(mt)
		if d < 0 {
			d = -d
		}
		secs := int(d.Round(time.Second) / time.Second)
		c.res.Shadow.ClockTimeDiffSeconds = &secs
		return nil
	},
	"SyncerReads": func(ctx context.Context, c *call) error {
		p, err := c.read(ctx, emop.ObjElementA)
		if err != nil {
			return err
		}
		a, err := emop.DecodeReading(p)
		if err != nil {
			return err
		}
		kwh := func(wh uint32) *decimal.Decimal { d := decimal.New(int64(wh), -3); return &d }
		c.res.Shadow.ImportA, c.res.Shadow.ExportA = kwh(a.ImportActive), kwh(a.ExportActive)
		if !emop.IsTwinElement(c.meter.Hardware) {
			return nil // no element B to read on single-element meters
		}
		p, err = c.read(ctx, emop.ObjElementB)
		if err != nil {
			return err
		}
		b, err := emop.DecodeReading(p)
		if err != nil {
			return err
		}
		c.res.Shadow.ImportB, c.res.Shadow.ExportB = kwh(b.ImportActive), kwh(b.ExportActive)
		return nil
	},
	"SyncerTariffsActive": func(ctx context.Context, c *call) error {
		t, err := meterop.ReadTariff(ctx, c, c.target, false)
		c.res.Shadow.TariffsActive = t
		return err
	},
	"SyncerTariffsFuture": func(ctx context.Context, c *call) error {
		t, err := meterop.ReadTariff(ctx, c, c.target, true)
		c.res.Shadow.TariffsFuture = t
		return err
	},
	"SyncerBacklight": func(ctx context.Context, c *call) error {
		v, err := meterop.U8(ctx, c, c.target, emop.ObjBacklight)
		if err != nil {
			return err
		}
		name := emop.SettingName(emop.BacklightSettings, v)
		if name == "" {
			return nil // a value outside the enum is skipped, as the reference does
		}
		if name == emop.BacklightSettings[0] {
			name = map[bool]string{true: "always_off_3p", false: "normal_sp"}[emop.IsThreePhase(c.meter.Hardware)]
		}
		c.res.Shadow.Backlight = &name
		return nil
	},
	"SyncerLoadSwitch": func(ctx context.Context, c *call) error {
		v, err := meterop.U8(ctx, c, c.target, emop.ObjLoadSwitch)
		if err != nil {
			return err
		}
		if name := emop.SettingName(emop.LoadSwitchSettings, v); name != "" {
			c.res.Shadow.LoadSwitch = &name
		}
		return nil
	},
	"SyncerEventLog":            syncEvents,
	"SyncerProfileLogs":         syncProfile,
	"SyncerThreePhaseVoltage":   syncThreePhaseVoltage,
	"SyncerThreePhaseReads":     syncThreePhaseReads,
	"SyncerThreePhaseIntervals": syncThreePhaseIntervals,
	"SyncerHardware": func(ctx context.Context, c *call) error {
		p, err := c.read(ctx, emop.ObjHardware)
		if err != nil {
			return err
		}
		s, err := emop.DecodeString(p)
		if err != nil {
			return err
		}
		hw := emop.RegistryHardware(s, -1)
		if s == "" {
			// Blank means three-phase; the configuration says which kind
			// (THREE_PHASE_UNKNOWN when it is refused or unknown).
			p, err := c.read(ctx, emop.ObjThreePhaseHardwareConfig)
			if meterconn.Classify(err).Unreached() {
				return err
			}
			if cfg, derr := emop.DecodeThreePhaseConfig(p); err == nil && derr == nil {
				hw = cfg.Hardware()
			}
		}
		c.res.Registry.Hardware = &hw
		if emop.IsThreePhase(hw) {
			// A credit meter: its prepay flag is never read (no
			// SyncerPrepayEnabled for it), so the registry says what it is.
			credit := false
			c.res.Registry.PrepayEnabled = &credit
		}
		return nil
	},
	"SyncerSerial": func(ctx context.Context, c *call) error {
		id := emop.ObjSerial
		if emop.IsThreePhase(c.meter.Hardware) {
			id = emop.ObjThreePhaseSerial
		}
		p, err := c.read(ctx, id)
		if err != nil {
			return err
		}
		s, err := emop.DecodeString(p)
		if err != nil || flows.ValidateSerial(s) != nil {
			return err // a serial we cannot store is not written over a good one
		}
		c.res.Registry.Serial = &s
		return nil
	},
	"SyncerFirmwareVersion": func(ctx context.Context, c *call) error {
		p, err := c.read(ctx, emop.ObjFirmware)
		if err != nil {
			return err
		}
		fw := emop.FormatFirmware(p)
		c.res.Registry.FirmwareVersion = &fw
		return nil
	},
	"SyncerPrepayEnabled": func(ctx context.Context, c *call) error {
		on, err := c.flag(ctx, emop.ObjPrepayEnabled)
		if err != nil {
			return err
		}
		c.res.Registry.PrepayEnabled = &on
		return nil
	},
	"SyncerDaylightSavingsEnabled": func(ctx context.Context, c *call) error {
		on, err := c.flag(ctx, emop.ObjDSTFlag)
		if err != nil {
			return err
		}
		c.res.Registry.DaylightSavingsCorrectionEnabled = &on
		return nil
	},
}

// syncEvents fetches event-log blocks newest first until it reaches events
// already stored (at most ten blocks), dropping invalid id-0 entries.
func syncEvents(ctx context.Context, c *call) error {
	last, err := c.lastEvent()
	if err != nil {
		return err
	}
	for idx := uint8(0); idx <= emop.MaxEventLogIndex; idx++ {
		req, _ := emop.EventLogRequest(idx)
		resp, err := c.meters.Raw(ctx, c.target, req)
		if err != nil {
			return err
		}
		c.res.Reached = true
		_, evs, err := emop.ParseEventLogResponse(resp)
		if err != nil {
			return err
		}
		fresh := 0
		for _, e := range evs {
			if e.Timestamp.After(last) {
				c.res.Events = append(c.res.Events, flows.MeterEvent{Timestamp: e.Timestamp, EventType: int(e.EventID), EventSet: int(e.EventSet)})
				fresh++
			}
		}
		if fresh < emop.EventsPerBlock {
			return nil
		}
	}
	return nil
}
