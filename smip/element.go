package smip

import "github.com/flows-energy/flows"

// Elements lists the files one day of a meter has: A and B on a
// twin-element meter, one file (the single element, read as A) otherwise.
func Elements(twin bool) []string {
	if twin {
		return []string{"A", "B"}
	}
	return []string{"A"}
}

// Element checks which element's file is asked for. A twin-element meter
// has two files a day, so the element must be named (A or B): defaulting
// to A would hand over half the meter without saying so. A single-element
// meter has one: the element is absent, SINGLE or A. It returns the
// element to read (A or B); EINVALID naming "element" otherwise.
func Element(asked string, twin bool) (string, error) {
	switch {
	case twin && (asked == "A" || asked == "B"):
		return asked, nil
	case twin && asked == "":
		return "", flows.FieldError("element", "required for a twin-element meter: A or B")
	case twin:
		return "", flows.FieldError("element", "%q is not A or B", asked)
	case asked == "" || asked == "A" || asked == "SINGLE":
		return "A", nil
	default:
		return "", flows.FieldError("element", "%q: a single-element meter has one element (leave element out, or SINGLE or A)", asked)
	}
}
