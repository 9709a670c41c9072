package flows

import (
	"time"

	"github.com/shopspring/decimal"
)

// ProfileRecord is one half-hour record of a meter's profile logs, as the
// meter reports it: cumulative register readings in Wh (profile log 1
// gives the imports, log 2 the exports; nil where not read) and the
// record's status word.
type ProfileRecord struct {
	At       time.Time // the half hour, UTC
	Status   uint16
	ImportA  *uint32
	ImportB  *uint32
	ExportA  *uint32
	ExportB  *uint32
	Voltage  *uint16 // tenths of a volt (log 2), when read
	Reactive *uint32 // reactive import, VArh (log 2), when read
}

// Profile record status flags (emop-protocol.md A.9, read as u16le).
const (
	ProfileValidData      uint16 = 0x8000
	ProfilePowerFail      uint16 = 0x4000
	ProfileMinorTimeError uint16 = 0x2000
	ProfileMajorTimeError uint16 = 0x1000
	ProfileCommsError     uint16 = 0x0800
	ProfileReset          uint16 = 0x0001
)

// Usable reports whether a record may make an interval: valid data and no
// reset, power failure, major time error or comms error. A minor time
// error (a clock nudge) does not spoil the readings.
func (r ProfileRecord) Usable() bool {
	return r.Status&ProfileValidData != 0 && r.Status&(ProfileReset|ProfilePowerFail|ProfileMajorTimeError|ProfileCommsError) == 0
}

// Validate checks what a store can keep: a UTC half hour, not in the
// future (a meter answering "next available" far ahead, or a broken
// clock). EINVALID naming the record's time.
func (r ProfileRecord) Validate(now time.Time) error {
	switch {
	case r.At.IsZero() || !r.At.Equal(r.At.Truncate(30*time.Minute)):
		return FieldError("timestamp", "%s is not a half hour", r.At.UTC().Format(time.RFC3339))
	case r.At.After(now):
		return FieldError("timestamp", "%s is in the future", r.At.UTC().Format(time.RFC3339))
	}
	return nil
}

// HalfHourReading is one half hour of one element's profile: its
// cumulative import and export readings (Wh), nil where missing. It is a
// row of a SMIP file.
type HalfHourReading struct {
	At                 time.Time
	ImportWh, ExportWh *int64
}

// Profile logs: log 1 holds the cumulative imports, log 2 the exports
// (with reactive energy and voltage).
const (
	ProfileLogImports = 1
	ProfileLogExports = 2
)

// ProfileGap is a run of half hours [From, To) that one profile log has
// not yet given Flows for a meter.
type ProfileGap struct {
	Log      int
	From, To time.Time
}

// HalfHours is how many half hours the gap spans.
func (g ProfileGap) HalfHours() int { return int(g.To.Sub(g.From) / (30 * time.Minute)) }

// ProfileHole is a half hour a meter answered for with a later record
// (its "next available" data): it holds no record there. The backfill
// asks for a hole at most MaxHoleAttempts times.
type ProfileHole struct {
	Log int
	At  time.Time
}

// MaxHoleAttempts is how many times a half hour the meter says it does
// not have is asked for again before the backfill leaves it missing.
const MaxHoleAttempts = 3

// BucketHalfHour is the intervals API's half-hour bucket (BucketDay is
// its other).
const BucketHalfHour Bucket = "hh"

// IntervalPoint is one bucket (a half hour or a UTC day) of one element's
// consumption, derived from its profile by the one interval rule
// (flows.profile_deltas): nil kWh where no half hour of the bucket could
// be derived. HalfHours counts the half hours derived for import;
// Expected, the half hours the bucket should hold: those from the
// element's register's commissioning (its start time, rounded up to a
// half hour) on, so 0 for a bucket before it and fewer on its first day
// (HalfHours may exceed it there: what the meter recorded before its
// commissioning is derived too).
type IntervalPoint struct {
	Start     time.Time        `json:"start"`
	Element   string           `json:"element"` // A (or the single element) or B
	ImportKWh *decimal.Decimal `json:"import_kwh"`
	ExportKWh *decimal.Decimal `json:"export_kwh"`
	HalfHours int              `json:"half_hours"`
	Expected  int              `json:"expected"`
}

// Completeness is the share (0-1) of a meter's expected half hours that
// are derived over the last 7 and 30 complete UTC days, counted from its
// commissioning when that is later; nil when no such day has passed.
type Completeness struct {
	Last7Days  *decimal.Decimal `json:"last_7_days"`
	Last30Days *decimal.Decimal `json:"last_30_days"`
}

// DailyTotal is one UTC day of one element's consumption summed over a set
// of meters (an ESCO's), from the per-day totals kept with the derived
// intervals: the kWh of the half hours derived (nil when none was), how
// many half hours that is, and how many enabled registers of the element
// the meters have now (each is expected to give 48 a day).
type DailyTotal struct {
	Day       time.Time        `json:"day"`     // 00:00 UTC
	Element   string           `json:"element"` // A (or the single element) or B
	KWh       *decimal.Decimal `json:"kwh"`
	HalfHours int              `json:"half_hours"`
	Registers int              `json:"registers"`
}
