package flows

// MeterCompleteness is one meter's interval Completeness in an answer for
// many meters, with whether the meter is active (the fleet's figure
// averages active meters only: a passive twin's profile is collected
// where the meter is active).
type MeterCompleteness struct {
	Completeness
	Active bool `json:"-"`
}
