package flows

import (
	"time"

	"github.com/shopspring/decimal"
)

// SelfDisconnection is a period a prepayment meter was off supply because
// its credit and emergency credit ran out (flows.meter_self_disconnections;
// migration 0031 says how it is found).
type SelfDisconnection struct {
	Serial    string     `json:"serial"`
	Name      string     `json:"name"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at"` // nil: still off supply
	// Seconds is how long it lasted, or has lasted so far.
	Seconds int64 `json:"seconds"`
	// Source is where it was found: "events" (the meter's event log) or
	// "balance" (its balance at the emergency-credit floor).
	Source string `json:"source"`
}

// RepeatedDisconnections is a meter that self-disconnected more than once
// in a report's period.
type RepeatedDisconnections struct {
	Serial         string          `json:"serial"`
	Name           string          `json:"name"`
	Disconnections int             `json:"disconnections"`
	Hours          decimal.Decimal `json:"hours"` // within the period
}

// SelfDisconnectionReport is what an ESCO's meters self-disconnected in a
// period: periods that overlap it, their hours counted within it (one
// still going counts to now).
type SelfDisconnectionReport struct {
	ESCO           string                   `json:"esco,omitempty"` // empty: every ESCO
	From           time.Time                `json:"from"`
	To             time.Time                `json:"to"`
	Disconnections int                      `json:"disconnections"`
	Meters         int                      `json:"meters"`  // that self-disconnected at all
	Ongoing        int                      `json:"ongoing"` // still off supply
	TotalHours     decimal.Decimal          `json:"total_hours"`
	Longest        *SelfDisconnection       `json:"longest"` // nil: none
	Repeated       []RepeatedDisconnections `json:"repeated"`
	Periods        []SelfDisconnection      `json:"periods"` // newest first
}
