package meterop

import (
	"slices"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/emop"
)

// CommandWrite returns the object and payload that carry out a meter
// command: the clock set to now, an on/off flag, or a setting by name.
// It is the one place a command's value is checked: EINVALID naming
// "value" (or "kind") when the command cannot be written.
func CommandWrite(kind flows.CommandKind, value string, now time.Time) (emop.ObjectID, []byte, error) {
	switch kind {
	case flows.CommandClock:
		if value != "" {
			return 0, nil, flows.FieldError("value", "the clock is set to the time of the push; give no value")
		}
		p, err := emop.EncodeClock(now)
		if err != nil {
			return 0, nil, flows.FieldError("value", "the clock cannot be set to %s: %v", now.UTC().Format(time.RFC3339), err)
		}
		return emop.ObjTime, p, nil
	case flows.CommandPrepay, flows.CommandDST:
		id := emop.ObjPrepayEnabled
		if kind == flows.CommandDST {
			id = emop.ObjDSTFlag
		}
		switch value {
		case "on":
			return id, []byte{1}, nil
		case "off":
			return id, []byte{0}, nil
		}
		return 0, nil, flows.FieldError("value", "%q: want on or off", value)
	case flows.CommandBacklight:
		code, ok := emop.SettingCode(emop.BacklightSettings, value)
		if !ok {
			return 0, nil, flows.FieldError("value", "%q is not a backlight setting (%v)", value, emop.BacklightSettings)
		}
		return emop.ObjBacklight, []byte{code}, nil
	case flows.CommandLoadSwitch:
		code, ok := emop.SettingCode(emop.LoadSwitchSettings, value)
		if !ok || !slices.Contains(emop.LoadSwitchSettings, value) { // no normal_sp alias here
			return 0, nil, flows.FieldError("value", "%q is not a load switch setting (%v)", value, emop.LoadSwitchSettings)
		}
		return emop.ObjLoadSwitch, []byte{code}, nil
	}
	return 0, nil, flows.FieldError("kind", "%q is not clock, prepay_enabled, daylight_savings_correction, backlight or load_switch", kind)
}

// ValidateCommand checks a command before it is recorded: on/off for the
// prepay and daylight-savings flags, a setting name for backlight and load
// switch, nothing for the clock (it is set to the time of the push).
func ValidateCommand(kind flows.CommandKind, value string) error {
	_, _, err := CommandWrite(kind, value, time.Now())
	return err
}

// CommandKinds are the meter commands there are, in the API's order.
var CommandKinds = []flows.CommandKind{flows.CommandClock, flows.CommandPrepay, flows.CommandDST, flows.CommandBacklight, flows.CommandLoadSwitch}

// CommandValues returns the values CommandWrite takes for kind: none (the
// empty string) for the clock, on and off for the flags, the setting names
// for backlight and load switch. The API document lists them.
func CommandValues(kind flows.CommandKind) []string {
	switch kind {
	case flows.CommandClock:
		return []string{""}
	case flows.CommandPrepay, flows.CommandDST:
		return []string{"on", "off"}
	case flows.CommandBacklight:
		return slices.Clone(emop.BacklightSettings)
	case flows.CommandLoadSwitch:
		return slices.Clone(emop.LoadSwitchSettings)
	}
	return nil
}
