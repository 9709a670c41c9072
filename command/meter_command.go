package command

import (
	"context"
	"fmt"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterop"
	"github.com/shopspring/decimal"
)

// MinPrepayBalance is the balance below which prepay mode is not switched
// on (the reference's rule).
var MinPrepayBalance = decimal.NewFromInt(10)

// pushCommand sets a clock or a flag, reads it back and verifies it.
func (p *Pusher) pushCommand(ctx context.Context, c flows.MeterCommand) {
	log := p.cfg.Logger.With("command_id", c.ID, "meter_serial", c.Serial, "kind", c.Kind)
	finish := func(to flows.RequestStatus, msg string, at time.Time) {
		if c.Attempts >= p.cfg.MaxAttempts && to == flows.RequestPending {
			to, at = flows.RequestFailed, time.Time{}
		}
		if _, err := p.cfg.Store.MoveMeterCommand(ctx, c.ID, flows.RequestSending, to, msg, at); err != nil {
			log.Error("moving meter command", "error", err)
		}
	}
	fail := func(err error) {
		kind, detail := outcome(err)
		if detail == "" {
			detail = err.Error()
		}
		if kind != "nak" && isComm(err) {
			finish(flows.RequestPending, detail, p.retryAt(c.Attempts))
			return
		}
		finish(flows.RequestFailed, detail, time.Time{})
	}
	_, t, err := p.target(ctx, c.MeterID)
	if err != nil {
		fail(err)
		return
	}
	var id emop.ObjectID
	var payload []byte
	switch c.Kind {
	case flows.CommandClock:
		id = emop.ObjTime
		payload, _ = emop.EncodeClock(p.cfg.Now())
	case flows.CommandPrepay, flows.CommandDST:
		id = map[flows.CommandKind]emop.ObjectID{flows.CommandPrepay: emop.ObjPrepayEnabled, flows.CommandDST: emop.ObjDSTFlag}[c.Kind]
		payload = []byte{0}
		if c.Value == "on" {
			payload[0] = 1
		}
		if c.Kind == flows.CommandPrepay && c.Value == "on" {
			b, err := meterop.Balance(ctx, p.cfg.Meters, t)
			if err != nil {
				fail(err)
				return
			}
			if b.LessThan(MinPrepayBalance) {
				finish(flows.RequestFailed, fmt.Sprintf("balance £%s is below £%s: add credit before enabling prepay mode", b.StringFixed(2), MinPrepayBalance), time.Time{})
				return
			}
		}
	case flows.CommandBacklight:
		code, _ := emop.SettingCode(emop.BacklightSettings, c.Value)
		id, payload = emop.ObjBacklight, []byte{code}
	case flows.CommandLoadSwitch:
		code, _ := emop.SettingCode(emop.LoadSwitchSettings, c.Value)
		id, payload = emop.ObjLoadSwitch, []byte{code}
	default:
		finish(flows.RequestFailed, "unknown command kind", time.Time{})
		return
	}
	werr := p.cfg.Meters.Write(ctx, t, id, payload)
	o, _ := emop.Lookup(id)
	kind, detail := outcome(werr)
	p.audit(ctx, flows.AuditEntry{MeterID: c.MeterID, RequestKind: string(c.Kind), RequestID: c.ID, RequestedBy: c.RequestedBy,
		Object: o.Name, Value: fmt.Sprintf("% x", payload), Outcome: kind, Detail: detail})
	if werr != nil {
		fail(werr)
		return
	}
	if ok, _ := p.cfg.Store.MoveMeterCommand(ctx, c.ID, flows.RequestSending, flows.RequestSent, "", time.Time{}); !ok {
		return
	}
	back, err := p.cfg.Meters.Read(ctx, t, id)
	if err != nil {
		p.moveCommand(ctx, c, flows.RequestSent, flows.RequestPending, "read back failed: "+detailOf(err), p.retryAt(c.Attempts))
		return
	}
	switch c.Kind {
	case flows.CommandClock:
		mt, err := emop.DecodeClock(back)
		if err != nil {
			p.moveCommand(ctx, c, flows.RequestSent, flows.RequestPending, "clock read back undecodable: "+err.Error(), p.retryAt(c.Attempts))
			return
		}
		diff := p.cfg.Now().Sub(mt).Abs()
		if diff > 5*time.Second {
			p.moveCommand(ctx, c, flows.RequestSent, flows.RequestPending, fmt.Sprintf("clock read back %v off", diff.Round(time.Second)), p.retryAt(c.Attempts))
			return
		}
		secs := int(diff / time.Second)
		_ = p.cfg.Store.UpdateShadow(ctx, c.MeterID, flows.ShadowUpdate{ClockTimeDiffSeconds: &secs, At: p.cfg.Now()})
	default:
		if len(back) != 1 || back[0] != payload[0] {
			p.moveCommand(ctx, c, flows.RequestSent, flows.RequestPending, fmt.Sprintf("read back % x, wrote % x", back, payload), p.retryAt(c.Attempts))
			return
		}
		on := payload[0] == 1
		switch c.Kind {
		case flows.CommandPrepay:
			_ = p.cfg.Store.SetRegistryFlags(ctx, c.MeterID, &on, nil)
		case flows.CommandDST:
			_ = p.cfg.Store.SetRegistryFlags(ctx, c.MeterID, nil, &on)
		case flows.CommandBacklight:
			v := c.Value
			_ = p.cfg.Store.UpdateShadow(ctx, c.MeterID, flows.ShadowUpdate{Backlight: &v, At: p.cfg.Now()})
		case flows.CommandLoadSwitch:
			v := c.Value
			_ = p.cfg.Store.UpdateShadow(ctx, c.MeterID, flows.ShadowUpdate{LoadSwitch: &v, At: p.cfg.Now()})
		}
	}
	p.moveCommand(ctx, c, flows.RequestSent, flows.RequestVerified, "", time.Time{})
}

func (p *Pusher) moveCommand(ctx context.Context, c flows.MeterCommand, from, to flows.RequestStatus, msg string, at time.Time) {
	if c.Attempts >= p.cfg.MaxAttempts && to == flows.RequestPending {
		to, at = flows.RequestFailed, time.Time{}
	}
	if _, err := p.cfg.Store.MoveMeterCommand(ctx, c.ID, from, to, msg, at); err != nil {
		p.cfg.Logger.Error("moving meter command", "command_id", c.ID, "error", err)
	}
}

func detailOf(err error) string {
	_, d := outcome(err)
	if d == "" {
		return err.Error()
	}
	return d
}
