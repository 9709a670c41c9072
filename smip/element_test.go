package smip_test

import (
	"slices"
	"testing"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/smip"
)

// A twin-element meter's file must name its element; a single-element
// meter has one file, read as A.
func TestElement(t *testing.T) {
	for _, c := range []struct {
		asked string
		twin  bool
		want  string // "" for a refusal naming element
	}{
		{"A", true, "A"}, {"B", true, "B"}, {"", true, ""}, {"SINGLE", true, ""}, {"a", true, ""},
		{"", false, "A"}, {"A", false, "A"}, {"SINGLE", false, "A"}, {"B", false, ""}, {"C", false, ""},
	} {
		got, err := smip.Element(c.asked, c.twin)
		switch {
		case c.want == "" && flows.ErrorField(err) != "element":
			t.Errorf("element %q (twin %v): %q, %v; want a refusal naming element", c.asked, c.twin, got, err)
		case c.want != "" && (err != nil || got != c.want):
			t.Errorf("element %q (twin %v): %q, %v; want %s", c.asked, c.twin, got, err, c.want)
		}
	}
	if e := smip.Elements(true); !slices.Equal(e, []string{"A", "B"}) {
		t.Errorf("twin elements %v", e)
	}
	if e := smip.Elements(false); !slices.Equal(e, []string{"A"}) {
		t.Errorf("single elements %v", e)
	}
}
