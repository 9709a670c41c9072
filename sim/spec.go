package sim

import (
	"time"

	"github.com/shopspring/decimal"
)

// Spec is a simulated meter's identity and behaviour.
type Spec struct {
	Serial    string `json:"serial"`
	Name      string `json:"name,omitempty"`
	IPAddress string `json:"ip_address"`
	Port      int    `json:"port"`
	Mode      string `json:"mode"`
	Hardware  string `json:"hardware"` // registry name: B1.w, EMA1.w (single), C1.w (twin), P1.ax, P1.cx (three phase)
	Layout    string `json:"layout"`   // single, twin, solar (single element, reversed register), three_phase
	Key       string `json:"key"`      // hex top-up token key
	DST       bool   `json:"daylight_savings_correction_enabled"`
	Firmware  string `json:"firmware,omitempty"` // four digits, e.g. "3028"

	LoadA        int             `json:"load_a_w,omitempty"` // average element-A load, W
	LoadB        int             `json:"load_b_w,omitempty"` // element-B (night heating) load, W
	SolarPeak    int             `json:"solar_peak_w,omitempty"`
	PhaseLoads   [3]int          `json:"phase_loads_w,omitzero"` // three phase: average load on L1, L2, L3, W
	DriftPPM     float64         `json:"drift_ppm,omitempty"`
	ClockOffset  time.Duration   `json:"clock_offset,omitempty"`
	BaseCSQ      int             `json:"base_csq,omitempty"`
	StartBalance decimal.Decimal `json:"start_balance,omitzero"`
	ProfileDays  int             `json:"profile_days,omitempty"` // profile log depth (DefaultProfileDays)
	Habit        string          `json:"habit,omitempty"`        // the customer's top-up habit (HabitWeekly, ...; empty: never tops up)
	Faults       Faults          `json:"faults,omitzero"`
}

// Faults injects misbehaviour into a meter's EMOP server.
type Faults struct {
	Offline     bool          `json:"offline,omitempty"`      // connections refused
	Silent      bool          `json:"silent,omitempty"`       // accepts, never answers
	LatencyMin  time.Duration `json:"latency_min,omitempty"`  // each answer waits a uniform
	LatencyMax  time.Duration `json:"latency_max,omitempty"`  // time in [min, max]
	CorruptRate float64       `json:"corrupt_rate,omitempty"` // fraction of answers with a bad CRC
	NakRate     float64       `json:"nak_rate,omitempty"`     // fraction answered NAK 1
	// MinGap is the meter's minimum gap: a connection opened sooner than
	// this after its last answer, or while another request is in progress,
	// is closed unanswered — what a real meter's modem does — and counted
	// (Meter.Stats().GapViolations).
	MinGap time.Duration `json:"min_gap,omitempty"`
	// DropRate is the fraction of requests whose connection closes after
	// the request arrives, unanswered (a cellular drop).
	DropRate float64 `json:"drop_rate,omitempty"`
	// TimeoutRate is the fraction of requests never answered: the
	// connection stays open until the client gives up (at most 30 s).
	TimeoutRate float64 `json:"timeout_rate,omitempty"`
	// FlakyL2 and FlakyL3 are the fractions of a three-phase meter's L2
	// and L3 voltage reads that go unanswered (the connection closes), the
	// flakiness of back-to-back phase reads the reference works around; 1
	// drops every one.
	FlakyL2 float64 `json:"flaky_l2,omitempty"`
	FlakyL3 float64 `json:"flaky_l3,omitempty"`
}
