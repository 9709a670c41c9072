package flows

import (
	"time"
)

// Frequency is how often a syncer runs (meter_metrics.run_frequency).
type Frequency string

// Sync frequencies.
const (
	Hourly     Frequency = "hourly"
	TwelveHour Frequency = "12hourly"
	Daily      Frequency = "daily"
)

// Interval returns the length of a frequency's period.
func (f Frequency) Interval() time.Duration {
	switch f {
	case Hourly:
		return time.Hour
	case TwelveHour:
		return 12 * time.Hour
	case Daily:
		return 24 * time.Hour
	}
	return 0
}

// Valid reports whether f is a known frequency.
func (f Frequency) Valid() bool { return f.Interval() > 0 }

// RegistryUpdate holds registry fields read from a meter; nil fields were
// not read. Only values that differ from the registry are written.
type RegistryUpdate struct {
	Hardware                         *string
	Serial                           *string
	FirmwareVersion                  *string
	PrepayEnabled                    *bool
	DaylightSavingsCorrectionEnabled *bool
}

// MeterEvent is one entry of a meter's event log.
type MeterEvent struct {
	Timestamp time.Time `json:"timestamp"`
	EventType int       `json:"event_type"`
	EventSet  int       `json:"event_set"`
	TypeName  string    `json:"type_name,omitempty"`
}

// SyncResult is what one sync of one meter read, applied in one
// transaction: shadow values, registry fields, new events, and which value
// groups were read (for freshness).
type SyncResult struct {
	MeterID  string
	At       time.Time
	Shadow   ShadowUpdate
	Registry RegistryUpdate
	Events   []MeterEvent
	// Groups names the value groups read successfully ("balance", "csq",
	// "voltage", "clock", "reads", "tariffs_active", ...).
	Groups []string
	// Reached says whether the meter answered at all; Failure is the
	// actionable detail when it did not.
	Reached bool
	Failure string
	// TouchHealth is false when only registry fields were synced.
	TouchHealth bool
}
