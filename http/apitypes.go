package http

import (
	"time"

	"github.com/flows-energy/flows"
	"github.com/shopspring/decimal"
)

// The API's request and response bodies. They are named types, not maps,
// so /openapi.json is generated from what the handlers really decode and
// encode (see openapi.go) and cannot drift from them.

type meterList struct {
	Meters []meterRow `json:"meters"`
	Total  int        `json:"total"` // meters the filters match, all pages
	Limit  int        `json:"limit"`
	Offset int        `json:"offset"`
}

type newMeterBody struct {
	Serial    string     `json:"serial"`
	Name      string     `json:"name"`
	IPAddress string     `json:"ip_address"`
	Port      int        `json:"port"`
	Hardware  string     `json:"hardware"`
	Mode      flows.Mode `json:"mode"`
	ESCO      string     `json:"esco"`
	DST       bool       `json:"daylight_savings_correction_enabled"`
}

// meterResource is GET /meters/{serial}: registry, shadow, registers,
// freshness, and the completeness of its interval data.
type meterResource struct {
	*flows.MeterStatus
	IntervalCompleteness flows.Completeness `json:"interval_completeness"`
}

type balanceHistory struct {
	Serial string               `json:"serial"`
	From   time.Time            `json:"from"`
	To     time.Time            `json:"to"`
	Bucket flows.Bucket         `json:"bucket"`
	Points []flows.BalancePoint `json:"points"`
}

type eventList struct {
	Serial string             `json:"serial"`
	Events []flows.MeterEvent `json:"events"`
}

type auditList struct {
	Serial string             `json:"serial"`
	Writes []flows.AuditEntry `json:"writes"`
}

// topupList is a meter's top-ups, newest first.
type topupList struct {
	Serial string        `json:"serial"`
	Topups []flows.Topup `json:"topups"`
}

// commandList is a meter's commands (clock, flags, settings), newest
// first.
type commandList struct {
	Serial   string               `json:"serial"`
	Commands []flows.MeterCommand `json:"commands"`
}

type meterTariffs struct {
	Serial        string                `json:"serial"`
	Active        *flows.Tariff         `json:"active"`
	Future        *flows.Tariff         `json:"future"`
	FuturePending bool                  `json:"future_pending"`
	Requests      []flows.TariffRequest `json:"requests"`
}

type tariffAccepted struct {
	ID       string               `json:"id"`
	Status   flows.RequestStatus  `json:"status"`
	Request  *flows.TariffRequest `json:"request"`
	Warnings []string             `json:"warnings,omitempty"`
}

type tokenBody struct {
	Token  string           `json:"token"`
	Amount *decimal.Decimal `json:"amount"`
	Source string           `json:"source"`
}

type topupAccepted struct {
	ID     string            `json:"id"`
	Status flows.TopupStatus `json:"status"`
	Topup  *flows.Topup      `json:"topup"`
}

type syncQueued struct {
	Serial string `json:"serial"`
	Status string `json:"status"` // queued
}

type commandBody struct {
	Kind  flows.CommandKind `json:"kind"`
	Value string            `json:"value"`
}

type rolloutBody struct {
	Tariff          flows.Tariff `json:"tariff"`
	ESCO            string       `json:"esco"`
	Serials         []string     `json:"serials"`
	AbortFailurePct *int         `json:"abort_failure_pct"`
	RatePerMinute   int          `json:"rate_per_minute"`
}

type lowBalanceView struct {
	Threshold decimal.Decimal    `json:"threshold"`
	Meters    []flows.LowBalance `json:"meters"`
}

type losingSupplyView struct {
	Hours  int                  `json:"hours"`
	Meters []flows.LosingSupply `json:"meters"`
}

type offlineView struct {
	Meters []flows.OfflineMeter `json:"meters"`
}

type clockDriftView struct {
	Meters []flows.ClockDrift `json:"meters"`
}

type signalHistory struct {
	Serial string              `json:"serial"`
	Points []flows.SignalPoint `json:"points"`
}

type fleetView struct {
	ESCOs []flows.FleetSummary `json:"escos"`
}

type intervalSeries struct {
	Serial       string                `json:"serial"`
	Bucket       flows.Bucket          `json:"bucket"`
	From         time.Time             `json:"from"`
	To           time.Time             `json:"to"`
	Completeness flows.Completeness    `json:"completeness"`
	Points       []flows.IntervalPoint `json:"points"`
}
