package flows

import (
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// RequestStatus is the lifecycle of a meter write request:
// pending → sending → sent → verified → active (tariffs), or failed, or
// superseded (replaced by a newer request before the meter confirmed it;
// a superseded request is never pushed).
type RequestStatus string

// Request statuses.
const (
	RequestPending    RequestStatus = "pending"
	RequestSending    RequestStatus = "sending"
	RequestSent       RequestStatus = "sent"
	RequestVerified   RequestStatus = "verified"
	RequestActive     RequestStatus = "active"
	RequestFailed     RequestStatus = "failed"
	RequestSuperseded RequestStatus = "superseded"
)

// TariffRequest is a durable request to put a future tariff on a meter.
type TariffRequest struct {
	ID            string        `json:"id"`
	MeterID       string        `json:"meter_id"`
	Serial        string        `json:"serial"`
	Tariff        Tariff        `json:"tariff"`
	ActivationAt  time.Time     `json:"activation_at"`
	Status        RequestStatus `json:"status"`
	Attempts      int           `json:"attempts"`
	NextAttemptAt time.Time     `json:"next_attempt_at"`
	LastError     string        `json:"last_error,omitempty"`
	RequestedBy   string        `json:"requested_by"`
	Source        string        `json:"source"`
	CreatedAt     time.Time     `json:"created_at"`
	UpdatedAt     time.Time     `json:"updated_at"`
}

// TopupStatus is the lifecycle of a top-up.
type TopupStatus string

// Top-up statuses (the reference's names).
const (
	TopupWaiting   TopupStatus = "wait_token_push"
	TopupCompleted TopupStatus = "completed"
	TopupFailed    TopupStatus = "failed_token_push"
)

// Topup is an entry of the top-up ledger. Token is never logged in full.
type Topup struct {
	ID            string           `json:"id"`
	MeterID       string           `json:"meter_id"`
	Serial        string           `json:"serial"`
	Amount        *decimal.Decimal `json:"amount"`
	Token         string           `json:"-"`
	Source        string           `json:"source"`
	Status        TopupStatus      `json:"status"`
	Notes         string           `json:"notes"`
	Attempts      int              `json:"attempts"`
	PushStartedAt *time.Time       `json:"-"`
	BalanceBefore *decimal.Decimal `json:"balance_before"`
	TxCountBefore *int             `json:"-"`
	BalanceAfter  *decimal.Decimal `json:"balance_after"`
	RequestedBy   string           `json:"requested_by"`
	CreatedAt     time.Time        `json:"created_at"`
	UpdatedAt     time.Time        `json:"updated_at"`
	UsedAt        *time.Time       `json:"used_at"`
}

// AuditEntry records one write to a meter: what was written, for which
// request and by whom, and what the meter said. Every write Flows makes
// (the pusher's, the mediator's for outside clients) leaves one.
type AuditEntry struct {
	// At is when the write was made; set by the store.
	At          time.Time `json:"at"`
	MeterID     string    `json:"-"`
	RequestKind string    `json:"request_kind"` // tariff, topup, a command's kind (clock, backlight, …), mediator
	// RequestID is the tariff request, top-up or command written for; ""
	// for a write through the mediator.
	RequestID   string `json:"request_id"`
	RequestedBy string `json:"requested_by"`
	Object      string `json:"object"`
	Value       string `json:"value"`   // tokens redacted
	Outcome     string `json:"outcome"` // ok, nak, error
	Detail      string `json:"detail"`
}

// CommandKind is what a meter command changes.
type CommandKind string

// Meter command kinds.
const (
	CommandClock      CommandKind = "clock"
	CommandPrepay     CommandKind = "prepay_enabled"
	CommandDST        CommandKind = "daylight_savings_correction"
	CommandBacklight  CommandKind = "backlight"
	CommandLoadSwitch CommandKind = "load_switch"
)

// MeterCommand is a durable request to set a meter's clock or a flag.
type MeterCommand struct {
	ID          string        `json:"id"`
	MeterID     string        `json:"meter_id"`
	Serial      string        `json:"serial"`
	Kind        CommandKind   `json:"kind"`
	Value       string        `json:"value"`
	Status      RequestStatus `json:"status"`
	Attempts    int           `json:"attempts"`
	LastError   string        `json:"last_error,omitempty"`
	RequestedBy string        `json:"requested_by"`
	CreatedAt   time.Time     `json:"created_at"`
}

// Rollout is a bulk tariff change: one tariff, many meters.
type Rollout struct {
	ID              string         `json:"id"`
	Tariff          Tariff         `json:"tariff"`
	Status          string         `json:"status"` // running, completed, aborted
	AbortFailurePct int            `json:"abort_failure_pct"`
	RatePerMinute   *int           `json:"rate_per_minute"`
	RequestedBy     string         `json:"requested_by"`
	CreatedAt       time.Time      `json:"created_at"`
	Note            string         `json:"note,omitempty"`
	Progress        map[string]int `json:"progress"` // request status → meters
	Meters          int            `json:"meters"`
	// ESCOs are the codes of the ESCOs whose meters the rollout reaches
	// ("" for meters of no ESCO): its scope.
	ESCOs []string `json:"escos"`
}

// VisibleTo reports whether a caller scoped to escoCode ("" = every ESCO)
// may see the rollout: all of its meters are that ESCO's. A rollout is an
// ESCO's by its meters, not by who created it, so a read-only colleague
// sees it and another ESCO's operator does not.
func (r *Rollout) VisibleTo(escoCode string) bool {
	if escoCode == "" {
		return true
	}
	return len(r.ESCOs) == 1 && strings.EqualFold(r.ESCOs[0], escoCode)
}

// RolloutTargets selects a rollout's meters: an ESCO's (by code) or a list
// of serials. Only active meters with an address that take prepayment
// tariffs are included.
type RolloutTargets struct {
	ESCOCode string   `json:"esco"`
	Serials  []string `json:"serials"`
}

// MinPrepayBalance is the balance below which a meter is not switched into
// prepay mode: the reference refuses, and so do the meters, so a customer
// is never put on prepayment with too little credit to keep the supply on.
// The command pusher, the emop CLI and the simulator all apply this one
// value.
var MinPrepayBalance = decimal.NewFromInt(10)

// Claim names one claim of a request by a pusher: its id and the attempt
// number the claim gave it. A later claim by another process has another
// attempt number, so a claim's holder can tell its lease from a
// successor's.
type Claim struct {
	ID      string
	Attempt int
}

// MaxTopup is the largest top-up Flows accepts, in pounds (the ledger's
// limit: a larger sum is a mistake or fraud, not a household's top-up).
var MaxTopup = decimal.NewFromInt(1000)

// ValidateTopupAmount checks a top-up's stated amount (nil: not stated):
// above zero, at most MaxTopup, in whole pence. An amount with more
// places is refused, never rounded. EINVALID naming "amount".
func ValidateTopupAmount(d *decimal.Decimal) error {
	switch {
	case d == nil:
		return nil
	case !d.IsPositive() || d.GreaterThan(MaxTopup):
		return FieldError("amount", "%s is outside 0.01-%s", d, MaxTopup)
	case !d.Equal(d.Truncate(2)):
		return FieldError("amount", "%s has more than 2 decimal places (pence)", d)
	}
	return nil
}
