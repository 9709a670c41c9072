package meterop

import (
	"testing"

	"github.com/flows-energy/flows"
)

// The values the API document lists for each command are the ones a
// command accepts, and a value outside them is refused.
func TestCommandValuesAreAccepted(t *testing.T) {
	for _, k := range CommandKinds {
		vs := CommandValues(k)
		if len(vs) == 0 {
			t.Errorf("%s: no values", k)
		}
		for _, v := range vs {
			if err := ValidateCommand(k, v); err != nil {
				t.Errorf("%s %q: %v", k, v, err)
			}
		}
		if err := ValidateCommand(k, "sideways"); flows.ErrorField(err) != "value" {
			t.Errorf("%s sideways: %v, want refused naming value", k, err)
		}
	}
}
