package flows

import (
	"time"

	"github.com/shopspring/decimal"
)

// ProfileLogThreePhase is the three-phase interval profile in a
// ProfileGap or ProfileHole (profile logs 1 and 2 are single-phase).
const ProfileLogThreePhase = 3

// ThreePhaseInterval is one half hour of a three-phase meter's interval
// profile as the meter reports it, scaled by its meter type: one value
// per channel (kW for demand channels, the interval's mean; kWh, kvarh or
// kVAh for energy channels, the cumulative register at the interval's
// end) and the interval's status flags (the emop.Interval* bits).
// Channels are 3-byte channel ids (emop.ThreePhaseChannels), Values in
// the same order.
type ThreePhaseInterval struct {
	At       time.Time // the interval's start, UTC, on a half hour
	Status   uint16
	Channels []uint32
	Values   []decimal.Decimal
}
