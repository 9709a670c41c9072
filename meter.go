package flows

import (
	"context"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// Mode says whether Flows talks to a meter's hardware.
type Mode string

// Meter modes. A passive meter is a digital twin: its shadow is fed from
// another database where the same meter is active, never from hardware.
const (
	ModeActive  Mode = "active"
	ModePassive Mode = "passive"
)

// Valid reports whether m is a known mode.
func (m Mode) Valid() bool { return m == ModeActive || m == ModePassive }

// Health is the communication health of a meter as last observed.
type Health string

// Health values.
const (
	HealthHealthy   Health = "healthy"
	HealthUnhealthy Health = "unhealthy"
)

// Valid reports whether h is a known health value.
func (h Health) Valid() bool { return h == HealthHealthy || h == HealthUnhealthy }

// Element identifies a metering element: A (day) and B (night) on twin-element
// meters, SINGLE on single-element meters.
type Element string

// Register elements.
const (
	ElementA      Element = "A"
	ElementB      Element = "B"
	ElementSingle Element = "SINGLE"
)

// Valid reports whether e is a known element.
func (e Element) Valid() bool { return e == ElementA || e == ElementB || e == ElementSingle }

// RegisterStatus says whether a register is in use.
type RegisterStatus string

// Register statuses.
const (
	RegisterEnabled  RegisterStatus = "enabled"
	RegisterReplaced RegisterStatus = "replaced"
)

// Valid reports whether s is a known register status.
func (s RegisterStatus) Valid() bool { return s == RegisterEnabled || s == RegisterReplaced }

// serialPattern is the accepted meter serial form: three upper-case letters
// and 7 to 13 digits, as Emlite prints them (e.g. "EML2137580826"). The same
// pattern is enforced by a CHECK constraint in the database.
var serialPattern = regexp.MustCompile(`^[A-Z]{3}[0-9]{7,13}$`)

// SerialPattern is the documented serial pattern, for error messages and docs.
const SerialPattern = "three upper-case letters followed by 7 to 13 digits, e.g. EML2137580826"

// ValidateSerial returns an EINVALID error naming "serial" when s is not a
// well-formed meter serial.
func ValidateSerial(s string) error {
	if !serialPattern.MatchString(s) {
		return FieldError("serial", "%q is not a meter serial (%s)", s, SerialPattern)
	}
	return nil
}

// ESCO is an energy-service company: the owner of a fleet of meters and the
// unit of access control.
type ESCO struct {
	ID        string    `json:"id"`
	Code      string    `json:"code"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// Meter is a row of the meter registry: the configuration of one meter.
type Meter struct {
	ID                               string      `json:"id"`
	Serial                           string      `json:"serial"`
	Name                             string      `json:"name"`
	IPAddress                        *netip.Addr `json:"ip_address"`
	Port                             int         `json:"port"`
	Hardware                         string      `json:"hardware"`
	Mode                             Mode        `json:"mode"`
	ESCO                             *string     `json:"esco"` // ESCO id
	ESCOCode                         string      `json:"esco_code,omitempty"`
	SingleMeterApp                   bool        `json:"single_meter_app"`
	DaylightSavingsCorrectionEnabled bool        `json:"daylight_savings_correction_enabled"`
	PrepayEnabled                    *bool       `json:"prepay_enabled"`
	FirmwareVersion                  string      `json:"firmware_version"`
	CreatedAt                        time.Time   `json:"created_at"`
	UpdatedAt                        time.Time   `json:"updated_at"`
}

// Address returns the host:port at which Flows talks to the meter's
// hardware. A passive meter (a digital twin, fed from another database)
// and a meter without an IP address have none: EINVALID, saying which.
// This is the one rule for "may Flows talk to this meter"; the sync
// engine, the command pusher and the mediator all ask it.
func (m *Meter) Address() (string, error) {
	if m.Mode != ModeActive {
		return "", Errorf(EINVALID, "meter %s is passive (a digital twin): it has no hardware here", m.Serial)
	}
	if m.IPAddress == nil {
		return "", Errorf(EINVALID, "meter %s has no IP address yet", m.Serial)
	}
	return net.JoinHostPort(m.IPAddress.String(), strconv.Itoa(m.Port)), nil
}

// CLIMeter is a row of flows.get_meters_for_cli: what `emop list` and the
// mediator's GetMeters show.
type CLIMeter struct {
	ID             string  `json:"id"`
	IPAddress      *string `json:"ip_address"`
	Serial         string  `json:"serial"`
	Name           *string `json:"name"`
	SingleMeterApp bool    `json:"single_meter_app"`
	ESCO           *string `json:"esco"`
	CSQ            *int    `json:"csq"`
	Health         *string `json:"health"`
	Hardware       *string `json:"hardware"`
	Feeder         *string `json:"feeder"`
}

// NewMeter is the input for registering a meter.
type NewMeter struct {
	Serial                           string
	Name                             string
	IPAddress                        string // empty: not yet known
	Port                             int    // 0: 8080, as all Emlite meters use
	Hardware                         string
	Mode                             Mode // empty: active
	ESCOCode                         string
	SingleMeterApp                   bool
	DaylightSavingsCorrectionEnabled bool
}

// Validate checks every field and returns an EINVALID error naming the first
// bad one.
func (m *NewMeter) Validate() error {
	if err := ValidateSerial(m.Serial); err != nil {
		return err
	}
	if m.IPAddress != "" {
		if err := ValidateMeterAddress(m.IPAddress); err != nil {
			return err
		}
	}
	if m.Port < 0 || m.Port > 65535 {
		return FieldError("port", "%d is not a TCP port (1-65535)", m.Port)
	}
	if m.Mode != "" && !m.Mode.Valid() {
		return FieldError("mode", "%q is not a meter mode (active or passive)", m.Mode)
	}
	if err := ValidateText("name", m.Name, 200); err != nil {
		return err
	}
	return ValidateText("hardware", m.Hardware, 32)
}

// ValidateMeterAddress checks that ip can be a meter's address: an IP
// address with no zone, not unspecified (0.0.0.0, ::), link-local
// (169.254.0.0/16 — where cloud metadata services answer — or fe80::/10),
// multicast or broadcast. EINVALID naming "ip_address". Loopback is
// allowed: simulated meters and local gateways listen there.
func ValidateMeterAddress(ip string) error {
	a, err := netip.ParseAddr(ip)
	switch {
	case err != nil:
		return FieldError("ip_address", "%q is not an IP address", ip)
	case a.Zone() != "":
		return FieldError("ip_address", "%q has a zone (%%%s): give the address alone", ip, a.Zone())
	case a.IsUnspecified():
		return FieldError("ip_address", "%s is the unspecified address, not a meter's", ip)
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return FieldError("ip_address", "%s is link-local, not a meter's address", ip)
	case a.IsMulticast(), a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return FieldError("ip_address", "%s is a multicast or broadcast address, not a meter's", ip)
	}
	return nil
}

// ValidateText checks a free-text field: valid UTF-8, no control
// characters (NUL included), at most max characters. EINVALID naming field.
func ValidateText(field, s string, max int) error {
	if !utf8.ValidString(s) {
		return FieldError(field, "is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > max {
		return FieldError(field, "is %d characters long; at most %d", n, max)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return FieldError(field, "contains a control character (%U)", r)
		}
	}
	return nil
}

// Validate checks a filter's free-text query (at most 100 characters).
func (f *MeterFilter) Validate() error {
	if err := ValidateText("q", f.Query, 100); err != nil {
		return err
	}
	if !slices.Contains(MeterSorts, strings.TrimPrefix(f.Sort, "-")) && f.Sort != "" {
		return FieldError("sort", "%q is not one of %s (a leading - sorts descending)", f.Sort, strings.Join(MeterSorts, ", "))
	}
	if f.Mode != "" && !f.Mode.Valid() {
		return FieldError("mode", "%q is not active or passive", f.Mode)
	}
	if f.Health != "" && !f.Health.Valid() {
		return FieldError("health", "%q is not healthy or unhealthy", f.Health)
	}
	return nil
}

// MeterSorts are the orders a meter list takes (MeterFilter.Sort; "-"
// before one reverses it). The default is by name, then serial.
var MeterSorts = []string{"name", "serial", "esco", "balance", "health", "csq", "last_online"}

// Shadow is the reported state of one meter, as last read from it (or, for a
// passive meter, mirrored from the database where it is active).
type Shadow struct {
	ID                    string           `json:"id"`
	Balance               *decimal.Decimal `json:"balance"`
	EmergencyCredit       *decimal.Decimal `json:"emergency_credit"`
	BalanceUpdatedAt      *time.Time       `json:"balance_updated_at"`
	TariffsActive         *Tariff          `json:"tariffs_active"`
	TariffsFuture         *Tariff          `json:"tariffs_future"`
	CSQ                   *int             `json:"csq"`
	Health                *Health          `json:"health"`
	HealthDetails         string           `json:"health_details"`
	LastHealthyAt         *time.Time       `json:"last_healthy_at"`
	ClockTimeDiffSeconds  *int             `json:"clock_time_diff_seconds"`
	ClockTimeDiffSyncedAt *time.Time       `json:"clock_time_diff_synced_at"`
	Voltage               *decimal.Decimal `json:"voltage"`
	ImportA               *decimal.Decimal `json:"import_a"`
	ImportB               *decimal.Decimal `json:"import_b"`
	ExportA               *decimal.Decimal `json:"export_a"`
	ExportB               *decimal.Decimal `json:"export_b"`
	Backlight             string           `json:"backlight"`
	LoadSwitch            string           `json:"load_switch"`
	NetworkOperator       *int             `json:"network_operator"`
	// SyncedAt maps value groups to when they were last read from the meter.
	SyncedAt  map[string]time.Time `json:"synced_at"`
	UpdatedAt time.Time            `json:"updated_at"`
	CreatedAt time.Time            `json:"created_at"`

	// Voltage3P are a three-phase meter's L1, L2, L3 voltages in volts
	// (columns 3p_voltage_l1..3; nil where never read).
	Voltage3P [3]*decimal.Decimal `json:"3p_voltage"`
}

// ShadowUpdate is a partial update of a shadow: nil fields are left alone.
// Writing a field appends its history (balance, csq, voltage, health) and
// register reads (import/export) through database triggers, so SQL users and
// the sync engine get the same behaviour.
type ShadowUpdate struct {
	Balance              *decimal.Decimal
	EmergencyCredit      *decimal.Decimal
	TariffsActive        *Tariff
	TariffsFuture        *Tariff
	CSQ                  *int
	NetworkOperator      *int
	ClearCSQ             bool // write NULL to csq, so an offline period shows in history
	Health               *Health
	HealthDetails        *string
	ClockTimeDiffSeconds *int
	Voltage              *decimal.Decimal
	ImportA, ImportB     *decimal.Decimal
	ExportA, ExportB     *decimal.Decimal
	Backlight            *string
	LoadSwitch           *string
	// At, when set, is the time the values were observed; it becomes
	// updated_at and the timestamp of the history rows. Zero means now.
	At time.Time

	// Voltage3P are a three-phase meter's L1..L3 voltages (volts); a nil
	// phase (not read) keeps its stored value.
	Voltage3P [3]*decimal.Decimal
}

// DropGroup removes from u the values of value group g (the groups of
// Syncers: "balance", "tariffs_active", "clock", ...): a group read before
// a newer observation of it was stored must not overwrite it. It reports
// whether g names values of the shadow (events and profiles do not).
func (u *ShadowUpdate) DropGroup(g string) bool {
	switch g {
	case "balance":
		u.Balance, u.EmergencyCredit = nil, nil
	case "tariffs_active":
		u.TariffsActive = nil
	case "tariffs_future":
		u.TariffsFuture = nil
	case "clock":
		u.ClockTimeDiffSeconds = nil
	case "backlight":
		u.Backlight = nil
	case "load_switch":
		u.LoadSwitch = nil
	case "voltage":
		u.Voltage = nil
	case "reads":
		u.ImportA, u.ImportB, u.ExportA, u.ExportB = nil, nil, nil, nil
	case "3p_voltage":
		u.Voltage3P = [3]*decimal.Decimal{}
	default:
		return false
	}
	return true
}

// Validate checks the ranges the database also enforces, naming the first
// bad field (the same checks as DropInvalid).
func (u *ShadowUpdate) Validate() error {
	c := *u
	if bad := c.invalid(); len(bad) > 0 {
		return bad[0]
	}
	return nil
}

// DropInvalid removes from u every value that fails the checks of
// Validate, one field at a time, and returns what was wrong with each:
// one bad value reported by a meter must not stop the rest of its update
// (or its group's) from being stored.
func (u *ShadowUpdate) DropInvalid() []string {
	var out []string
	for _, err := range u.invalid() {
		out = append(out, err.Error())
	}
	return out
}

// invalid checks each field, clears the ones that fail, and returns why.
func (u *ShadowUpdate) invalid() []error {
	var out []error
	drop := func(err error, clear func()) {
		if err != nil {
			out = append(out, err)
			clear()
		}
	}
	if u.CSQ != nil && (*u.CSQ < 0 || *u.CSQ > 31) {
		drop(FieldError("csq", "%d is outside 0-31", *u.CSQ), func() { u.CSQ, u.NetworkOperator = nil, nil })
	}
	if u.EmergencyCredit != nil && u.EmergencyCredit.IsNegative() {
		drop(FieldError("emergency_credit", "must not be negative"), func() { u.EmergencyCredit = nil })
	}
	if u.Health != nil && !u.Health.Valid() {
		drop(FieldError("health", "%q is not healthy or unhealthy", *u.Health), func() { u.Health = nil })
	}
	if u.TariffsActive != nil {
		drop(u.TariffsActive.ValidateAmounts("tariffs_active"), func() { u.TariffsActive = nil })
	}
	if u.TariffsFuture != nil {
		drop(u.TariffsFuture.ValidateAmounts("tariffs_future"), func() { u.TariffsFuture = nil })
	}
	return out
}

// Register maps a metering register to a meter element.
type Register struct {
	RegisterID        string         `json:"register_id"`
	MeterID           string         `json:"meter_id"`
	Element           Element        `json:"element"`
	Status            RegisterStatus `json:"status"`
	DirectionReversed bool           `json:"direction_reversed"`
	CreatedAt         time.Time      `json:"created_at"`
}

// BalancePoint is one entry (or one bucket) of balance history.
type BalancePoint struct {
	Timestamp       time.Time        `json:"timestamp"`
	Balance         *decimal.Decimal `json:"balance"`
	EmergencyCredit *decimal.Decimal `json:"emergency_credit,omitempty"`
	Min             *decimal.Decimal `json:"min_balance,omitempty"`
	Max             *decimal.Decimal `json:"max_balance,omitempty"`
	Avg             *decimal.Decimal `json:"avg_balance,omitempty"`
}

// Bucket is the aggregation of a balance history query.
type Bucket string

// Balance history buckets.
const (
	BucketRaw  Bucket = "raw"
	BucketHour Bucket = "hour"
	BucketDay  Bucket = "day"
)

// MeterFilter selects meters from the registry. Empty fields do not filter.
type MeterFilter struct {
	ESCOCode string
	Mode     Mode
	Health   Health
	Query    string           // substring of serial or name
	Below    *decimal.Decimal // balance under this
	Offline  bool             // in meters_offline_all
	Sort     string           // one of MeterSorts, "-" first for descending; "" by name
	Limit    int
	Offset   int
}

// MeterPatch changes registry fields; nil fields stay.
type MeterPatch struct {
	Name      *string `json:"name"`
	IPAddress *string `json:"ip_address"`
	Port      *int    `json:"port"`
	Mode      *Mode   `json:"mode"`
}

// MeterStatus is a meter with its shadow and registers: what an operator sees.
type MeterStatus struct {
	Meter     Meter      `json:"registry"`
	Shadow    Shadow     `json:"shadow"`
	Registers []Register `json:"registers"`
	// Freshness of each value group; Stale lists the stale ones.
	Freshness map[string]ValueFreshness `json:"freshness"`
	Stale     []string                  `json:"stale"`
	// FuturePending says whether the future tariff the meter reports is a
	// change still to come (its activation lies ahead); false for the
	// last change or the epoch a meter reports when none is scheduled.
	FuturePending bool `json:"future_pending"`
	// LastOnline is when the meter last answered a signal read
	// (flows.meter_last_online: the newest non-NULL csq, the rule of the
	// offline views); nil if it never has.
	LastOnline *time.Time `json:"last_online"`
	// CreditRunsOutAt is when the meter is expected to lose supply, its
	// credit and emergency credit spent (CreditForecast.SupplyCutAt); nil
	// when no forecast says so.
	CreditRunsOutAt *time.Time      `json:"credit_runs_out_at"`
	CreditForecast  *CreditForecast `json:"credit_forecast"`
}

// LowBalance is a row of the meters_low_balance view.
type LowBalance struct {
	ID              string           `json:"id"`
	Serial          string           `json:"serial"`
	Name            string           `json:"name"`
	Balance         decimal.Decimal  `json:"balance"`
	EmergencyCredit *decimal.Decimal `json:"emergency_credit"`
}

// OfflineMeter is a row of the meters_offline_* views.
type OfflineMeter struct {
	ID         string     `json:"id"`
	Serial     string     `json:"serial"`
	Name       string     `json:"name"`
	LastOnline *time.Time `json:"last_online"`
}

// ClockDrift is a row of the meters_clock_drift view.
type ClockDrift struct {
	ID                   string     `json:"id"`
	Serial               string     `json:"serial"`
	Name                 string     `json:"name"`
	ClockTimeDiffSeconds int        `json:"clock_time_diff_seconds"`
	SyncedAt             *time.Time `json:"clock_time_diff_synced_at"`
}

// MeterStore is the persistence of the meter domain. Errors carry the codes
// of this package: ENOTFOUND, EINVALID (naming the field) and ECONFLICT.
type MeterStore interface {
	CreateESCO(ctx context.Context, code, name string) (*ESCO, error)
	ESCOByCode(ctx context.Context, code string) (*ESCO, error)
	CreateMeter(ctx context.Context, m NewMeter) (*Meter, error)
	MeterBySerial(ctx context.Context, serial string) (*Meter, error)
	Meters(ctx context.Context, f MeterFilter) ([]Meter, error)
	MeterStatus(ctx context.Context, serial string) (*MeterStatus, error)
	UpdateShadow(ctx context.Context, meterID string, u ShadowUpdate) error
	AddRegister(ctx context.Context, meterID string, e Element, reversed bool) (*Register, error)
	BalanceHistory(ctx context.Context, meterID string, from, to time.Time, b Bucket) ([]BalancePoint, error)
	LowBalance(ctx context.Context, threshold decimal.Decimal, escoCode string) ([]LowBalance, error)
	OfflineRecently(ctx context.Context, escoCode string) ([]OfflineMeter, error)
	OfflineAll(ctx context.Context, escoCode string) ([]OfflineMeter, error)
	ClockDrifts(ctx context.Context, escoCode string) ([]ClockDrift, error)
}

// MeterRow is a line of the meter list: registry fields and a shadow summary.
type MeterRow struct {
	Meter
	Balance    *decimal.Decimal `json:"balance"`
	Health     *Health          `json:"health"`
	CSQ        *int             `json:"csq"`
	BalanceAt  *time.Time       `json:"balance_synced_at"`
	Stale      bool             `json:"stale"` // balance older than twice its interval
	LastOnline *time.Time       `json:"last_online"`
}

// FleetSummary counts meters by state, for one ESCO or all.
type FleetSummary struct {
	ESCO       string `json:"esco"`
	Meters     int    `json:"meters"`
	Active     int    `json:"active"`
	Passive    int    `json:"passive"`
	Healthy    int    `json:"healthy"`
	Unhealthy  int    `json:"unhealthy"`
	Offline    int    `json:"offline"`
	Stale      int    `json:"stale"`
	LowBalance int    `json:"low_balance"`
}

// SignalPoint is one reading of signal or voltage history.
type SignalPoint struct {
	Timestamp time.Time        `json:"timestamp"`
	CSQ       *int             `json:"csq,omitempty"`
	Voltage   *decimal.Decimal `json:"voltage,omitempty"`
}

// Session is a dashboard session, kept server-side so that logging out
// ends it: who logged in, with which role and ESCO scope, until when.
type Session struct {
	Subject   string
	Role      string
	ESCO      string
	TokenID   string // the jti of the token that logged in
	ExpiresAt time.Time
}
