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
	// ReleaseLease names the sync lease owner to release with the result.
	ReleaseLease string
}

// SyncerGroups maps each syncer (meter_metrics.name) to the value group it
// fills in meter_shadows.synced_at. Registry-only syncers have none.
var SyncerGroups = map[string]string{
	"SyncerCsq":           "csq",
	"SyncerVoltage":       "voltage",
	"SyncerPrepayBalance": "balance",
	"SyncerClockDiff":     "clock",
	"SyncerReads":         "reads",
	"SyncerTariffsActive": "tariffs_active",
	"SyncerTariffsFuture": "tariffs_future",
	"SyncerEventLog":      "events",
	"SyncerBacklight":     "backlight",
	"SyncerLoadSwitch":    "load_switch",
}

// ValueFreshness says when a group of shadow values was last read and
// whether that is too long ago.
type ValueFreshness struct {
	SyncedAt *time.Time `json:"synced_at"`
	// Interval is how often the group is meant to be read.
	Interval string `json:"interval"`
	// Stale is true when the values are older than twice their interval
	// (or were never read). Stale is not offline: a meter can answer its
	// signal check while its tariff read keeps failing.
	Stale bool `json:"stale"`
}

// Freshness computes the freshness of every scheduled group of a shadow at
// now, given each syncer's frequency.
func Freshness(syncedAt map[string]time.Time, freqs map[string]Frequency, now time.Time) map[string]ValueFreshness {
	out := map[string]ValueFreshness{}
	for syncer, f := range freqs {
		g := SyncerGroups[syncer]
		if g == "" || !f.Valid() {
			continue
		}
		v := ValueFreshness{Interval: string(f), Stale: true}
		if t, ok := syncedAt[g]; ok {
			t := t
			v.SyncedAt = &t
			v.Stale = now.Sub(t) > 2*f.Interval()
		}
		out[g] = v
	}
	return out
}
