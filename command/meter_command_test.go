package command_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
)

// A meter whose clock drifted past the threshold gets its clock written,
// re-read and verified.
func TestClockCorrection(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	r := newRig(t, start, "127.101")
	ctx := context.Background()
	m := r.fleet.Meters()[1]
	p, _ := emop.EncodeClock(start.Add(2 * time.Minute))
	if resp := m.Handle(emop.Frame{Control: 1, Data: emop.WriteRequest(emop.ObjTime, p)}, start); resp.AckNak() != 0 {
		t.Fatal("could not put the meter's clock off")
	}
	drift := 120
	if err := r.store.UpdateShadow(ctx, r.ids[m.Spec.Serial], flows.ShadowUpdate{ClockTimeDiffSeconds: &drift}); err != nil {
		t.Fatal(err)
	}
	runOnce(t, r.pusher(t, nil))
	if got := m.MeterTime(r.clock.Now()).Sub(r.clock.Now()).Abs(); got > 2*time.Second {
		t.Errorf("meter clock still %v off", got)
	}
	var status, by, lastErr string
	_ = r.store.Pool().QueryRow(ctx, `SELECT status, requested_by, coalesce(last_error, '') FROM flows.meter_commands WHERE meter_id = $1 AND kind = 'clock'`, r.ids[m.Spec.Serial]).Scan(&status, &by, &lastErr)
	if status != "verified" || by != "clock-drift" {
		t.Errorf("clock command %s by %s (%s)", status, by, lastErr)
	}
	st, _ := r.store.MeterStatus(ctx, m.Spec.Serial)
	if st.Shadow.ClockTimeDiffSeconds == nil || *st.Shadow.ClockTimeDiffSeconds > 2 {
		t.Errorf("shadow drift after correction: %v", st.Shadow.ClockTimeDiffSeconds)
	}
	// Meters within the threshold are left alone.
	var n int
	_ = r.store.Pool().QueryRow(ctx, `SELECT count(*) FROM flows.meter_commands`).Scan(&n)
	if n != 1 {
		t.Errorf("%d clock commands, want 1", n)
	}
}

func TestFlagCommands(t *testing.T) {
	start := time.Now().UTC().Truncate(time.Second)
	r := newRig(t, start, "127.102")
	ctx := context.Background()
	p := r.pusher(t, nil)
	poor := r.fleet.Meters()[0] // starts with £8
	rich := r.fleet.Meters()[1]
	do := func(serial string, kind flows.CommandKind, value string) *flows.MeterCommand {
		t.Helper()
		c, err := r.store.CreateMeterCommand(ctx, r.ids[serial], kind, value, "erin")
		if err != nil {
			t.Fatalf("%s %s: %v", kind, value, err)
		}
		runOnce(t, p)
		c, _ = r.store.MeterCommand(ctx, c.ID)
		return c
	}
	if c := do(poor.Spec.Serial, flows.CommandPrepay, "off"); c.Status != flows.RequestVerified {
		t.Errorf("prepay off: %s %s", c.Status, c.LastError)
	}
	if st := poor.State(r.clock.Now()); st.PrepayOn {
		t.Errorf("meter still in prepay mode")
	}
	if c := do(poor.Spec.Serial, flows.CommandPrepay, "on"); c.Status != flows.RequestFailed || !strings.Contains(c.LastError, "below £10") {
		t.Errorf("prepay on at £8: %s %q", c.Status, c.LastError)
	}
	if st := poor.State(r.clock.Now()); st.PrepayOn {
		t.Errorf("prepay was enabled below £10")
	}
	m, _ := r.store.MeterBySerial(ctx, poor.Spec.Serial)
	if m.PrepayEnabled == nil || *m.PrepayEnabled {
		t.Errorf("registry prepay_enabled %v", m.PrepayEnabled)
	}
	if c := do(rich.Spec.Serial, flows.CommandBacklight, "always_on_sp"); c.Status != flows.RequestVerified {
		t.Errorf("backlight: %s %s", c.Status, c.LastError)
	}
	if c := do(rich.Spec.Serial, flows.CommandLoadSwitch, "never_button_required"); c.Status != flows.RequestVerified {
		t.Errorf("load switch: %s %s", c.Status, c.LastError)
	}
	if c := do(rich.Spec.Serial, flows.CommandDST, "on"); c.Status != flows.RequestVerified {
		t.Errorf("dst: %s %s", c.Status, c.LastError)
	}
	st, _ := r.store.MeterStatus(ctx, rich.Spec.Serial)
	if st.Shadow.Backlight != "always_on_sp" || st.Shadow.LoadSwitch != "never_button_required" || !st.Meter.DaylightSavingsCorrectionEnabled {
		t.Errorf("after flags: backlight %q load switch %q dst %v", st.Shadow.Backlight, st.Shadow.LoadSwitch, st.Meter.DaylightSavingsCorrectionEnabled)
	}
	for _, c := range []struct {
		kind  flows.CommandKind
		value string
	}{{flows.CommandPrepay, "maybe"}, {flows.CommandBacklight, "disco"}, {flows.CommandClock, "12:00"}, {"toaster", "on"}} {
		if _, err := r.store.CreateMeterCommand(ctx, r.ids[rich.Spec.Serial], c.kind, c.value, "erin"); flows.ErrorCode(err) != flows.EINVALID {
			t.Errorf("%s %q accepted: %v", c.kind, c.value, err)
		}
	}
}
