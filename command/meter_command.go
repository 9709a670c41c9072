package command

import (
	"context"
	"fmt"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
	"github.com/flows-energy/flows/meterop"
)

func commandPushed(c flows.MeterCommand) pushed {
	return pushed{kind: string(c.Kind), id: c.ID, meterID: c.MeterID, serial: c.Serial, attempts: c.Attempts}
}

// pushCommand sets a clock or a flag, reads it back and verifies it.
func (p *Pusher) pushCommand(ctx context.Context, c flows.MeterCommand) outcome {
	req := commandPushed(c)
	_, t, err := p.target(ctx, c.MeterID)
	if err != nil {
		return p.noTarget(req, err)
	}
	id, payload, err := meterop.CommandWrite(c.Kind, c.Value, p.cfg.Now())
	if err != nil {
		return failed(err.Error())
	}
	if c.Kind == flows.CommandPrepay && c.Value == "on" {
		if o, ok := p.checkPrepayBalance(ctx, t); !ok {
			return o
		}
	}
	if err := p.write(ctx, t, req, c.RequestedBy, meterop.Write{Object: id, Payload: payload}, fmt.Sprintf("% x", payload)); err != nil {
		return fromError("", err)
	}
	ok, err := p.cfg.Store.MoveMeterCommand(ctx, c.ID, flows.RequestSending, flows.RequestSent, "", time.Time{}, c.Attempts)
	if err != nil {
		return p.storeFailed(req, "recording the command sent", err)
	}
	if !ok {
		return stopped() // superseded meanwhile
	}
	return p.verifyCommand(ctx, c, t, id, payload).at(flows.RequestSent)
}

// checkPrepayBalance refuses prepay mode below flows.MinPrepayBalance, as
// the meter itself would.
func (p *Pusher) checkPrepayBalance(ctx context.Context, t meterconn.Target) (outcome, bool) {
	b, err := meterop.Balance(ctx, p.cfg.Meters, t)
	if err != nil {
		return fromError("", err), false
	}
	if b.LessThan(flows.MinPrepayBalance) {
		return failed(fmt.Sprintf("balance £%s is below £%s: add credit before enabling prepay mode", b.StringFixed(2), flows.MinPrepayBalance)), false
	}
	return outcome{}, true
}

// verifyCommand reads the object back: verified when it holds what was
// written, with the value recorded where Flows shows it.
func (p *Pusher) verifyCommand(ctx context.Context, c flows.MeterCommand, t meterconn.Target, id emop.ObjectID, payload []byte) outcome {
	back, err := p.cfg.Meters.Read(ctx, t, id)
	if err != nil {
		o := fromError("read back failed", err)
		if o.result == resultFailed {
			o.result = resultRetry // the write was accepted: reading again may well work
		}
		return o
	}
	o := done(flows.RequestVerified, "")
	if c.Kind == flows.CommandClock {
		mt, err := emop.DecodeClock(back)
		if err != nil {
			return retry("clock read back undecodable: " + err.Error())
		}
		diff := p.cfg.Now().Sub(mt).Abs()
		if diff > 5*time.Second {
			return retry(fmt.Sprintf("clock read back %v off", diff.Round(time.Second)))
		}
		secs := int(diff / time.Second)
		o.saw("clock", flows.ShadowUpdate{ClockTimeDiffSeconds: &secs, At: p.cfg.Now()})
		return o
	}
	if len(back) != 1 || back[0] != payload[0] {
		return retry(fmt.Sprintf("read back % x, wrote % x", back, payload))
	}
	on, v := payload[0] == 1, c.Value
	switch c.Kind {
	case flows.CommandPrepay:
		o.prepay = &on
	case flows.CommandDST:
		o.dst = &on
	case flows.CommandBacklight:
		o.saw("backlight", flows.ShadowUpdate{Backlight: &v, At: p.cfg.Now()})
	case flows.CommandLoadSwitch:
		o.saw("load_switch", flows.ShadowUpdate{LoadSwitch: &v, At: p.cfg.Now()})
	}
	return o
}
