package flows

import "time"

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
